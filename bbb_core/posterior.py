"""The variational posterior of a network's weights, stored flat, and what one pass draws from it.

Every weight and bias w of a Bayesian network has q(w) = N(mu, sigma^2) with
sigma = softplus(rho) = log(1 + exp(rho)) (Blundell et al., "Weight Uncertainty in Neural
Networks", ICML 2015). A `Posterior` holds mu and rho of all of them as two flat parameters, one
segment per weight or bias tensor; each layer reads views of its own segments. So a training
step's work on the posterior does not grow with the number of layers: one softplus, one noise
draw, one sample and one KL over every weight of the network, then one split into the layers'
pieces.

    draw = posterior.draw(samples)        # one pass's draw (lazy: nothing is computed yet)
    draw.piece("sample", segment)         # mu + sigma * eps, (S, n) per segment ("reparam")
    draw.piece("noise", segment)          # sigma * eps, (S, n) ("flipout")
    draw.piece("var", segment)            # sigma^2, (n,) ("local")
    posterior.kl(draw)                    # KL[q || p], summed over every weight

The KL is the closed form where the prior has one (Gaussian), computed from the draw's own sigma;
otherwise the one-sample Monte Carlo estimate log q(w) - log p(w) at the draw's own weight sample
(the paper's eq. 2), averaged over its S samples, or at a fresh sample when the pass drew none.
`kl()` without a draw takes a fresh one. Nothing is cached between calls: a `Draw` lives for one
pass and is passed explicitly from the forward pass to the KL.

These plain operations are the reference implementation. One faster route exists, chosen in
`_fused()` alone: a training pass of a float32 CPU posterior with at least FUSED_MIN weights
goes through the fused kernels of `native.py`, which compute the noise, the sample (or noise, or
variances) and the KL in one vectorised pass and the gradients in another, drawing the same
distribution from their own Philox streams (tests compare both against each other). Under
`torch.compile` the reference operations are traced and fused by the compiler.

Random numbers come from the calling thread's random streams (`rng.generator`): never from
PyTorch's global generator.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import native
from .priors import GaussianPrior, Prior, ScaleMixturePrior
from .rng import generator

FUSED_MIN = 1 << 12  # weights of a posterior whose training passes use the fused CPU kernels
_NATIVE_NORMALS_MIN = 1 << 16  # float32 CPU normal fills from this size come from the kernels
_LOG_2PI = math.log(2 * math.pi)
_BIT_INDEX = torch.arange(32, dtype=torch.int32)  # read only
KINDS = ("sample", "noise", "var", "mu")


def standard_normal(shape: tuple[int, ...], like: Tensor) -> Tensor:
    """N(0, 1) draws of `shape` with `like`'s dtype and device, from this thread's streams.

    Large float32 CPU tensors come from the fused kernels' vectorised Philox generator, where
    they are built (PyTorch's CPU `normal_` is one serial loop: on a 784-1200-1200 network's
    weights it takes longer than the forward pass). Under `torch.compile` the compiler draws.
    """
    if torch.compiler.is_compiling():
        return torch.randn(shape, dtype=like.dtype, device=like.device)
    out = torch.empty(shape, dtype=like.dtype, device=like.device)
    if out.numel() >= _NATIVE_NORMALS_MIN and native.usable(out):
        return native.fill_normals(out)
    return out.normal_(generator=generator(out.device))


def random_signs(shape: tuple[int, ...], like: Tensor) -> Tensor:
    """Independent signs, +1 or -1 with probability 1/2 each (flipout's sign flips).

    On a CPU each random 32-bit integer gives 32 signs, its bits: a tenth of the cost of
    `bernoulli_` (22 against 78 us for 200 x 34 signs, 0.35 against 2.7 ms for 128 x 1,984).
    Elsewhere `bernoulli_`, one kernel.
    """
    if torch.compiler.is_compiling() or like.device.type != "cpu":
        signs = torch.empty(shape, dtype=like.dtype, device=like.device)
        g = None if torch.compiler.is_compiling() else generator(like.device)
        return signs.bernoulli_(0.5, generator=g).mul_(2).sub_(1)
    n = math.prod(shape)
    words = torch.randint(
        -(2**31), 2**31, ((n + 31) // 32, 1), dtype=torch.int32, generator=generator("cpu")
    )
    bits = words.bitwise_right_shift(_BIT_INDEX).bitwise_and_(1)
    signs = bits.mul_(2).sub_(1).view(-1)[:n]  # int32 arithmetic: cheaper than `where`
    return signs.to(like.dtype).view(shape)


def _native_prior(prior: Prior) -> tuple | None:
    """The prior as the fused kernels take it; None where they have no KL for it."""
    if type(prior) is GaussianPrior:
        return ("gaussian", prior.sigma**2)
    if type(prior) is ScaleMixturePrior:
        return ("mixture", prior.pi, prior.sigma1, prior.sigma2)
    return None


class Posterior(nn.Module):
    """mu and rho of every weight and bias of a network, flat, with the prior they share.

    Args:
        sizes: the number of elements of each segment (one per weight or bias tensor).
        prior: the prior of every weight (default `GaussianPrior(1.0)`).
        rho0: the initial rho of every weight; mu starts at zero (layers initialise their own
            segments, as `nn.Linear` does its weights).
    """

    def __init__(
        self, sizes: Sequence[int], prior: Prior | None = None, rho0: float = -4.0,
        device=None, dtype=None,
    ) -> None:  # fmt: skip
        super().__init__()
        self.prior = prior if prior is not None else GaussianPrior(1.0)
        self.sizes = tuple(int(n) for n in sizes)
        self.offsets = tuple(sum(self.sizes[:i]) for i in range(len(self.sizes) + 1))
        n = self.offsets[-1]
        self.mu = nn.Parameter(torch.zeros(n, device=device, dtype=dtype))
        self.rho = nn.Parameter(torch.full((n,), float(rho0), device=device, dtype=dtype))

    @classmethod
    def joined(cls, parts: Sequence[Posterior]) -> Posterior:
        """One posterior holding the segments of `parts` in order, with their current values.
        The parts must share one prior."""
        prior = parts[0].prior
        if any(p.prior is not prior for p in parts):
            raise ValueError("joined posteriors must share one prior")
        mu = torch.cat([p.mu.detach() for p in parts])
        joined = cls([n for p in parts for n in p.sizes], prior, 0.0, mu.device, mu.dtype)
        with torch.no_grad():
            joined.mu.copy_(mu)
            joined.rho.copy_(torch.cat([p.rho.detach() for p in parts]))
        return joined

    def segment(self, name: str, index: int) -> Tensor:
        """The flat view of `name` ("mu" or "rho") in segment `index`."""
        start = self.offsets[index]
        return getattr(self, name).narrow(0, start, self.sizes[index])

    def sigma(self) -> Tensor:
        return F.softplus(self.rho)

    def draw(self, samples: int = 1, first: int = 0, stop: int | None = None) -> Draw:
        """What one pass draws from q over segments first..stop-1 (all by default)."""
        return Draw(self, samples, first, len(self.sizes) if stop is None else stop)

    def kl(self, draw: Draw | None = None, first: int = 0, stop: int | None = None) -> Tensor:
        """KL[q || p] summed over segments first..stop-1 (all by default), a scalar.

        With `draw` (which must cover the same segments), the KL of that pass: computed from its
        sigma, at its weight sample for a prior without a closed form, or the one the fused
        kernels computed with it. Without, from a fresh draw.
        """
        if draw is None:
            draw = self.draw(1, first, len(self.sizes) if stop is None else stop)
        if draw.kl is not None:
            return draw.kl if torch.is_grad_enabled() else draw.kl.detach()
        if draw.fused:  # the kernels computed no KL with it: the plain operations do
            draw = Draw(self, 1, draw.first, draw.first + len(draw.sizes), fused=False)
        exact = self.prior.kl_closed_form(draw.mu, draw.sigma)
        if exact is not None:
            return exact
        # log q(w) - log p(w) at w = mu + sigma * eps, with log q(w) = -log sigma - eps^2/2 - ...
        eps, w = draw.eps, draw.flat("sample")
        log_q = -torch.log(draw.sigma).sum() * draw.samples - 0.5 * torch.dot(
            eps.reshape(-1), eps.reshape(-1)
        )  # fmt: skip
        log_q = log_q - 0.5 * _LOG_2PI * eps.numel()
        return (log_q - self.prior.log_prob(w).sum()) / draw.samples

    def extra_repr(self) -> str:
        return f"segments={len(self.sizes)}, weights={self.offsets[-1]}, prior={self.prior}"


class Draw:
    """One pass's draw from a `Posterior` over segments first..stop-1: S samples of noise eps,
    sigma, and the flat outputs made from them, each computed once, on first use."""

    def __init__(
        self, posterior: Posterior, samples: int, first: int, stop: int, fused: bool | None = None
    ) -> None:
        self.posterior, self.samples, self.first = posterior, samples, first
        self.sizes = posterior.sizes[first:stop]
        start, end = posterior.offsets[first], posterior.offsets[stop]
        whole = start == 0 and end == posterior.offsets[-1]
        self.mu = posterior.mu if whole else posterior.mu[start:end]
        self.rho = posterior.rho if whole else posterior.rho[start:end]
        self.kl: Tensor | None = None  # the KL, where the fused kernels computed it
        # per row, the flipout signs and pre-activation noises the pass's layers will ask for
        self.widths = {"signs": 0, "normals": 0}
        self._pools: dict[str, tuple[Tensor, int]] = {}
        self._sigma: Tensor | None = None
        self._eps: Tensor | None = None
        self._flat: dict[str, Tensor] = {}
        self._pieces: dict[str, tuple[Tensor, ...]] = {}
        if fused is None:
            fused = samples == 1 and _fused(self.mu, self.rho)
        self.fused = fused

    @property
    def sigma(self) -> Tensor:
        if self._sigma is None:
            self._sigma = F.softplus(self.rho)
        return self._sigma

    @property
    def eps(self) -> Tensor:
        """The standard normal noise, (S, n)."""
        if self._eps is None:
            self._eps = standard_normal((self.samples, self.mu.numel()), self.mu)
        return self._eps

    def flat(self, kind: str) -> Tensor:
        """The flat `kind` output: "sample" mu + sigma * eps and "noise" sigma * eps, (S, n);
        "var" sigma^2 and "mu" mu itself, (n,)."""
        if kind not in self._flat:
            self._flat[kind] = self._fused_flat(kind) if self.fused else self._plain_flat(kind)
        return self._flat[kind]

    def _plain_flat(self, kind: str) -> Tensor:
        if kind == "sample":
            return torch.addcmul(self.mu, self.sigma, self.eps)
        if kind == "noise":
            return self.sigma * self.eps
        if kind == "var":
            return self.sigma.square()
        if kind == "mu":
            return self.mu
        raise ValueError(f"kind must be one of {', '.join(KINDS)}; got {kind!r}")

    def _fused_flat(self, kind: str) -> Tensor:
        """`_plain_flat` through the fused kernels; the first call also computes the KL."""
        if kind == "mu":
            return self.mu
        prior = _native_prior(self.posterior.prior) if self.kl is None else None
        out, kl = native.NativePosterior.apply(self.mu, self.rho, kind, prior)
        if prior is not None:
            self.kl = kl
        return out if kind == "var" else out.unsqueeze(0)

    def signs(self, rows: int, width: int, like: Tensor) -> Tensor:
        """(rows, width) independent random signs, for one layer's flipout (see `_cut`)."""
        return self._cut("signs", rows, width, like)

    def normals(self, rows: int, width: int, like: Tensor) -> Tensor:
        """(rows, width) standard normals, for one layer's local reparameterisation."""
        return self._cut("normals", rows, width, like)

    def _cut(self, name: str, rows: int, width: int, like: Tensor) -> Tensor:
        """Columns of one random draw of (rows, widths[name]) per pass, where the network said
        how many its layers will ask for: one draw per pass instead of one per layer."""
        pool, used = self._pools.get(name, (None, 0))
        if pool is None or pool.shape[0] != rows or used + width > pool.shape[1]:
            make = random_signs if name == "signs" else standard_normal
            pool, used = make((rows, max(width, self.widths[name])), like), 0
        self._pools[name] = (pool, used + width)
        return pool[:, used : used + width]

    def piece(self, kind: str, segment: int) -> Tensor:
        """Segment `segment`'s part of `flat(kind)`: (S, n_segment), or (n_segment,) for "var"."""
        if kind not in self._pieces:
            self._pieces[kind] = self.flat(kind).split(self.sizes, dim=-1)
        return self._pieces[kind][segment - self.first]


def _fused(mu: Tensor, rho: Tensor) -> bool:
    """Whether a pass over (mu, rho) goes through the fused CPU kernels: the one place that
    chooses between them and the plain operations."""
    return (
        mu.numel() >= FUSED_MIN
        and torch.is_grad_enabled()
        and not torch.compiler.is_compiling()
        and native.usable(mu, rho)
    )
