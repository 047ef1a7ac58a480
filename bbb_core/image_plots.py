"""Figures and tables of the images page, from `bbb_core.image_analysis` results.

Data in, plotly `go.Figure` or pandas `DataFrame` out (the house style of `bbb_core.plots`);
nothing here draws or imports streamlit.

- `accuracy_figure(series, epochs)`: each model's test accuracy against the epoch, as recorded
  while it trains.
- `score_histograms(scores, ood_names, kind)`: the entropy and the mutual-information histograms
  of one model on the test set against OOD sets (Hendrycks & Gimpel, ICLR 2017).
- `gallery_figure(gallery, kind, title, by)`: a gallery with "true → predicted, score" captions.
- `rotation_panel(sweep, i, kind, label)` and `rotation_curve(sweeps, angle, index, label)`:
  the image at its i-th angle with its class probabilities, and the probabilities over all
  angles (Gal & Ghahramani, ICML 2016, figure 4).
- `auroc_frame(scores)` and `pruning_frame(curves, fractions)`: the AUROC per OOD set and the
  pruning errors (Blundell et al., ICML 2015, Table 2) as tables.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from .image_analysis import PRUNING_METHODS, Gallery, OodScores, RotationSweep, auroc_table
from .plots import (
    _style,
    image_gallery_figure,
    model_color,
    model_label,
    rotation_figure,
    uncertainty_histogram,
)

SCORE_NAMES = {"entropy": "entropy", "mutual_info": "mutual information"}
SCORE_SHORT = {"entropy": "H", "mutual_info": "MI", "expected_entropy": "E[H]", "confidence": "p"}


def accuracy_figure(series: Mapping[str, Sequence[tuple[int, float]]], epochs: int) -> go.Figure:
    """Test accuracy (%) against the epoch, one line per model kind; `series[kind]` holds
    (epoch, accuracy in [0, 1]) pairs and `epochs` is the run's length (the x axis)."""
    fig = go.Figure()
    for kind, points in series.items():
        x = [e for e, _ in points]
        y = [100 * a for _, a in points]
        name = model_label(kind)
        fig.add_trace(
            go.Scatter(
                x=x,
                y=y,
                mode="lines+markers",
                name=name,
                line=dict(color=model_color(kind), width=2.5),
                hovertemplate="epoch %{x}<br>accuracy %{y:.1f} %<extra>" + name + "</extra>",
            )
        )
    _style(fig, "Test accuracy while training", "epoch", "test accuracy (%)", height=380)
    fig.update_xaxes(range=[0, max(epochs, 1)])
    fig.update_yaxes(range=[0, 100])
    return fig


def score_histograms(
    scores: OodScores, ood_names: Sequence[str], kind: str
) -> dict[str, go.Figure]:
    """Model `kind`'s entropy and mutual-information histograms: the test set against each of
    `ood_names`, keyed "entropy" and "mutual_info"."""
    figures = {}
    for attr, name in SCORE_NAMES.items():
        values = getattr(scores, attr)
        shown = {k: values[k] for k in ood_names if k in values}
        figures[attr] = uncertainty_histogram(
            values["test"], shown, f"{model_label(kind)}: {name}", f"{name} (nats)"
        )
    return figures


def gallery_figure(gallery: Gallery, kind: str, title: str, by: str = "entropy") -> go.Figure:
    """`gallery` with "true → predicted" and its score above each image: `by` names it (a key of
    SCORE_SHORT; "confidence" for the confidently wrong gallery, shown as p)."""
    score = SCORE_SHORT[by]
    titles = [
        f"{int(t)} → {int(p)}<br>{score} {float(s):.2f}"
        for t, p, s in zip(gallery.labels, gallery.probs.argmax(-1), gallery.scores, strict=True)
    ]
    return image_gallery_figure(
        gallery.images,
        gallery.probs,
        gallery.probs_std,
        gallery.labels,
        titles,
        kind=kind,
        title=title,
    )


def rotation_panel(sweep: RotationSweep, i: int, kind: str, label) -> go.Figure:
    """The image of `sweep` at its `i`-th angle with model `kind`'s class probabilities."""
    angle = float(sweep.angles[i])
    fig = image_gallery_figure(
        sweep.images[i : i + 1],
        sweep.probs[i : i + 1],
        sweep.probs_std[i : i + 1],
        label,
        [f"{model_label(kind)} at {angle:g}°"],
        kind=kind,
    )
    fig.update_layout(height=300)
    return fig


def rotation_curve(
    sweeps: Mapping[str, RotationSweep], angle: float, index: int, label: int
) -> go.Figure:
    """Every model's class probabilities over the angles of its sweep, `angle` marked."""
    curves = {k: (s.probs, s.probs_std) for k, s in sweeps.items()}
    angles = next(iter(sweeps.values())).angles
    title = f"Test image #{index} (a {label}) from 0 to 180°"
    fig = rotation_figure(angles, curves, title=title)
    fig.add_vline(x=angle, line_dash="dot", line_color="#888888")
    fig.update_layout(legend=dict(y=-0.25, yanchor="top"), margin_b=90)
    return fig


def auroc_frame(scores: Mapping[str, OodScores]) -> pd.DataFrame:
    """One row per OOD set, one column per model and score: the AUROC against the test set."""
    labelled = {model_label(k): v for k, v in scores.items()}
    table = pd.DataFrame(auroc_table(labelled)).T
    table.index = [name.replace("_", " ") for name in table.index]
    table.index.name = "OOD set"
    return table


def pruning_frame(curves: Mapping[str, object], fractions: Sequence[float]) -> pd.DataFrame:
    """Test error (%) of the posterior-mean network per share of weights removed, by |mu|/sigma
    and by |mu| (`curves` as `image_analysis.pruning_curves` returns them)."""
    short = {"snr": "error, by |μ|/σ", "magnitude": "error, by |μ|"}
    table = pd.DataFrame(
        {short[k]: np.asarray(curves[v], dtype=float) for k, v in PRUNING_METHODS.items()},
        index=[f"{100 * f:g} %" for f in fractions],
    ).round(2)
    table.index.name = "removed"
    return table
