"""Tests for `bbb_core.data_size`: the sweep's steps, its points, and what more data does to the
two kinds of uncertainty (measured numbers in docs/data_size.md); and its figure."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bbb_core.config import default_config
from bbb_core.data_size import SizePoint, data_size_sweep, epochs_for
from bbb_core.plots import data_size_figure


def test_every_size_trains_the_same_number_of_steps():
    digits = default_config("digits")  # batch 128, 60 epochs on 1,437 images: 12 steps each
    assert epochs_for(digits, 1437, 1437) == 60
    assert epochs_for(digits, 1437, 50) == 720  # one step an epoch
    assert epochs_for(digits, 1437, 300) == 240  # three steps an epoch
    blundell = default_config("blundell")  # full batch: one step an epoch whatever the size
    assert epochs_for(blundell, 200, 20) == blundell.train.epochs
    assert (
        epochs_for(replace(digits, train=replace(digits.train, epochs=100000)), 1437, 2) == 100000
    )


def test_the_sweep_reports_a_point_per_size_and_model_in_order():
    cfg = default_config("moons", device="cpu")
    cfg = replace(cfg, model=replace(cfg.model, hidden=(8,)), train=replace(cfg.train, epochs=5))
    seen = []
    points = data_size_sweep(
        cfg, [20, 60], kinds=("bbb", "standard"), samples=4, on_point=seen.append
    )
    assert points == seen
    assert [(p.n_train, p.kind) for p in points] == [
        (20, "bbb"), (20, "standard"), (60, "bbb"), (60, "standard")
    ]  # fmt: skip
    standard = [p for p in points if p.kind == "standard"]
    assert all(p.epistemic == 0.0 for p in standard)  # one network: nothing to disagree about
    assert all(0.0 <= p.score <= 1.0 and p.aleatoric >= 0 for p in points)
    with pytest.raises(ValueError, match="sizes"):
        data_size_sweep(cfg, [1])


@pytest.mark.slow
def test_more_points_shrink_the_epistemic_part_not_the_noise(single_thread):
    """Heteroscedastic regression (seed 0): from 100 to 800 points BBB's mean epistemic std
    falls to under half (0.18 to 0.05 in docs/data_size.md), while its aleatoric std stays at the
    data's noise, about 0.30."""
    cfg = default_config("hetero", device="cpu")
    small, large = data_size_sweep(cfg, [100, 800], samples=50)
    assert large.epistemic < small.epistemic / 2
    assert 0.25 < large.aleatoric < 0.4 and 0.25 < small.aleatoric < 0.6


@pytest.mark.slow
def test_on_the_digits_fifty_images_leave_more_epistemic_uncertainty_than_all(single_thread):
    cfg = default_config("digits", device="cpu")
    small, full = data_size_sweep(cfg, [50, 1437], samples=30)
    assert small.n_train == 50 and full.n_train == 1437
    assert small.epistemic > 1.5 * full.epistemic
    assert small.score < full.score


def test_the_figure_has_an_epistemic_and_an_aleatoric_line_per_model():
    points = [
        SizePoint(n, kind, 1.0 / n, 0.3, 0.9, 10) for n in (10, 100) for kind in ("bbb", "dropout")
    ]
    fig = data_size_figure(points, "regression")
    assert [t.name for t in fig.data] == ["BBB", "BBB", "MC dropout", "MC dropout"]
    assert [t.showlegend for t in fig.data] == [True, False, True, False]
    assert list(fig.data[0].x) == [10, 100] and list(fig.data[0].y) == [0.1, 0.01]
    assert fig.layout.xaxis.type == "log" and fig.layout.xaxis2.type == "log"
    titles = [a.text for a in fig.layout.annotations]
    assert titles == ["epistemic std", "aleatoric std"]
    classification = data_size_figure(points, "classification")
    assert "mutual information" in classification.layout.annotations[0].text
