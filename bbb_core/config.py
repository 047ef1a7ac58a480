"""The frozen configuration tree of a BBB Explorer run.

One `RunConfig` holds everything that determines a run: the data (`DataConfig`), the prior
(`PriorConfig`), the network (`ModelConfig`), the optimisation and the ELBO weighting
(`TrainConfig`), the seed and the device. Every dataclass is frozen; make variants with
`dataclasses.replace`. `validate()` raises a `ValueError` naming the field and its allowed range;
`to_dict` / `from_dict` (and the JSON helpers) round-trip a config exactly, so a saved run can be
rebuilt from the config stored beside it.

`default_config(name)` gives the settings that train a dataset in seconds on two CPU cores.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field, fields, replace
from typing import Any

REGRESSION_DATASETS = ("blundell", "cubic", "gap", "hetero")
CLASSIFICATION_DATASETS = ("moons", "circles", "spirals", "xor")
IMAGE_DATASETS = ("digits", "mnist", "fashion_mnist")
DATASETS = REGRESSION_DATASETS + CLASSIFICATION_DATASETS + IMAGE_DATASETS
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
MODELS = ("bbb", "standard", "dropout", "ensemble")
ARCHITECTURES = ("mlp", "cnn")
ESTIMATORS = ("reparam", "local", "flipout")
NOISE_MODELS = ("fixed", "learned", "hetero")
KL_SCHEDULES = ("uniform", "blundell", "warmup")
LR_SCHEDULES = ("constant", "cosine")
COMPILE_MODES = ("off", "default", "reduce-overhead")
DEVICES = ("auto", "cpu", "cuda")
BENCH_PARTS = ("train_step", "predict", "toy")  # what `python -m bbb_core bench` measures


def _fail(field_name: str, allowed: str, value: Any) -> None:
    raise ValueError(f"{field_name} must be {allowed}; got {value!r}")


def _check_choice(field_name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        _fail(field_name, "one of " + ", ".join(choices), value)


def _check_positive(field_name: str, value: Any, *, allow_zero: bool = False) -> None:
    ok = isinstance(value, (int, float)) and math.isfinite(value)
    ok = ok and (value >= 0 if allow_zero else value > 0)
    if not ok:
        _fail(field_name, ">= 0" if allow_zero else "> 0", value)


def _check_int(field_name: str, value: Any, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        _fail(field_name, f"an integer >= {minimum}", value)


@dataclass(frozen=True)
class DataConfig:
    name: str = "blundell"  # one of DATASETS: toy regression, 2-D classification or images
    n_train: int | None = None  # training points; None = the dataset's own default
    noise: float | None = None  # regression noise std / classification jitter; None = default
    gap: float = 1.0  # "gap" set only: width of the empty interval between the two clusters
    ood: str | None = None  # images only: OOD set (OOD_SETS); None = gaussian_noise
    preprocessing: str = "unit"  # images: "unit" x/255, "paper" x/126, "standardize" z-score
    data_dir: str | None = None  # images: cache directory; None = $BBB_DATA_DIR or ~/.cache/bbb

    def validate(self) -> None:
        _check_choice("data.name", self.name, DATASETS)
        if self.n_train is not None:
            _check_int("data.n_train", self.n_train, 2)
        if self.noise is not None:
            _check_positive("data.noise", self.noise, allow_zero=True)
        _check_positive("data.gap", self.gap, allow_zero=True)
        if self.ood is not None:
            _check_choice("data.ood", self.ood, OOD_SETS)
        _check_choice("data.preprocessing", self.preprocessing, PREPROCESSING)

    @property
    def task(self) -> str:
        """'regression' or 'classification' (images are classification)."""
        return "regression" if self.name in REGRESSION_DATASETS else "classification"


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
        _check_positive("prior.sigma", self.sigma)
        _check_positive("prior.b", self.b)
        if not (isinstance(self.pi, (int, float)) and 0 < self.pi < 1):
            _fail("prior.pi", "in the open interval (0, 1)", self.pi)
        _check_positive("prior.sigma1", self.sigma1)
        _check_positive("prior.sigma2", self.sigma2)


@dataclass(frozen=True)
class ModelConfig:
    kind: str = "bbb"  # "bbb", or a baseline: "standard", "dropout" (MC dropout), "ensemble"
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
        if not self.hidden:
            _fail("model.hidden", "at least one positive width", self.hidden)
        for width in self.hidden:
            _check_int("model.hidden", width, 1)
        _check_choice("model.activation", self.activation, ("relu", "tanh"))
        _check_choice("model.estimator", self.estimator, ESTIMATORS)
        if not (isinstance(self.rho0, (int, float)) and -20 <= self.rho0 <= 10):
            _fail("model.rho0", "in [-20, 10]", self.rho0)
        _check_choice("model.noise_model", self.noise_model, NOISE_MODELS)
        _check_positive("model.noise_std", self.noise_std)
        if not (isinstance(self.dropout, (int, float)) and 0 <= self.dropout < 1):
            _fail("model.dropout", "in [0, 1)", self.dropout)
        _check_int("model.ensemble_size", self.ensemble_size, 1)
        _check_positive("model.weight_decay", self.weight_decay, allow_zero=True)


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
        _check_int("train.epochs", self.epochs, 1)
        _check_positive("train.lr", self.lr)
        if self.batch_size is not None:
            _check_int("train.batch_size", self.batch_size, 1)
        _check_positive("train.kl_weight", self.kl_weight, allow_zero=True)
        _check_choice("train.kl_schedule", self.kl_schedule, KL_SCHEDULES)
        _check_int("train.warmup_epochs", self.warmup_epochs, 1)
        _check_int("train.train_samples", self.train_samples, 1)
        _check_int("train.pred_samples", self.pred_samples, 1)
        _check_choice("train.lr_schedule", self.lr_schedule, LR_SCHEDULES)
        _check_choice("train.compile", self.compile, COMPILE_MODES)


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
        _check_int("seed", self.seed, 0)
        _check_choice("device", self.device, DEVICES)
        if self.model.arch == "cnn" and self.data.name not in IMAGE_DATASETS:
            _fail("model.arch", "'mlp' for non-image datasets", self.model.arch)
        return self  # model.noise_model is ignored for classification (no noise head)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        """Rebuild from `to_dict` output; unknown keys raise ValueError naming them."""
        parts = {
            "data": DataConfig,
            "prior": PriorConfig,
            "model": ModelConfig,
            "train": TrainConfig,
        }
        kwargs: dict[str, Any] = {}
        top = {f.name for f in fields(cls)}
        for key, value in d.items():
            if key not in top:
                raise ValueError(f"unknown config field {key!r}")
            if key in parts:
                sub = parts[key]
                names = {f.name for f in fields(sub)}
                unknown = set(value) - names
                if unknown:
                    raise ValueError(f"unknown config field(s) {key}.{sorted(unknown)}")
                value = dict(value)
                if "hidden" in value:
                    value["hidden"] = tuple(value["hidden"])
                kwargs[key] = sub(**value)
            else:
                kwargs[key] = value
        return cls(**kwargs)

    @classmethod
    def from_json(cls, text: str) -> RunConfig:
        return cls.from_dict(json.loads(text))


def default_config(name: str = "blundell", **overrides: Any) -> RunConfig:
    """Settings that train dataset `name` in seconds on two CPU cores.

    `overrides` replace top-level fields (`seed=1`, `device="cpu"`, `model=ModelConfig(...)`).
    """
    _check_choice("data.name", name, DATASETS)
    data = DataConfig(name=name)
    model = ModelConfig()
    train = TrainConfig()
    if name == "cubic":  # 20 points: the known noise std 3, one hidden layer as in PBP
        model = replace(model, hidden=(50,), noise_model="fixed", noise_std=3.0)
    elif name == "gap":
        model = replace(model, noise_model="fixed", noise_std=0.1)
    elif name == "hetero":
        model = replace(model, noise_model="hetero")
    elif name in CLASSIFICATION_DATASETS:
        train = replace(train, epochs=500)
    elif name == "digits":
        model = replace(model, hidden=(128, 128))
        train = replace(train, epochs=60, batch_size=128, lr=3e-3)
    elif name in ("mnist", "fashion_mnist"):  # Blundell's 2 x 1200 with the scale-mixture prior
        model = replace(model, hidden=(1200, 1200))
        train = replace(train, epochs=20, batch_size=128, lr=1e-3)
        return RunConfig(data, PriorConfig(family="mixture"), model, train, **overrides)
    return RunConfig(data=data, model=model, train=train, **overrides)
