"""Tests for `bbb_core.predict`: the uncertainty decompositions add up exactly (float64, random
tensors), entropies against `torch.distributions.Categorical`, Gaussian quantiles against scipy,
chunked Monte Carlo calls against one big call, and the predictive of each model kind."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import assert_close
from scipy.stats import norm
from torch.distributions import Categorical, Dirichlet

from bbb_core import predict
from bbb_core.config import DataConfig, ModelConfig, PriorConfig
from bbb_core.data import make_dataset
from bbb_core.layers import posterior_mean
from bbb_core.models import build_model
from bbb_core.predict import (
    ClassificationPredictive,
    RegressionPredictive,
    decompose_classification,
    decompose_regression,
    entropy,
    normal_quantile,
    predictive,
    sample_outputs,
)

pytestmark = pytest.mark.usefixtures("single_thread")

F64 = torch.float64
EXACT = {"rtol": 1e-12, "atol": 1e-12}


def sample_probs(s: int = 30, b: int = 40, c: int = 3, concentration: float = 0.7) -> torch.Tensor:
    return Dirichlet(torch.full((c,), concentration, dtype=F64)).sample((s, b))


def model_and_data(task: str, kind: str = "bbb", **fields):
    name = "blundell" if task == "regression" else "moons"
    ds = make_dataset(DataConfig(name=name, n_train=30), 0)
    cfg = ModelConfig(kind=kind, hidden=(8, 8), ensemble_size=3, **fields)
    return build_model(cfg, PriorConfig(), ds), ds


# --- pure decompositions --------------------------------------------------------------------------


@pytest.mark.parametrize("s", [2, 7, 100])
def test_regression_decomposition_is_the_law_of_total_variance(s):
    means = torch.randn(s, 50, dtype=F64)
    variances = torch.rand(s, 50, dtype=F64) * 2
    mean, aleatoric, epistemic = decompose_regression(means, variances)
    assert_close(mean, means.mean(0), **EXACT)
    assert_close(aleatoric, variances.mean(0), **EXACT)
    assert_close(epistemic, means.var(0, unbiased=False), **EXACT)
    # the equal-weight mixture of N(m_s, v_s) has variance E[v + m^2] - E[m]^2
    mixture_var = (variances + means**2).mean(0) - means.mean(0) ** 2
    pred = RegressionPredictive(mean, aleatoric, epistemic, means[:3])
    assert_close(pred.total_var, mixture_var, **EXACT)
    assert_close(pred.total_var, pred.aleatoric_var + pred.epistemic_var, rtol=0, atol=0)
    assert_close(pred.total_std**2, pred.total_var, **EXACT)
    assert_close(pred.epistemic_std, epistemic.sqrt(), rtol=0, atol=0)
    assert_close(pred.aleatoric_std, aleatoric.sqrt(), rtol=0, atol=0)


def test_regression_decomposition_single_sample_has_no_epistemic_part():
    means, variances = torch.randn(1, 5, dtype=F64), torch.rand(1, 5, dtype=F64)
    _, aleatoric, epistemic = decompose_regression(means, variances)
    assert (epistemic == 0).all()
    assert_close(aleatoric, variances[0], rtol=0, atol=0)


@pytest.mark.parametrize("c", [2, 3, 10])
def test_classification_decomposition_adds_up(c):
    p = sample_probs(c=c)
    total, expected, mi = decompose_classification(p)
    assert_close(total, Categorical(probs=p.mean(0)).entropy(), **EXACT)
    assert_close(expected, Categorical(probs=p).entropy().mean(0), **EXACT)
    assert_close(total, expected + mi, **EXACT)
    assert (mi >= 0).all() and (mi <= math.log(c) + 1e-12).all()


def test_classification_decomposition_hand_computed():
    # two confident samples that disagree: total log 2, aleatoric 0, epistemic log 2;
    # two samples that agree on 50/50: total log 2, aleatoric log 2, epistemic 0
    p = torch.tensor([[[1.0, 0.0], [0.5, 0.5]], [[0.0, 1.0], [0.5, 0.5]]], dtype=F64)
    total, expected, mi = decompose_classification(p)
    log2 = math.log(2)
    assert_close(total, torch.tensor([log2, log2], dtype=F64), **EXACT)
    assert_close(expected, torch.tensor([0.0, log2], dtype=F64), **EXACT)
    assert_close(mi, torch.tensor([log2, 0.0], dtype=F64), **EXACT)


@pytest.mark.parametrize("c", [2, 5])
def test_entropy_matches_categorical(c):
    p = sample_probs(s=1, b=100, c=c)[0]
    assert_close(entropy(p), Categorical(probs=p).entropy(), **EXACT)
    # 0 log 0 = 0: a one-hot distribution has no entropy, and no NaN
    one_hot = torch.eye(c, dtype=F64)
    assert_close(entropy(one_hot), torch.zeros(c), rtol=0, atol=0)
    assert entropy(torch.full((c,), 1 / c, dtype=F64)).item() == pytest.approx(
        math.log(c), abs=1e-14
    )


# --- intervals ------------------------------------------------------------------------------------


@pytest.mark.parametrize("level", [0.5, 0.68, 0.9, 0.95, 0.99])
def test_normal_quantile_matches_scipy(level):
    assert normal_quantile(level) == pytest.approx(norm.ppf((1 + level) / 2), rel=1e-9)


def test_95_percent_interval_uses_1_96():
    mean = torch.tensor([0.0, 1.0, -2.0], dtype=F64)
    pred = RegressionPredictive(
        mean,
        torch.tensor([1.0, 0.25, 4.0], dtype=F64),
        torch.tensor([0.0, 0.75, 5.0], dtype=F64),
        mean[None],
    )
    total_std = torch.tensor([1.0, 1.0, 3.0], dtype=F64)
    lo, hi = pred.interval(0.95)
    assert_close(hi - mean, 1.959963984540054 * total_std, **EXACT)
    assert_close(mean - lo, 1.959963984540054 * total_std, **EXACT)
    lo, hi = pred.interval(0.95, part="epistemic")
    assert_close(hi - mean, 1.959963984540054 * pred.epistemic_std, **EXACT)
    lo, hi = pred.interval(0.5)
    assert_close(hi - lo, 2 * 0.6744897501960817 * total_std, **EXACT)


# --- Monte Carlo predictive -----------------------------------------------------------------------


@pytest.mark.parametrize("samples", [0, -3])
def test_zero_samples_raise(samples):
    model, ds = model_and_data("regression")
    with pytest.raises(ValueError, match="samples"):
        predictive(model, ds.x_test, samples)


@pytest.mark.parametrize("task", ["regression", "classification"])
@pytest.mark.parametrize("max_elements", [8 * 12, 8 * 60, 8 * 1000])
def test_chunked_calls_equal_one_big_call(monkeypatch, task, max_elements):
    # posterior mean: a deterministic model, so chunking changes nothing but float32 rounding
    # (matrix products of other shapes may round differently in the last bit)
    model, ds = model_and_data(task)
    x = ds.x_test[:30]
    with posterior_mean(model):
        big = sample_outputs(model, x, 7)
        monkeypatch.setitem(predict._MAX_ELEMENTS, "cpu", max_elements)
        chunked = sample_outputs(model, x, 7)
        pred_chunked = predictive(model, x, 7)
        monkeypatch.undo()
        pred_big = predictive(model, x, 7)
    assert chunked.shape == big.shape == (7, 30, model.likelihood.out_features)
    assert_close(chunked, big, rtol=1e-5, atol=1e-6)
    fields = (
        ("mean", "aleatoric_var", "epistemic_var")
        if task == "regression"
        else ("probs", "entropy", "expected_entropy", "mutual_info")
    )
    for name in fields:
        assert_close(getattr(pred_chunked, name), getattr(pred_big, name), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("max_elements", [8 * 12, 8 * 60])
def test_chunked_bbb_samples_keep_their_shape_and_differ(monkeypatch, max_elements):
    model, ds = model_and_data("regression")
    monkeypatch.setitem(predict._MAX_ELEMENTS, "cpu", max_elements)
    out = sample_outputs(model, ds.x_test[:30], 7)
    assert out.shape == (7, 30, 1)
    flat = out.flatten(1)
    assert all(not torch.allclose(flat[0], flat[s]) for s in range(1, 7))


def test_chunked_ensemble_returns_its_k_members_once(monkeypatch):
    model, ds = model_and_data("classification", kind="ensemble")
    big = sample_outputs(model, ds.x_test[:20], 100)
    assert big.shape[0] == 3
    monkeypatch.setitem(predict._MAX_ELEMENTS, "cpu", 8 * 10)  # forces s_chunk = 1 for 20 inputs
    assert sample_outputs(model, ds.x_test[:20], 100).shape == big.shape


@pytest.mark.parametrize("task", ["regression", "classification"])
def test_predictive_types_shapes_and_draws(task):
    model, ds = model_and_data(task)
    x = ds.x_test[:25]
    pred = predictive(model, x, samples=12, draws=4)
    if task == "regression":
        assert isinstance(pred, RegressionPredictive)
        assert pred.mean.shape == pred.aleatoric_var.shape == pred.epistemic_var.shape == (25,)
        assert pred.draws.shape == (4, 25)
        assert (pred.epistemic_var > 0).all() and (pred.aleatoric_var > 0).all()
        assert not pred.mean.requires_grad
    else:
        assert isinstance(pred, ClassificationPredictive)
        assert pred.probs.shape == pred.probs_std.shape == (25, 2)
        assert_close(pred.probs.sum(-1), torch.ones(25), rtol=0, atol=1e-6)
        assert_close(pred.entropy, pred.expected_entropy + pred.mutual_info, rtol=0, atol=1e-6)
        assert (pred.prediction == pred.probs.argmax(-1)).all()
        assert_close(pred.confidence, pred.probs.max(-1).values, rtol=0, atol=0)


@pytest.mark.parametrize("task", ["regression", "classification"])
def test_standard_network_has_no_epistemic_uncertainty(task):
    model, ds = model_and_data(task, kind="standard")
    pred = predictive(model, ds.x_test, samples=20)
    if task == "regression":
        assert (pred.epistemic_var == 0).all()
    else:
        assert pred.mutual_info.abs().max() < 1e-6


@pytest.mark.parametrize("was_training", [True, False])
def test_mc_dropout_stays_on_and_the_mode_is_restored(was_training):
    model, ds = model_and_data("regression", kind="dropout", dropout=0.3)
    model.train(was_training)
    pred = predictive(model, ds.x_test[:20], samples=30)
    assert (pred.epistemic_var > 0).all()
    assert model.training is was_training
    bbb, _ = model_and_data("regression")
    bbb.train()
    predictive(bbb, ds.x_test[:5], samples=3)
    assert bbb.training


def test_ensemble_uses_its_members_as_samples():
    model, ds = model_and_data("regression", kind="ensemble")
    x = ds.x_test[:10]
    pred = predictive(model, x, samples=100)
    with torch.no_grad():
        means = torch.stack([m(x)[0, :, 0] for m in model.members])
    assert_close(pred.mean, means.mean(0), rtol=1e-6, atol=1e-6)
    assert_close(pred.epistemic_var, means.var(0, unbiased=False), rtol=1e-5, atol=1e-8)
    assert pred.draws.shape[0] == 3


@pytest.mark.parametrize("estimator", ["reparam", "local", "flipout"])
def test_coherent_draws_are_sampled_networks_not_per_input_noise(estimator):
    """Sample s is one network: fed the same input twice, it answers the same twice."""
    model, ds = model_and_data("regression", estimator=estimator)
    x = ds.x_test[:5].repeat(2, 1)  # rows i and i + 5 are identical inputs
    out = sample_outputs(model, x, 40)
    # equal up to float32 rounding (a matrix product may round rows differently by position);
    # independent noise per input would differ by the posterior's spread, about 1e-2 here
    assert_close(out[:, :5], out[:, 5:], rtol=1e-5, atol=1e-6)
    assert (out[1:, :5] - out[:-1, :5]).abs().max() > 1e-3  # and the samples do differ
    if estimator == "local":  # the cheapest route may sample each input independently
        loose = sample_outputs(model, x, 40, coherent=False)
        assert loose.shape == out.shape


def test_deterministic_network_has_exactly_zero_mutual_information():
    model, ds = model_and_data("classification", kind="standard")
    pred = predictive(model, ds.x_test, samples=7)
    assert torch.equal(pred.mutual_info, torch.zeros_like(pred.mutual_info))
    assert torch.equal(pred.entropy, pred.expected_entropy)
