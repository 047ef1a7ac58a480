"""Tests for `bbb_core.config`: every invalid field raises a ValueError that names it and its
allowed range, the JSON round-trip is exact, and each dataset's defaults are the small, fast
ones."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import replace

import pytest

from bbb_core.config import (
    DATASETS,
    IMAGE_DATASETS,
    REGRESSION_DATASETS,
    DataConfig,
    ModelConfig,
    PriorConfig,
    RunConfig,
    TrainConfig,
    default_config,
)

TOY = tuple(name for name in DATASETS if name not in IMAGE_DATASETS)

# (section, field, bad value): section None means a top-level RunConfig field
INVALID = [
    ("data", "name", "nope"),
    ("data", "n_train", 1),
    ("data", "n_train", 2.5),
    ("data", "noise", -0.1),
    ("data", "noise", math.nan),
    ("data", "gap", -1.0),
    ("data", "ood", "nope"),
    ("data", "preprocessing", "nope"),
    ("prior", "family", "cauchy"),
    ("prior", "sigma", 0.0),
    ("prior", "sigma", -1.0),
    ("prior", "sigma", math.inf),
    ("prior", "sigma", math.nan),
    ("prior", "b", 0.0),
    ("prior", "pi", 0.0),
    ("prior", "pi", 1.0),
    ("prior", "pi", 1.5),
    ("prior", "pi", math.nan),
    ("prior", "sigma1", 0.0),
    ("prior", "sigma2", -1e-3),
    ("model", "kind", "nope"),
    ("model", "arch", "rnn"),
    ("model", "hidden", ()),
    ("model", "hidden", (0,)),
    ("model", "hidden", (32, -4)),
    ("model", "hidden", (2.5,)),
    ("model", "activation", "gelu"),
    ("model", "estimator", "nope"),
    ("model", "rho0", -21.0),
    ("model", "rho0", 11.0),
    ("model", "rho0", math.nan),
    ("model", "noise_model", "nope"),
    ("model", "noise_std", 0.0),
    ("model", "dropout", 1.0),
    ("model", "dropout", -0.1),
    ("model", "ensemble_size", 0),
    ("model", "weight_decay", -1e-4),
    ("train", "epochs", 0),
    ("train", "lr", 0.0),
    ("train", "lr", -1e-3),
    ("train", "batch_size", 0),
    ("train", "kl_weight", -1.0),
    ("train", "kl_weight", math.inf),
    ("train", "kl_schedule", "cosine"),
    ("train", "warmup_epochs", 0),
    ("train", "train_samples", 0),
    ("train", "pred_samples", 0),
    ("train", "lr_schedule", "linear"),
    ("train", "compile", "max-autotune"),
    ("train", "compile", True),
    (None, "seed", -1),
    (None, "seed", 1.5),
    (None, "device", "tpu"),
]


def _with(cfg: RunConfig, section: str | None, name: str, value) -> RunConfig:
    if section is None:
        return replace(cfg, **{name: value})
    return replace(cfg, **{section: replace(getattr(cfg, section), **{name: value})})


@pytest.mark.parametrize(("section", "name", "value"), INVALID)
def test_every_invalid_field_raises_value_error_naming_it(section, name, value):
    cfg = _with(RunConfig(), section, name, value)
    label = name if section is None else f"{section}.{name}"
    with pytest.raises(ValueError, match=rf"^{label} must be .+; got ") as err:
        cfg.validate()
    assert "\n" not in str(err.value)  # one line: fit for the CLI's stderr


@pytest.mark.parametrize(
    "part",
    [DataConfig(name="nope"), PriorConfig(sigma=0.0), ModelConfig(kind="nope"), TrainConfig(lr=0)],
)
def test_each_section_validates_on_its_own(part):
    with pytest.raises(ValueError, match="must be"):
        part.validate()


def test_cnn_on_a_non_image_dataset_names_arch():
    cfg = replace(RunConfig(), model=ModelConfig(arch="cnn"))
    with pytest.raises(ValueError, match="model.arch"):
        cfg.validate()


@pytest.mark.parametrize("name", DATASETS)
def test_default_configs_are_valid_and_name_their_dataset(name):
    cfg = default_config(name)
    assert cfg.validate() is cfg
    assert cfg.data.name == name
    assert cfg.data.task == ("regression" if name in REGRESSION_DATASETS else "classification")


@pytest.mark.parametrize("name", TOY)
def test_toy_defaults_are_small_full_batch_mlps(name):
    # The toy sets must train in seconds on two CPU cores: full batch, small MLP, Gaussian prior.
    # (Regression guard: "blundell" once fell through to the MNIST branch: 2 x 1200, 20 epochs,
    # minibatches of 128 and the mixture prior, i.e. no fit at all.)
    cfg = default_config(name)
    assert cfg.model.arch == "mlp"
    assert cfg.train.batch_size is None
    assert max(cfg.model.hidden) <= 128
    assert cfg.prior.family == "gaussian"
    assert cfg.train.epochs >= 100


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_mnist_defaults_follow_blundell(name):
    cfg = default_config(name)
    assert cfg.model.hidden == (1200, 1200)
    assert cfg.prior.family == "mixture"
    assert (cfg.prior.pi, cfg.prior.sigma1, cfg.prior.sigma2) == (0.25, 1.0, math.exp(-6))
    assert cfg.train.batch_size == 128


def test_default_config_overrides_and_bad_name():
    cfg = default_config("moons", seed=7, device="cpu")
    assert (cfg.seed, cfg.device) == (7, "cpu")
    with pytest.raises(ValueError, match="data.name"):
        default_config("nope")


def test_configs_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        RunConfig().seed = 3  # type: ignore[misc]


ROUND_TRIP = [
    RunConfig(),
    *(default_config(name) for name in DATASETS),
    RunConfig(
        data=DataConfig(name="digits", n_train=300, noise=0.0, ood="letters", data_dir="/tmp/x"),
        prior=PriorConfig(family="laplace", b=0.3),
        model=ModelConfig(kind="ensemble", arch="cnn", hidden=(4, 8), ensemble_size=3),
        train=TrainConfig(epochs=3, lr=1e-3, batch_size=17, kl_schedule="warmup", kl_weight=0.0),
        seed=12,
        device="cpu",
    ),
]


@pytest.mark.parametrize("cfg", ROUND_TRIP)
def test_json_round_trip_is_exact(cfg):
    text = cfg.to_json()
    again = RunConfig.from_json(text)
    assert again == cfg
    assert isinstance(again.model.hidden, tuple)
    assert again.to_json() == text
    assert RunConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


@pytest.mark.parametrize(
    ("patch", "name"),
    [({"colour": 1}, "colour"), ({"model": {"depth": 3}}, "depth")],
)
def test_from_dict_rejects_unknown_fields_by_name(patch, name):
    d = RunConfig().to_dict()
    for key, value in patch.items():
        if isinstance(value, dict):
            d[key] = {**d[key], **value}
        else:
            d[key] = value
    with pytest.raises(ValueError, match=name):
        RunConfig.from_dict(d)


def test_to_dict_covers_every_field():
    d = RunConfig().to_dict()
    assert set(d) == {f.name for f in dataclasses.fields(RunConfig)}
    for section, cls in (("data", DataConfig), ("prior", PriorConfig), ("model", ModelConfig)):
        assert set(d[section]) == {f.name for f in dataclasses.fields(cls)}
    assert set(d["train"]) == {f.name for f in dataclasses.fields(TrainConfig)}
