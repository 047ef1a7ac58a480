"""Analyses of trained image classifiers: what the images page and the MNIST report show.

Every function takes trained models (BBB or a baseline), a `Dataset` of images and a number of
Monte Carlo samples, and returns tensors on the CPU; nothing here draws or imports streamlit.

- `ood_scores(model, dataset, samples)`: predictive entropy and mutual information on the test
  set and on every OOD set of `dataset.ood`, with the AUROC of telling each OOD set from the test
  set by either score (Hendrycks & Gimpel, ICLR 2017; entropy = total uncertainty, mutual
  information = its epistemic part, Houlsby et al. 2011, Depeweg et al. 2018).
- `most_uncertain(...)`, `confidently_wrong(...)`: galleries of test images with their predictive
  class probabilities and the spread of those probabilities over the Monte Carlo samples.
- `rotation_sweep(model, image, angles, samples)`: the predictive of one image as it is rotated
  (the "rotate a digit" experiment of Gal & Ghahramani, ICML 2016, figure 4).
- `analyse(models, dataset, samples)`: all of the above that does not depend on a chosen image,
  once per model: test and OOD predictives, the metrics table, reliability data.
- `pruning_curves(model, dataset, fractions)`: test error against the fraction of weights removed
  by signal-to-noise and by magnitude (Blundell et al., ICML 2015, Table 2).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from . import metrics
from .data.base import Dataset
from .data.ood import rotate
from .evaluate import classification_metrics
from .predict import ClassificationPredictive, predictive
from .pruning import pruning_curve
from .rng import Streams, streams_for

# total predictive entropy, its epistemic part (mutual information) and its aleatoric part
UNCERTAINTY_SCORES = ("entropy", "mutual_info", "expected_entropy")
PRUNING_METHODS = {"snr": "signal-to-noise |mu|/sigma", "magnitude": "magnitude |mu|"}


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _to_cpu(pred: ClassificationPredictive) -> ClassificationPredictive:
    return ClassificationPredictive(**{k: t.cpu() for k, t in vars(pred).items()})


def predict_images(
    model: nn.Module, x: Tensor, samples: int, rng: Streams | int | None = None
) -> ClassificationPredictive:
    """The Monte Carlo predictive of images x (N, 1, H, W), computed on the model's device and
    returned on the CPU."""
    return _to_cpu(predictive(model, x.to(_device(model)), samples, rng=rng))


def _score(pred: ClassificationPredictive, by: str) -> Tensor:
    if by not in UNCERTAINTY_SCORES:
        raise ValueError(f"by must be one of {', '.join(UNCERTAINTY_SCORES)}; got {by!r}")
    return getattr(pred, by)


# --- out-of-distribution scores -----------------------------------------------------------------


@dataclass
class OodScores:
    """One model's uncertainty on the test set ("test") and on each OOD set.

    `entropy` and `mutual_info` map "test" and every OOD name to (N,) scores; `auroc_entropy`
    and `auroc_mi` map every OOD name to the AUROC of OOD (positive) against test by that score.
    """

    entropy: dict[str, Tensor]
    mutual_info: dict[str, Tensor]
    auroc_entropy: dict[str, float]
    auroc_mi: dict[str, float]


def scores_from_predictives(
    test: ClassificationPredictive, ood: dict[str, ClassificationPredictive]
) -> OodScores:
    """`OodScores` from already computed test and OOD predictives."""
    entropy = {"test": test.entropy} | {k: p.entropy for k, p in ood.items()}
    mi = {"test": test.mutual_info} | {k: p.mutual_info for k, p in ood.items()}
    return OodScores(
        entropy=entropy,
        mutual_info=mi,
        auroc_entropy={k: metrics.ood_auroc(test.entropy, p.entropy) for k, p in ood.items()},
        auroc_mi={k: metrics.ood_auroc(test.mutual_info, p.mutual_info) for k, p in ood.items()},
    )


def ood_scores(
    model: nn.Module, dataset: Dataset, samples: int, names: tuple[str, ...] | None = None
) -> OodScores:
    """Entropy and MI on the test set and on the OOD sets `names` (default: every one)."""
    names = tuple(dataset.ood) if names is None else names
    unknown = [n for n in names if n not in dataset.ood]
    if unknown:
        raise ValueError(f"unknown OOD set(s) {unknown}; this dataset has {tuple(dataset.ood)}")
    test = predict_images(model, dataset.x_test, samples)
    ood = {n: predict_images(model, dataset.ood[n], samples) for n in names}
    return scores_from_predictives(test, ood)


def auroc_table(scores: dict[str, OodScores]) -> dict[str, dict[str, float]]:
    """OOD set -> {"<model> (entropy)": AUROC, "<model> (MI)": AUROC, ...}: a table's rows."""
    rows: dict[str, dict[str, float]] = {}
    for model_name, s in scores.items():
        for ood in s.auroc_entropy:
            row = rows.setdefault(ood, {})
            row[f"{model_name} (entropy)"] = s.auroc_entropy[ood]
            row[f"{model_name} (MI)"] = s.auroc_mi[ood]
    return rows


# --- galleries ----------------------------------------------------------------------------------


@dataclass
class Gallery:
    """K chosen test images with their predictive; tensors indexed alike, first = most extreme."""

    indices: Tensor  # (K,) positions in the test set
    images: Tensor  # (K, 1, H, W) as the network saw them
    labels: Tensor  # (K,) true classes
    probs: Tensor  # (K, C) predictive class probabilities
    probs_std: Tensor  # (K, C) their spread over the Monte Carlo samples
    scores: Tensor  # (K,) what they were chosen by (entropy, MI or confidence)

    def titles(self, score_name: str) -> list[str]:
        """One short caption per image: true and predicted class and the score."""
        pred = self.probs.argmax(-1)
        return [
            f"#{int(i)}: true {int(t)}, pred {int(p)}, {score_name} {float(s):.2f}"
            for i, t, p, s in zip(self.indices, self.labels, pred, self.scores, strict=True)
        ]


def _gallery(pick: Tensor, scores: Tensor, x, y, pred: ClassificationPredictive) -> Gallery:
    return Gallery(
        indices=pick,
        images=x[pick].cpu(),
        labels=y[pick].cpu(),
        probs=pred.probs[pick].cpu(),
        probs_std=pred.probs_std[pick].cpu(),
        scores=scores[pick].cpu(),
    )


def most_uncertain(
    pred: ClassificationPredictive, x: Tensor, y: Tensor, k: int, by: str = "entropy"
) -> Gallery:
    """The k test images with the highest predictive entropy or mutual information (`by`)."""
    score = _score(pred, by).cpu()
    pick = score.argsort(descending=True, stable=True)[:k]
    return _gallery(pick, score, x, y, pred)


def confidently_wrong(pred: ClassificationPredictive, x: Tensor, y: Tensor, k: int) -> Gallery:
    """Up to k misclassified test images, the most confident (highest max probability) first."""
    confidence = pred.confidence.cpu()
    wrong = (pred.prediction.cpu() != y.cpu()).nonzero().flatten()
    pick = wrong[confidence[wrong].argsort(descending=True, stable=True)[:k]]
    return _gallery(pick, confidence, x, y, pred)


# --- rotation -----------------------------------------------------------------------------------


def rotation_angles(step: float = 10.0, max_degrees: float = 180.0) -> Tensor:
    """Angles 0, step, 2 step, ... up to and including max_degrees when it is a multiple."""
    if not step > 0:
        raise ValueError(f"step must be > 0; got {step}")
    n = int(max_degrees // step + 1e-9) + 1
    return torch.arange(n, dtype=torch.float32) * step


def background_value(dataset: Dataset) -> float:
    """The network input of a black pixel: 0 for the "unit" and "paper" scalings, negative for
    "standardize" (the darkest training pixel; every image set here has black pixels)."""
    return float(dataset.x_train.min())


def rotate_inputs(x: Tensor, degrees: float | Tensor, background: float = 0.0) -> Tensor:
    """Rotate preprocessed images (N, 1, H, W); pixels rotated in from outside are black.

    The pixel scalings are affine, p(v) = a v + background, so rotating x - background and adding
    it back equals preprocessing the rotated raw image.
    """
    return rotate(x - background, degrees) + background


@dataclass
class RotationSweep:
    """One image's predictive at each angle; tensors indexed by angle."""

    angles: Tensor  # (A,) degrees counter-clockwise
    images: Tensor  # (A, 1, H, W) the rotated inputs
    probs: Tensor  # (A, C) predictive class probabilities
    probs_std: Tensor  # (A, C) their spread over the Monte Carlo samples
    entropy: Tensor  # (A,)
    mutual_info: Tensor  # (A,)


def rotation_sweep(
    model: nn.Module,
    image: Tensor,
    angles: Tensor,
    samples: int,
    background: float = 0.0,
    rng: Streams | int | None = None,
) -> RotationSweep:
    """The predictive of `image` (1, H, W) rotated by each of `angles` (one batched call;
    `rng`: the random streams or seed of its draws, as for `predictive`)."""
    if image.dim() == 4:
        image = image.squeeze(0)
    if image.dim() != 3:
        raise ValueError(f"image must be (1, H, W); got {tuple(image.shape)}")
    angles = torch.as_tensor(angles, dtype=torch.float32).reshape(-1)
    batch = image.unsqueeze(0).expand(len(angles), *image.shape).cpu()
    x = rotate_inputs(batch, angles, background)  # (A, 1, H, W)
    pred = predict_images(model, x, samples, rng)
    return RotationSweep(angles, x, pred.probs, pred.probs_std, pred.entropy, pred.mutual_info)


# --- everything per model -----------------------------------------------------------------------


@dataclass
class ImageAnalysis:
    """Per-model results on one dataset, keyed by model name ("bbb", "standard", ...)."""

    test: dict[str, ClassificationPredictive]
    ood: dict[str, OodScores]
    metrics: dict[str, dict[str, float]]
    reliability: dict[str, metrics.Reliability]


def analyse(
    models: dict[str, nn.Module],
    dataset: Dataset,
    samples: int,
    primary_ood: str = "gaussian_noise",
    n_bins: int = 15,
    rng: Streams | int | None = None,
) -> ImageAnalysis:
    """Test and OOD predictives of every model, once each, and what follows from them.

    `metrics` holds accuracy, nll, brier, ece and the AUROCs on `primary_ood` (as
    `evaluate.evaluate` reports them), `reliability` the binned calibration data. `rng`: the
    random streams (or a seed) of every Monte Carlo draw, as for `predictive`.
    """
    streams = streams_for(rng)
    tests, oods, table, rel = {}, {}, {}, {}
    for name, model in models.items():
        test = predict_images(model, dataset.x_test, samples, streams)
        ood = {k: predict_images(model, v, samples, streams) for k, v in dataset.ood.items()}
        tests[name] = test
        oods[name] = scores_from_predictives(test, ood)
        table[name] = classification_metrics(test, dataset.y_test, ood.get(primary_ood))
        rel[name] = metrics.reliability(test.probs, dataset.y_test, n_bins)
    return ImageAnalysis(tests, oods, table, rel)


def pruning_curves(model: nn.Module, dataset: Dataset, fractions: list[float]) -> dict[str, Tensor]:
    """Test error (%) against the fraction removed, by signal-to-noise and by magnitude."""
    device = _device(model)
    x, y = dataset.x_test.to(device), dataset.y_test.to(device)
    return {
        label: pruning_curve(model, x, y, fractions, score).cpu()
        for score, label in PRUNING_METHODS.items()
    }
