"""Widgets -> RunConfig: the sidebar controls of the live pages, bound to session state and
mirrored into the URL (the settings table and its conversions are in `ui.params`).

- `Controls` binds the widgets to session state (the settings of `PARAMS`, or of a page's own
  table: `ui.images`): each widget's key is `"<page>:<url key>"`. On
  a session's first visit to a page the values come from the URL (`params.read_url`); later
  they come from a per-page store in session state, so they survive page switches. The dataset
  and preset pickers reset the other widgets through their callbacks; any other knob marks the
  view as no longer the preset's.
- `sidebar(page, task, datasets)` draws a page's whole sidebar, writes every setting into the URL
  and returns `Settings`: the `RunConfig` (or the error that stops it), the models to train and
  the continue/scratch choice. `messages(settings)` shows the preset's story, ignored URL values
  (as inert text, bounded in length and number: see `params.echo`) and a settings error above
  the charts.

The sections (`data_section`, `network_section`, `prior_section`, `training_section`,
`baselines_section`, `run_section`) work for any task; a page may call them itself.
`choose_dataset(page, name)` switches a page's dataset from a callback (an upload arriving or
going, `ui.upload`); on uploaded data the data section has no generator knobs and the preset
picker offers only the presets that fit any data (`presets.ANY_DATA`), which keep the data.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import streamlit as st

from bbb_core import RunConfig, build_prior
from bbb_core.config import DEVICES, TABULAR_DATASETS
from bbb_core.plots import prior_density_figure

from .params import (
    CUDA,
    MAX_HIDDEN_CHARS,
    PARAMS,
    Param,
    config_from_values,
    dataset_values,
    friendly_error,
    hidden_rule,
    preset_values,
    read_url,
    url_params,
)
from .presets import ANY_DATA, Preset, presets_for

# --- widgets bound to session state ---------------------------------------------------------------


def _wkey(page: str, key: str) -> str:
    return f"{page}:{key}"


def _store_key(page: str) -> str:
    return f"{page}::values"


def _url_notices_key(page: str) -> str:
    return f"{page}::url_notices"


def _set_all(page: str, values: Mapping[str, Any]) -> None:
    """Set every widget of `page` (in a callback, before the widgets are drawn)."""
    st.session_state.pop(_url_notices_key(page), None)  # the user has moved on from the link
    store = st.session_state[_store_key(page)]
    store.update(values)
    for key, value in values.items():
        st.session_state[_wkey(page, key)] = value


def _on_dataset(page: str, table: Mapping[str, Param] = PARAMS) -> None:
    store = st.session_state[_store_key(page)]
    _set_all(page, dataset_values(st.session_state[_wkey(page, "data")], store, table))


def _on_preset(page: str, task: str, table: Mapping[str, Param] = PARAMS) -> None:
    slug = st.session_state[_wkey(page, "preset")]
    preset = presets_for(task).get(slug)
    if preset is not None:
        store = st.session_state[_store_key(page)]
        values = preset_values(preset, store, table)
        if store.get("data") in TABULAR_DATASETS.values():  # keep the uploaded data
            values.update(data=store["data"], n=None, noise=None)
        _set_all(page, values)


def choose_dataset(page: str, name: str, **values: Any) -> None:
    """Show dataset `name` on `page` with its default settings and `values` (call it in a
    callback: before the widgets are drawn). Used when an upload arrives or goes."""
    if _store_key(page) in st.session_state:
        _set_all(page, dataset_values(name, st.session_state[_store_key(page)]) | values)


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
    to their defaults and are listed in `notices`, which stay until a setting changes: the run
    that finishes may rerun the page within a second); later they come from session state, so
    they survive page switches. Draw widgets with the methods below, then call `sync_url()`.
    """

    def __init__(
        self,
        page: str,
        task: str,
        datasets: Sequence[str],
        table: Mapping[str, Param] = PARAMS,
    ) -> None:
        self.page, self.task, self.datasets, self.table = page, task, tuple(datasets), table
        if _store_key(page) not in st.session_state:
            params = st.query_params.to_dict()
            values, notices = read_url(params, task, self.datasets, table)
            st.session_state[_store_key(page)] = values
            st.session_state[_url_notices_key(page)] = tuple(notices)
        self.notices: list[str] = list(st.session_state.get(_url_notices_key(page), ()))
        self.values: dict[str, Any] = st.session_state[_store_key(page)]
        for key, value in self.values.items():  # restore widgets Streamlit dropped
            if _wkey(page, key) not in st.session_state:
                st.session_state[_wkey(page, key)] = value

    def _now(self, key: str) -> Any:
        """The widget's value in session state, given to the widget as its default too.

        Streamlit sends a value set through session state to the browser once; a widget the
        browser draws again before it has stored that value (a full rerun right after the first
        one) falls back to its default. With the current value as the default it shows the
        right value either way.
        """
        return st.session_state[_wkey(self.page, key)]

    def _common(self, key: str, help: str | None, on_change: Callable | None = None) -> dict:
        return {
            "key": _wkey(self.page, key),
            "help": help,
            "on_change": on_change or _on_knob,
            "args": (self.page,),
        }

    def _options(self, key: str, options: Sequence[Any] | None) -> tuple:
        options = tuple(options) if options is not None else self.table[key].options
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
        index = options.index(self._now(key))
        if radio:
            return st.radio(label, options, index, format_func=fmt, horizontal=True, **kw)
        return st.selectbox(label, options, index, format_func=fmt, **kw)

    def select_slider(
        self, key: str, label: str, *, fmt: Callable[[Any], str] = "{:g}".format, help=None
    ) -> Any:
        options = self._options(key, None)
        return st.select_slider(
            label, options, self._now(key), format_func=fmt, **self._common(key, help)
        )

    def slider(self, key: str, label: str, step: int, *, help: str | None = None) -> Any:
        param = self.table[key]
        low, high = int(param.low), int(param.high)
        return st.slider(label, low, high, self._now(key), step, **self._common(key, help))

    def number(
        self, key: str, label: str, step: float, *, fmt: str | None = None, help=None
    ) -> Any:
        param = self.table[key]
        cast = int if param.type == "int" else float
        return st.number_input(
            label,
            min_value=cast(param.low),
            max_value=cast(param.high),
            value=self._now(key),
            step=cast(step),
            format=fmt,
            **self._common(key, help),
        )

    def checkbox(self, key: str, label: str, *, help: str | None = None) -> bool:
        return st.checkbox(label, self._now(key), **self._common(key, help))

    def text(self, key: str, label: str, *, max_chars: int, help: str | None = None) -> str:
        return st.text_input(label, self._now(key), max_chars=max_chars, **self._common(key, help))

    def collect(self) -> dict[str, Any]:
        """The current values (drawn widgets' values, the stored value for the others)."""
        for key in list(self.values):
            self.values[key] = st.session_state.get(_wkey(self.page, key), self.values[key])
        return dict(self.values)

    def sync_url(self) -> None:
        """Write every setting into the URL (only when something changed)."""
        wanted = url_params(self.collect(), self.table)
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
    "csv_regression": "your CSV file (uploaded)",
    "csv_classification": "your CSV file (uploaded)",
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
    if name in TABULAR_DATASETS.values():
        st.caption("Your uploaded file: its columns are chosen above the charts.")
        return
    ctl.slider("n", "Training points", 10, help="How many training points to draw.")
    ctl.number("noise", "Data noise", 0.01, fmt="%g", help="Noise level of the generator.")
    if name == "gap":
        ctl.select_slider("gap", "Gap width", help="Width of the empty interval between clusters.")


def network_section(ctl: Controls, task: str) -> None:
    ctl.text(
        "hidden",
        "Hidden layers",
        max_chars=MAX_HIDDEN_CHARS,
        help=f"Widths of the hidden layers: {hidden_rule()}.",
    )
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


def prior_family_knobs(ctl: Controls) -> str:
    """The prior family and the knobs of its width; returns the family."""
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
    return family


def prior_section(ctl: Controls) -> None:
    prior_family_knobs(ctl)
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


def kinds_from(values: Mapping[str, Any]) -> tuple[str, ...]:
    """The models a page trains: BBB, the standard network and the baselines switched on."""
    baselines = ("dropout",) * bool(values["show_dropout"])
    return ("bbb", "standard", *baselines, *("ensemble",) * bool(values["show_ensemble"]))


def preset_select(ctl: Controls, presets: Mapping, on_change: Callable, args: tuple = ()) -> None:
    """The preset picker: "your own settings" and each preset by name."""
    names = {"custom": "— your own settings —"} | {s: p.name for s, p in presets.items()}
    ctl.select(
        "preset",
        "Preset",
        ("custom", *presets),
        labels=names,
        on_change=on_change,
        args=args,
        help="A named scenario that tells one story; loads its settings.",
    )


def sidebar(page: str, task: str, datasets: Sequence[str]) -> Settings:
    """Draw a page's sidebar and return its `Settings`; writes the settings into the URL."""
    ctl = Controls(page, task, datasets)
    presets = presets_for(task)
    if ctl.values.get("data") in TABULAR_DATASETS.values():  # the presets that fit any data
        presets = {slug: p for slug, p in presets.items() if slug in ANY_DATA}
    with st.sidebar:
        if presets:
            preset_select(ctl, presets, _on_preset, (page, task))
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
    kinds = kinds_from(values)
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
    if settings.notices:  # Markdown in which the link's text is inert (`params.read_url`)
        st.warning(
            "Some settings in the link were not valid and use their defaults:\n"
            + "".join(f"\n- {notice}" for notice in settings.notices),
            icon=":material/link_off:",
        )
    if settings.error:
        st.error(settings.error, icon=":material/error:")
