"""Shared AppTest helpers for the live pages' tests: open a page with URL parameters, rerun it
asserting no exception, and read a chart's plotly figure by its key."""

from __future__ import annotations

import json
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


def chart(at: AppTest, page: str, name: str) -> dict:
    """The plotly figure (as JSON) of the chart whose key is `<page>-<name>`."""
    for element in at.get("plotly_chart"):
        if f"-{page}-{name}-" in element.proto.id + "-":
            return json.loads(element.proto.spec)
    raise AssertionError(f"no chart {name}: {[c.proto.id for c in at.get('plotly_chart')]}")
