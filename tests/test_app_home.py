"""The router and home page (`app.py`) through Streamlit's AppTest, and the app's Streamlit
settings (`.streamlit/config.toml`): visitors never see a traceback."""

import re
import tomllib
from pathlib import Path

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def test_home_explains_bbb_with_formulas_and_links_every_page():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    assert at.title[0].value == "BBB Explorer"
    formulas = " ".join(latex.value for latex in at.latex)
    for part in (
        r"\mathrm{KL}",
        r"\log\big(1 + e^{\rho}\big)",
        r"\mu + \sigma",
        r"\text{L2}",
        r"\text{L1}",
        r"\pi\,\mathcal{N}",
        "aleatoric",
        "epistemic",
    ):
        assert part in formulas, part
    text = " ".join(m.value for m in at.markdown)
    assert "Epistemic" in text and "Aleatoric" in text
    assert len(at.get("page_link")) == 4  # regression, classification, images, priors


def test_the_router_runs_the_regression_page():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.run()
    at.switch_page("pages/regression.py")
    at.run()
    assert not at.exception, at.exception
    assert at.title[0].value.startswith("Regression")
    assert len(at.get("plotly_chart")) == 3


def test_the_router_runs_the_priors_page():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.run()
    at.switch_page("pages/priors.py")
    at.run()
    assert not at.exception, at.exception
    assert at.title[0].value.startswith("Priors and weights")


def test_every_streamlit_setting_says_why():
    lines = (ROOT / ".streamlit" / "config.toml").read_text().splitlines()
    for i, line in enumerate(lines):
        if re.match(r"\s*\w+\s*=", line):
            assert lines[i - 1].lstrip().startswith("#"), f"no comment above {line!r}"


def test_visitors_see_no_traceback_and_the_log_keeps_it(monkeypatch, capfd):
    from streamlit import config

    settings = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert settings["client"]["showErrorDetails"] == config.ShowErrorDetailsConfigOptions.NONE
    monkeypatch.chdir(ROOT)  # Streamlit reads .streamlit/config.toml from the working directory
    config.get_config_options(force_reparse=True)
    at = AppTest.from_string("raise RuntimeError('details at /srv/bbb/secret.py')")
    at.run()
    shown = at.exception[0]
    assert "secret" not in shown.message and "RuntimeError" not in shown.message
    assert not shown.stack_trace
    assert "details at /srv/bbb/secret.py" in capfd.readouterr().err
