"""Tests for `bbb_core.config`: every invalid field raises a ValueError that names it and its
allowed range (the LIMITS table, its ends and the sizes derived from it), every preset and every
value the app offers stays valid, the JSON round-trip is exact, hostile JSON is a ValueError, and
each dataset's defaults are the small, fast ones."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import replace
from pathlib import Path

import pytest

from bbb_core.config import (
    DATASETS,
    IMAGE_DATASETS,
    LIMITS,
    MODELS,
    REGRESSION_DATASETS,
    DataConfig,
    ModelConfig,
    PriorConfig,
    RunConfig,
    TrainConfig,
    default_config,
    input_shape,
    n_outputs,
    network_size,
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
    # upper bounds (LIMITS) and types
    ("data", "n_train", 400_000_000),
    ("data", "n_train", 100_001),
    ("data", "n_train", True),
    ("data", "noise", 1e300),
    ("data", "noise", 100.5),
    ("data", "gap", 10.5),
    ("data", "gap", math.inf),
    ("data", "data_dir", 5),
    ("prior", "sigma", 1e-7),
    ("prior", "sigma", 1001.0),
    ("prior", "b", 1e4),
    ("prior", "sigma1", True),
    ("prior", "sigma2", 1e-7),
    ("prior", "sigma2", math.nan),
    ("model", "hidden", (8,) * 9),
    ("model", "hidden", (4097,)),
    ("model", "hidden", (30_000, 30_000)),
    ("model", "hidden", (True,)),
    ("model", "hidden", [32]),  # a list: not hashable, not a config
    ("model", "hidden", "32"),
    ("model", "hidden", 32),
    ("model", "rho0", True),
    ("model", "noise_std", 1e-7),
    ("model", "noise_std", 1001.0),
    ("model", "dropout", math.nan),
    ("model", "ensemble_size", 21),
    ("model", "ensemble_size", 100_000_000),
    ("model", "ensemble_size", True),
    ("model", "weight_decay", 101.0),
    ("train", "epochs", 100_001),
    ("train", "epochs", True),
    ("train", "lr", 10.5),
    ("train", "lr", 10**400),  # too large for a float: compared as an int, no OverflowError
    ("train", "lr", math.inf),
    ("train", "batch_size", 100_001),
    ("train", "kl_weight", 1000.5),
    ("train", "warmup_epochs", 100_001),
    ("train", "train_samples", 65),
    ("train", "pred_samples", 1001),
    (None, "seed", 2**32),
    (None, "seed", 2**64),
    (None, "seed", True),
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


def test_the_message_names_the_field_and_its_bound():
    cfg = _with(RunConfig(), "data", "n_train", 400_000_000)
    with pytest.raises(ValueError) as err:
        cfg.validate()
    assert str(err.value) == "data.n_train must be an integer in [2, 100000]; got 400000000"
    with pytest.raises(ValueError, match=r"^seed must be an integer in \[0, 4294967295\]; got "):
        replace(RunConfig(), seed=2**64).validate()
    with pytest.raises(ValueError, match=r"^train\.lr must be a number in \(0, 10\]; got 11"):
        _with(RunConfig(), "train", "lr", 11.0).validate()


DERIVED = ("network.weights", "ensemble.weights", "train.sampled_weights", "train.activations")
FIELDS = [k for k in LIMITS if k not in DERIVED and not k.startswith(("len(", "model.hidden"))]


@pytest.mark.parametrize("key", FIELDS)
def test_each_bound_is_where_the_table_says(key):
    """The ends of every LIMITS row: a closed end is valid, an open end and a step beyond are
    not. So the table is what `validate` enforces, not a comment beside it."""
    limit = LIMITS[key]
    section, name = key.split(".") if "." in key else (None, key)
    base = RunConfig(model=ModelConfig(hidden=(2,)))  # small enough for every derived size
    ends = ((limit.low, limit.open_low, -1), (limit.high, limit.open_high, 1))
    for end, is_open, outward in ends:
        end = int(end) if limit.integer else float(end)
        step = outward if limit.integer else math.nextafter(end, outward * math.inf) - end
        _with(base, section, name, end - step if is_open else end).validate()
        beyond = _with(base, section, name, end if is_open else end + step)
        with pytest.raises(ValueError, match=rf"^{key} must be {re.escape(limit.allowed())}"):
            beyond.validate()


def test_hidden_depth_and_width_bounds():
    for hidden in ((1,), (4096,), (8,) * 8):
        RunConfig(model=ModelConfig(hidden=hidden)).validate()
    for hidden in ((), (8,) * 9, (0,), (4097,)):
        with pytest.raises(ValueError, match=r"^model\.hidden must be "):
            RunConfig(model=ModelConfig(hidden=hidden)).validate()


# network_size must count what models.build_model builds: checked against the real modules
SIZED = [
    ("blundell", "mlp", (32, 32), "learned"),
    ("hetero", "mlp", (16,), "hetero"),
    ("moons", "mlp", (8, 4, 3), "learned"),
    ("digits", "mlp", (128, 128), "learned"),
    ("digits", "cnn", (4, 8), "learned"),  # 8x8: pools to 4x4, then to 2x2
    ("mnist", "mlp", (1200, 1200), "learned"),
    ("mnist", "cnn", (3, 4, 5, 6), "learned"),  # 28 -> 14 -> 7 -> 3, then no more pooling
]


@pytest.mark.parametrize(("name", "arch", "hidden", "noise"), SIZED)
def test_network_size_counts_the_weights_build_model_makes(name, arch, hidden, noise):
    import torch

    from bbb_core.data.base import Dataset
    from bbb_core.models import build_model

    shape = input_shape(name)
    data = DataConfig(name=name)
    model_cfg = ModelConfig(kind="standard", arch=arch, hidden=hidden, noise_model=noise)
    n_out = n_outputs(data, model_cfg)
    x = torch.zeros(4, *shape)
    if data.task == "regression":
        ds = Dataset(name, "regression", x, torch.arange(4.0), x, torch.arange(4.0))
    else:
        y = torch.arange(4) % n_out
        ds = Dataset(name, "classification", x, y, x, y, n_classes=n_out)
    model = build_model(model_cfg, PriorConfig(), ds)
    weights, units = network_size(arch, hidden, shape, n_out)
    assert weights == sum(p.numel() for n, p in model.named_parameters() if "body" in n)
    outputs = [m for m in model.body if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))]
    with torch.no_grad():  # units: every linear / conv layer's outputs for one input
        h, counted = x[:1], 0
        for layer in model.body:
            h = layer(h)
            if layer in outputs:
                counted += h[0].numel()
    assert units == counted


def test_mnist_mlp_is_valid_and_its_weights_are_blundells():
    cfg = default_config("mnist")
    assert network_size("mlp", (1200, 1200), (1, 28, 28), 10)[0] == 2_395_210
    cfg.validate()


WIDE = {"hidden": (4096, 4096)}
ENSEMBLE = {"kind": "ensemble", "hidden": (2400, 2400)}  # 5.77 M weights on 2-D inputs


@pytest.mark.parametrize(
    ("name", "model", "train", "field"),
    [
        ("mnist", WIDE, {}, "model.hidden"),  # 20.04 M weights
        ("digits", {"hidden": (4096,) * 3}, {}, "model.hidden"),
        ("mnist", {"arch": "cnn", "hidden": (4096, 4096)}, {}, "model.hidden"),
        ("moons", ENSEMBLE | {"ensemble_size": 20}, {}, "model.ensemble_size"),
        ("blundell", WIDE | {"estimator": "reparam"}, {"train_samples": 64}, "train.train_samples"),
        ("blundell", WIDE | {"estimator": "flipout"}, {"train_samples": 16}, "train.train_samples"),
        ("mnist", {}, {"batch_size": None, "train_samples": 64}, "train.batch_size"),
        ("mnist", {"arch": "cnn", "hidden": (1024,)}, {"batch_size": 1000}, "train.batch_size"),
        ("blundell", {"hidden": (4096,) * 4}, {}, "model.hidden"),
    ],
)
def test_derived_sizes_are_bounded(name, model, train, field):
    cfg = default_config(name)
    cfg = replace(cfg, model=replace(cfg.model, **model), train=replace(cfg.train, **train))
    with pytest.raises(ValueError, match=rf"^{re.escape(field)} must be .*; got \d+"):
        cfg.validate()


@pytest.mark.parametrize(
    ("name", "model", "train"),
    [
        ("blundell", WIDE, {}),  # 16.8 M weights on a 1-D input
        ("moons", ENSEMBLE | {"ensemble_size": 17}, {}),
        ("blundell", WIDE | {"estimator": "reparam"}, {"train_samples": 14}),
        ("blundell", WIDE, {"train_samples": 64}),  # local: activations only
        ("mnist", {}, {"batch_size": None}),  # full batch, one sample: 145 M activations
        ("mnist", {"kind": "ensemble", "ensemble_size": 20}, {}),
    ],
)
def test_derived_sizes_just_inside_are_valid(name, model, train):
    cfg = default_config(name)
    replace(cfg, model=replace(cfg.model, **model), train=replace(cfg.train, **train)).validate()


def _set_path(cfg: RunConfig, path: str, value):
    section, _, name = path.partition(".")
    return _with(cfg, section if name else None, name or section, value)


@pytest.mark.parametrize("task", ["regression", "classification", "priors"])
def test_every_preset_is_valid(task):
    from ui.presets import PRESETS

    assert PRESETS[task]
    for preset in PRESETS[task].values():
        preset.config.validate()


@pytest.mark.parametrize("extreme", [min, max])
@pytest.mark.parametrize("kind", ["bbb", "dropout", "ensemble"])
@pytest.mark.parametrize("estimator", ["reparam", "local", "flipout"])
@pytest.mark.parametrize("name", ["blundell", "hetero", "moons", "spirals"])
def test_the_apps_extreme_values_are_valid(name, estimator, kind, extreme):
    """Every number the sidebar offers (ui/params.py PARAMS) at its smallest or largest, all at
    once, with the widest network the hidden-layers box accepts: the config must validate."""
    from ui import params

    cfg = default_config(name)
    cfg = replace(cfg, model=replace(cfg.model, kind=kind, estimator=estimator))
    for param in params.PARAMS.values():
        if param.path is None or param.type not in ("int", "float"):
            continue
        bounds = param.options or (param.low, param.high)
        cfg = _set_path(cfg, param.path, extreme(bounds))
    widths = (params.MAX_WIDTH,) * params.MAX_LAYERS if extreme is max else (1,)
    cfg = _set_path(cfg, "model.hidden", widths)
    cfg = _set_path(cfg, "train.batch_size", None)  # "full": every point in each step
    cfg.validate()


@pytest.mark.parametrize("name", IMAGE_DATASETS)
def test_the_images_pages_largest_values_are_valid(name):
    cfg = default_config(name)  # the images page: up to 1000 epochs, 500 samples, KL weight 10
    cfg = replace(cfg, train=replace(cfg.train, epochs=1000, pred_samples=500, kl_weight=10.0))
    cfg.validate()
    replace(cfg, model=replace(cfg.model, arch="cnn", hidden=(16, 32))).validate()


def row_allowed(row: str) -> str:
    return row.split("|")[3].strip()  # | setting | config / CLI field | allowed | why |


def test_docs_list_every_limit():
    """docs/limits.md has one table row per LIMITS entry, with the range `validate` enforces."""
    text = (Path(__file__).resolve().parents[1] / "docs" / "limits.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    for key, limit in LIMITS.items():
        matching = [row for row in rows if row.split("|")[2].strip().startswith(f"`{key}`")]
        assert len(matching) == 1, key
        assert row_allowed(matching[0]) == limit.allowed(), key


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


@pytest.mark.parametrize(
    ("d", "name"),
    [
        ([1, 2], "JSON object"),
        ({"model": 5}, "model"),
        ({"train": [1]}, "train"),
        ({"data": {"name": "blundell", "colour": 1}}, "colour"),
    ],
)
def test_from_dict_rejects_a_malformed_structure(d, name):
    with pytest.raises(ValueError, match=name):
        RunConfig.from_dict(d)


@pytest.mark.parametrize(
    "text",
    [
        "{not json",
        '{"model": {"hidden": 32}}',
        '{"model": {"hidden": "32"}}',
        '{"model": {"hidden": [30000, 30000]}}',
        '{"seed": 18446744073709551616}',
        '{"data": {"noise": 1e400}}',  # JSON's 1e400 parses as inf
        '{"train": {"lr": NaN}}',
        '{"model": {"ensemble_size": 100000000, "kind": "ensemble"}}',
    ],
)
def test_hostile_config_json_is_a_value_error(text):
    with pytest.raises(ValueError):
        RunConfig.from_json(text).validate()


def test_to_dict_covers_every_field():
    d = RunConfig().to_dict()
    assert set(d) == {f.name for f in dataclasses.fields(RunConfig)}
    for section, cls in (("data", DataConfig), ("prior", PriorConfig), ("model", ModelConfig)):
        assert set(d[section]) == {f.name for f in dataclasses.fields(cls)}
    assert set(d["train"]) == {f.name for f in dataclasses.fields(TrainConfig)}


def test_map_is_a_model_kind_and_validates():
    cfg = default_config("blundell")
    cfg = replace(cfg, model=replace(cfg.model, kind="map"))
    assert "map" in MODELS and cfg.validate() is cfg
    assert RunConfig.from_json(cfg.to_json()) == cfg
