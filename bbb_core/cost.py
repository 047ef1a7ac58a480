"""How long a run would train, before it starts: a rough estimate from its size.

A link or a command line can ask for a run of hours (the largest network, epochs and training
set together), and an app shared by a class should say so rather than start it silently.
`estimate_seconds(cfg, kinds, dataset)` multiplies the run's optimiser steps by a step's cost:
a fixed cost per step (the small networks' steps are a few dozen tiny operations each) plus its
multiply-adds, forward and backward, at a rate of `MAC_RATE` per second. The constants were set
from one thread of a 2-core machine with `python -m bbb_core bench --parts toy_step` (a BBB step
of the app's 2-32-32-2 network on 200 points took about 1.6 ms, a standard one 0.7 ms: the fixed
costs below plus the multiply-adds): an order of magnitude, which is all a "this would take
about 3 hours" needs. `dataset` is anything with `n_train`, `input_shape`, `task` and
`n_classes` (a `Dataset`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from .config import RunConfig, steps_per_epoch
from .data.base import Dataset

STEP_SECONDS = {"bbb": 1.5e-3, "standard": 0.5e-3, "dropout": 0.6e-3, "map": 0.8e-3}
KIND_WORK = {"bbb": 3.0, "standard": 1.0, "dropout": 1.0, "map": 1.0}  # multiply-adds, relative
MAC_RATE = 2e9  # multiply-adds per second of a training step (forward and backward), one thread
BACKWARD = 3.0  # a step's multiply-adds: the forward pass's, times this


def multiply_adds(cfg: RunConfig, dataset: Dataset) -> int:
    """Multiply-adds of one example's forward pass through `cfg`'s network: an MLP of its
    widths, or a CNN of 3x3 convolutions of its channels, each followed by 2x2 pooling while the
    image is at least 4 pixels wide, and a dense output layer."""
    n_out = dataset.n_classes if dataset.task == "classification" else 2
    total = 0
    if cfg.model.arch == "cnn":
        channels, height, width = dataset.input_shape
        for c in cfg.model.hidden:
            total += channels * c * 9 * height * width
            if min(height, width) >= 4:
                height, width = height // 2, width // 2
            channels = c
        return total + channels * height * width * n_out
    n_in = math.prod(dataset.input_shape)
    for units in cfg.model.hidden:
        total += n_in * units
        n_in = units
    return total + n_in * n_out


def estimate_seconds(cfg: RunConfig, kinds: Sequence[str], dataset: Dataset) -> float:
    """Rough training seconds of `kinds` (an ensemble counts its members) on `dataset`."""
    n = dataset.n_train
    rows = n if cfg.train.batch_size is None else min(n, cfg.train.batch_size)
    macs = multiply_adds(cfg, dataset) * rows * BACKWARD / MAC_RATE
    total = 0.0
    for kind in kinds:
        copies = cfg.model.ensemble_size if kind == "ensemble" else 1
        samples = cfg.train.train_samples if kind in ("bbb", "dropout") else 1
        base = "standard" if kind == "ensemble" else kind
        per_step = STEP_SECONDS.get(base, 1e-3) + macs * KIND_WORK.get(base, 1.0) * samples
        total += copies * cfg.train.epochs * steps_per_epoch(n, cfg.train.batch_size) * per_step
    return total


def duration(seconds: float) -> str:
    """90 -> "2 minutes", 5400 -> "1.5 hours", 10 days as days."""
    if seconds < 90:
        return f"{math.ceil(seconds)} seconds"
    if seconds < 5400:
        return f"{round(seconds / 60)} minutes"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} hours"
    return f"{seconds / 86400:.0f} days"
