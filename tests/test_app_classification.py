"""The 2-D classification page through Streamlit's AppTest: the heatmaps of BBB and the
baselines, moved widgets, a preset, the URL, and a finished run's metrics.

AppTest runs the live `run_every` fragment once per `run()` (one training tick); the loop's step
function itself is tested in test_ui_live.py.
"""

import pytest

pytest.importorskip("streamlit")
from app_helpers import assert_inert, chart, open_page  # noqa: E402
from app_helpers import run as _run  # noqa: E402
from app_helpers import trace_data as _data  # noqa: E402
from streamlit.testing.v1 import AppTest  # noqa: E402

P = "classification"
MAPS = ("probability", "entropy", "mutual_info")


def _page(**params: str) -> AppTest:
    return open_page(P, **params)


def _chart(at: AppTest, name: str) -> dict:
    return chart(at, P, name)


def _heatmaps(fig: dict) -> int:
    return sum(t["type"] == "heatmap" for t in fig["data"])


def test_defaults_draw_three_maps_for_bbb_and_the_standard_network():
    at = _page()
    assert at.title[0].value.startswith("Classification")
    assert len(at.get("plotly_chart")) == 5  # three maps, the losses, the prior
    for name in MAPS:
        fig = _chart(at, name)
        assert _heatmaps(fig) == 2
        names = {t.get("name") for t in fig["data"]}
        assert {"class 0", "class 1", "far OOD inputs"} <= names
    assert [a["text"] for a in _chart(at, "probability")["layout"]["annotations"]] == [
        "BBB",
        "Standard",
    ]
    assert not at.error and not at.warning and at.query_params["data"] == "moons"


def test_moving_the_kl_weight_changes_the_maps():
    at = _page()
    before = [_data(_chart(at, name)) for name in MAPS]
    at.select_slider(key=f"{P}:kl").set_value(0.01)
    _run(at)
    assert at.session_state["live_run"].cfg.train.kl_weight == 0.01
    assert all(_data(_chart(at, n)) != b for n, b in zip(MAPS, before, strict=True))


def test_baselines_add_a_map_each():
    at = _page()
    at.checkbox(key=f"{P}:show_dropout").check()
    at.checkbox(key=f"{P}:show_ensemble").check()
    _run(at)
    assert _heatmaps(_chart(at, "entropy")) == 4
    assert at.session_state["live_run"].kinds == ("bbb", "standard", "dropout", "ensemble")


def test_a_preset_loads_spirals_with_baselines():
    at = _page()
    at.selectbox(key=f"{P}:preset").set_value("far-away")
    _run(at)
    run = at.session_state["live_run"]
    assert run.cfg.data.name == "spirals" and len(run.kinds) == 4
    assert "far from the data" in at.info[0].value
    assert at.query_params["preset"] == "far-away"


def test_a_link_reproduces_the_settings():
    at = _page(data="xor", kl="0.1", seed="2", hidden="16,16", pred_samples="20")
    cfg = at.session_state["live_run"].cfg
    assert cfg.data.name == "xor" and cfg.train.kl_weight == 0.1 and cfg.seed == 2
    assert cfg.model.hidden == (16, 16) and cfg.train.pred_samples == 20
    assert not at.warning


def test_a_hostile_link_falls_back_with_inert_notices():
    at = _page(
        data="[moons](http://127.0.0.1:9/x)",
        epochs="inf",
        seed="1e400",
        hidden="9" * 100_000,
        act="<b>relu</b>",
    )
    assert not at.exception and len(at.warning) == 1
    text = at.warning[0].value
    assert_inert(text, "moons](", "<b>")
    assert "`epochs='inf'`: expected a whole number in [1, 20000]" in text
    cfg = at.session_state["live_run"].cfg
    assert cfg.data.name == "moons" and cfg.seed == 0 and cfg.model.activation == "relu"


def test_a_finished_run_shows_classification_metrics():
    at = _page(epochs="20")
    for _ in range(40):
        if at.session_state["live_run"].done:
            break
        _run(at)
    _run(at)
    table = at.dataframe[0].value
    assert list(table.index) == ["BBB", "Standard"]
    assert {"accuracy", "ECE", "OOD AUROC (entropy)", "OOD AUROC (MI)"} <= set(table.columns)
    assert (table["accuracy"] > 0.5).all()
    assert len(at.get("download_button")) == 3
