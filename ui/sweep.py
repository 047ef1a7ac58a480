"""The "Does more data help?" panel: BBB and MC dropout trained on training sets of growing size,
their epistemic and aleatoric uncertainty drawn against the number of points
(`bbb_core.data_size`).

The sweep never blocks the page: a press of its button stores a `Sweep` in the session, and an
`st.fragment(run_every=...)` measures one (size, model) point per run and redraws the chart,
while the rest of the page (the live run included) stays usable. It uses the page's settings,
with the heteroscedastic noise head for regression (so the aleatoric part is learned per input),
on the page's generated data sets (not on an uploaded file). Its work is bounded: six sizes up to
800 points (the images page: up to all 1,437 digits), two or three models, at most `MAX_EPOCHS`
epochs each.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import streamlit as st

from bbb_core import RunConfig, make_dataset
from bbb_core.data_size import SizePoint, data_size_sweep
from bbb_core.plots import data_size_figure, model_label

SIZES = (25, 50, 100, 200, 400, 800)  # training points of the sweep
KINDS = ("bbb", "dropout")
DIGIT_SIZES = (50, 100, 200, 400, 800, 1437)  # the images page: up to all the 8x8 digits
DIGIT_KINDS = ("bbb", "dropout", "standard")  # the standard network's entropy for contrast
SAMPLES = 30  # predictive samples per point
MAX_EPOCHS = 1000  # epochs per point at most (the page's own epochs otherwise)
TICK_SECONDS = 0.1  # the fragment's run_every while the sweep runs


@dataclass
class Sweep:
    """One session's sweep: its settings and the points measured so far."""

    cfg: RunConfig
    task: str
    sizes: tuple[int, ...] = SIZES
    kinds: tuple[str, ...] = KINDS
    points: list[SizePoint] = field(default_factory=list)
    error: str | None = None
    n_full: int | None = None  # the settings' own training-set size, counted once

    def pending(self) -> list[tuple[int, str]]:
        return [(n, k) for n in self.sizes for k in self.kinds][len(self.points) :]

    @property
    def done(self) -> bool:
        return not self.pending() or self.error is not None


def sweep_config(cfg: RunConfig, task: str) -> RunConfig:
    """The page's settings as the sweep trains them."""
    model = replace(cfg.model, noise_model="hetero") if task == "regression" else cfg.model
    train = replace(cfg.train, epochs=min(cfg.train.epochs, MAX_EPOCHS))
    return replace(cfg, model=model, train=train)


def step(sweep: Sweep) -> SizePoint | None:
    """Measure the sweep's next point (None when it is done)."""
    if sweep.done:
        return None
    n, kind = sweep.pending()[0]
    try:
        if sweep.n_full is None:
            sweep.n_full = make_dataset(sweep.cfg.data, sweep.cfg.seed).n_train
        (point,) = data_size_sweep(
            sweep.cfg, [n], kinds=(kind,), samples=SAMPLES, n_full=sweep.n_full
        )
    except (ValueError, RuntimeError) as err:  # a diverged run, settings it cannot train
        sweep.error = f"{n} points, {kind}: {err}"
        return None
    sweep.points.append(point)
    return point


def _key(page: str) -> str:
    return f"{page}::size_sweep"


def _start(page: str, cfg: RunConfig, task: str, sizes, kinds) -> None:
    st.session_state[_key(page)] = Sweep(sweep_config(cfg, task), task, sizes, kinds)


def _body(page: str, timed: bool) -> None:
    sweep: Sweep | None = st.session_state.get(_key(page))
    if sweep is None:
        return
    if timed and sweep.done:
        st.rerun()  # drop the timer
    step(sweep)
    total = len(sweep.sizes) * len(sweep.kinds)
    if sweep.error:
        st.error(f"The sweep stopped: {sweep.error}.")
    elif not sweep.done:
        st.progress(len(sweep.points) / total, text=f"{len(sweep.points)} of {total} trained")
    if sweep.points:
        fig = data_size_figure(sweep.points, sweep.task, title="Does more data help?")
        st.plotly_chart(fig, key=f"{page}-size-sweep")


def panel(
    page: str,
    task: str,
    cfg: RunConfig | None,
    generated: bool,
    sizes: tuple[int, ...] = SIZES,
    kinds: tuple[str, ...] = KINDS,
) -> None:
    """The expander with the explanation, the button and the sweep's chart."""
    with st.expander("Does more data help? Epistemic against aleatoric uncertainty"):
        names = " and ".join(model_label(k) for k in kinds)
        st.markdown(
            f"Train {names} on {sizes[0]:,} to {sizes[-1]:,} points of this data set and "
            "measure, on the same test inputs, what more data would fix (the **epistemic** part: "
            "the sampled networks disagree) and what it never will (the **aleatoric** part: the "
            + ("noise, learned per input here)." if task == "regression" else "overlap).")
        )
        if cfg is None or not generated:
            st.caption("The sweep runs on the page's generated data sets with valid settings.")
            return
        sweep: Sweep | None = st.session_state.get(_key(page))
        stale = sweep is not None and sweep.cfg != sweep_config(cfg, task)
        label = "Sweep again with these settings" if stale else "Sweep the training-set size"
        args = (page, cfg, task, sizes, kinds)
        st.button(label, key=f"{page}-sweep-start", on_click=_start, args=args)
        if stale:
            st.caption("The chart below was measured with earlier settings.")
        timed = sweep is not None and not sweep.done
        st.fragment(_body, run_every=TICK_SECONDS if timed else None)(page, timed)
