"""The per-session live run: Bayes by Backprop and its baselines training while the charts redraw.

A `LiveRun` holds one `bbb_core.Trainer` per model kind ("bbb", "standard", "dropout",
"ensemble", "map") on one shared dataset. It lives in `st.session_state` (never in a cache shared by
sessions); a session keeps at most one run, so at most one model of each kind.

- `update_run(previous, page, cfg, kinds, mode)`: after a knob moves, retrain only the models
  whose training the change affects (`relevant_config`): from scratch, or from the current
  posterior when `mode == "continue"` (falling back to scratch, with a notice, when the
  architecture changed). A change of the prediction samples retrains nothing.
- `tick(run, seconds)`: the step function: advance the unfinished trainers for about `seconds`,
  catching divergence. `step_run` trains a fixed number of epochs; `reset_run` goes back to
  epoch 0.
- `predictions(run, x_name)` and `finish(run)`: the predictive on the plotted inputs (fewer Monte
  Carlo samples while training, all of them once finished) and the metrics, both cached per run
  (a page with its own analysis passes `evaluate_run`; `run.series` keeps what a page records
  frame by frame, such as the test accuracy per epoch).
- `live_panel(page, cfg, kinds, mode, draw)`: the Play / Pause, Step and Reset buttons and an
  `st.fragment(run_every=TICK_SECONDS)` that redraws the page's charts (`draw(run)`) from the
  run as it stands. The timer runs only while training; when the run finishes the fragment asks
  for one full rerun, which shows the metrics and stops it. A new run estimated to train for
  minutes (`bbb_core.cost`) says so and waits, paused, for Play.

How a frame works: the fragment first draws the run as it stands (so the browser gets the
charts at once and renders them while the server trains), then trains for a slice of about
DRAW_SHARE times the redraw's duration, cut into CHUNK_SECONDS chunks after each of which the
progress bar moves; those updates are also where a moved knob interrupts the frame. The first
frame after a change trains FIRST_SLICE, draws and ends, so the first chart comes quickly. (It
ends there, inside the full rerun the change caused, rather than training on: in a real
browser, training on there, with the fragment's timer already firing, was followed in 3 of 21
test runs by every sidebar widget showing its minimum, for a reason not understood.) A frame
that can finish the run (the rest estimated at most FINISH_WITHIN) trains to the end: the final
view then follows at once, instead of after more round trips through the browser, each
redrawing a run that is nearly finished.

Every trainer draws its initial weights, minibatches and Monte Carlo noise from its own random
streams (`bbb_core.rng`), and the charts and metrics from streams of their own derived from the
seed, so a run's result depends only on its config and seed: not on how training was sliced into
ticks, on the live redraws, or on other sessions training at the same time. No lock is needed:
nothing here touches PyTorch's global generator.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import streamlit as st

from bbb_core import (
    Dataset,
    RunConfig,
    Trainer,
    TrainingDiverged,
    evaluate,
    make_dataset,
    predictive,
)
from bbb_core.cost import duration, estimate_seconds
from bbb_core.plots import model_label
from bbb_core.process import configure_threads
from bbb_core.rng import derive_seed

RUN_KEY = "live_run"  # st.session_state key of the session's one LiveRun
TICK_SECONDS = 0.05  # run_every of the live fragment: the next frame starts when asked for
FIRST_SLICE = 0.1  # training before the first chart after a change, so the chart shows it
SLICE_SECONDS = 0.8  # least training per frame, shared by the unfinished models
MAX_SLICE = 1.5  # most training per frame, unless the frame can finish the run:
FINISH_WITHIN = 2.5  # when the rest is estimated to take at most this, one frame trains it all,
FINISH_MARGIN = 1.5  # taking at most this times the estimate
DRAW_SHARE = 4.0  # train this many times as long as the frame's redraw took (within the bounds)
CHUNK_SECONDS = 0.1  # the progress bar moves (and a moved knob can interrupt) this often
LIVE_SAMPLES = 30  # predictive samples while training (the configured number once finished)
HISTORY_LIMIT = 2000  # Progress entries kept per trainer
STEP_FRACTION = 20  # "Step" trains epochs / STEP_FRACTION epochs

PREDICT_STREAM = 2  # the sub-stream of the run's seed the charts' predictive draws from
LONG_RUN = 120.0  # seconds: a run estimated to train longer says so and waits for Play

_log = logging.getLogger(__name__)
APP_THREADS = 1  # intra-op CPU threads of the app's process (see below)
_DEBUG = bool(os.environ.get("BBB_LIVE_DEBUG"))  # print tick timings to stderr

# The app owns its process, so it makes the one process-wide setting here, once, at start-up:
# one intra-op CPU thread per training thread. The toy networks train fastest on one (their
# operations are too small to split), and the sessions' threads then share the cores.
configure_threads(APP_THREADS)


@dataclass
class LiveRun:
    """One session's models in training (see the module docstring)."""

    page: str  # the page that owns the run
    cfg: RunConfig  # the settings (model.kind is ignored: see `kind_config`)
    kinds: tuple[str, ...]  # the models, "bbb" first
    dataset: Dataset
    trainers: dict[str, Trainer]
    playing: bool = True
    error: str | None = None  # what went wrong and what to change (training stopped)
    notices: tuple[str, ...] = ()  # short messages about the last change
    version: int = 0  # bumped whenever a model changes (invalidates cached predictions)
    ticks: int = 0
    started: float = field(default_factory=time.perf_counter)
    finished_after: float | None = None  # wall seconds from start to the last model done
    metrics: dict[str, dict[str, float]] | None = None
    draw_seconds: float = 0.0  # how long the last redraw took
    # what a page records frame by frame (e.g. test accuracy per epoch): kept while training
    series: dict[Any, Any] = field(default_factory=dict, repr=False)
    _cache: dict[Any, Any] = field(default_factory=dict, repr=False)

    @property
    def done(self) -> bool:
        return all(t.done for t in self.trainers.values())

    @property
    def active(self) -> bool:
        """Whether the live fragment should keep ticking."""
        return self.playing and self.error is None and not self.done

    def seconds_left(self) -> float | None:
        """Estimated training seconds to the end: each unfinished model's epochs to go times its
        seconds per epoch so far (None while one of them has not trained an epoch yet)."""
        left = 0.0
        for t in self.trainers.values():
            if t.done:
                continue
            if t.epoch == 0:
                return None
            left += (t.cfg.train.epochs - t.epoch) * t.seconds / t.epoch
        return left

    def next_slice(self) -> float:
        """Training seconds for the next frame: DRAW_SHARE times the last redraw, so drawing
        takes about 1 / (1 + DRAW_SHARE) of the time, within [SLICE_SECONDS, MAX_SLICE]; or, when
        the rest of the run is estimated to take at most FINISH_WITHIN, long enough to finish it:
        each redraw costs a round trip through the browser, and one that shows a nearly finished
        run only delays the finished one."""
        slice_ = min(MAX_SLICE, max(SLICE_SECONDS, DRAW_SHARE * self.draw_seconds))
        left = self.seconds_left()
        if left is not None and left <= FINISH_WITHIN:
            return max(slice_, FINISH_MARGIN * left + CHUNK_SECONDS)
        return slice_

    @property
    def epochs(self) -> int:
        return self.cfg.train.epochs

    def progress(self) -> float:
        """Share of all epochs trained, over all models."""
        total = sum(t.cfg.train.epochs for t in self.trainers.values())
        return sum(min(t.epoch, t.cfg.train.epochs) for t in self.trainers.values()) / total


def kind_config(cfg: RunConfig, kind: str) -> RunConfig:
    """`cfg` for model `kind`."""
    return replace(cfg, model=replace(cfg.model, kind=kind))


_PRIOR_FIELDS = {"gaussian": ("sigma",), "laplace": ("b",), "mixture": ("pi", "sigma1", "sigma2")}


def relevant_config(cfg: RunConfig, kind: str) -> RunConfig:
    """`cfg` for `kind` with the fields that cannot change how `kind` trains set to defaults.

    Two configs whose relevant parts are equal train the same model, so moving the KL weight
    retrains BBB but not the standard network, and the prediction samples retrain nothing. The
    prior matters to "bbb" and "map"; the KL weight only to "bbb" (MAP charges -log p(w) at full
    strength), the KL schedule to both (it shares the prior's term over the minibatches).
    """
    base = RunConfig()
    cfg = kind_config(cfg, kind)
    cfg = replace(cfg, data=replace(cfg.data, ood=None))  # the OOD set only scores the models
    train = replace(cfg.train, pred_samples=base.train.pred_samples)
    model = cfg.model
    if kind != "dropout":
        model = replace(model, dropout=base.model.dropout)
    if kind != "ensemble":
        model = replace(model, ensemble_size=base.model.ensemble_size)
    if kind in ("bbb", "map"):
        keep = {name: getattr(cfg.prior, name) for name in _PRIOR_FIELDS[cfg.prior.family]}
        prior = replace(base.prior, family=cfg.prior.family, **keep)
        model = replace(model, weight_decay=base.model.weight_decay)
    if kind == "map":  # a point estimate: no sampling, no KL weight
        model = replace(model, estimator=base.model.estimator, rho0=base.model.rho0)
        train = replace(
            train, kl_weight=base.train.kl_weight, train_samples=base.train.train_samples
        )
    elif kind != "bbb":
        prior = base.prior
        model = replace(model, estimator=base.model.estimator, rho0=base.model.rho0)
        train = replace(
            train,
            kl_weight=base.train.kl_weight,
            kl_schedule=base.train.kl_schedule,
            warmup_epochs=base.train.warmup_epochs,
        )
        if kind != "dropout":  # deterministic networks: extra samples are identical copies
            train = replace(train, train_samples=base.train.train_samples)
    if train.kl_schedule != "warmup":
        train = replace(train, warmup_epochs=base.train.warmup_epochs)
    return replace(cfg, model=model, prior=prior, train=train)


# --- building and changing runs -----------------------------------------------------------------


def _new_trainer(cfg: RunConfig, kind: str, dataset: Dataset, init_from=None) -> Trainer:
    """A trainer for model `kind` (its random streams seeded by the config)."""
    return Trainer(
        kind_config(cfg, kind), dataset, init_from=init_from, history_limit=HISTORY_LIMIT
    )


def _same_data(a: RunConfig, b: RunConfig) -> bool:
    """Whether `a` and `b` train on the same data (the images' chosen OOD set only picks the set
    the metrics score: every set is in the dataset)."""
    return replace(a.data, ood=None) == replace(b.data, ood=None) and a.seed == b.seed


def update_run(
    previous: LiveRun | None,
    page: str,
    cfg: RunConfig,
    kinds: tuple[str, ...],
    mode: str = "scratch",
    dataset_fn: Callable[[RunConfig], Dataset] | None = None,
) -> LiveRun:
    """The run for these settings: `previous` itself when nothing changed, else a new run that
    keeps the models the change does not affect and (re)trains the others (see the module
    docstring). Raises ValueError for settings `Trainer` rejects."""
    if previous is not None and previous.page != page:
        previous = None
    if previous is not None and previous.cfg == cfg and previous.kinds == kinds:
        return previous
    make = dataset_fn or (lambda c: make_dataset(c.data, c.seed))
    same_data = previous is not None and _same_data(previous.cfg, cfg)
    dataset = previous.dataset if same_data else make(cfg)
    trainers: dict[str, Trainer] = {}
    series: dict[Any, Any] = {}  # what the page recorded of the models that are kept
    notices: list[str] = []
    for kind in kinds:
        old = previous.trainers.get(kind) if previous is not None else None
        if (
            old is not None
            and same_data
            and previous.error is None
            and relevant_config(old.cfg, kind) == relevant_config(cfg, kind)
        ):
            trainers[kind] = old
            if kind in previous.series:
                series[kind] = previous.series[kind]
            continue
        warm = old is not None and mode == "continue" and previous.error is None
        try:
            trainers[kind] = _new_trainer(cfg, kind, dataset, old.model if warm else None)
        except ValueError:
            if not warm:
                raise
            trainers[kind] = _new_trainer(cfg, kind, dataset)
            notices.append(
                f"{model_label(kind)}: the architecture changed, so it started from scratch."
            )
    run = LiveRun(page, cfg, tuple(kinds), dataset, trainers, notices=tuple(notices))
    run.series.update(series)
    return run


def reset_run(run: LiveRun) -> LiveRun:
    """The same settings back at epoch 0 (fresh weights from the seed), paused."""
    fresh = update_run(None, run.page, run.cfg, run.kinds, dataset_fn=lambda _: run.dataset)
    fresh.playing = False
    return fresh


# --- the step function --------------------------------------------------------------------------


def _advance(run: LiveRun, kind: str, seconds: float, max_epochs: int | None = None) -> int:
    """Advance trainer `kind`; a divergence stops the run with a message. Returns epochs done."""
    trainer = run.trainers[kind]
    try:
        return len(trainer.advance(seconds, max_epochs=max_epochs))
    except TrainingDiverged as err:
        run.error = f"{model_label(kind)} diverged: {err}."
        run.playing = False
        return 0


def _after_training(run: LiveRun, epochs: int) -> int:
    if epochs:
        run.version += 1
        run._cache.clear()
        run.metrics = None
    if run.done and run.finished_after is None:
        run.finished_after = time.perf_counter() - run.started
    return epochs


def tick(run: LiveRun, seconds: float = SLICE_SECONDS) -> int:
    """Advance every unfinished model for about `seconds` in all (an equal share each).

    Returns the number of epochs trained, summed over the models. Does nothing to a finished
    run or one that has stopped with an error.
    """
    pending = [kind for kind, t in run.trainers.items() if not t.done]
    epochs = 0
    for kind in pending:
        if run.error is not None:
            break
        epochs += _advance(run, kind, seconds / len(pending))
    run.ticks += 1
    return _after_training(run, epochs)


def step_run(run: LiveRun, epochs: int | None = None) -> int:
    """Train every unfinished model `epochs` more epochs (default: 1/20 of the run), pause."""
    epochs = epochs or max(1, run.epochs // STEP_FRACTION)
    run.playing = False
    done = 0
    for kind, trainer in run.trainers.items():
        if run.error is None and not trainer.done:
            done += _advance(run, kind, float("inf"), max_epochs=epochs)
    return _after_training(run, done)


# --- what the charts show -----------------------------------------------------------------------


def samples_for(run: LiveRun, kind: str) -> int:
    """Monte Carlo samples of `kind`'s predictive now: one for a deterministic network, fewer
    while training so redraws stay quick, the configured number once finished."""
    if kind in ("standard", "map"):
        return 1
    wanted = run.cfg.train.pred_samples
    return wanted if run.done else min(wanted, LIVE_SAMPLES)


def predictions(run: LiveRun, x_name: str = "x_grid") -> dict[str, Any]:
    """Each model's predictive at `run.dataset.<x_name>`, cached until the models change."""
    key = ("pred", x_name)
    if key not in run._cache:
        x = getattr(run.dataset, x_name)
        seed = derive_seed(run.cfg.seed, PREDICT_STREAM)
        run._cache[key] = {
            kind: predictive(trainer.model, x.to(trainer.device), samples_for(run, kind), rng=seed)
            for kind, trainer in run.trainers.items()
        }
    return run._cache[key]


def finish(
    run: LiveRun, evaluate_run: Callable[[LiveRun], dict] | None = None
) -> dict[str, dict[str, float]]:
    """Every model's metrics, computed once per finished run: by `bbb_core.evaluate`, or by
    `evaluate_run(run)` for a page that computes them with its own analysis."""
    if run.metrics is None and evaluate_run is not None:
        run.metrics = evaluate_run(run)
    if run.metrics is None:  # each model's draws from streams derived from the seed
        run.metrics = {
            kind: evaluate(t.model, run.dataset, kind_config(run.cfg, kind))
            for kind, t in run.trainers.items()
        }
    return run.metrics


def status_text(run: LiveRun) -> tuple[str, str]:
    """Where training stands: a state ("Training", "Paused", "Finished", "Stopped") and details."""
    epochs = " · ".join(
        f"{model_label(k)} {t.epoch}/{t.cfg.train.epochs}" for k, t in run.trainers.items()
    )
    if run.error:
        return "Stopped", epochs
    if run.done:
        times = ", ".join(f"{model_label(k)} {t.seconds:.1f} s" for k, t in run.trainers.items())
        return "Finished", f"{run.epochs} epochs in {run.finished_after or 0.0:.1f} s ({times})"
    return ("Training" if run.playing else "Paused"), f"epoch {epochs}"


# --- Streamlit: the panel and its fragment ------------------------------------------------------


@st.cache_resource(max_entries=16, show_spinner=False)
def _cached_dataset(data_json: str, seed: int) -> Dataset:
    """Generated datasets, shared read-only across sessions (keyed by config and seed)."""
    return make_dataset(RunConfig.from_json(data_json).data, seed)


def cached_dataset(cfg: RunConfig) -> Dataset:
    return _cached_dataset(RunConfig(data=cfg.data).to_json(), cfg.seed)


def current_run(page: str) -> LiveRun | None:
    run = st.session_state.get(RUN_KEY)
    return run if run is not None and run.page == page else None


def sync_run(
    page: str,
    cfg: RunConfig,
    kinds: tuple[str, ...],
    mode: str,
    dataset_fn: Callable[[RunConfig], Dataset] | None = None,
) -> LiveRun:
    """The session's run for these settings (see `update_run`), stored in session state. The
    dataset comes from `dataset_fn` (the session's own uploaded data) or else from the generated
    sets shared read-only by all sessions (`cached_dataset`)."""
    make = dataset_fn or cached_dataset
    run = update_run(st.session_state.get(RUN_KEY), page, cfg, kinds, mode, make)
    st.session_state[RUN_KEY] = run
    return run


def _play() -> None:
    st.session_state[RUN_KEY].playing = True


def _pause() -> None:
    st.session_state[RUN_KEY].playing = False


def _step() -> None:
    step_run(st.session_state[RUN_KEY])


def _reset() -> None:
    st.session_state[RUN_KEY] = reset_run(st.session_state[RUN_KEY])


def buttons(run: LiveRun) -> None:
    """Play / Pause, Step and Reset."""
    cols = st.columns([1, 1, 1, 5], vertical_alignment="center")
    stopped = run.done or run.error is not None
    if run.active:
        cols[0].button("Pause", icon=":material/pause:", on_click=_pause, width="stretch")
    else:
        cols[0].button(
            "Play", icon=":material/play_arrow:", on_click=_play, disabled=stopped, width="stretch"
        )
    cols[1].button(
        "Step",
        icon=":material/skip_next:",
        on_click=_step,
        disabled=stopped,
        help=f"Train {max(1, run.epochs // STEP_FRACTION)} epochs, then pause.",
        width="stretch",
    )
    cols[2].button(
        "Reset",
        icon=":material/restart_alt:",
        on_click=_reset,
        help="Back to epoch 0 (same seed), paused.",
        width="stretch",
    )


def _status(run: LiveRun, slot) -> None:
    """Write the status line (a progress bar while training) into the `st.empty()` `slot`."""
    state, details = status_text(run)
    if state in ("Training", "Paused"):
        slot.progress(run.progress(), text=f"**{state}** · {details}")
    else:
        color = "green" if state == "Finished" else "red"
        slot.markdown(f":{color}[**{state}**] · {details}")


def _body(
    page: str, draw: Callable[[LiveRun], None], timed: bool, evaluate_run: Callable | None = None
) -> None:
    run = current_run(page)
    if run is None:
        return
    if timed and not run.active:  # finished or stopped since the timer started: a full rerun
        st.rerun()  # shows the result and drops the timer
    with st.container(key=f"{page}-live"):
        _frame(run, page, draw, evaluate_run)


def _debug(run: LiveRun, frame_start: float, kind: str) -> None:
    """With BBB_LIVE_DEBUG set: the frame's start and end (seconds since the run started), its
    redraw's duration and BBB's progress, on stderr."""
    if _DEBUG:
        bbb = run.trainers.get("bbb")
        print(
            f"[live] {kind:5} {frame_start - run.started:7.3f} -> "
            f"{time.perf_counter() - run.started:7.3f} s: draw {run.draw_seconds:.3f} s, "
            f"BBB epoch {bbb.epoch if bbb else '-'}, trained {bbb.seconds if bbb else 0:.2f} s",
            file=sys.stderr,
        )


def _frame(
    run: LiveRun,
    page: str,
    draw: Callable[[LiveRun], None],
    evaluate_run: Callable[[LiveRun], dict] | None = None,
) -> None:
    """One frame: draw the run as it stands, then train a slice (see the module docstring)."""
    first = run.active and run.ticks == 0
    frame_start = time.perf_counter()
    if first:
        tick(run, FIRST_SLICE)
    if run.done and run.error is None:
        finish(run, evaluate_run)
    start = time.perf_counter()
    with st.container(key=f"{page}-status"):  # CSS class st-key-<page>-status (for tests)
        status = st.empty()
    if run.active:
        _status(run, status)
    if run.error:
        st.error(run.error, icon=":material/error:")
    try:
        draw(run)
    except Exception:  # noqa: BLE001 - visitors get a message; the log gets the traceback
        _log.exception("drawing the %s run failed", page)
        st.error("Could not draw this run. Try Reset or other settings.")
    run.draw_seconds = time.perf_counter() - start
    if not run.active:  # "Finished" (or "Paused") once the charts are on their way
        _status(run, status)
    if first or not run.active:
        _debug(run, frame_start, "first" if first else "final")
        return
    deadline = time.perf_counter() + run.next_slice()
    while run.active and time.perf_counter() < deadline:
        tick(run, min(CHUNK_SECONDS, max(0.0, deadline - time.perf_counter())))
        if run.active or run.error:
            _status(run, status)
        else:  # "Finished" waits for the final view: the charts still show the last frame
            status.progress(1.0, text="**Finishing** · the final charts and the metrics")
    _debug(run, frame_start, "live")
    if not run.active:  # finished or stopped: one full rerun shows the result, drops the timer
        st.rerun()


def _long_run_notice(run: LiveRun) -> bool:
    """Say how long a run estimated at over LONG_RUN seconds would train; True when it is that
    long (a GPU's runs are not estimated)."""
    if run.done or any(t.device.type != "cpu" for t in run.trainers.values()):
        return False
    seconds = estimate_seconds(run.cfg, run.kinds, run.dataset)
    if seconds <= LONG_RUN:
        return False
    st.warning(
        f"These settings would train for about **{duration(seconds)}** on this server "
        f"({run.epochs:,} epochs of {run.dataset.n_train:,} points, {len(run.kinds)} models). "
        "The run waits for **Play**; fewer epochs, points, samples or units train in seconds.",
        icon=":material/timer:",
    )
    return True


def live_panel(
    page: str,
    cfg: RunConfig | None,
    kinds: tuple[str, ...],
    mode: str,
    draw: Callable[[LiveRun], None],
    dataset_fn: Callable[[RunConfig], Dataset] | None = None,
    *,
    evaluate_run: Callable[[LiveRun], dict] | None = None,
) -> LiveRun | None:
    """Sync the session's run with the settings, draw the buttons and the live fragment.

    `draw(run)` renders the page's charts from `predictions(run)` and `run.metrics`; it runs
    inside the fragment, so only the charts redraw while training. With `cfg` None (settings the
    page could not turn into a config) the current run stays as it is. `dataset_fn` as in
    `sync_run`; `evaluate_run` as in `finish`. A new run that `bbb_core.cost` estimates at over
    LONG_RUN seconds says how long it would train and waits, paused, for Play.
    """
    run = current_run(page)
    if cfg is not None:
        previous = run
        try:
            run = sync_run(page, cfg, kinds, mode, dataset_fn)
            if _long_run_notice(run) and run is not previous and run.ticks == 0:
                run.playing = any(t.epoch for t in run.trainers.values())
        except (TrainingDiverged, ValueError) as err:  # bbb_core's own, plain-text messages
            _log.info("settings rejected on the %s page: %s", page, err)
            st.error(f"These settings cannot train: {err}.", icon=":material/error:")
            return None
    if run is None:
        return None
    if _DEBUG:
        print(f"[live] panel {time.perf_counter() - run.started:7.3f}", file=sys.stderr)
    for notice in run.notices:  # as long as this run is shown (a knob starts a new one)
        st.info(notice, icon=":material/info:")
    buttons(run)
    # The charts redraw several times a second: do not fade them out as "stale" meanwhile.
    st.html(
        f"<style>.st-key-{page}-live [data-stale='true'] "
        "{opacity: 1 !important; transition: none !important;}</style>"
    )
    timed = run.active
    st.fragment(_body, run_every=TICK_SECONDS if timed else None)(page, draw, timed, evaluate_run)
    return run
