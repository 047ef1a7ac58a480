"""The downloads of a run: its config (JSON), the plotted data and the metrics (CSV).

Pure functions from a config, a dataset and predictives to text or a pandas DataFrame, and
`results(...)`, which shows a finished run's metrics table and the download buttons.

Plotted data, one row per point, a `set` column saying which:
- regression: "grid" rows (x, the true function, in_range and per model `<kind>_mean`,
  `<kind>_epistemic_std`, `<kind>_aleatoric_std`, `<kind>_lower_95`, `<kind>_upper_95`), then
  "train" rows (x, y).
- 2-D classification: "grid" rows (x1, x2, in_range and per model `<kind>_p1`, `<kind>_entropy`,
  `<kind>_mutual_info`), then "train" rows (x1, x2, label).
- images: one row per test image (index, label and per model `<kind>_prediction`,
  `<kind>_confidence`, `<kind>_entropy`, `<kind>_mutual_info`, `<kind>_p0` ... `<kind>_p9`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd
import streamlit as st

from bbb_core import Dataset, RunConfig
from bbb_core.plots import metrics_frame, model_label


def _np(t) -> np.ndarray:
    return t.detach().cpu().double().numpy()


def config_json(cfg: RunConfig) -> str:
    """The config as indented JSON (`RunConfig.from_json` reads it back)."""
    return json.dumps(cfg.to_dict(), indent=2, sort_keys=True)


def regression_frame(dataset: Dataset, preds: Mapping, level: float = 0.95) -> pd.DataFrame:
    """The regression chart's data (see the module docstring)."""
    grid = pd.DataFrame({"set": "grid", "x": _np(dataset.x_grid[:, 0])})
    if dataset.f_grid is not None:
        grid["true_f"] = _np(dataset.f_grid)
    if dataset.in_range is not None:
        grid["in_range"] = dataset.in_range.cpu().numpy()
    pct = round(100 * level)
    for kind, pred in preds.items():
        lower, upper = pred.interval(level)
        grid[f"{kind}_mean"] = _np(pred.mean)
        grid[f"{kind}_epistemic_std"] = _np(pred.epistemic_std)
        grid[f"{kind}_aleatoric_std"] = _np(pred.aleatoric_std)
        grid[f"{kind}_lower_{pct}"] = _np(lower)
        grid[f"{kind}_upper_{pct}"] = _np(upper)
    train = pd.DataFrame(
        {"set": "train", "x": _np(dataset.x_train[:, 0]), "y": _np(dataset.y_train)}
    )
    return pd.concat([grid, train], ignore_index=True)


def classification_frame(dataset: Dataset, preds: Mapping) -> pd.DataFrame:
    """The heatmaps' data (see the module docstring)."""
    x = _np(dataset.x_grid)
    grid = pd.DataFrame({"set": "grid", "x1": x[:, 0], "x2": x[:, 1]})
    if dataset.in_range is not None:
        grid["in_range"] = dataset.in_range.cpu().numpy()
    for kind, pred in preds.items():
        grid[f"{kind}_p1"] = _np(pred.probs[:, 1])
        grid[f"{kind}_entropy"] = _np(pred.entropy)
        grid[f"{kind}_mutual_info"] = _np(pred.mutual_info)
    xt = _np(dataset.x_train)
    train = pd.DataFrame(
        {"set": "train", "x1": xt[:, 0], "x2": xt[:, 1], "label": dataset.y_train.cpu().numpy()}
    )
    return pd.concat([grid, train], ignore_index=True)


def image_frame(dataset: Dataset, preds: Mapping) -> pd.DataFrame:
    """The test set's per-image predictions (see the module docstring)."""
    frame = pd.DataFrame({"index": np.arange(len(dataset.y_test))})
    frame["label"] = dataset.y_test.cpu().numpy()
    for kind, pred in preds.items():
        frame[f"{kind}_prediction"] = pred.prediction.cpu().numpy()
        frame[f"{kind}_confidence"] = _np(pred.confidence)
        frame[f"{kind}_entropy"] = _np(pred.entropy)
        frame[f"{kind}_mutual_info"] = _np(pred.mutual_info)
        probs = _np(pred.probs)
        for c in range(probs.shape[1]):
            frame[f"{kind}_p{c}"] = probs[:, c]
    return frame


def metrics_csv(metrics: Mapping[str, Mapping[str, float]]) -> str:
    """The metrics table (`bbb_core.plots.metrics_frame`) as CSV, one row per model."""
    return metrics_frame(metrics).to_csv()


def results(
    page: str,
    cfg: RunConfig,
    metrics: Mapping | None,
    data: Callable[[], pd.DataFrame],
    data_label: str = "Plotted data",
) -> None:
    """The metrics table (once finished) and the downloads: config, the data (`data()`, called
    only when the button is pressed: every finished view of every tab draws the buttons;
    `data_label` names it, e.g. "Test predictions") and metrics."""
    if metrics is None:
        st.caption("The metrics table and the downloads appear when training finishes.")
        return
    frame = metrics_frame(metrics).rename(index=model_label)
    number = st.column_config.NumberColumn(format="%.3f")
    st.dataframe(frame, column_config={c: number for c in frame.columns}, key=f"{page}-metrics")
    downloads = [
        ("Config (JSON)", config_json(cfg), "config.json", "application/json"),
        (
            f"{data_label} (CSV)",
            lambda: data().to_csv(index=False),
            _file_name(data_label),
            "text/csv",
        ),
        ("Metrics (CSV)", metrics_csv(metrics), "metrics.csv", "text/csv"),
    ]
    for col, (label, text, name, mime) in zip(st.columns(3), downloads, strict=True):
        col.download_button(
            label,
            text,
            file_name=f"bbb_{page}_{name}",
            mime=mime,
            on_click="ignore",
            icon=":material/download:",
            key=f"{page}-download-{name}",
            width="stretch",
        )


def _file_name(label: str) -> str:
    """ "Test predictions" -> "test_predictions.csv"."""
    return label.lower().replace(" ", "_") + ".csv"
