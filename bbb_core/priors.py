"""Priors p(w) over the weights of a Bayesian layer.

- `GaussianPrior(sigma)`: N(0, sigma^2) per weight, the Bayesian analogue of L2 weight decay; the
  KL to a Gaussian posterior has a closed form.
- `LaplacePrior(b)`: density exp(-|w| / b) / (2 b), the analogue of L1; its KL is estimated by
  Monte Carlo.
- `ScaleMixturePrior(pi, sigma1, sigma2)`: pi N(0, sigma1^2) + (1 - pi) N(0, sigma2^2), Blundell et
  al.'s prior (ICML 2015, eq. 7); the log density uses `torch.logsumexp`, so it stays finite for
  large |w| where the naive log of the summed densities underflows to -inf.

Every prior gives an elementwise `log_prob(w)` (for Monte Carlo KL and for plotting) and
`kl_closed_form(mu, sigma)` that returns the summed KL[q || p] of a factorised Gaussian posterior,
or None when no closed form exists. The direction is always KL[q || p] (posterior to prior).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .config import PriorConfig

_LOG_2PI = math.log(2 * math.pi)


def gaussian_log_prob(w: Tensor, mu: Tensor | float, sigma: Tensor | float) -> Tensor:
    """Elementwise log N(w; mu, sigma^2)."""
    sigma = torch.as_tensor(sigma, dtype=w.dtype, device=w.device)
    return -0.5 * _LOG_2PI - torch.log(sigma) - 0.5 * ((w - mu) / sigma) ** 2


def kl_gaussian(mu: Tensor, sigma: Tensor, prior_sigma: float) -> Tensor:
    """Summed KL[N(mu, sigma^2) || N(0, prior_sigma^2)] over all elements (a scalar).

    Per element: log(s_p / s_q) + (s_q^2 + mu^2) / (2 s_p^2) - 1/2, summed term by term (two dot
    products, one sum of logs: no temporaries the size of mu). The log is taken of sigma, not of
    the squared ratio, which underflows to 0 (KL = inf) for sigma < ~1e-23 in float32.
    """
    sigma, mu = sigma.reshape(-1), mu.reshape(-1)
    quad = torch.dot(sigma, sigma) + torch.dot(mu, mu)
    const = mu.numel() * (math.log(prior_sigma) - 0.5)
    return quad * (0.5 / prior_sigma**2) - torch.log(sigma).sum() + const


class Prior:
    """Base class: a fixed, zero-mean, factorised prior over weights."""

    def log_prob(self, w: Tensor) -> Tensor:
        raise NotImplementedError

    def kl_closed_form(self, mu: Tensor, sigma: Tensor) -> Tensor | None:
        """Summed KL[q || p] for q = N(mu, sigma^2), or None if there is no closed form."""
        return None

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v:.4g}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class GaussianPrior(Prior):
    """p(w) = N(0, sigma^2): maximum a posteriori under it is L2 weight decay 1 / (2 sigma^2)."""

    def __init__(self, sigma: float = 1.0) -> None:
        self.sigma = float(sigma)

    def log_prob(self, w: Tensor) -> Tensor:
        return gaussian_log_prob(w, 0.0, self.sigma)

    def kl_closed_form(self, mu: Tensor, sigma: Tensor) -> Tensor:
        return kl_gaussian(mu, sigma, self.sigma)


class LaplacePrior(Prior):
    """p(w) = exp(-|w| / b) / (2 b): maximum a posteriori under it is L1 regularisation."""

    def __init__(self, b: float = 1.0) -> None:
        self.b = float(b)

    def log_prob(self, w: Tensor) -> Tensor:
        return -math.log(2 * self.b) - w.abs() / self.b


class ScaleMixturePrior(Prior):
    """p(w) = pi N(0, sigma1^2) + (1 - pi) N(0, sigma2^2) (Blundell et al. 2015, eq. 7)."""

    def __init__(self, pi: float = 0.25, sigma1: float = 1.0, sigma2: float = math.exp(-6)):
        self.pi = float(pi)
        self.sigma1 = float(sigma1)
        self.sigma2 = float(sigma2)

    def log_prob(self, w: Tensor) -> Tensor:
        a = math.log(self.pi) + gaussian_log_prob(w, 0.0, self.sigma1)
        b = math.log1p(-self.pi) + gaussian_log_prob(w, 0.0, self.sigma2)
        return torch.logaddexp(a, b)


def build_prior(cfg: PriorConfig) -> Prior:
    """The prior named by `cfg.family`, with its parameters."""
    cfg.validate()
    if cfg.family == "gaussian":
        return GaussianPrior(cfg.sigma)
    if cfg.family == "laplace":
        return LaplacePrior(cfg.b)
    return ScaleMixturePrior(cfg.pi, cfg.sigma1, cfg.sigma2)
