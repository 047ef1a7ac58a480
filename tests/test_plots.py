"""Tests for `bbb_core.plots`: every figure is built from small real inputs (untrained models on the
toy sets, hand-made tensors for the image figures) and checked through its data, without a browser:
trace counts and types, legend names, the plotted numbers against values computed here
independently (bands from a normal quantile of `statistics.NormalDist`, densities from
`torch.distributions`), colour ranges, shapes and annotations."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from statistics import NormalDist

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io
import pytest
import torch
from conftest import assert_close

from bbb_core import (
    Progress,
    RegressionPredictive,
    build_model,
    default_config,
    make_dataset,
    plots,
    predictive,
)
from bbb_core.config import MODELS
from bbb_core.metrics import reliability
from bbb_core.plots import (
    MODEL_COLORS,
    classification_figure,
    classification_grid_figure,
    image_gallery_figure,
    loss_figure,
    metrics_frame,
    prior_density_figure,
    pruning_figure,
    regression_figure,
    reliability_figure,
    rotation_figure,
    uncertainty_histogram,
)
from bbb_core.priors import GaussianPrior, LaplacePrior, ScaleMixturePrior

EXACT = dict(rtol=0.0, atol=0.0)
F32 = dict(rtol=1e-6, atol=1e-6)  # values that went through float32 tensors
Z95 = NormalDist().inv_cdf(0.975)  # 1.959963984540054


# --- fixtures and helpers -----------------------------------------------------------------------


def _untrained(name: str, kind: str, x_of, samples: int = 8, **kw):
    torch.manual_seed(0)
    cfg = default_config(name)
    ds = make_dataset(cfg.data, 0)
    model = build_model(replace(cfg.model, kind=kind), cfg.prior, ds)
    return ds, predictive(model, x_of(ds), samples=samples, **kw)


@pytest.fixture(scope="module")
def blundell():
    """The blundell set and untrained BBB / standard predictives on its grid."""
    ds, bbb = _untrained("blundell", "bbb", lambda d: d.x_grid)
    _, standard = _untrained("blundell", "standard", lambda d: d.x_grid)
    return ds, {"bbb": bbb, "standard": standard}


@pytest.fixture(scope="module")
def moons():
    """The moons set and untrained BBB / standard predictives on its 60 x 60 grid."""
    ds, bbb = _untrained("moons", "bbb", lambda d: d.x_grid)
    _, standard = _untrained("moons", "standard", lambda d: d.x_grid)
    return ds, {"bbb": bbb, "standard": standard}


def by_name(fig: go.Figure, name: str):
    """The one trace called `name`."""
    found = [t for t in fig.data if t.name == name]
    assert len(found) == 1, f"{len(found)} traces named {name!r} in {[t.name for t in fig.data]}"
    return found[0]


def split_band(trace, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) of a closed band polygon: forwards along upper, back along lower."""
    y = np.asarray(trace.y, dtype=np.float64)
    assert y.shape == (2 * n,)
    return y[n:][::-1].copy(), y[:n]


def segments(trace) -> list[np.ndarray]:
    """The curves of a NaN-separated multi-line trace."""
    y = np.asarray(trace.y, dtype=np.float64)
    cuts = np.flatnonzero(np.isnan(y))
    parts = [part[~np.isnan(part)] for part in np.split(y, cuts)]
    return [part for part in parts if part.size]


def rgb(hex_color: str) -> str:
    r, g, b = (int(hex_color[i : i + 2], 16) for i in (1, 3, 5))
    return f"{r},{g},{b}"


# --- palette and layout -------------------------------------------------------------------------


def test_every_model_kind_has_its_own_colour_and_label():
    assert set(MODEL_COLORS) == set(MODELS)
    assert len(set(MODEL_COLORS.values())) == len(MODELS)
    labels = ["BBB", "Standard", "MC dropout", "Ensemble", "MAP"]
    assert [plots.model_label(k) for k in MODELS] == labels
    assert plots.model_label("other") == "other"


def test_house_layout(blundell):
    ds, preds = blundell
    fig = regression_figure(ds, preds)
    assert fig.layout.template.layout.paper_bgcolor == "white"  # plotly_white
    assert fig.layout.legend.orientation == "h" and fig.layout.legend.y >= 1.0
    assert fig.layout.xaxis.title.text == "input x" and fig.layout.yaxis.title.text == "target y"


# --- priors -------------------------------------------------------------------------------------


def _f64(x: float) -> torch.Tensor:
    return torch.tensor(x, dtype=torch.float64)


def _normal(std: float) -> torch.distributions.Normal:
    return torch.distributions.Normal(_f64(0.0), _f64(std))  # float64, like the figure


@pytest.mark.parametrize("log", [False, True])
def test_prior_density_matches_torch_distributions(log):
    mix = ScaleMixturePrior(0.25, 1.0, math.exp(-6))
    priors = {"Gaussian": GaussianPrior(0.5), "Laplace": LaplacePrior(0.3), "mixture": mix}
    fig = prior_density_figure(priors, w_max=2.0, log=log)
    assert [t.name for t in fig.data] == list(priors)
    assert_close(fig.data[0].x, plots._weight_axis(2.0), **F32)  # sent to the browser as float32
    w = torch.as_tensor(plots._weight_axis(2.0), dtype=torch.float64)
    assert w.min() == -2.0 and w.max() == 2.0 and bool((w == 0).any())
    oracles = [
        _normal(0.5).log_prob(w).exp(),
        torch.distributions.Laplace(_f64(0.0), _f64(0.3)).log_prob(w).exp(),
        0.25 * _normal(1.0).log_prob(w).exp() + 0.75 * _normal(math.exp(-6)).log_prob(w).exp(),
    ]
    for trace, density in zip(fig.data, oracles, strict=True):
        assert_close(trace.y, density.log() if log else density, rtol=1e-6, atol=1e-12)
    assert fig.layout.yaxis.title.text.startswith("log" if log else "density")


def test_prior_density_resolves_the_mixture_spike():
    """The narrow component (std e^-6 ~ 0.0025) is sampled finely enough to show its full height
    and its width: several points lie within one std of 0."""
    fig = prior_density_figure({"mixture": ScaleMixturePrior(0.25, 1.0, math.exp(-6))})
    w, y = np.asarray(fig.data[0].x), np.asarray(fig.data[0].y)
    peak = 0.25 / math.sqrt(2 * math.pi) + 0.75 / (math.sqrt(2 * math.pi) * math.exp(-6))
    assert y.max() == pytest.approx(peak, rel=1e-6)  # float32 in the figure
    assert np.sum(np.abs(w) < math.exp(-6)) >= 10


def test_prior_density_y_max_caps_the_axis():
    fig = prior_density_figure({"p": GaussianPrior(1.0)}, y_max=0.3)
    assert tuple(fig.layout.yaxis.range) == (0.0, 0.3)
    assert prior_density_figure({"p": GaussianPrior(1.0)}).layout.yaxis.range is None


# --- regression ---------------------------------------------------------------------------------


def test_regression_trace_names(blundell):
    ds, preds = blundell
    fig = regression_figure(ds, preds)
    assert [t.name for t in fig.data] == [
        "Standard noise 95 %",
        "BBB total 95 %",
        "BBB epistemic 95 %",
        "BBB sampled functions",
        "training data",
        "Standard mean",
        "BBB mean",
        "true function",
    ]
    assert all(isinstance(t, go.Scatter) for t in fig.data)


def test_regression_bands_are_mean_plus_minus_z_std(blundell):
    ds, preds = blundell
    bbb, n = preds["bbb"], ds.x_grid.shape[0]
    assert bool((bbb.aleatoric_var > 0).all())  # learned noise: both bands are drawn
    fig = regression_figure(ds, preds)
    for name, std in (("BBB total 95 %", bbb.total_std), ("BBB epistemic 95 %", bbb.epistemic_std)):
        trace = by_name(fig, name)
        assert trace.fill == "toself"
        assert_close(trace.x, np.concatenate([ds.x_grid[:, 0], ds.x_grid[:, 0].flip(0)]), **EXACT)
        lower, upper = split_band(trace, n)
        assert_close(lower, bbb.mean - Z95 * std, **F32)
        assert_close(upper, bbb.mean + Z95 * std, **F32)
    epi, tot = by_name(fig, "BBB epistemic 95 %"), by_name(fig, "BBB total 95 %")
    assert fig.data.index(epi) > fig.data.index(tot)  # the narrower band is drawn on top
    mean = by_name(fig, "BBB mean")
    assert_close(mean.y, bbb.mean, **F32)
    assert_close(mean.customdata[:, 1] - mean.customdata[:, 0], 2 * Z95 * bbb.total_std, **F32)


def test_regression_level_changes_band_and_names(blundell):
    ds, preds = blundell
    fig = regression_figure(ds, {"bbb": preds["bbb"]}, level=0.5)
    lower, upper = split_band(by_name(fig, "BBB total 50 %"), ds.x_grid.shape[0])
    z50 = NormalDist().inv_cdf(0.75)
    assert_close(upper - lower, 2 * z50 * preds["bbb"].total_std, **F32)


def test_regression_standard_shows_only_its_dotted_noise_band(blundell):
    ds, preds = blundell
    std = preds["standard"]
    fig = regression_figure(ds, {"standard": std})
    noise = by_name(fig, "Standard noise 95 %")
    assert noise.line.dash == "dot" and noise.fill is None
    upper, lower = segments(noise)
    assert_close(upper, std.mean + Z95 * std.aleatoric_std, **F32)
    assert_close(lower, std.mean - Z95 * std.aleatoric_std, **F32)
    assert not any(t.fill == "toself" for t in fig.data)
    zero = replace(std, aleatoric_var=torch.zeros_like(std.aleatoric_var))
    names = [t.name for t in regression_figure(ds, {"standard": zero}).data]
    assert "Standard noise 95 %" not in names and "Standard mean" in names


def test_regression_map_is_a_point_estimate_with_only_its_noise_band(blundell):
    ds, preds = blundell
    fig = regression_figure(ds, {"map": preds["standard"]})
    names = [t.name for t in fig.data]
    assert "MAP mean" in names and "MAP noise 95 %" in names
    assert by_name(fig, "MAP noise 95 %").line.dash == "dot"
    assert not any(t.fill == "toself" for t in fig.data)


def test_regression_draws_capped_and_switchable(blundell):
    ds, _ = blundell
    _, bbb = _untrained("blundell", "bbb", lambda d: d.x_grid, samples=20, draws=15)
    assert bbb.draws.shape[0] == 15
    fig = regression_figure(ds, {"bbb": bbb})
    lines = segments(by_name(fig, "BBB sampled functions"))
    assert len(lines) == 10
    for line, draw in zip(lines, bbb.draws[:10], strict=True):
        assert_close(line, draw, **F32)
    assert (
        len(
            segments(
                by_name(regression_figure(ds, {"bbb": bbb}, max_draws=3), "BBB sampled functions")
            )
        )
        == 3
    )
    names = [t.name for t in regression_figure(ds, {"bbb": bbb}, show_draws=False).data]
    assert "BBB sampled functions" not in names


def test_regression_data_and_truth(blundell):
    ds, preds = blundell
    fig = regression_figure(ds, preds)
    data = by_name(fig, "training data")
    assert data.mode == "markers"
    assert_close(data.x, ds.x_train[:, 0], **EXACT)
    assert_close(data.y, ds.y_train, **EXACT)
    truth = by_name(fig, "true function")
    assert truth.line.dash == "dash"
    assert_close(truth.y, ds.f_grid, **EXACT)
    names = [t.name for t in regression_figure(ds, preds, show_truth=False).data]
    assert "true function" not in names


def test_regression_shades_every_region_without_training_data(blundell):
    ds, preds = blundell
    x, in_range = ds.x_grid[:, 0].numpy(), ds.in_range.numpy()
    out = np.flatnonzero(~in_range)
    assert out.size and in_range.any()
    fig = regression_figure(ds, preds)
    rects = [s for s in fig.layout.shapes if s.type == "rect"]
    assert len(rects) == 2  # blundell: the data lie in [0, 0.5], the grid extends both ways
    spans = sorted((r.x0, r.x1) for r in rects)
    left, right = out[out < np.argmax(in_range)], out[out > np.argmax(in_range)]
    assert spans == [(x[left[0]], x[left[-1]]), (x[right[0]], x[right[-1]])]
    texts = [a.text for a in fig.layout.annotations]
    assert texts.count("no training data") == 2
    # all in range: nothing shaded
    full = replace(ds, in_range=torch.ones_like(ds.in_range))
    assert not regression_figure(full, preds).layout.shapes


def test_regression_y_axis_spans_the_data_not_wild_bands(blundell):
    ds, preds = blundell
    wild = replace(preds["bbb"], epistemic_var=torch.full_like(preds["bbb"].epistemic_var, 1e6))
    fig = regression_figure(ds, {"bbb": wild})
    y = torch.cat([ds.y_train, ds.f_grid]).double()
    span = float(y.max() - y.min())
    low, high = fig.layout.yaxis.range
    assert low == pytest.approx(float(y.min()) - 0.6 * span)
    assert high == pytest.approx(float(y.max()) + 0.6 * span)
    assert tuple(fig.layout.xaxis.range) == (float(ds.x_grid.min()), float(ds.x_grid.max()))


def test_regression_dropout_and_ensemble_bands_are_lighter(blundell):
    ds, preds = blundell
    bbb = preds["bbb"]
    fig = regression_figure(ds, {"bbb": bbb, "dropout": bbb, "ensemble": bbb})
    alpha = {}
    for kind, label in (("bbb", "BBB"), ("dropout", "MC dropout"), ("ensemble", "Ensemble")):
        band = by_name(fig, f"{label} total 95 %")
        assert rgb(MODEL_COLORS[kind]) in band.fillcolor
        alpha[kind] = float(band.fillcolor.rsplit(",", 1)[1].rstrip(")"))
        assert by_name(fig, f"{label} mean").line.color == MODEL_COLORS[kind]
    assert alpha["dropout"] < alpha["bbb"] and alpha["ensemble"] < alpha["bbb"]
    names = [t.name for t in fig.data]
    assert "MC dropout epistemic 95 %" not in names and "MC dropout sampled functions" not in names


def test_regression_without_noise_draws_no_epistemic_band(blundell):
    ds, preds = blundell
    bbb = preds["bbb"]
    no_noise = replace(bbb, aleatoric_var=torch.zeros_like(bbb.aleatoric_var))
    names = [t.name for t in regression_figure(ds, {"bbb": no_noise}).data]
    assert "BBB total 95 %" in names and "BBB epistemic 95 %" not in names


def test_regression_takes_tensors_that_require_grad(blundell):
    ds, preds = blundell
    p = preds["bbb"]
    grad = RegressionPredictive(*(t.clone().requires_grad_() for t in vars(p).values()))
    fig = regression_figure(ds, {"bbb": grad})
    assert_close(by_name(fig, "BBB mean").y, p.mean, **F32)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_regression_takes_cuda_tensors(blundell):
    ds, preds = blundell
    p = preds["bbb"]
    gpu = RegressionPredictive(*(t.cuda() for t in vars(p).values()))
    fig = regression_figure(ds, {"bbb": gpu})
    assert_close(by_name(fig, "BBB mean").y, p.mean, **F32)


# --- loss ---------------------------------------------------------------------------------------


def _history(nll: list[float], kl: list[float]) -> list[Progress]:
    return [
        Progress(step=i + 1, epoch=i + 1, nll=a, kl=b, elbo=-(a + b), loss=a + b, seconds=0.1 * i)
        for i, (a, b) in enumerate(zip(nll, kl, strict=True))
    ]


def test_loss_figure_three_panels_per_point():
    history = _history([100.0, 50.0, 20.0], [400.0, 300.0, 250.0])
    fig = loss_figure(history, n_train=200)
    assert [t.name for t in fig.data] == ["NLL", "KL", "−ELBO"]
    assert [t.yaxis for t in fig.data] == ["y", "y2", "y3"]
    assert fig.layout.xaxis.matches == "x3" or fig.layout.xaxis2.matches == "x3"  # shared x
    for trace, values in zip(
        fig.data, ([100, 50, 20], [400, 300, 250], [500, 350, 270]), strict=True
    ):
        assert_close(trace.x, [1, 2, 3], **EXACT)
        assert_close(trace.y, np.array(values) / 200, **F32)  # float32 in the figure
    for axis in (fig.layout.yaxis, fig.layout.yaxis2, fig.layout.yaxis3):
        assert axis.type == "log" and "nats / point" in axis.title.text
    assert list(fig.layout.yaxis2.tickvals) == [1.0, 2.0, 5.0]  # KL: 2 .. 1.25 per point
    assert list(fig.layout.yaxis2.ticktext) == ["1", "2", "5"]
    assert fig.layout.xaxis3.title.text == "epoch"


def test_loss_figure_sums_and_linear_axes():
    history = _history([-30.0, -60.0], [0.0, 0.0])  # regression NLL < 0; a baseline's KL = 0
    fig = loss_figure(history)
    assert_close(fig.data[0].y, [-30.0, -60.0], **EXACT)
    assert fig.layout.yaxis.type == "linear" and fig.layout.yaxis2.type == "linear"
    assert fig.layout.yaxis.title.text == "NLL (nats)"


def test_loss_figure_empty_history():
    fig = loss_figure([], n_train=10)
    assert len(fig.data) == 3 and all(len(t.x) == 0 for t in fig.data)


# --- 2-D classification -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("quantity", "attr", "zmax"),
    [
        ("probability", None, 1.0),
        ("entropy", "entropy", math.log(2)),
        ("mutual_info", "mutual_info", None),
    ],
)
def test_classification_heatmap(moons, quantity, attr, zmax):
    ds, preds = moons
    pred = preds["bbb"]
    fig = classification_figure(ds, pred, quantity)
    heat = fig.data[0]
    assert isinstance(heat, go.Heatmap) and sum(isinstance(t, go.Heatmap) for t in fig.data) == 1
    z = np.asarray(heat.z)
    assert z.shape == (60, 60)
    values = pred.probs[:, 1] if attr is None else getattr(pred, attr)
    if zmax is None:  # untrained: tiny MI, so the floor ln 2 / 2 applies
        assert float(values.max()) < math.log(2) / 2
        zmax = math.log(2) / 2
    assert (heat.zmin, heat.zmax) == (0.0, pytest.approx(zmax, rel=1e-15))
    xs, ys = ds.grid_axes
    for i, j in ((0, 0), (5, 40), (59, 7), (59, 59)):  # z[i, j] is the grid point (xs[j], ys[i])
        k = int(((ds.x_grid - torch.stack([xs[j], ys[i]])) ** 2).sum(1).argmin())
        assert z[i, j] == pytest.approx(float(values[k]), rel=1e-6)
    assert fig.layout.yaxis.scaleanchor == "x" and fig.layout.yaxis.scaleratio == 1


def test_classification_probability_scale_is_diverging():
    scale = plots.PROBABILITY_SCALE
    assert scale[0][0] == 0.0 and scale[-1][0] == 1.0
    assert scale[5][1] == "rgb(247,247,247)"  # white at P = 0.5


def test_classification_overlays_points_and_far_ring(moons):
    ds, preds = moons
    fig = classification_figure(ds, preds["bbb"], "probability", title="BBB")
    assert fig.layout.title.text == "BBB"
    for c in (0, 1):
        pts = by_name(fig, f"class {c}")
        assert_close(pts.x, ds.x_train[ds.y_train == c, 0], **EXACT)
        assert_close(pts.y, ds.x_train[ds.y_train == c, 1], **EXACT)
    far = by_name(fig, "far OOD inputs")
    ring = ds.ood["far"]  # drawn evenly thinned: every 4th of the 500 (FAR_SHOWN 125)
    assert far.marker.symbol == "x" and len(far.x) == plots.FAR_SHOWN == ring.shape[0] // 4
    assert_close(far.x, ring[::4, 0], **EXACT)
    assert_close(far.y, ring[::4, 1], **EXACT)
    assert "grey" in far.marker.color or far.marker.color.startswith("rgba(90,90,90")


def test_classification_mutual_info_range_grows_with_the_data(moons):
    ds, preds = moons
    p = preds["bbb"]
    mi = torch.zeros_like(p.mutual_info)
    mi[17] = 0.6  # above ln 2 / 2 ~ 0.347
    fig = classification_figure(ds, replace(p, mutual_info=mi), "mutual_info")
    assert fig.data[0].zmax == pytest.approx(0.6, rel=1e-6)


def test_classification_rejects_unknown_quantity(moons):
    ds, preds = moons
    with pytest.raises(ValueError, match="quantity must be one of"):
        classification_figure(ds, preds["bbb"], "variance")


def test_classification_grid_shares_one_colour_bar(moons):
    ds, preds = moons
    fig = classification_grid_figure(ds, preds, "entropy")
    heats = [t for t in fig.data if isinstance(t, go.Heatmap)]
    assert len(heats) == 2 and all(h.coloraxis == "coloraxis" for h in heats)
    assert [h.xaxis for h in heats] == ["x", "x2"]
    assert (fig.layout.coloraxis.cmin, fig.layout.coloraxis.cmax) == (
        0.0,
        pytest.approx(math.log(2)),
    )
    assert_close(np.asarray(heats[1].z).ravel(), preds["standard"].entropy, **F32)
    assert [a.text for a in fig.layout.annotations] == ["BBB", "Standard"]
    shown = [
        t.name for t in fig.data if t.showlegend is not False and not isinstance(t, go.Heatmap)
    ]
    assert shown == ["class 0", "class 1", "far OOD inputs"]  # each once, not per panel
    assert fig.layout.yaxis2.scaleanchor == "x2"


def test_classification_grid_mutual_info_range_is_shared(moons):
    ds, preds = moons
    big = replace(
        preds["standard"], mutual_info=torch.full_like(preds["standard"].mutual_info, 0.5)
    )
    fig = classification_grid_figure(ds, {"bbb": preds["bbb"], "standard": big}, "mutual_info")
    assert fig.layout.coloraxis.cmax == pytest.approx(0.5)


# --- metrics table ------------------------------------------------------------------------------


def test_metrics_frame_rows_columns_and_nan():
    metrics = {
        "bbb": {"ood_auroc_mi": 0.9, "accuracy": 0.95, "nll": 0.2, "ece": 0.03},
        "standard": {"accuracy": 0.97, "nll": 0.1, "ece": 0.05, "custom": 1.5},
    }
    frame = metrics_frame(metrics)
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.index) == ["bbb", "standard"]
    assert list(frame.columns) == ["NLL", "accuracy", "ECE", "OOD AUROC (MI)", "custom"]
    assert frame.loc["bbb", "OOD AUROC (MI)"] == 0.9 and frame.loc["standard", "accuracy"] == 0.97
    assert math.isnan(frame.loc["standard", "OOD AUROC (MI)"]) and math.isnan(
        frame.loc["bbb", "custom"]
    )


def test_metrics_frame_every_known_header():
    keys = [
        "ood_auroc_entropy",
        "rmse",
        "brier",
        "coverage_95",
        "mean_std_out_of_range",
        "mean_std_in_range",
        "ood_auroc_mi",
    ]
    frame = metrics_frame({"bbb": {k: float(i) for i, k in enumerate(keys)}})
    assert list(frame.columns) == [
        "RMSE",
        "95 % coverage",
        "mean std in range",
        "mean std out of range",
        "Brier",
        "OOD AUROC (entropy)",
        "OOD AUROC (MI)",
    ]
    assert frame.loc["bbb", "RMSE"] == 1.0 and frame.loc["bbb", "OOD AUROC (entropy)"] == 0.0
    assert metrics_frame({}).empty


# --- reliability and histograms -----------------------------------------------------------------


def test_reliability_bars_skip_empty_bins():
    probs = torch.tensor([[0.55, 0.45], [0.58, 0.42], [0.95, 0.05], [0.15, 0.85], [0.9, 0.1]])
    y = torch.tensor([0, 1, 0, 1, 1])
    rel = reliability(probs, y, n_bins=10)
    assert np.isnan(rel.accuracy).sum() == 7  # bins (0.5, 0.6], (0.8, 0.9], (0.9, 1] hold points
    fig = reliability_figure({"bbb": rel, "standard": rel})
    bars = [t for t in fig.data if isinstance(t, go.Bar)]
    assert [b.name for b in bars] == ["BBB", "Standard"]
    assert bars[0].marker.line.color == MODEL_COLORS["bbb"]
    assert bars[1].marker.line.color == MODEL_COLORS["standard"]
    assert_close(bars[0].x, [0.55, 0.85, 0.95], rtol=0, atol=1e-12)
    assert_close(bars[0].width, [0.1, 0.1, 0.1], rtol=0, atol=1e-12)
    assert_close(bars[0].y, [0.5, 0.5, 1.0], **EXACT)
    assert_close(bars[0].customdata[:, 3], [2, 2, 1], **EXACT)  # counts, shown in the hover
    assert "points" in bars[0].hovertemplate
    diag = by_name(fig, "perfect calibration")
    assert list(diag.x) == [0, 1] and list(diag.y) == [0, 1]
    assert fig.layout.barmode == "overlay"


def test_uncertainty_histogram_is_a_density_on_shared_bins():
    g = torch.Generator().manual_seed(0)
    test = torch.rand(300, generator=g) * 0.5
    ood = {"gaussian_noise": torch.rand(200, generator=g) + 0.3, "letters": torch.full((50,), 0.9)}
    ood["letters"][0] = float("nan")
    fig = uncertainty_histogram(test, ood, "Entropy", "entropy (nats)", n_bins=20)
    assert [t.name for t in fig.data] == ["test set", "gaussian noise", "letters"]
    assert all(isinstance(t, go.Bar) for t in fig.data)
    for trace in fig.data:
        assert_close(trace.x, fig.data[0].x, **EXACT)
        assert len(trace.x) == 20
        assert float(np.sum(np.asarray(trace.y) * np.asarray(trace.width))) == pytest.approx(1.0)
    assert "n = 49" in fig.data[2].hovertemplate  # the NaN was dropped
    assert fig.layout.xaxis.title.text == "entropy (nats)"
    assert fig.layout.yaxis.title.text == "probability density"
    assert fig.layout.title.text == "Entropy" and fig.layout.barmode == "overlay"


def test_uncertainty_histogram_constant_scores():
    fig = uncertainty_histogram(torch.zeros(10), {"far": torch.zeros(5)}, "MI", "MI (nats)")
    assert all(np.isfinite(np.asarray(t.y)).all() for t in fig.data)


# --- images -------------------------------------------------------------------------------------


def _gallery_inputs(k: int = 3, c: int = 10):
    g = torch.Generator().manual_seed(0)
    images = torch.randn(k, 1, 8, 6, generator=g) * 3 + 1  # any range
    probs = torch.softmax(torch.randn(k, c, generator=g), -1).requires_grad_()
    probs_std = 0.1 * torch.rand(k, c, generator=g)
    return images, probs, probs_std, torch.tensor([3, 0, 9])


def test_image_gallery_one_image_and_one_bar_chart_per_column():
    images, probs, probs_std, labels = _gallery_inputs()
    fig = image_gallery_figure(images, probs, probs_std, labels, ["a", "b", "c"], kind="dropout")
    heats = [t for t in fig.data if isinstance(t, go.Heatmap)]
    bars = [t for t in fig.data if isinstance(t, go.Bar)]
    assert len(heats) == 3 and len(bars) == 3 and len(fig.data) == 6
    for j in range(3):
        assert_close(bars[j].y, probs[j].detach(), **F32)
        assert bars[j].error_y.visible and bars[j].error_y.type == "data"
        assert_close(bars[j].error_y.array, probs_std[j], **F32)
        colors = list(bars[j].marker.color)
        assert colors[int(labels[j])] == MODEL_COLORS["dropout"]
        assert sum(col == MODEL_COLORS["dropout"] for col in colors) == 1
        img = images[j, 0].double()
        assert_close(heats[j].z, (img - img.min()) / (img.max() - img.min()), rtol=1e-6, atol=1e-6)
        assert heats[j].showscale is False
    assert [a.text for a in fig.layout.annotations][:3] == ["a", "b", "c"]
    for j in range(1, 4):  # image rows: y reversed, no axes, square pixels
        yaxis = fig.layout[f"yaxis{'' if j == 1 else j}"]
        assert yaxis.autorange == "reversed" and yaxis.visible is False


def test_image_gallery_without_labels_and_bad_titles():
    images, probs, probs_std, _ = _gallery_inputs()
    fig = image_gallery_figure(images, probs, probs_std, None, ["a", "b", "c"])
    bars = [t for t in fig.data if isinstance(t, go.Bar)]
    assert all(MODEL_COLORS["bbb"] not in list(b.marker.color) for b in bars)
    with pytest.raises(ValueError, match="titles"):
        image_gallery_figure(images, probs, probs_std, None, ["a"])


def test_image_gallery_constant_image_and_class_names():
    images, probs, probs_std, labels = _gallery_inputs()
    images[1] = 7.0
    names = [f"c{i}" for i in range(10)]
    fig = image_gallery_figure(images, probs, probs_std, labels, ["a", "b", "c"], class_names=names)
    heats = [t for t in fig.data if isinstance(t, go.Heatmap)]
    assert np.all(np.asarray(heats[1].z) == 0.0)
    assert list(fig.layout.xaxis4.ticktext) == names


def test_rotation_figure_top_classes_and_bands():
    angles = torch.arange(0.0, 181.0, 20.0)  # (10,)
    a, c = angles.shape[0], 10
    mean = torch.full((a, c), 0.02)
    mean[:, 7] = torch.linspace(0.9, 0.1, a)
    mean[:, 1] = torch.linspace(0.02, 0.7, a)
    mean[3, 4] = 0.5
    std = torch.full((a, c), 0.3)
    other = mean.flip(0)  # the same classes peak, at other angles
    fig = rotation_figure(angles, {"bbb": (mean, std), "standard": (other, 0.5 * std)})
    lines = [t for t in fig.data if t.fill is None]
    assert [t.name for t in lines[:3]] == ["class 1", "class 4", "class 7"]  # ascending
    assert len(fig.data) == 2 * 2 * 3  # 2 models x 3 classes x (band + line)
    assert [t.showlegend for t in lines] == [True] * 3 + [False] * 3
    assert_close(lines[2].x, angles, **EXACT)
    assert_close(lines[2].y, mean[:, 7], **F32)
    lower, upper = split_band(fig.data[4], a)  # the band drawn just before class 7's line
    assert_close(lower, (mean[:, 7] - 0.3).clamp(0, 1), **F32)
    assert_close(upper, (mean[:, 7] + 0.3).clamp(0, 1), **F32)
    assert [t.xaxis for t in lines] == ["x"] * 3 + ["x2"] * 3
    assert [an.text for an in fig.layout.annotations] == ["BBB", "Standard"]
    assert fig.layout.xaxis.title.text == "rotation angle (degrees)"


def test_rotation_figure_explicit_classes():
    angles = torch.arange(0.0, 91.0, 30.0)
    mean = torch.softmax(torch.randn(4, 10), -1)
    fig = rotation_figure(angles, {"bbb": (mean, torch.zeros(4, 10))}, classes=[2, 5])
    assert [t.name for t in fig.data if t.fill is None] == ["class 2", "class 5"]


def test_pruning_figure_in_percent():
    fractions = torch.tensor([0.0, 0.5, 0.9, 0.98])
    errors = {
        "signal-to-noise |mu|/sigma": torch.tensor([0.02, 0.02, 0.021, 0.03]),
        "magnitude |mu|": torch.tensor([0.02, 0.03, 0.1, 0.6]),
    }
    fig = pruning_figure(fractions, errors)
    assert [t.name for t in fig.data] == list(errors)
    assert_close(fig.data[0].x, [0.0, 50.0, 90.0, 98.0], rtol=1e-6, atol=1e-6)
    assert_close(fig.data[1].y, [2.0, 3.0, 10.0, 60.0], rtol=1e-6, atol=1e-6)
    assert fig.data[0].line.color != fig.data[1].line.color
    assert fig.layout.xaxis.title.text == "weights removed (%)"
    assert fig.layout.yaxis.title.text == "test error (%)"


# --- every figure serialises and stays light ----------------------------------------------------


def test_figures_serialise_and_stay_light(blundell, moons):
    ds, preds = blundell
    cds, cpreds = moons
    figures = [
        regression_figure(ds, preds),
        loss_figure(_history([1.0], [2.0])),
        classification_grid_figure(cds, cpreds, "probability"),
        prior_density_figure({"p": GaussianPrior(1.0)}),
    ]
    for fig in figures:
        assert isinstance(fig, go.Figure)
        assert len(fig.data) < 20
        assert len(fig.to_json()) < 2_000_000


def _plain(fig: go.Figure) -> dict:
    """`fig` as the browser receives it (JSON decoded)."""
    return json.loads(plotly.io.to_json(fig, validate=False))


def test_assembled_figures_equal_plotlys_validated_form(blundell, moons):
    """The live figures skip plotly's property-by-property validation: each must already be
    what plotly's validation makes of it (every property known, no `title_text` shorthand left
    unexpanded, axes, shapes and subplot titles where plotly puts them)."""
    ds, preds = blundell
    cds, cpreds = moons
    figures = [
        regression_figure(ds, preds),
        loss_figure(_history([1.0, 0.5], [2.0, 1.0])),
        loss_figure(_history([1.0, -0.5], [2.0, 1.0])),
        classification_figure(cds, cpreds["bbb"], "entropy"),
        classification_grid_figure(cds, cpreds, "probability"),
        prior_density_figure({"p": GaussianPrior(1.0), "q": LaplacePrior(0.5)}, log=True, y_max=2),
    ]
    for fig in figures:
        validated = go.Figure(fig.to_dict())  # raises on an unknown property
        assert _plain(fig) == _plain(validated)


def test_regression_shading_is_plotlys_vrect(blundell):
    """The spans without training data are the shape and note plotly's `add_vrect` makes."""
    ds, preds = blundell
    fig = regression_figure(ds, preds)
    shape, note = fig.layout.shapes[0], fig.layout.annotations[0]
    same = go.Figure().add_vrect(
        x0=shape.x0,
        x1=shape.x1,
        fillcolor="lightgrey",
        opacity=0.3,
        layer="below",
        line_width=0,
        annotation_text="no training data",
        annotation_position="top",
        annotation_font=dict(size=11, color="#666666"),
    )
    assert shape.to_plotly_json() == same.layout.shapes[0].to_plotly_json()
    assert note.to_plotly_json() == same.layout.annotations[0].to_plotly_json()


def test_subplot_axes_are_make_subplots_axes(moons):
    """The grid figure's axes and subplot titles are those `make_subplots` lays out, and its
    cached layout is never changed by a figure built from it."""
    from plotly.subplots import make_subplots

    cds, cpreds = moons
    fig = classification_grid_figure(cds, cpreds, "probability")
    made = make_subplots(
        rows=1, cols=2, subplot_titles=["BBB", "Standard"], horizontal_spacing=0.03
    )
    for key in ("xaxis", "xaxis2", "yaxis", "yaxis2"):
        assert fig.layout[key].domain == made.layout[key].domain
        assert fig.layout[key].anchor == made.layout[key].anchor
    assert [a.text for a in fig.layout.annotations] == ["BBB", "Standard"]
    assert [(t.xaxis, t.yaxis) for t in fig.data if t.type == "heatmap"] == [
        ("x", "y"),
        ("x2", "y2"),
    ]
    fig.layout.xaxis.title.text = "changed"
    again = classification_grid_figure(cds, cpreds, "probability")
    assert again.layout.xaxis.title.text == "x₁ (standardised)"
