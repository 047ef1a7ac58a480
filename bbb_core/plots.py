"""BBB Explorer's figures: pure functions from tensors, arrays and result objects to plotly figures.

Nothing here draws on screen (no `fig.show()`, no streamlit); pages and notebooks display what these
functions return, and the tests read the figures' traces and layout directly. Tensors may live on
any device and may require grad: every input goes through `.detach().cpu()` first.

- `prior_density_figure`: p(w) (or log p(w)) of each prior over the weight axis.
- `regression_figure`: training data, the true function, shaded regions without training data, and
  per model its predictive mean and bands (BBB: total and epistemic bands, sampled functions).
- `loss_figure`: NLL, KL and -ELBO over the epochs, three stacked panels.
- `classification_figure`: a heatmap of P(class 1), the predictive entropy or the mutual
  information over the 2-D grid, with the training points and the far OOD ring on top.
- `classification_grid_figure`: the same heatmap for several models side by side, one colour bar.
- `metrics_frame`: a table (pandas DataFrame) of the models' metrics with readable headers.
- `reliability_figure`: reliability diagram, accuracy against confidence per model.
- `uncertainty_histogram`: normalised histograms of an uncertainty score, test set against OOD sets.
- `image_gallery_figure`: images above bar charts of their predictive class probabilities.
- `rotation_figure`: class probabilities (mean +- 1 std) as an image rotates, a panel per model.
- `pruning_figure`: test error against the share of weights removed, one line per pruning rule.

Colours are fixed by model kind (`MODEL_COLORS`, from the colour-blind-safe Okabe-Ito palette) so
that a model looks the same in every figure; every figure uses one layout (`plotly_white`, compact
margins, horizontal legend on top). Uncertainty as in Blundell et al., "Weight Uncertainty in
Neural Networks", ICML 2015; the entropy / mutual-information split as in Depeweg et al., ICML 2018.
"""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.colors
import plotly.graph_objects as go
import plotly.io
import torch
from plotly.subplots import make_subplots

from .data.base import Dataset
from .metrics import Reliability
from .predict import ClassificationPredictive, RegressionPredictive, normal_quantile
from .priors import Prior
from .train import Progress

__all__ = [
    "MODEL_COLORS",
    "MODEL_LABELS",
    "classification_figure",
    "classification_grid_figure",
    "image_gallery_figure",
    "loss_figure",
    "metrics_frame",
    "model_color",
    "model_label",
    "prior_density_figure",
    "pruning_figure",
    "regression_figure",
    "reliability_figure",
    "rotation_figure",
    "uncertainty_histogram",
]

# --- palette ------------------------------------------------------------------------------------

MODEL_COLORS = {  # Okabe-Ito: distinguishable with every common colour-vision deficiency
    "bbb": "#0072B2",  # blue
    "standard": "#D55E00",  # vermillion
    "dropout": "#009E73",  # bluish green
    "ensemble": "#CC79A7",  # reddish purple
    "map": "#E69F00",  # orange
}
MODEL_LABELS = {
    "bbb": "BBB",
    "standard": "Standard",
    "dropout": "MC dropout",
    "ensemble": "Ensemble",
    "map": "MAP",
}
SERIES_COLORS = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000"]
OOD_COLORS = ["#E69F00", "#56B4E9", "#CC79A7", "#009E73", "#D55E00", "#000000"]  # OOD sets
TEST_COLOR = "#4D4D4D"  # in-distribution test set in histograms
DATA_COLOR = "#333333"  # training points
CLASS_COLORS = ["#B2182B", "#2166AC"]  # 2-D class 0 / 1: the two ends of the RdBu scale
CLASS_LINE_COLORS = plotly.colors.qualitative.T10  # image classes in line plots
PROBABILITY_SCALE = [  # red (P(class 1) = 0) through white to blue (1)
    [i / 10, c] for i, c in enumerate(plotly.colors.diverging.RdBu)
]
UNCERTAINTY_SCALE = "Viridis"
GRAY_SCALE = [[0.0, "black"], [1.0, "white"]]

_QUANTITIES = {  # heatmap quantity -> (colour-bar title, colour scale)
    "probability": ("P(class 1)", PROBABILITY_SCALE),
    "entropy": ("entropy (nats)", UNCERTAINTY_SCALE),
    "mutual_info": ("mutual info (nats)", UNCERTAINTY_SCALE),
}

_METRIC_HEADERS = {  # metric key (evaluate.py) -> column header, in display order
    "rmse": "RMSE",
    "nll": "NLL",
    "coverage_95": "95 % coverage",
    "mean_std_in_range": "mean std in range",
    "mean_std_out_of_range": "mean std out of range",
    "accuracy": "accuracy",
    "ece": "ECE",
    "brier": "Brier",
    "ood_auroc_entropy": "OOD AUROC (entropy)",
    "ood_auroc_mi": "OOD AUROC (MI)",
}

# --- shared helpers -----------------------------------------------------------------------------


def _np(x, dtype=np.float64) -> np.ndarray:
    """`x` (tensor on any device, array or list) as a numpy array of `dtype`."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        x = x.double() if dtype == np.float64 else x
        return x.numpy().astype(dtype, copy=False)
    return np.asarray(x, dtype=dtype)


def model_color(kind: str, index: int = 0) -> str:
    """The colour of model `kind`; unknown names take the series palette by position."""
    return MODEL_COLORS.get(kind, SERIES_COLORS[index % len(SERIES_COLORS)])


def model_label(kind: str) -> str:
    return MODEL_LABELS.get(kind, kind)


def _rgba(color: str, alpha: float) -> str:
    r, g, b = plotly.colors.hex_to_rgb(color)
    return f"rgba({r},{g},{b},{alpha})"


def _pct(level: float) -> str:
    return f"{100 * level:g} %"


def _house(title: str, height: int = 440, above_px: int = 0) -> dict[str, Any]:
    """The house layout (title top left, legend in a row above the plot), without template.

    `above_px` lifts the legend that many pixels higher, clear of subplot titles.
    """
    top = (80 if title else 40) + above_px
    plot_px = max(height - top - 50, 1)
    return dict(
        title=dict(text=title, x=0.01, xanchor="left", y=0.98, yanchor="top", font=dict(size=18)),
        font=dict(size=13),
        height=height,
        margin=dict(l=60, r=20, t=top, b=50),
        legend=dict(
            orientation="h", x=0, xanchor="left", y=1 + above_px / plot_px, yanchor="bottom"
        ),
        hoverlabel=dict(font=dict(size=13)),
    )


def _style(
    fig: go.Figure,
    title: str,
    x_title: str | None = None,
    y_title: str | None = None,
    height: int = 440,
    above_px: int = 0,
    **layout: Any,
) -> go.Figure:
    """The house layout on `fig`, white template; axis titles on every x / y axis. `layout` adds
    more layout properties in the same update."""
    fig.update_layout(template="plotly_white", **_house(title, height, above_px), **layout)
    if x_title is not None:
        fig.update_xaxes(title_text=x_title)
    if y_title is not None:
        fig.update_yaxes(title_text=y_title)
    return fig


_TEMPLATE_TRACES = ("scatter", "heatmap")  # the trace types `_figure`'s figures draw
_TEMPLATE_SUBPLOTS = ("polar", "ternary", "scene", "geo")  # kinds of plots they never make


@functools.cache
def _white() -> dict[str, Any]:
    """plotly's "plotly_white" template as plain data, for the trace types and subplots
    `_figure`'s figures use (read once; callers get copies). The rest of the template changes
    nothing these figures show, and every tab would be sent it with every redraw."""
    full = plotly.io.templates["plotly_white"].to_plotly_json()
    data = {kind: full["data"][kind] for kind in _TEMPLATE_TRACES}
    layout = {k: v for k, v in full["layout"].items() if k not in _TEMPLATE_SUBPLOTS}
    return dict(data=data, layout=layout)


def _merged(base: dict, more: Mapping) -> dict:
    """`base` updated by `more`, nested dicts merged rather than replaced (in place)."""
    for key, value in more.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merged(base[key], value)
        else:
            base[key] = value
    return base


def _figure(
    traces: Sequence[go.Scatter | go.Heatmap],
    title: str,
    x_title: str | None = None,
    y_title: str | None = None,
    height: int = 440,
    above_px: int = 0,
    **layout: Any,
) -> go.Figure:
    """A figure of finished `traces` in the house layout (`_style`'s), assembled in one go.

    The traces validated themselves when built; the layout is written out in full (nested dicts,
    no `title_text` shorthand), so the figure skips plotly's property-by-property validation of
    the whole tree: the live pages rebuild their figures every second for every run, and that
    validation cost ten times the rest. `x_title` / `y_title` name the first x / y axis.
    `tests/test_plots.py` checks every such figure against plotly's validated form.
    """
    spec = _house(title, height, above_px)
    spec["template"] = copy.deepcopy(_white())
    for axis, text in (("xaxis", x_title), ("yaxis", y_title)):
        if text is not None:
            spec[axis] = dict(title=dict(text=text))
    _merged(spec, layout)
    data = [_light(t.to_plotly_json()) for t in traces]
    return go.Figure(dict(data=data, layout=spec), _validate=False)


def _light(trace: dict) -> dict:
    """`trace` with its float arrays in float32: what the browser gets in every redraw, half the
    bytes, and more digits than a chart or its hover text shows."""
    for key, value in trace.items():
        if isinstance(value, np.ndarray) and value.dtype == np.float64:
            trace[key] = value.astype(np.float32)
    return trace


@functools.lru_cache(maxsize=32)
def _grid_layout(rows: int, cols: int, titles: tuple[str, ...] = (), **spacing: Any) -> dict:
    """`make_subplots`' axes (and subplot titles) for a rows x cols grid, without template."""
    layout = make_subplots(rows=rows, cols=cols, subplot_titles=titles or None, **spacing)
    spec = layout.layout.to_plotly_json()
    spec.pop("template", None)
    return spec


def _subplots(rows: int, cols: int, titles: Sequence[str] = (), **spacing: Any) -> dict:
    """A copy of `_grid_layout` to fill in (its cache is shared and read-only)."""
    return copy.deepcopy(_grid_layout(rows, cols, tuple(titles), **spacing))


def _axes(row: int, col: int, cols: int) -> dict[str, str]:
    """The trace properties that put a trace in cell (row, col) of a grid `cols` wide."""
    n = (row - 1) * cols + col
    suffix = "" if n == 1 else str(n)
    return dict(xaxis=f"x{suffix}", yaxis=f"y{suffix}")


def _axis_key(letter: str, n: int) -> str:
    """The layout key of axis `n` (1-based) of `letter` ("x" or "y"): xaxis, xaxis2, ..."""
    return f"{letter}axis" if n == 1 else f"{letter}axis{n}"


_SUBPLOT_TITLE_PX = 26  # room for subplot titles between the legend and the plots


def _log_ticks(values: np.ndarray) -> dict:
    """Tick values 1, 2, 5 x 10^k (10^k only over more than 3 decades) spanning positive
    `values`, labelled plainly: cleaner than plotly's small minor-digit labels."""
    v = values[np.isfinite(values) & (values > 0)]
    if v.size == 0:
        return {}
    lo, hi = math.floor(math.log10(v.min())), math.ceil(math.log10(v.max()))
    steps = (1,) if hi - lo > 3 else (1, 2, 5)
    ticks = [m * 10.0**k for k in range(lo, hi + 1) for m in steps]
    ticks = [t for t in ticks if v.min() / 2.5 <= t <= v.max() * 2.5]
    return dict(tickmode="array", tickvals=ticks, ticktext=[f"{t:g}" for t in ticks])


def _band(
    x: np.ndarray, lower: np.ndarray, upper: np.ndarray, name: str, color: str, alpha: float, **kw
) -> go.Scatter:
    """A filled band as one closed polygon: x forwards along `upper`, back along `lower`."""
    return go.Scatter(
        x=np.concatenate([x, x[::-1]]),
        y=np.concatenate([upper, lower[::-1]]),
        fill="toself",
        fillcolor=_rgba(color, alpha),
        line=dict(width=0),
        mode="lines",
        name=name,
        hoverinfo="skip",
        **kw,
    )


def _joined(x: np.ndarray, ys: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Several curves over one x as a single trace, separated by NaN gaps (light figures)."""
    gap = np.array([np.nan])
    xs = np.concatenate([np.concatenate([x, gap]) for _ in ys])
    yy = np.concatenate([np.concatenate([y, gap]) for y in ys])
    return xs, yy


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) index of every run of True in a 1-D bool array."""
    padded = np.concatenate([[False], mask, [False]]).astype(np.int8)
    steps = np.diff(padded)
    return list(zip(np.flatnonzero(steps == 1), np.flatnonzero(steps == -1) - 1, strict=True))


# --- priors -------------------------------------------------------------------------------------


def _weight_axis(w_max: float) -> np.ndarray:
    """[-w_max, w_max]: even spacing plus log spacing down to 1e-4 w_max, so narrow spikes such
    as the scale mixture's N(0, e^-12) component are resolved; includes 0 and +-w_max."""
    fine = np.geomspace(1e-4 * w_max, w_max, 300)
    return np.unique(np.concatenate([np.linspace(-w_max, w_max, 601), fine, -fine, [0.0]]))


def prior_density_figure(
    priors: Mapping[str, Prior], w_max: float = 3.0, log: bool = False, y_max: float | None = None
) -> go.Figure:
    """Density p(w) (or log p(w) when `log`) of each named prior on [-w_max, w_max].

    `y_max` caps the y axis (e.g. to see the Gaussian next to the mixture's tall spike).
    """
    w = _weight_axis(w_max)
    curves = []
    for name, prior in priors.items():
        lp = _np(prior.log_prob(torch.as_tensor(w, dtype=torch.float64)))
        curves.append((name, lp if log else np.exp(lp)))
    traces = [
        go.Scatter(
            x=w,
            y=y,
            mode="lines",
            name=name,
            line=dict(color=SERIES_COLORS[i % len(SERIES_COLORS)], width=2.5),
            hovertemplate="w = %{x:.4f}<br>"
            + ("log p(w)" if log else "p(w)")
            + " = %{y:.4g}<extra>"
            + name
            + "</extra>",
        )
        for i, (name, y) in enumerate(curves)
    ]
    y_title = "log density log p(w)" if log else "density p(w)"
    axis = {}
    if y_max is not None:
        low = min((float(np.min(y)) for _, y in curves), default=0.0) if log else 0.0
        axis = dict(yaxis=dict(range=[low, y_max]))
    return _figure(traces, "Prior over one weight", "weight w", y_title, **axis)


# --- regression ---------------------------------------------------------------------------------


def _out_of_range(x: np.ndarray, in_range) -> dict[str, list[dict]]:
    """Layout shapes: light grey spans where `in_range` is False, each marked "no training
    data" at its top (what plotly's `add_vrect` writes)."""
    spans = [] if in_range is None else _runs(~_np(in_range, dtype=bool))
    shapes, notes = [], []
    for first, last in spans:
        x0, x1 = float(x[first]), float(x[last])
        shapes.append(
            dict(
                type="rect",
                xref="x",
                yref="y domain",
                x0=x0,
                x1=x1,
                y0=0,
                y1=1,
                fillcolor="lightgrey",
                opacity=0.3,
                layer="below",
                line=dict(width=0),
            )
        )
        notes.append(
            dict(
                text="no training data",
                xref="x",
                yref="y domain",
                x=(x0 + x1) / 2,
                y=1,
                xanchor="center",
                yanchor="top",
                showarrow=False,
                font=dict(size=11, color="#666666"),
            )
        )
    return dict(shapes=shapes, annotations=notes) if shapes else {}


def _regression_traces(
    kind: str,
    index: int,
    x: np.ndarray,
    pred: RegressionPredictive,
    level: float,
    show_draws: bool,
    max_draws: int,
):
    """(background, foreground) traces of one model: bands and draws below the data, means above."""
    color, label, pct = model_color(kind, index), model_label(kind), _pct(level)
    mean = _np(pred.mean)
    lo, hi = (_np(t) for t in pred.interval(level, "total"))
    back: list[go.Scatter] = []
    if kind in ("standard", "map"):
        if bool((pred.aleatoric_var > 0).any()):  # a point estimate: only the noise band
            half = normal_quantile(level) * _np(pred.aleatoric_std)
            xs, ys = _joined(x, [mean + half, mean - half])
            back.append(
                go.Scatter(
                    x=xs,
                    y=ys,
                    mode="lines",
                    name=f"{label} noise {pct}",
                    line=dict(color=color, width=1.5, dash="dot"),
                    hoverinfo="skip",
                )
            )
    else:
        alpha = 0.18 if kind == "bbb" else 0.12
        back.append(_band(x, lo, hi, f"{label} total {pct}", color, alpha))
        if kind == "bbb" and bool((pred.aleatoric_var > 0).any()):
            elo, ehi = (_np(t) for t in pred.interval(level, "epistemic"))
            back.append(_band(x, elo, ehi, f"{label} epistemic {pct}", color, 0.35))
        if kind == "bbb" and show_draws and pred.draws.shape[0] > 0:
            xs, ys = _joined(x, list(_np(pred.draws[:max_draws])))
            back.append(
                go.Scatter(
                    x=xs,
                    y=ys,
                    mode="lines",
                    name=f"{label} sampled functions",
                    line=dict(color=color, width=1),
                    opacity=0.45,
                    hoverinfo="skip",
                )
            )
    front = go.Scatter(
        x=x,
        y=mean,
        mode="lines",
        name=f"{label} mean",
        line=dict(color=color, width=3),
        customdata=np.stack([lo, hi], axis=-1),
        hovertemplate="x = %{x:.3f}<br>mean = %{y:.3f}<br>"
        + pct
        + " interval [%{customdata[0]:.3f}, %{customdata[1]:.3f}]<extra>"
        + label
        + "</extra>",
    )
    return back, front


def training_points(dataset: Dataset) -> go.Scatter:
    """A 1-D regression set's training points as a marker trace."""
    return go.Scatter(
        x=_np(dataset.x_train)[:, 0],
        y=_np(dataset.y_train),
        mode="markers",
        name="training data",
        marker=dict(color=DATA_COLOR, size=5, opacity=0.6),
        hovertemplate="x = %{x:.3f}<br>y = %{y:.3f}<extra>training point</extra>",
    )


def true_function(dataset: Dataset, width: float = 2.0) -> go.Scatter:
    """The noise-free function of a 1-D regression set on its grid (`dataset.f_grid`)."""
    return go.Scatter(
        x=_np(dataset.x_grid)[:, 0],
        y=_np(dataset.f_grid),
        mode="lines",
        name="true function",
        line=dict(color="black", width=width, dash="dash"),
        hoverinfo="skip",
    )


def regression_figure(
    dataset: Dataset,
    predictives: Mapping[str, RegressionPredictive],
    *,
    level: float = 0.95,
    show_draws: bool = True,
    show_truth: bool = True,
    max_draws: int = 10,
    title: str = "",
) -> go.Figure:
    """Data, truth and each model's predictive on `dataset.x_grid` (keys: model kinds).

    BBB draws its total band and, when the noise is non-zero, the narrower epistemic band on top,
    plus at most `max_draws` sampled functions; "standard" its mean (and its noise band, dotted);
    other kinds their mean and a lighter total band. The y axis spans the data, not wild bands.
    """
    x = _np(dataset.x_grid)[:, 0]  # (G,)
    kinds = sorted(predictives, key=lambda k: k == "bbb")  # BBB last, so drawn on top
    layers = [
        _regression_traces(k, i, x, predictives[k], level, show_draws, max_draws)
        for i, k in enumerate(kinds)
    ]
    traces = [trace for back, _ in layers for trace in back]
    traces.append(training_points(dataset))
    traces += [front for _, front in layers]
    if show_truth and dataset.f_grid is not None:
        traces.append(true_function(dataset))
    y = np.concatenate(
        [_np(dataset.y_train)] + ([_np(dataset.f_grid)] if dataset.f_grid is not None else [])
    )
    span = max(float(y.max() - y.min()), 1e-6)
    return _figure(
        traces,
        title or f"Regression on {dataset.name}",
        "input x",
        "target y",
        height=480,
        xaxis=dict(range=[float(x.min()), float(x.max())]),
        yaxis=dict(range=[float(y.min()) - 0.6 * span, float(y.max()) + 0.6 * span]),
        **_out_of_range(x, dataset.in_range),
    )


# --- training -----------------------------------------------------------------------------------


def loss_figure(history: Sequence[Progress], n_train: int | None = None) -> go.Figure:
    """NLL, KL and -ELBO (= NLL + KL) against the epoch, in three stacked panels sharing x.

    With `n_train` every value is divided by the number of training points; a panel whose values
    are all positive uses a log y axis.
    """
    epochs = np.array([p.epoch for p in history], dtype=np.int64)
    scale = 1.0 / n_train if n_train else 1.0
    unit = "nats / point" if n_train else "nats"
    terms = [
        ("NLL", [p.nll for p in history], "#E69F00"),
        ("KL", [p.kl for p in history], "#56B4E9"),
        ("−ELBO", [-p.elbo for p in history], "#000000"),
    ]
    layout = _subplots(3, 1, shared_xaxes=True, vertical_spacing=0.05)
    traces = []
    for row, (name, values, color) in enumerate(terms, start=1):
        y = np.asarray(values, dtype=np.float64) * scale
        traces.append(
            go.Scatter(
                x=epochs,
                y=y,
                mode="lines",
                name=name,
                line=dict(color=color, width=2),
                hovertemplate="epoch %{x}<br>" + name + " = %{y:.4g} " + unit + "<extra></extra>",
                **_axes(row, 1, 1),
            )
        )
        log_axis = y.size > 0 and bool(np.all(y[np.isfinite(y)] > 0))
        layout[_axis_key("y", row)].update(
            title=dict(text=f"{name} ({unit})"),
            type="log" if log_axis else "linear",
            **(_log_ticks(y) if log_axis else {}),
        )
    layout[_axis_key("x", 3)]["title"] = dict(text="epoch")
    return _figure(
        traces, "Training: the terms of the ELBO", height=560, showlegend=False, **layout
    )


# --- 2-D classification -------------------------------------------------------------------------


def _grid_values(pred: ClassificationPredictive, quantity: str) -> np.ndarray:
    """(B,) values of `quantity` at the grid points."""
    if quantity == "probability":
        return _np(pred.probs)[:, 1]
    if quantity == "entropy":
        return _np(pred.entropy)
    if quantity == "mutual_info":
        return _np(pred.mutual_info)
    raise ValueError(f"quantity must be one of {', '.join(_QUANTITIES)}; got {quantity!r}")


def _z_range(quantity: str, n_classes: int, values: Sequence[np.ndarray]) -> tuple[float, float]:
    """Fixed colour ranges, so figures of different models compare: [0, 1], [0, ln C] or
    [0, max(ln C / 2, largest value)] for the mutual information."""
    if quantity == "probability":
        return 0.0, 1.0
    top = math.log(max(n_classes, 2))
    if quantity == "entropy":
        return 0.0, top
    finite = [v[np.isfinite(v)] for v in values]
    data_max = max((float(v.max()) for v in finite if v.size), default=0.0)
    return 0.0, max(top / 2, data_max)


def _heatmap(dataset: Dataset, values: np.ndarray, quantity: str, **kw) -> go.Heatmap:
    xs, ys = (_np(a) for a in dataset.grid_axes)
    label = _QUANTITIES[quantity][0]
    return go.Heatmap(
        x=xs,
        y=ys,
        # rows follow ys, columns xs; float32 halves what every live redraw sends the browser
        z=values.reshape(len(ys), len(xs)).astype(np.float32),
        zsmooth="fast",  # the browser's interpolation: looks the same, draws ~20 % faster
        hovertemplate="x₁ = %{x:.2f}<br>x₂ = %{y:.2f}<br>" + label + " = %{z:.3f}<extra></extra>",
        **kw,
    )


FAR_SHOWN = 125  # about this many of the far OOD ring's inputs are drawn (all are scored)


def _points(dataset: Dataset, showlegend: bool = True) -> list[go.Scatter]:
    """Training points coloured by class, then the far OOD ring as small grey crosses (thinned
    to about FAR_SHOWN: each panel of the live pages redraws them several times a second, and
    the 500 markers per panel took about 40 % of the browser's drawing time)."""
    x, y = _np(dataset.x_train), _np(dataset.y_train, dtype=np.int64)
    traces = [
        go.Scatter(
            x=x[y == c, 0],
            y=x[y == c, 1],
            mode="markers",
            name=f"class {c}",
            legendgroup=f"class {c}",
            showlegend=showlegend,
            marker=dict(color=CLASS_COLORS[c % 2], size=7, line=dict(color="white", width=1)),
            hovertemplate="x₁ = %{x:.2f}<br>x₂ = %{y:.2f}<extra>class " + str(c) + "</extra>",
        )
        for c in range(max(dataset.n_classes, 2))
    ]
    if "far" in dataset.ood:
        far = _np(dataset.ood["far"])
        far = far[:: max(1, len(far) // FAR_SHOWN)]  # evenly thinned: SVG markers are dear
        traces.append(
            go.Scatter(
                x=far[:, 0],
                y=far[:, 1],
                mode="markers",
                name="far OOD inputs",
                legendgroup="far",
                showlegend=showlegend,
                marker=dict(color="rgba(90,90,90,0.6)", size=5, symbol="x"),
                hoverinfo="skip",
            )
        )
    return traces


def _square_axes(dataset: Dataset, n: int = 1) -> dict[str, dict]:
    """Layout of n side-by-side grid panels: the grid's ranges, one unit the same length on both
    axes, no grid lines, tick labels on the first panel's y axis only."""
    xs, ys = (_np(a) for a in dataset.grid_axes)
    axes = {}
    for i in range(1, n + 1):
        suffix = "" if i == 1 else str(i)
        axes[f"xaxis{suffix}"] = dict(
            range=[float(xs.min()), float(xs.max())],
            constrain="domain",
            title=dict(text="x₁ (standardised)"),
            showgrid=False,
            zeroline=False,
        )
        axes[f"yaxis{suffix}"] = dict(
            range=[float(ys.min()), float(ys.max())],
            constrain="domain",
            scaleanchor=f"x{suffix}",
            scaleratio=1,
            showgrid=False,
            zeroline=False,
            showticklabels=i == 1,
            **({"title": dict(text="x₂ (standardised)")} if i == 1 else {}),
        )
    return axes


def classification_figure(
    dataset: Dataset, pred: ClassificationPredictive, quantity: str, title: str = ""
) -> go.Figure:
    """A heatmap of `quantity` ("probability": P(class 1), "entropy", "mutual_info") over the
    dataset's 2-D grid with fixed colour ranges, the training points and the far OOD ring."""
    values = _grid_values(pred, quantity)
    zmin, zmax = _z_range(quantity, pred.probs.shape[-1], [values])
    label, scale = _QUANTITIES[quantity]
    heatmap = _heatmap(
        dataset,
        values,
        quantity,
        colorscale=scale,
        zmin=zmin,
        zmax=zmax,
        colorbar=dict(title=dict(text=label, side="right")),
    )
    return _figure(
        [heatmap, *_points(dataset)], title or label, height=520, **_square_axes(dataset)
    )


def classification_grid_figure(
    dataset: Dataset, preds: Mapping[str, ClassificationPredictive], quantity: str, title: str = ""
) -> go.Figure:
    """`classification_figure`'s heatmap for each model (keys: kinds) side by side, sharing one
    colour scale and one colour bar."""
    values = [_grid_values(p, quantity) for p in preds.values()]
    n_classes = max((p.probs.shape[-1] for p in preds.values()), default=2)
    zmin, zmax = _z_range(quantity, n_classes, values)
    label, scale = _QUANTITIES[quantity]
    n = max(len(preds), 1)
    layout = _subplots(1, n, [model_label(k) for k in preds], horizontal_spacing=0.03)
    traces = []
    for col, v in enumerate(values, start=1):
        cell = _axes(1, col, n)
        traces.append(_heatmap(dataset, v, quantity, coloraxis="coloraxis", **cell))
        traces += [t.update(cell) for t in _points(dataset, showlegend=col == 1)]
    coloraxis = dict(
        colorscale=scale, cmin=zmin, cmax=zmax, colorbar=dict(title=dict(text=label, side="right"))
    )
    _merged(layout, _square_axes(dataset, n))
    return _figure(
        traces,
        title or label,
        height=420,
        above_px=_SUBPLOT_TITLE_PX,
        coloraxis=coloraxis,
        **layout,
    )


# --- tables and calibration ---------------------------------------------------------------------


def metrics_frame(metrics: Mapping[str, Mapping[str, float]]) -> pd.DataFrame:
    """One row per model kind, one column per metric in a fixed order with readable headers
    (unknown metrics follow under their own names); missing values are NaN."""
    present = {key for m in metrics.values() for key in m}
    known = [k for k in _METRIC_HEADERS if k in present]
    extra = [k for m in metrics.values() for k in m if k not in _METRIC_HEADERS]
    keys = known + list(dict.fromkeys(extra))
    rows = [[float(m.get(k, math.nan)) for k in keys] for m in metrics.values()]
    columns = [_METRIC_HEADERS.get(k, k) for k in keys]
    frame = pd.DataFrame(rows, index=list(metrics), columns=columns, dtype=np.float64)
    frame.index.name = "model"
    return frame


def reliability_figure(reliabilities: Mapping[str, Reliability]) -> go.Figure:
    """Reliability diagram: per model a bar per non-empty bin (width = the bin, height = its
    accuracy), the diagonal of perfect calibration; bin counts and mean confidence in the hover."""
    fig = go.Figure()
    for i, (kind, rel) in enumerate(reliabilities.items()):
        edges, acc = np.asarray(rel.bin_edges, float), np.asarray(rel.accuracy, float)
        keep = (np.asarray(rel.counts) > 0) & np.isfinite(acc)  # empty bins have nan
        color = model_color(kind, i)
        info = np.stack([edges[:-1], edges[1:], rel.confidence, rel.counts], axis=-1)[keep]
        fig.add_trace(
            go.Bar(
                x=((edges[:-1] + edges[1:]) / 2)[keep],
                y=acc[keep],
                width=np.diff(edges)[keep],
                name=model_label(kind),
                customdata=info,
                marker=dict(color=_rgba(color, 0.3), line=dict(color=color, width=2)),
                hovertemplate="confidence in (%{customdata[0]:.2f}, %{customdata[1]:.2f}]<br>"
                "accuracy = %{y:.3f}<br>mean confidence = %{customdata[2]:.3f}<br>"
                "%{customdata[3]:.0f} points<extra>" + model_label(kind) + "</extra>",
            )
        )
    fig.add_trace(
        go.Scatter(
            x=[0, 1],
            y=[0, 1],
            mode="lines",
            name="perfect calibration",
            line=dict(color="#555555", dash="dash", width=1.5),
            hoverinfo="skip",
        )
    )
    _style(
        fig,
        "Reliability diagram",
        "confidence (max class probability)",
        "accuracy (fraction correct)",
        height=480,
    )
    fig.update_layout(barmode="overlay", bargap=0)
    fig.update_xaxes(range=[0, 1.01], constrain="domain")
    fig.update_yaxes(range=[0, 1.01], scaleanchor="x", scaleratio=1, constrain="domain")
    return fig


def uncertainty_histogram(
    score_test, scores_ood: Mapping[str, object], title: str, x_title: str, n_bins: int = 40
) -> go.Figure:
    """Overlaid probability-density histograms of a score on shared bins: the test set against
    each OOD set (non-finite scores dropped). Bars are computed here, so the figure stays light."""
    sets = {"test set": _np(score_test).ravel()}
    sets |= {name.replace("_", " "): _np(s).ravel() for name, s in scores_ood.items()}
    sets = {name: s[np.isfinite(s)] for name, s in sets.items()}
    edges = np.histogram_bin_edges(np.concatenate(list(sets.values())), bins=n_bins)
    fig = go.Figure()
    for i, (name, s) in enumerate(sets.items()):
        density = np.histogram(s, edges, density=True)[0] if s.size else np.zeros(n_bins)
        color = TEST_COLOR if i == 0 else OOD_COLORS[(i - 1) % len(OOD_COLORS)]
        fig.add_trace(
            go.Bar(
                x=(edges[:-1] + edges[1:]) / 2,
                y=density,
                width=np.diff(edges),
                name=name,
                marker=dict(color=_rgba(color, 0.45), line=dict(color=color, width=1)),
                customdata=np.stack([edges[:-1], edges[1:]], axis=-1),
                hovertemplate="[%{customdata[0]:.3g}, %{customdata[1]:.3g})<br>density = %{y:.3g}"
                f"<extra>{name} (n = {s.size})</extra>",
            )
        )
    _style(fig, title, x_title, "probability density")
    fig.update_layout(barmode="overlay", bargap=0)
    return fig


# --- images -------------------------------------------------------------------------------------


def _unit_range(image: np.ndarray) -> np.ndarray:
    """Min-max scaled to [0, 1] (a constant image becomes 0)."""
    lo, hi = np.nanmin(image), np.nanmax(image)
    return (image - lo) / (hi - lo) if hi > lo else np.zeros_like(image)


def _class_ticks(n: int, class_names: Sequence[str] | None) -> dict:
    names = list(class_names) if class_names is not None else [str(c) for c in range(n)]
    return dict(tickmode="array", tickvals=list(range(n)), ticktext=names[:n])


def image_gallery_figure(
    images,
    probs,
    probs_std,
    labels,
    titles: Sequence[str],
    *,
    kind: str = "bbb",
    class_names: Sequence[str] | None = None,
    title: str = "",
) -> go.Figure:
    """K images (K, 1, H, W) in a row, each above a bar chart of its predictive class
    probabilities (K, C) with error bars of one std (K, C); the true label's bar (labels (K,),
    or None) is drawn in the colour of model `kind`, the others grey."""
    imgs, p, sd = _np(images), _np(probs), _np(probs_std)
    k, c = p.shape
    if len(titles) != k:
        raise ValueError(f"titles must name each of the {k} images; got {len(titles)}")
    y = None if labels is None else _np(labels, dtype=np.int64)
    fig = make_subplots(
        rows=2,
        cols=k,
        row_heights=[0.6, 0.4],
        vertical_spacing=0.1,
        horizontal_spacing=0.02 if k > 6 else 0.04,
        subplot_titles=list(titles) + [""] * k,
    )
    for j in range(k):
        fig.add_trace(
            go.Heatmap(
                z=_unit_range(imgs[j, 0]),
                colorscale=GRAY_SCALE,
                zmin=0,
                zmax=1,
                showscale=False,
                hoverinfo="skip",
            ),
            row=1,
            col=j + 1,
        )
        colors = ["#B0B0B0"] * c
        if y is not None:
            colors[int(y[j])] = model_color(kind)
        fig.add_trace(
            go.Bar(
                x=np.arange(c),
                y=p[j],
                marker_color=colors,
                showlegend=False,
                customdata=sd[j],
                error_y=dict(type="data", array=sd[j], visible=True, thickness=1.2, width=2),
                hovertemplate="class %{x}: p = %{y:.3f} ± %{customdata:.3f}<extra></extra>",
            ),
            row=2,
            col=j + 1,
        )
        fig.update_xaxes(visible=False, row=1, col=j + 1)
        fig.update_yaxes(
            visible=False,
            autorange="reversed",
            scaleanchor=f"x{j + 1}",
            constrain="domain",
            row=1,
            col=j + 1,
        )
        fig.update_xaxes(tickfont_size=10, **_class_ticks(c, class_names), row=2, col=j + 1)
        fig.update_yaxes(range=[0, 1.05], showticklabels=j == 0, row=2, col=j + 1)
    fig.update_yaxes(title_text="probability", row=2, col=1)
    _style(fig, title, height=380)
    fig.update_layout(showlegend=False, margin_t=90 if title else 50)
    return fig


def _top_classes(means: Sequence[np.ndarray], top: int) -> list[int]:
    """The `top` classes with the highest probability at any angle under any model."""
    peak = np.max(np.stack([m.max(axis=0) for m in means]), axis=0)  # (C,)
    return sorted(int(c) for c in np.argsort(-peak, kind="stable")[:top])


def rotation_figure(
    angles,
    curves: Mapping[str, tuple],
    classes: Sequence[int] | None = None,
    *,
    top: int = 3,
    class_names: Sequence[str] | None = None,
    title: str = "",
) -> go.Figure:
    """Predicted class probabilities against the rotation angle (degrees), a panel per model:
    `curves[kind] = (mean (A, C), std (A, C))`; a line per class (the `top` most probable unless
    `classes` is given) with a shaded +-1 std band, clipped to [0, 1]."""
    a = _np(angles)
    data = {kind: (_np(m), _np(s)) for kind, (m, s) in curves.items()}
    if classes is None:
        classes = _top_classes([m for m, _ in data.values()], top)
    fig = make_subplots(
        rows=1,
        cols=max(len(data), 1),
        shared_yaxes=True,
        subplot_titles=[model_label(k) for k in data],
        horizontal_spacing=0.04,
    )
    for col, (mean, std) in enumerate(data.values(), start=1):
        for i, c in enumerate(classes):
            color = CLASS_LINE_COLORS[i % len(CLASS_LINE_COLORS)]
            name = f"class {class_names[c] if class_names else c}"
            lo, hi = np.clip(mean[:, c] - std[:, c], 0, 1), np.clip(mean[:, c] + std[:, c], 0, 1)
            fig.add_trace(
                _band(a, lo, hi, name, color, 0.2, legendgroup=name, showlegend=False),
                row=1,
                col=col,
            )
            fig.add_trace(
                go.Scatter(
                    x=a,
                    y=mean[:, c],
                    mode="lines",
                    name=name,
                    legendgroup=name,
                    showlegend=col == 1,
                    line=dict(color=color, width=2.5),
                    hovertemplate="%{x:.0f}°: p = %{y:.3f}<extra>" + name + "</extra>",
                ),
                row=1,
                col=col,
            )
    _style(fig, title or "Prediction as the image rotates", height=400, above_px=_SUBPLOT_TITLE_PX)
    span = float(a.max() - a.min()) if a.size else 0.0
    fig.update_xaxes(
        title_text="rotation angle (degrees)", ticksuffix="°", dtick=30 if span >= 90 else None
    )
    fig.update_yaxes(range=[0, 1.02])
    fig.update_yaxes(title_text="predicted probability", row=1, col=1)
    return fig


# --- pruning ------------------------------------------------------------------------------------


CURVE_TITLES = {"error": "test error (%)", "rmse": "test RMSE", "nll": "test NLL (nats / point)"}


def pruning_figure(
    fractions,
    errors: Mapping[str, object],
    title: str = "",
    metric: str = "error",
    height: int = 440,
) -> go.Figure:
    """A test metric against the share of weights removed, a line per pruning rule. `fractions`
    (F,) are fractions in [0, 1], drawn in %; each `errors[rule]` (F,) is `metric`: "error" (a
    fraction, drawn in %), "rmse" or "nll"."""
    x = 100 * _np(fractions)
    scale = 100.0 if metric == "error" else 1.0
    value = "error = %{y:.2f} %" if metric == "error" else metric + " = %{y:.3g}"
    fig = go.Figure()
    for i, (name, err) in enumerate(errors.items()):
        fig.add_trace(
            go.Scatter(
                x=x,
                y=scale * _np(err),
                mode="lines+markers",
                name=name,
                line=dict(color=SERIES_COLORS[i % len(SERIES_COLORS)], width=2.5),
                hovertemplate="%{x:.1f} % removed<br>" + value + "<extra>" + name + "</extra>",
            )
        )
    y_title = CURVE_TITLES.get(metric, metric)
    title = title or "Pruning by signal-to-noise ratio"
    _style(fig, title, "weights removed (%)", y_title, height=height)
    fig.update_yaxes(rangemode="tozero")
    return fig


def data_size_figure(points: Sequence[Any], task: str, title: str | None = None) -> go.Figure:
    """Epistemic (left) and aleatoric (right) uncertainty on the test set against the number of
    training points, a line per model, from `data_size.data_size_sweep`'s `SizePoint`s.

    task: "classification" (mutual information and expected entropy, nats) or "regression"
    (epistemic and aleatoric std, the target's units). The x axes are logarithmic.
    """
    unit = "nats" if task == "classification" else "std"
    names = (
        ("epistemic: mutual information", "aleatoric: expected entropy")
        if task == "classification"
        else ("epistemic std", "aleatoric std")
    )
    fig = make_subplots(rows=1, cols=2, subplot_titles=names, horizontal_spacing=0.12)
    kinds = list(dict.fromkeys(p.kind for p in points))
    for i, kind in enumerate(kinds):
        label = model_label(kind)
        mine = sorted((p for p in points if p.kind == kind), key=lambda p: p.n_train)
        n = [p.n_train for p in mine]
        for col, values in ((1, [p.epistemic for p in mine]), (2, [p.aleatoric for p in mine])):
            fig.add_trace(
                go.Scatter(
                    x=n,
                    y=values,
                    mode="lines+markers",
                    name=label,
                    legendgroup=kind,
                    showlegend=col == 1,
                    line=dict(color=model_color(kind, i)),
                    hovertemplate=f"%{{x}} points: %{{y:.4g}} {unit}<extra>{label}</extra>",
                ),
                row=1,
                col=col,
            )
    sizes = sorted({p.n_train for p in points})
    fig.update_xaxes(type="log", title_text="training points", tickvals=sizes, ticktext=sizes)
    fig.update_yaxes(title_text=unit, rangemode="tozero")
    return _style(fig, title or "Does more data help?", height=380, above_px=20)
