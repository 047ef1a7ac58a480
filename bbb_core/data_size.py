"""Does more data help? Epistemic against aleatoric uncertainty as the training set grows.

Epistemic uncertainty is what the model does not know because it has not seen enough data: it
falls as the training set grows. Aleatoric uncertainty is the noise in the data itself (the
border between two classes, a digit half 4 and half 9, the scatter of y around the curve): more
data does not remove it (Kendall and Gal, NeurIPS 2017). `data_size_sweep(cfg, sizes)` trains
the run `cfg` on training sets of each size and measures both on the same test set:

- classification: the mean mutual information (epistemic) and the mean expected entropy
  (aleatoric) of the predictive over the test inputs, in nats, with the test accuracy;
- regression: the mean epistemic std and the mean aleatoric std over the test inputs, in the
  target's units (with a `hetero` noise model the aleatoric part is learned per input), with
  the test RMSE.

Every size trains for the same number of optimiser steps as `cfg` takes on its own training set
(fewer points per epoch, more epochs), so a small set is not also an under-trained one; the
toy sets and the image sets keep their test set whatever the training-set size, and a smaller
set is a seeded subset.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import torch

from .config import LIMITS, RunConfig, steps_per_epoch
from .data import make_dataset
from .predict import ClassificationPredictive, predictive
from .rng import derive_seed
from .train import Trainer

SWEEP_STREAM = 4  # the sub-stream of the run's seed that the sweep's predictives draw from


@dataclass(frozen=True)
class SizePoint:
    """One model trained on `n_train` points, measured on the test set."""

    n_train: int
    kind: str  # "bbb", "dropout", "ensemble", "standard", ...
    epistemic: float  # mean mutual information (nats) / mean epistemic std (target units)
    aleatoric: float  # mean expected entropy (nats) / mean aleatoric std (target units)
    score: float  # test accuracy (classification) / test RMSE (regression)
    epochs: int  # epochs trained (the same number of steps for every size)


def epochs_for(cfg: RunConfig, n_full: int, n: int) -> int:
    """Epochs that give a training set of n points as many optimiser steps as `cfg` takes on
    n_full points (at most the config's bound on epochs)."""
    steps = cfg.train.epochs * steps_per_epoch(n_full, cfg.train.batch_size)
    epochs = math.ceil(steps / steps_per_epoch(n, cfg.train.batch_size))
    return min(epochs, int(LIMITS["train.epochs"].high))


def _measure(pred, y_test: torch.Tensor) -> tuple[float, float, float]:
    if isinstance(pred, ClassificationPredictive):
        accuracy = (pred.prediction == y_test).double().mean()
        return float(pred.mutual_info.mean()), float(pred.expected_entropy.mean()), float(accuracy)
    rmse = (pred.mean - y_test.reshape(pred.mean.shape)).square().mean().sqrt()
    return float(pred.epistemic_std.mean()), float(pred.aleatoric_std.mean()), float(rmse)


def data_size_sweep(
    cfg: RunConfig,
    sizes: Sequence[int],
    kinds: Sequence[str] = ("bbb",),
    samples: int | None = None,
    on_point: Callable[[SizePoint], None] | None = None,
    n_full: int | None = None,
) -> list[SizePoint]:
    """Train each of `kinds` on training sets of each of `sizes` and measure the split.

    `cfg` is the run at its own training-set size (its data, network, prior and training);
    `samples` the predictive's Monte Carlo samples (default `cfg.train.pred_samples`);
    `on_point` is called with each point as it is measured (for progress); `n_full` is `cfg`'s
    own training-set size when the caller knows it (else the data set is made to count it).
    Points come in the order of `sizes`, then `kinds`.
    """
    if not sizes or any(n < 2 for n in sizes):
        raise ValueError(f"sizes must be training-set sizes of at least 2; got {list(sizes)}")
    if n_full is None:
        n_full = make_dataset(cfg.data, cfg.seed).n_train
    samples = cfg.train.pred_samples if samples is None else samples
    seed = derive_seed(cfg.seed, SWEEP_STREAM)
    points = []
    for n in sizes:
        data = replace(cfg.data, n_train=n)  # an image set keeps all it has when n is more
        dataset = make_dataset(data, cfg.seed)
        epochs = epochs_for(cfg, n_full, dataset.n_train)
        for kind in kinds:
            run = replace(
                cfg,
                data=data,
                model=replace(cfg.model, kind=kind),
                train=replace(cfg.train, epochs=epochs),
            )
            trainer = Trainer(run, dataset=dataset)
            trainer.run()
            x_test = dataset.x_test.to(trainer.device)
            pred = predictive(trainer.model, x_test, samples, coherent=False, rng=seed)
            epistemic, aleatoric, score = _measure(pred, dataset.y_test.to(trainer.device))
            point = SizePoint(dataset.n_train, kind, epistemic, aleatoric, score, epochs)
            points.append(point)
            if on_point is not None:
                on_point(point)
    return points
