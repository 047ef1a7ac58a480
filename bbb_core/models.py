"""Networks and likelihood heads: Bayes by Backprop and its baselines on the same architecture.

`build_model(model_cfg, prior_cfg, dataset)` returns a `Network` (or an `Ensemble`) whose
`forward(x, samples=S)` returns raw outputs with a leading Monte Carlo dimension, (S, B, out), and
whose `kl()` is the sum of its layers' KL (zero for the baselines). The likelihood head turns raw
outputs into per-point negative log-likelihoods and predictive moments:

- `CategoricalLikelihood`: softmax over `out` logits (classification).
- `GaussianLikelihood`: regression with the noise std fixed, learned (one homoscedastic
  parameter), or predicted per input ("hetero": a second output, the log-variance; the aleatoric
  part of Kendall and Gal, NeurIPS 2017).

Baselines: "standard" (posterior-free network, optional weight decay), "dropout" (MC dropout, Gal
and Ghahramani, ICML 2016: dropout stays on at prediction) and "ensemble" (Lakshminarayanan et
al., NeurIPS 2017: K independently initialised standard networks whose K outputs play the part of
the S Monte Carlo samples). "map" is the standard network trained to the maximum a posteriori
weights under the configured prior: it keeps the prior and `neg_log_prior()` returns
-log p(w) summed over every weight and bias (`losses.map_loss` says how it enters the loss).

Regression inputs and targets are standardised inside the network with the training set's
statistics (buffers saved with the weights), so raw outputs are in the data's own units.

Initial weights and dropout masks are drawn from the calling thread's random streams (`rng`):
build a model inside `rng.use(Streams(seed))` and it is the same model every time, without
touching PyTorch's global generator.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import ModelConfig, PriorConfig
from .data.base import Dataset
from .layers import (
    BAYESIAN_LAYERS,
    BayesianConv2d,
    BayesianLinear,
    bayesian_layers,
    init_like_torch,
)
from .posterior import Draw, Posterior
from .priors import Prior, build_prior
from .rng import generator

_LOGVAR_MIN, _LOGVAR_MAX = -20.0, 20.0
# the estimator a CNN's convolutions use for the configured one: the local reparameterisation
# holds for dense layers only (a kernel is shared across positions), so its convolutions flip out
CONV_ESTIMATOR = {"local": "flipout"}


class CategoricalLikelihood(nn.Module):
    """p(y | f) = softmax(f)_y for logits f with `n_classes` entries."""

    def __init__(self, n_classes: int) -> None:
        super().__init__()
        self.n_classes = n_classes
        self.out_features = n_classes

    def nll(self, out: Tensor, y: Tensor) -> Tensor:
        """Per-sample, per-point NLL: out (S, B, C), y (B,) -> (S, B)."""
        s = out.shape[0]
        flat = F.cross_entropy(out.flatten(0, 1), y.repeat(s), reduction="none")
        return flat.view(s, -1)

    def probs(self, out: Tensor) -> Tensor:
        return torch.softmax(out, dim=-1)


class GaussianLikelihood(nn.Module):
    """p(y | f) = N(y; f_mean, var) with var fixed, learned, or predicted ("hetero").

    Args:
        noise_model: "fixed", "learned" or "hetero".
        noise_std: the fixed std, or the initial std of the learned one.
    """

    def __init__(self, noise_model: str = "learned", noise_std: float = 0.1) -> None:
        super().__init__()
        self.noise_model = noise_model
        self.out_features = 2 if noise_model == "hetero" else 1
        log_std = torch.tensor(math.log(noise_std))
        if noise_model == "learned":
            self.log_std = nn.Parameter(log_std)
        else:
            self.register_buffer("log_std", log_std)

    def mean_var(self, out: Tensor) -> tuple[Tensor, Tensor]:
        """Predictive mean and noise variance of every sample: out (S, B, k) -> two (S, B)."""
        mean = out[..., 0]
        if self.noise_model == "hetero":
            var = out[..., 1].clamp(_LOGVAR_MIN, _LOGVAR_MAX).exp()
        else:
            var = torch.exp(2 * self.log_std).expand_as(mean)
        return mean, var

    def nll(self, out: Tensor, y: Tensor) -> Tensor:
        mean, var = self.mean_var(out)
        return 0.5 * (math.log(2 * math.pi) + torch.log(var) + (y - mean) ** 2 / var)

    def extra_repr(self) -> str:
        return f"noise_model={self.noise_model}, noise_std={self.log_std.exp().item():.4g}"


class Dropout(nn.Dropout):
    """`nn.Dropout` whose masks come from the thread's random streams (`rng.generator`)."""

    def forward(self, input: Tensor) -> Tensor:
        if not self.training or self.p == 0:
            return input
        if torch.compiler.is_compiling():  # traced: the compiler draws its own masks
            return super().forward(input)
        keep = 1.0 - self.p
        mask = torch.empty_like(input).bernoulli_(keep, generator=generator(input.device))
        return input * mask.div_(keep)


def _standard(layer_cls: type[nn.Module], *args, **kwargs) -> nn.Module:
    """A standard `nn.Linear` / `nn.Conv2d` initialised as PyTorch does, from the thread's random
    streams: made on the meta device first, so PyTorch's global generator is never drawn."""
    layer = layer_cls(*args, device="meta", **kwargs).to_empty(device="cpu")
    init_like_torch(layer.weight, layer.bias)
    return layer


class Network(nn.Module):
    """A feed-forward network (MLP or small CNN) with a likelihood head.

    The Bayesian layers of `body` share one `Posterior` (`self.posterior`, None for the
    baselines): a training pass draws from it once for all of them (`draw`), and `kl(draw)` is
    that pass's KL.

    Shape:
        - Input: (B, *input_shape).
        - Output of `forward(x, samples=S)`: (S, B, likelihood.out_features) raw outputs.
    """

    def __init__(
        self, body: nn.Sequential, likelihood: nn.Module, kind: str, prior: Prior | None = None
    ) -> None:
        super().__init__()
        self.body = body
        self.likelihood = likelihood
        self.kind = kind
        self.prior = prior  # "map": the prior p(w) of every weight and bias of `body`
        layers = bayesian_layers(body)
        self.posterior = Posterior.joined([layer.posterior for layer in layers]) if layers else None
        # per example, flipout's random signs and the local trick's noises of the dense layers:
        # one draw of each per pass for all of them (`Draw.signs`, `Draw.normals`)
        dense = [layer for layer in layers if isinstance(layer, BayesianLinear)]
        self._draw_widths = {
            "signs": sum(m.in_features + m.out_features for m in dense if m.estimator == "flipout"),
            "normals": sum(m.out_features for m in dense if m.estimator == "local"),
        }
        segment = 0
        for layer in layers:
            layer.attach(self.posterior, segment)
            segment += layer.n_segments
        for name in ("x_shift", "x_scale", "y_shift", "y_scale"):
            self.register_buffer(name, torch.tensor(0.0 if "shift" in name else 1.0))

    def set_standardisation(self, x: Tensor, y: Tensor) -> None:
        """Regression: standardise inputs and targets with these training-set statistics."""
        self.x_shift.copy_(x.mean())
        self.x_scale.copy_(x.std().clamp_min(1e-8))
        self.y_shift.copy_(y.mean())
        self.y_scale.copy_(y.std().clamp_min(1e-8))

    def draw(self, samples: int = 1) -> Draw | None:
        """A fresh draw of `samples` samples from the posterior, for one pass (None without)."""
        if self.posterior is None:
            return None
        draw = self.posterior.draw(samples)
        draw.widths = dict(self._draw_widths)
        return draw

    def forward(self, x: Tensor, samples: int = 1, draw: Draw | None = None) -> Tensor:
        """Raw outputs (S, B, out); `draw` (of S samples) is the pass's draw from the
        posterior, by default a fresh one."""
        if draw is None:
            draw = self.draw(samples)
        h = ((x - self.x_shift) / self.x_scale).unsqueeze(0)  # (1, B, ...)
        for layer in self.body:
            if isinstance(layer, (nn.Dropout, *BAYESIAN_LAYERS)) and h.shape[0] != samples:
                h = h.expand(samples, *h.shape[1:])  # from here on, samples differ
            h = layer(h, draw) if isinstance(layer, BAYESIAN_LAYERS) else _apply(layer, h)
        if h.shape[0] != samples:
            h = h.expand(samples, *h.shape[1:])
        return self._to_data_units(h)

    def _to_data_units(self, h: Tensor) -> Tensor:
        if not isinstance(self.likelihood, GaussianLikelihood):
            return h
        mean = h[..., :1] * self.y_scale + self.y_shift
        if h.shape[-1] == 1:
            return mean
        return torch.cat([mean, h[..., 1:] + 2 * torch.log(self.y_scale)], dim=-1)

    def kl(self, draw: Draw | None = None) -> Tensor:
        """KL[q || p] summed over every weight and bias (a zero tensor for baselines): that of
        the pass that used `draw` (`Posterior.kl`), or from a fresh draw."""
        if self.posterior is None:
            return self.x_shift.new_zeros(())
        return self.posterior.kl(draw)

    def neg_log_prior(self) -> Tensor:
        """-log p(w) summed over every weight and bias of the body under `self.prior` (a zero
        tensor without a prior). The likelihood's noise std is not a weight: it has no prior."""
        total = self.x_shift.new_zeros(())
        if self.prior is None:
            return total
        for p in self.body.parameters():
            total = total - self.prior.log_prob(p).sum()
        return total


def _apply(layer: nn.Module, h: Tensor) -> Tensor:
    """Apply `layer` to h of shape (S, B, ...), folding S into the batch where a layer needs it."""
    if isinstance(layer, nn.Flatten):
        return h.flatten(2)
    if isinstance(layer, (nn.Conv2d, nn.MaxPool2d)):
        s, b = h.shape[:2]
        out = layer(h.reshape(s * b, *h.shape[2:]))
        return out.reshape(s, b, *out.shape[1:])
    if isinstance(layer, nn.ReLU) and not torch.is_grad_enabled() and h.is_contiguous():
        return h.relu_()  # prediction: h is a layer's fresh output, no graph needs it
    return layer(h)  # linear layers take (S, B, in); activations and dropout any shape


class Ensemble(nn.Module):
    """K standard networks; `forward(x)` stacks their outputs as (K, B, out), ignoring `samples`."""

    def __init__(self, members: list[Network]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)
        self.likelihood = members[0].likelihood
        self.kind = "ensemble"

    def set_standardisation(self, x: Tensor, y: Tensor) -> None:
        for member in self.members:
            member.set_standardisation(x, y)

    def draw(self, samples: int = 1) -> None:
        return None  # standard networks: nothing to draw

    def forward(self, x: Tensor, samples: int = 1, draw: None = None) -> Tensor:
        return torch.stack([member(x, 1)[0] for member in self.members])

    def kl(self, draw: None = None) -> Tensor:
        return self.members[0].kl()


def _activation(name: str) -> nn.Module:
    return nn.ReLU() if name == "relu" else nn.Tanh()


def _body(cfg: ModelConfig, prior_cfg: PriorConfig, input_shape: tuple[int, ...], out: int):
    """The hidden stack and output layer for `cfg.kind` (a standard or a Bayesian network)."""
    bayes = cfg.kind == "bbb"
    prior = build_prior(prior_cfg) if bayes else None
    opts = {"prior": prior, "estimator": cfg.estimator, "rho0": cfg.rho0}

    def linear(n_in: int, n_out: int) -> nn.Module:
        return BayesianLinear(n_in, n_out, **opts) if bayes else _standard(nn.Linear, n_in, n_out)

    def conv(c_in: int, c_out: int) -> nn.Module:
        if bayes:  # no local reparameterisation for shared kernels: flipout instead
            conv_opts = {**opts, "estimator": CONV_ESTIMATOR.get(cfg.estimator, cfg.estimator)}
            return BayesianConv2d(c_in, c_out, 3, padding=1, **conv_opts)
        return _standard(nn.Conv2d, c_in, c_out, 3, padding=1)

    layers: list[nn.Module] = []
    drop = cfg.kind == "dropout" and cfg.dropout > 0
    if cfg.arch == "cnn":
        channels, (height, width) = input_shape[0], input_shape[1:]
        for width_c in cfg.hidden:
            layers += [conv(channels, width_c), _activation(cfg.activation)]
            if min(height, width) >= 4:
                layers.append(nn.MaxPool2d(2))
                height, width = height // 2, width // 2
            if drop:
                layers.append(Dropout(cfg.dropout))
            channels = width_c
        layers += [nn.Flatten(), linear(channels * height * width, out)]
        return nn.Sequential(*layers)
    n_in = math.prod(input_shape)
    if len(input_shape) > 1:
        layers.append(nn.Flatten())
    for width_h in cfg.hidden:
        layers += [linear(n_in, width_h), _activation(cfg.activation)]
        if drop:
            layers.append(Dropout(cfg.dropout))
        n_in = width_h
    layers.append(linear(n_in, out))
    return nn.Sequential(*layers)


def _likelihood(cfg: ModelConfig, dataset: Dataset) -> nn.Module:
    if dataset.task == "classification":
        return CategoricalLikelihood(dataset.n_classes)
    return GaussianLikelihood(cfg.noise_model, cfg.noise_std)


def build_model(cfg: ModelConfig, prior_cfg: PriorConfig, dataset: Dataset) -> nn.Module:
    """The network `cfg.kind` describes, sized for `dataset`, with its likelihood head.

    Regression networks standardise with the training set's statistics.
    """
    cfg.validate()

    likelihood = _likelihood(cfg, dataset)  # shared by ensemble members (one learned noise)

    def one() -> Network:
        body = _body(cfg, prior_cfg, dataset.input_shape, likelihood.out_features)
        prior = build_prior(prior_cfg) if cfg.kind == "map" else None
        net = Network(body, likelihood, cfg.kind, prior)
        if dataset.task == "regression":
            net.set_standardisation(dataset.x_train, dataset.y_train)
        return net

    if cfg.kind == "ensemble":
        return Ensemble([one() for _ in range(cfg.ensemble_size)])
    return one()
