"""Evaluation metrics for regression, classification, calibration and OOD detection.

Every function here is pure: it takes tensors (numpy arrays and lists are accepted through
`torch.as_tensor`), computes in float64 and returns a Python float, except `reliability`, which
returns a `Reliability` of numpy arrays ready to draw as a reliability diagram. Every reduction is a
mean over the N points. Lengths are checked: mismatched inputs raise a `ValueError` naming them.

Regression (`y`, `mean`, `std` all of shape (N,), or any one shared shape; no broadcasting):

- `rmse(mean, y)`: sqrt(mean_n (mean_n - y_n)^2).
- `gaussian_nll(y, mean, std)`: mean_n -log N(y_n; mean_n, std_n^2), constant 0.5 log(2 pi)
  included, so it equals `-torch.distributions.Normal(mean, std).log_prob(y).mean()`.
- `interval_coverage(y, lower, upper)`: fraction of points with lower_n <= y_n <= upper_n.

Classification (`probs` of shape (N, C) with rows on the simplex, integer labels `y` of shape (N,)):

- `accuracy(probs, y)`: fraction with argmax_k probs[n, k] == y_n (ties go to the first class).
- `categorical_nll(probs, y, eps)`: mean_n -log max(probs[n, y_n], eps).
- `brier_score(probs, y)`: mean_n sum_k (probs[n, k] - onehot(y_n)_k)^2, the multi-class form of
  Brier (1950), which lies in [0, 2].

Calibration, over the confidence c_n = max_k probs[n, k]:

- `reliability(probs, y, n_bins)`: n_bins equal-width bins on [0, 1]; bin b is
  (b / n_bins, (b + 1) / n_bins], except that the first bin also holds c = 0 (so c = 1 falls in the
  last bin). Per bin: the count, the mean confidence and the accuracy (nan where a bin is empty).
- `ece(probs, y, n_bins)`: expected calibration error, sum_b (n_b / N) |acc_b - conf_b| over the
  non-empty bins (Naeini et al. 2015; Guo et al. 2017, eq. 3).

Out-of-distribution detection:

- `ood_auroc(score_in, score_out)`: area under the ROC curve for telling OOD inputs (label 1) from
  in-distribution ones (label 0), where a higher score (e.g. predictive entropy) means "more likely
  OOD"; 1.0 is perfect separation, 0.5 is chance. Computed by `sklearn.metrics.roc_auc_score`.

References:
    G. W. Brier (1950). Verification of forecasts expressed in terms of probability. Monthly
    Weather Review 78(1).
    M. P. Naeini, G. F. Cooper, M. Hauskrecht (2015). Obtaining well calibrated probabilities
    using Bayesian binning. AAAI.
    C. Guo, G. Pleiss, Y. Sun, K. Q. Weinberger (2017). On calibration of modern neural networks.
    ICML.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "Reliability",
    "accuracy",
    "brier_score",
    "categorical_nll",
    "ece",
    "gaussian_nll",
    "interval_coverage",
    "ood_auroc",
    "reliability",
    "rmse",
]


# --- input handling -----------------------------------------------------------------------------


def _f64(x) -> Tensor:
    """`x` as a detached float64 CPU tensor."""
    return torch.as_tensor(x).detach().to(device="cpu", dtype=torch.float64)


def _same_shape(**named: Tensor) -> None:
    """Raise a ValueError naming the arguments unless all share one non-empty shape."""
    (first, ref), *rest = named.items()
    for name, t in rest:
        if t.shape != ref.shape:
            raise ValueError(
                f"{first} and {name} must have the same shape, "
                f"got {tuple(ref.shape)} and {tuple(t.shape)}"
            )
    if ref.numel() == 0:
        raise ValueError(f"{', '.join(named)} must not be empty")


def _classification_inputs(probs, y) -> tuple[Tensor, Tensor]:
    """Check and convert `probs` (N, C) to float64 and `y` (N,) to int64 labels in [0, C)."""
    probs, y = _f64(probs), torch.as_tensor(y).detach().cpu()
    if probs.ndim != 2:
        raise ValueError(f"probs must have shape (N, C), got {tuple(probs.shape)}")
    if y.ndim != 1:
        raise ValueError(f"y must have shape (N,), got {tuple(y.shape)}")
    if probs.shape[0] != y.shape[0]:
        raise ValueError(
            f"probs and y must have the same length, got {probs.shape[0]} and {y.shape[0]}"
        )
    if y.numel() == 0:
        raise ValueError("probs and y must not be empty")
    if y.is_floating_point() and not torch.equal(y, y.round()):
        raise ValueError("y must hold integer class labels")
    y = y.long()
    if y.min() < 0 or y.max() >= probs.shape[1]:
        raise ValueError(f"y must hold labels in [0, {probs.shape[1]}), got {y.min()}..{y.max()}")
    return probs, y


# --- regression ---------------------------------------------------------------------------------


def rmse(mean, y) -> float:
    """Root mean squared error between predictive means and targets, both of one shape."""
    mean, y = _f64(mean), _f64(y)
    _same_shape(mean=mean, y=y)
    return math.sqrt(((mean - y) ** 2).mean().item())


def gaussian_nll(y, mean, std) -> float:
    """Mean over points of -log N(y; mean, std^2), including the 0.5 log(2 pi) constant."""
    y, mean, std = _f64(y), _f64(mean), _f64(std)
    _same_shape(y=y, mean=mean, std=std)
    if not bool((std > 0).all()):
        raise ValueError("std must be strictly positive")
    z = (y - mean) / std
    nll = 0.5 * math.log(2 * math.pi) + torch.log(std) + 0.5 * z**2
    return nll.mean().item()


def interval_coverage(y, lower, upper) -> float:
    """Fraction of targets inside their closed interval, lower <= y <= upper."""
    y, lower, upper = _f64(y), _f64(lower), _f64(upper)
    _same_shape(y=y, lower=lower, upper=upper)
    inside = (lower <= y) & (y <= upper)
    return inside.double().mean().item()


# --- classification -----------------------------------------------------------------------------


def accuracy(probs, y) -> float:
    """Fraction of points whose most probable class (first on ties) is the label."""
    probs, y = _classification_inputs(probs, y)
    return (probs.argmax(dim=1) == y).double().mean().item()


def categorical_nll(probs, y, eps: float = 1e-12) -> float:
    """Mean over points of -log probs[n, y_n], the probability clamped below at `eps`."""
    probs, y = _classification_inputs(probs, y)
    p_true = probs.gather(1, y[:, None]).squeeze(1)  # (N,)
    return -torch.log(p_true.clamp_min(eps)).mean().item()


def brier_score(probs, y) -> float:
    """Mean over points of sum_k (p_k - onehot_k)^2 (multi-class Brier score, in [0, 2])."""
    probs, y = _classification_inputs(probs, y)
    onehot = torch.nn.functional.one_hot(y, probs.shape[1]).double()  # (N, C)
    return ((probs - onehot) ** 2).sum(dim=1).mean().item()


# --- calibration --------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Reliability:
    """Per-bin calibration summary; read-only numpy arrays, ready for a reliability diagram.

    `eq=False` because comparing numpy arrays with `==` has no single truth value.
    """

    bin_edges: np.ndarray  # (n_bins + 1,) equal-width edges from 0 to 1
    confidence: np.ndarray  # (n_bins,) mean max-probability in each bin; nan where empty
    accuracy: np.ndarray  # (n_bins,) fraction correct in each bin; nan where empty
    counts: np.ndarray  # (n_bins,) int64 number of points in each bin


def _read_only(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


def reliability(probs, y, n_bins: int = 15) -> Reliability:
    """Bin points by confidence max_k p_k into (lo, hi] bins on [0, 1] (first bin includes 0)."""
    if n_bins < 1:
        raise ValueError(f"n_bins must be at least 1, got {n_bins}")
    probs, y = _classification_inputs(probs, y)
    conf, pred = probs.max(dim=1)  # (N,), (N,)
    correct = (pred == y).double()
    edges = torch.linspace(0.0, 1.0, n_bins + 1, dtype=torch.float64)
    # bucketize(right=False): i with inner[i-1] < c <= inner[i]; bins (lo, hi], 0 -> 0, 1 -> last
    idx = torch.bucketize(conf, edges[1:-1], right=False)  # (N,)
    counts = torch.bincount(idx, minlength=n_bins)
    sum_conf = torch.zeros(n_bins, dtype=torch.float64).index_add_(0, idx, conf)
    sum_acc = torch.zeros(n_bins, dtype=torch.float64).index_add_(0, idx, correct)
    denom = counts.double().where(counts > 0, torch.tensor(float("nan"), dtype=torch.float64))
    return Reliability(
        bin_edges=_read_only(edges.numpy()),
        confidence=_read_only((sum_conf / denom).numpy()),
        accuracy=_read_only((sum_acc / denom).numpy()),
        counts=_read_only(counts.numpy().astype(np.int64)),
    )


def ece(probs, y, n_bins: int = 15) -> float:
    """Expected calibration error: sum_b (n_b / N) |acc_b - conf_b| over non-empty bins."""
    rel = reliability(probs, y, n_bins)
    full = rel.counts > 0
    weights = rel.counts[full] / rel.counts.sum()
    return float(np.sum(weights * np.abs(rel.accuracy[full] - rel.confidence[full])))


# --- out-of-distribution detection --------------------------------------------------------------


def ood_auroc(score_in, score_out) -> float:
    """AUROC of OOD (label 1) vs in-distribution (label 0); higher score = more likely OOD."""
    score_in, score_out = _f64(score_in).reshape(-1), _f64(score_out).reshape(-1)
    if score_in.numel() == 0 or score_out.numel() == 0:
        raise ValueError(
            "ood_auroc needs at least one in-distribution and one OOD score, "
            f"got {score_in.numel()} (score_in) and {score_out.numel()} (score_out)"
        )
    scores = torch.cat([score_in, score_out]).numpy()
    labels = np.concatenate([np.zeros(score_in.numel()), np.ones(score_out.numel())])
    from sklearn.metrics import roc_auc_score  # here: importing it costs ~1 s at start-up

    return float(roc_auc_score(labels, scores))
