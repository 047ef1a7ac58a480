"""Your own data in a real browser: `streamlit run app.py` on a free port, driven by Playwright
through the system's Chromium. The example CSV goes through the regression page's real file
picker; the test waits for training on it to finish, checks the chart, the preview and the URL
(`data=uploaded`, never the data), and that the same link opened in another browser (another
session) falls back to a toy set with a notice. The screenshot goes to artifacts/screenshots/
and, with BBB_UPDATE_SCREENSHOTS=1, to docs/screenshot_upload.png for the README.

Without /usr/bin/chromium the test is skipped, except in CI (CI=true), where it fails. Never
`playwright install`: the system's Chromium is used.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import parse_qs

import pytest
from browser_helpers import SHOTS, chromium, no_exception, running_app

from ui.bench import VIEWPORT, wait_finished

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "regression.csv"
TIMEOUT_MS = 60_000  # generous: other processes may share the CPU
FIT = ".st-key-regression-fit .js-plotly-plot"


@pytest.fixture(scope="module")
def app_url():
    with running_app("streamlit_browser_upload_test.log") as url:
        yield url


@pytest.fixture(scope="module")
def browser(app_url):
    with chromium() as browser:
        yield browser


def _tab(browser):
    tab = browser.new_context(viewport=VIEWPORT).new_page()
    tab.set_default_timeout(TIMEOUT_MS)
    return tab


def _chart_title(tab) -> str:
    return tab.evaluate(
        "(sel) => { const gd = document.querySelector(sel); "
        "return gd && gd.layout && gd.layout.title ? gd.layout.title.text : null; }",
        FIT,
    )


def test_an_uploaded_csv_trains_and_draws_on_the_regression_page(app_url, browser):
    tab = _tab(browser)
    tab.goto(f"{app_url}/regression")
    wait_finished(tab, "regression", TIMEOUT_MS)  # the toy curve first
    tab.get_by_text("Your own data: upload a CSV file").click()
    tab.locator(".st-key-regression-upload-file input[type=file]").set_input_files(str(EXAMPLE))
    tab.wait_for_function("() => location.search.includes('data=uploaded')")
    tab.wait_for_function(
        "(sel) => { const gd = document.querySelector(sel); return gd && gd.layout && "
        "gd.layout.title && gd.layout.title.text.includes('your data'); }",
        arg=FIT,
        timeout=TIMEOUT_MS,
    )
    wait_finished(tab, "regression", TIMEOUT_MS)
    tab.locator("[data-testid='stDownloadButton']").first.wait_for()  # the finished view
    tab.wait_for_timeout(300)
    wait_finished(tab, "regression", TIMEOUT_MS)  # and the full rerun that drew it
    no_exception(tab)
    assert "your data" in _chart_title(tab)
    main = tab.locator("[data-testid='stMain']").inner_text()
    assert "238 rows train the models, 59 are held out" in main
    assert "Finished" in tab.locator(".st-key-regression-status").inner_text()
    x_title = tab.evaluate(f"() => document.querySelector('{FIT}').layout.xaxis.title.text")
    assert x_title == "temperature_c"
    search = tab.evaluate("location.search")
    assert "data=uploaded" in search and "sales" not in search and "csv" not in search
    assert not {"n", "noise", "gap"} & set(parse_qs(search[1:]))  # no generator settings
    tab.set_viewport_size({"width": VIEWPORT["width"], "height": 1500})  # upload and chart
    tab.wait_for_timeout(800)  # let the last charts settle for the screenshot
    tab.screenshot(path=str(SHOTS / "upload.png"))
    if os.environ.get("BBB_UPDATE_SCREENSHOTS"):  # the README's picture
        tab.screenshot(path=str(ROOT / "docs" / "screenshot_upload.png"))

    other = _tab(browser)  # another browser context: another session, no upload there
    other.goto(f"{app_url}/regression{search}")
    notice = other.locator("[data-testid='stAlert']").filter(has_text="never shared")
    notice.wait_for()
    wait_finished(other, "regression", TIMEOUT_MS)
    no_exception(other)
    assert "your data" not in (_chart_title(other) or "")
    assert "blundell" in _chart_title(other)
    other.context.close()
    tab.context.close()


def test_hostile_column_names_stay_text_in_the_browser(app_url, browser, tmp_path):
    attacker = "127.0.0.1:9"  # nothing listens on port 9
    header = (
        f"![x](http://{attacker}/p.png),<img src=x onerror=alert(1)><a href=http://{attacker}>a</a>"
    )
    lines = [header] + [f"{i / 10:.1f},{(i % 7) * 1.5:.1f}" for i in range(60)]
    path = tmp_path / "hostile.csv"
    path.write_text("\n".join(lines) + "\n")
    tab = _tab(browser)
    requests: list[str] = []
    tab.on("request", lambda request: requests.append(request.url))
    tab.goto(f"{app_url}/regression?epochs=50")
    wait_finished(tab, "regression", TIMEOUT_MS)
    tab.get_by_text("Your own data: upload a CSV file").click()
    tab.locator(".st-key-regression-upload-file input[type=file]").set_input_files(str(path))
    tab.wait_for_function("() => location.search.includes('data=uploaded')")
    wait_finished(tab, "regression", TIMEOUT_MS)
    tab.wait_for_timeout(500)  # an injected image would have started loading by now
    no_exception(tab)
    sources = tab.locator("img").evaluate_all("es => es.map(e => e.getAttribute('src'))")
    assert not any(s == "x" or attacker in (s or "") for s in sources), sources
    links = tab.locator("a").evaluate_all("es => es.map(e => e.getAttribute('href'))")
    assert not any(attacker in (h or "") for h in links), links
    assert tab.locator("[onerror]").count() == 0
    assert not any(attacker in url for url in requests), requests
    assert "![x](http://127.0.0.1:9/p.png)" in tab.locator("[data-testid='stMain']").inner_text()
    tab.context.close()
