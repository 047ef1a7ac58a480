"""The "Priors and weights" page through Streamlit's AppTest: the default run (three estimates,
the losses, the weights against the prior), every preset, the paper's grid, the dataset picker,
a finished run (pruning curves, metrics, downloads) and a link's round trip.

AppTest runs the live fragment once per `run()` (one training tick); the loop itself is tested in
test_ui_live.py.
"""

import math

import pytest

pytest.importorskip("streamlit")
from app_helpers import chart, defaults_not_values, open_page, run_to_finish  # noqa: E402
from app_helpers import run as _run  # noqa: E402
from app_helpers import trace_data as _data  # noqa: E402
from app_helpers import trace_names as _names  # noqa: E402
from streamlit.testing.v1 import AppTest  # noqa: E402

from bbb_core.weights import mean_network_score  # noqa: E402
from ui.presets import presets_for  # noqa: E402
from ui.priors import PAPER_GRID  # noqa: E402

P = "priors"
LIVE_CHARTS = ("fit", "weights", "sigma", "snr")


def _page(**params: str) -> AppTest:
    return open_page(P, **params)


def _chart(at: AppTest, name: str) -> dict:
    return chart(at, P, name)


def test_defaults_train_mle_map_and_bbb_and_draw_the_weights():
    at = _page()
    assert at.title[0].value.startswith("Priors and weights")
    run = at.session_state["live_run"]
    assert run.kinds == ("bbb", "standard", "map") and run.page == P
    assert all(t.epoch > 0 for t in run.jobs.values())
    assert run.cfg.train.lr_schedule == "cosine" and run.cfg.prior.family == "gaussian"
    assert run.jobs["map"].cfg.model.kind == "map"
    assert _names(_chart(at, "fit")) == [
        "BBB 95 % band", "training data", "true function", "MLE", "MAP", "BBB",
    ]  # fmt: skip
    weights = _chart(at, "weights")
    bars = [t for t in weights["data"] if t["type"] == "bar"]
    assert [b["name"] for b in bars] == ["MLE", "MAP", "BBB means μ"]
    assert "prior p(w): Gaussian" in _names(weights)
    assert _names(_chart(at, "snr")) == ["weights", "|μ| = σ"]
    prior = _chart(at, "prior")
    assert _names(prior)[::2] == ["Gaussian σ = 1", "Laplace b = 1", "mixture π = 0.25"]
    latex = at.latex[0].value
    assert r"\text{MAP:}" in latex and r"0.5\sum_j w_j^2" in latex and "L2" in latex
    assert any(c.value.startswith("Now (sums") for c in at.caption)
    assert [b.label for b in at.button] == ["Pause", "Step", "Reset"]
    assert not at.error and not at.exception


@pytest.mark.parametrize("slug", list(presets_for("priors")))
def test_every_preset_loads_its_prior_tells_its_story_and_redraws(slug):
    at = _page()
    before = {name: _data(_chart(at, name)) for name in LIVE_CHARTS}
    preset = presets_for("priors")[slug]
    at.selectbox(key=f"{P}:preset").set_value(slug)
    _run(at)
    assert not at.exception and not at.error
    assert preset.name in at.info[0].value
    cfg = at.session_state["live_run"].cfg
    assert cfg.prior == preset.config.prior and cfg.data.name == preset.config.data.name
    assert at.query_params["preset"] == slug
    for name in LIVE_CHARTS:
        assert _data(_chart(at, name)) != before[name], name


def test_laplace_changes_the_loss_to_l1_and_retrains_map_not_mle():
    at = _page()
    run = at.session_state["live_run"]
    at.selectbox(key=f"{P}:prior").set_value("laplace")
    _run(at)
    moved = at.session_state["live_run"]
    assert moved.jobs["standard"] is run.jobs["standard"]
    assert moved.jobs["map"] is not run.jobs["map"]
    assert r"1\sum_j |w_j|" in at.latex[0].value and "L1" in at.latex[0].value
    at.select_slider(key=f"{P}:b").set_value(0.2)
    _run(at)
    assert r"5\sum_j |w_j|" in at.latex[0].value
    assert at.query_params["prior"] == "laplace" and at.query_params["b"] == "0.2"


def test_the_papers_grid_selects_a_scale_mixture():
    at = _page()
    point = PAPER_GRID[-1]  # pi 3/4, sigma1 e^-2, sigma2 e^-8
    at.selectbox(key=f"{P}:paper_grid").set_value(point)
    _run(at)
    prior = at.session_state["live_run"].cfg.prior
    assert prior.family == "mixture" and prior.pi == 0.75
    assert prior.sigma1 == pytest.approx(math.exp(-2)) and prior.sigma2 == pytest.approx(
        math.exp(-8)
    )
    assert at.selectbox(key=f"{P}:paper_grid").value == point
    assert defaults_not_values(at, f"{P}:") == {}  # the grid's too: set on every run
    assert float(at.query_params["sigma1"]) == pytest.approx(math.exp(-2))


def test_a_classification_set_shows_the_three_probability_maps():
    at = _page()
    at.selectbox(key=f"{P}:data").set_value("moons")
    _run(at)
    fit = _chart(at, "fit")
    assert [a["text"] for a in fit["layout"]["annotations"]] == ["MLE", "MAP", "BBB"]
    assert sum(t["type"] == "heatmap" for t in fit["data"]) == 3
    assert at.session_state["live_run"].dataset.task == "classification"


def test_a_finished_run_shows_pruning_metrics_and_downloads():
    at = run_to_finish(_page(epochs="30"))
    pruning = _chart(at, "pruning")
    assert _names(pruning) == ["BBB by |μ|/σ", "BBB by |μ|", "MAP by |w|"]
    run = at.session_state["live_run"]
    curves, metric = run.cache["pruning"]
    bbb = run.jobs["bbb"].model
    unpruned = mean_network_score(bbb, run.dataset.x_test, run.dataset.y_test, metric)
    assert metric == "rmse" and float(curves["BBB by |μ|/σ"][0]) == unpruned
    table = at.dataframe[-1].value
    assert list(table.index) == ["BBB", "MLE", "MAP"]
    labels = [b.label for b in at.get("download_button")]
    assert labels == ["Config (JSON)", "Plotted data (CSV)", "Metrics (CSV)", "Weights (CSV)"]
    assert not at.exception


def test_a_link_reproduces_the_view():
    at = _page(data="moons", prior="laplace", b="0.5", kl="0.1", seed="3", epochs="40")
    cfg = at.session_state["live_run"].cfg
    assert (cfg.data.name, cfg.prior.family, cfg.prior.b) == ("moons", "laplace", 0.5)
    assert (cfg.train.kl_weight, cfg.seed, cfg.train.epochs) == (0.1, 3, 40)
    link = dict(at.query_params)
    again = _page(**{k: v[0] if isinstance(v, list) else v for k, v in link.items()})
    assert again.session_state["live_run"].cfg == cfg
    assert not again.warning


def test_invalid_settings_show_an_error_and_train_nothing():
    at = _page()
    at.text_input(key=f"{P}:hidden").set_value("abc")
    _run(at)
    assert not at.exception
    assert any("Hidden layers" in e.value for e in at.error)
