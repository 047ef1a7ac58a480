"""Settings as data: the one table (`PARAMS`) of every knob the pages offer, and the conversions
between widget values, a `RunConfig` and URL query parameters. No Streamlit here.

Every setting is a `Param`: a URL key (`kl`, `sigma`, `seed`, ...), the `RunConfig` field it sets
(`train.kl_weight`) or none for a UI setting (which baselines to show, scratch or continue), its
type and its allowed values. A page's settings are one dict of values, keyed by URL key:

- `values_from_config(cfg)` and `config_from_values(values)` convert between the dict and a
  `RunConfig` (a preset or a dataset's defaults become widget values; widget values become a run;
  a bad value raises ValueError naming the field, `friendly_error` names the widget).
- `read_url(params, task, datasets)` turns URL parameters into values; an invalid one falls back
  to its default with a short notice. `url_params(values)` writes every setting (seed included)
  back as text, so a shared link reproduces the view.
- `echo(text)`: text from a link or a text box as Markdown that shows it literally (a quoted,
  length-bounded code span), for every message that repeats what someone typed. A link is
  written by anyone: it never becomes a Markdown image, link, HTML, colour, icon or formula, each
  echoed value is cut to `MAX_ECHO` characters and at most `MAX_NOTICES` notices are kept.
- `preset_values` and `dataset_values`: the values that load a preset or a dataset's defaults.

Each of these takes the page's table of settings: `PARAMS`, or a page's own selection of rows and
rows of its own (the images page's `ui.images.TABLE`: architecture, OOD set, wider layers).

Uploaded data (`TABULAR_DATASETS`) never enters a URL: the link says `data=uploaded`, and a session
without that upload falls back to the page's first dataset with a notice.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch

from bbb_core import RunConfig, default_config
from bbb_core.config import (
    DEVICES,
    ESTIMATORS,
    IMAGE_TRAIN_SIZES,
    KL_SCHEDULES,
    NOISE_MODELS,
    PRIORS,
    TABULAR_DATASETS,
)
from bbb_core.data.toy import TOY_DEFAULTS

from .presets import Preset, presets_for

CUDA = torch.cuda.is_available()

KL_WEIGHTS = (0.0, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
SCALES = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0)  # prior sigma, b, sigma1
NARROW = tuple(math.exp(-k) for k in range(11))  # mixture sigma2 = e^0 .. e^-10
WIDE = tuple(sorted(SCALES + (math.exp(-2), math.exp(-1))))  # sigma1: with the paper's e^-1, e^-2
MIX_PI = tuple(round(0.05 * k, 2) for k in range(1, 20))
RHO0 = tuple(-0.5 * k for k in range(20, -1, -1))  # -10 .. 0
LRS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1)
PRED_SAMPLES = (1, 2, 3, 5, 10, 20, 30, 50, 100, 200, 500)
BATCHES = ("full", "8", "16", "32", "64", "128", "256")
DROPOUT = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5)
GAPS = tuple(0.25 * k for k in range(17))  # 0 .. 4
MODES = ("scratch", "continue")
UPLOADED = "uploaded"  # the URL's `data` for uploaded data (the data itself stays in its session)
MAX_LAYERS, MAX_WIDTH = 4, 1024
MAX_HIDDEN_CHARS = 64  # a layer-widths text longer than this is rejected before it is parsed
MAX_URL_CHARS = 100  # a longer URL value is rejected unread (every valid one is far shorter)
MAX_ECHO = 80  # characters of a value repeated in a message (quotes and ellipsis included)
MAX_ECHO_KEY = 30  # characters of an unknown URL key repeated in a message
MAX_NOTICES = 8  # notices kept from one link; the rest are counted in a last "and K more"
_DIGITS = re.compile(r"[0-9]{1,6}")  # one layer width (ASCII digits only)
_INTEGER = re.compile(r"[+-]?[0-9]+")
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_KEY = re.compile(rf"[A-Za-z0-9_]{{1,{MAX_ECHO_KEY}}}")  # a URL key shown as it is


@dataclass(frozen=True)
class Param:
    """One setting: where it goes in the config and which values are allowed."""

    path: str | None  # RunConfig field, e.g. "train.kl_weight"; None for a UI setting
    type: str  # "str", "int", "float", "bool" or "hidden" (layer widths as "32, 32")
    options: tuple = ()  # the allowed values, when the widget offers a fixed list
    low: float | None = None  # inclusive bounds of a free number
    high: float | None = None  # "hidden": the widest layer (None: MAX_WIDTH)

    @property
    def max_width(self) -> int:
        return MAX_WIDTH if self.high is None else int(self.high)


PARAMS: dict[str, Param] = {
    # data
    "data": Param("data.name", "str"),  # options: the page's datasets
    "n": Param("data.n_train", "int", low=10, high=2000),
    "noise": Param("data.noise", "float", low=0.0, high=20.0),
    "gap": Param("data.gap", "float", GAPS),
    # network
    "hidden": Param("model.hidden", "hidden"),
    "act": Param("model.activation", "str", ("relu", "tanh")),
    "est": Param("model.estimator", "str", ESTIMATORS),
    "rho0": Param("model.rho0", "float", RHO0),
    "noise_model": Param("model.noise_model", "str", NOISE_MODELS),
    "noise_std": Param("model.noise_std", "float", low=1e-3, high=100.0),
    # prior and KL
    "prior": Param("prior.family", "str", PRIORS),
    "sigma": Param("prior.sigma", "float", SCALES),
    "b": Param("prior.b", "float", SCALES),
    "pi": Param("prior.pi", "float", MIX_PI),
    "sigma1": Param("prior.sigma1", "float", WIDE),
    "sigma2": Param("prior.sigma2", "float", NARROW),
    "kl": Param("train.kl_weight", "float", KL_WEIGHTS),
    "schedule": Param("train.kl_schedule", "str", KL_SCHEDULES),
    "warmup": Param("train.warmup_epochs", "int", low=1, high=5000),
    # training and sampling
    "epochs": Param("train.epochs", "int", low=1, high=20000),
    "lr": Param("train.lr", "float", LRS),
    "batch": Param("train.batch_size", "str", BATCHES),
    "train_samples": Param("train.train_samples", "int", low=1, high=16),
    "pred_samples": Param("train.pred_samples", "int", PRED_SAMPLES),
    # baselines
    "dropout": Param("model.dropout", "float", DROPOUT),
    "ensemble": Param("model.ensemble_size", "int", low=2, high=10),
    "show_dropout": Param(None, "bool"),
    "show_ensemble": Param(None, "bool"),
    # run
    "seed": Param("seed", "int", low=0, high=2**31 - 1),
    "device": Param("device", "str", DEVICES if CUDA else ("auto", "cpu")),
    "mode": Param(None, "str", MODES),
    "preset": Param(None, "str"),  # options: "custom" and the page's presets
}
UI_DEFAULTS = {"show_dropout": False, "show_ensemble": False, "mode": "scratch", "preset": "custom"}
KEEP_ON_DATASET_CHANGE = ("seed", "device", "show_dropout", "show_ensemble", "mode", "pred_samples")

FIELD_LABELS = {  # config field prefix -> the widget that sets it, for error messages
    "data.n_train": "Training points",
    "data.noise": "Data noise",
    "model.hidden": "Hidden layers",
    "model.noise_std": "Noise std",
    "train.epochs": "Epochs",
    "train.warmup_epochs": "Warm-up epochs",
}


# --- values <-> config ----------------------------------------------------------------------------


def hidden_rule(max_width: int = MAX_WIDTH) -> str:
    """What a layer-widths text must hold, in words."""
    return (
        f"1 to {MAX_LAYERS} layer widths between 1 and {max_width}, "
        "separated by commas, e.g. 32, 32"
    )


def parse_hidden(text: str, max_width: int = MAX_WIDTH) -> tuple[int, ...]:
    """ "32, 32" (or "32x32", "32 32") -> (32, 32); ValueError with the rule when malformed.

    At most `MAX_LAYERS` widths in [1, `max_width`]; a text over `MAX_HIDDEN_CHARS` characters is
    rejected before any parsing. The error's text is Markdown (the input shown by `echo`).
    """
    if len(text) > MAX_HIDDEN_CHARS:
        raise ValueError(f"write {hidden_rule(max_width)} (got {len(text):,} characters)")
    parts = [p for p in re.split(r"[,\s]+|(?<=\d)x(?=\d)", text.strip()) if p]
    widths = tuple(int(p) for p in parts) if all(_DIGITS.fullmatch(p) for p in parts) else ()
    if not widths or len(widths) > MAX_LAYERS or not all(1 <= w <= max_width for w in widths):
        raise ValueError(f"write {hidden_rule(max_width)} (got {echo(text)})")
    return widths


def format_hidden(widths: Sequence[int]) -> str:
    return ", ".join(str(w) for w in widths)


def _get(cfg: RunConfig, path: str) -> Any:
    obj: Any = cfg
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def _set(obj: Any, path: str, value: Any) -> Any:
    """A copy of the frozen dataclass `obj` with the field at dotted `path` replaced."""
    head, _, rest = path.partition(".")
    if not rest:
        return replace(obj, **{head: value})
    return replace(obj, **{head: _set(getattr(obj, head), rest, value)})


def values_from_config(cfg: RunConfig, table: Mapping[str, Param] = PARAMS) -> dict[str, Any]:
    """The widget values that show `cfg` (UI settings at their defaults); `table`: the page's
    settings (`PARAMS` or a page's own selection of rows)."""
    n_default, noise_default = TOY_DEFAULTS.get(cfg.data.name, (None, None))
    n_default = n_default or IMAGE_TRAIN_SIZES.get(cfg.data.name)  # an image set: all of it
    values: dict[str, Any] = {k: v for k, v in UI_DEFAULTS.items() if k in table}
    for key, param in table.items():
        if param.path is None:
            continue
        value = _get(cfg, param.path)
        if key == "n" and value is None:
            value = n_default
        elif key == "noise" and value is None:
            value = noise_default
        elif key == "hidden":
            value = format_hidden(value)
        elif key == "batch":
            value = "full" if value is None else str(value)
        values[key] = value
    return values


def config_from_values(values: Mapping[str, Any], table: Mapping[str, Param] = PARAMS) -> RunConfig:
    """The validated `RunConfig` the widget values describe (the dataset's defaults for the
    fields `table` has no row for); ValueError names what is wrong."""
    cfg = default_config(values["data"])
    uploaded = values["data"] in TABULAR_DATASETS.values()
    for key, param in table.items():
        value = values.get(key)
        if param.path is None or value is None or key == "data":
            continue
        if uploaded and param.path.startswith("data."):
            continue  # a file has no generator settings
        if key == "hidden":
            try:
                value = parse_hidden(value, param.max_width)
            except ValueError as err:
                raise ValueError(f"model.hidden: {err}") from None
        elif key == "batch":
            value = None if value == "full" else int(value)
        cfg = _set(cfg, param.path, value)
    return cfg.validate()


def friendly_error(err: Exception) -> str:
    """A config error as a sentence that names the widget to change."""
    text = str(err)
    for path, label in FIELD_LABELS.items():
        if text.startswith(path):
            return f"{label}: {text[len(path) :].strip(' :')}. Change it in the sidebar."
    return (
        f"{text[0].upper()}{text[1:]}. Change it in the sidebar." if text else "Invalid settings."
    )


# --- URL ------------------------------------------------------------------------------------------


def echo(text: str, limit: int = MAX_ECHO) -> str:
    """Markdown that shows `text` literally: its Python repr (control characters escaped, so
    nothing hides) in a code span, where Markdown, HTML, links, icons and formulas are inert. The
    repr is cut to `limit` characters, the cut marked with "…". Two characters are written as
    escapes: a backtick (\\x60), which would end the span, and the slash of ":material/"
    (\\x2f), which Streamlit rewrites everywhere, code spans included."""
    shown = repr(text[: limit + 1]).replace("`", "\\x60").replace(":material/", ":material\\x2f")
    if len(text) > limit or len(shown) > limit:
        shown = shown[: limit - 1] + "…"
    return f"`{shown}`"


def _echo_pair(key: str, text: str) -> str:
    """ "`key='text'`": the URL parameter as Markdown (an odd key is quoted and cut too)."""
    name = key if _KEY.fullmatch(key) else echo(key, MAX_ECHO_KEY)[1:-1]
    return f"`{name}={echo(text)[1:-1]}`"


def _bound(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def expected(param: Param, options: Sequence[Any] = ()) -> str:
    """What `param` accepts, in words ("a whole number in [1, 20000]")."""
    options = tuple(options) or param.options
    if param.type == "hidden":
        return hidden_rule(param.max_width)
    if param.type == "bool":
        return "1 or 0"
    if options:
        return "one of " + ", ".join(f"{o:g}" if isinstance(o, float) else str(o) for o in options)
    kind = "a whole number" if param.type == "int" else "a number"
    if param.low is None or param.high is None:
        return kind
    return f"{kind} in [{_bound(param.low)}, {_bound(param.high)}]"


def _number(text: str, kind: str) -> float | int:
    """A finite number written in plain decimal (no inf, nan, hex or digit groups); ValueError."""
    text = text.strip()
    if kind == "int" and _INTEGER.fullmatch(text):
        return int(text)  # exact, however long (the text's length is bounded by the caller)
    if not _DECIMAL.fullmatch(text):
        raise ValueError(text)
    value = float(text)  # 1e400 -> inf
    if not math.isfinite(value) or (kind == "int" and not value.is_integer()):
        raise ValueError(text)
    return int(value) if kind == "int" else value


def parse_value(param: Param, text: str, options: Sequence[Any] = ()) -> Any:
    """The value of `param` written as `text` in the URL; ValueError says what is allowed.

    Never raises anything else, whatever the text: a text over `MAX_URL_CHARS` characters is
    rejected before it is read.
    """
    options = tuple(options) or param.options
    wanted = f"expected {expected(param, options)}"
    if len(text) > MAX_URL_CHARS:
        raise ValueError(f"{len(text):,} characters is too long; {wanted}")
    if param.type == "hidden":
        try:
            return format_hidden(parse_hidden(text, param.max_width))
        except ValueError:
            raise ValueError(wanted) from None
    if param.type == "bool":
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(wanted)
    if param.type == "str":
        if text not in options:
            raise ValueError(wanted)
        return text
    try:
        value = _number(text, param.type)
    except ValueError:
        raise ValueError(wanted) from None
    if options:
        for option in options:  # match a listed value exactly (floats by closeness)
            if math.isclose(value, option, rel_tol=1e-9, abs_tol=1e-12):
                return option
        raise ValueError(wanted)
    if (param.low is not None and value < param.low) or (
        param.high is not None and value > param.high
    ):
        raise ValueError(wanted)
    return value


def format_value(param: Param, value: Any) -> str:
    if param.type == "bool":
        return "1" if value else "0"
    if param.type == "hidden":
        return ",".join(str(w) for w in parse_hidden(value, param.max_width))
    if param.type == "float":
        return repr(float(value))  # shortest exact round trip
    return str(value)


def url_params(values: Mapping[str, Any], table: Mapping[str, Param] = PARAMS) -> dict[str, str]:
    """Every setting of `table` as URL text (values that are None, e.g. unset, are left out)."""
    out = {}
    uploaded = values.get("data") in TABULAR_DATASETS.values()
    for key in table:
        value = values.get(key)
        if key == "data" and uploaded:
            out[key] = UPLOADED
        elif uploaded and (table[key].path or "").startswith("data."):
            continue  # the generators' settings do not apply to a file
        elif value is not None:
            try:
                out[key] = format_value(table[key], value)
            except ValueError:
                out[key] = str(value)  # a malformed text box: keep what the user typed
    return out


def read_url(
    params: Mapping[str, str],
    task: str,
    datasets: Sequence[str],
    table: Mapping[str, Param] = PARAMS,
) -> tuple[dict[str, Any], list[str]]:
    """Values from URL parameters over the defaults, and a notice for each ignored parameter.

    Precedence: the defaults of the URL's dataset (else the page's first), then the URL's preset,
    then every other URL parameter. Whatever the link holds, nothing raises and the values are
    valid widget values. The notices are Markdown in which every text from the link is an `echo`;
    at most `MAX_NOTICES` of them, the last one counting the rest when there are more.
    """
    notices: list[str] = []
    ignored = 0  # notices past the first MAX_NOTICES, only counted

    def note(text: str) -> None:
        nonlocal ignored
        if len(notices) < MAX_NOTICES:
            notices.append(text)
        else:
            ignored += 1

    presets = presets_for(task)
    name = params.get("data", datasets[0])
    uploaded = [d for d in datasets if d in TABULAR_DATASETS.values()]
    if name == UPLOADED and uploaded:
        name = uploaded[0]
    elif name == UPLOADED:
        note(
            f"`data=uploaded`: uploaded data stays in the browser tab that uploaded it and is "
            f"never shared; showing {datasets[0]} instead (upload a CSV file on this page)"
        )
        name = datasets[0]
    elif name not in datasets:
        note(f"{_echo_pair('data', name)} is not a dataset of this page; using {datasets[0]}")
        name = datasets[0]
    values = values_from_config(default_config(name), table)
    slug = params.get("preset", "custom")
    if slug in presets:
        values = preset_values(presets[slug], values, table)
        if "data" in params and presets[slug].config.data.name != name:
            values = {**values, **dataset_values(name, values, table)}
    elif slug != "custom":
        note(f"{_echo_pair('preset', slug)} is not a preset; no preset loaded")
    for key, text in params.items():
        if key in ("data", "preset"):
            continue
        if key not in table:
            note(f"{_echo_pair(key, text)} is not a setting; ignored")
            continue
        try:
            values[key] = parse_value(table[key], text)
        except ValueError as err:
            shown = format_value(table[key], values[key]) if values[key] is not None else "unset"
            note(f"{_echo_pair(key, text)}: {err}; using {shown}")
    if ignored:  # the last kept notice makes way for the count
        notices[-1] = f"and {ignored + 1:,} more ignored or invalid parameters"
    return values, notices


def preset_values(
    preset: Preset, current: Mapping[str, Any], table: Mapping[str, Param] = PARAMS
) -> dict[str, Any]:
    """The values that show `preset`, keeping the current device and continue choice."""
    values = values_from_config(preset.config, table)
    values.update(
        show_dropout="dropout" in preset.baselines,
        show_ensemble="ensemble" in preset.baselines,
        preset=preset.slug,
        device=current.get("device", "auto"),
        mode=current.get("mode", "scratch"),
    )
    return values


def dataset_values(
    name: str, current: Mapping[str, Any], table: Mapping[str, Param] = PARAMS
) -> dict[str, Any]:
    """The values for dataset `name`'s defaults, keeping the settings that do not depend on it."""
    values = values_from_config(default_config(name), table)
    values.update({k: current[k] for k in KEEP_ON_DATASET_CHANGE if k in current})
    values["preset"] = "custom"
    return values
