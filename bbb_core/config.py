"""The frozen configuration tree of a BBB Explorer run.

One `RunConfig` holds everything that determines a run: the data (`DataConfig`), the prior
(`PriorConfig`), the network (`ModelConfig`), the optimisation and the ELBO weighting
(`TrainConfig`), the seed and the device. Every dataclass is frozen; make variants with
`dataclasses.replace`. `validate()` raises a `ValueError` naming the field and its allowed range.
Every number's range is a row of `LIMITS` (what a 2-core, 24 GB machine can hold and train; see
docs/limits.md), and so are the sizes derived from several fields: the network's weights, the
weights sampled per step and one step's activations (`network_size`).
`to_dict` / `from_dict` (and the JSON helpers) round-trip a config exactly, so a saved run can be
rebuilt from the config stored beside it.

`default_config(name)` gives the settings that train a dataset in seconds on two CPU cores.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass, field, fields, replace
from typing import Any

REGRESSION_DATASETS = ("blundell", "cubic", "gap", "hetero")
CLASSIFICATION_DATASETS = ("moons", "circles", "spirals", "xor")
IMAGE_DATASETS = ("digits", "mnist", "fashion_mnist")
DATASETS = REGRESSION_DATASETS + CLASSIFICATION_DATASETS + IMAGE_DATASETS
# your own data, read from a CSV file (bbb_core.data.tabular): task -> DataConfig.name
TABULAR_DATASETS = {"regression": "csv_regression", "classification": "csv_classification"}
OOD_SETS = (
    "gaussian_noise",
    "uniform_noise",
    "inverted",
    "rotated",
    "letters",
    "photos",
    "other_dataset",
)
PREPROCESSING = ("unit", "paper", "standardize")
PRIORS = ("gaussian", "laplace", "mixture")
MODELS = ("bbb", "standard", "dropout", "ensemble", "map")
ARCHITECTURES = ("mlp", "cnn")
ESTIMATORS = ("reparam", "local", "flipout")
NOISE_MODELS = ("fixed", "learned", "hetero")
KL_SCHEDULES = ("uniform", "blundell", "warmup")
LR_SCHEDULES = ("constant", "cosine")
COMPILE_MODES = ("off", "default", "reduce-overhead")
DEVICES = ("auto", "cpu", "cuda")
# what `python -m bbb_core bench` measures
BENCH_PARTS = ("train_step", "toy_step", "predict", "toy")
MATMUL_PRECISIONS = ("highest", "high", "medium")  # torch.set_float32_matmul_precision


def _number(x: float) -> str:
    """4294967295 and 100000 in full, 1e-06 and 0.5 as `:g` writes them."""
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e16 else f"{x:g}"


@dataclass(frozen=True)
class Limit:
    """The allowed range of one setting: [low, high], either end open, integers or numbers."""

    low: float
    high: float
    integer: bool = False  # whole numbers only (a bool is not one)
    open_low: bool = False  # low itself is not allowed
    open_high: bool = False  # high itself is not allowed

    def allowed(self) -> str:
        """The range as the error messages say it, e.g. "an integer in [2, 100000]"."""
        kind = "an integer" if self.integer else "a number"
        low, high = ("(" if self.open_low else "["), (")" if self.open_high else "]")
        return f"{kind} in {low}{_number(self.low)}, {_number(self.high)}{high}"

    def __contains__(self, value: object) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.integer and not isinstance(value, int):
            return False
        if isinstance(value, float) and not math.isfinite(value):
            return False  # ints never are: math.isfinite(10**400) would overflow
        above = value > self.low if self.open_low else value >= self.low
        below = value < self.high if self.open_high else value <= self.high
        return above and below


_PRIOR_SCALE = Limit(1e-6, 1e3)  # prior std / scale: log(scale) and 1 / scale^2 stay finite
# Every number a config may hold, keyed by its field ("len(model.hidden)": how many layers), and
# the sizes derived from several fields (the last four rows, checked by `RunConfig.validate`).
# The ranges are what a 2-core, 24 GB machine can hold and train; each row says why.
LIMITS: dict[str, Limit] = {
    # the toy generators draw n_train points; images keep a subset of n_train (60,000 in MNIST)
    "data.n_train": Limit(2, 100_000, integer=True),  # 2: a std needs two points
    "data.noise": Limit(0, 100),  # beyond ~100 every set is pure noise; 1e300 overflows
    "data.gap": Limit(0, 10),  # the "gap" set's clusters are 1.5 wide: 10 dwarfs them already
    "prior.sigma": _PRIOR_SCALE,
    "prior.b": _PRIOR_SCALE,
    "prior.pi": Limit(0, 1, open_low=True, open_high=True),  # a mixture weight
    "prior.sigma1": _PRIOR_SCALE,
    "prior.sigma2": _PRIOR_SCALE,  # the app's narrowest, e^-10 ~ 4.5e-5, is well inside
    "len(model.hidden)": Limit(1, 8, integer=True),  # deeper MLPs do not train in minutes here
    "model.hidden[i]": Limit(1, 4096, integer=True),  # one layer's width (CNN: channels)
    "model.rho0": Limit(-20, 10),  # sigma0 = softplus(rho0) from 2e-9 to 10
    "model.noise_std": Limit(1e-6, 1e3),  # its square, the variance, stays a normal float32
    "model.dropout": Limit(0, 1, open_high=True),  # a drop probability; 1 drops everything
    "model.ensemble_size": Limit(1, 20, integer=True),  # 20 networks trained side by side
    "model.weight_decay": Limit(0, 100),  # an L2 penalty; far above 1 it zeroes every weight
    "train.epochs": Limit(1, 100_000, integer=True),  # hours of full-batch toy training
    "train.lr": Limit(0, 10, open_low=True),  # Adam moves each weight about lr per step
    "train.batch_size": Limit(1, 100_000, integer=True),  # at most the largest training set
    "train.kl_weight": Limit(0, 1000),  # 1 = the ELBO; 1000 already ignores the data
    "train.warmup_epochs": Limit(1, 100_000, integer=True),  # as train.epochs
    "train.train_samples": Limit(1, 64, integer=True),  # each sample is one more forward pass
    # the predictive holds (samples, inputs, classes) floats: 1000 x 10,000 MNIST test images
    # x 10 classes is 400 MB, and its entropy split a few more such tensors
    "train.pred_samples": Limit(1, 1000, integer=True),
    "seed": Limit(0, 2**32 - 1, integer=True),  # what every random generator accepts
    # weights and biases of one network: BBB keeps ~60 bytes a weight while training (mean,
    # rho, their gradients and Adam moments), 1.2 GB at the top; MNIST's 784-1200-1200-10 is 2.4 M
    "network.weights": Limit(1, 20_000_000, integer=True),
    # all members of an ensemble (standard networks, ~40 bytes a weight while training: 4 GB)
    "ensemble.weights": Limit(1, 100_000_000, integer=True),
    # BBB "reparam" and "flipout" draw a weight tensor per training sample and keep it for the
    # backward pass: ~14 bytes a weight a sample, 3.5 GB at the top
    "train.sampled_weights": Limit(1, 250_000_000, integer=True),
    # one training step's activations: rows x units per row (MLP: the widths; CNN: channels x
    # pixels) x samples (BBB, dropout) or members (ensemble). The local reparameterisation keeps
    # ~45 bytes a unit for the backward pass: 9 GB at the top
    "train.activations": Limit(1, 200_000_000, integer=True),
}


def _fail(field_name: str, allowed: str, value: Any) -> None:
    raise ValueError(f"{field_name} must be {allowed}; got {value!r}")


def _fail_size(field_name: str, allowed: str, got: str) -> None:
    raise ValueError(f"{field_name} must be {allowed}; got {got}")


def _check_choice(field_name: str, value: Any, choices: tuple[str, ...]) -> None:
    if not isinstance(value, str) or value not in choices:
        _fail(field_name, "one of " + ", ".join(choices), value)


def _check(field_name: str, value: Any, key: str | None = None) -> None:
    """Raise ValueError unless `value` lies within LIMITS[key or field_name]."""
    limit = LIMITS[key or field_name]
    if value not in limit:
        _fail(field_name, limit.allowed(), value)


def check_hidden(hidden: Any, field_name: str = "model.hidden") -> None:
    """Raise ValueError unless `hidden` is a tuple of 1 to 8 widths, each in [1, 4096]."""
    depth = LIMITS["len(model.hidden)"]
    if not isinstance(hidden, tuple) or len(hidden) not in depth:
        n = f"{_number(depth.low)} to {_number(depth.high)}"
        _fail(field_name, f"a list of {n} layer widths", hidden)
    for width in hidden:
        _check(field_name, width, "model.hidden[i]")


@dataclass(frozen=True)
class DataConfig:
    name: str = "blundell"  # one of DATASETS: toy regression, 2-D classification or images
    n_train: int | None = None  # training points; None = the dataset's own default
    noise: float | None = None  # regression noise std / classification jitter; None = default
    gap: float = 1.0  # "gap" set only: width of the empty interval between the two clusters
    ood: str | None = None  # images only: OOD set (OOD_SETS); None = gaussian_noise
    preprocessing: str = "unit"  # images: "unit" x/255, "paper" x/126, "standardize" z-score
    # images: cache directory; None = $BBB_DATA_DIR or ~/.cache/bbb_explorer
    data_dir: str | None = None
    # your own data (TABULAR_DATASETS): which file, columns and split, as "csv:<16 hex digits>"
    # (`tabular.source_id`); the data itself never enters the config
    source: str | None = None

    def validate(self) -> None:
        _check_choice("data.name", self.name, DATASETS + tuple(TABULAR_DATASETS.values()))
        if self.source is not None and not (
            isinstance(self.source, str) and re.fullmatch(r"csv:[0-9a-f]{16}", self.source)
        ):
            _fail("data.source", "None or 'csv:' and 16 hex digits", self.source)
        if self.n_train is not None:
            _check("data.n_train", self.n_train)
        if self.noise is not None:
            _check("data.noise", self.noise)
        _check("data.gap", self.gap)
        if self.ood is not None:
            _check_choice("data.ood", self.ood, OOD_SETS)
        _check_choice("data.preprocessing", self.preprocessing, PREPROCESSING)
        if self.data_dir is not None and not isinstance(self.data_dir, str):
            _fail("data.data_dir", "a directory path or None", self.data_dir)

    @property
    def task(self) -> str:
        """'regression' or 'classification' (images are classification)."""
        regression = (*REGRESSION_DATASETS, TABULAR_DATASETS["regression"])
        return "regression" if self.name in regression else "classification"


@dataclass(frozen=True)
class PriorConfig:
    family: str = "gaussian"  # "gaussian" (~ L2), "laplace" (~ L1), "mixture" (Blundell's)
    sigma: float = 1.0  # gaussian: prior std of every weight
    b: float = 1.0  # laplace: scale b, density exp(-|w| / b) / (2 b)
    pi: float = 0.25  # mixture: weight of the wide component N(0, sigma1^2)
    sigma1: float = 1.0  # mixture: std of the wide component (Blundell: e^0)
    sigma2: float = math.exp(-6)  # mixture: std of the narrow component (Blundell: e^-6)

    def validate(self) -> None:
        _check_choice("prior.family", self.family, PRIORS)
        for name in ("sigma", "b", "pi", "sigma1", "sigma2"):
            _check(f"prior.{name}", getattr(self, name))


@dataclass(frozen=True)
class ModelConfig:
    kind: str = "bbb"  # "bbb", or a baseline: "standard", "dropout" (MC dropout), "ensemble"
    # or "map": a standard network trained on NLL + (-log p(w)) under the configured prior
    arch: str = "mlp"  # "mlp", or "cnn" for images
    hidden: tuple[int, ...] = (32, 32)  # hidden widths (MLP) / channels (CNN)
    activation: str = "relu"  # "relu" or "tanh"
    estimator: str = "local"  # bbb gradient estimator: "reparam", "local" or "flipout"
    rho0: float = -4.0  # initial rho of every weight; sigma0 = softplus(rho0) (~0.018)
    noise_model: str = "learned"  # regression: "fixed", "learned" (homoscedastic) or "hetero"
    noise_std: float = 0.1  # regression: the fixed noise std, or the learned one's start
    dropout: float = 0.1  # dropout: drop probability, used in training and prediction
    ensemble_size: int = 5  # ensemble: number of independently initialised members
    weight_decay: float = 0.0  # standard / dropout / ensemble: L2 penalty (Adam weight_decay)

    def validate(self) -> None:
        _check_choice("model.kind", self.kind, MODELS)
        _check_choice("model.arch", self.arch, ARCHITECTURES)
        check_hidden(self.hidden)
        _check_choice("model.activation", self.activation, ("relu", "tanh"))
        _check_choice("model.estimator", self.estimator, ESTIMATORS)
        _check("model.rho0", self.rho0)
        _check_choice("model.noise_model", self.noise_model, NOISE_MODELS)
        for name in ("noise_std", "dropout", "ensemble_size", "weight_decay"):
            _check(f"model.{name}", getattr(self, name))


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 600  # passes over the training set (full batch: one step each)
    lr: float = 0.02  # Adam learning rate
    batch_size: int | None = None  # minibatch size; None = full batch
    kl_weight: float = 1.0  # 1 = the true ELBO, 0 = ignore the prior, > 1 over-regularises
    kl_schedule: str = "uniform"  # per-minibatch KL share: "uniform", "blundell", "warmup"
    warmup_epochs: int = 10  # "warmup": epochs over which the KL share ramps linearly to 1/M
    train_samples: int = 1  # Monte Carlo samples averaged in the data term per step
    pred_samples: int = 100  # Monte Carlo samples for the predictive distribution
    lr_schedule: str = "constant"  # "constant", or "cosine": lr decays to 0 over `epochs`
    # torch.compile the step's forward and loss: "off", "default" (fused kernels) or
    # "reduce-overhead" (also CUDA graphs). Pays on a GPU; costs tens of seconds of compiling.
    compile: str = "off"

    def validate(self) -> None:
        _check("train.epochs", self.epochs)
        _check("train.lr", self.lr)
        if self.batch_size is not None:
            _check("train.batch_size", self.batch_size)
        _check("train.kl_weight", self.kl_weight)
        _check_choice("train.kl_schedule", self.kl_schedule, KL_SCHEDULES)
        for name in ("warmup_epochs", "train_samples", "pred_samples"):
            _check(f"train.{name}", getattr(self, name))
        _check_choice("train.lr_schedule", self.lr_schedule, LR_SCHEDULES)
        _check_choice("train.compile", self.compile, COMPILE_MODES)


IMAGE_SHAPES = {"digits": (1, 8, 8), "mnist": (1, 28, 28), "fashion_mnist": (1, 28, 28)}
IMAGE_TRAIN_SIZES = {"digits": 1437, "mnist": 60_000, "fashion_mnist": 60_000}  # full sets


def input_shape(name: str) -> tuple[int, ...]:
    """The shape of one input of dataset `name`: (1,), (2,) or (1, H, W)."""
    if name in IMAGE_SHAPES:
        return IMAGE_SHAPES[name]
    return (1,) if name in (*REGRESSION_DATASETS, TABULAR_DATASETS["regression"]) else (2,)


def n_outputs(data: DataConfig, model: ModelConfig) -> int:
    """Output units: 10 classes, 2 (2-D sets), 2 (regression mean and log-variance) or 1."""
    if data.name in IMAGE_DATASETS:
        return 10
    if data.name == TABULAR_DATASETS["classification"]:  # sized for the most classes allowed
        return 10
    if data.name in CLASSIFICATION_DATASETS:
        return 2
    return 2 if model.noise_model == "hetero" else 1


def network_size(
    arch: str, hidden: tuple[int, ...], shape: tuple[int, ...], n_out: int
) -> tuple[int, int]:
    """(weights and biases, activation units per input) of one network `models.build_model`
    makes: an MLP, or 3x3 convolutions each followed by a 2x2 max-pool while the image is at
    least 4 pixels wide, then a linear layer. Units count every layer's outputs (CNN: channels
    x pixels before pooling)."""
    weights = units = 0
    if arch == "cnn":
        channels, height, width = shape
        for c in hidden:
            weights += channels * c * 9 + c
            units += c * height * width
            if min(height, width) >= 4:
                height, width = height // 2, width // 2
            channels = c
        n_in = channels * height * width
    else:
        n_in = math.prod(shape)
        for width in hidden:
            weights += n_in * width + width
            units += width
            n_in = width
    return weights + n_in * n_out + n_out, units + n_out


def _rows_per_step(cfg: RunConfig) -> int:
    """Training inputs in one step: the batch, or the whole training set (full batch)."""
    n = cfg.data.n_train
    if n is None and cfg.data.name in IMAGE_TRAIN_SIZES:
        n = IMAGE_TRAIN_SIZES[cfg.data.name]
    elif n is None and cfg.data.name in TABULAR_DATASETS.values():  # the largest file allowed
        n = int(LIMITS["data.n_train"].high)
    elif n is None:
        from .data.toy import TOY_DEFAULTS  # imported here: the toy module imports this one

        n = TOY_DEFAULTS[cfg.data.name][0]
    batch = cfg.train.batch_size
    return n if batch is None else min(batch, n)


def _check_size(cfg: RunConfig) -> None:
    """Raise ValueError if the network, its samples or one step's activations exceed LIMITS."""
    m, data = cfg.model, cfg.data
    weights, units = network_size(m.arch, m.hidden, input_shape(data.name), n_outputs(data, m))
    where = f"hidden {m.hidden} on {data.name}"
    if weights not in LIMITS["network.weights"]:
        top = LIMITS["network.weights"].high
        _fail_size(
            "model.hidden", f"a network of at most {_number(top)} weights", f"{weights} ({where})"
        )
    members = m.ensemble_size if m.kind == "ensemble" else 1
    if members * weights not in LIMITS["ensemble.weights"]:
        top = LIMITS["ensemble.weights"].high
        got = f"{members} x {weights} = {members * weights}"
        _fail_size("model.ensemble_size", f"at most {_number(top)} weights in all members", got)
    samples = cfg.train.train_samples if m.kind in ("bbb", "dropout") else 1
    if m.kind == "bbb" and m.estimator != "local":
        if samples * weights not in LIMITS["train.sampled_weights"]:
            top = LIMITS["train.sampled_weights"].high
            got = f"{samples} x {weights} = {samples * weights} ({where})"
            _fail_size("train.train_samples", f"at most {_number(top)} sampled weights a step", got)
    rows, copies = _rows_per_step(cfg), samples * members
    if rows * units * copies not in LIMITS["train.activations"]:
        top = LIMITS["train.activations"].high
        got = f"{rows} x {units} x {copies} = {rows * units * copies} ({where})"
        allowed = (
            f"small enough for at most {_number(top)} activations a step (rows x units x copies)"
        )
        _fail_size("train.batch_size", allowed, got)


@dataclass(frozen=True)
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)  # what to learn from
    prior: PriorConfig = field(default_factory=PriorConfig)  # p(w) of the Bayesian layers
    model: ModelConfig = field(default_factory=ModelConfig)  # the network and likelihood
    train: TrainConfig = field(default_factory=TrainConfig)  # optimisation and ELBO weighting
    seed: int = 0  # seeds data generation, initialisation and Monte Carlo sampling
    device: str = "auto"  # "auto" (cuda when available), "cpu" or "cuda"

    def validate(self) -> RunConfig:
        """Check every field; raise ValueError naming the first bad one. Returns self."""
        self.data.validate()
        self.prior.validate()
        self.model.validate()
        self.train.validate()
        _check("seed", self.seed)
        _check_choice("device", self.device, DEVICES)
        if self.model.arch == "cnn" and self.data.name not in IMAGE_DATASETS:
            _fail("model.arch", "'mlp' for non-image datasets", self.model.arch)
        _check_size(self)
        return self  # model.noise_model is ignored for classification (no noise head)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        """Rebuild from `to_dict` output; unknown keys or a malformed structure raise ValueError
        naming the field. The values are not checked: call `validate()`."""
        parts = {
            "data": DataConfig,
            "prior": PriorConfig,
            "model": ModelConfig,
            "train": TrainConfig,
        }
        if not isinstance(d, dict):
            raise ValueError(f"a config must be a JSON object; got {type(d).__name__}")
        kwargs: dict[str, Any] = {}
        top = {f.name for f in fields(cls)}
        for key, value in d.items():
            if key not in top:
                raise ValueError(f"unknown config field {key!r}")
            if key in parts:
                sub = parts[key]
                if not isinstance(value, dict):
                    raise ValueError(f"{key} must be a JSON object; got {value!r}")
                names = {f.name for f in fields(sub)}
                unknown = set(value) - names
                if unknown:
                    raise ValueError(f"unknown config field(s) {key}.{sorted(unknown)}")
                value = dict(value)
                if isinstance(value.get("hidden"), list):  # JSON has no tuples
                    value["hidden"] = tuple(value["hidden"])
                kwargs[key] = sub(**value)
            else:
                kwargs[key] = value
        return cls(**kwargs)

    @classmethod
    def from_json(cls, text: str) -> RunConfig:
        return cls.from_dict(json.loads(text))


def steps_per_epoch(n_train: int, batch_size: int | None) -> int:
    """Optimiser steps in one epoch over n_train points (full batch: one)."""
    return 1 if batch_size is None or batch_size >= n_train else math.ceil(n_train / batch_size)


def default_config(name: str = "blundell", **overrides: Any) -> RunConfig:
    """Settings that train dataset `name` in seconds on two CPU cores.

    `overrides` replace top-level fields (`seed=1`, `device="cpu"`, `model=ModelConfig(...)`).
    """
    _check_choice("data.name", name, DATASETS + tuple(TABULAR_DATASETS.values()))
    data = DataConfig(name=name)
    model = ModelConfig()
    train = TrainConfig()
    if name == "cubic":  # 20 points: the known noise std 3, one hidden layer as in PBP
        model = replace(model, hidden=(50,), noise_model="fixed", noise_std=3.0)
    elif name == "gap":
        model = replace(model, noise_model="fixed", noise_std=0.1)
    elif name == "hetero":
        model = replace(model, noise_model="hetero")
    elif name in (*CLASSIFICATION_DATASETS, TABULAR_DATASETS["classification"]):
        train = replace(train, epochs=500)
    elif name == "digits":  # KL weight and rho0 chosen by measurement: docs/digits_defaults.md
        model = replace(model, hidden=(128, 128), rho0=-7.0)
        train = replace(train, epochs=60, batch_size=128, lr=3e-3, kl_weight=0.1)
    elif name in ("mnist", "fashion_mnist"):  # Blundell's 2 x 1200 with the scale-mixture prior
        model = replace(model, hidden=(1200, 1200))
        train = replace(train, epochs=20, batch_size=128, lr=1e-3)
        return RunConfig(data, PriorConfig(family="mixture"), model, train, **overrides)
    return RunConfig(data=data, model=model, train=train, **overrides)
