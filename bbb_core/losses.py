"""The evidence lower bound (ELBO) and the per-minibatch KL weighting: the one place that owns
every reduction in BBB Explorer.

Blundell et al. (ICML 2015, eqs. 1, 8, 9) minimise the variational free energy
    F(D, theta) = KL[q(w | theta) || p(w)] - E_q[log p(D | w)]   (= -ELBO).
Split the N training points into M minibatches D_1..D_M. Minibatch i contributes
    F_i = kl_weight * pi_i * KL[q || p] + sum_{n in D_i} (1/S) sum_{s=1}^S -log p(y_n | x_n, w_s)
with S Monte Carlo samples w_s ~ q. The data term is a SUM over the minibatch's points (an
average over the S samples); the KL is the SUM over every weight; pi_i sums to 1 over an epoch's
minibatches (`kl_share`), so with kl_weight = 1 one epoch of F_i adds up to one unbiased estimate
of F. The optimiser minimises `loss = F_i / N`: dividing by the dataset size is a constant that
keeps learning rates comparable across dataset sizes and makes a KL-free network's loss the usual
mean NLL per point.

kl_weight = 1 is the true ELBO; 0 drops the prior (maximum likelihood with noisy weights); values
> 1 over-regularise ("beta" in beta-VAE terms).

KL shares pi_i for minibatch i = 1..M (`kl_share`, with 0-based `index = i - 1`):
- "uniform": 1 / M.
- "blundell": 2^(M - i) / (2^M - 1): early minibatches carry most of the KL (paper, eq. 9).
- "warmup": min(1, (epoch + 1) / warmup_epochs) / M: the KL fades in over the first epochs.

Maximum a posteriori ("map" networks, `map_loss`): one weight vector w and the log joint
    -log p(D, w) = -log p(w) - sum_n log p(y_n | x_n, w),  with  -log p(w) = sum_j -log p(w_j)
summed over EVERY weight and bias j. Minibatch i contributes
    F_i = pi_i * (-log p(w)) + sum_{n in D_i} -log p(y_n | x_n, w)
with the same shares pi_i as the KL (so one epoch charges the prior once) and no KL weight: the
prior enters at its true strength, and the optimiser again minimises `loss = F_i / N`. Under a
Gaussian prior N(0, sigma^2), -log p(w) = sum_j w_j^2 / (2 sigma^2) + const: L2 with coefficient
1 / (2 sigma^2) per weight in the summed loss, gradient w_j / sigma^2 (per point after the 1 / N:
weight decay 1 / (N sigma^2) in the usual "mean NLL + lambda / 2 ||w||^2" form). Under a Laplace
prior with scale b, -log p(w) = sum_j |w_j| / b + const: L1 with coefficient 1 / b. A maximum
likelihood network (kind "standard") is the same loss without the prior term.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch import Tensor

from .config import KL_SCHEDULES


def kl_share(schedule: str, index: int, n_batches: int, epoch: int = 0, warmup_epochs: int = 1):
    """pi_i: the share of the full KL charged to minibatch `index` (0-based) of `n_batches`."""
    if schedule not in KL_SCHEDULES:
        raise ValueError(f"kl_schedule must be one of {', '.join(KL_SCHEDULES)}; got {schedule!r}")
    if not 0 <= index < n_batches:
        raise ValueError(f"minibatch index must be in [0, {n_batches}); got {index}")
    if schedule == "uniform":
        return 1.0 / n_batches
    if schedule == "warmup":
        return min(1.0, (epoch + 1) / warmup_epochs) / n_batches
    # 2^(M-i) / (2^M - 1) = 2^-i / (1 - 2^-M), i = index + 1: stable for any M
    return math.ldexp(1.0, -(index + 1)) / -math.expm1(-n_batches * math.log(2))


@dataclass(frozen=True)
class ElboTerms:
    """One minibatch's objective and its parts (tensors; `.item()` them when reporting).

    Attributes:
        loss: F_i / N, the value to backpropagate.
        nll: the data term, NLL summed over the minibatch and averaged over the MC samples.
        kl: the full KL[q || p] (unweighted, not shared).
        kl_term: kl_weight * pi_i * KL, the KL as it enters F_i.
    """

    loss: Tensor
    nll: Tensor
    kl: Tensor
    kl_term: Tensor


def elbo_loss(
    nll_per_point: Tensor, kl: Tensor, *, n_data: int, kl_weight: float, kl_share: float
) -> ElboTerms:
    """F_i / N for one minibatch (see the module docstring).

    Args:
        nll_per_point: (S, B) negative log-likelihoods, one row per Monte Carlo sample.
        kl: the model's summed KL[q || p] (a scalar tensor).
        n_data: N, the number of training points.
        kl_weight: the global KL multiplier (1 = the true ELBO).
        kl_share: pi_i for this minibatch (`kl_share(...)`).
    """
    nll = nll_per_point.mean(dim=0).sum()
    kl_term = kl * (kl_weight * kl_share)
    return ElboTerms(loss=(nll + kl_term) / n_data, nll=nll, kl=kl, kl_term=kl_term)


def map_loss(
    nll_per_point: Tensor, neg_log_prior: Tensor, *, n_data: int, prior_share: float
) -> ElboTerms:
    """F_i / N of maximum a posteriori training for one minibatch (see the module docstring).

    Args:
        nll_per_point: (S, B) negative log-likelihoods (S = 1 for one weight vector).
        neg_log_prior: -log p(w) summed over every weight and bias (a scalar tensor).
        n_data: N, the number of training points.
        prior_share: pi_i for this minibatch (`kl_share(...)`), as for the KL.

    Returns `ElboTerms` with `kl` = -log p(w) and `kl_term` = pi_i * (-log p(w)): the prior's
    part of the log joint in the place the KL takes in the ELBO.
    """
    return elbo_loss(
        nll_per_point, neg_log_prior, n_data=n_data, kl_weight=1.0, kl_share=prior_share
    )
