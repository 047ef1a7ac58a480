"""What a Bayesian layer draws from its posterior on the PyTorch path: random numbers, and the
graph node that turns mu and rho into a weight sample (or noise, or variances) and the
closed-form Gaussian KL with a hand-written backward.

Every random number here comes from the streams in use in the calling thread (`rng.generator`).

`layers.py` uses these where the fused CPU kernels of `native.py` do not apply (small layers,
prediction, GPUs, double precision, `BBB_NATIVE=0`).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from . import native
from .rng import generator, random_seed

_BOX_MULLER_MIN = 1 << 16  # float32 CPU normal fills from this size: native or `_box_muller`


# ---------------------------------------------------------------------------------------------
# Random numbers. Why: on a CPU, PyTorch draws every number from one serial mt19937 stream, about
# 3 ns a normal while the second core waits: the 2.4M weight noises of a 784-1200-1200-10
# reparameterised step take longer than its forward pass, and `bernoulli_` costs 10 ns a coin.


def standard_normal(shape: tuple[int, ...], like: Tensor) -> Tensor:
    """N(0, 1) draws of `shape` with `like`'s dtype and device.

    Large float32 CPU tensors come from the fused kernels' Philox generator (`native.normals`:
    vectorised, on every thread, about 4x faster than `normal_` on one thread) or, without
    them, when PyTorch may use several threads, from `_box_muller`; everything else from
    `normal_`. All draw from this thread's streams (`generator`).
    """
    if torch.compiler.is_compiling():  # traced: the compiler generates its own random numbers
        return torch.randn(shape, dtype=like.dtype, device=like.device)
    out = torch.empty(shape, dtype=like.dtype, device=like.device)
    large = out.device.type == "cpu" and out.dtype == torch.float32
    large = large and out.numel() >= _BOX_MULLER_MIN
    if large and native.available():
        return native.fill_normals(out)  # its seed from the thread's streams
    if large and torch.get_num_threads() > 1:
        return _box_muller(out)
    return out.normal_(generator=generator(out.device))


def _box_muller(out: Tensor) -> Tensor:
    """Fill a float32 CPU tensor with N(0, 1) draws by the Box-Muller transform.

    The random bits come from numpy's SFC64 generator (under 1 ns per 32 bits; seeded from
    this thread's streams, so a run's draws are reproducible); the
    transform z = sqrt(-2 ln u1) (cos 2 pi u2, sin 2 pi u2), with 23-bit uniforms u1 in (0, 1]
    and u2 in [0, 1), runs as PyTorch element-wise kernels on every CPU thread. Three quarters
    of the work is then parallel where `normal_` is one serial loop: on two cores 2.4M draws
    take 6 ms instead of 8 (on one thread 9.6 ms instead of 8.2, hence only with several).
    """
    flat = out.view(-1)
    n = flat.numel()
    half = (n + 1) // 2
    seed = random_seed()
    bits = np.random.Generator(np.random.SFC64(seed)).bit_generator.random_raw(half)
    words = torch.from_numpy(bits.view(np.int32))  # 2 * half random 32-bit words
    u1, u2 = (_unit_floats(w) for w in (words[:half], words[half:]))  # both in [1, 2)
    radius = torch.rsub(u1, 2.0).log_().mul_(-2.0).sqrt_()  # 2 - u1 in (0, 1]
    angle = u2.mul_(2 * math.pi)  # [2 pi, 4 pi): one turn, shifted by one
    torch.cos(angle, out=flat[:half]).mul_(radius)
    torch.mul(angle.sin_()[: n - half], radius[: n - half], out=flat[half:])
    return out


def _unit_floats(words: Tensor) -> Tensor:
    """int32 random words -> floats uniform in [1, 2): 23 random mantissa bits, exponent 0."""
    return words.bitwise_and(0x7FFFFF).bitwise_or_(0x3F800000).view(torch.float32)


def _random_signs(shape: tuple[int, ...], like: Tensor) -> Tensor:
    """Independent signs, +1 or -1 with probability 1/2 each.

    On a CPU each random 32-bit integer gives 32 signs, its bits: a fortieth of the cost of
    `bernoulli_`. Elsewhere `bernoulli_` (one kernel).
    """
    if torch.compiler.is_compiling():
        signs = torch.empty(shape, dtype=like.dtype, device=like.device).bernoulli_(0.5)
        return signs.mul_(2).sub_(1)
    if like.device.type != "cpu":
        signs = torch.empty(shape, dtype=like.dtype, device=like.device)
        return signs.bernoulli_(0.5, generator=generator(like.device)).mul_(2).sub_(1)
    n = math.prod(shape)
    words = torch.randint(
        -(2**31), 2**31, ((n + 31) // 32, 1), dtype=torch.int32, generator=generator("cpu")
    )
    bits = words.bitwise_right_shift(torch.arange(32, dtype=torch.int32)).bitwise_and_(1)
    signs = bits.mul_(2).sub_(1).view(-1)[:n]  # int32 arithmetic: cheaper than `where`
    return signs.to(like.dtype).view(shape)


# ---------------------------------------------------------------------------------------------
# The posterior's graph node, with a hand-written gradient.


class _Softplus:
    """sigma = softplus(rho) without a graph, and its slope dsigma/drho = sigmoid(rho) on demand."""

    def __init__(self, rho: Tensor) -> None:
        self.rho = rho
        with torch.no_grad():
            self.sigma = F.softplus(rho)
        self._slope: Tensor | None = None

    def slope(self) -> Tensor:
        if self._slope is None:
            with torch.no_grad():
                self._slope = torch.sigmoid(self.rho)
        return self._slope


def _reduce_to(grad: Tensor, shape: torch.Size) -> Tensor:
    """Sum a gradient over the sample dimensions that broadcasting added."""
    if grad.shape == shape:
        return grad
    if grad.numel() == math.prod(shape):
        return grad.reshape(shape)
    return grad.sum_to_size(shape)


def kl_normal_sum(mu: Tensor, sigma: Tensor, prior_sigma: float) -> Tensor:
    """Summed KL[N(mu, sigma^2) || N(0, prior_sigma^2)], as `priors.kl_gaussian`, in four passes.

    Per element log(s_p / sigma) + (sigma^2 + mu^2) / (2 s_p^2) - 1/2, summed term by term.
    """
    sigma_, mu_ = sigma.reshape(-1), mu.reshape(-1)
    quad = torch.dot(sigma_, sigma_) + torch.dot(mu_, mu_)  # reads, no temporaries
    const = mu.numel() * (math.log(prior_sigma) - 0.5)
    return quad * (0.5 / prior_sigma**2) - torch.log(sigma_).sum() + const


class _Posterior(torch.autograd.Function):
    """What a layer takes from q(w) = N(mu, sigma^2), sigma = softplus(rho), as one graph node.

    `kind` names the weight-shaped output: "sample" mu + sigma * eps, "noise" sigma * eps
    (eps broadcast against the weights: a leading dimension holds several samples), "var"
    sigma^2, or None. With a `prior_sigma` the node also returns the summed
    KL[q || N(0, prior_sigma^2)]. Returns (out, kl), out or kl.

    Why: autograd through softplus, the sample and the KL formula keeps a dozen weight-sized
    tensors and passes over the weights as many times again backwards. Here sigma comes in
    computed once (`_Softplus`), and the gradients of the output and of the KL are combined
    before one multiplication by dsigma/drho = sigmoid(rho), written into one new tensor per
    parameter. What the backward needs stays on `ctx` rather than in `save_for_backward`, so
    the output's and the KL's gradients may also be taken in separate backward passes; an
    in-place change of mu or rho in between is refused, as autograd refuses it.
    """

    @staticmethod
    def forward(ctx, mu, rho, sp: _Softplus, eps, kind: str | None, prior_sigma: float | None):
        ctx.set_materialize_grads(False)
        ctx.mu, ctx.rho, ctx.sp, ctx.eps, ctx.kind = mu, rho, sp, eps, kind
        ctx.versions = (mu._version, rho._version)
        ctx.prior_var = None if prior_sigma is None else prior_sigma**2
        outputs = []
        if kind == "sample":
            outputs.append(torch.addcmul(mu, sp.sigma, eps))
        elif kind == "noise":
            outputs.append(sp.sigma * eps)
        elif kind == "var":
            outputs.append(sp.sigma.square())
        if prior_sigma is not None:
            outputs.append(kl_normal_sum(mu, sp.sigma, prior_sigma))
        return tuple(outputs) if len(outputs) > 1 else outputs[0]

    @staticmethod
    def backward(ctx, *grads):
        if (ctx.mu._version, ctx.rho._version) != ctx.versions:
            raise RuntimeError(
                "one of the variables needed for gradient computation has been modified by an "
                "inplace operation: a Bayesian layer's mu or rho changed after its forward pass"
            )
        grad_out = grads[0] if ctx.kind is not None else None
        grad_kl = grads[-1] if ctx.prior_var is not None else None
        mu, sigma, shape = ctx.mu, ctx.sp.sigma, ctx.rho.shape
        grad_mu = grad_sigma = None
        if grad_out is not None:
            if ctx.kind == "sample":
                grad_mu = _reduce_to(grad_out, shape)
            if ctx.kind == "var":
                grad_sigma = _reduce_to(grad_out * sigma, shape).mul_(2)
            else:
                grad_sigma = _reduce_to(grad_out * ctx.eps, shape)
        if grad_kl is not None:
            # dKL/dmu = mu / s_p^2, dKL/dsigma = (sigma - s_p^2 / sigma) / s_p^2
            scale = grad_kl / ctx.prior_var  # 0-dim: stays on the device
            grad_mu = mu * scale if grad_mu is None else torch.addcmul(grad_mu, mu, scale)
            kl_sigma = torch.addcdiv(sigma, sigma.new_ones(()), sigma, value=-ctx.prior_var)
            if grad_sigma is None:
                grad_sigma = kl_sigma.mul_(scale)
            else:
                grad_sigma.addcmul_(kl_sigma, scale)
        need_mu, need_rho = ctx.needs_input_grad[:2]
        grad_rho = None
        if need_rho and grad_sigma is not None:
            grad_rho = grad_sigma.mul_(ctx.sp.slope())
        return grad_mu if need_mu else None, grad_rho, None, None, None, None
