"""Variational layers: `BayesianLinear` and `BayesianConv2d`.

Each weight has a factorised Gaussian posterior q(w) = N(mu, sigma^2) with
sigma = softplus(rho) = log(1 + exp(rho)) (Blundell et al., "Weight Uncertainty in Neural
Networks", ICML 2015). `forward` returns a tensor; the layer's KL[q || p] is an explicit `kl()`,
summed over its weights and biases (a sum, never a mean).

Gradient estimators (`estimator=`):
- "reparam": sample the weights, w = mu + sigma * eps, one sample per forward pass shared by the
  minibatch, as in the paper.
- "local": the local reparameterisation trick (Kingma, Salimans and Welling, NeurIPS 2015):
  sample each pre-activation from its Gaussian, mean x mu^T and variance x^2 (sigma^2)^T. For a
  dense layer each output of each example depends on its own weights, so this is exactly the
  distribution that weight samples give each example's outputs, with lower-variance gradients.
  Linear layers only: a convolution shares its kernel across output positions, so its outputs
  are correlated, and sampling each position independently would understate the variance of
  any sum over positions (on a 3x3 kernel over a 6x6 output, 6.45 against the exact 161). A
  `BayesianConv2d` refuses it; CNNs built with "local" use flipout for their convolutions.
- "flipout": Flipout (Wen et al., ICLR 2018): one weight perturbation per pass, decorrelated across
  examples by random sign flips, x mu^T + ((x * s_in) (sigma * eps)^T) * s_out.

Monte Carlo samples: an input with an extra leading sample dimension, (S, B, in) for the linear
layer or (S, B, C, H, W) for the convolution, gets S independent posterior samples, one for each
index of that dimension, computed in one batched call. A model passes `x.expand(S, ...)`; the
layers notice the zero stride and compute what does not depend on the sample only once.

`layer.deterministic = True` (or the `posterior_mean(model)` context manager) uses the posterior
mean, a standard network's forward pass.

Speed: a training pass of a float32 CPU layer with at least 4,096 weights goes through
the fused kernels of `native.py` (noise, sample or variance, and KL in one pass; gradients in
another). Elsewhere the noise, the sampled weights (or variances) and the closed-form KL of each
parameter come out of one `sampling._Posterior` graph node with a hand-written backward, sigma
computed once per step; large CPU noise tensors come from `sampling.standard_normal`, a
Box-Muller transform that runs on every core. Under `torch.compile` the layers trace plain
operations for the compiler to fuse (`_posterior_traced`, `_kl_traced`). Inside
`prediction_sampling` (what `predict.sample_outputs` uses) each layer draws its S samples by the
cheapest exact route.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.utils import _pair

from . import native
from .config import ESTIMATORS
from .native import NativePosterior
from .priors import GaussianPrior, Prior, ScaleMixturePrior, gaussian_log_prob
from .rng import generator
from .sampling import (
    _Posterior,
    _random_signs,
    _Softplus,
    kl_normal_sum,
    standard_normal,
)

_VAR_EPS = 1e-16  # keeps sqrt(var) differentiable where an input row is all zeros
_NATIVE_MIN = 1 << 12  # weights of a layer whose training passes use the fused CPU kernels


def _is_expanded(x: Tensor) -> bool:
    """True when a leading sample dimension is a broadcast copy (stride 0)."""
    return x.shape[0] > 1 and x.stride(0) == 0


def _linear_samples(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """x (n, B, in) or (B, in) through n weight samples (n, out, in), biases (n, out) or None.

    One sample (the training case) is a plain `F.linear`; a shared (expanded) input goes through
    one matrix product with the samples stacked along the outputs, else a batched product.
    """
    n, n_out = weight.shape[:2]
    if n == 1:  # views, not weight[0]: indexing would back-propagate through a zero-filled copy
        return F.linear(x, weight.view(weight.shape[1:]), None if bias is None else bias.view(-1))
    if _is_expanded(x):
        stacked = F.linear(x[0], weight.reshape(n * n_out, -1))  # (B, n * out)
        out = stacked.view(x.shape[1], n, n_out).transpose(0, 1)
        return out if bias is None else out + bias.unsqueeze(1)
    if bias is None:
        return torch.bmm(x, weight.transpose(1, 2))
    return torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))


_MAX_WEIGHT_SAMPLES = 2**26  # elements of the weight samples materialised at once (GPU predict)
_CPU_RNG_PER_MAC = 150.0  # cost of one normal draw in multiply-adds of a matrix product (CPU)
_GPU_RNG_PER_MAC = 40.0  # the same on a GPU


def _samples_per_chunk(x: Tensor, weight_numel: int) -> int:
    """How many weight samples to materialise at once: one at a time on a CPU (each stays in
    cache and the product is as fast), a memory-bounded batch on a GPU (fewer launches)."""
    if x.device.type == "cpu":
        return 1
    return max(1, _MAX_WEIGHT_SAMPLES // weight_numel)


def _weight_samples_pay(x: Tensor, in_features: int) -> bool:
    """Whether S weight samples cost less than sampled pre-activations for x (S, B, in).

    Per output unit, in multiply-adds with a normal draw worth r of them: weight samples cost
    S * in * (B + r); pre-activations cost 2 B * in for their mean and variance (once if every
    sample sees the same input, else S times) plus S * B * r for the draws.
    """
    r = _CPU_RNG_PER_MAC if x.device.type == "cpu" else _GPU_RNG_PER_MAC
    s, b = x.shape[:2]
    moments = 2 * b * in_features * (1 if _is_expanded(x) else s)
    return s * in_features * (b + r) < moments + s * b * r


def _plain_gaussian(prior: Prior) -> bool:
    """A `GaussianPrior` whose closed-form KL is the stock one."""
    return isinstance(prior, GaussianPrior) and (
        type(prior).kl_closed_form is GaussianPrior.kl_closed_form
    )


def _native_prior(prior: Prior) -> tuple | None:
    """The prior as `native.NativePosterior` takes it; None where the kernels have no KL for it
    (the layer's `kl()` then computes it)."""
    if _plain_gaussian(prior):
        return ("gaussian", prior.sigma**2)
    if type(prior) is ScaleMixturePrior:
        return ("mixture", prior.pi, prior.sigma1, prior.sigma2)
    return None


def init_like_torch(weight: Tensor, bias: Tensor | None) -> None:
    """Initialise `weight` and `bias` in place as `nn.Linear` and `nn.Conv2d` do (Kaiming
    uniform with a = sqrt(5); bias uniform in +-1/sqrt(fan_in)), drawing from the thread's random
    streams (`rng.generator`) instead of PyTorch's global generator."""
    g = generator(weight.device)
    with torch.no_grad():
        nn.init.kaiming_uniform_(weight, a=math.sqrt(5), generator=g)
        if bias is not None:
            fan_in = weight[0].numel()
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
            nn.init.uniform_(bias, -bound, bound, generator=g)


class _BayesianModule(nn.Module):
    """Shared parameters, initialisation, KL and repr of the variational layers."""

    weight_mu: Tensor
    weight_rho: Tensor
    bias_mu: Tensor | None
    bias_rho: Tensor | None
    _memo: tuple | None = None  # (`_memo_key()`, sigma of weights, of biases, KL) of a forward
    _predicting: str | None = None  # inside `prediction_sampling`: "weights" or "cheapest"

    def __getstate__(self) -> dict:
        state = dict(super().__getstate__())
        state.pop("_memo", None)  # a forward pass's scratch: may hold a graph, never copied
        return state

    def _init_bayes(
        self,
        weight_shape: tuple[int, ...],
        bias: bool,
        prior: Prior | None,
        estimator: str,
        rho0: float,
        device=None,
        dtype=None,
    ) -> None:
        if estimator not in ESTIMATORS:
            raise ValueError(f"estimator must be one of {', '.join(ESTIMATORS)}; got {estimator!r}")
        factory = {"device": device, "dtype": dtype}
        self.prior = prior if prior is not None else GaussianPrior(1.0)
        self.estimator = estimator
        self.rho0 = float(rho0)
        self.deterministic = False
        self.weight_mu = nn.Parameter(torch.empty(weight_shape, **factory))
        self.weight_rho = nn.Parameter(torch.empty(weight_shape, **factory))
        if bias:
            self.bias_mu = nn.Parameter(torch.empty(weight_shape[0], **factory))
            self.bias_rho = nn.Parameter(torch.empty(weight_shape[0], **factory))
        else:
            self.register_parameter("bias_mu", None)
            self.register_parameter("bias_rho", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """mu as `nn.Linear` / `nn.Conv2d` initialise their weights (drawn from the thread's
        random streams, `rng`); rho = rho0 everywhere."""
        init_like_torch(self.weight_mu, self.bias_mu)
        nn.init.constant_(self.weight_rho, self.rho0)
        if self.bias_rho is not None:
            nn.init.constant_(self.bias_rho, self.rho0)

    @property
    def weight_sigma(self) -> Tensor:
        return F.softplus(self.weight_rho)

    @property
    def bias_sigma(self) -> Tensor | None:
        return None if self.bias_rho is None else F.softplus(self.bias_rho)

    def _pairs(self) -> Iterator[tuple[Tensor, Tensor]]:
        yield self.weight_mu, self.weight_sigma
        if self.bias_mu is not None:
            yield self.bias_mu, self.bias_sigma

    def kl(self) -> Tensor:
        """KL[q || p] summed over every weight and bias of the layer (a scalar).

        Closed form when the prior has one (Gaussian); otherwise a one-sample Monte Carlo
        estimate log q(w) - log p(w) at a fresh reparameterised sample w = mu + sigma * eps.
        After a forward pass with gradients on, if mu and rho have not changed since, it is the
        KL that pass's graph nodes computed: the closed form (see `_posterior`), or, where the
        fused CPU kernels ran (`_native`), for the scale mixture the estimate at the pass's own
        weight sample, as in the paper (eq. 2).
        """
        if torch.compiler.is_compiling():
            return self._kl_traced()
        memo, self._memo = self._memo, None
        if memo is not None and memo[0] != self._memo_key():
            memo = None  # mu or rho changed since the forward pass
        if memo is not None and memo[3] is not None:  # computed by the forward pass's nodes
            return memo[3] if torch.is_grad_enabled() else memo[3].detach()
        if not torch.is_grad_enabled():  # no graph to build: the formula, without the node
            return self._kl_traced()
        if not _plain_gaussian(self.prior):
            return self._kl_generic()
        sp_w, sp_b = memo[1:3] if memo is not None else self._softplus(remember=False)
        sigma_p = self.prior.sigma
        total = _Posterior.apply(self.weight_mu, self.weight_rho, sp_w, None, None, sigma_p)
        if sp_b is not None:
            total = total + _Posterior.apply(self.bias_mu, self.bias_rho, sp_b, None, None, sigma_p)
        return total

    def _kl_generic(self) -> Tensor:
        total = self.weight_mu.new_zeros(())
        for mu, sigma in self._pairs():
            exact = self.prior.kl_closed_form(mu, sigma)
            if exact is not None:
                total = total + exact
                continue
            w = mu + sigma * standard_normal(mu.shape, mu)
            total = total + (gaussian_log_prob(w, mu, sigma) - self.prior.log_prob(w)).sum()
        return total

    def _kl_traced(self) -> Tensor:
        """`kl()` in plain autograd operations, for `torch.compile` to trace and fuse (the
        `_Posterior` node and the memo are eager-mode machinery), and with gradients off."""
        if not _plain_gaussian(self.prior):
            return self._kl_generic()
        total = self.weight_mu.new_zeros(())
        for mu, sigma in self._pairs():
            total = total + kl_normal_sum(mu, sigma, self.prior.sigma)
        return total

    def _memo_key(self) -> tuple[int, ...]:
        """Version counters and storage of mu and rho: any in-place update (an optimiser step,
        `load_state_dict`) or a move to another device changes it."""
        params = (self.weight_mu, self.weight_rho, self.bias_mu, self.bias_rho)
        return tuple(k for p in params if p is not None for k in (p._version, p.data_ptr()))

    def _softplus(self, remember: bool = True) -> tuple[_Softplus, _Softplus | None]:
        """sigma = softplus(rho) of the weights and biases, remembered for the next `kl()`.

        Why: a training step needs sigma (and its slope) for the noise and again for the KL;
        softplus and sigmoid over every weight are among the step's dearest element-wise passes.
        """
        weight = _Softplus(self.weight_rho)
        bias = None if self.bias_rho is None else _Softplus(self.bias_rho)
        if remember:
            self._memo = (self._memo_key(), weight, bias, None)
        return weight, bias

    def _posterior(
        self, kind: str, eps_w: Tensor | None = None, eps_b: Tensor | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """The weights' and biases' `kind` outputs of `_Posterior` ("noise": biases sampled).

        With gradients on and a Gaussian prior the same nodes also compute the KL, which the
        next `kl()` returns while mu and rho are unchanged: why, see `_Posterior`.
        """
        if torch.compiler.is_compiling():
            return self._posterior_traced(kind, eps_w, eps_b)
        sp_w, sp_b = self._softplus()
        fused = torch.is_grad_enabled() and _plain_gaussian(self.prior)
        sigma_p = self.prior.sigma if fused else None
        outs = _Posterior.apply(self.weight_mu, self.weight_rho, sp_w, eps_w, kind, sigma_p)
        weight, kl = outs if fused else (outs, None)
        bias = None
        if sp_b is not None:
            kind_b = "sample" if kind == "noise" else kind
            outs = _Posterior.apply(self.bias_mu, self.bias_rho, sp_b, eps_b, kind_b, sigma_p)
            bias = outs[0] if fused else outs
            kl = kl + outs[1] if fused else None
        if fused:
            self._memo = (self._memo[0], sp_w, sp_b, kl)
        return weight, bias

    def _posterior_traced(
        self, kind: str, eps_w: Tensor | None, eps_b: Tensor | None
    ) -> tuple[Tensor, Tensor | None]:
        """`_posterior` in plain operations, for `torch.compile` (which fuses the softplus, the
        sample and the KL into a few kernels itself)."""
        outs = []
        for mu, sigma, eps, k in (
            (self.weight_mu, self.weight_sigma, eps_w, kind),
            (self.bias_mu, self.bias_sigma, eps_b, "sample" if kind == "noise" else kind),
        ):
            if mu is None:
                outs.append(None)
            elif k == "sample":
                outs.append(mu + sigma * eps)
            elif k == "noise":
                outs.append(sigma * eps)
            else:
                outs.append(sigma.square())
        return outs[0], outs[1]

    def _sampled(self, kind: str, n: int, like: Tensor) -> tuple[Tensor, Tensor | None]:
        """The weights' and biases' `kind` outputs for n samples, fresh noise drawn: shapes
        (n, *weight) and (n, out) ("sample", "noise"; biases sampled) or the parameters' own
        ("var"). A training pass of a large float32 CPU layer goes through the fused kernels of
        `native.py`; everything else through `_Posterior`."""
        if n == 1 and self._native_pays(like):
            return self._native(kind)
        if kind == "var":
            return self._posterior("var")
        eps_w, eps_b = self._noise(n, like)
        return self._posterior(kind, eps_w, eps_b)

    def _native_pays(self, like: Tensor) -> bool:
        return (
            like.device.type == "cpu"
            and self.weight_mu.numel() >= _NATIVE_MIN
            and torch.is_grad_enabled()
            and not torch.compiler.is_compiling()
            and native.usable(*(p for p in self.parameters()))
        )

    def _native(self, kind: str) -> tuple[Tensor, Tensor | None]:
        """`_sampled(kind, 1, ...)` through `native.NativePosterior`, which also returns the KL
        of a Gaussian or scale-mixture prior: remembered for the next `kl()`."""
        prior = _native_prior(self.prior)
        key = self._memo_key()
        weight, kl = NativePosterior.apply(self.weight_mu, self.weight_rho, kind, prior)
        bias = None
        if self.bias_mu is not None:
            kind_b = "sample" if kind == "noise" else kind
            bias, kl_b = NativePosterior.apply(self.bias_mu, self.bias_rho, kind_b, prior)
            kl = kl + kl_b
        if kind != "var":  # one sample: the leading sample dimension of `_sampled`
            weight = weight.unsqueeze(0)
            bias = None if bias is None else bias.unsqueeze(0)
        self._memo = (key, None, None, kl if prior is not None else None)
        return weight, bias

    def _noise(self, n: int, like: Tensor) -> tuple[Tensor, Tensor | None]:
        """Standard normal noise for n weight samples (n, *weight) and biases (n, out), drawn
        in one call."""
        w_numel = self.weight_mu.numel()
        n_bias = 0 if self.bias_mu is None else self.bias_mu.numel()
        flat = standard_normal((n * (w_numel + n_bias),), like)
        eps_w = flat[: n * w_numel].view(n, *self.weight_mu.shape)
        eps_b = None if n_bias == 0 else flat[n * w_numel :].view(n, n_bias)
        return eps_w, eps_b

    def signal_to_noise(self) -> Tensor:
        """|mu| / sigma of every weight, flattened (Blundell et al. 2015, section 5.1)."""
        return (self.weight_mu.abs() / self.weight_sigma).flatten()

    def _extra(self) -> str:
        return f"estimator={self.estimator}, rho0={self.rho0}, prior={self.prior}"


class BayesianLinear(_BayesianModule):
    """A fully connected layer with a Gaussian posterior on every weight and bias.

    Args:
        in_features: size of each input sample.
        out_features: size of each output sample.
        bias: if False, the layer has no bias.
        prior: the prior over weights and biases (default: `GaussianPrior(1.0)`).
        estimator: "reparam", "local" or "flipout" (see the module docstring).
        rho0: initial rho of every weight; the initial sigma is softplus(rho0).

    Shape:
        - Input: (B, in_features): one posterior sample for the batch ("reparam"; "local" and
          "flipout" vary per example by construction), or (S, B, in_features): S samples.
        - Output: (B, out_features) or (S, B, out_features).

    Examples:
        >>> layer = BayesianLinear(20, 30, estimator="local")
        >>> layer(torch.randn(128, 20)).shape
        torch.Size([128, 30])
        >>> layer.kl().shape
        torch.Size([])
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        prior: Prior | None = None,
        estimator: str = "reparam",
        rho0: float = -4.0,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self._init_bayes((out_features, in_features), bias, prior, estimator, rho0, device, dtype)

    def forward(self, input: Tensor) -> Tensor:
        if self.deterministic:
            if input.dim() == 3 and _is_expanded(input):
                out = F.linear(input[:1], self.weight_mu, self.bias_mu)
                return out.expand(input.shape[0], -1, -1)
            return F.linear(input, self.weight_mu, self.bias_mu)
        if self._predicting and input.dim() == 3 and not torch.is_grad_enabled():
            return self._forward_predict(input)
        if self.estimator == "local":
            return self._forward_local(input)
        sampled = input.dim() == 3
        n = input.shape[0] if sampled else 1
        if self.estimator == "reparam":
            weight, bias = self._sampled("sample", n, input)  # (n, out, in), (n, out)
            return _linear_samples(input, weight, bias)
        # flipout
        delta_w, bias = self._sampled("noise", n, input)  # (n, out, in), (n, out)
        if n == 1:  # the bias joins the mean's matrix product
            mean = F.linear(input, self.weight_mu, None if bias is None else bias.view(-1))
        elif _is_expanded(input):
            mean = F.linear(input[:1], self.weight_mu).expand(n, -1, -1)
        else:
            mean = F.linear(input, self.weight_mu)
        s_in = _random_signs(input.shape, input)
        s_out = _random_signs((*input.shape[:-1], self.out_features), input)
        out = _linear_samples(input * s_in, delta_w, None).mul_(s_out).add_(mean)
        if bias is not None and n > 1:
            out = out + bias.unsqueeze(1)
        return out

    def _forward_local(self, input: Tensor) -> Tensor:
        """Pre-activations sampled from their Gaussian: mean x mu^T, variance x^2 (sigma^2)^T."""
        var_w, var_b = self._sampled("var", 1, input)
        x = input[:1] if input.dim() == 3 and _is_expanded(input) else input
        mean = F.linear(x, self.weight_mu, self.bias_mu)
        std = F.linear(x * x, var_w, var_b).add_(_VAR_EPS).sqrt_()
        if x is not input:  # every sample sees the same input: share mean and std
            mean = mean.expand(input.shape[0], -1, -1)
            std = std.expand(input.shape[0], -1, -1)
        return torch.addcmul(mean, std, standard_normal(mean.shape, mean))

    def _forward_predict(self, input: Tensor) -> Tensor:
        """(S, B, in) -> (S, B, out) for the predictive: exact posterior samples, cheapest route.

        Every estimator trains the same q(w), so the predictive does not depend on it. Coherent
        sampling: S independent weight samples, each shared by the batch. Otherwise whichever
        costs less of two routes that give every input's pre-activations the same distribution:
        weight samples, or pre-activations sampled from their Gaussian (the local
        reparameterisation, whose mean and variance are computed once when every sample sees the
        same input, as the first layer does).
        """
        if self._predicting == "cheapest" and not _weight_samples_pay(input, self.in_features):
            return self._forward_local(input)
        return self._forward_weight_samples(input)

    def _forward_weight_samples(self, input: Tensor) -> Tensor:
        """S weight samples w_s = mu + sigma * eps_s, a few at a time to bound memory."""
        s, b = input.shape[:2]
        sp_w, sp_b = self._softplus()
        out = input.new_empty(s, b, self.out_features)
        step = _samples_per_chunk(input, self.weight_mu.numel())
        for s0 in range(0, s, step):
            k = min(step, s - s0)
            eps_w, eps_b = self._noise(k, input)
            weight = torch.addcmul(self.weight_mu, sp_w.sigma, eps_w)  # (k, out, in)
            bias = None if eps_b is None else torch.addcmul(self.bias_mu, sp_b.sigma, eps_b)
            if k == 1:  # straight into `out`, no copy (a CPU takes one sample at a time)
                if bias is None:
                    torch.mm(input[s0], weight[0].T, out=out[s0])
                else:
                    torch.addmm(bias[0], input[s0], weight[0].T, out=out[s0])
            else:
                out[s0 : s0 + k] = _linear_samples(input[s0 : s0 + k], weight, bias)
        return out

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias_mu is not None}, {self._extra()}"
        )


class BayesianConv2d(_BayesianModule):
    """A 2-D convolution with a Gaussian posterior on every kernel weight and bias.

    Args:
        in_channels, out_channels, kernel_size, stride, padding: as for `nn.Conv2d`.
        bias, prior, rho0: as for `BayesianLinear`.
        estimator: "reparam" or "flipout". Not "local": the kernel is shared across output
            positions, and the local trick would sample each position independently.

    Shape:
        - Input: (B, C_in, H, W), or (S, B, C_in, H, W) for S posterior samples.
        - Output: (B, C_out, H_out, W_out), or (S, B, C_out, H_out, W_out).

    Examples:
        >>> conv = BayesianConv2d(1, 8, 3, padding=1, estimator="flipout")
        >>> conv(torch.randn(4, 1, 28, 28)).shape
        torch.Size([4, 8, 28, 28])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        bias: bool = True,
        *,
        prior: Prior | None = None,
        estimator: str = "reparam",
        rho0: float = -4.0,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = _pair(kernel_size)
        self.stride = _pair(stride)
        self.padding = _pair(padding)
        if estimator == "local":
            raise ValueError(
                "a convolution cannot use the local reparameterisation: its kernel is shared "
                "across output positions, whose outputs are then correlated; use 'reparam' or "
                "'flipout'"
            )
        shape = (out_channels, in_channels, *self.kernel_size)
        self._init_bayes(shape, bias, prior, estimator, rho0, device, dtype)

    def _conv(self, x: Tensor, weight: Tensor, bias: Tensor | None = None, groups: int = 1):
        return F.conv2d(x, weight, bias, self.stride, self.padding, 1, groups)

    def forward(self, input: Tensor) -> Tensor:
        if input.dim() == 5:
            return self._forward_sampled(input)
        if self.deterministic:
            return self._conv(input, self.weight_mu, self.bias_mu)
        kind = "sample" if self.estimator == "reparam" else "noise"
        weight, bias = self._sampled(kind, 1, input)  # (1, *weight), (1, out)
        weight = weight.view(self.weight_mu.shape)
        bias = None if bias is None else bias.view(-1)
        if self.estimator == "reparam":
            return self._conv(input, weight, bias)
        delta_w = weight
        s_in = _random_signs((input.shape[0], self.in_channels, 1, 1), input)
        out = self._conv(input, self.weight_mu)
        s_out = _random_signs((input.shape[0], self.out_channels, 1, 1), input)
        out = out + self._conv(input * s_in, delta_w) * s_out
        return out if bias is None else out + bias.view(1, -1, 1, 1)

    def _forward_sampled(self, input: Tensor) -> Tensor:
        """(S, B, C, H, W) -> (S, B, C_out, H', W') with S independent posterior samples."""
        s, b = input.shape[:2]
        predicting = self._predicting is not None and not torch.is_grad_enabled()
        if self.deterministic:
            if _is_expanded(input):
                return self.forward(input[0]).unsqueeze(0).expand(s, -1, -1, -1, -1)
            out = self.forward(input.reshape(s * b, *input.shape[2:]))
            return out.reshape(s, b, *out.shape[1:])
        # reparam / flipout: S weight samples through one grouped convolution. For the
        # predictive, flipout samples weights as reparam does (see BayesianLinear._forward_predict)
        eps_w, eps_b = self._noise(s, input)
        x = input.transpose(0, 1).reshape(b, s * self.in_channels, *input.shape[3:])
        if self.estimator != "flipout" or predicting:
            weight, bias = self._posterior("sample", eps_w, eps_b)
            out = self._conv(x, weight.reshape(s * self.out_channels, *eps_w.shape[2:]), groups=s)
        else:
            delta_w, bias = self._posterior("noise", eps_w, eps_b)
            mean = self._conv(x, self.weight_mu.repeat(s, 1, 1, 1), groups=s)
            s_in = _random_signs((b, s * self.in_channels, 1, 1), input)
            s_out = _random_signs((b, s * self.out_channels, 1, 1), input)
            flat = delta_w.reshape(s * self.out_channels, *delta_w.shape[2:])
            out = mean + self._conv(x * s_in, flat, groups=s) * s_out
        out = out.reshape(b, s, self.out_channels, *out.shape[2:]).transpose(0, 1)
        return out if bias is None else out + bias.view(s, 1, -1, 1, 1)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, bias={self.bias_mu is not None}, "
            f"{self._extra()}"
        )


BAYESIAN_LAYERS = (BayesianLinear, BayesianConv2d)


def bayesian_layers(model: nn.Module) -> list[_BayesianModule]:
    """Every variational layer inside `model`, in module order."""
    return [m for m in model.modules() if isinstance(m, BAYESIAN_LAYERS)]


@contextmanager
def _layers_set(model: nn.Module, attr: str, value) -> Iterator[nn.Module]:
    """Within the block, every Bayesian layer of `model` has `attr` = value (restored after)."""
    layers = bayesian_layers(model)
    before = [getattr(layer, attr) for layer in layers]
    for layer in layers:
        setattr(layer, attr, value)
    try:
        yield model
    finally:
        for layer, old in zip(layers, before, strict=True):
            setattr(layer, attr, old)


def posterior_mean(model: nn.Module):
    """Within the block, every Bayesian layer of `model` uses its posterior mean weights."""
    return _layers_set(model, "deterministic", True)


def prediction_sampling(model: nn.Module, coherent: bool = True):
    """Within the block (and with gradients off), Bayesian layers given a sample dimension draw
    S posterior samples for the predictive (what `predict.sample_outputs` uses).

    coherent=True: S weight samples, each shared by every input, so sample s is one network and
    its outputs over a grid form one function (sampled curves, smooth bands and maps).
    coherent=False: the cheapest exact route per layer (see `BayesianLinear._forward_predict`):
    each input's predictive distribution is the same, but the local reparameterisation may
    sample every input independently, which is fine for per-input metrics.
    """
    return _layers_set(model, "_predicting", "weights" if coherent else "cheapest")
