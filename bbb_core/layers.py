"""Variational layers: `BayesianLinear` and `BayesianConv2d`.

Each weight has a factorised Gaussian posterior q(w) = N(mu, sigma^2) with
sigma = softplus(rho) = log(1 + exp(rho)) (Blundell et al., "Weight Uncertainty in Neural
Networks", ICML 2015). `forward` returns a tensor; the layer's KL[q || p] is an explicit `kl()`,
summed over its weights and biases (a sum, never a mean).

Gradient estimators (`estimator=`):
- "reparam": sample the weights, w = mu + sigma * eps, one sample per forward pass shared by the
  minibatch, as in the paper.
- "local": the local reparameterisation trick (Kingma, Salimans and Welling, NeurIPS 2015):
  sample each pre-activation from its Gaussian, mean x mu^T and variance x^2 (sigma^2)^T. Lower
  variance gradients, the same predictive distribution.
- "flipout": Flipout (Wen et al., ICLR 2018): one weight perturbation per pass, decorrelated across
  examples by random sign flips, x mu^T + ((x * s_in) (sigma * eps)^T) * s_out.

Monte Carlo samples: an input with an extra leading sample dimension, (S, B, in) for the linear
layer or (S, B, C, H, W) for the convolution, gets S independent posterior samples, one for each
index of that dimension, computed in one batched call. A model passes `x.expand(S, ...)`; the
layers notice the zero stride and compute what does not depend on the sample only once.

`layer.deterministic = True` (or the `posterior_mean(model)` context manager) uses the posterior
mean, a standard network's forward pass.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.utils import _pair

from .config import ESTIMATORS
from .priors import GaussianPrior, Prior, gaussian_log_prob

_VAR_EPS = 1e-16  # keeps sqrt(var) differentiable where an input row is all zeros
_PARALLEL_NORMAL_MIN = 1 << 16  # CPU normal fills at least this large are split over two threads


def _is_expanded(x: Tensor) -> bool:
    """True when a leading sample dimension is a broadcast copy (stride 0)."""
    return x.shape[0] > 1 and x.stride(0) == 0


# ---------------------------------------------------------------------------------------------
# Random numbers. Why: on a CPU, PyTorch draws every number from one serial mt19937 stream, about
# 3 ns a normal; the 2.4M weight noises of a 784-1200-1200-10 reparameterised step cost more
# than its forward pass, and `bernoulli_` costs about 10 ns a coin.

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _helper_thread() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(1, thread_name_prefix="bbb-normal")
        return _pool


def _forget_pool() -> None:  # a forked child has no helper thread: start a new one on demand
    global _pool
    _pool = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def _fill_normal(part: Tensor, seed: int, inference: bool) -> None:
    with torch.inference_mode(inference):
        part.normal_(generator=torch.Generator().manual_seed(seed))


def standard_normal(shape: tuple[int, ...], like: Tensor) -> Tensor:
    """N(0, 1) draws of `shape` with `like`'s dtype and device.

    A large CPU tensor is filled in two halves from two generators seeded from the default one,
    the second half on a helper thread while PyTorch may use more than one thread: twice as fast
    on two cores, the same numbers either way, reproducible under `torch.manual_seed`. Elsewhere
    (and for small tensors) this is `torch.randn`.
    """
    out = torch.empty(shape, dtype=like.dtype, device=like.device)
    if out.device.type != "cpu" or out.numel() < _PARALLEL_NORMAL_MIN:
        return out.normal_()
    flat = out.view(-1)
    half = flat.numel() // 2
    seeds = torch.randint(2**62, (2,)).tolist()
    inference = torch.is_inference_mode_enabled()
    if torch.get_num_threads() > 1:
        job = _helper_thread().submit(_fill_normal, flat[half:], seeds[1], inference)
        _fill_normal(flat[:half], seeds[0], inference)
        job.result()
    else:
        _fill_normal(flat[:half], seeds[0], inference)
        _fill_normal(flat[half:], seeds[1], inference)
    return out


def _random_signs(shape: tuple[int, ...], like: Tensor) -> Tensor:
    """Independent signs, +1 or -1 with probability 1/2 each.

    On a CPU each random 32-bit integer gives 32 signs, its bits: a fortieth of the cost of
    `bernoulli_`. Elsewhere `bernoulli_` (one kernel).
    """
    if like.device.type != "cpu":
        signs = torch.empty(shape, dtype=like.dtype, device=like.device).bernoulli_(0.5)
        return signs.mul_(2).sub_(1)
    n = math.prod(shape)
    words = torch.randint(-(2**31), 2**31, ((n + 31) // 32, 1), dtype=torch.int32)
    bits = words.bitwise_right_shift(torch.arange(32, dtype=torch.int32)).bitwise_and_(1)
    signs = bits.view(-1)[:n].to(like.dtype).mul_(2).sub_(1)
    return signs.view(shape)


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


_MAX_WEIGHT_SAMPLES = 2**24  # elements of the weight samples materialised at once (prediction)
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


# ---------------------------------------------------------------------------------------------
# Hand-written gradients. Why: autograd through softplus, mul and add keeps several weight-sized
# tensors and runs softplus_backward (an exp) for every use of sigma. These functions share one
# `_Softplus` per parameter and step: sigma = softplus(rho) computed once without a graph, and
# its derivative sigmoid(rho) computed once, on the first backward that needs it.


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


class _GaussianSample(torch.autograd.Function):
    """mu + sigma * eps (mu None: sigma * eps); eps is broadcast against mu and sigma."""

    @staticmethod
    def forward(ctx, mu: Tensor | None, rho: Tensor, sp: _Softplus, eps: Tensor) -> Tensor:
        ctx.save_for_backward(rho, eps)  # rho: PyTorch's check that it is unchanged
        ctx.sp = sp
        return sp.sigma * eps if mu is None else torch.addcmul(mu, sp.sigma, eps)

    @staticmethod
    def backward(ctx, grad: Tensor):
        rho, eps = ctx.saved_tensors
        grad_mu = _reduce_to(grad, rho.shape) if ctx.needs_input_grad[0] else None
        grad_rho = None
        if ctx.needs_input_grad[1]:
            grad_rho = _reduce_to(grad * eps, rho.shape).mul_(ctx.sp.slope())
        return grad_mu, grad_rho, None, None


class _GaussianVar(torch.autograd.Function):
    """sigma^2, the weight variance of the local reparameterisation."""

    @staticmethod
    def forward(ctx, rho: Tensor, sp: _Softplus) -> Tensor:
        ctx.save_for_backward(rho)
        ctx.sp = sp
        return sp.sigma.square()

    @staticmethod
    def backward(ctx, grad: Tensor):
        (_,) = ctx.saved_tensors  # PyTorch's check that rho is unchanged
        return (grad * ctx.sp.sigma).mul_(ctx.sp.slope()).mul_(2), None


def kl_normal_sum(mu: Tensor, sigma: Tensor, prior_sigma: float) -> Tensor:
    """Summed KL[N(mu, sigma^2) || N(0, prior_sigma^2)], as `priors.kl_gaussian`, in four passes.

    Per element log(s_p / sigma) + (sigma^2 + mu^2) / (2 s_p^2) - 1/2, summed term by term.
    """
    quad = sigma.square().addcmul_(mu, mu).sum()
    const = mu.numel() * (math.log(prior_sigma) - 0.5)
    return quad * (0.5 / prior_sigma**2) - torch.log(sigma).sum() + const


class _GaussianKL(torch.autograd.Function):
    """`kl_normal_sum(mu, softplus(rho))` with the closed-form gradient.

    d/dmu = mu / s_p^2 and d/dsigma = sigma / s_p^2 - 1 / sigma: no graph of a dozen
    weight-sized intermediates, as autograd would keep for the formula.
    """

    @staticmethod
    def forward(ctx, mu: Tensor, rho: Tensor, sp: _Softplus, prior_sigma: float) -> Tensor:
        ctx.save_for_backward(mu, rho)
        ctx.sp = sp
        ctx.prior_var = prior_sigma**2
        return kl_normal_sum(mu, sp.sigma, prior_sigma)

    @staticmethod
    def backward(ctx, grad: Tensor):
        mu, _ = ctx.saved_tensors
        sigma = ctx.sp.sigma
        scale = grad / ctx.prior_var  # 0-dim: stays on the device
        grad_mu = mu * scale if ctx.needs_input_grad[0] else None
        grad_rho = None
        if ctx.needs_input_grad[1]:
            # sigma / s_p^2 - 1 / sigma = (sigma - s_p^2 / sigma) / s_p^2, in one pass
            grad_rho = torch.addcdiv(sigma, sigma.new_ones(()), sigma, value=-ctx.prior_var)
            grad_rho.mul_(ctx.sp.slope()).mul_(scale)
        return grad_mu, grad_rho, None, None


def _plain_gaussian(prior: Prior) -> bool:
    """A `GaussianPrior` whose closed-form KL is the stock one."""
    return isinstance(prior, GaussianPrior) and (
        type(prior).kl_closed_form is GaussianPrior.kl_closed_form
    )


class _BayesianModule(nn.Module):
    """Shared parameters, initialisation, KL and repr of the variational layers."""

    weight_mu: Tensor
    weight_rho: Tensor
    bias_mu: Tensor | None
    bias_rho: Tensor | None
    _sigma_memo: tuple | None = None  # (rho versions, weight and bias `_Softplus`) of a forward
    _predicting: bool = False  # inside `prediction_sampling`: the cheapest exact sampler

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
        """mu as `nn.Linear` / `nn.Conv2d` initialise their weights; rho = rho0 everywhere."""
        nn.init.kaiming_uniform_(self.weight_mu, a=math.sqrt(5))
        nn.init.constant_(self.weight_rho, self.rho0)
        if self.bias_mu is not None:
            fan_in = self.weight_mu[0].numel()
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
            nn.init.uniform_(self.bias_mu, -bound, bound)
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
        """
        if _plain_gaussian(self.prior):
            return self._kl_gaussian(*self._take_softplus())
        self._sigma_memo = None
        total = self.weight_mu.new_zeros(())
        for mu, sigma in self._pairs():
            exact = self.prior.kl_closed_form(mu, sigma)
            if exact is not None:
                total = total + exact
                continue
            w = mu + sigma * torch.randn_like(mu)
            total = total + (gaussian_log_prob(w, mu, sigma) - self.prior.log_prob(w)).sum()
        return total

    def _kl_gaussian(self, sp_w: _Softplus, sp_b: _Softplus | None) -> Tensor:
        """The closed-form KL to N(0, s_p^2) through `_GaussianKL` (hand-written gradient)."""
        prior_sigma = self.prior.sigma
        total = _GaussianKL.apply(self.weight_mu, self.weight_rho, sp_w, prior_sigma)
        if sp_b is not None:
            total = total + _GaussianKL.apply(self.bias_mu, self.bias_rho, sp_b, prior_sigma)
        return total

    def _sigma_key(self) -> tuple[int, ...]:
        rhos = (self.weight_rho,) if self.bias_rho is None else (self.weight_rho, self.bias_rho)
        return tuple(k for rho in rhos for k in (rho._version, rho.data_ptr()))

    def _softplus(self) -> tuple[_Softplus, _Softplus | None]:
        """sigma = softplus(rho) of the weights and biases, remembered for the next `kl()`.

        Why: a training step needs sigma (and its slope) for the noise and again for the KL;
        softplus and sigmoid over every weight are among the step's dearest element-wise passes.
        The memory is keyed on the parameters' version counters (any in-place update, such as an
        optimiser step or `load_state_dict`, invalidates it) and `kl()` consumes it.
        """
        weight = _Softplus(self.weight_rho)
        bias = None if self.bias_rho is None else _Softplus(self.bias_rho)
        self._sigma_memo = (self._sigma_key(), weight, bias)
        return weight, bias

    def _take_softplus(self) -> tuple[_Softplus, _Softplus | None]:
        """The last forward pass's `_softplus()` if rho has not changed since, else new ones."""
        memo, self._sigma_memo = self._sigma_memo, None
        if memo is not None and memo[0] == self._sigma_key():
            return memo[1], memo[2]
        weight = _Softplus(self.weight_rho)
        return weight, None if self.bias_rho is None else _Softplus(self.bias_rho)

    def _noise(self, n: int, like: Tensor) -> tuple[Tensor, Tensor | None]:
        """Standard normal noise for n weight samples (n, *weight) and biases (n, out), drawn
        in one call."""
        w_numel = self.weight_mu.numel()
        n_bias = 0 if self.bias_mu is None else self.bias_mu.numel()
        flat = standard_normal((n * (w_numel + n_bias),), like)
        eps_w = flat[: n * w_numel].view(n, *self.weight_mu.shape)
        eps_b = None if n_bias == 0 else flat[n * w_numel :].view(n, n_bias)
        return eps_w, eps_b

    def _sample_bias(self, eps_b: Tensor | None, sp_b: _Softplus | None) -> Tensor | None:
        """(n, out) bias samples, or None without a bias."""
        if eps_b is None:
            return None
        return _GaussianSample.apply(self.bias_mu, self.bias_rho, sp_b, eps_b)

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
        sp_w, sp_b = self._softplus()
        eps_w, eps_b = self._noise(n, input)
        bias = self._sample_bias(eps_b, sp_b)  # (n, out)
        if self.estimator == "reparam":
            weight = _GaussianSample.apply(self.weight_mu, self.weight_rho, sp_w, eps_w)
            return _linear_samples(input, weight, bias)
        # flipout
        delta_w = _GaussianSample.apply(None, self.weight_rho, sp_w, eps_w)  # (n, out, in)
        if sampled and _is_expanded(input):
            mean = F.linear(input[:1], self.weight_mu).expand(n, -1, -1)
        else:
            mean = F.linear(input, self.weight_mu)
        s_in = _random_signs(input.shape, input)
        s_out = _random_signs((*input.shape[:-1], self.out_features), input)
        pert = _linear_samples(input * s_in, delta_w, None).mul_(s_out)
        out = mean + pert
        if bias is not None:
            out = out + (bias.unsqueeze(1) if sampled else bias.view(-1))
        return out

    def _forward_local(self, input: Tensor) -> Tensor:
        """Pre-activations sampled from their Gaussian: mean x mu^T, variance x^2 (sigma^2)^T."""
        sp_w, sp_b = self._softplus()
        var_w = _GaussianVar.apply(self.weight_rho, sp_w)
        var_b = None if sp_b is None else _GaussianVar.apply(self.bias_rho, sp_b)
        x = input[:1] if input.dim() == 3 and _is_expanded(input) else input
        mean = F.linear(x, self.weight_mu, self.bias_mu)
        std = F.linear(x * x, var_w, var_b).add_(_VAR_EPS).sqrt_()
        if x is not input:  # every sample sees the same input: share mean and std
            mean = mean.expand(input.shape[0], -1, -1)
            std = std.expand(input.shape[0], -1, -1)
        return torch.addcmul(mean, std, standard_normal(mean.shape, mean))

    def _forward_predict(self, input: Tensor) -> Tensor:
        """(S, B, in) -> (S, B, out) for the predictive: exact posterior samples, cheapest route.

        "reparam" and "flipout": S independent weight samples, each shared by the batch (a
        flipout sample differs from a reparam one only in its sign flips, which leave every
        input's predictive distribution unchanged). "local": every input's pre-activations
        have the same distribution under both routes, so whichever costs less: sampled
        pre-activations (whose mean and variance are computed once when every sample sees the
        same input, as the first layer does) or weight samples.
        """
        if self.estimator == "local" and not _weight_samples_pay(input, self.in_features):
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
        bias, prior, estimator, rho0: as for `BayesianLinear`.

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
        shape = (out_channels, in_channels, *self.kernel_size)
        self._init_bayes(shape, bias, prior, estimator, rho0, device, dtype)

    def _conv(self, x: Tensor, weight: Tensor, bias: Tensor | None = None, groups: int = 1):
        return F.conv2d(x, weight, bias, self.stride, self.padding, 1, groups)

    def forward(self, input: Tensor) -> Tensor:
        if input.dim() == 5:
            return self._forward_sampled(input)
        if self.deterministic:
            return self._conv(input, self.weight_mu, self.bias_mu)
        if self.estimator == "local":
            return self._local(input)
        sp_w, sp_b = self._softplus()
        eps_w, eps_b = self._noise(1, input)
        bias = self._sample_bias(eps_b, sp_b)
        bias = None if bias is None else bias.view(-1)
        eps_w = eps_w.view(self.weight_mu.shape)
        if self.estimator == "reparam":
            weight = _GaussianSample.apply(self.weight_mu, self.weight_rho, sp_w, eps_w)
            return self._conv(input, weight, bias)
        delta_w = _GaussianSample.apply(None, self.weight_rho, sp_w, eps_w)
        s_in = _random_signs((input.shape[0], self.in_channels, 1, 1), input)
        out = self._conv(input, self.weight_mu)
        s_out = _random_signs((input.shape[0], self.out_channels, 1, 1), input)
        out = out + self._conv(input * s_in, delta_w) * s_out
        return out if bias is None else out + bias.view(1, -1, 1, 1)

    def _mean_std(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and std of the pre-activations under the local reparameterisation."""
        sp_w, sp_b = self._softplus()
        var_w = _GaussianVar.apply(self.weight_rho, sp_w)
        var_b = None if sp_b is None else _GaussianVar.apply(self.bias_rho, sp_b)
        mean = self._conv(x, self.weight_mu, self.bias_mu)
        return mean, self._conv(x * x, var_w, var_b).add_(_VAR_EPS).sqrt_()

    def _local(self, x: Tensor) -> Tensor:
        mean, std = self._mean_std(x)
        return torch.addcmul(mean, std, standard_normal(mean.shape, mean))

    def _forward_sampled(self, input: Tensor) -> Tensor:
        """(S, B, C, H, W) -> (S, B, C_out, H', W') with S independent posterior samples."""
        s, b = input.shape[:2]
        if self.deterministic or self.estimator == "local":
            if _is_expanded(input) and self.deterministic:
                return self.forward(input[0]).unsqueeze(0).expand(s, -1, -1, -1, -1)
            if _is_expanded(input):
                mean, std = self._mean_std(input[0])
                return torch.addcmul(mean, std, standard_normal((s, *mean.shape), mean))
            out = self.forward(input.reshape(s * b, *input.shape[2:]))
            return out.reshape(s, b, *out.shape[1:])
        # reparam / flipout: S weight samples through one grouped convolution. For the
        # predictive, flipout samples weights as reparam does (see BayesianLinear._forward_predict)
        sp_w, sp_b = self._softplus()
        eps_w, eps_b = self._noise(s, input)
        x = input.transpose(0, 1).reshape(b, s * self.in_channels, *input.shape[3:])
        predicting = self._predicting and not torch.is_grad_enabled()
        if self.estimator == "reparam" or predicting:
            weight = _GaussianSample.apply(self.weight_mu, self.weight_rho, sp_w, eps_w)
            out = self._conv(x, weight.reshape(s * self.out_channels, *eps_w.shape[2:]), groups=s)
        else:
            delta_w = _GaussianSample.apply(None, self.weight_rho, sp_w, eps_w)
            mean = self._conv(x, self.weight_mu.repeat(s, 1, 1, 1), groups=s)
            s_in = _random_signs((b, s * self.in_channels, 1, 1), input)
            s_out = _random_signs((b, s * self.out_channels, 1, 1), input)
            flat = delta_w.reshape(s * self.out_channels, *delta_w.shape[2:])
            out = mean + self._conv(x * s_in, flat, groups=s) * s_out
        out = out.reshape(b, s, self.out_channels, *out.shape[2:]).transpose(0, 1)
        bias = self._sample_bias(eps_b, sp_b)  # (S, C_out)
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
def posterior_mean(model: nn.Module) -> Iterator[nn.Module]:
    """Within the block, every Bayesian layer of `model` uses its posterior mean weights."""
    layers = bayesian_layers(model)
    before = [layer.deterministic for layer in layers]
    for layer in layers:
        layer.deterministic = True
    try:
        yield model
    finally:
        for layer, flag in zip(layers, before, strict=True):
            layer.deterministic = flag


@contextmanager
def prediction_sampling(model: nn.Module) -> Iterator[nn.Module]:
    """Within the block (and with gradients off), Bayesian layers given a sample dimension draw
    their S posterior samples by the cheapest exact route (see `BayesianLinear._forward_predict`):
    what `predict.sample_outputs` uses."""
    layers = bayesian_layers(model)
    before = [layer._predicting for layer in layers]
    for layer in layers:
        layer._predicting = True
    try:
        yield model
    finally:
        for layer, flag in zip(layers, before, strict=True):
            layer._predicting = flag
