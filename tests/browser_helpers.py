"""Shared pieces of the real-browser tests: the system's Chromium (skipped without it, except in
CI, where a missing browser fails), a running app, and the checks every page gets."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from ui.bench import CHROMIUM, launch_browser, serve

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "artifacts" / "screenshots"
DOCS = ROOT / "docs"

# A short signature of a chart's data (plotly keeps the traces on the graph div as `data`).
SIGNATURE_JS = """(selector) => {
  const gd = document.querySelector(selector + ' .js-plotly-plot');
  if (!gd || !gd.data) return null;
  const text = JSON.stringify(gd.data, (k, v) => ArrayBuffer.isView(v) ? Array.from(v) : v);
  let h = 0;
  for (let i = 0; i < text.length; i++) h = (h * 31 + text.charCodeAt(i)) | 0;
  return text.length + ':' + h;
}"""


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_browser() -> None:
    """Skip without the system's Chromium or playwright; in CI, fail instead."""
    if not Path(CHROMIUM).exists():
        message = f"{CHROMIUM} is missing: install Chromium (apt-get install -y chromium)"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        if in_ci():
            pytest.fail("playwright is not installed")
        pytest.skip("playwright is not installed")


@contextlib.contextmanager
def running_app(log_name: str) -> Iterator[str]:
    """`streamlit run app.py` for a test module (its log in artifacts/); yields the URL."""
    require_browser()
    SHOTS.mkdir(parents=True, exist_ok=True)
    with serve(log_path=SHOTS.parent / log_name) as url:
        yield url


@contextlib.contextmanager
def chromium() -> Iterator[object]:
    """The system's Chromium through playwright (never a downloaded browser)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch_browser(p)
        try:
            yield browser
        finally:
            browser.close()


def no_exception(tab) -> None:
    """No exception box and no traceback on the page."""
    assert tab.locator("[data-testid='stException']").count() == 0
    assert "Traceback" not in tab.locator("[data-testid='stMain']").inner_text()
