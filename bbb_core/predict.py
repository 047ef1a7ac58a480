"""The Monte Carlo predictive distribution and its split into aleatoric and epistemic parts.

With S posterior samples w_s ~ q(w):
- Regression (law of total variance): each sample gives a mean m_s(x) and a noise variance
  v_s(x). total var = E_s[v_s] (aleatoric: noise more data cannot remove) + Var_s[m_s]
  (epistemic: disagreement between plausible networks; Kendall and Gal, NeurIPS 2017).
- Classification (Houlsby et al. 2011; Depeweg et al. 2018): predictive entropy
  H[E_s p_s] (total) = E_s H[p_s] (expected entropy, aleatoric) + mutual information I[y; w]
  (epistemic).

`predictive(model, x, samples)` runs the S samples in batched calls (chunked over samples and
inputs to bound memory) under `torch.no_grad()` and returns a `RegressionPredictive` or a
`ClassificationPredictive`. The decompositions are pure tensor functions, tested on their own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .layers import prediction_sampling
from .models import CategoricalLikelihood
from .rng import Streams, streams_for, use

_Z = {0.5: 0.6744897501960817, 0.68: 0.994457883209753, 0.95: 1.959963984540054}
# bound on S_chunk * B_chunk * widest layer per batched call: 64 MiB of float32 activations on a
# CPU (cache-friendly), 256 MiB on a GPU (fewer, fuller launches)
_MAX_ELEMENTS = {"cpu": 2**24, "cuda": 2**26}


def entropy(probs: Tensor, dim: int = -1) -> Tensor:
    """Shannon entropy in nats along `dim` (0 log 0 = 0)."""
    return -(probs * torch.log(probs.clamp_min(1e-30))).sum(dim)


def decompose_classification(sample_probs: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(S, B, C) sample probabilities -> (total entropy, expected entropy, mutual information)."""
    total = entropy(sample_probs.mean(0))
    expected = entropy(sample_probs).mean(0)
    # where all samples agree exactly (a deterministic network) the MI is 0, not rounding noise
    same = (sample_probs == sample_probs[:1]).all(0).all(-1)
    expected = torch.where(same, total, expected)
    return total, expected, (total - expected).clamp_min(0.0)


def decompose_regression(means: Tensor, variances: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(S, B) sample means and noise variances -> (mean, aleatoric var, epistemic var)."""
    mean = means.mean(0)
    epistemic = means.var(0, unbiased=False) if means.shape[0] > 1 else torch.zeros_like(mean)
    return mean, variances.mean(0), epistemic


def normal_quantile(level: float) -> float:
    """z such that N(0, 1) has `level` probability in [-z, z]."""
    if level in _Z:
        return _Z[level]
    return math.sqrt(2.0) * torch.erfinv(torch.tensor(level, dtype=torch.float64)).item()


@dataclass
class RegressionPredictive:
    """Predictive moments at B inputs. Attributes are (B,) tensors; `draws` is (k, B)."""

    mean: Tensor
    aleatoric_var: Tensor
    epistemic_var: Tensor
    draws: Tensor  # the first few sampled functions' means

    @property
    def total_var(self) -> Tensor:
        return self.aleatoric_var + self.epistemic_var

    @property
    def total_std(self) -> Tensor:
        return self.total_var.sqrt()

    @property
    def aleatoric_std(self) -> Tensor:
        return self.aleatoric_var.sqrt()

    @property
    def epistemic_std(self) -> Tensor:
        return self.epistemic_var.sqrt()

    def interval(self, level: float = 0.95, part: str = "total") -> tuple[Tensor, Tensor]:
        """Central `level` interval (Gaussian approximation) of the total or epistemic part."""
        std = {"total": self.total_std, "epistemic": self.epistemic_std}[part]
        half = normal_quantile(level) * std
        return self.mean - half, self.mean + half


@dataclass
class ClassificationPredictive:
    """Predictive probabilities at B inputs and their uncertainty decomposition."""

    probs: Tensor  # (B, C) mean over samples
    probs_std: Tensor  # (B, C) spread of the class probabilities over samples
    entropy: Tensor  # (B,) total predictive entropy
    expected_entropy: Tensor  # (B,) aleatoric part
    mutual_info: Tensor  # (B,) epistemic part

    @property
    def confidence(self) -> Tensor:
        return self.probs.max(-1).values

    @property
    def prediction(self) -> Tensor:
        return self.probs.argmax(-1)


def _widest(model: nn.Module) -> int:
    widths = [getattr(m, "out_features", 0) for m in model.modules()]
    widths += [getattr(m, "out_channels", 0) * 64 for m in model.modules()]
    return max([1, *widths])


@torch.no_grad()
def sample_outputs(
    model: nn.Module,
    x: Tensor,
    samples: int,
    coherent: bool = True,
    rng: Streams | int | None = None,
) -> Tensor:
    """Raw outputs of `samples` posterior draws, (S, B, out), in memory-bounded batched calls.

    coherent: every draw is one sampled network over all of x (see `prediction_sampling`).
    rng: the random streams (or a seed) to draw from; None: the thread's current ones (`rng.use`).
    """
    if rng is not None:
        with use(streams_for(rng)):
            return sample_outputs(model, x, samples, coherent)
    was_training = model.training
    model.eval()
    if model.kind == "dropout":
        model.train()  # MC dropout: dropout stays on
    try:
        per_call = max(1, _MAX_ELEMENTS["cuda" if x.is_cuda else "cpu"] // _widest(model))
        if model.kind == "ensemble":  # each call returns all K members: chunk the inputs only
            samples = s_chunk = len(model.members)
        else:
            s_chunk = max(1, min(samples, per_call // max(1, x.shape[0])))
        b_chunk = max(1, per_call // s_chunk)
        rows = []
        with prediction_sampling(model, coherent):
            for b0 in range(0, x.shape[0], b_chunk):
                xb = x[b0 : b0 + b_chunk]
                cols = []
                for s0 in range(0, samples, s_chunk):
                    cols.append(model(xb, samples=min(s_chunk, samples - s0)))
                rows.append(torch.cat(cols, 0))
        return torch.cat(rows, 1)
    finally:
        model.train(was_training)


def predictive(
    model: nn.Module,
    x: Tensor,
    samples: int = 100,
    draws: int = 10,
    coherent: bool = True,
    rng: Streams | int | None = None,
):
    """The Monte Carlo predictive at inputs x with `samples` posterior samples.

    Returns a `ClassificationPredictive` for a categorical model, else a `RegressionPredictive`
    (with `draws` sampled functions). Ensembles use their K members as the samples.
    coherent=False lets each layer pick its cheapest exact sampler: the same per-input
    predictive, but sample s need not be one network across inputs (see `sample_outputs`).
    rng: the random streams (or a seed) to draw from; None: the thread's current ones.
    """
    if samples < 1:
        raise ValueError(f"samples must be >= 1; got {samples}")
    out = sample_outputs(model, x, samples, coherent, rng)
    likelihood = model.likelihood
    if isinstance(likelihood, CategoricalLikelihood):
        sample_probs = likelihood.probs(out)
        total, expected, mi = decompose_classification(sample_probs)
        spread = sample_probs.std(0, unbiased=False)
        return ClassificationPredictive(sample_probs.mean(0), spread, total, expected, mi)
    means, variances = likelihood.mean_var(out)
    mean, aleatoric, epistemic = decompose_regression(means, variances)
    return RegressionPredictive(mean, aleatoric, epistemic, means[:draws].clone())
