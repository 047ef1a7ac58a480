"""Tests for `bbb_core.layers`: shapes, sigma = softplus(rho) at extreme rho, gradients, the KL
against `torch.distributions` (closed form) or its expectation (Monte Carlo priors), and the three
gradient estimators' pre-activation distributions against the analytic moments
x mu^T + b_mu and x^2 (sigma^2)^T + b_sigma^2 (for the convolution: conv(x, mu) and
conv(x^2, sigma^2)), for a single sample, an expanded and a materialised sample dimension.

Statistical tests draw n samples of exactly Gaussian pre-activations and allow 5 standard errors:
|mean_hat - mean| <= 5 sqrt(var / n) and |var_hat / var - 1| <= 5 sqrt(2 / (n - 1)). Every test is
seeded (conftest), so they are also deterministic.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import assert_close
from torch import nn
from torch.distributions import Normal, kl_divergence

from bbb_core.layers import (
    BayesianConv2d,
    BayesianLinear,
    bayesian_layers,
    posterior_mean,
)
from bbb_core.priors import GaussianPrior, LaplacePrior, ScaleMixturePrior

F64 = torch.float64
ESTIMATORS = ("reparam", "local", "flipout")
CONV_ESTIMATORS = ("reparam", "flipout")
KINDS = ("linear", "conv")
# every layer with every estimator it offers (a convolution refuses the local one)
LAYER_ESTIMATORS = [(k, e) for k in KINDS for e in ESTIMATORS if k == "linear" or e != "local"]
# draws per statistical test, (one call with a sample dimension, one forward call per draw); the
# convolution's sampled path is a grouped convolution with one group per sample: fewer draws
N_DRAWS = {"linear": (20_000, 2_000), "conv": (10_000, 1_500)}
N_KL = 1_000  # kl() calls averaged in the Monte Carlo KL tests
Z = 5.0  # standard errors allowed

pytestmark = pytest.mark.usefixtures("single_thread")


def randomise(layer: nn.Module, seed: int = 0) -> nn.Module:
    """Spread mu and rho so that every weight has its own mean and sigma: weights in ~[0.05, 0.7],
    biases in ~[0.3, 1] (large enough that a lost bias variance shows in the moment tests)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in (layer.weight_mu, layer.bias_mu):
            if p is not None:
                p.copy_(0.5 * torch.randn(p.shape, generator=g, dtype=p.dtype))
        for p, low in ((layer.weight_rho, -3.0), (layer.bias_rho, -1.0)):
            if p is not None:
                p.copy_(low + (0.5 - low) * torch.rand(p.shape, generator=g, dtype=p.dtype))
    return layer


def make(kind: str, estimator: str = "reparam", *, bias: bool = True, prior=None, **kw):
    """A small float64 layer with randomised posterior and a fixed input batch of two."""
    opts = {"bias": bias, "prior": prior, "estimator": estimator, "dtype": kw.pop("dtype", F64)}
    if kind == "linear":
        layer = BayesianLinear(3, 2, **opts, **kw)
        x = torch.tensor([[0.5, -1.0, 2.0], [1.5, 0.3, -0.7]], dtype=opts["dtype"])
    else:
        layer = BayesianConv2d(2, 2, 2, padding=1, **opts, **kw)  # (2, 2, 3, 3) -> (2, 2, 4, 4)
        x = torch.randn(2, 2, 3, 3, generator=torch.Generator().manual_seed(1), dtype=F64)
        x = x.to(opts["dtype"])
    return randomise(layer), x


def analytic(layer: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and variance of every pre-activation under q (independent Gaussian weights)."""
    bias_var = None if layer.bias_sigma is None else layer.bias_sigma**2
    if isinstance(layer, BayesianLinear):
        mean = F.linear(x, layer.weight_mu, layer.bias_mu)
        var = F.linear(x * x, layer.weight_sigma**2, bias_var)
    else:
        conv = {"stride": layer.stride, "padding": layer.padding}
        mean = F.conv2d(x, layer.weight_mu, layer.bias_mu, **conv)
        var = F.conv2d(x * x, layer.weight_sigma**2, bias_var, **conv)
    return mean.detach(), var.detach()


@torch.no_grad()
def draws(layer: nn.Module, x: torch.Tensor, path: str) -> torch.Tensor:
    """(n, *out) samples of layer(x): separate calls, or one call with a sample dimension that is
    a zero-stride expansion or a materialised copy."""
    n_samples, n_calls = N_DRAWS["linear" if isinstance(layer, BayesianLinear) else "conv"]
    if path == "calls":
        return torch.stack([layer(x) for _ in range(n_calls)])
    expanded = x.expand(n_samples, *x.shape)
    assert expanded.stride(0) == 0
    return layer(expanded if path == "expanded" else expanded.clone())


def assert_moments(samples: torch.Tensor, mean: torch.Tensor, var: torch.Tensor) -> None:
    n = samples.shape[0]
    mean_err = (samples.mean(0) - mean).abs() / (var / n).sqrt()
    var_err = (samples.var(0) / var - 1).abs() / math.sqrt(2 / (n - 1))
    assert mean_err.max() <= Z, f"mean off by {mean_err.max():.2f} standard errors"
    assert var_err.max() <= Z, f"variance off by {var_err.max():.2f} standard errors"


# --- construction, shapes, repr -------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_construction_follows_nn_modules(kind):
    layer, _ = make(kind, bias=False, rho0=-2.5)
    layer.reset_parameters()
    assert layer.bias_mu is None and layer.bias_rho is None
    # mu and rho of every weight live flat in the layer's posterior; the weights are its views
    assert {n for n, _ in layer.named_parameters()} == {"posterior.mu", "posterior.rho"}
    assert layer.weight_mu.shape == layer.weight_rho.shape == layer.weight_shape
    assert layer.weight_mu.data_ptr() == layer.posterior.mu.data_ptr()
    assert (layer.weight_rho == -2.5).all()
    assert isinstance(layer.prior, GaussianPrior) and layer.prior.sigma == 1.0
    with pytest.raises(ValueError, match="estimator"):
        make(kind, "nope")


@pytest.mark.parametrize("estimator", ESTIMATORS)
@pytest.mark.parametrize("bias", [True, False])
def test_linear_shapes(estimator, bias):
    layer = BayesianLinear(5, 7, bias=bias, estimator=estimator)
    assert layer(torch.randn(4, 5)).shape == (4, 7)
    assert layer(torch.randn(3, 4, 5)).shape == (3, 4, 7)
    assert layer(torch.randn(1, 4, 5).expand(6, -1, -1)).shape == (6, 4, 7)


@pytest.mark.parametrize("estimator", CONV_ESTIMATORS)
@pytest.mark.parametrize(("stride", "padding", "bias"), [(1, 1, True), (2, 0, False), (1, 0, True)])
def test_conv_shapes_match_nn_conv2d(estimator, stride, padding, bias):
    layer = BayesianConv2d(2, 5, 3, stride=stride, padding=padding, bias=bias, estimator=estimator)
    ref = nn.Conv2d(2, 5, 3, stride=stride, padding=padding, bias=bias)
    x = torch.randn(4, 2, 9, 9)
    expected = ref(x).shape
    assert layer(x).shape == expected
    assert layer(x.unsqueeze(0).expand(3, *x.shape)).shape == (3, *expected)
    assert layer(torch.randn(3, *x.shape)).shape == (3, *expected)


@pytest.mark.parametrize(("kind", "estimator"), LAYER_ESTIMATORS)
@pytest.mark.parametrize("prior", [GaussianPrior(0.5), LaplacePrior(0.2), ScaleMixturePrior()])
def test_extra_repr_names_estimator_and_prior(kind, estimator, prior):
    layer, _ = make(kind, estimator, prior=prior)
    text = repr(layer)
    assert f"estimator={estimator}" in text
    assert type(prior).__name__ in text
    assert "rho0=" in text


# --- sigma = softplus(rho) ------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "estimator"), LAYER_ESTIMATORS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("rho", [-100.0, -30.0, 0.0, 30.0, 100.0])
def test_sigma_positive_and_finite_for_extreme_rho(kind, dtype, rho, estimator):
    layer, x = make(kind, estimator, dtype=dtype)
    with torch.no_grad():
        layer.weight_rho.fill_(rho)
        layer.bias_rho.fill_(rho)
    for sigma in (layer.weight_sigma, layer.bias_sigma):
        assert (sigma > 0).all() and torch.isfinite(sigma).all()
        # float32 softplus(-100) ~ 3.7e-44 is subnormal: only ~1-2 significant digits survive
        rtol = 0.2 if sigma.dtype == torch.float32 and rho < -80 else 1e-6
        expected = F.softplus(torch.tensor(rho, dtype=F64)).expand_as(sigma)
        assert_close(sigma, expected, rtol=rtol, atol=0)
    assert torch.isfinite(layer(x)).all()
    assert torch.isfinite(layer(x.expand(3, *x.shape))).all()
    assert torch.isfinite(layer.kl())


# --- gradients ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "estimator"), LAYER_ESTIMATORS)
@pytest.mark.parametrize("path", ["single", "samples"])
def test_gradients_reach_mu_and_rho(kind, estimator, path):
    layer, x = make(kind, estimator)
    inp = x if path == "single" else x.expand(3, *x.shape)
    (layer(inp) ** 2).sum().backward()
    for name in ("weight_mu", "weight_rho", "bias_mu", "bias_rho"):
        grad = layer.grads()[name]
        assert grad is not None, f"no gradient reaches {name}"
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0, name


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("prior", [GaussianPrior(0.7), LaplacePrior(0.3), ScaleMixturePrior()])
def test_kl_gradients_reach_mu_and_rho(kind, prior):
    layer, _ = make(kind, prior=prior)
    layer.kl().backward()
    for name in ("weight_mu", "weight_rho", "bias_mu", "bias_rho"):
        grad = layer.grads()[name]
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, name


# --- KL -------------------------------------------------------------------------------------------


def _torch_kl(layer: nn.Module, prior_sigma: float) -> torch.Tensor:
    p = Normal(torch.tensor(0.0, dtype=F64), torch.tensor(prior_sigma, dtype=F64))
    total = torch.zeros((), dtype=F64)
    for mu, rho in ((layer.weight_mu, layer.weight_rho), (layer.bias_mu, layer.bias_rho)):
        if mu is not None:
            total = total + kl_divergence(Normal(mu, F.softplus(rho)), p).sum()
    return total


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("prior_sigma", [0.3, 1.0])
def test_gaussian_kl_is_the_closed_form_sum_over_parameters(kind, bias, prior_sigma):
    layer, _ = make(kind, bias=bias, prior=GaussianPrior(prior_sigma))
    kl = layer.kl()
    assert kl.dim() == 0
    expected = _torch_kl(layer, prior_sigma)
    assert_close(kl, expected, rtol=1e-12, atol=0)
    # the gradients are the oracle's too
    got = torch.autograd.grad(kl, [layer.posterior.mu, layer.posterior.rho])
    want = torch.autograd.grad(expected, [layer.posterior.mu, layer.posterior.rho])
    for g, w in zip(got, want, strict=True):
        assert_close(g, w, rtol=1e-10, atol=1e-12)
    assert_close(layer.kl(), kl, rtol=0, atol=0)  # deterministic
    with torch.no_grad():  # the same formula without a graph
        assert_close(layer.kl(), expected, rtol=1e-12, atol=0)


def _laplace_kl(mu: np.ndarray, s: np.ndarray, b: float) -> float:
    """KL[N(mu, s^2) || Laplace(0, b)] summed: -H[q] + log 2b + E|w| / b (folded normal mean)."""
    from scipy.stats import norm

    e_abs = s * np.sqrt(2 / np.pi) * np.exp(-(mu**2) / (2 * s**2)) + mu * (
        1 - 2 * norm.cdf(-mu / s)
    )
    return float(np.sum(-0.5 * np.log(2 * np.pi * np.e * s**2) + np.log(2 * b) + e_abs / b))


def _quadrature_kl(mu: np.ndarray, s: np.ndarray, prior) -> float:
    """KL[q || p] summed, by the trapezoid rule on mu +- 10 s with 20_001 points per weight."""
    total = 0.0
    for m, sd in zip(mu, s, strict=True):
        w = torch.linspace(m - 10 * sd, m + 10 * sd, 20_001, dtype=F64)
        log_q = Normal(torch.tensor(m, dtype=F64), torch.tensor(sd, dtype=F64)).log_prob(w)
        total += torch.trapezoid(log_q.exp() * (log_q - prior.log_prob(w)), w).item()
    return total


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "prior", [LaplacePrior(0.3), ScaleMixturePrior()], ids=["laplace", "mixture"]
)
def test_monte_carlo_kl_is_unbiased(kind, prior):
    layer, _ = make(kind, prior=prior)
    params = [(layer.weight_mu, layer.weight_sigma), (layer.bias_mu, layer.bias_sigma)]
    mu = np.concatenate([m.detach().flatten().numpy() for m, _ in params])
    s = np.concatenate([sd.detach().flatten().numpy() for _, sd in params])
    if isinstance(prior, LaplacePrior):
        truth = _laplace_kl(mu, s, prior.b)
    else:
        truth = _quadrature_kl(mu, s, prior)
    with torch.no_grad():
        estimates = torch.stack([layer.kl() for _ in range(N_KL)])
    assert estimates.dim() == 1 and estimates.std() > 0  # one fresh sample per call
    se = estimates.std().item() / math.sqrt(N_KL)
    assert abs(estimates.mean().item() - truth) <= Z * se


@pytest.mark.parametrize(
    "prior", [LaplacePrior(0.3), ScaleMixturePrior()], ids=["laplace", "mixture"]
)
def test_monte_carlo_kl_oracle_on_a_large_sample(prior):
    # the quadrature / folded-normal oracles above agree with a 200_000-sample estimate
    mu, s = np.array([0.3, -1.2, 0.0]), np.array([0.2, 0.05, 0.6])
    n = 200_000
    w = torch.from_numpy(mu) + torch.from_numpy(s) * torch.randn(n, 3, dtype=F64)
    q = Normal(torch.from_numpy(mu), torch.from_numpy(s))
    mc = (q.log_prob(w) - prior.log_prob(w)).sum(-1)
    truth = _laplace_kl(mu, s, prior.b) if isinstance(prior, LaplacePrior) else None
    quad = _quadrature_kl(mu, s, prior)
    assert abs(mc.mean().item() - quad) <= Z * mc.std().item() / math.sqrt(n)
    if truth is not None:
        assert quad == pytest.approx(truth, rel=1e-6)  # trapezoid error at the kink |w| = 0


# --- the estimators' pre-activation distributions -------------------------------------------------


@pytest.mark.parametrize(("kind", "estimator"), LAYER_ESTIMATORS)
@pytest.mark.parametrize("path", ["calls", "expanded", "materialised"])
def test_pre_activation_moments_match_analytic(kind, estimator, path):
    layer, x = make(kind, estimator)
    mean, var = analytic(layer, x)
    assert_moments(draws(layer, x, path), mean, var)


@pytest.mark.parametrize(
    ("kind", "estimator"), [("linear", "local"), ("linear", "flipout"), ("conv", "flipout")]
)
def test_estimator_moments_match_weight_sampling(kind, estimator):
    # local reparameterisation and flipout change the gradient's variance, not the predictive
    # distribution: their pre-activation moments agree with the paper's weight sampling.
    layer, x = make(kind, "reparam")
    twin, _ = make(kind, estimator)  # the same posterior (randomise is seeded)
    assert torch.equal(layer.weight_rho, twin.weight_rho)
    reference = draws(layer, x, "expanded")
    other = draws(twin, x, "expanded")
    _, var = analytic(layer, x)
    n = reference.shape[0]
    se_mean = (2 * var / n).sqrt()
    assert ((other.mean(0) - reference.mean(0)).abs() <= Z * se_mean).all()
    se_ratio = 2 / math.sqrt(n - 1)  # sd of log(v1 / v2) for two independent estimates
    assert ((other.var(0) / reference.var(0)).log().abs() <= Z * se_ratio).all()


@pytest.mark.parametrize(("kind", "estimator"), LAYER_ESTIMATORS)
def test_sample_dimension_gives_different_samples(kind, estimator):
    layer, x = make(kind, estimator)
    with torch.no_grad():
        out = layer(x.expand(4, *x.shape)).flatten(1)
    for s in range(4):
        for t in range(s + 1, 4):
            assert not torch.allclose(out[s], out[t]), f"samples {s} and {t} coincide"


@pytest.mark.parametrize(("kind", "estimator"), LAYER_ESTIMATORS)
def test_how_examples_in_a_batch_are_correlated(kind, estimator):
    # Two identical inputs in one training batch (no sample dimension). Weight sampling draws one
    # weight for the whole batch: both outputs are equal. Local reparameterisation samples every
    # pre-activation on its own: covariance 0. Flipout decorrelates the weight perturbation by
    # random signs but shares the one bias sample: covariance = the bias variance.
    layer, x = make(kind, estimator)
    pair = x[:1].expand(2, *x.shape[1:]).clone()
    out = draws(layer, pair, "calls")  # (n, 2, ...)
    a, b = out[:, 0], out[:, 1]
    if estimator == "reparam":
        assert_close(a, b, rtol=0, atol=1e-12)
        return
    prod = (a - a.mean(0)) * (b - b.mean(0))
    bias_var = layer.bias_sigma.detach() ** 2  # (out,) -> broadcast over conv positions
    bias_var = bias_var.view(-1, *[1] * (prod.dim() - 2)).expand_as(prod[0])
    expected = bias_var if estimator == "flipout" else torch.zeros_like(bias_var)
    se = prod.std(0) / math.sqrt(prod.shape[0])
    assert ((prod.mean(0) - expected).abs() <= Z * se).all()


# --- the posterior mean ---------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "estimator"), LAYER_ESTIMATORS)
@pytest.mark.parametrize("path", ["single", "expanded", "materialised"])
def test_deterministic_forward_uses_mu(kind, estimator, path):
    layer, x = make(kind, estimator)
    expected, _ = analytic(layer, x)
    if path != "single":
        x = x.expand(3, *x.shape)
        x = x if path == "expanded" else x.clone()
        expected = expected.expand(3, *expected.shape)
    model = nn.Sequential(layer)
    with posterior_mean(model):
        assert layer.deterministic
        got = model(x)
    assert not layer.deterministic
    assert_close(got, expected, rtol=0, atol=1e-12)


def test_posterior_mean_restores_flags_on_error():
    model = nn.Sequential(BayesianLinear(2, 3), nn.ReLU(), BayesianConv2d(1, 1, 1), nn.Linear(1, 1))
    assert len(bayesian_layers(model)) == 2
    model[2].deterministic = True
    with pytest.raises(RuntimeError), posterior_mean(model):
        assert all(layer.deterministic for layer in bayesian_layers(model))
        raise RuntimeError("boom")
    assert [layer.deterministic for layer in bayesian_layers(model)] == [False, True]


# --- convolutions share their kernel across positions ---------------------------------------------


def test_a_convolution_refuses_the_local_estimator():
    with pytest.raises(ValueError, match="shared across output positions"):
        BayesianConv2d(2, 3, 3, estimator="local")


def _sum_over_positions_variance(
    conv: BayesianConv2d, x: torch.Tensor
) -> tuple[float, float, float]:
    """For T = the sum of output channel 0 over every position: its exact variance under q from
    the kernel weights and from the bias (T is linear in both), and the variance the positions
    would add up to if each were sampled independently (the local trick)."""
    w_var, b_var = conv.weight_sigma.detach() ** 2, conv.bias_sigma.detach() ** 2
    conv_args = {"stride": conv.stride, "padding": conv.padding}
    weight = conv.weight_mu.detach().clone().requires_grad_(True)
    out = F.conv2d(x, weight, None, **conv_args)[:, 0]
    out.sum().backward()
    from_weights = float((weight.grad**2 * w_var).sum())
    from_bias = float(out[0].numel() ** 2 * b_var[0])
    independent = float(F.conv2d(x * x, w_var, b_var, **conv_args)[:, 0].sum())
    return from_weights, from_bias, independent


@pytest.mark.parametrize("estimator", CONV_ESTIMATORS)
def test_conv_output_variance_matches_weight_sampling(estimator):
    """One 3x3 convolution over a 6x6 output: the variance of the sum over positions from the
    layer's own samples equals the exact value from its Gaussian weights (within Monte Carlo
    error), and is far from what independent positions would give."""
    conv = randomise(BayesianConv2d(2, 3, 3, estimator=estimator, dtype=F64))
    x = torch.randn(1, 2, 8, 8, generator=torch.Generator().manual_seed(3), dtype=F64)
    from_weights, from_bias, independent = _sum_over_positions_variance(conv, x)
    exact = from_weights + from_bias
    assert exact > 3 * independent  # the test tells the two apart
    with torch.no_grad():
        sampled = conv(x.expand(4000, *x.shape))[:, 0, 0].sum((-1, -2))  # 4000 weight samples
        # training passes of a batch of 32 copies: the spread within each batch, averaged
        within = torch.stack(
            [conv(x.expand(32, *x.shape[1:]))[:, 0].sum((-1, -2)).var() for _ in range(500)]
        )
    assert sampled.var().item() == pytest.approx(exact, rel=0.15)
    if estimator == "flipout":  # each example's kernel perturbation is its own (the bias's not)
        assert within.mean().item() == pytest.approx(from_weights, rel=0.15)
    else:  # one weight sample for the whole batch, as the paper's estimator
        assert within.max().item() < 1e-12


def test_a_cnn_built_with_the_local_estimator_flips_out_its_convolutions():
    from bbb_core.config import DataConfig, ModelConfig, PriorConfig
    from bbb_core.data import make_dataset
    from bbb_core.models import build_model

    data = make_dataset(DataConfig(name="digits", n_train=50), 0)
    model = build_model(
        ModelConfig(arch="cnn", hidden=(4,), estimator="local"), PriorConfig(), data
    )
    convs = [m for m in model.modules() if isinstance(m, BayesianConv2d)]
    linears = [m for m in model.modules() if isinstance(m, BayesianLinear)]
    assert convs and all(c.estimator == "flipout" for c in convs)
    assert linears and all(lin.estimator == "local" for lin in linears)
