"""What a network's weights look like: maximum likelihood, MAP and Bayes by Backprop side by side.

Maximum likelihood (a "standard" network) and maximum a posteriori (a "map" network, trained on
NLL + (-log p(w)): a Gaussian prior is L2 weight decay, a Laplace prior L1; see `losses`) each
give one number per weight; Bayes by Backprop (Blundell et al., ICML 2015) a Gaussian N(mu,
sigma^2) per weight, twice the parameters. This module reads them out as flat tensors:

- `point_weights(model)`: every weight and bias of a standard or MAP network, flattened.
- `posterior_weights(model)`: BBB's posterior means and stds (`mu`, `sigma`) of every weight and
  bias, flattened in the same layer order.
- `near_zero_fraction(w, tol)`: the share of entries with |w| < tol (1e-3 by default): how sparse
  a solution is.
- `weight_summary(...)` (`summarise(...)` from weights already read out): these numbers for the
  three models at once (for a table).
- `prune_point(model, fraction)`: a copy of a standard or MAP network with the `fraction` of its
  weights smallest in |w| set to 0 (biases kept), the point-estimate counterpart of
  `pruning.prune`.
- `pruning_curves(bbb, map_model, dataset, fractions)`: the test error (classification) or the
  test RMSE / NLL (regression) of the mean network against the fraction of weights removed,
  pruning BBB by |mu| / sigma and by |mu| alone (`pruning.prune`) and MAP by |w|.
- `prior_density(prior, w_max)`: (w, p(w)) of a prior on a weight axis, for drawing.
- `weights_table(...)`: one row per weight and bias: MLE's, MAP's, BBB's mu and sigma (a CSV).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from .data.base import Dataset
from .layers import bayesian_layers, posterior_mean
from .models import CategoricalLikelihood
from .priors import Prior
from .pruning import lowest_masks, prune

SMALL = 1e-3  # |w| below this counts as zero in `near_zero_fraction`
CURVE_METRICS = ("error", "rmse", "nll")
PRUNING_RULES = {  # curve name -> (model, score)
    "BBB by |μ|/σ": ("bbb", "snr"),
    "BBB by |μ|": ("bbb", "magnitude"),
    "MAP by |w|": ("map", "magnitude"),
}


def _point_layers(model: nn.Module) -> list[nn.Module]:
    layers = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    if not layers:
        raise ValueError("expected a standard or MAP network (nn.Linear / nn.Conv2d layers)")
    return layers


def point_weights(model: nn.Module) -> Tensor:
    """Every weight and bias of a standard or MAP network, flattened (layer by layer, each
    layer's weights before its bias), detached on the CPU."""
    parts = []
    for layer in _point_layers(model):
        parts.append(layer.weight.detach().flatten())
        if layer.bias is not None:
            parts.append(layer.bias.detach().flatten())
    return torch.cat(parts).cpu()


@dataclass(frozen=True)
class Posterior:
    """BBB's factorised Gaussian posterior, flattened: one entry per weight and bias."""

    mu: Tensor  # (P,) posterior means
    sigma: Tensor  # (P,) posterior stds, softplus(rho)

    @property
    def snr(self) -> Tensor:
        """|mu| / sigma, the signal-to-noise ratio Blundell et al. prune by."""
        return self.mu.abs() / self.sigma


@torch.no_grad()
def posterior_weights(model: nn.Module) -> Posterior:
    """mu and sigma of every weight and bias of a BBB network, in the order of `point_weights`."""
    layers = bayesian_layers(model)
    if not layers:
        raise ValueError("posterior weights need a Bayesian (bbb) model")
    mus, sigmas = [], []
    for layer in layers:
        for mu, sigma in layer._pairs():
            mus.append(mu.detach().flatten())
            sigmas.append(sigma.detach().flatten())
    return Posterior(torch.cat(mus).cpu(), torch.cat(sigmas).cpu())


def near_zero_fraction(w: Tensor, tol: float = SMALL) -> float:
    """The share of entries of `w` with |w| < tol."""
    if w.numel() == 0:
        raise ValueError("no weights")
    return float((w.abs() < tol).double().mean())


def weight_summary(
    mle: nn.Module, map_model: nn.Module, bbb: nn.Module, tol: float = SMALL
) -> dict[str, dict[str, float]]:
    """Per model ("mle", "map", "bbb"): the number of parameters it learns, the weights it
    predicts with (BBB: the means), their mean |w|, the share with |w| < tol and, for BBB,
    the mean sigma."""
    return summarise(point_weights(mle), point_weights(map_model), posterior_weights(bbb), tol)


def summarise(
    mle: Tensor, map_weights: Tensor, post: Posterior, tol: float = SMALL
) -> dict[str, dict[str, float]]:
    """`weight_summary` of weights already read out (`point_weights`, `posterior_weights`)."""
    out = {}
    for name, w, params in (
        ("mle", mle, None),
        ("map", map_weights, None),
        ("bbb", post.mu, 2 * post.mu.numel()),
    ):
        out[name] = {
            "parameters": float(params or w.numel()),
            "weights": float(w.numel()),
            "mean_abs": float(w.abs().mean()),
            "near_zero": near_zero_fraction(w, tol),
        }
    out["bbb"]["mean_sigma"] = float(post.sigma.mean())
    return out


@torch.no_grad()
def prune_point(model: nn.Module, fraction: float) -> nn.Module:
    """A copy of a standard or MAP network with the `fraction` of weights smallest in |w| set
    to exactly 0 (biases are kept, as in `pruning.prune`)."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1]; got {fraction}")
    pruned = copy.deepcopy(model)
    layers = _point_layers(pruned)
    masks = lowest_masks([layer.weight.abs() for layer in layers], fraction)
    for layer, mask in zip(layers, masks, strict=True):
        layer.weight[mask.view_as(layer.weight)] = 0.0
    return pruned


@torch.no_grad()
def mean_network_score(model: nn.Module, x: Tensor, y: Tensor, metric: str) -> float:
    """`metric` of the mean network (BBB: the posterior means; otherwise the weights) on (x, y):
    "error" the share of wrong classes, "rmse", or "nll" the mean Gaussian / categorical NLL."""
    if metric not in CURVE_METRICS:
        raise ValueError(f"metric must be one of {', '.join(CURVE_METRICS)}; got {metric!r}")
    classify = isinstance(model.likelihood, CategoricalLikelihood)
    if (metric == "error") != classify and metric != "nll":
        raise ValueError(f"metric {metric!r} does not fit this model's likelihood")
    device = next(model.parameters()).device
    x, y = x.to(device), y.to(device)
    was_training = model.training
    model.eval()
    try:
        with posterior_mean(model):
            out = model(x, samples=1)  # (1, B, out)
    finally:
        model.train(was_training)
    if metric == "error":
        return float((out[0].argmax(-1) != y).double().mean())
    if metric == "nll":
        return float(model.likelihood.nll(out, y).double().mean())
    return float((out[0, :, 0] - y).double().pow(2).mean().sqrt())


def pruning_curves(
    bbb: nn.Module,
    map_model: nn.Module,
    dataset: Dataset,
    fractions: Sequence[float],
    metric: str | None = None,
) -> dict[str, Tensor]:
    """The test `metric` (default: "error" for classification, "rmse" for regression) of the
    mean network at each fraction of weights removed, one curve per rule of `PRUNING_RULES`."""
    metric = metric or ("error" if dataset.task == "classification" else "rmse")
    models = {"bbb": bbb, "map": map_model}
    curves = {}
    for name, (kind, score) in PRUNING_RULES.items():
        values = []
        for fraction in fractions:
            if kind == "bbb":
                pruned = prune(models[kind], fraction, score)
            else:
                pruned = prune_point(models[kind], fraction)
            values.append(mean_network_score(pruned, dataset.x_test, dataset.y_test, metric))
        curves[name] = torch.tensor(values, dtype=torch.float64)
    return curves


def prior_density(prior: Prior, w_max: float, points: int = 401) -> tuple[np.ndarray, np.ndarray]:
    """(w, p(w)) of `prior` on [-w_max, w_max]: `points` evenly spaced values plus as many
    log-spaced ones on each side of 0, so the narrow spike of a scale mixture is resolved."""
    if not (math.isfinite(w_max) and w_max > 0):
        raise ValueError(f"w_max must be a positive number; got {w_max}")
    fine = np.geomspace(1e-4 * w_max, w_max, max(points // 4, 2))
    w = np.unique(np.concatenate([np.linspace(-w_max, w_max, points), fine, -fine, [0.0]]))
    log_p = prior.log_prob(torch.as_tensor(w, dtype=torch.float64))
    return w, log_p.exp().numpy()


def summary_rows(summary: Mapping[str, Mapping[str, float]]) -> list[dict[str, object]]:
    """`weight_summary` as table rows with readable headers."""
    names = {"mle": "MLE", "map": "MAP", "bbb": "BBB (means)"}
    rows = []
    for key, stats in summary.items():
        rows.append(
            {
                "model": names.get(key, key),
                "learned parameters": int(stats["parameters"]),
                "mean |w|": stats["mean_abs"],
                f"share |w| < {SMALL:g}": stats["near_zero"],
                "mean σ": stats.get("mean_sigma", float("nan")),
            }
        )
    return rows


def weights_table(mle: nn.Module, map_model: nn.Module, bbb: nn.Module) -> pd.DataFrame:
    """One row per weight and bias of the shared architecture, in layer order: columns
    `mle_w`, `map_w`, `bbb_mu`, `bbb_sigma`."""
    post = posterior_weights(bbb)
    return pd.DataFrame(
        {
            "mle_w": point_weights(mle).double().numpy(),
            "map_w": point_weights(map_model).double().numpy(),
            "bbb_mu": post.mu.double().numpy(),
            "bbb_sigma": post.sigma.double().numpy(),
        }
    )
