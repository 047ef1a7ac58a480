"""Tests for `bbb_core.posterior`: the flat posterior of a network, a pass's draw from it and its
KL, against plain formulas and `torch.distributions`; and its random numbers (normals, Flipout's
signs), checked as distributions and for seeding. (The layers' use of the draws is checked in
`test_layers.py`, the fused kernels against this path in `test_native.py`.)"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from conftest import assert_close
from torch.distributions import Normal, kl_divergence

from bbb_core import native, posterior, rng
from bbb_core.config import DataConfig, ModelConfig, PriorConfig
from bbb_core.data import make_dataset
from bbb_core.layers import BayesianLinear, bayesian_layers
from bbb_core.models import build_model
from bbb_core.posterior import Posterior
from bbb_core.priors import GaussianPrior, LaplacePrior, ScaleMixturePrior, gaussian_log_prob


def _moments_are_standard_normal(z: torch.Tensor) -> None:
    z = z.double().flatten()
    n = z.numel()
    assert abs(z.mean().item()) < 5 / math.sqrt(n)
    assert z.var().item() == pytest.approx(1.0, abs=5 * math.sqrt(2 / n))
    assert (z**4).mean().item() == pytest.approx(3.0, abs=0.05)
    assert (z.abs() > 3).double().mean().item() == pytest.approx(0.0027, rel=0.15)
    sorted_z, _ = z[:: max(1, n // 100_000)].sort()
    cdf = 0.5 * (1 + torch.erf(sorted_z / math.sqrt(2)))
    ecdf = torch.arange(1, len(sorted_z) + 1, dtype=torch.float64) / len(sorted_z)
    assert (cdf - ecdf).abs().max().item() < 1.63 / math.sqrt(len(sorted_z))  # KS, 1% level


@pytest.mark.parametrize("with_native", [True, False])
def test_standard_normal_is_seeded_by_its_streams_and_picks_its_sampler(monkeypatch, with_native):
    if with_native and not native.available():
        pytest.skip(f"no native kernels: {native.failure}")
    if not with_native:
        monkeypatch.setattr(native, "available", lambda: False)
    like = torch.empty(1)
    global_state = torch.get_rng_state()
    with rng.use(rng.Streams(4)):
        a = posterior.standard_normal((300, 300), like)
    with rng.use(rng.Streams(4)):
        assert torch.equal(a, posterior.standard_normal((300, 300), like))
        assert not torch.equal(a, posterior.standard_normal((300, 300), like))
    with rng.use(rng.Streams(5)):
        assert not torch.equal(a, posterior.standard_normal((300, 300), like))
    assert torch.equal(torch.get_rng_state(), global_state)  # the global stream never drawn
    torch.manual_seed(4)  # outside any streams: PyTorch's default generator, as torch modules
    b = posterior.standard_normal((300, 300), like)
    torch.manual_seed(4)
    assert torch.equal(b, posterior.standard_normal((300, 300), like))
    _moments_are_standard_normal(a)
    calls = []
    real = native.fill_normals

    def spy(out, *args):
        calls.append(out.numel())
        return real(out, *args)

    monkeypatch.setattr(native, "fill_normals", spy)
    posterior.standard_normal((300, 300), like)  # large, float32: the kernels' Philox streams
    posterior.standard_normal((10, 10), like)  # small: torch's own normal_
    posterior.standard_normal((300, 300), like.double())  # float64: normal_
    assert calls == ([90_000] if with_native else [])


def test_random_signs_are_fair_independent_coins():
    torch.manual_seed(0)
    like = torch.empty(1)
    signs = posterior.random_signs((1000, 999), like)  # not a multiple of 32 bits
    assert signs.shape == (1000, 999) and signs.dtype == like.dtype
    assert set(signs.unique().tolist()) == {-1.0, 1.0}
    flat = signs.flatten().double()
    assert abs(flat.mean().item()) < 5 / math.sqrt(flat.numel())
    assert abs((flat[:-1] * flat[1:]).mean().item()) < 5 / math.sqrt(flat.numel())
    bits_31_apart = (flat[:-31] * flat[31:]).mean().item()  # neighbours within one random word
    assert abs(bits_31_apart) < 5 / math.sqrt(flat.numel())


# --- the flat posterior and a pass's draw ---------------------------------------------------------


F64 = torch.float64


def _posterior(prior=None, sizes=(6, 3, 4), dtype=torch.float64) -> Posterior:
    post = Posterior(sizes, prior, rho0=-2.0, dtype=dtype)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        post.mu.copy_(torch.randn(post.mu.shape, generator=gen, dtype=dtype))
        post.rho.copy_(torch.rand(post.rho.shape, generator=gen, dtype=dtype) * 4 - 4)
    return post


def test_segments_are_views_of_the_flat_parameters():
    post = _posterior()
    assert post.offsets == (0, 6, 9, 13)
    assert [n for n, _ in post.named_parameters()] == ["mu", "rho"]
    seg = post.segment("mu", 1)
    assert torch.equal(seg, post.mu[6:9]) and seg.data_ptr() == post.mu[6:].data_ptr()
    joined = Posterior.joined([post, _posterior(post.prior, sizes=(2,))])
    assert joined.sizes == (6, 3, 4, 2) and joined.prior is post.prior
    assert torch.equal(joined.mu[:13], post.mu) and torch.equal(joined.rho[:13], post.rho)
    with pytest.raises(ValueError, match="share one prior"):
        Posterior.joined([post, _posterior(GaussianPrior(2.0))])


@pytest.mark.parametrize("samples", [1, 3])
def test_a_draw_makes_every_output_from_one_noise(samples):
    post = _posterior()
    draw = post.draw(samples)
    eps, sigma = draw.eps, F.softplus(post.rho)
    assert eps.shape == (samples, 13) and draw.eps is eps  # drawn once, on first use
    tol = {"rtol": 1e-15, "atol": 1e-15}
    assert_close(draw.flat("sample"), post.mu + sigma * eps, **tol)
    assert_close(draw.flat("noise"), sigma * eps, **tol)
    assert_close(draw.flat("var"), sigma**2, **tol)
    pieces = [draw.piece("sample", i) for i in range(3)]
    assert [p.shape for p in pieces] == [(samples, 6), (samples, 3), (samples, 4)]
    assert_close(torch.cat(pieces, dim=-1), draw.flat("sample"), **tol)
    part = post.draw(samples, first=1, stop=3)
    assert part.mu.shape == (7,) and part.piece("var", 2).shape == (4,)
    with pytest.raises(ValueError, match="kind"):
        draw.flat("weights")


@pytest.mark.parametrize("prior_sigma", [0.3, 1.0])
def test_the_gaussian_kl_is_the_closed_form(prior_sigma):
    post = _posterior(GaussianPrior(prior_sigma))
    sigma = F.softplus(post.rho)
    prior = Normal(torch.tensor(0.0, dtype=F64), torch.tensor(prior_sigma, dtype=F64))
    truth = kl_divergence(Normal(post.mu, sigma), prior).sum()
    draw = post.draw()
    for kl in (post.kl(), post.kl(draw)):
        assert_close(kl, truth, rtol=1e-12, atol=0)
    got = torch.autograd.grad(post.kl(draw), [post.mu, post.rho])
    want = torch.autograd.grad(truth, [post.mu, post.rho])
    for g, w in zip(got, want, strict=True):
        assert_close(g, w, rtol=1e-10, atol=1e-12)
    part = kl_divergence(Normal(post.mu[6:9], sigma[6:9]), prior).sum()
    assert_close(post.kl(first=1, stop=2), part, rtol=1e-12, atol=0)


@pytest.mark.parametrize("samples", [1, 4])
@pytest.mark.parametrize("prior", [LaplacePrior(0.3), ScaleMixturePrior(0.5, 1.0, 0.05)])
def test_a_kl_without_closed_form_is_taken_at_the_passes_own_samples(prior, samples):
    """The paper's estimator (eq. 2): log q(w) - log p(w) at the weights the pass used,
    averaged over its samples, with the total derivative through w."""
    post = _posterior(prior)
    draw = post.draw(samples)
    w = draw.flat("sample")
    kl = post.kl(draw)
    sigma = F.softplus(post.rho)
    w_ref = post.mu + sigma * draw.eps
    assert_close(w, w_ref, rtol=1e-15, atol=1e-15)
    truth = (gaussian_log_prob(w_ref, post.mu, sigma) - prior.log_prob(w_ref)).sum() / samples
    assert_close(kl, truth, rtol=1e-10, atol=1e-10)
    got = torch.autograd.grad(kl, [post.mu, post.rho])
    want = torch.autograd.grad(truth, [post.mu, post.rho])
    for g, v in zip(got, want, strict=True):
        assert_close(g, v, rtol=1e-8, atol=1e-10)


def test_kl_without_a_draw_takes_a_fresh_sample_each_time():
    post = _posterior(LaplacePrior(0.3))
    with torch.no_grad():
        assert post.kl().item() != post.kl().item()
    assert post.kl(post.draw()).dim() == 0


def test_a_network_draws_once_per_training_pass(monkeypatch):
    """One noise draw, one softplus and one KL for all the layers of a network: the per-step
    work on the posterior does not grow with the number of layers."""
    data = make_dataset(DataConfig(name="moons", n_train=50), seed=0)
    with rng.use(rng.Streams(0)):
        cfg = ModelConfig(kind="bbb", hidden=(16, 16, 16), estimator="reparam")
        model = build_model(cfg, PriorConfig(), data)
    layers = bayesian_layers(model)
    assert len(layers) == 4
    assert {n for n, _ in model.named_parameters()} == {"posterior.mu", "posterior.rho"}
    assert all(layer.posterior is model.posterior for layer in layers)
    calls = []
    real = posterior.standard_normal
    monkeypatch.setattr(posterior, "standard_normal", lambda *a: calls.append(a[0]) or real(*a))
    softplus = []
    real_softplus = F.softplus
    monkeypatch.setattr(posterior.F, "softplus", lambda x: softplus.append(1) or real_softplus(x))
    draw = model.draw()
    out = model(data.x_train, draw=draw)
    (model.likelihood.nll(out, data.y_train).sum() + model.kl(draw)).backward()
    assert calls == [(1, model.posterior.mu.numel())] and len(softplus) == 1
    assert torch.isfinite(model.posterior.rho.grad).all()
    # a layer on its own draws from its own segments only
    assert layers[1].draw().mu.numel() == 16 * 16 + 16


def test_a_layer_in_a_network_reads_the_networks_posterior():
    data = make_dataset(DataConfig(name="moons", n_train=50), seed=0)
    with rng.use(rng.Streams(0)):
        model = build_model(ModelConfig(kind="bbb", hidden=(8,)), PriorConfig(), data)
    first = bayesian_layers(model)[0]
    with torch.no_grad():
        first.weight_mu[0, 0] = 5.0
    assert model.posterior.mu[0].item() == 5.0
    with torch.no_grad():  # the layer's KL is that of its own segments
        want = model.posterior.kl(first=0, stop=2)
        assert_close(first.kl(), want, rtol=1e-6, atol=0)
        total = sum(layer.kl() for layer in bayesian_layers(model))
        assert_close(total, model.kl(), rtol=1e-6, atol=0)
    state = model.state_dict()
    assert {"posterior.mu", "posterior.rho"} <= set(state)
    assert isinstance(first, BayesianLinear)


def test_flipout_signs_come_from_one_draw_per_pass(monkeypatch):
    draw = _posterior(dtype=torch.float32).draw()
    draw.widths["signs"] = 7
    calls = []
    real = posterior.random_signs
    monkeypatch.setattr(posterior, "random_signs", lambda *a: calls.append(a[0]) or real(*a))
    like = torch.empty(1)
    a, b = draw.signs(50, 3, like), draw.signs(50, 4, like)
    assert calls == [(50, 7)] and a.shape == (50, 3) and b.shape == (50, 4)
    assert not torch.equal(a, b[:, :3])  # different columns of the draw
    draw.signs(20, 2, like)  # other rows: a draw of its own
    draw.signs(50, 3, like)  # the pool was spent: a new one
    assert calls == [(50, 7), (20, 7), (50, 7)]
    assert set(torch.cat([a.flatten(), b.flatten()]).unique().tolist()) == {-1.0, 1.0}


def test_local_noises_come_from_one_draw_per_pass(monkeypatch):
    data = make_dataset(DataConfig(name="moons", n_train=50), seed=0)
    with rng.use(rng.Streams(0)):
        cfg = ModelConfig(kind="bbb", hidden=(16, 8), estimator="local")
        model = build_model(cfg, PriorConfig(), data)
    assert model.draw().widths == {"signs": 0, "normals": 16 + 8 + 2}
    calls = []
    real = posterior.standard_normal
    monkeypatch.setattr(posterior, "standard_normal", lambda *a: calls.append(a[0]) or real(*a))
    out = model(data.x_train)
    assert calls == [(50, 26)] and out.shape == (1, 50, 2)
