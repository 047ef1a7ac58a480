"""Named teaching scenarios: each preset is a `RunConfig` (a variant of the dataset's defaults)
plus the baselines to show, and tells one story in one line.

`presets_for(task)` lists the presets a page offers; `PRESETS` maps each task to its presets by
slug. Slugs are what the URL stores (`?preset=no-kl`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from bbb_core import RunConfig, default_config


@dataclass(frozen=True)
class Preset:
    slug: str  # short id, used in the URL
    name: str  # the name shown in the picker
    story: str  # one line: what to look at
    task: str  # the page's task: "regression", "classification", "priors" or "images"
    config: RunConfig  # the settings it loads
    baselines: tuple[str, ...] = ()  # optional baselines switched on ("dropout", "ensemble")


def _with(name: str, *, prior=None, model=None, train=None, data=None) -> RunConfig:
    """`default_config(name)` with some fields of its parts replaced."""
    cfg = default_config(name)
    return replace(
        cfg,
        data=replace(cfg.data, **(data or {})),
        prior=replace(cfg.prior, **(prior or {})),
        model=replace(cfg.model, **(model or {})),
        train=replace(cfg.train, **(train or {})),
    )


_REGRESSION = (
    Preset(
        "no-kl",
        "no KL: overconfident",
        "With the KL weight at 0 nothing pulls the weights' spread towards the prior: sigma "
        "shrinks, the sampled functions agree and the band is as thin as the standard network's, "
        "even far from the data.",
        "regression",
        _with("blundell", train={"kl_weight": 0.0}),
    ),
    Preset(
        "kl-high",
        "KL weight too high: underfit",
        "A KL weight of 10 lets the prior outvote the data: the mean flattens out, misses the "
        "wiggles, and a wide band covers the data everywhere.",
        "regression",
        _with("blundell", train={"kl_weight": 10.0}),
    ),
    Preset(
        "narrow-prior",
        "prior too narrow",
        "A prior with sigma 0.05 says every weight is almost zero (strong L2): the network cannot "
        "bend, so it underfits, and the KL is large however the weights are set.",
        "regression",
        _with("blundell", prior={"sigma": 0.05}),
    ),
    Preset(
        "few-samples",
        "few MC samples: noisy band",
        "With 3 Monte Carlo samples the band is estimated from three sampled networks: its "
        "width is a rough guess that changes with the seed. Raise the prediction samples.",
        "regression",
        _with("blundell", train={"pred_samples": 3}),
    ),
    Preset(
        "gap",
        "in-between gap: what mean-field VI misses",
        "Two clusters with no data between them: the band of a mean-field BBB network with one "
        "hidden layer barely widens inside the gap, where nothing pins the function down (Foong "
        "et al. 2019). A deep ensemble is shown for comparison.",
        "regression",
        _with("gap", data={"gap": 2.0}, model={"hidden": (50,)}),
        baselines=("ensemble",),
    ),
    Preset(
        "hetero",
        "heteroscedastic noise: aleatoric vs epistemic",
        "The noise grows from left to right. The total band (aleatoric + epistemic) follows the "
        "noise; the darker epistemic band stays narrow where data is and widens only outside it.",
        "regression",
        _with("hetero", model={"noise_model": "hetero"}),
    ),
)

_CLASSIFICATION = (
    Preset(
        "no-kl",
        "no KL: overconfident",
        "With the KL weight at 0 the posterior collapses: the mutual information is near zero "
        "everywhere and BBB is as sure of itself far from the data as the standard network.",
        "classification",
        _with("moons", train={"kl_weight": 0.0}),
    ),
    Preset(
        "kl-high",
        "KL weight too high: underfit",
        "A KL weight of 10 lets the prior outvote the data: the boundary becomes too simple and "
        "the entropy stays high even on the training points.",
        "classification",
        _with("moons", train={"kl_weight": 10.0}),
    ),
    Preset(
        "narrow-prior",
        "prior too narrow",
        "A prior with sigma 0.05 pins the weights near zero: the boundary is nearly straight and "
        "the predictions are uncertain everywhere.",
        "classification",
        _with("moons", prior={"sigma": 0.05}),
    ),
    Preset(
        "few-samples",
        "few MC samples: noisy band",
        "With 3 Monte Carlo samples the maps of entropy and mutual information are speckled "
        "estimates. Raise the prediction samples to smooth them.",
        "classification",
        _with("moons", train={"pred_samples": 3}),
    ),
    Preset(
        "far-away",
        "far from the data: who knows it doesn't know",
        "Spirals with MC dropout and an ensemble: the standard network is confident on the far "
        "ring of grey crosses; the mutual information shows which methods notice it is far away.",
        "classification",
        _with("spirals"),
        baselines=("dropout", "ensemble"),
    ),
)

# the "Priors and weights" page: MLE, MAP and BBB under one prior (task "priors")
_PRIORS = (
    Preset(
        "weight-decay",
        "weight decay is a Gaussian prior",
        "MAP under a Gaussian prior N(0, 0.3²) is the standard network trained with the L2 "
        "penalty w² / (2 · 0.3²) on every weight: its weights gather in the prior's bell, while "
        "the maximum-likelihood weights spread wider. BBB keeps a whole Gaussian per weight.",
        "priors",
        _with("blundell", prior={"family": "gaussian", "sigma": 0.3}),
    ),
    Preset(
        "l1-sparse",
        "L1 makes weights exactly zero; a Laplace posterior does not",
        "Laplace prior, b = 0.2: MAP is L1, and almost every MAP weight ends at zero (the spike; "
        "|w| < 0.001 in the table) while a few carry the fit. BBB's means are pulled towards "
        "zero, but few reach it: a posterior mean averages over both signs.",
        "priors",
        _with("blundell", prior={"family": "laplace", "b": 0.2}),
    ),
    Preset(
        "narrow-prior",
        "a prior too narrow: every weight pinned to zero",
        "A Gaussian prior with sigma 0.05 says every weight is almost exactly zero: MAP and "
        "BBB's means collapse onto the spike and both predict a nearly flat line; only the "
        "maximum-likelihood network still follows the data.",
        "priors",
        _with("blundell", prior={"family": "gaussian", "sigma": 0.05}),
    ),
    Preset(
        "paper-mixture",
        "the paper's scale mixture",
        "Blundell et al.'s prior on the moons: N(0, 1) with weight 1/4 plus a narrow spike "
        "(sigma2 = e^-6). MAP sends most weights into the spike, a soft spike-and-slab; BBB's "
        "means stay spread, each with its sigma. Compare the pruning curves.",
        "priors",
        _with("moons", prior={"family": "mixture", "pi": 0.25, "sigma1": 1.0}),
    ),
)

# the images page (task "images"); the MNIST ones are offered only where the data is on disk
_NOISE = {"ood": "gaussian_noise"}  # the OOD set the page's histograms and metrics start on
_IMAGES = (
    Preset(
        "noise",
        "noise: the standard network is sure of itself",
        "Gaussian noise is no digit, yet the standard network gives many noise images one class "
        "with confidence: its entropy on noise overlaps the test digits'. BBB's entropy, and "
        "above all its mutual information, moves right on noise. MC dropout is shown too.",
        "images",
        _with("digits", data=_NOISE),
        baselines=("dropout",),
    ),
    Preset(
        "letters",
        "letters are not digits",
        "Letters are drawn with the same strokes as digits, so they are harder to flag than "
        "noise: compare the two networks' histograms on the letters and the AUROC table.",
        "images",
        _with("digits", data={"ood": "letters"}),
    ),
    Preset(
        "rotated",
        "a rotated digit: watch the confidence fall as it turns",
        'When training ends, turn a digit in "Rotate a digit": past about 60 degrees it stops '
        "looking like its class. The standard network jumps from one confident class to "
        "another; BBB's probabilities spread out and their error bars widen.",
        "images",
        _with("digits", data={"ood": "rotated"}),
    ),
    Preset(
        "cnn",
        "the convolutional BBB",
        "Two Bayesian 3x3 convolutions (16 and 32 channels) and a dense layer. A convolution "
        "shares its kernel across positions, so its outputs are correlated and the local "
        "reparameterisation would treat them as independent: its convolutions use flipout.",
        "images",
        _with("digits", data=_NOISE, model={"arch": "cnn", "hidden": (16, 32)}),
    ),
    Preset(
        "full-kl",
        "the full KL on little data: BBB turns under-confident",
        "KL weight 1 is the true ELBO. On 1,437 small images the KL of 26,000 weights outweighs "
        "the data: the posterior stays wide, and in the reliability diagram BBB's accuracy "
        "beats its confidence. The default counts the KL a tenth (a tempered posterior).",
        "images",
        _with("digits", data=_NOISE, train={"kl_weight": 1.0}, model={"rho0": -4.0}),
    ),
    Preset(
        "mnist-paper",
        "MNIST: the paper's 2 x 1200 network",
        "Blundell et al.'s MNIST network: two layers of 1200 units under the scale-mixture "
        "prior, 20 epochs on 60,000 images. It takes a long time on a CPU: the page says how "
        "long before it starts.",
        "images",
        _with("mnist", data=_NOISE, train={"pred_samples": 20}),
    ),
    Preset(
        "fashion",
        "Fashion-MNIST: clothes, and digits as the unfamiliar set",
        "The same network on clothes; MNIST's digits are the out-of-distribution set.",
        "images",
        _with("fashion_mnist", data={"ood": "other_dataset"}, train={"pred_samples": 20}),
    ),
)

PRESETS: dict[str, dict[str, Preset]] = {
    "regression": {p.slug: p for p in _REGRESSION},
    "classification": {p.slug: p for p in _CLASSIFICATION},
    "priors": {p.slug: p for p in _PRIORS},
    "images": {p.slug: p for p in _IMAGES},
}
# Stories about the model, not the data: on uploaded data these load their prior, network and
# training settings and keep the data (the others are about a toy set's shape).
ANY_DATA = frozenset({"no-kl", "kl-high", "narrow-prior", "few-samples"})


def presets_for(task: str) -> dict[str, Preset]:
    """The presets a page of `task` offers, by slug (empty for tasks without presets)."""
    return PRESETS.get(task, {})
