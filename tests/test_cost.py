"""Tests for `bbb_core.cost`: the rough training-time estimate a long run is announced by."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bbb_core.config import default_config
from bbb_core.cost import duration, estimate_seconds, multiply_adds
from bbb_core.data import make_dataset


def _setup(name: str = "moons"):
    cfg = default_config(name, device="cpu")
    return cfg, make_dataset(cfg.data, 0)


def test_the_defaults_are_estimated_at_seconds():
    for name in ("blundell", "moons"):  # measured: 1.7 s and 1.3 s of training on one thread
        cfg, ds = _setup(name)
        assert 0.5 < estimate_seconds(cfg, ("bbb", "standard"), ds) < 10


def test_the_estimate_grows_with_every_size():
    cfg, ds = _setup()
    base = estimate_seconds(cfg, ("bbb",), ds)
    double = replace(cfg, train=replace(cfg.train, epochs=2 * cfg.train.epochs))
    assert estimate_seconds(double, ("bbb",), ds) == pytest.approx(2 * base)
    assert estimate_seconds(cfg, ("bbb", "standard"), ds) > base
    wide = replace(cfg, model=replace(cfg.model, hidden=(512, 512)))
    assert estimate_seconds(wide, ("bbb",), ds) > base
    samples = replace(cfg, train=replace(cfg.train, train_samples=8))
    assert estimate_seconds(samples, ("bbb",), ds) > base
    members = estimate_seconds(cfg, ("ensemble",), ds)
    assert members == pytest.approx(
        cfg.model.ensemble_size * estimate_seconds(cfg, ("standard",), ds)
    )


def test_the_heaviest_valid_link_is_estimated_at_days():
    cfg = default_config("blundell", device="cpu")
    heavy = replace(
        cfg,
        data=replace(cfg.data, n_train=2000),
        model=replace(cfg.model, hidden=(1024,) * 4, ensemble_size=10),
        train=replace(cfg.train, epochs=20000, batch_size=8, train_samples=16),
    )
    seconds = estimate_seconds(
        heavy, ("bbb", "standard", "dropout", "ensemble"), make_dataset(heavy.data, 0)
    )
    assert seconds > 86400


def test_multiply_adds_count_the_dense_layers():
    cfg, ds = _setup()  # 2 inputs, 32, 32, 2 classes
    assert multiply_adds(cfg, ds) == 2 * 32 + 32 * 32 + 32 * 2


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (5, "5 seconds"),
        (89.2, "90 seconds"),
        (600, "10 minutes"),
        (5400, "1.5 hours"),
        (864000, "10 days"),
    ],
)
def test_durations_read_naturally(seconds, text):
    assert duration(seconds) == text
