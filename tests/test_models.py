"""Tests for `bbb_core.models`: output shapes of every model kind and architecture, the KL of the
baselines, MC dropout and ensemble samples, regression standardisation (outputs in data units),
and the likelihood heads against `torch.distributions`."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import assert_close
from torch import nn
from torch.distributions import Categorical, Normal

from bbb_core.config import DataConfig, ModelConfig, PriorConfig
from bbb_core.data import Dataset, make_dataset
from bbb_core.layers import BayesianConv2d, BayesianLinear, bayesian_layers, posterior_mean
from bbb_core.models import (
    CategoricalLikelihood,
    Ensemble,
    GaussianLikelihood,
    Network,
    build_model,
)

pytestmark = pytest.mark.usefixtures("single_thread")

F64 = torch.float64
KINDS = ("bbb", "standard", "dropout", "ensemble")
K = 3  # ensemble members


def image_dataset(n: int = 12, classes: int = 10) -> Dataset:
    """Digits-shaped random data: (N, 1, 8, 8) images, int64 labels."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, 1, 8, 8, generator=g)
    y = torch.randint(0, classes, (n,), generator=g)
    return Dataset("digits", "classification", x, y, x, y, n_classes=classes)


def toy(name: str, n: int = 20) -> Dataset:
    return make_dataset(DataConfig(name=name, n_train=n), 0)


SETUPS = {  # name -> (dataset factory, arch, hidden, output width)
    "regression-mlp": (lambda: toy("blundell"), "mlp", (8, 8), 1),
    "classification-mlp": (lambda: toy("moons"), "mlp", (8,), 2),
    "image-mlp": (image_dataset, "mlp", (16,), 10),
    "image-cnn": (image_dataset, "cnn", (4, 8), 10),
}


def build(kind: str, setup: str, **model_fields) -> tuple[nn.Module, Dataset]:
    make, arch, hidden, _ = SETUPS[setup]
    ds = make()
    cfg = ModelConfig(kind=kind, arch=arch, hidden=hidden, ensemble_size=K, **model_fields)
    return build_model(cfg, PriorConfig(), ds), ds


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("setup", SETUPS)
def test_output_shapes(kind, setup):
    model, ds = build(kind, setup)
    out_width = SETUPS[setup][3]
    x = ds.x_train[:5]
    for samples in (1, 4):
        out = model(x, samples=samples)
        leading = K if kind == "ensemble" else samples
        assert out.shape == (leading, 5, out_width)
        assert torch.isfinite(out).all()
    assert model.kind == kind


@pytest.mark.parametrize("estimator", ["reparam", "local", "flipout"])
@pytest.mark.parametrize("setup", ["regression-mlp", "image-cnn"])
def test_bbb_estimators_build_bayesian_layers(estimator, setup):
    model, ds = build("bbb", setup, estimator=estimator)
    layers = bayesian_layers(model)
    conv_estimator = "flipout" if estimator == "local" else estimator  # no local for kernels
    assert layers and all(
        layer.estimator == (conv_estimator if isinstance(layer, BayesianConv2d) else estimator)
        for layer in layers
    )
    if setup == "image-cnn":
        assert any(isinstance(layer, BayesianConv2d) for layer in layers)
    assert not any(isinstance(m, (nn.Linear, nn.Conv2d)) for m in model.modules())
    assert model(ds.x_train[:3], samples=2).shape[:2] == (2, 3)


@pytest.mark.parametrize("kind", ["standard", "dropout", "ensemble"])
def test_baselines_have_no_bayesian_layers_and_zero_kl(kind):
    model, _ = build(kind, "classification-mlp")
    assert bayesian_layers(model) == []
    kl = model.kl()
    assert kl.dim() == 0 and kl.item() == 0.0


def test_bbb_kl_is_the_sum_of_its_layers():
    model, _ = build("bbb", "image-cnn")
    layers = bayesian_layers(model)
    assert len(layers) == 3  # two convolutions and the output layer
    expected = sum(layer.kl() for layer in layers)
    assert_close(model.kl(), expected, rtol=1e-6, atol=0)
    assert model.kl().item() > 0


@pytest.mark.parametrize("kind", ["bbb", "dropout"])
def test_monte_carlo_samples_differ(kind):
    model, ds = build(kind, "classification-mlp", dropout=0.5)
    model.train()  # MC dropout: dropout on
    out = model(ds.x_train[:6], samples=8)
    for s in range(1, 8):
        assert not torch.allclose(out[0], out[s])


def test_standard_samples_are_identical_and_dropout_is_off_in_eval():
    model, ds = build("standard", "classification-mlp")
    out = model(ds.x_train[:6], samples=5)
    assert (out == out[0]).all()
    dropout, _ = build("dropout", "classification-mlp", dropout=0.5)
    dropout.eval()
    out = dropout(ds.x_train[:6], samples=5)
    assert (out == out[0]).all()


def test_ensemble_returns_its_k_independent_members():
    model, ds = build("ensemble", "regression-mlp")
    assert isinstance(model, Ensemble) and len(model.members) == K
    first = [m.body[0].weight for m in model.members]
    assert not torch.equal(first[0], first[1]) and not torch.equal(first[1], first[2])
    x = ds.x_train[:4]
    out = model(x, samples=17)  # samples is ignored: the members are the samples
    assert out.shape == (K, 4, 1)
    for k, member in enumerate(model.members):
        assert_close(out[k], member(x)[0], rtol=0, atol=0)
    assert all(m.likelihood is model.likelihood for m in model.members)  # one shared noise


# --- standardisation: outputs in data units ------------------------------------------------------


def _last_layer(model: Network) -> nn.Module:
    return [m for m in model.body if isinstance(m, (nn.Linear, BayesianLinear))][-1]


@pytest.mark.parametrize("kind", ["bbb", "standard"])
@pytest.mark.parametrize("noise_model", ["learned", "hetero"])
def test_zero_network_predicts_the_training_mean_and_std(kind, noise_model):
    # a network whose last layer outputs 0 in standardised space predicts y_mean, and (hetero)
    # log-variance 0 there, i.e. variance y_std^2 in data units
    model, ds = build(kind, "regression-mlp", noise_model=noise_model)
    last = _last_layer(model)
    with torch.no_grad():
        for name in ("weight", "bias", "weight_mu", "bias_mu"):
            if hasattr(last, name):
                getattr(last, name).zero_()
    x = torch.linspace(-5, 5, 11).unsqueeze(1)  # far outside the data too
    with posterior_mean(model):
        out = model(x)
    mean, var = model.likelihood.mean_var(out)
    assert_close(mean, torch.full_like(mean, ds.y_train.mean().item()), rtol=1e-6, atol=1e-6)
    if noise_model == "hetero":
        assert_close(var, torch.full_like(var, ds.y_train.std().item() ** 2), rtol=1e-5, atol=0)


def test_standardisation_oracle():
    # f(x) = body((x - mean_x) / std_x) * std_y + mean_y, with the training set's statistics
    model, ds = build("standard", "regression-mlp")
    x = torch.linspace(-1, 2, 7).unsqueeze(1)
    z = (x - ds.x_train.mean()) / ds.x_train.std()
    expected = model.body(z) * ds.y_train.std() + ds.y_train.mean()
    assert_close(model(x)[0], expected, rtol=1e-5, atol=1e-6)
    state = model.state_dict()
    assert {"x_shift", "x_scale", "y_shift", "y_scale"} <= set(state)  # saved with the weights


def test_classification_is_not_standardised():
    model, ds = build("standard", "classification-mlp")
    assert model.x_shift.item() == 0.0 and model.y_scale.item() == 1.0
    assert_close(model(ds.x_train)[0], model.body(ds.x_train), rtol=0, atol=0)


# --- likelihood heads -----------------------------------------------------------------------------


@pytest.mark.parametrize("noise_model", ["fixed", "learned", "hetero"])
def test_gaussian_nll_equals_normal_log_prob(noise_model):
    lik = GaussianLikelihood(noise_model, noise_std=0.3).double()
    out = torch.randn(4, 6, lik.out_features, dtype=F64)
    y = torch.randn(6, dtype=F64)
    mean, var = lik.mean_var(out)
    if noise_model == "hetero":
        assert_close(var, out[..., 1].exp(), rtol=1e-14, atol=0)
    else:
        # log(0.3) is stored at torch's default float32 precision, hence 1e-6
        assert_close(var, torch.full_like(var, 0.09), rtol=1e-6, atol=0)
    expected = -Normal(out[..., 0], var.sqrt()).log_prob(y)
    got = lik.nll(out, y)
    assert got.shape == (4, 6)
    assert_close(got, expected, rtol=1e-12, atol=1e-12)


def test_learned_noise_is_a_parameter_and_fixed_noise_is_not():
    learned = GaussianLikelihood("learned", 0.5)
    fixed = GaussianLikelihood("fixed", 0.5)
    assert [n for n, _ in learned.named_parameters()] == ["log_std"]
    assert list(fixed.parameters()) == [] and "log_std" in dict(fixed.named_buffers())
    assert learned.log_std.item() == pytest.approx(math.log(0.5), rel=1e-6)
    out, y = torch.zeros(1, 3, 1), torch.ones(3)
    learned.nll(out, y).sum().backward()
    assert learned.log_std.grad is not None and learned.log_std.grad.item() != 0


def test_hetero_variance_positive_and_finite_for_extreme_outputs():
    lik = GaussianLikelihood("hetero")
    log_var = torch.tensor([-1e4, -50.0, 0.0, 50.0, 1e4])
    out = torch.stack([torch.zeros(5), log_var], -1).unsqueeze(0)  # (1, 5, 2)
    _, var = lik.mean_var(out)
    assert (var > 0).all() and torch.isfinite(var).all()
    assert torch.isfinite(lik.nll(out, torch.ones(5))).all()


def test_hetero_network_variance_is_positive():
    model, ds = build("bbb", "regression-mlp", noise_model="hetero")
    out = model(torch.linspace(-10, 10, 50).unsqueeze(1), samples=3)
    _, var = model.likelihood.mean_var(out)
    assert (var > 0).all() and torch.isfinite(var).all()


def test_categorical_nll_equals_categorical_log_prob():
    lik = CategoricalLikelihood(4)
    out = torch.randn(3, 7, 4, dtype=F64)
    y = torch.randint(0, 4, (7,))
    expected = -Categorical(logits=out).log_prob(y)
    assert_close(lik.nll(out, y), expected, rtol=1e-12, atol=1e-12)
    assert_close(lik.probs(out), Categorical(logits=out).probs, rtol=1e-12, atol=1e-15)


def test_gradients_reach_every_bbb_parameter():
    model, ds = build("bbb", "regression-mlp")
    out = model(ds.x_train, samples=2)
    loss = model.likelihood.nll(out, ds.y_train).sum() + model.kl()
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_build_model_validates():
    with pytest.raises(ValueError, match="model.hidden"):
        build_model(ModelConfig(hidden=(0,)), PriorConfig(), toy("blundell"))


# --- MAP ------------------------------------------------------------------------------------------

_MAP_PRIORS = {  # family -> (prior config, torch.distributions oracle of one weight's log p)
    "gaussian": (PriorConfig(family="gaussian", sigma=0.3), lambda w: Normal(0.0, 0.3).log_prob(w)),
    "laplace": (
        PriorConfig(family="laplace", b=0.2),
        lambda w: torch.distributions.Laplace(0.0, 0.2).log_prob(w),
    ),
    "mixture": (
        PriorConfig(family="mixture", pi=0.25, sigma1=1.0, sigma2=math.exp(-6)),
        lambda w: torch.logsumexp(
            torch.stack(
                [
                    math.log(0.25) + Normal(0.0, 1.0).log_prob(w),
                    math.log(0.75) + Normal(0.0, math.exp(-6)).log_prob(w),
                ]
            ),
            dim=0,
        ),
    ),
}


@pytest.mark.parametrize("family", list(_MAP_PRIORS))
@pytest.mark.parametrize("setup", ["regression-mlp", "image-cnn"])
def test_map_network_is_standard_with_minus_log_prior_over_every_weight_and_bias(family, setup):
    prior_cfg, oracle = _MAP_PRIORS[family]
    make, arch, hidden, _ = SETUPS[setup]
    ds = make()
    model = build_model(ModelConfig(kind="map", arch=arch, hidden=hidden), prior_cfg, ds)
    assert not bayesian_layers(model) and model.kl().item() == 0.0
    params = list(model.body.parameters())
    assert len(params) == 2 * (len(hidden) + 1)  # a weight and a bias per layer: all counted
    expected = -sum(oracle(p.detach().double()).sum() for p in params)
    assert_close(model.neg_log_prior(), expected, rtol=1e-5, atol=1e-3)
    # the gradient reaches every weight and bias, and not the learned noise std
    model.neg_log_prior().backward()
    assert all(p.grad is not None for p in params)
    noise = getattr(model.likelihood, "log_std", None)
    assert noise is None or noise.grad is None


def test_other_kinds_have_no_prior_term():
    for kind in ("standard", "dropout"):
        model, _ = build(kind, "regression-mlp")
        assert model.prior is None and model.neg_log_prior().item() == 0.0
