"""Figures of the weights: maximum likelihood, MAP and Bayes by Backprop, and their priors.

Pure functions from arrays, predictives and priors to plotly figures, in the house style of
`plots` (no streamlit, no `fig.show()`); the tests read their traces and layout.

- `estimates_figure`: regression, the three estimates' predictions overlaid (BBB with its band).
- `estimates_map_figure`: 2-D classification, P(class 1) of the three estimates side by side.
- `weight_histogram_figure`: a histogram of each model's weights (MLE, MAP, BBB's posterior
  means) in stacked panels sharing the weight axis, with the prior's density drawn over each.
- `sigma_histogram_figure`: BBB's posterior stds, on a log axis.
- `snr_scatter_figure`: |mu| against sigma for every BBB weight, with the line |mu| = sigma.
- `priors_figure`: the densities of the Gaussian, Laplace and scale-mixture priors at the current
  settings, the one in use drawn bold.

Weights as in Blundell et al., "Weight Uncertainty in Neural Networks", ICML 2015 (Figure 3: the
histogram of weights; section 5.1: pruning by signal-to-noise ratio).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .data.base import Dataset
from .plots import (
    SERIES_COLORS,
    _band,
    _np,
    _style,
    classification_grid_figure,
    model_color,
    training_points,
    true_function,
)
from .predict import ClassificationPredictive, RegressionPredictive
from .priors import Prior
from .weights import prior_density

ESTIMATE_LABELS = {"standard": "MLE", "map": "MAP", "bbb": "BBB"}
ESTIMATE_ORDER = ("standard", "map", "bbb")
PRIOR_COLOR = "#000000"
HIST_BINS = 81  # bins over the shared weight axis


def estimate_label(kind: str) -> str:
    return ESTIMATE_LABELS.get(kind, kind)


def _ordered(preds: Mapping[str, object]) -> list[str]:
    return [k for k in ESTIMATE_ORDER if k in preds] + [k for k in preds if k not in ESTIMATE_ORDER]


def estimates_figure(
    dataset: Dataset,
    preds: Mapping[str, RegressionPredictive],
    level: float = 0.95,
    title: str = "Three estimates of one network",
) -> go.Figure:
    """Regression: the training data, the true function, BBB's central `level` band and each
    model's predictive mean (keys: "standard" = MLE, "map", "bbb")."""
    x = _np(dataset.x_grid)[:, 0]
    fig = go.Figure()
    if "bbb" in preds:
        lo, hi = (_np(t) for t in preds["bbb"].interval(level))
        fig.add_trace(_band(x, lo, hi, f"BBB {100 * level:g} % band", model_color("bbb"), 0.2))
    fig.add_trace(training_points(dataset))
    if dataset.f_grid is not None:
        fig.add_trace(true_function(dataset, width=1.5))
    for i, kind in enumerate(_ordered(preds)):
        label = estimate_label(kind)
        fig.add_trace(
            go.Scatter(
                x=x,
                y=_np(preds[kind].mean),
                mode="lines",
                name=label,
                line=dict(color=model_color(kind, i), width=3 if kind == "bbb" else 2.5),
                hovertemplate="x = %{x:.3f}<br>mean = %{y:.3f}<extra>" + label + "</extra>",
            )
        )
    _style(fig, title, "input x", "target y", height=440)
    y = _np(dataset.y_train)
    span = max(float(y.max() - y.min()), 1e-6)
    fig.update_yaxes(range=[y.min() - 0.6 * span, y.max() + 0.6 * span])
    fig.update_xaxes(range=[x.min(), x.max()])
    return fig


def estimates_map_figure(
    dataset: Dataset, preds: Mapping[str, ClassificationPredictive], title: str = ""
) -> go.Figure:
    """2-D classification: P(class 1) of each estimate side by side, one colour bar."""
    ordered = {k: preds[k] for k in _ordered(preds)}
    fig = classification_grid_figure(dataset, ordered, "probability", title=title)
    for annotation, kind in zip(fig.layout.annotations, ordered, strict=False):
        annotation.text = estimate_label(kind)
    return fig


def _weight_range(weights: Mapping[str, object], quantile: float = 0.995) -> float:
    """Half-width of the weight axis: the `quantile` of |w| over all models (at least 0.05)."""
    all_w = np.concatenate([np.abs(_np(w)) for w in weights.values()] or [np.zeros(1)])
    return max(float(np.quantile(all_w, quantile)) * 1.1, 0.05)


def weight_histogram_figure(
    weights: Mapping[str, object],
    prior: tuple[np.ndarray, np.ndarray] | None = None,
    prior_name: str = "prior p(w)",
    w_max: float | None = None,
    title: str = "The weights: one value each, or a distribution's mean",
) -> go.Figure:
    """A density histogram per model (stacked panels sharing x; keys are panel titles, e.g.
    "MLE", "MAP", "BBB means") over [-w_max, w_max], with the prior's density `prior` = (w, p)
    drawn over each panel. Weights outside the range are counted in the outermost bins."""
    names = list(weights)
    w_max = w_max or _weight_range(weights)
    edges = np.linspace(-w_max, w_max, HIST_BINS + 1)
    centres, width = 0.5 * (edges[1:] + edges[:-1]), edges[1] - edges[0]
    fig = make_subplots(
        rows=len(names), cols=1, shared_xaxes=True, subplot_titles=names, vertical_spacing=0.07
    )
    for row, name in enumerate(names, start=1):
        w = np.clip(_np(weights[name]), -w_max, w_max)
        counts, _ = np.histogram(w, bins=edges)
        density = counts / max(w.size, 1) / width
        kind = {v: k for k, v in ESTIMATE_LABELS.items()}.get(name.split()[0], "")
        fig.add_trace(
            go.Bar(
                x=centres,
                y=density,
                width=width,
                name=name,
                marker_color=model_color(kind, row - 1),
                showlegend=False,
                hovertemplate="w ≈ %{x:.3f}<br>density %{y:.3g}<extra>" + name + "</extra>",
            ),
            row=row,
            col=1,
        )
        if prior is not None:
            pw, pp = prior
            keep = np.abs(pw) <= w_max
            fig.add_trace(
                go.Scatter(
                    x=pw[keep],
                    y=pp[keep],
                    mode="lines",
                    name=prior_name,
                    legendgroup="prior",
                    showlegend=row == 1,
                    line=dict(color=PRIOR_COLOR, width=2),
                    hoverinfo="skip",
                ),
                row=row,
                col=1,
            )
        top = float(density.max()) if density.size else 1.0
        fig.update_yaxes(title_text="density", range=[0, 1.1 * max(top, 1e-9)], row=row, col=1)
    _style(fig, title, height=170 * len(names) + 130, above_px=26, bargap=0)
    fig.update_xaxes(title_text="weight w", range=[-w_max, w_max], row=len(names), col=1)
    return fig


def sigma_histogram_figure(
    sigma, sigma0: float | None = None, title: str = "BBB: how unsure is each weight?"
) -> go.Figure:
    """A histogram of BBB's posterior stds on a log axis; `sigma0` (the initial std) marked."""
    log_s = np.log10(np.clip(_np(sigma), 1e-12, None))
    edges = np.linspace(log_s.min() - 0.05, log_s.max() + 0.05, 41)
    counts, _ = np.histogram(log_s, bins=edges)
    centres = 10 ** (0.5 * (edges[1:] + edges[:-1]))
    fig = go.Figure(
        go.Bar(
            x=centres,
            y=counts,
            width=np.diff(10**edges),
            name="posterior σ",
            marker_color=model_color("bbb"),
            hovertemplate="σ ≈ %{x:.3g}<br>%{y} weights<extra></extra>",
        )
    )
    if sigma0 is not None:
        fig.add_vline(
            x=sigma0,
            line=dict(color="#666666", dash="dot"),
            annotation_text="σ at the start",
            annotation_position="top right",
        )
    _style(fig, title, "posterior std σ (log scale)", "weights", height=340, bargap=0)
    fig.update_xaxes(type="log")
    fig.update_layout(showlegend=False)
    return fig


def snr_scatter_figure(mu, sigma, title: str = "BBB: signal |μ| against noise σ") -> go.Figure:
    """|mu| against sigma for every weight (log axes), the line |mu| = sigma (signal-to-noise
    1) drawn: weights far below it are the ones pruning by |mu| / sigma removes first."""
    m = np.clip(np.abs(_np(mu)), 1e-8, None)
    s = np.clip(_np(sigma), 1e-8, None)
    lo = float(min(m.min(), s.min()))
    hi = float(max(m.max(), s.max()))
    fig = go.Figure(
        [
            go.Scatter(
                x=m,
                y=s,
                mode="markers",
                name="weights",
                marker=dict(color=model_color("bbb"), size=4, opacity=0.5),
                hovertemplate="|μ| = %{x:.3g}<br>σ = %{y:.3g}<extra></extra>",
            ),
            go.Scatter(
                x=[lo, hi],
                y=[lo, hi],
                mode="lines",
                name="|μ| = σ",
                line=dict(color="#666666", dash="dash"),
                hoverinfo="skip",
            ),
        ]
    )
    _style(fig, title, "|μ| (log scale)", "σ (log scale)", height=340)
    fig.update_xaxes(type="log")
    fig.update_yaxes(type="log")
    return fig


def priors_figure(
    priors: Mapping[str, Prior],
    active: str | None = None,
    w_max: float = 3.0,
    title: str = "The priors at the current settings",
) -> go.Figure:
    """Two panels over [-w_max, w_max]: each named prior's density p(w), and -log p(w) shifted
    to 0 at w = 0, the penalty MAP adds per weight (a parabola for the Gaussian: L2; a V for the
    Laplace: L1). `active` is drawn bold, the others thin and dashed. The density panel's y axis
    stops at 1.3 times the median of the priors' peaks, so a scale mixture's narrow spike rises
    off the chart instead of flattening the rest."""
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=["density p(w)", "penalty −log p(w) + log p(0)"],
        horizontal_spacing=0.1,
    )
    peaks: list[tuple[str, float, float]] = []
    for i, (name, prior) in enumerate(priors.items()):
        w, p = prior_density(prior, w_max, points=301)
        zero = float(p[np.argmin(np.abs(w))])
        bold = active is None or name == active
        line = dict(
            color=SERIES_COLORS[i % len(SERIES_COLORS)],
            width=3 if bold else 1.5,
            dash="solid" if bold else "dash",
        )
        penalty = np.log(zero) - np.log(np.clip(p, 1e-300, None))
        for col, y in ((1, p), (2, penalty)):
            fig.add_trace(
                go.Scatter(
                    x=w,
                    y=y,
                    mode="lines",
                    name=name,
                    legendgroup=name,
                    showlegend=col == 1,
                    line=line,
                    hovertemplate="w = %{x:.3f}<br>%{y:.4g}<extra>" + name + "</extra>",
                ),
                row=1,
                col=col,
            )
        peaks.append((name, zero, float(penalty.max())))
    middle = float(np.median([z for _, z, _ in peaks])) if peaks else 1.0
    fig.update_yaxes(range=[0, 1.3 * middle], row=1, col=1)
    fig.update_yaxes(rangemode="tozero", row=1, col=2)
    fig.update_xaxes(title_text="weight w")
    _style(fig, title, height=340, above_px=26)
    return fig
