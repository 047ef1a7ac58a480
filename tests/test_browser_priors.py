"""The "Priors and weights" page in a real browser: `streamlit run app.py` on a free port, driven
by Playwright through the system's Chromium.

The page trains MLE, MAP and BBB to the end; a click on a preset in the sidebar retrains them
under another prior, and the charts (the fit, the weight histograms) must change with no
exception shown. A screenshot goes to artifacts/screenshots/ and, with BBB_UPDATE_SCREENSHOTS=1,
to docs/screenshot_priors.png for the README.

Without /usr/bin/chromium the test is skipped, except in CI (CI=true), where it fails. Never
`playwright install`: the system's Chromium is used.
"""

from __future__ import annotations

import os

import pytest
from browser_helpers import DOCS, SHOTS, SIGNATURE_JS, chromium, no_exception, running_app

from ui.bench import wait_finished
from ui.presets import presets_for

pytestmark = pytest.mark.browser

PAGE = "priors"
TIMEOUT_MS = 90_000  # three models; other processes may share the CPU
VIEWPORT = {"width": 1400, "height": 1500}  # the losses, the fit and the weights in one view
PRESET = "l1-sparse"


@pytest.fixture(scope="module")
def app_url():
    with running_app("streamlit_browser_priors.log") as url:
        yield url


@pytest.fixture(scope="module")
def tab(app_url):
    with chromium() as browser:
        page = browser.new_page(viewport=VIEWPORT)
        page.set_default_timeout(TIMEOUT_MS)
        yield page


def _settled(tab) -> None:
    """Training finished and the full rerun after it (pruning curves, downloads) is drawn."""
    wait_finished(tab, PAGE, TIMEOUT_MS)
    tab.locator(f".st-key-{PAGE}-pruning .js-plotly-plot").wait_for()
    tab.locator("[data-testid='stDownloadButton']").first.wait_for()
    tab.wait_for_timeout(500)
    wait_finished(tab, PAGE, TIMEOUT_MS)


def _signature(tab, name: str) -> str | None:
    return tab.evaluate(SIGNATURE_JS, f".st-key-{PAGE}-{name}")


def test_priors_page_trains_and_a_preset_changes_the_charts(app_url, tab):
    tab.goto(f"{app_url}/{PAGE}")
    _settled(tab)
    no_exception(tab)
    for name in ("fit", "prior", "weights", "sigma", "snr", "pruning"):
        assert tab.locator(f".st-key-{PAGE}-{name} .js-plotly-plot").count() == 1, name
    assert tab.locator(".katex").count() >= 1  # the losses
    before = {name: _signature(tab, name) for name in ("fit", "weights")}
    assert all(before.values())
    if os.environ.get("BBB_UPDATE_SCREENSHOTS"):  # the README's picture: the default run
        tab.screenshot(path=str(DOCS / "screenshot_priors.png"))

    preset = presets_for("priors")[PRESET]
    tab.locator(f".st-key-{PAGE}-preset").click()
    tab.get_by_role("option", name=preset.name).click()
    tab.wait_for_function(f"() => location.search.includes('preset={PRESET}')")
    tab.get_by_text(preset.story[:40]).wait_for()
    _settled(tab)
    no_exception(tab)
    assert "prior=laplace" in tab.url and "b=0.2" in tab.url
    for name, old in before.items():
        now = _signature(tab, name)
        assert now is not None and now != old, name
    assert "Finished" in tab.locator(f".st-key-{PAGE}-status").inner_text()
    tab.screenshot(path=str(SHOTS / f"{PAGE}_{PRESET}.png"))
