"""The router and home page (`app.py`) through Streamlit's AppTest."""

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
    assert len(at.get("page_link")) == 3


def test_the_router_runs_the_regression_page():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.run()
    at.switch_page("pages/regression.py")
    at.run()
    assert not at.exception, at.exception
    assert at.title[0].value.startswith("Regression")
    assert len(at.get("plotly_chart")) == 3
