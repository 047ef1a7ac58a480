"""The weight figures (`bbb_core.weight_plots`): traces, their data and the layout, without a
browser. Untrained tiny networks give the inputs; every figure is pure data -> figure."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import plotly.graph_objects as go
import pytest
import torch
from conftest import assert_close

from bbb_core import build_model, default_config, make_dataset, predictive
from bbb_core.plots import pruning_figure
from bbb_core.priors import GaussianPrior, LaplacePrior, ScaleMixturePrior
from bbb_core.weight_plots import (
    HIST_BINS,
    estimate_label,
    estimates_figure,
    estimates_map_figure,
    priors_figure,
    sigma_histogram_figure,
    snr_scatter_figure,
    weight_histogram_figure,
)
from bbb_core.weights import prior_density


def _preds(name: str):
    cfg = default_config(name)
    ds = make_dataset(replace(cfg.data, n_train=30), 0)
    preds = {}
    for kind in ("standard", "map", "bbb"):
        model = build_model(replace(cfg.model, kind=kind, hidden=(8,)), cfg.prior, ds)
        preds[kind] = predictive(model, ds.x_grid, 1 if kind != "bbb" else 8, rng=0)
    return ds, preds


def _names(fig: go.Figure) -> list[str]:
    return [t.name for t in fig.data]


def test_estimate_labels_name_the_standard_network_mle():
    assert [estimate_label(k) for k in ("standard", "map", "bbb")] == ["MLE", "MAP", "BBB"]


def test_estimates_figure_overlays_three_means_and_bbbs_band():
    ds, preds = _preds("blundell")
    fig = estimates_figure(ds, preds)
    assert _names(fig) == ["BBB 95 % band", "training data", "true function", "MLE", "MAP", "BBB"]
    g = ds.x_grid.shape[0]
    band = fig.data[0]
    assert band.fill == "toself" and len(band.y) == 2 * g
    lo, hi = preds["bbb"].interval(0.95)
    assert_close(band.y[:g], hi, rtol=1e-6, atol=1e-6)
    assert_close(band.y[g:][::-1].copy(), lo, rtol=1e-6, atol=1e-6)
    for kind, label in (("standard", "MLE"), ("map", "MAP"), ("bbb", "BBB")):
        trace = next(t for t in fig.data if t.name == label)
        assert_close(trace.y, preds[kind].mean, rtol=1e-6, atol=1e-6)
    assert fig.layout.xaxis.title.text == "input x"


def test_estimates_map_figure_titles_the_panels_mle_map_bbb():
    ds, preds = _preds("moons")
    fig = estimates_map_figure(ds, {"bbb": preds["bbb"], "map": preds["map"], **preds})
    assert [a.text for a in fig.layout.annotations] == ["MLE", "MAP", "BBB"]
    heatmaps = [t for t in fig.data if isinstance(t, go.Heatmap)]
    assert len(heatmaps) == 3
    assert_close(
        np.asarray(heatmaps[0].z).ravel(), preds["standard"].probs[:, 1], rtol=0, atol=1e-6
    )


def test_weight_histogram_is_a_density_per_model_with_the_prior_drawn_over_each():
    g = torch.Generator().manual_seed(0)
    weights = {
        "MLE": torch.randn(500, generator=g),
        "MAP": torch.zeros(400),
        "BBB means μ": 0.3 * torch.randn(500, generator=g),
    }
    prior = prior_density(GaussianPrior(1.0), 3.0)
    fig = weight_histogram_figure(weights, prior, "prior p(w): Gaussian", w_max=2.0)
    bars = [t for t in fig.data if isinstance(t, go.Bar)]
    lines = [t for t in fig.data if isinstance(t, go.Scatter)]
    assert [b.name for b in bars] == list(weights) and len(bars[0].x) == HIST_BINS
    width = 4.0 / HIST_BINS
    for bar in bars:  # every weight is counted (the outermost bins take those beyond w_max)
        assert float(np.sum(bar.y) * width) == pytest.approx(1.0)
    assert float(np.max(bars[1].y)) == pytest.approx(1.0 / width)  # all MAP weights in one bin
    assert len(lines) == 3 and [ln.showlegend for ln in lines] == [True, False, False]
    assert max(abs(float(x)) for x in lines[0].x) <= 2.0
    assert [a.text for a in fig.layout.annotations] == list(weights)
    assert fig.layout.xaxis3.title.text == "weight w"
    assert tuple(fig.layout.yaxis2.range) == pytest.approx((0.0, 1.1 / width))


def test_sigma_histogram_counts_every_weight_on_a_log_axis():
    sigma = torch.tensor([1e-3, 1e-3, 0.01, 0.1, 0.1, 0.1, 1.0])
    fig = sigma_histogram_figure(sigma, sigma0=0.018)
    assert fig.layout.xaxis.type == "log"
    assert int(np.sum(fig.data[0].y)) == 7
    assert any(s.x0 == 0.018 for s in fig.layout.shapes)


def test_snr_scatter_plots_abs_mu_against_sigma_with_the_unit_line():
    mu = torch.tensor([-0.5, 0.01, 2.0])
    sigma = torch.tensor([0.1, 0.2, 0.05])
    fig = snr_scatter_figure(mu, sigma)
    assert _names(fig) == ["weights", "|μ| = σ"]
    assert_close(fig.data[0].x, [0.5, 0.01, 2.0], rtol=1e-6, atol=0)
    assert_close(fig.data[0].y, [0.1, 0.2, 0.05], rtol=1e-6, atol=0)
    assert list(fig.data[1].x) == list(fig.data[1].y)
    assert fig.layout.xaxis.type == "log" and fig.layout.yaxis.type == "log"


@pytest.mark.parametrize(
    "metric, scale, title", [("error", 100, "test error (%)"), ("rmse", 1, "test RMSE")]
)
def test_pruning_curves_figure(metric, scale, title):
    fractions = [0.0, 0.5, 0.9]
    curves = {
        "BBB by |μ|/σ": torch.tensor([0.1, 0.1, 0.2]),
        "MAP by |w|": torch.tensor([0.1, 0.3, 0.5]),
    }
    fig = pruning_figure(fractions, curves, metric=metric)
    assert _names(fig) == list(curves)
    assert list(fig.data[0].x) == [0.0, 50.0, 90.0]
    assert_close(fig.data[1].y, [0.1 * scale, 0.3 * scale, 0.5 * scale], rtol=1e-6, atol=0)
    assert fig.layout.yaxis.title.text == title


def test_priors_figure_draws_density_and_penalty_with_the_active_prior_bold():
    priors = {
        "Gaussian σ = 1": GaussianPrior(1.0),
        "Laplace b = 1": LaplacePrior(1.0),
        "mixture": ScaleMixturePrior(0.25, 1.0, math.exp(-6)),
    }
    fig = priors_figure(priors, active="Laplace b = 1", w_max=3.0)
    assert len(fig.data) == 6 and [t.showlegend for t in fig.data].count(True) == 3
    laplace_density, laplace_penalty = fig.data[2], fig.data[3]
    assert laplace_density.line.width == 3 and fig.data[0].line.width < 3
    w = np.asarray(laplace_penalty.x)
    assert_close(laplace_penalty.y, np.abs(w) / 1.0, rtol=1e-9, atol=1e-9)  # L1: |w| / b
    gaussian_penalty = np.asarray(fig.data[1].y)
    assert_close(gaussian_penalty, np.asarray(fig.data[1].x) ** 2 / 2, rtol=1e-9, atol=1e-9)  # L2
    # the density axis stops at 1.3 x the median peak: the mixture's spike rises off the chart
    top = fig.layout.yaxis.range[1]
    assert top == pytest.approx(1.3 * 0.5)  # peaks: 0.399 (Gaussian), 0.5 (Laplace), ~121
    assert float(np.max(fig.data[4].y)) > 100 * top
