"""Tests for `bbb_core.sampling`, the PyTorch path's random numbers: the two-core Box-Muller
normal sampler and the sign bits of Flipout, checked as distributions and for seeding. (The
graph node `_Posterior` is checked against autograd in `test_layers.py`.)"""

from __future__ import annotations

import math

import pytest
import torch

from bbb_core import native, rng, sampling


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


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


def test_box_muller_draws_standard_normals(two_threads):
    out = torch.empty(1_000_001)  # odd: the last pair is cut in half
    z = sampling._box_muller(out)
    assert z is out and torch.isfinite(z).all()
    _moments_are_standard_normal(z)
    assert abs(torch.corrcoef(torch.stack([z[:-1], z[1:]]))[0, 1]) < 0.01
    half = (z.numel() + 1) // 2  # the cos and sin halves of each pair are independent too
    assert abs(torch.corrcoef(torch.stack([z[: half - 1], z[half:]]))[0, 1]) < 0.01


@pytest.mark.parametrize("with_native", [True, False])
def test_standard_normal_is_seeded_by_its_streams_and_picks_its_sampler(
    two_threads, monkeypatch, with_native
):
    if with_native and not native.available():
        pytest.skip(f"no native kernels: {native.failure}")
    if not with_native:
        monkeypatch.setattr(native, "available", lambda: False)
    like = torch.empty(1)
    global_state = torch.get_rng_state()
    with rng.use(rng.Streams(4)):
        a = sampling.standard_normal((300, 300), like)
    with rng.use(rng.Streams(4)):
        assert torch.equal(a, sampling.standard_normal((300, 300), like))
        assert not torch.equal(a, sampling.standard_normal((300, 300), like))
    with rng.use(rng.Streams(5)):
        assert not torch.equal(a, sampling.standard_normal((300, 300), like))
    assert torch.equal(torch.get_rng_state(), global_state)  # the global stream never drawn
    torch.manual_seed(4)  # outside any streams: PyTorch's default generator, as torch modules
    b = sampling.standard_normal((300, 300), like)
    torch.manual_seed(4)
    assert torch.equal(b, sampling.standard_normal((300, 300), like))
    _moments_are_standard_normal(a)
    calls = []
    for name in ("_box_muller", "fill_normals"):
        module = sampling if name == "_box_muller" else native
        real = getattr(module, name)

        def spy(out, *args, name=name, real=real):
            calls.append((name, out.numel()))
            return real(out, *args)

        monkeypatch.setattr(module, name, spy)
    sampling.standard_normal((300, 300), like)  # large, float32, two threads
    sampling.standard_normal((10, 10), like)  # small: torch's own normal_
    sampling.standard_normal((300, 300), like.double())  # float64: normal_
    torch.set_num_threads(1)
    sampling.standard_normal((300, 300), like)  # one thread: native still, else normal_
    large = "fill_normals" if with_native else "_box_muller"
    assert calls == [(large, 90_000)] + ([(large, 90_000)] if with_native else [])


def test_random_signs_are_fair_independent_coins():
    torch.manual_seed(0)
    like = torch.empty(1)
    signs = sampling._random_signs((1000, 999), like)  # not a multiple of 32 bits
    assert signs.shape == (1000, 999) and signs.dtype == like.dtype
    assert set(signs.unique().tolist()) == {-1.0, 1.0}
    flat = signs.flatten().double()
    assert abs(flat.mean().item()) < 5 / math.sqrt(flat.numel())
    assert abs((flat[:-1] * flat[1:]).mean().item()) < 5 / math.sqrt(flat.numel())
    bits_31_apart = (flat[:-31] * flat[31:]).mean().item()  # neighbours within one random word
    assert abs(bits_31_apart) < 5 / math.sqrt(flat.numel())
