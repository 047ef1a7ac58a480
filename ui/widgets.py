"""Widgets -> RunConfig: the one place where sidebar controls and URL query parameters become a
run's configuration.

Every setting is a `Param`: a URL key (`kl`, `sigma`, `seed`, ...), the `RunConfig` field it sets
(`train.kl_weight`) or none for a UI setting (which baselines to show, scratch or continue), its
type and its allowed values. A page's settings are one dict of values, keyed by URL key:

- `values_from_config(cfg)` and `config_from_values(values)` convert between the dict and a
  `RunConfig` (a preset or a dataset's defaults become widget values; widget values become a run).
- `read_url(params, ...)` turns the URL into values on a session's first visit to the page; an
  invalid value falls back to its default with a short notice. `url_params(values)` is what the
  page writes back after every run, so a shared link reproduces the view (seed included).
- `Controls` binds the widgets to session state: each widget's key is `"<page>:<url key>"`, the
  values survive page switches, and the dataset and preset pickers reset the other widgets
  through their callbacks.
- `sidebar(page, task, datasets)` draws the whole sidebar of a page and returns `Settings`: the
  `RunConfig` (or the error that stops it), the models to train and the continue/scratch choice.

The sections (`data_section`, `network_section`, `prior_section`, `training_section`,
`baselines_section`, `run_section`) work for any task; a page may call them itself.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import streamlit as st
import torch

from bbb_core import RunConfig, build_prior, default_config
from bbb_core.config import DEVICES, ESTIMATORS, KL_SCHEDULES, NOISE_MODELS, PRIORS
from bbb_core.data.toy import TOY_DEFAULTS
from bbb_core.plots import prior_density_figure

from .presets import Preset, presets_for

CUDA = torch.cuda.is_available()

KL_WEIGHTS = (0.0, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
SCALES = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0)  # prior sigma, b, sigma1
NARROW = tuple(math.exp(-k) for k in range(11))  # mixture sigma2 = e^0 .. e^-10
MIX_PI = tuple(round(0.05 * k, 2) for k in range(1, 20))
RHO0 = tuple(-0.5 * k for k in range(20, -1, -1))  # -10 .. 0
LRS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1)
PRED_SAMPLES = (1, 2, 3, 5, 10, 20, 30, 50, 100, 200, 500)
BATCHES = ("full", "8", "16", "32", "64", "128", "256")
DROPOUT = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5)
GAPS = tuple(0.25 * k for k in range(17))  # 0 .. 4
MODES = ("scratch", "continue")
MAX_LAYERS, MAX_WIDTH = 4, 1024


@dataclass(frozen=True)
class Param:
    """One setting: where it goes in the config and which values are allowed."""

    path: str | None  # RunConfig field, e.g. "train.kl_weight"; None for a UI setting
    type: str  # "str", "int", "float", "bool" or "hidden" (layer widths as "32, 32")
    options: tuple = ()  # the allowed values, when the widget offers a fixed list
    low: float | None = None  # inclusive bounds of a free number
    high: float | None = None


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
    "sigma1": Param("prior.sigma1", "float", SCALES),
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


def parse_hidden(text: str) -> tuple[int, ...]:
    """ "32, 32" (or "32x32", "32 32") -> (32, 32); ValueError with the rule when malformed."""
    parts = [p for p in text.replace("x", ",").replace(" ", ",").split(",") if p]
    try:
        widths = tuple(int(p) for p in parts)
    except ValueError:
        widths = ()
    if not widths or len(widths) > MAX_LAYERS or not all(1 <= w <= MAX_WIDTH for w in widths):
        raise ValueError(
            f"write 1 to {MAX_LAYERS} layer widths between 1 and {MAX_WIDTH}, "
            f"separated by commas, e.g. 32, 32 (got {text!r})"
        )
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


def values_from_config(cfg: RunConfig) -> dict[str, Any]:
    """The widget values that show `cfg` (UI settings at their defaults)."""
    n_default, noise_default = TOY_DEFAULTS.get(cfg.data.name, (None, None))
    values: dict[str, Any] = dict(UI_DEFAULTS)
    for key, param in PARAMS.items():
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


def config_from_values(values: Mapping[str, Any]) -> RunConfig:
    """The validated `RunConfig` the widget values describe; ValueError names what is wrong."""
    cfg = default_config(values["data"])
    for key, param in PARAMS.items():
        value = values.get(key)
        if param.path is None or value is None or key == "data":
            continue
        if key == "hidden":
            try:
                value = parse_hidden(value)
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


def _number(text: str, kind: str) -> float:
    value = float(text)
    if kind == "int":
        if value != int(value):
            raise ValueError("expected a whole number")
        return int(value)
    if not math.isfinite(value):
        raise ValueError("expected a finite number")
    return value


def parse_value(param: Param, text: str, options: Sequence[Any] = ()) -> Any:
    """The value of `param` written as `text` in the URL; ValueError says what is allowed."""
    options = tuple(options) or param.options
    if param.type == "hidden":
        return format_hidden(parse_hidden(text))
    if param.type == "bool":
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError("expected 1 or 0")
    if param.type == "str":
        if text not in options:
            raise ValueError("expected one of " + ", ".join(map(str, options)))
        return text
    try:
        value = _number(text, param.type)
    except ValueError as err:
        raise ValueError(f"expected a{'' if param.type == 'int' else ' finite'} number") from err
    if options:
        for option in options:  # match a listed value exactly (floats by closeness)
            if math.isclose(value, option, rel_tol=1e-9, abs_tol=1e-12):
                return option
        raise ValueError("expected one of " + ", ".join(f"{o:g}" for o in options))
    if (param.low is not None and value < param.low) or (
        param.high is not None and value > param.high
    ):
        raise ValueError(f"expected a number in [{param.low:g}, {param.high:g}]")
    return value


def format_value(param: Param, value: Any) -> str:
    if param.type == "bool":
        return "1" if value else "0"
    if param.type == "hidden":
        return ",".join(str(w) for w in parse_hidden(value))
    if param.type == "float":
        return repr(float(value))  # shortest exact round trip
    return str(value)


def url_params(values: Mapping[str, Any]) -> dict[str, str]:
    """Every setting as URL text (values that are None, e.g. unset, are left out)."""
    out = {}
    for key in PARAMS:
        value = values.get(key)
        if value is not None:
            try:
                out[key] = format_value(PARAMS[key], value)
            except ValueError:
                out[key] = str(value)  # a malformed text box: keep what the user typed
    return out


def read_url(
    params: Mapping[str, str], task: str, datasets: Sequence[str]
) -> tuple[dict[str, Any], list[str]]:
    """Values from URL parameters over the defaults, and a notice for each ignored parameter.

    Precedence: the defaults of the URL's dataset (else the page's first), then the URL's preset,
    then every other URL parameter.
    """
    notices: list[str] = []
    presets = presets_for(task)
    name = params.get("data", datasets[0])
    if name not in datasets:
        notices.append(f"data={name!r} is not a dataset of this page; using {datasets[0]}")
        name = datasets[0]
    values = values_from_config(default_config(name))
    slug = params.get("preset", "custom")
    if slug in presets:
        values = preset_values(presets[slug], values)
        if "data" in params and presets[slug].config.data.name != name:
            values = {**values, **_dataset_values(name, values)}
    elif slug != "custom":
        notices.append(f"preset={slug!r} is unknown; no preset loaded")
    for key, text in params.items():
        if key in ("data", "preset"):
            continue
        if key not in PARAMS:
            notices.append(f"{key}={text!r} is not a setting; ignored")
            continue
        try:
            values[key] = parse_value(PARAMS[key], text)
        except ValueError as err:
            shown = format_value(PARAMS[key], values[key]) if values[key] is not None else "unset"
            notices.append(f"{key}={text!r}: {err}; using {shown}")
    return values, notices


def preset_values(preset: Preset, current: Mapping[str, Any]) -> dict[str, Any]:
    """The values that show `preset`, keeping the current device and continue choice."""
    values = values_from_config(preset.config)
    values.update(
        show_dropout="dropout" in preset.baselines,
        show_ensemble="ensemble" in preset.baselines,
        preset=preset.slug,
        device=current.get("device", "auto"),
        mode=current.get("mode", "scratch"),
    )
    return values


def _dataset_values(name: str, current: Mapping[str, Any]) -> dict[str, Any]:
    """The values for dataset `name`'s defaults, keeping the settings that do not depend on it."""
    values = values_from_config(default_config(name))
    values.update({k: current[k] for k in KEEP_ON_DATASET_CHANGE if k in current})
    values["preset"] = "custom"
    return values


# --- widgets bound to session state ---------------------------------------------------------------


def _wkey(page: str, key: str) -> str:
    return f"{page}:{key}"


def _store_key(page: str) -> str:
    return f"{page}::values"


def _set_all(page: str, values: Mapping[str, Any]) -> None:
    """Set every widget of `page` (in a callback, before the widgets are drawn)."""
    store = st.session_state[_store_key(page)]
    store.update(values)
    for key, value in values.items():
        st.session_state[_wkey(page, key)] = value


def _on_dataset(page: str) -> None:
    store = st.session_state[_store_key(page)]
    _set_all(page, _dataset_values(st.session_state[_wkey(page, "data")], store))


def _on_preset(page: str, task: str) -> None:
    slug = st.session_state[_wkey(page, "preset")]
    preset = presets_for(task).get(slug)
    if preset is not None:
        _set_all(page, preset_values(preset, st.session_state[_store_key(page)]))


def _on_knob(page: str) -> None:
    """Any other knob: the view is no longer the preset's."""
    _set_all(page, {"preset": "custom"})


def _on_device(page: str) -> None:
    if st.session_state[_wkey(page, "device")] == "cuda" and not CUDA:
        st.session_state[_wkey(page, "device")] = "auto"
        st.toast("No CUDA GPU on this machine: the device stays on auto (CPU).")
    _on_knob(page)


class Controls:
    """The widgets of one page, their values in session state, mirrored into the URL.

    On the session's first visit to the page the values come from the URL (invalid ones fall back
    to their defaults and are listed in `notices`); later they come from session state, so they
    survive page switches. Draw widgets with the methods below, then call `sync_url()`.
    """

    def __init__(self, page: str, task: str, datasets: Sequence[str]) -> None:
        self.page, self.task, self.datasets = page, task, tuple(datasets)
        self.notices: list[str] = []
        if _store_key(page) not in st.session_state:
            params = st.query_params.to_dict()
            values, self.notices = read_url(params, task, self.datasets)
            st.session_state[_store_key(page)] = values
        self.values: dict[str, Any] = st.session_state[_store_key(page)]
        for key, value in self.values.items():  # restore widgets Streamlit dropped
            if _wkey(page, key) not in st.session_state:
                st.session_state[_wkey(page, key)] = value

    def __getitem__(self, key: str) -> Any:
        return st.session_state[_wkey(self.page, key)]

    def _common(self, key: str, help: str | None, on_change: Callable | None = None) -> dict:
        return {
            "key": _wkey(self.page, key),
            "help": help,
            "on_change": on_change or _on_knob,
            "args": (self.page,),
        }

    def _options(self, key: str, options: Sequence[Any] | None) -> tuple:
        options = tuple(options) if options is not None else PARAMS[key].options
        wkey = _wkey(self.page, key)
        if st.session_state[wkey] not in options:  # e.g. a value from an older link
            st.session_state[wkey] = options[0]
        return options

    def select(
        self,
        key: str,
        label: str,
        options: Sequence[Any] | None = None,
        *,
        labels: Mapping[Any, str] | None = None,
        help: str | None = None,
        radio: bool = False,
        on_change: Callable | None = None,
        args: tuple = (),
    ) -> Any:
        options = self._options(key, options)
        kw = self._common(key, help, on_change)
        if args:
            kw["args"] = args
        fmt = (lambda v: labels.get(v, str(v))) if labels else str
        if radio:
            return st.radio(label, options, format_func=fmt, horizontal=True, **kw)
        return st.selectbox(label, options, format_func=fmt, **kw)

    def select_slider(
        self, key: str, label: str, *, fmt: Callable[[Any], str] = "{:g}".format, help=None
    ) -> Any:
        options = self._options(key, None)
        return st.select_slider(label, options, format_func=fmt, **self._common(key, help))

    def slider(self, key: str, label: str, step: int, *, help: str | None = None) -> Any:
        param = PARAMS[key]
        low, high = int(param.low), int(param.high)
        return st.slider(label, low, high, step=step, **self._common(key, help))

    def number(
        self, key: str, label: str, step: float, *, fmt: str | None = None, help=None
    ) -> Any:
        param = PARAMS[key]
        cast = int if param.type == "int" else float
        return st.number_input(
            label,
            min_value=cast(param.low),
            max_value=cast(param.high),
            step=cast(step),
            format=fmt,
            **self._common(key, help),
        )

    def checkbox(self, key: str, label: str, *, help: str | None = None) -> bool:
        return st.checkbox(label, **self._common(key, help))

    def text(self, key: str, label: str, *, help: str | None = None) -> str:
        return st.text_input(label, **self._common(key, help))

    def collect(self) -> dict[str, Any]:
        """The current values (drawn widgets' values, the stored value for the others)."""
        for key in list(self.values):
            self.values[key] = st.session_state.get(_wkey(self.page, key), self.values[key])
        return dict(self.values)

    def sync_url(self) -> None:
        """Write every setting into the URL (only when something changed)."""
        wanted = url_params(self.collect())
        if st.query_params.to_dict() != wanted:
            st.query_params.from_dict(wanted)


# --- sidebar sections -----------------------------------------------------------------------------

DATASET_LABELS = {
    "blundell": "Blundell et al. curve",
    "cubic": "cubic (x³ + noise)",
    "gap": "two clusters with a gap",
    "hetero": "heteroscedastic noise",
    "moons": "two moons",
    "circles": "circles",
    "spirals": "spirals",
    "xor": "XOR blobs",
}
ESTIMATOR_LABELS = {
    "reparam": "sample weights (paper)",
    "local": "local reparameterisation",
    "flipout": "Flipout",
}
PRIOR_LABELS = {
    "gaussian": "Gaussian (~ L2)",
    "laplace": "Laplace (~ L1)",
    "mixture": "scale mixture",
}
NOISE_LABELS = {"fixed": "fixed", "learned": "learned (one std)", "hetero": "heteroscedastic"}
MODE_LABELS = {"scratch": "start from scratch", "continue": "continue from the current posterior"}
SCHEDULE_LABELS = {"uniform": "uniform 1/M", "blundell": "Blundell 2^(M-i)", "warmup": "warm-up"}


def _narrow_label(value: float) -> str:
    return f"e^-{round(-math.log(value))} ≈ {value:.2g}" if value < 1 else "1"


def data_section(ctl: Controls) -> None:
    name = ctl.select(
        "data",
        "Dataset",
        ctl.datasets,
        labels=DATASET_LABELS,
        on_change=_on_dataset,
        help="Changing the dataset loads its recommended settings.",
    )
    ctl.slider("n", "Training points", 10, help="How many training points to draw.")
    ctl.number("noise", "Data noise", 0.01, fmt="%g", help="Noise level of the generator.")
    if name == "gap":
        ctl.select_slider("gap", "Gap width", help="Width of the empty interval between clusters.")


def network_section(ctl: Controls, task: str) -> None:
    ctl.text("hidden", "Hidden layers", help="Widths of the hidden layers, e.g. 32, 32.")
    ctl.select("act", "Activation", radio=True)
    ctl.select(
        "est",
        "Gradient estimator",
        labels=ESTIMATOR_LABELS,
        help="How BBB samples: weights (paper), pre-activations (local), or Flipout.",
    )
    rho0 = ctl.select_slider(
        "rho0", "Initial ρ", help="Every weight starts with σ = log(1 + exp(ρ₀))."
    )
    st.caption(f"σ₀ = log(1 + e^ρ₀) = {math.log1p(math.exp(rho0)):.3g}")
    if task == "regression":
        model = ctl.select(
            "noise_model",
            "Noise model",
            labels=NOISE_LABELS,
            help="Fixed std, one learned std, or a std per input (a second output).",
        )
        label = "Noise std" if model == "fixed" else "Noise std at the start"
        ctl.number("noise_std", label, 0.01, fmt="%g")


def prior_section(ctl: Controls) -> None:
    family = ctl.select("prior", "Prior family", labels=PRIOR_LABELS)
    if family == "gaussian":
        ctl.select_slider("sigma", "Prior σ", help="p(w) = N(0, σ²): smaller is stronger L2.")
    elif family == "laplace":
        ctl.select_slider(
            "b", "Prior scale b", help="p(w) ∝ exp(-|w| / b): smaller is stronger L1."
        )
    else:
        ctl.select_slider("pi", "Mixture weight π", help="Weight of the wide component.")
        ctl.select_slider("sigma1", "Wide σ₁")
        ctl.select_slider("sigma2", "Narrow σ₂", fmt=_narrow_label)
    ctl.select_slider(
        "kl",
        "KL weight",
        help="Multiplies KL[q‖p]: 1 is the true ELBO, 0 ignores the prior, > 1 over-regularises.",
    )
    schedule = ctl.select(
        "schedule",
        "KL schedule",
        labels=SCHEDULE_LABELS,
        help="How the KL is shared over an epoch's minibatches (matters with minibatches).",
    )
    if schedule == "warmup":
        ctl.number("warmup", "Warm-up epochs", 10)


def prior_plot(cfg: RunConfig, key: str) -> None:
    """A small plot of the prior density p(w)."""
    prior = build_prior(cfg.prior)
    scale = {"gaussian": cfg.prior.sigma, "laplace": cfg.prior.b}.get(cfg.prior.family, 1.0)
    w_max = max(1.0, 3.5 * scale) if cfg.prior.family != "mixture" else 3.0 * cfg.prior.sigma1
    fig = prior_density_figure({"p(w)": prior}, w_max=w_max)
    if cfg.prior.family == "mixture":
        fig = prior_density_figure({"p(w)": prior}, w_max=w_max, log=True)
    fig.update_layout(title=None, height=170, margin=dict(l=10, r=10, t=10, b=10), showlegend=False)
    fig.update_xaxes(title=None)
    fig.update_yaxes(title=None)
    st.plotly_chart(fig, config={"displayModeBar": False}, key=key)
    caption = "log p(w) (the narrow spike is tall)" if cfg.prior.family == "mixture" else "p(w)"
    st.caption(f"Prior density {caption} over one weight w.")


def training_section(ctl: Controls) -> None:
    ctl.number("epochs", "Epochs", 100, help="Passes over the training set.")
    ctl.select_slider("lr", "Learning rate (Adam)")
    ctl.select("batch", "Minibatch size", help="'full' = one step per epoch.")
    ctl.slider("train_samples", "Training MC samples", 1, help="Weight samples per step.")
    ctl.select_slider(
        "pred_samples", "Prediction MC samples", help="Samples of the predictive distribution."
    )


def baselines_section(ctl: Controls) -> None:
    st.checkbox("Standard network", value=True, disabled=True, key=f"{ctl.page}:standard_on")
    if ctl.checkbox(
        "show_dropout", "MC dropout", help="Gal & Ghahramani 2016: dropout left on at prediction."
    ):
        ctl.select_slider("dropout", "Dropout rate")
    if ctl.checkbox(
        "show_ensemble", "Deep ensemble", help="Lakshminarayanan et al. 2017: K standard networks."
    ):
        ctl.slider("ensemble", "Ensemble members", 1)


def run_section(ctl: Controls) -> None:
    ctl.number("seed", "Seed", 1, help="Seeds the data, the initial weights and the sampling.")
    labels = {"cuda": "cuda" if CUDA else "cuda (no GPU)"}
    ctl.select(
        "device",
        "Device",
        DEVICES,
        labels=labels,
        radio=True,
        on_change=_on_device,
        help="auto uses a CUDA GPU when there is one.",
    )


@dataclass(frozen=True)
class Settings:
    """What the sidebar asks for."""

    config: RunConfig | None  # None when the widgets' values are invalid (see `error`)
    kinds: tuple[str, ...]  # models to train: "bbb", "standard" and the chosen baselines
    mode: str  # after a change: "scratch" or "continue" from the current posterior
    preset: Preset | None  # the preset the view shows, if unchanged since it was picked
    error: str | None  # what to change, when `config` is None
    notices: tuple[str, ...]  # URL values that were ignored


def sidebar(page: str, task: str, datasets: Sequence[str]) -> Settings:
    """Draw a page's sidebar and return its `Settings`; writes the settings into the URL."""
    ctl = Controls(page, task, datasets)
    presets = presets_for(task)
    with st.sidebar:
        if presets:
            names = {"custom": "— your own settings —"} | {s: p.name for s, p in presets.items()}
            ctl.select(
                "preset",
                "Preset",
                ("custom", *presets),
                labels=names,
                on_change=_on_preset,
                args=(page, task),
                help="A named scenario that tells one story; loads its settings.",
            )
        ctl.select(
            "mode",
            "After a change",
            labels=MODE_LABELS,
            help="Retrain from new random weights, or start from the weights trained so far.",
        )
        with st.expander("Data", expanded=True):
            data_section(ctl)
        with st.expander("Prior and KL weight", expanded=True):
            prior_section(ctl)
            prior_slot = st.container()
        with st.expander("Network"):
            network_section(ctl, task)
        with st.expander("Training and sampling"):
            training_section(ctl)
        with st.expander("Baselines"):
            baselines_section(ctl)
        with st.expander("Seed and device"):
            run_section(ctl)
    values = ctl.collect()
    ctl.sync_url()
    kinds = ("bbb", "standard")
    kinds += ("dropout",) * bool(values["show_dropout"]) + ("ensemble",) * bool(
        values["show_ensemble"]
    )
    try:
        cfg = config_from_values(values)
    except ValueError as err:
        return Settings(None, kinds, values["mode"], None, friendly_error(err), tuple(ctl.notices))
    with prior_slot:
        prior_plot(cfg, key=f"{page}-prior-plot")
    preset = presets.get(values["preset"])
    return Settings(cfg, kinds, values["mode"], preset, None, tuple(ctl.notices))


def messages(settings: Settings) -> None:
    """The preset's story, ignored URL values and a settings error, above the charts."""
    if settings.preset is not None:
        st.info(f"**{settings.preset.name}.** {settings.preset.story}", icon=":material/school:")
    if settings.notices:
        st.warning(
            "Some settings in the link were not valid and use their defaults: "
            + "; ".join(settings.notices)
            + ".",
            icon=":material/link_off:",
        )
    if settings.error:
        st.error(settings.error, icon=":material/error:")
