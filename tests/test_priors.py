"""Tests for `bbb_core.priors`: the closed-form Gaussian KL and the log densities against
`torch.distributions`, the Monte Carlo KL against the closed form, the direction KL[q || p], and
the mixture's log density where the naive formula underflows. float64 wherever an identity is
checked."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import assert_close
from torch.distributions import Categorical, Laplace, MixtureSameFamily, Normal, kl_divergence

from bbb_core.config import PriorConfig
from bbb_core.priors import (
    GaussianPrior,
    LaplacePrior,
    ScaleMixturePrior,
    build_prior,
    gaussian_log_prob,
    kl_gaussian,
)

F64 = torch.float64
EXACT = {"rtol": 1e-12, "atol": 1e-12}  # float64 identities


def f64(x: float) -> torch.Tensor:
    """A float64 scalar: torch.distributions built from Python floats would compute in float32."""
    return torch.tensor(x, dtype=F64)


def posterior(n: int = 50, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A factorised Gaussian q = N(mu, s^2) of n weights, float64."""
    g = torch.Generator().manual_seed(seed)
    mu = torch.randn(n, generator=g, dtype=F64)
    s = torch.rand(n, generator=g, dtype=F64) * 0.9 + 0.05
    return mu, s


@pytest.mark.parametrize("prior_sigma", [0.1, 1.0, 3.0])
def test_closed_form_kl_equals_torch_kl_divergence(prior_sigma):
    mu, s = posterior()
    expected = kl_divergence(Normal(mu, s), Normal(f64(0.0), f64(prior_sigma))).sum()
    assert_close(kl_gaussian(mu, s, prior_sigma), expected, **EXACT)
    assert_close(GaussianPrior(prior_sigma).kl_closed_form(mu, s), expected, **EXACT)


def test_closed_form_kl_hand_computed():
    # q = N(1, 0.5^2), p = N(0, 1): log(1 / 0.5) + (0.25 + 1) / 2 - 1/2 = log 2 + 0.125
    got = kl_gaussian(torch.tensor([1.0], dtype=F64), torch.tensor([0.5], dtype=F64), 1.0)
    assert got.item() == pytest.approx(math.log(2) + 0.125, abs=1e-15)
    assert got.dim() == 0  # summed to a scalar


def test_closed_form_kl_is_zero_at_the_prior_and_a_sum_not_a_mean():
    n = 7
    zero = kl_gaussian(torch.zeros(n, dtype=F64), torch.full((n,), 2.0, dtype=F64), 2.0)
    assert zero.item() == pytest.approx(0.0, abs=1e-15)
    one = kl_gaussian(torch.ones(1, dtype=F64), torch.ones(1, dtype=F64), 1.0)  # mu^2 / 2 = 0.5
    many = kl_gaussian(torch.ones(n, dtype=F64), torch.ones(n, dtype=F64), 1.0)
    assert many.item() == pytest.approx(n * one.item(), abs=1e-15)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_closed_form_kl_finite_for_tiny_sigma(dtype):
    # softplus(-100) ~ 3.7e-44: sigma^2 underflows to 0 even in float64 (~1e-87 is fine there,
    # but float32 flushes it); the KL must still be finite (log of sigma, not of sigma^2).
    sigma = torch.nn.functional.softplus(torch.tensor([-100.0, -30.0], dtype=dtype))
    kl = kl_gaussian(torch.zeros(2, dtype=dtype), sigma, 1.0)
    assert torch.isfinite(kl)
    expected = sum(-math.log(s) - 0.5 for s in sigma.double().tolist())  # + s^2/2 ~ 0
    assert kl.item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("prior_sigma", [0.5, 1.0, 2.0])
def test_monte_carlo_kl_agrees_with_closed_form(prior_sigma):
    # log q(w) - log p(w) on w ~ q is unbiased for KL[q || p]. With N = 100_000 samples per
    # weight the standard error is ~ 0.4 % of the KL here; allow 5 standard errors.
    mu, s = posterior(n=10, seed=1)
    prior = GaussianPrior(prior_sigma)
    n_samples = 100_000
    w = mu + s * torch.randn(n_samples, mu.numel(), dtype=F64)
    per_draw = (gaussian_log_prob(w, mu, s) - prior.log_prob(w)).sum(-1)  # (N,)
    estimate, se = per_draw.mean(), per_draw.std() / math.sqrt(n_samples)
    exact = prior.kl_closed_form(mu, s)
    assert se < 0.01 * exact  # the test has power
    assert abs(estimate - exact) < 5 * se


def test_kl_direction_is_posterior_to_prior():
    # KL is asymmetric: KL[q || p] (what BBB minimises) and KL[p || q] differ by far here;
    # kl_closed_form must return the first.
    mu, s = posterior(seed=2)
    q, p = Normal(mu, s), Normal(torch.zeros_like(mu), torch.full_like(s, 1.5))
    forward = kl_divergence(q, p).sum()
    reverse = kl_divergence(p, q).sum()
    assert abs(forward - reverse) > 0.5 * forward  # they really differ
    got = GaussianPrior(1.5).kl_closed_form(mu, s)
    assert_close(got, forward, **EXACT)
    assert abs(got - reverse) > 0.5 * forward


W = torch.linspace(-5, 5, 101, dtype=F64)


@pytest.mark.parametrize("sigma", [0.1, 1.0, 4.0])
def test_gaussian_log_prob_matches_torch(sigma):
    assert_close(
        GaussianPrior(sigma).log_prob(W), Normal(f64(0.0), f64(sigma)).log_prob(W), **EXACT
    )


@pytest.mark.parametrize("b", [0.05, 1.0, 3.0])
def test_laplace_log_prob_matches_torch(b):
    assert_close(LaplacePrior(b).log_prob(W), Laplace(f64(0.0), f64(b)).log_prob(W), **EXACT)
    assert LaplacePrior(b).kl_closed_form(W, W.abs() + 1) is None  # Monte Carlo KL


def _torch_mixture(pi: float, sigma1: float, sigma2: float) -> MixtureSameFamily:
    return MixtureSameFamily(
        Categorical(probs=torch.tensor([pi, 1 - pi], dtype=F64)),
        Normal(torch.zeros(2, dtype=F64), torch.tensor([sigma1, sigma2], dtype=F64)),
    )


@pytest.mark.parametrize(
    ("pi", "sigma1", "sigma2"), [(0.25, 1.0, math.exp(-6)), (0.5, 2.0, 0.1), (0.9, 0.3, 0.01)]
)
def test_mixture_log_prob_matches_torch_mixture(pi, sigma1, sigma2):
    w = torch.cat([W, torch.linspace(-0.05, 0.05, 41, dtype=F64)])  # resolve the narrow spike
    expected = _torch_mixture(pi, sigma1, sigma2).log_prob(w)
    assert_close(ScaleMixturePrior(pi, sigma1, sigma2).log_prob(w), expected, **EXACT)
    assert ScaleMixturePrior(pi, sigma1, sigma2).kl_closed_form(w, w.abs() + 1) is None


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("magnitude", [1e3, 1e6])
def test_mixture_log_prob_finite_far_in_the_tails(dtype, magnitude):
    prior = ScaleMixturePrior()  # Blundell: pi = 1/4, sigma1 = 1, sigma2 = e^-6
    w = torch.tensor([magnitude, -magnitude], dtype=dtype)
    # the naive log of the summed densities underflows: both densities are exactly 0 here
    naive = torch.log(
        prior.pi * torch.exp(Normal(0.0, prior.sigma1).log_prob(w))
        + (1 - prior.pi) * torch.exp(Normal(0.0, prior.sigma2).log_prob(w))
    )
    assert torch.isneginf(naive).all()
    got = prior.log_prob(w)
    assert torch.isfinite(got).all()
    # far out the wide component is all that is left: log pi + log N(w; 0, sigma1^2)
    expected = math.log(prior.pi) - 0.5 * math.log(2 * math.pi) - 0.5 * magnitude**2
    assert_close(got, torch.tensor([expected, expected]), rtol=1e-6, atol=0.0)


def test_mixture_log_prob_gradient_finite_in_the_tails():
    w = torch.tensor([1e3, -1e6, 0.0, 1e-3], dtype=F64, requires_grad=True)
    ScaleMixturePrior().log_prob(w).sum().backward()
    assert torch.isfinite(w.grad).all()
    # d/dw log N(w; 0, 1) = -w where the wide component dominates
    assert_close(w.grad[:2], -w.detach()[:2], rtol=1e-12, atol=0.0)


@pytest.mark.parametrize(
    ("cfg", "cls", "attrs"),
    [
        (PriorConfig(family="gaussian", sigma=0.3), GaussianPrior, {"sigma": 0.3}),
        (PriorConfig(family="laplace", b=0.2), LaplacePrior, {"b": 0.2}),
        (
            PriorConfig(family="mixture", pi=0.5, sigma1=2.0, sigma2=0.01),
            ScaleMixturePrior,
            {"pi": 0.5, "sigma1": 2.0, "sigma2": 0.01},
        ),
    ],
)
def test_build_prior(cfg, cls, attrs):
    prior = build_prior(cfg)
    assert type(prior) is cls
    assert vars(prior) == attrs
    assert cls.__name__ in repr(prior)


def test_build_prior_validates():
    with pytest.raises(ValueError, match="prior.pi"):
        build_prior(PriorConfig(family="mixture", pi=1.0))
