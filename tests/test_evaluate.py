"""Tests for `bbb_core.evaluate`: the metric keys of each task, the metrics against
`bbb_core.metrics` on hand-made predictives, the choice of OOD set, and (marked slow) the
behaviour the app promises on the default settings: on Blundell's curve BBB's epistemic std
grows >= 5x outside the training range, the standard network has none and BBB's mean fits to
about the noise level; on moons BBB's mutual information is higher far from the data."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from bbb_core import metrics
from bbb_core.config import (
    CLASSIFICATION_DATASETS,
    REGRESSION_DATASETS,
    DataConfig,
    RunConfig,
    default_config,
)
from bbb_core.data import Dataset, make_dataset
from bbb_core.evaluate import classification_metrics, evaluate, primary_ood, regression_metrics
from bbb_core.models import build_model
from bbb_core.predict import ClassificationPredictive, RegressionPredictive, predictive
from bbb_core.train import train

pytestmark = pytest.mark.usefixtures("single_thread")

F64 = torch.float64
REGRESSION_KEYS = {"rmse", "nll", "coverage_95", "mean_std_in_range", "mean_std_out_of_range"}
CLASSIFICATION_KEYS = {"accuracy", "nll", "brier", "ece", "ood_auroc_entropy", "ood_auroc_mi"}


def untrained(name: str, kind: str = "bbb") -> tuple[torch.nn.Module, Dataset, RunConfig]:
    cfg = default_config(name, device="cpu")
    cfg = replace(
        cfg,
        data=replace(cfg.data, n_train=30),
        model=replace(cfg.model, kind=kind, hidden=(8,), ensemble_size=2),
        train=replace(cfg.train, pred_samples=5),
    )
    ds = make_dataset(cfg.data, cfg.seed)
    return build_model(cfg.model, cfg.prior, ds), ds, cfg


@pytest.mark.parametrize("name", REGRESSION_DATASETS + CLASSIFICATION_DATASETS)
def test_metric_keys_per_task(name):
    model, ds, cfg = untrained(name)
    got = evaluate(model, ds, cfg)
    expected = REGRESSION_KEYS if name in REGRESSION_DATASETS else CLASSIFICATION_KEYS
    assert set(got) == expected
    assert all(isinstance(v, float) and math.isfinite(v) for v in got.values())


@pytest.mark.parametrize("kind", ["standard", "dropout", "ensemble"])
def test_baselines_evaluate(kind):
    model, ds, cfg = untrained("blundell", kind)
    got = evaluate(model, ds, cfg)
    assert set(got) == REGRESSION_KEYS
    if kind == "standard":  # a point estimate has no epistemic spread, anywhere
        assert got["mean_std_in_range"] == 0.0 and got["mean_std_out_of_range"] == 0.0
    else:
        assert got["mean_std_in_range"] > 0 and got["mean_std_out_of_range"] > 0


def test_regression_metrics_against_hand_made_predictive():
    mean = torch.tensor([0.0, 1.0, 2.0, 3.0], dtype=F64)
    aleatoric = torch.tensor([1.0, 1.0, 0.25, 0.25], dtype=F64)
    epistemic = torch.tensor([0.0, 3.0, 0.0, 0.75], dtype=F64)  # total std 1, 2, 0.5, 1
    test = RegressionPredictive(mean, aleatoric, epistemic, mean[None])
    y = torch.tensor([1.0, 5.0, 2.0, 3.5], dtype=F64)  # z = 1, 2.0 (outside), 0, 0.5
    grid = RegressionPredictive(
        torch.zeros(4, dtype=F64),
        torch.ones(4, dtype=F64),
        torch.tensor([0.04, 0.16, 1.0, 9.0], dtype=F64),  # std 0.2, 0.4, 1, 3
        torch.zeros(1, 4, dtype=F64),
    )
    in_range = torch.tensor([True, True, False, False])
    got = regression_metrics(test, y, grid, in_range)
    total_std = torch.tensor([1.0, 2.0, 0.5, 1.0], dtype=F64)
    assert got["rmse"] == pytest.approx(math.sqrt((1 + 16 + 0 + 0.25) / 4), rel=1e-12)
    assert got["nll"] == pytest.approx(metrics.gaussian_nll(y, mean, total_std), rel=1e-12)
    assert got["coverage_95"] == pytest.approx(0.75, abs=1e-12)  # |z| = 2.0 > 1.96 is out
    assert got["mean_std_in_range"] == pytest.approx(0.3, rel=1e-12)
    assert got["mean_std_out_of_range"] == pytest.approx(2.0, rel=1e-12)
    assert set(regression_metrics(test, y, None, None)) == {"rmse", "nll", "coverage_95"}


def test_classification_metrics_against_metrics_module():
    g = torch.Generator().manual_seed(0)
    probs = torch.softmax(torch.randn(50, 3, generator=g, dtype=F64), -1)
    y = torch.randint(0, 3, (50,), generator=g)
    zeros = torch.zeros(50, dtype=F64)
    entropy_in = torch.rand(50, generator=g, dtype=F64)
    mi_in = torch.rand(50, generator=g, dtype=F64)
    test = ClassificationPredictive(probs, zeros[:, None], entropy_in, zeros, mi_in)
    ood = ClassificationPredictive(
        probs[:20], zeros[:20, None], entropy_in[:20] + 0.5, zeros[:20], mi_in[:20] * 0.5
    )
    got = classification_metrics(test, y, ood)
    assert got["accuracy"] == metrics.accuracy(probs, y)
    assert got["nll"] == metrics.categorical_nll(probs, y)
    assert got["brier"] == metrics.brier_score(probs, y)
    assert got["ece"] == metrics.ece(probs, y)
    assert got["ood_auroc_entropy"] == metrics.ood_auroc(entropy_in, entropy_in[:20] + 0.5)
    assert got["ood_auroc_mi"] == metrics.ood_auroc(mi_in, mi_in[:20] * 0.5)
    assert set(classification_metrics(test, y, None)) == CLASSIFICATION_KEYS - {
        "ood_auroc_entropy",
        "ood_auroc_mi",
    }


def test_primary_ood_choice():
    x = torch.zeros(3, 2)
    ds = Dataset(
        "moons",
        "classification",
        x,
        x[:, 0].long(),
        x,
        x[:, 0].long(),
        ood={"far": x, "gaussian_noise": x, "letters": x},
    )
    assert primary_ood(ds, RunConfig()) == "far"
    assert primary_ood(ds, RunConfig(data=DataConfig(ood="letters"))) == "letters"
    ds.ood.pop("far")
    assert primary_ood(ds, RunConfig()) == "gaussian_noise"
    ds.ood.clear()
    assert primary_ood(ds, RunConfig()) is None


# --- behaviour on the defaults (each trains a default model: seconds, hence slow) -----------------


@pytest.fixture(scope="module")
def blundell_bbb():
    return train(default_config("blundell", device="cpu"))


@pytest.fixture(scope="module")
def blundell_standard():
    cfg = default_config("blundell", device="cpu")
    return train(replace(cfg, model=replace(cfg.model, kind="standard")))


@pytest.fixture(scope="module")
def moons_bbb():
    return train(default_config("moons", device="cpu"))


@pytest.mark.slow
def test_blundell_bbb_uncertainty_grows_outside_the_training_range(blundell_bbb):
    m = blundell_bbb.metrics
    assert m["mean_std_in_range"] > 0
    assert m["mean_std_out_of_range"] >= 5 * m["mean_std_in_range"]  # ~20-30x in practice


@pytest.mark.slow
def test_blundell_standard_network_has_no_epistemic_std(blundell_standard):
    m = blundell_standard.metrics
    assert m["mean_std_in_range"] == 0.0 and m["mean_std_out_of_range"] == 0.0
    pred = predictive(blundell_standard.model, blundell_standard.dataset.x_grid, samples=10)
    assert (pred.epistemic_var == 0).all()


@pytest.mark.slow
def test_blundell_bbb_fits_to_about_the_noise_level(blundell_bbb):
    # Blundell's noise enters through the input, y = f(x + e), so the std of y given x is
    # noise * |f'(x)|-ish and varies with x (`Dataset.noise_grid`, exact). Even the true
    # conditional mean has a test RMSE of sqrt(mean noise variance at the test x) (~0.063);
    # a good fit is within 1.5x of that (BBB: ~1.05x).
    ds = blundell_bbb.dataset
    std_at_test = np.interp(ds.x_test[:, 0].numpy(), ds.x_grid[:, 0].numpy(), ds.noise_grid.numpy())
    noise_rmse = float(np.sqrt(np.mean(std_at_test**2)))
    assert 0.05 < noise_rmse < 0.08  # the bound is about this data set
    assert blundell_bbb.metrics["rmse"] < 1.5 * noise_rmse


@pytest.mark.slow
def test_moons_bbb_mutual_information_higher_far_from_the_data(moons_bbb):
    ds = moons_bbb.dataset
    far = predictive(moons_bbb.model, ds.ood["far"], samples=200).mutual_info.mean()
    near = predictive(moons_bbb.model, ds.x_test, samples=200).mutual_info.mean()
    assert far > 1.3 * near  # ~2x in practice
    assert moons_bbb.metrics["accuracy"] > 0.9
