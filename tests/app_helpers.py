"""Shared AppTest helpers for the live pages' tests: open a page with URL parameters, rerun it
asserting no exception, rerun it until its run has finished, read a chart's plotly figure by its
key, and check that a message shows a link's text only as inert code spans."""

from __future__ import annotations

import json
import re
from pathlib import Path

from streamlit.testing.v1 import AppTest

PAGES = Path(__file__).resolve().parents[1] / "pages"


def open_page(page: str, **params: str) -> AppTest:
    """Run pages/<page>.py once with these query parameters."""
    at = AppTest.from_file(str(PAGES / f"{page}.py"), default_timeout=60)
    for key, value in params.items():
        at.query_params[key] = value
    return run(at)


def run(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, at.exception
    return at


def run_to_finish(at: AppTest, limit: int = 60, key: str = "live_run") -> AppTest:
    """Rerun `at` (one training tick each: AppTest runs the live fragment once per run) until the
    session's run is done, then once more for the final view; fails if it never finishes."""
    for _ in range(limit):
        if at.session_state[key].done:
            break
        run(at)
    run(at)
    assert at.session_state[key].done
    return at


def chart(at: AppTest, page: str, name: str) -> dict:
    """The plotly figure (as JSON) of the chart whose key is `<page>-<name>`."""
    for element in at.get("plotly_chart"):
        if f"-{page}-{name}-" in element.proto.id + "-":
            return json.loads(element.proto.spec)
    raise AssertionError(f"no chart {name}: {[c.proto.id for c in at.get('plotly_chart')]}")


def trace_names(fig: dict) -> list[str]:
    """The names of a plotly figure's (as JSON) traces, in order."""
    return [t.get("name") for t in fig["data"]]


def trace_data(fig: dict) -> str:
    """A plotly figure's (as JSON) traces as one canonical string, to tell two figures apart."""
    return json.dumps(fig["data"], sort_keys=True)


def assert_inert(markdown: str, *from_link: str) -> None:
    """Outside its code spans (where Streamlit's Markdown shows text as it is), `markdown` holds
    no image, link, HTML, icon, colour or formula syntax and none of the strings `from_link`."""
    assert markdown.count("`") % 2 == 0, markdown
    prose = re.sub(r"`[^`]*`", "", markdown)
    for part in ("![", "](", "<", ">", "http", "$", *from_link):
        assert part not in prose, (part, markdown)
    assert not re.search(r":\S", prose), markdown  # no :icon:, :colour[...] or scheme:
    for span in re.findall(r"`([^`]*)`", markdown):
        assert span.isprintable(), span


WIDGETS = (
    "select_slider",
    "selectbox",
    "radio",
    "slider",
    "number_input",
    "checkbox",
    "text_input",
)


def defaults_not_values(at: AppTest, prefix: str) -> dict[str, tuple]:
    """The widgets keyed `<prefix>...` whose default, as sent to the browser, is not their
    current value: (default, value) by key. A browser that draws a widget again before storing a
    value Streamlit sent once shows the default."""
    wrong = {}
    for kind in WIDGETS:
        for el in at.get(kind):
            if not (el.key or "").startswith(prefix):
                continue
            default = el.proto.default
            if kind == "select_slider":
                shown, value = el.options[int(default[0])], el.format_func(el.value)
            elif kind in ("selectbox", "radio"):
                shown, value = default, el.index
            elif kind == "slider":
                shown, value = list(default), [el.value]
            else:
                shown, value = default, el.value
            if shown != value:
                wrong[el.key] = (shown, value)
    return wrong
