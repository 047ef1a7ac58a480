"""The sidebar and the helpers of the "Priors and weights" page (Streamlit only).

The page trains three estimates of one network on one dataset: maximum likelihood (kind
"standard"), maximum a posteriori ("map": the prior's -log p(w) in the loss) and Bayes by
Backprop ("bbb"), all under the prior the sidebar sets. Its settings are rows of `ui.params`
(so the URL carries them), read by `widgets.Controls`; its presets are `presets_for("priors")`.

- `sidebar()`: the page's sidebar (preset, every prior's knobs with Blundell et al.'s grid for
  the scale mixture, data, network, training, seed) -> `widgets.Settings`.
- `page_config(cfg)`: the run the page trains: `cfg` with a cosine learning-rate decay, so the
  weights settle at the end (at a constant rate Adam keeps L1-penalised weights jittering about
  zero at roughly the learning rate, and the exact zeros of L1 would not show).
- `loss_latex(cfg)`: the loss each model minimises, with the prior's numbers (the L2 or L1
  coefficient); `loss_now(histories)`: each loss's terms at the last epoch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace

import streamlit as st

from bbb_core import RunConfig
from bbb_core.config import CLASSIFICATION_DATASETS, REGRESSION_DATASETS
from bbb_core.train import Progress

from . import widgets
from .params import config_from_values, friendly_error
from .presets import presets_for

PAGE = "priors"
TASK = "priors"  # the presets' and the URL's task name
DATASETS = REGRESSION_DATASETS + CLASSIFICATION_DATASETS
KINDS = ("bbb", "standard", "map")  # BBB first (the live loop's status line), MLE, MAP
LR_SCHEDULE = "cosine"
# Blundell et al. (2015), section 5.1: the grid the scale mixture's parameters were chosen from
PAPER_PI = (0.25, 0.5, 0.75)
PAPER_SIGMA1 = tuple(math.exp(-k) for k in (0, 1, 2))
PAPER_SIGMA2 = tuple(math.exp(-k) for k in (6, 7, 8))
PAPER_GRID = tuple((p, s1, s2) for p in PAPER_PI for s1 in PAPER_SIGMA1 for s2 in PAPER_SIGMA2)
_GRID_KEY = f"{PAGE}:paper_grid"  # a shortcut widget, not a setting: it is not in the URL
_NOT_ON_GRID = "—"


def page_config(cfg: RunConfig) -> RunConfig:
    """The run the page trains for the sidebar's `cfg` (see the module docstring)."""
    return replace(cfg, train=replace(cfg.train, lr_schedule=LR_SCHEDULE))


def scale_label(value: float) -> str:
    """0.3679 -> "e^-1 ≈ 0.368"; values that are no power of e as plain numbers."""
    k = -math.log(value)
    if value < 1 and abs(k - round(k)) < 1e-9:
        return f"e^-{round(k)} ≈ {value:.3g}"
    return f"{value:g}"


def grid_label(point: tuple[float, float, float]) -> str:
    pi, s1, s2 = point
    k1, k2 = round(-math.log(s1)), round(-math.log(s2))
    return f"π = {pi:g}, σ₁ = e^-{k1}, σ₂ = e^-{k2}" if k1 else f"π = {pi:g}, σ₁ = 1, σ₂ = e^-{k2}"


def _grid_point(values: Mapping) -> tuple[float, float, float] | str:
    for point in PAPER_GRID:
        pairs = zip(("pi", "sigma1", "sigma2"), point, strict=True)
        if all(math.isclose(values[k], v) for k, v in pairs):
            return point
    return _NOT_ON_GRID


def _on_grid() -> None:
    point = st.session_state[_GRID_KEY]
    if point != _NOT_ON_GRID:
        pi, s1, s2 = point
        widgets._set_all(
            PAGE, {"prior": "mixture", "pi": pi, "sigma1": s1, "sigma2": s2, "preset": "custom"}
        )


def prior_knobs(ctl: widgets.Controls) -> None:
    """The family, every family's knobs (their densities are drawn on the page) and the grid."""
    ctl.select("prior", "Prior family (MAP and BBB)", labels=widgets.PRIOR_LABELS)
    ctl.select_slider("sigma", "Gaussian σ", help="p(w) = N(0, σ²): MAP adds Σ w² / (2σ²), L2.")
    ctl.select_slider("b", "Laplace b", help="p(w) ∝ exp(-|w| / b): MAP adds Σ |w| / b, L1.")
    ctl.select_slider("pi", "Mixture π", help="Weight of the wide component N(0, σ₁²).")
    ctl.select_slider("sigma1", "Mixture wide σ₁", fmt=scale_label)
    ctl.select_slider("sigma2", "Mixture narrow σ₂", fmt=scale_label)
    point = st.session_state[_GRID_KEY] = _grid_point(ctl.collect())
    options = (_NOT_ON_GRID, *PAPER_GRID)
    st.selectbox(
        "Blundell et al.'s grid",
        options,
        options.index(point),  # the default too: see widgets.Controls._now
        format_func=lambda p: "— pick a point —" if p == _NOT_ON_GRID else grid_label(p),
        key=_GRID_KEY,
        on_change=_on_grid,
        help="π ∈ {1/4, 1/2, 3/4}, σ₁ ∈ {e⁰, e⁻¹, e⁻²}, σ₂ ∈ {e⁻⁶, e⁻⁷, e⁻⁸}: "
        "the scale mixtures the paper searched. Picking one selects the mixture.",
    )
    ctl.select_slider(
        "kl",
        "KL weight (BBB only)",
        help="Multiplies BBB's KL[q‖p]; MAP always charges -log p(w) at full strength.",
    )


def sidebar() -> widgets.Settings:
    """Draw the page's sidebar, write the settings into the URL, return `Settings`."""
    ctl = widgets.Controls(PAGE, TASK, DATASETS)
    presets = presets_for(TASK)
    with st.sidebar:
        widgets.preset_select(ctl, presets, widgets._on_preset, (PAGE, TASK))
        ctl.select(
            "mode",
            "After a change",
            labels=widgets.MODE_LABELS,
            help="Retrain from new random weights, or start from the weights trained so far.",
        )
        with st.expander("Prior", expanded=True):
            prior_knobs(ctl)
        with st.expander("Data", expanded=True):
            widgets.data_section(ctl)
        task = "regression" if ctl.collect()["data"] in REGRESSION_DATASETS else "classification"
        with st.expander("Network"):
            widgets.network_section(ctl, task)
        with st.expander("Training and sampling"):
            widgets.training_section(ctl)
            st.caption("Every model's learning rate decays to 0 along half a cosine.")
        with st.expander("Seed and device"):
            widgets.run_section(ctl)
    values = ctl.collect()
    ctl.sync_url()
    common = {"kinds": KINDS, "mode": values["mode"], "notices": tuple(ctl.notices)}
    try:
        cfg = page_config(config_from_values(values))
    except ValueError as err:
        return widgets.Settings(config=None, preset=None, error=friendly_error(err), **common)
    preset = presets.get(values["preset"])
    return widgets.Settings(config=cfg, preset=preset, error=None, **common)


def _penalty_latex(cfg: RunConfig) -> str:
    """-log p(w) of the configured prior with its numbers (constants dropped)."""
    p = cfg.prior
    if p.family == "gaussian":
        coef = 1 / (2 * p.sigma**2)
        return rf"\underbrace{{{coef:.4g}\sum_j w_j^2}}_{{1 / (2\sigma^2):\ \text{{L2}}}}"
    if p.family == "laplace":
        return rf"\underbrace{{{1 / p.b:.4g}\sum_j |w_j|}}_{{1 / b:\ \text{{L1}}}}"
    return r"\sum_j -\log p(w_j)"


def loss_latex(cfg: RunConfig) -> str:
    """The loss each model minimises, one aligned LaTeX block with the prior's numbers."""
    kl_w = cfg.train.kl_weight
    weight = "" if kl_w == 1 else rf"{kl_w:g}\cdot"
    nll = r"\sum_n -\log p(y_n \mid x_n, w)"
    return (
        r"\begin{aligned}"
        rf"\text{{MLE:}}\ \ & \min_w\ {nll} \\"
        rf"\text{{MAP:}}\ \ & \min_w\ {nll} + {_penalty_latex(cfg)} \\"
        rf"\text{{BBB:}}\ \ & \min_{{\mu, \rho}}\ {weight}\mathrm{{KL}}\big[q(w \mid \mu, \rho)"
        r"\,\|\,p(w)\big] - \mathbb{E}_{q}\big[\log p(\mathcal{D} \mid w)\big]"
        + _prior_line(cfg)
        + r"\end{aligned}"
    )


def _prior_line(cfg: RunConfig) -> str:
    """The prior's density as one more aligned line (the scale mixture's is too long to inline)."""
    p = cfg.prior
    if p.family != "mixture":
        return ""
    return (
        rf"\\ & p(w_j) = {p.pi:g}\,\mathcal{{N}}(w_j; 0, {_tex_scale(p.sigma1)}^2)"
        rf" + {1 - p.pi:g}\,\mathcal{{N}}(w_j; 0, {_tex_scale(p.sigma2)}^2)"
    )


def _tex_scale(value: float) -> str:
    """e^-6 as "(e^{-6})", other values as numbers."""
    k = -math.log(value)
    if value < 1 and abs(k - round(k)) < 1e-9:
        return rf"(e^{{-{round(k)}}})"
    return f"{value:.3g}"


def loss_now(histories: Mapping[str, Sequence[Progress]]) -> str:
    """The terms of each model's loss at its last epoch (sums over the training set, nats)."""
    parts = []
    for kind, text in (
        ("standard", "MLE: NLL {nll:.1f}"),
        ("map", "MAP: NLL {nll:.1f}, −log p(w) {kl:.1f}"),
        ("bbb", "BBB: NLL {nll:.1f}, KL {kl:.1f}"),
    ):
        history = histories.get(kind) or ()
        if history:
            parts.append(text.format(nll=history[-1].nll, kl=history[-1].kl))
    return " · ".join(parts)
