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
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.utils import _pair

from .config import ESTIMATORS
from .priors import GaussianPrior, Prior, gaussian_log_prob

_VAR_EPS = 1e-16  # keeps sqrt(var) differentiable where an input row is all zeros


def _random_signs(shape: tuple[int, ...], like: Tensor) -> Tensor:
    return torch.empty(shape, dtype=like.dtype, device=like.device).bernoulli_(0.5).mul_(2).sub_(1)


def _is_expanded(x: Tensor) -> bool:
    """True when a leading sample dimension is a broadcast copy (stride 0)."""
    return x.shape[0] > 1 and x.stride(0) == 0


class _BayesianModule(nn.Module):
    """Shared parameters, initialisation, KL and repr of the variational layers."""

    weight_mu: Tensor
    weight_rho: Tensor
    bias_mu: Tensor | None
    bias_rho: Tensor | None

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
        total = self.weight_mu.new_zeros(())
        for mu, sigma in self._pairs():
            exact = self.prior.kl_closed_form(mu, sigma)
            if exact is not None:
                total = total + exact
                continue
            w = mu + sigma * torch.randn_like(mu)
            total = total + (gaussian_log_prob(w, mu, sigma) - self.prior.log_prob(w)).sum()
        return total

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
        if self.estimator == "local":
            return self._forward_local(input)
        sampled = input.dim() == 3
        n = input.shape[0] if sampled else 1
        eps_w = torch.randn((n, *self.weight_mu.shape), dtype=input.dtype, device=input.device)
        delta_w = self.weight_sigma * eps_w  # (n, out, in)
        bias = None
        if self.bias_mu is not None:
            eps_b = torch.randn((n, 1, self.out_features), dtype=input.dtype, device=input.device)
            bias = self.bias_mu + self.bias_sigma * eps_b  # (n, 1, out)
        if self.estimator == "reparam":
            weight = self.weight_mu + delta_w
            if not sampled:
                return F.linear(input, weight[0], None if bias is None else bias[0, 0])
            out = torch.bmm(input, weight.transpose(1, 2))
            return out if bias is None else out + bias
        # flipout
        if sampled and _is_expanded(input):
            mean = F.linear(input[:1], self.weight_mu).expand(n, -1, -1)
        else:
            mean = F.linear(input, self.weight_mu)
        s_in = _random_signs(input.shape, input)
        s_out = _random_signs((*input.shape[:-1], self.out_features), input)
        if sampled:
            pert = torch.bmm(input * s_in, delta_w.transpose(1, 2)) * s_out
        else:
            pert = F.linear(input * s_in, delta_w[0]) * s_out
        out = mean + pert
        if bias is not None:
            out = out + (bias if sampled else bias[0, 0])
        return out

    def _forward_local(self, input: Tensor) -> Tensor:
        bias_var = None if self.bias_sigma is None else self.bias_sigma**2
        x = input[:1] if input.dim() == 3 and _is_expanded(input) else input
        mean = F.linear(x, self.weight_mu, self.bias_mu)
        var = F.linear(x * x, self.weight_sigma**2, bias_var)
        std = torch.sqrt(var + _VAR_EPS)
        if x is not input:  # every sample sees the same input: share mean and std
            mean = mean.expand(input.shape[0], -1, -1)
            std = std.expand(input.shape[0], -1, -1)
        return mean + std * torch.randn_like(mean)

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
        delta_w = self.weight_sigma * torch.randn_like(self.weight_mu)
        bias = None
        if self.bias_mu is not None:
            bias = self.bias_mu + self.bias_sigma * torch.randn_like(self.bias_mu)
        if self.estimator == "reparam":
            return self._conv(input, self.weight_mu + delta_w, bias)
        s_in = _random_signs((input.shape[0], self.in_channels, 1, 1), input)
        out = self._conv(input, self.weight_mu)
        s_out = _random_signs((input.shape[0], self.out_channels, 1, 1), input)
        out = out + self._conv(input * s_in, delta_w) * s_out
        return out if bias is None else out + bias.view(1, -1, 1, 1)

    def _local(self, x: Tensor) -> Tensor:
        bias_var = None if self.bias_sigma is None else self.bias_sigma**2
        mean = self._conv(x, self.weight_mu, self.bias_mu)
        var = self._conv(x * x, self.weight_sigma**2, bias_var)
        return mean + torch.sqrt(var + _VAR_EPS) * torch.randn_like(mean)

    def _forward_sampled(self, input: Tensor) -> Tensor:
        """(S, B, C, H, W) -> (S, B, C_out, H', W') with S independent posterior samples."""
        s, b = input.shape[:2]
        if self.deterministic or self.estimator == "local":
            if _is_expanded(input) and self.deterministic:
                return self.forward(input[0]).unsqueeze(0).expand(s, -1, -1, -1, -1)
            if _is_expanded(input):
                bias_var = None if self.bias_sigma is None else self.bias_sigma**2
                mean = self._conv(input[0], self.weight_mu, self.bias_mu)
                var = self._conv(input[0] ** 2, self.weight_sigma**2, bias_var)
                std = torch.sqrt(var + _VAR_EPS)
                noise = torch.randn((s, *mean.shape), dtype=mean.dtype, device=mean.device)
                return mean + std * noise
            out = self.forward(input.reshape(s * b, *input.shape[2:]))
            return out.reshape(s, b, *out.shape[1:])
        # reparam / flipout: S weight samples through one grouped convolution
        eps = torch.randn((s, *self.weight_mu.shape), dtype=input.dtype, device=input.device)
        delta_w = self.weight_sigma * eps  # (S, C_out, C_in, k, k)
        x = input.transpose(0, 1).reshape(b, s * self.in_channels, *input.shape[3:])
        if self.estimator == "reparam":
            weight = (self.weight_mu + delta_w).reshape(s * self.out_channels, *delta_w.shape[2:])
            out = self._conv(x, weight, groups=s)
        else:
            mean = self._conv(x, self.weight_mu.repeat(s, 1, 1, 1), groups=s)
            s_in = _random_signs((b, s * self.in_channels, 1, 1), input)
            s_out = _random_signs((b, s * self.out_channels, 1, 1), input)
            flat = delta_w.reshape(s * self.out_channels, *delta_w.shape[2:])
            out = mean + self._conv(x * s_in, flat, groups=s) * s_out
        out = out.reshape(b, s, self.out_channels, *out.shape[2:]).transpose(0, 1)
        if self.bias_mu is not None:
            eps_b = torch.randn((s, self.out_channels), dtype=out.dtype, device=out.device)
            bias = self.bias_mu + self.bias_sigma * eps_b.view(s, -1)
            out = out + bias.view(s, 1, -1, 1, 1)
        return out

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
        for layer, flag in zip(layers, before):
            layer.deterministic = flag
