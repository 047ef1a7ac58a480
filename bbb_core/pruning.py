"""Weight pruning by signal-to-noise ratio (Blundell et al., ICML 2015, section 5.1, Table 2).

A Bayesian weight whose posterior mean is small next to its posterior std, |mu| / sigma, carries
little signal: removing it barely changes the network. Blundell et al. remove up to 98 % of the
weights of an MNIST network this way at almost no cost in test error. Here a weight is removed by
setting its posterior to a point mass at zero (mu = 0, sigma ~ 0); biases are kept. Test error is
measured with the posterior mean network, as in the paper's table.

`prune(model, fraction, score)` returns a pruned copy; `pruning_curve(...)` the test error at a list
of fractions, for the signal-to-noise score and, as the baseline, the plain magnitude |mu|.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from .layers import bayesian_layers, posterior_mean
from .models import CategoricalLikelihood

SCORES = ("snr", "magnitude")
_RHO_ZERO = -30.0  # softplus(-30) ~ 1e-13: a point mass for every practical purpose


def weight_scores(model: nn.Module, score: str = "snr") -> list[Tensor]:
    """Per-layer scores of every weight: |mu| / sigma ("snr") or |mu| ("magnitude")."""
    if score not in SCORES:
        raise ValueError(f"score must be one of {', '.join(SCORES)}; got {score!r}")
    layers = bayesian_layers(model)
    if not layers:
        raise ValueError("pruning by signal-to-noise needs a Bayesian (bbb) model")
    if score == "snr":
        return [layer.signal_to_noise().detach() for layer in layers]
    return [layer.weight_mu.detach().abs().flatten() for layer in layers]


def lowest_masks(scores: list[Tensor], fraction: float) -> list[Tensor]:
    """Per tensor of `scores`, a boolean mask (flat) of its entries among the `fraction` with
    the lowest scores over all tensors together (ties: the first ones)."""
    flat = torch.cat([s.flatten() for s in scores])
    remove = torch.zeros(flat.numel(), dtype=torch.bool, device=flat.device)
    remove[flat.argsort(stable=True)[: int(round(fraction * flat.numel()))]] = True
    return list(remove.split([s.numel() for s in scores]))


@torch.no_grad()
def prune(model: nn.Module, fraction: float, score: str = "snr") -> nn.Module:
    """A copy of `model` with the `fraction` of weights with the lowest score set to exactly 0."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1]; got {fraction}")
    pruned = copy.deepcopy(model)
    masks = lowest_masks(weight_scores(pruned, score), fraction)
    for layer, mask in zip(bayesian_layers(pruned), masks, strict=True):
        mask = mask.view_as(layer.weight_mu)
        layer.weight_mu[mask] = 0.0
        layer.weight_rho[mask] = _RHO_ZERO
    return pruned


@torch.no_grad()
def error_rate(model: nn.Module, x: Tensor, y: Tensor, batch_size: int = 2048) -> float:
    """Classification error (%) of the posterior mean network."""
    if not isinstance(model.likelihood, CategoricalLikelihood):
        raise ValueError("pruning curves are defined for classification models")
    model.eval()
    wrong = 0
    with posterior_mean(model):
        for i in range(0, x.shape[0], batch_size):
            logits = model(x[i : i + batch_size], samples=1)[0]
            wrong += int((logits.argmax(-1) != y[i : i + batch_size]).sum())
    return 100.0 * wrong / x.shape[0]


def pruning_curve(
    model: nn.Module, x: Tensor, y: Tensor, fractions: list[float], score: str = "snr"
) -> Tensor:
    """Test error (%) of the posterior mean network at each pruned fraction."""
    return torch.tensor([error_rate(prune(model, f, score), x, y) for f in fractions])
