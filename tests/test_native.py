"""Tests for `bbb_core.native`: the fused CPU kernels of the posterior (`posterior.c`).

Their noise is checked as a standard normal stream (moments, tails, seeds, chunk boundaries,
thread counts); their outputs, KL and gradients against the same formulas in float64 PyTorch with
the same noise; the layers against their PyTorch path; and the fallback when no library can be
built. Skipped where the library cannot be built (no C compiler): the layers then never use it.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import re
import shutil
import stat
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from bbb_core import native, posterior
from bbb_core.layers import BayesianConv2d, BayesianLinear
from bbb_core.native import NativePosterior
from bbb_core.posterior import Draw
from bbb_core.priors import LaplacePrior, ScaleMixturePrior, gaussian_log_prob, kl_gaussian

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(
    not native.available(), reason=f"no native kernels: {native.failure}"
)


def test_normals_are_standard_normal():
    z = native.normals(1_000_003, seed=11).double()
    assert abs(z.mean()) < 0.005  # 5 standard errors
    assert z.var().item() == pytest.approx(1.0, abs=0.006)
    assert ((z - z.mean()) ** 3).mean().item() == pytest.approx(0.0, abs=0.02)
    assert (z**4).mean().item() == pytest.approx(3.0, abs=0.05)
    # tails: P(|z| > 3) = 0.0027 and P(|z| > 4) = 6.3e-5 for a standard normal
    assert (z.abs() > 3).double().mean().item() == pytest.approx(0.0027, rel=0.1)
    assert 20 < int((z.abs() > 4).sum()) < 110
    # Kolmogorov-Smirnov distance to the normal CDF: ~1.36 / sqrt(n) at the 5% level
    sorted_z, _ = z[::10].sort()
    cdf = 0.5 * (1 + torch.erf(sorted_z / math.sqrt(2)))
    ecdf = torch.arange(1, len(sorted_z) + 1, dtype=torch.float64) / len(sorted_z)
    assert (cdf - ecdf).abs().max().item() < 1.63 / math.sqrt(len(sorted_z))  # 1% level


def test_normals_depend_on_the_seed_and_index_only():
    a = native.normals(5000, seed=3)
    assert torch.equal(a, native.normals(5000, seed=3))
    assert torch.equal(a[:1500], native.normals(1500, seed=3))  # a prefix, across a chunk edge
    b = native.normals(5000, seed=4)
    assert not torch.equal(a, b)
    assert abs(torch.corrcoef(torch.stack([a, b]))[0, 1]) < 0.06
    # neighbouring draws are uncorrelated (no structure along the index)
    assert abs(torch.corrcoef(torch.stack([a[:-1], a[1:]]))[0, 1]) < 0.06


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_normals_are_the_same_on_any_thread_count(threads):
    before = torch.get_num_threads()
    reference = native.normals(10_000, seed=5)
    torch.set_num_threads(threads)
    try:
        assert torch.equal(native.normals(10_000, seed=5), reference)
    finally:
        torch.set_num_threads(before)


def _fixed_seeds(monkeypatch, seeds):
    it = iter(seeds)
    monkeypatch.setattr(native, "_new_seed", lambda: next(it))


def _reference(mu, rho, eps, kind, prior):
    """The node's outputs in float64 PyTorch autograd: out and the KL (the closed form for a
    Gaussian prior, log q(w) - log p(w) at w = mu + sigma * eps for the scale mixture)."""
    sigma = F.softplus(rho)
    out = {"sample": mu + sigma * eps, "noise": sigma * eps, "var": sigma**2}[kind]
    if prior is None:
        return out, mu.new_zeros(())
    if prior[0] == "gaussian":
        return out, kl_gaussian(mu, sigma, math.sqrt(prior[1]))
    w = mu + sigma * eps  # autograd through w and the density's own mu, sigma: total derivative
    log_q = gaussian_log_prob(w, mu, sigma)
    return out, (log_q - ScaleMixturePrior(*prior[1:]).log_prob(w)).sum()


PRIORS = [None, ("gaussian", 0.25), ("mixture", 0.25, 1.0, math.exp(-6))]


@pytest.mark.parametrize("kind", ["sample", "noise", "var"])
@pytest.mark.parametrize(
    ("prior", "with_output_grad"),
    [(None, True)] + [(p, g) for p in PRIORS[1:] for g in (True, False)],
)
def test_node_matches_pytorch_on_the_same_noise(monkeypatch, kind, prior, with_output_grad):
    _fixed_seeds(monkeypatch, [1234])
    gen = torch.Generator().manual_seed(0)
    n = 3000  # not a multiple of the 1024-weight chunk
    mu = (0.1 * torch.randn(n, generator=gen)).requires_grad_()
    rho = (torch.rand(n, generator=gen) * 8 - 7).requires_grad_()  # sigma from 1e-3 to 0.7
    g_out = torch.randn(n, generator=gen)
    out, kl = NativePosterior.apply(mu, rho, kind, prior)
    eps = native.normals(n, 1234).double()
    mu64, rho64 = (t.detach().double().requires_grad_() for t in (mu, rho))
    ref_out, ref_kl = _reference(mu64, rho64, eps, kind, prior)
    assert torch.allclose(out.double(), ref_out, rtol=1e-5, atol=1e-6)
    assert kl.item() == pytest.approx(ref_kl.item(), rel=1e-4, abs=1e-2)
    objective = 0.7 * kl + ((out * g_out).sum() if with_output_grad else 0.0)
    objective.backward()
    ref = 0.7 * ref_kl + ((ref_out * g_out.double()).sum() if with_output_grad else 0.0)
    ref.backward()
    # the narrow mixture component's curvature 1 / sigma2^2 = 1.6e5 magnifies float32 rounding of
    # w = mu + sigma eps (about 1e-8 here) into gradient errors of up to about 1e-3
    atol = 2e-3 if prior is not None and prior[0] == "mixture" else 1e-5
    for got, want in ((mu.grad, mu64.grad), (rho.grad, rho64.grad)):
        want = torch.zeros_like(got.double()) if want is None else want  # mu unused: zero
        assert torch.allclose(got.double(), want, rtol=1e-4, atol=atol)


def test_node_refuses_an_inplace_change_before_backward(monkeypatch):
    _fixed_seeds(monkeypatch, [1])
    mu = torch.zeros(100, requires_grad=True)
    rho = torch.full((100,), -3.0, requires_grad=True)
    out, kl = NativePosterior.apply(mu, rho, "sample", ("gaussian", 1.0))
    with torch.no_grad():
        mu.add_(1.0)
    with pytest.raises(RuntimeError, match="inplace"):
        (out.sum() + kl).backward()


def test_extreme_rho_stays_finite(monkeypatch):
    _fixed_seeds(monkeypatch, [9])
    rho = torch.tensor([-200.0, -30.0, 0.0, 19.0, 25.0, 80.0]).requires_grad_()
    mu = torch.zeros(6, requires_grad=True)
    out, kl = NativePosterior.apply(mu, rho, "sample", ("gaussian", 1.0))
    (out.sum() + kl).backward()
    assert torch.isfinite(out).all() and torch.isfinite(kl) and torch.isfinite(rho.grad).all()
    assert rho.grad[-1].item() == pytest.approx(
        1.0 * native.normals(6, 9)[-1].item() + 80.0 - 1 / 80
    )


def _classes(t: torch.Tensor) -> torch.Tensor:
    """Each element as 0 (finite), 1 (+inf), 2 (-inf) or 3 (NaN)."""
    t = t.detach()
    inf = torch.where(t > 0, 1, 2)
    return torch.where(torch.isnan(t), 3, torch.where(torch.isinf(t), inf, 0))


FIN, INF, NAN = 0, 1, 3
# weight 7 of 3000 set to `value`: the class of out[7] for "sample", "noise", "var" and of the KL
NON_FINITE = {
    ("mu", math.nan): ((NAN, FIN, FIN), NAN),  # noise and variance do not depend on mu
    ("rho", math.nan): ((NAN, NAN, NAN), NAN),  # softplus(NaN) = NaN
    ("rho", 1e30): ((FIN, FIN, INF), INF),  # sigma^2 = 1e60 overflows float32
    ("mu", 1e30): ((FIN, FIN, FIN), INF),  # mu^2 overflows; log p(1e30) = -inf for the mixture
}


@pytest.mark.parametrize("kind", ["sample", "noise", "var"])
@pytest.mark.parametrize("prior", PRIORS)
@pytest.mark.parametrize(("where", "value"), list(NON_FINITE))
def test_nan_and_inf_reach_the_output_and_the_kl(monkeypatch, kind, prior, where, value):
    """The training's divergence guard looks for NaN and inf: the kernels pass them on as
    PyTorch's float32 maths does, element by element, and never turn them into finite numbers."""
    _fixed_seeds(monkeypatch, [77])
    n = 3000
    mu, rho = torch.zeros(n), torch.full((n,), -3.0)
    {"mu": mu, "rho": rho}[where][7] = value
    mu.requires_grad_()
    rho.requires_grad_()
    out, kl = NativePosterior.apply(mu, rho, kind, prior)
    outs, kl_class = NON_FINITE[(where, value)]
    assert _classes(out)[7] == outs[["sample", "noise", "var"].index(kind)]
    assert _classes(kl) == (kl_class if prior is not None else FIN)
    mu32, rho32 = (t.detach().clone().requires_grad_() for t in (mu, rho))
    ref_out, ref_kl = _reference(mu32, rho32, native.normals(n, 77), kind, prior)
    assert torch.equal(_classes(out), _classes(ref_out))  # everywhere else finite, as PyTorch
    assert _classes(kl) == _classes(ref_kl)
    if math.isnan(value):  # and a NaN reaches the gradients it touches, as in PyTorch
        (out.sum() + kl).backward()
        (ref_out.sum() + ref_kl).backward()
        for got, want in ((mu.grad, mu32.grad), (rho.grad, rho32.grad)):
            want = torch.zeros_like(got) if want is None else want
            assert torch.equal(torch.isnan(got), torch.isnan(want))


def test_a_nan_rho_in_a_layer_reaches_its_output_and_kl():
    layer = _big_linear("reparam")
    with torch.no_grad():
        layer.weight_rho[3, 5] = math.nan
    x = torch.randn(8, 200)
    draw = layer.draw()
    assert draw.fused
    out, kl = layer(x, draw), layer.kl(draw)
    assert torch.isnan(out[:, 3]).all() and torch.isfinite(out[:, :3]).all()
    assert torch.isnan(kl)


def test_the_compiler_keeps_ieee_nan_and_inf():
    """-ffast-math (and -Ofast) include -ffinite-math-only, under which gcc turns the kernels'
    NaN-keeping selects into min/max instructions that drop a NaN rho."""
    assert not set(native._COMPILE) & {"-ffast-math", "-Ofast", "-ffinite-math-only"}


@pytest.mark.skipif(platform.machine() != "x86_64", reason="libmvec's names are x86-64's")
def test_the_kernels_call_the_vector_maths_library():
    """Without libmvec each exp, log and sin is a scalar call: BBB training steps of the
    784-1200-1200-10 MLP take 2 to 3 times as long (docs/native.md)."""
    data = Path(native._library._name).read_bytes()
    for fn in (b"expf", b"logf", b"sinf"):
        assert re.search(rb"_ZGV[a-e]N\d+v_" + fn, data), fn


# --- the layers -----------------------------------------------------------------------------------


def _big_linear(estimator, prior=None):
    torch.manual_seed(0)
    layer = BayesianLinear(200, 100, estimator=estimator, prior=prior, rho0=-3.0)
    assert layer.posterior.mu.numel() >= posterior.FUSED_MIN
    return layer


def _plain_draw(layer, eps=None):
    """A draw from the layer's posterior on the PyTorch path (fed `eps`, if given)."""
    draw = Draw(layer.posterior, 1, 0, layer.n_segments, fused=False)
    if eps is not None:
        draw._eps = eps.view(1, -1)
    return draw


def _spy_kernels(monkeypatch):
    calls = []
    real = native.NativePosterior.apply
    monkeypatch.setattr(native.NativePosterior, "apply", lambda *a: calls.append(a[2]) or real(*a))
    return calls


@pytest.mark.parametrize("estimator", ["reparam", "flipout", "local"])
def test_layers_train_through_the_kernels_as_through_pytorch(monkeypatch, estimator):
    """Same noise, same outputs, KL and gradients: the kernels change the speed, not the maths.
    (Flipout's and local's own sign and pre-activation noise come from PyTorch in both.)"""
    layer = _big_linear(estimator)
    calls = _spy_kernels(monkeypatch)
    _fixed_seeds(monkeypatch, [101])
    x = torch.randn(16, 200)
    results = []
    for draw in (layer.draw(), _plain_draw(layer, native.normals(20_100, 101))):
        layer.zero_grad(set_to_none=True)
        torch.manual_seed(5)
        out = layer(x, draw)
        kl = layer.kl(draw)
        (out.square().sum() + 0.3 * kl).backward()
        results.append((out.detach(), kl.item(), layer.posterior.mu.grad, layer.posterior.rho.grad))
    # one pass of the kernels over weights and biases together, the KL with it
    assert calls == [{"reparam": "sample", "flipout": "noise", "local": "var"}[estimator]]
    (out, kl, grad_mu, grad_rho), (twin_out, twin_kl, twin_mu, twin_rho) = results
    assert torch.allclose(out, twin_out, rtol=1e-4, atol=1e-5)
    assert kl == pytest.approx(twin_kl, rel=1e-5)
    assert torch.allclose(grad_mu, twin_mu, rtol=1e-3, atol=1e-4)
    assert torch.allclose(grad_rho, twin_rho, rtol=1e-3, atol=1e-4)


def test_the_mixture_kl_is_estimated_at_the_passes_own_weight_sample(monkeypatch):
    """The paper's estimator (eq. 2): log q(w) - log p(w) at the w the forward pass used."""
    prior = ScaleMixturePrior(0.5, 1.0, 0.01)
    layer = _big_linear("reparam", prior)
    _fixed_seeds(monkeypatch, [7])
    x = torch.randn(4, 200)
    draw = layer.draw()
    out = layer(x, draw)
    kl = layer.kl(draw)
    with torch.no_grad():
        sigma_w, sigma_b = layer.weight_sigma, layer.bias_sigma
        eps = native.normals(20_100, 7)
        w = layer.weight_mu + sigma_w * eps[:20_000].view(100, 200)
        b = layer.bias_mu + sigma_b * eps[20_000:]
        assert torch.allclose(out, x @ w.T + b, atol=1e-5)  # that sample made the output
        expected = sum(
            (gaussian_log_prob(v, mu, sigma) - prior.log_prob(v)).sum()
            for v, mu, sigma in ((w, layer.weight_mu, sigma_w), (b, layer.bias_mu, sigma_b))
        )
    assert kl.item() == pytest.approx(expected.item(), rel=1e-4)
    kl.backward()  # the KL alone has a gradient (the output's was never asked for)
    grads = layer.grads()
    assert torch.isfinite(grads["weight_rho"]).all() and grads["weight_mu"].abs().sum() > 0


def test_a_prior_without_a_kernel_kl_gets_it_from_a_plain_sample():
    prior = LaplacePrior(0.5)
    layer = _big_linear("reparam", prior)
    draw = layer.draw()
    layer(torch.randn(4, 200), draw)
    torch.manual_seed(3)
    kl = layer.kl(draw)
    torch.manual_seed(3)
    eps = torch.empty(1, 20_100).normal_()
    with torch.no_grad():
        mu, sigma = layer.posterior.mu, layer.posterior.sigma()
        w = mu + sigma * eps[0]
        expected = (gaussian_log_prob(w, mu, sigma) - prior.log_prob(w)).sum()
    assert kl.item() == pytest.approx(expected.item(), rel=1e-5)


def test_kernels_are_for_training_passes_of_large_float32_cpu_layers():
    big, small = _big_linear("reparam"), BayesianLinear(20, 10)
    assert big.draw().fused and not small.draw().fused
    assert not big.draw(samples=2).fused  # one sample per pass only
    with torch.no_grad():
        assert not big.draw().fused
    assert not big.double().draw().fused


def test_convolutions_use_the_kernels_too(monkeypatch):
    calls = _spy_kernels(monkeypatch)
    for estimator, kinds in (("reparam", ["sample"]), ("flipout", ["noise"])):
        calls.clear()
        conv = BayesianConv2d(64, 32, 3, padding=1, estimator=estimator)
        draw = conv.draw()
        out = conv(torch.randn(2, 64, 8, 8), draw)
        (out.sum() + conv.kl(draw)).backward()
        assert calls == kinds and out.shape == (2, 32, 8, 8)
        assert all(torch.isfinite(p.grad).all() for p in conv.parameters())


def test_without_the_library_the_layers_fall_back(monkeypatch, tmp_path):
    """A failed build (here: a compiler that always fails) leaves `available()` False with the
    reason and a warning, and layers train on the PyTorch path."""
    _fresh_state(monkeypatch, tmp_path)
    monkeypatch.setenv("CC", "false")
    with pytest.warns(RuntimeWarning, match="failed"):
        assert not native.available()
    assert "failed" in native.failure
    layer = _big_linear("reparam")
    draw = layer.draw()
    assert not draw.fused
    out = layer(torch.randn(4, 200), draw)
    (out.sum() + layer.kl(draw)).backward()
    assert torch.isfinite(layer.posterior.rho.grad).all()


def test_bbb_native_0_switches_the_kernels_off(monkeypatch):
    monkeypatch.setenv("BBB_NATIVE", "0")
    assert not native.available() and "BBB_NATIVE" in native.failure


# --- the cache: built once, verified before every load -----------------------------------------

PLANTED = r"""
#include <stdio.h>
__attribute__((constructor)) static void plant(void) {
    FILE *f = fopen(MARKER, "w");
    if (f) fclose(f);
}
void bbb_normals(void) {}
void bbb_forward(void) {}
void bbb_backward(void) {}
"""


def _fresh_state(monkeypatch, tmp_path) -> Path:
    """The module as in a new process, with its cache in tmp_path / "cache" (not yet made)."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("BBB_CACHE_DIR", str(cache))
    monkeypatch.delenv("BBB_NATIVE", raising=False)
    monkeypatch.delenv("CC", raising=False)
    _forget(monkeypatch)
    return cache


def _forget(monkeypatch):
    """Forget the loaded library, so that the next `available()` loads it again."""
    for name, value in (("_library", None), ("_tried", False), ("failure", None)):
        monkeypatch.setattr(native, name, value)


def _count_builds(monkeypatch) -> list:
    builds = []
    real = native._build
    monkeypatch.setattr(native, "_build", lambda *a: builds.append(a) or real(*a))
    return builds


def _compile(tmp_path, name: str, source: str, *defines: str) -> Path:
    (tmp_path / f"{name}.c").write_text(source)
    lib = tmp_path / f"{name}.so"
    cmd = [
        shutil.which("cc") or "gcc",
        "-shared",
        "-fPIC",
        *defines,
        str(tmp_path / f"{name}.c"),
        "-o",
        str(lib),
    ]
    subprocess.run(cmd, check=True, capture_output=True)
    return lib


@pytest.fixture
def planted(tmp_path) -> tuple[Path, Path]:
    """A library with the kernels' names whose constructor writes the file `marker`."""
    marker = tmp_path / "marker"
    return _compile(tmp_path, "planted", PLANTED, f'-DMARKER="{marker}"'), marker


def _write_manifest(library: Path, of: Path | None = None):
    """A manifest for `library` naming the SHA-256 of `of` (default: the library itself)."""
    digest = hashlib.sha256((of or library).read_bytes()).hexdigest()
    native._manifest(library).write_text(json.dumps({"key": native._key(), "sha256": digest}))


def _works() -> bool:
    """The loaded library is the real one: its normals look standard normal."""
    z = native.normals(10_000, seed=1).double()
    return abs(z.mean()) < 0.05 and abs(z.std() - 1) < 0.05


def test_the_library_is_built_once_then_loaded_from_the_cache(monkeypatch, tmp_path):
    cache = _fresh_state(monkeypatch, tmp_path)
    builds = _count_builds(monkeypatch)
    umask = os.umask(0o002)  # a umask that would leave new files group-writable
    try:
        assert native.available() and _works() and len(builds) == 1
    finally:
        os.umask(umask)
    library = native._library_path(native._key())
    manifest = json.loads(native._manifest(library).read_text())
    assert manifest == {
        "key": native._key(),
        "sha256": hashlib.sha256(library.read_bytes()).hexdigest(),
    }
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    assert library.stat().st_mode & 0o022 == 0
    assert sorted(p.name for p in cache.iterdir()) == sorted([library.name, f"{library.stem}.json"])
    _forget(monkeypatch)
    assert native.available() and _works() and len(builds) == 1  # loaded, not rebuilt


@pytest.mark.parametrize("manifest", ["stale", "missing"])
def test_a_truncated_library_is_rebuilt_not_loaded(monkeypatch, tmp_path, manifest):
    """Loading a truncated library kills the process (SIGBUS): it must never get that far. Run in
    a child process, where that would show as its exit status."""
    _fresh_state(monkeypatch, tmp_path)
    library = native._library_path(native._key())
    native._build(library, native._key())  # built, not loaded here: truncating it would kill us
    os.truncate(library, library.stat().st_size // 2)
    if manifest == "missing":
        native._manifest(library).unlink()
    code = "from bbb_core import native; print(native.available(), native.failure)"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["True", "None"]
    _forget(monkeypatch)
    native._verify(library, native._key())  # rebuilt: whole again, and its manifest agrees


@pytest.mark.parametrize(
    "how", ["no manifest", "stale manifest", "group-writable", "symlink", "foreign"]
)
def test_a_planted_library_is_never_loaded(monkeypatch, tmp_path, planted, how):
    """A library that is not what our build wrote never reaches `ctypes.CDLL` (which would run its
    constructor): it is rebuilt, and the real kernels are used."""
    planted_lib, marker = planted
    cache = _fresh_state(monkeypatch, tmp_path)
    cache.mkdir(mode=0o700)
    library = native._library_path(native._key())
    if how == "stale manifest":  # the manifest of an earlier genuine build
        native._build(library, native._key())
        library.unlink()
    if how == "symlink":
        library.symlink_to(planted_lib)
    else:
        shutil.copy(planted_lib, library)
    if how in ("group-writable", "symlink", "foreign"):  # each with a manifest that matches
        _write_manifest(library, of=planted_lib)
    if how == "group-writable":
        library.chmod(0o775)
    if how == "foreign":
        if os.getuid() != 0:
            pytest.skip("giving a file to another user needs root")
        os.chown(library, os.getuid() + 1000, -1)
    assert native.available() and _works()
    assert not marker.exists()
    native._verify(library, native._key())  # replaced by a genuine build


@pytest.mark.parametrize("mode", [0o770, 0o777], ids=["group", "others"])
def test_a_directory_others_can_write_is_not_loaded_from(monkeypatch, tmp_path, planted, mode):
    """Whoever can write the directory could plant a library and its manifest: nothing in it is
    loaded, the layers fall back to PyTorch with a warning."""
    planted_lib, marker = planted
    cache = _fresh_state(monkeypatch, tmp_path)
    cache.mkdir(mode=0o700)
    library = native._library_path(native._key())
    shutil.copy(planted_lib, library)
    _write_manifest(library)
    cache.chmod(mode)
    with pytest.warns(RuntimeWarning, match="writable by group or others"):
        assert not native.available()
    assert not marker.exists()
    assert "cache directory" in native.failure
    layer = _big_linear("reparam")
    assert not layer.draw().fused
    (layer(torch.randn(4, 200)).sum() + layer.kl()).backward()


def test_a_library_without_the_kernels_is_rebuilt(monkeypatch, tmp_path):
    """A cached library (with a matching manifest) that lacks the kernels is replaced: loaded,
    found wanting, unloaded, rebuilt, and the rebuilt file (same path) is the one loaded."""
    _fresh_state(monkeypatch, tmp_path).mkdir(mode=0o700)
    builds = _count_builds(monkeypatch)
    library = native._library_path(native._key())
    shutil.copy(_compile(tmp_path, "empty", "int bbb_other(void) { return 0; }\n"), library)
    _write_manifest(library)
    assert native.available() and _works() and len(builds) == 1


def test_a_build_without_the_kernels_falls_back_with_a_warning(monkeypatch, tmp_path):
    _fresh_state(monkeypatch, tmp_path)
    builds = _count_builds(monkeypatch)
    (tmp_path / "other.c").write_text("int bbb_other(void) { return 0; }\n")
    monkeypatch.setattr(native, "_SOURCE", tmp_path / "other.c")
    with pytest.warns(RuntimeWarning, match="lacks bbb_normals, bbb_forward, bbb_backward"):
        assert not native.available()
    assert len(builds) == 1  # nothing cached: built once, found wanting, given up
    assert "lacks" in native.failure


def test_available_never_raises(monkeypatch, tmp_path):
    _fresh_state(monkeypatch, tmp_path)
    monkeypatch.setattr(native, "_key", lambda: 1 / 0)
    with pytest.warns(RuntimeWarning, match="division by zero"):
        assert not native.available()


def test_no_compiler_turns_the_kernels_off_quietly(monkeypatch, tmp_path):
    _fresh_state(monkeypatch, tmp_path)
    monkeypatch.setattr(native.shutil, "which", lambda name: None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not native.available()
    assert "no C compiler" in native.failure


@pytest.mark.parametrize("estimator", ["reparam", "local", "flipout"])
@pytest.mark.parametrize("rho", [-20.0, -10.0, 0.0, 10.0])  # model.rho0's allowed range, ends in
def test_both_paths_agree_at_the_ends_of_the_rho_range(estimator, rho):
    """A layer trained through the fused kernels and through the PyTorch path gives the same KL
    and the same KL gradients, and finite gradients of a whole training loss, over the range
    `model.rho0` allows."""
    layer = BayesianLinear(64, 64, estimator=estimator, rho0=rho)  # 4,160 weights: kernels
    x = torch.randn(8, 64, generator=torch.Generator().manual_seed(0))
    results = {}
    for path, draw in (("native", layer.draw()), ("torch", _plain_draw(layer))):
        assert draw.fused == (path == "native")
        layer.zero_grad(set_to_none=True)
        out = layer(x, draw)
        kl = layer.kl(draw)  # from the pass: the kernels computed it along with the output
        kl.backward(retain_graph=True)
        kl_grads = [p.grad.clone() for p in layer.parameters()]
        (out.square().mean() + kl).backward()
        assert torch.isfinite(out).all() and torch.isfinite(kl)
        assert all(torch.isfinite(p.grad).all() for p in layer.parameters())
        results[path] = (kl.detach(), kl_grads)
    (kl_native, grads_native), (kl_torch, grads_torch) = results["native"], results["torch"]
    assert kl_native.item() == pytest.approx(kl_torch.item(), rel=1e-5)
    for a, b in zip(grads_native, grads_torch, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
