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

Parameters: mu and rho live in a `Posterior` (`posterior.py`), flat: a layer made on its own
owns one with its weight and bias segments; a `models.Network` joins its layers' into one and
`attach`es each layer to its segments. `weight_mu`, `weight_rho`, `bias_mu` and `bias_rho` are
views. A training pass draws once for the whole network (`Posterior.draw`: one softplus, one
noise draw, one sample) and hands each layer its pieces (`forward(input, draw)`); the network's
`kl(draw)` is then that pass's KL. Inside `prediction_sampling` (what `predict.sample_outputs`
uses) each layer draws its S samples by the cheapest exact route.
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
from .posterior import Draw, Posterior, random_signs, standard_normal
from .priors import Prior
from .rng import generator

_VAR_EPS = 1e-16  # keeps sqrt(var) differentiable where an input row is all zeros


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
    """What the variational layers share: their segments of a `Posterior` (their own, or the
    network's once `attach`ed), the views of mu and rho, initialisation, KL and repr."""

    posterior: Posterior
    _predicting: str | None = None  # inside `prediction_sampling`: "weights" or "cheapest"

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
        self.estimator = estimator
        self.rho0 = float(rho0)
        self.deterministic = False
        self.weight_shape = torch.Size(weight_shape)
        sizes = [self.weight_shape.numel()] + ([weight_shape[0]] if bias else [])
        self.posterior = Posterior(sizes, prior, rho0, device, dtype)
        self.n_segments = len(sizes)
        self.segment = 0  # the weight's segment in `posterior`; the bias's is the next
        self.reset_parameters()

    @property
    def prior(self) -> Prior:
        return self.posterior.prior

    @property
    def has_bias(self) -> bool:
        return self.n_segments == 2

    def attach(self, posterior: Posterior, segment: int) -> None:
        """Read mu and rho from segments `segment` (weight) and `segment + 1` (bias) of
        `posterior`, a network's, which owns them from now on (values copied by the caller,
        `Posterior.joined`)."""
        del self.posterior  # the layer's own: no longer a parameter of the model
        self.__dict__["posterior"] = posterior  # not a submodule: its owner registers it
        self.segment = segment

    def reset_parameters(self) -> None:
        """mu as `nn.Linear` / `nn.Conv2d` initialise their weights (drawn from the thread's
        random streams, `rng`); rho = rho0 everywhere."""
        init_like_torch(self.weight_mu, self.bias_mu)
        with torch.no_grad():
            for i in range(self.n_segments):
                self.posterior.segment("rho", self.segment + i).fill_(self.rho0)

    def _view(self, name: str, bias: bool) -> Tensor | None:
        if bias and not self.has_bias:
            return None
        flat = self.posterior.segment(name, self.segment + bias)
        return flat if bias else flat.view(self.weight_shape)

    @property
    def weight_mu(self) -> Tensor:
        return self._view("mu", False)

    @property
    def weight_rho(self) -> Tensor:
        return self._view("rho", False)

    @property
    def bias_mu(self) -> Tensor | None:
        return self._view("mu", True)

    @property
    def bias_rho(self) -> Tensor | None:
        return self._view("rho", True)

    @property
    def weight_sigma(self) -> Tensor:
        return F.softplus(self.weight_rho)

    @property
    def bias_sigma(self) -> Tensor | None:
        return None if self.bias_rho is None else F.softplus(self.bias_rho)

    def grads(self) -> dict[str, Tensor | None]:
        """The gradients of weight_mu, weight_rho, bias_mu and bias_rho after a backward pass
        (views of the posterior's; None where no gradient reached it or there is no bias)."""
        out = {}
        for name in ("weight_mu", "weight_rho", "bias_mu", "bias_rho"):
            part, which = name.split("_")
            flat = getattr(self.posterior, which).grad
            if flat is None or (part == "bias" and not self.has_bias):
                out[name] = None
                continue
            index = self.segment + (part == "bias")
            start, size = self.posterior.offsets[index], self.posterior.sizes[index]
            piece = flat.narrow(0, start, size)
            out[name] = piece if part == "bias" else piece.view(self.weight_shape)
        return out

    def _pairs(self) -> Iterator[tuple[Tensor, Tensor]]:
        yield self.weight_mu, self.weight_sigma
        if self.has_bias:
            yield self.bias_mu, self.bias_sigma

    def draw(self, samples: int = 1) -> Draw:
        """A fresh draw from this layer's segments alone (a network draws for all its layers)."""
        return self.posterior.draw(samples, self.segment, self.segment + self.n_segments)

    def kl(self, draw: Draw | None = None) -> Tensor:
        """KL[q || p] summed over every weight and bias of the layer (a scalar): the closed form
        for a Gaussian prior, else the estimate log q(w) - log p(w) at a sample: that of the pass
        that used `draw` (one of this layer's own `draw()`s), or a fresh one (`Posterior.kl`)."""
        return self.posterior.kl(draw, self.segment, self.segment + self.n_segments)

    def _pieces(self, draw: Draw, kind: str, n: int) -> tuple[Tensor, Tensor | None]:
        """The weight's and bias's parts of the draw's `kind` output, shaped (n, *weight) and
        (n, out) ("sample", "noise"), or as the parameters ("var", "mu")."""
        weight = draw.piece(kind, self.segment)
        bias = draw.piece(kind, self.segment + 1) if self.has_bias else None
        if kind in ("var", "mu"):
            return weight.view(self.weight_shape), bias
        return weight.view(n, *self.weight_shape), bias

    def _noise(self, n: int, like: Tensor) -> tuple[Tensor, Tensor | None]:
        """Standard normal noise for n weight samples (n, *weight) and biases (n, out), drawn
        in one call."""
        w_numel = self.weight_shape.numel()
        n_bias = self.weight_shape[0] if self.has_bias else 0
        flat = standard_normal((n, w_numel + n_bias), like)
        eps_w = flat[:, :w_numel].reshape(n, *self.weight_shape)
        eps_b = flat[:, w_numel:] if n_bias else None
        return eps_w, eps_b

    def signal_to_noise(self) -> Tensor:
        """|mu| / sigma of every weight, flattened (Blundell et al. 2015, section 5.1)."""
        return (self.weight_mu.abs() / self.weight_sigma).flatten()

    def _extra(self) -> str:
        return f"estimator={self.estimator}, rho0={self.rho0}, prior={self.prior}"


def _local(
    input: Tensor, weight_mu: Tensor, bias_mu: Tensor | None, weight_var: Tensor,
    bias_var: Tensor | None, draw: Draw | None = None,
) -> Tensor:  # fmt: skip
    """The local reparameterisation: pre-activations sampled from their Gaussian, mean
    x mu^T + b_mu and variance x^2 (sigma^2)^T + sigma_b^2, with their noise from the pass's
    `draw` (else a draw of their own). When every sample sees the same (expanded) input, the
    mean and the std are computed once."""
    x = input[:1] if input.dim() == 3 and _is_expanded(input) else input
    rows = x.reshape(-1, x.shape[-1])  # 2-D: `F.linear` then returns a fresh tensor, not a view
    mean = F.linear(rows, weight_mu, bias_mu)
    std = F.linear(rows * rows, weight_var, bias_var).add_(_VAR_EPS).sqrt_()
    shape = (*input.shape[:-1], mean.shape[-1])
    n_rows = math.prod(shape[:-1])
    if draw is not None:
        noise = draw.normals(n_rows, shape[-1], mean)
    else:
        noise = standard_normal((n_rows, shape[-1]), mean)
    if x is input:
        return torch.addcmul(mean, std, noise).view(shape)
    mean = mean.view(1, *shape[1:]).expand(shape)
    std = std.view(1, *shape[1:]).expand(shape)
    return torch.addcmul(mean, std, noise.view(shape))


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

    def forward(self, input: Tensor, draw: Draw | None = None) -> Tensor:
        """input (B, in) or (S, B, in) -> (B, out) or (S, B, out). `draw`: the pass's draw from
        the network's posterior (`Network.forward` makes one for all its layers); by default
        the layer draws from its own segments."""
        if self.deterministic:
            if input.dim() == 3 and _is_expanded(input):
                out = F.linear(input[:1], self.weight_mu, self.bias_mu)
                return out.expand(input.shape[0], -1, -1)
            return F.linear(input, self.weight_mu, self.bias_mu)
        if self._predicting and input.dim() == 3 and not torch.is_grad_enabled():
            return self._forward_predict(input)
        n = input.shape[0] if input.dim() == 3 else 1
        if draw is None:
            draw = self.draw(n)
        if self.estimator == "local":
            weight_var, bias_var = self._pieces(draw, "var", n)
            weight_mu, bias_mu = self._pieces(draw, "mu", n)
            return _local(input, weight_mu, bias_mu, weight_var, bias_var, draw)
        if draw.samples != n:
            raise ValueError(f"a draw of {draw.samples} samples for an input of {n}")
        if self.estimator == "reparam":
            weight, bias = self._pieces(draw, "sample", n)  # (n, out, in), (n, out)
            return _linear_samples(input, weight, bias)
        # flipout: one perturbation sigma * eps, its sign flipped per example and unit
        delta_w, noise_b = self._pieces(draw, "noise", n)  # (n, out, in), (n, out)
        weight_mu, bias_mu = self._pieces(draw, "mu", n)
        bias = None if noise_b is None else noise_b + bias_mu  # biases sampled: (n, out)
        if n == 1:  # 2-D products (fresh outputs, not views); the bias joins the mean's
            x = input.reshape(-1, self.in_features)
            mean = F.linear(x, weight_mu, None if bias is None else bias.view(-1))
            signs = draw.signs(x.shape[0], self.in_features + self.out_features, x)
            s_in, s_out = signs.split((self.in_features, self.out_features), dim=-1)
            out = torch.addcmul(mean, F.linear(x * s_in, delta_w.view(self.weight_shape)), s_out)
            return out.view(*input.shape[:-1], self.out_features)
        if _is_expanded(input):
            mean = F.linear(input[:1], weight_mu).expand(n, -1, -1)
        else:
            mean = F.linear(input, weight_mu)
        signs = random_signs((*input.shape[:-1], self.in_features + self.out_features), input)
        s_in, s_out = signs.split((self.in_features, self.out_features), dim=-1)
        out = torch.addcmul(mean, _linear_samples(input * s_in, delta_w, None), s_out)
        return out if bias is None else out + bias.unsqueeze(1)

    def _forward_local(self, input: Tensor) -> Tensor:
        """Pre-activations sampled from their Gaussian (prediction, gradients off)."""
        var_b = None if self.bias_rho is None else F.softplus(self.bias_rho).square()
        return _local(input, self.weight_mu, self.bias_mu, self.weight_sigma.square(), var_b)

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
        sigma_w, sigma_b = self.weight_sigma, self.bias_sigma
        out = input.new_empty(s, b, self.out_features)
        step = _samples_per_chunk(input, self.weight_mu.numel())
        for s0 in range(0, s, step):
            k = min(step, s - s0)
            eps_w, eps_b = self._noise(k, input)
            weight = torch.addcmul(self.weight_mu, sigma_w, eps_w)  # (k, out, in)
            bias = None if eps_b is None else torch.addcmul(self.bias_mu, sigma_b, eps_b)
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

    def forward(self, input: Tensor, draw: Draw | None = None) -> Tensor:
        """input (B, C, H, W) or (S, B, C, H, W) with S posterior samples; `draw` as for
        `BayesianLinear.forward`."""
        if input.dim() == 4:
            return self.forward(input.unsqueeze(0), draw).squeeze(0)
        s, b = input.shape[:2]
        if self.deterministic:
            if _is_expanded(input):
                out = self._conv(input[0], self.weight_mu, self.bias_mu)
                return out.unsqueeze(0).expand(s, *out.shape)
            out = self._conv(input.reshape(s * b, *input.shape[2:]), self.weight_mu, self.bias_mu)
            return out.reshape(s, b, *out.shape[1:])
        # S weight samples through one grouped convolution. For the predictive, flipout samples
        # weights as reparam does (see BayesianLinear._forward_predict)
        predicting = self._predicting is not None and not torch.is_grad_enabled()
        if draw is None or predicting:
            draw = self.draw(s)
        if draw.samples != s:
            raise ValueError(f"a draw of {draw.samples} samples for an input of {s}")
        x = input.transpose(0, 1).reshape(b, s * self.in_channels, *input.shape[3:])
        kernel = (s * self.out_channels, *self.weight_shape[1:])
        if self.estimator == "reparam" or predicting:
            weight, bias = self._pieces(draw, "sample", s)
            out = self._conv(x, weight.reshape(kernel), groups=s)
        else:  # flipout
            delta_w, noise_b = self._pieces(draw, "noise", s)
            weight_mu, bias_mu = self._pieces(draw, "mu", s)
            bias = None if noise_b is None else noise_b + bias_mu  # biases sampled: (s, out)
            mean = self._conv(x, weight_mu.repeat(s, 1, 1, 1) if s > 1 else weight_mu, groups=s)
            signs = random_signs((b, s * (self.in_channels + self.out_channels), 1, 1), input)
            s_in, s_out = signs.split((s * self.in_channels, s * self.out_channels), dim=1)
            out = mean + self._conv(x * s_in, delta_w.reshape(kernel), groups=s) * s_out
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
