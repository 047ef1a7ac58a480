"""Metrics of a trained model on its dataset: what the CLI's JSON and the app's tables report.

Regression: on the test set `rmse`, `nll` (Gaussian with the total predictive std) and
`coverage_95` (share of test targets inside the central 95 % interval); on the evaluation grid
`mean_std_in_range` and `mean_std_out_of_range`, the epistemic std averaged over grid points
inside and outside the training range.

Classification: on the test set `accuracy`, `nll`, `brier`, `ece` (15 bins); against the OOD set
(the 2-D sets' far-away region, or the images' chosen OOD set) `ood_auroc_entropy` and
`ood_auroc_mi`: how well predictive entropy and mutual information tell OOD inputs from test
inputs (1 = perfectly, 0.5 = not at all).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from . import metrics
from .config import RunConfig
from .data.base import Dataset
from .predict import ClassificationPredictive, RegressionPredictive, predictive
from .rng import Streams, derive_seed, streams_for


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def primary_ood(dataset: Dataset, cfg: RunConfig) -> str | None:
    """The OOD set the metrics use: the config's choice, else "far" (2-D) / "gaussian_noise"."""
    for name in (cfg.data.ood, "far", "gaussian_noise"):
        if name is not None and name in dataset.ood:
            return name
    return None


def regression_metrics(
    test: RegressionPredictive, y_test: Tensor, grid: RegressionPredictive | None, in_range
) -> dict[str, float]:
    lo, hi = test.interval(0.95)
    out = {
        "rmse": metrics.rmse(test.mean, y_test),
        "nll": metrics.gaussian_nll(y_test, test.mean, test.total_std),
        "coverage_95": metrics.interval_coverage(y_test, lo, hi),
    }
    if grid is not None and in_range is not None:
        std = grid.epistemic_std
        out["mean_std_in_range"] = float(std[in_range].mean())
        out["mean_std_out_of_range"] = float(std[~in_range].mean())
    return out


def classification_metrics(
    test: ClassificationPredictive, y_test: Tensor, ood: ClassificationPredictive | None
) -> dict[str, float]:
    out = {
        "accuracy": metrics.accuracy(test.probs, y_test),
        "nll": metrics.categorical_nll(test.probs, y_test),
        "brier": metrics.brier_score(test.probs, y_test),
        "ece": metrics.ece(test.probs, y_test),
    }
    if ood is not None:
        out["ood_auroc_entropy"] = metrics.ood_auroc(test.entropy, ood.entropy)
        out["ood_auroc_mi"] = metrics.ood_auroc(test.mutual_info, ood.mutual_info)
    return out


EVAL_STREAM = 1  # the sub-stream of the run's seed that `evaluate` draws from by default


def evaluate(
    model: nn.Module, dataset: Dataset, cfg: RunConfig, rng: Streams | int | None = None
) -> dict[str, float]:
    """The run's metrics (see the module docstring), with `cfg.train.pred_samples` samples.

    Every metric is per input, so each layer may use its cheapest exact sampler (coherent=False).
    rng: the random streams (or a seed) of the Monte Carlo draws; None: streams of their own,
    derived from `cfg.seed`, so the same model and config always give the same metrics.
    """
    device, samples = _device(model), cfg.train.pred_samples
    streams = streams_for(rng) or Streams(derive_seed(cfg.seed, EVAL_STREAM))

    def predict(x):
        return predictive(model, x.to(device), samples, coherent=False, rng=streams)

    test = predict(dataset.x_test)
    y_test = dataset.y_test.to(device)
    if dataset.task == "regression":
        grid = None
        if dataset.x_grid is not None:
            grid = predict(dataset.x_grid)
        in_range = None if dataset.in_range is None else dataset.in_range.to(device)
        return regression_metrics(test, y_test, grid, in_range)
    name = primary_ood(dataset, cfg)
    ood = None if name is None else predict(dataset.ood[name])
    return classification_metrics(test, y_test, ood)
