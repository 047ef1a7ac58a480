"""A session's live run: Bayes by Backprop and its baselines training while the charts redraw.

A `LiveRun` is what one browser session watches: one `ui.runs.Job` per model kind ("bbb",
"standard", "dropout", "ensemble", "map") on one dataset. The jobs train in the server's worker
pool (`ui.runs.Pool`), not in the session: the session holds which jobs it watches, and its live
fragment redraws the charts from their latest snapshots.

- Shared runs: a model's training is a value of its relevant settings and seed
  (`relevant_config`), so the jobs of generated data come from the process-wide store
  (`ui.runs.Store`): the first session asking for one trains it, every other session watches the
  same training and gets the same finished result. A warm start ("continue" from the session's
  posterior) and the session's uploaded data are private jobs, never shared.
- `update_run(previous, page, cfg, kinds, mode, ...)`: after a knob moves, only the models whose
  training the change affects get new jobs: from scratch, or from the current posterior when
  `mode == "continue"` (falling back to scratch, with a notice, when the architecture changed).
  A change of the prediction samples retrains nothing.
- The buttons never change what another session sees. Play asks for training. **Pause** stops
  this tab's training and redraws and keeps its run where it stands: a shared job that other
  sessions still watch goes on for them while this tab gets an exact copy (`Store.detach`:
  weights, optimiser and random streams, so played on it ends as the shared run does); one no
  one else watches simply becomes the tab's own. **Step** does the same, then trains 1/20 of
  the epochs. **Reset** starts a private run of the same settings at epoch 0, paused. A knob
  moved afterwards goes back to the shared runs.
- `tick(run, seconds)` trains the unfinished models in the caller's thread (the step function,
  as tests drive it); `step_run` trains a fixed number of epochs; `reset_run` goes back to
  epoch 0.
- `predictions(run, x_name)` and `finish(run)`: the predictive on the plotted inputs (fewer Monte
  Carlo samples while training, all of them once finished) and the metrics. Predictives are
  cached on each job's snapshot, and whatever a page computes from a run (`cached(run, key,
  compute)`: figures, metrics, analyses) per page, config and snapshots, in one cache shared by
  the sessions (`ui.runs.Views`): many viewers of a run cost one computation.
- `live_panel(page, cfg, kinds, mode, draw)`: the Play / Pause, Step and Reset buttons and an
  `st.fragment(run_every=redraw_seconds(run))` that redraws the page's charts (`draw(run)`) from the
  run as it stands and tells the store the session still watches. The timer runs only while
  training; when the run finishes the next frame asks for one full rerun, which shows the
  metrics and stops it. A paused run keeps a slow heartbeat (`HEARTBEAT_SECONDS`), so the store
  knows the tab is still open. A run no session has watched for `ui.runs.UNWATCHED_SECONDS`
  stops and is let go; a tab that comes back starts it again. A new run estimated to train for
  minutes (`bbb_core.cost`) says so and waits, paused, for Play.

A frame of a playing run whose models are still at epoch 0 (the first after a change, or after
Play on a new run) trains them for FIRST_SLICE in the session's own thread, then draws, so the
first chart shows training at once; the workers train the rest (and all of a large network).

Every trainer draws its initial weights, minibatches and Monte Carlo noise from its own random
streams (`bbb_core.rng`), and the charts and metrics from streams of their own derived from the
seed, so a run's result depends only on its config and seed: not on how training was sliced, on
the live redraws, or on other sessions training at the same time. No lock is needed around
training: nothing here touches PyTorch's global generator.
"""

from __future__ import annotations

import atexit
import itertools
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Hashable, Iterator, MutableMapping
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
from ui import runs
from ui.runs import HISTORY_LIMIT, Job, Store, Views

RUN_KEY = "live_run"  # st.session_state key of the session's one LiveRun
TOKEN_KEY = "live_token"  # st.session_state key of the session's watcher number
REDRAW_SECONDS = 1.0  # run_every of the live fragment while training: one redraw per this
HEARTBEAT_SECONDS = 3.0  # a paused tab tells the store it is still open this often
FIRST_SLICE = 0.1  # training before the first chart after a change, so the chart shows it
LIVE_SAMPLES = 30  # predictive samples while training (the configured number once finished)
STEP_FRACTION = 20  # "Step" trains epochs / STEP_FRACTION epochs

PREDICT_STREAM = 2  # the sub-stream of the run's seed the charts' predictive draws from
LONG_RUN = 120.0  # seconds: a run estimated to train longer says so and waits for Play

_log = logging.getLogger(__name__)
APP_THREADS = 1  # intra-op CPU threads of the app's process (see below)
_DEBUG = bool(os.environ.get("BBB_LIVE_DEBUG"))  # print frame timings to stderr

# The app owns its process, so it makes the one process-wide setting here, once, at start-up:
# one intra-op CPU thread per training thread. The toy networks train fastest on one (their
# operations are too small to split), and the workers' threads then share the cores.
configure_threads(APP_THREADS)

_tokens = itertools.count(1)  # watcher numbers, one per session
VIEWS = Views()  # what the sessions' pages computed from the runs they watch
_store: Store | None = None
_store_lock = threading.Lock()


def shared_store() -> Store:
    """The process-wide store of shared runs (and its worker pool), made on first use."""
    global _store
    with _store_lock:
        if _store is None:
            _store = Store()
            _store.on_sweep.append(VIEWS.expire)  # figures no one looks at go too
            atexit.register(_store.close)
        return _store


def reset_shared() -> None:
    """Close the shared store and forget every view (a fresh start: the tests' isolation)."""
    global _store
    with _store_lock:
        if _store is not None:
            _store.close()
            atexit.unregister(_store.close)
        _store = None
    VIEWS.clear()


class _Series(MutableMapping):
    """What a page records frame by frame, per model (e.g. test accuracy per epoch), kept on
    the model's job: a kept model keeps its record, and viewers of a shared job share it."""

    def __init__(self, jobs: dict[str, Job]) -> None:
        self._jobs = jobs

    def __getitem__(self, kind: str) -> list:
        job = self._jobs.get(kind)
        if job is None or job.series is None:
            raise KeyError(kind)
        return job.series

    def __setitem__(self, kind: str, value: list) -> None:
        self._jobs[kind].series = value

    def __delitem__(self, kind: str) -> None:
        self[kind]  # noqa: B018 - KeyError when absent
        self._jobs[kind].series = None

    def __iter__(self) -> Iterator[str]:
        return (kind for kind, job in self._jobs.items() if job.series is not None)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __repr__(self) -> str:
        return repr(dict(self))


@dataclass
class LiveRun:
    """One session's view of its models in training (see the module docstring)."""

    page: str  # the page that owns the run
    cfg: RunConfig  # the settings (model.kind is ignored: see `kind_config`)
    kinds: tuple[str, ...]  # the models, "bbb" first
    dataset: Dataset
    # the models' trainings by kind, shared or private; each reads like its trainer (`model`,
    # `history`, `epoch`, `cfg`, `seconds`, `device`, `done`), from its latest snapshot
    jobs: dict[str, Job]
    token: int = field(default_factory=lambda: next(_tokens))  # the session, as a watcher
    store: Store | None = field(default=None, repr=False)  # where shared jobs come from
    share: bool = False  # whether this run's jobs may be shared (generated data)
    playing: bool = True  # this tab asks for training (and redraws)
    notices: tuple[str, ...] = ()  # short messages about the last change
    ticks: int = 0  # frames drawn
    started: float = field(default_factory=time.perf_counter)
    finished_after: float | None = None  # wall seconds from start to the last model done
    watched_training: bool = False  # whether this tab saw the run unfinished
    draw_seconds: float = 0.0  # how long the last redraw took

    @property
    def series(self) -> _Series:
        return _Series(self.jobs)

    @property
    def done(self) -> bool:
        return all(job.done for job in self.jobs.values())

    @property
    def error(self) -> str | None:
        """What went wrong and what to change (training stopped), or None."""
        return next((job.error for job in self.jobs.values() if job.error), None)

    @property
    def dropped(self) -> bool:
        """Whether a job stopped because no session watched it (the run must start again)."""
        return any(job.dropped for job in self.jobs.values())

    @property
    def active(self) -> bool:
        """Whether the live fragment should keep ticking."""
        return self.playing and self.error is None and not self.done

    @property
    def version(self) -> tuple[int, ...]:
        """The jobs' snapshot numbers: changes whenever a model changes."""
        return tuple(job.snapshot.serial for job in self.jobs.values())

    @property
    def view(self) -> Hashable:
        """What this run's pictures depend on besides the snapshots: the page, the settings and
        which jobs (viewers of the same jobs under the same settings share their caches)."""
        return (self.page, self.cfg, self.kinds, tuple(id(job) for job in self.jobs.values()))

    @property
    def cache(self) -> dict[Any, Any]:
        """The values cached for this run as it stands (shared with its other viewers); prefer
        `cached(run, key, compute)`, which computes each value once."""
        return VIEWS.entry(self.view, self.version)[0]

    @property
    def metrics(self) -> dict[str, dict[str, float]] | None:
        """Every model's metrics once `finish` computed them, else None."""
        return self.cache.get("metrics")

    @property
    def epochs(self) -> int:
        return self.cfg.train.epochs

    def progress(self) -> float:
        """Share of all epochs trained, over all models."""
        total = sum(job.epochs for job in self.jobs.values())
        return sum(min(job.epoch, job.epochs) for job in self.jobs.values()) / total

    def watch(self) -> None:
        """Tell the store this tab looks at its jobs now (and queue them if playing)."""
        if self.store is not None:
            self.store.watch(self.jobs.values(), self.token, self.playing and self.error is None)

    def leave(self, keep: tuple[Job, ...] = ()) -> None:
        """Stop watching every job but `keep` (the session moved on)."""
        for job in self.jobs.values():
            if job not in keep:
                job.unwatch(self.token)


def cached(run: LiveRun, key: Hashable, compute: Callable[[], Any]) -> Any:
    """`compute()` for `key` of `run` as it stands, computed once for every viewer of the same
    runs under the same settings (a figure, the metrics, an analysis)."""
    return VIEWS.cached(run.view, run.version, key, compute)


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


def run_key(cfg: RunConfig, kind: str) -> str:
    """The store's key of model `kind` under `cfg`: its relevant settings and seed."""
    return relevant_config(cfg, kind).to_json()


def _private(store: Store | None, trainer: Trainer) -> Job:
    return store.private(trainer) if store is not None else Job(trainer)


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
    store: Store | None = None,
    share: bool = True,
) -> LiveRun:
    """The run for these settings: `previous` itself when nothing changed, else a new run that
    keeps the models the change does not affect and (re)trains the others (see the module
    docstring). With a `store` and `share`, models trained from scratch are the store's shared
    jobs; without, every job is private. Raises ValueError for settings `Trainer` rejects."""
    if previous is not None and previous.page != page:
        previous.leave()
        previous = None
    if previous is not None and previous.dropped:
        previous.leave()
        previous = None
    if previous is not None and previous.cfg == cfg and previous.kinds == kinds:
        return previous
    make = dataset_fn or (lambda c: make_dataset(c.data, c.seed))
    same_data = previous is not None and _same_data(previous.cfg, cfg)
    dataset = previous.dataset if same_data else make(cfg)
    shared = store is not None and share
    jobs: dict[str, Job] = {}
    notices: list[str] = []
    for kind in kinds:
        old = previous.jobs.get(kind) if previous is not None else None
        if (
            old is not None
            and same_data
            and old.error is None
            and relevant_config(old.cfg, kind) == relevant_config(cfg, kind)
        ):
            jobs[kind] = old
            continue
        warm = (
            old is not None
            and mode == "continue"
            and previous.error is None
            and old.model is not None
        )
        if warm:
            try:
                jobs[kind] = _private(store, _new_trainer(cfg, kind, dataset, old.model))
                continue
            except ValueError:
                notices.append(
                    f"{model_label(kind)}: the architecture changed, so it started from scratch."
                )
        if shared:
            jobs[kind] = store.get(
                run_key(cfg, kind), lambda kind=kind: _new_trainer(cfg, kind, dataset)
            )
        else:
            jobs[kind] = _private(store, _new_trainer(cfg, kind, dataset))
    token = previous.token if previous is not None else next(_tokens)
    if previous is not None:
        previous.leave(keep=tuple(jobs.values()))
    return LiveRun(
        page, cfg, tuple(kinds), dataset, jobs, token, store, shared, notices=tuple(notices)
    )


def reset_run(run: LiveRun) -> LiveRun:
    """The same settings back at epoch 0 (fresh weights from the seed), paused: a private run,
    so no other session's run goes back."""
    jobs = {
        kind: _private(run.store, _new_trainer(run.cfg, kind, run.dataset)) for kind in run.kinds
    }
    run.leave()
    fresh = LiveRun(
        run.page, run.cfg, run.kinds, run.dataset, jobs, run.token, run.store, False, False
    )
    fresh.watch()
    return fresh


def detach(run: LiveRun) -> None:
    """Make every unfinished job of `run` the session's own (see `ui.runs.Store.detach`)."""
    if run.store is None:
        return
    for kind, job in list(run.jobs.items()):
        run.jobs[kind] = run.store.detach(job, run.token)


def pause(run: LiveRun) -> None:
    """Stop asking for training and keep the run where it stands (see the module docstring)."""
    run.playing = False
    run.watch()
    detach(run)
    run.watch()
    for job in run.jobs.values():
        job.settle()  # a slice in progress ends before the tab reads its run


def play(run: LiveRun) -> None:
    run.playing = True
    run.watch()


# --- the step function --------------------------------------------------------------------------


def _after_training(run: LiveRun, epochs: int) -> int:
    if run.done and run.finished_after is None:
        run.finished_after = time.perf_counter() - run.started
    return epochs


def tick(run: LiveRun, seconds: float = runs.SLICE_SECONDS) -> int:
    """Advance every unfinished model for about `seconds` in all (an equal share each), in the
    caller's thread.

    Returns the number of epochs trained, summed over the models. Does nothing to a finished
    run or one that has stopped with an error.
    """
    pending = [job for job in run.jobs.values() if not job.done]
    run.watched_training = run.watched_training or bool(pending)
    epochs = 0
    for job in pending:
        if run.error is not None:
            break
        epochs += job.train(seconds / len(pending))
    run.ticks += 1
    return _after_training(run, epochs)


def step_run(run: LiveRun, epochs: int | None = None) -> int:
    """Train every unfinished model `epochs` more epochs (default: 1/20 of the run), pause (a
    shared model becomes the session's own first: see `pause`)."""
    epochs = epochs or max(1, run.epochs // STEP_FRACTION)
    pause(run)
    done = 0
    for job in run.jobs.values():
        if run.error is None and not job.done:
            done += job.train(float("inf"), max_epochs=epochs)
    return _after_training(run, done)


# --- what the charts show -----------------------------------------------------------------------


def samples_for(run: LiveRun, kind: str) -> int:
    """Monte Carlo samples of `kind`'s predictive now: one for a deterministic network, fewer
    while training so redraws stay quick, the configured number once finished."""
    if kind in ("standard", "map"):
        return 1
    wanted = run.cfg.train.pred_samples
    return wanted if run.done else min(wanted, LIVE_SAMPLES)


def _predictive(run: LiveRun, kind: str, x_name: str) -> Any:
    """`kind`'s predictive at `run.dataset.<x_name>`, cached on its snapshot (shared by every
    viewer of the job asking for the same inputs and samples)."""
    snapshot = run.jobs[kind].snapshot
    samples, seed = samples_for(run, kind), derive_seed(run.cfg.seed, PREDICT_STREAM)
    x = getattr(run.dataset, x_name)

    def compute():
        return predictive(snapshot.model, x.to(snapshot.device), samples, rng=seed)

    return snapshot.cached(("pred", x_name, id(x), samples, seed), compute)


def predictions(run: LiveRun, x_name: str = "x_grid") -> dict[str, Any]:
    """Each model's predictive at `run.dataset.<x_name>`, cached until the models change."""
    return cached(
        run, ("pred", x_name), lambda: {kind: _predictive(run, kind, x_name) for kind in run.jobs}
    )


def finish(
    run: LiveRun, evaluate_run: Callable[[LiveRun], dict] | None = None
) -> dict[str, dict[str, float]]:
    """Every model's metrics, computed once per finished run (for all its viewers): by
    `bbb_core.evaluate`, or by `evaluate_run(run)` for a page that computes them with its own
    analysis."""

    def compute() -> dict[str, dict[str, float]]:
        if evaluate_run is not None:
            return evaluate_run(run)
        return {  # each model's draws from streams derived from the seed
            kind: evaluate(job.model, run.dataset, kind_config(run.cfg, kind))
            for kind, job in run.jobs.items()
        }

    return cached(run, "metrics", compute)


def status_text(run: LiveRun) -> tuple[str, str]:
    """Where training stands: a state ("Training", "Paused", "Finished", "Stopped") and details."""
    epochs = " · ".join(f"{model_label(k)} {j.epoch}/{j.epochs}" for k, j in run.jobs.items())
    if run.error:
        return "Stopped", epochs
    if run.done:
        times = ", ".join(f"{model_label(k)} {j.seconds:.1f} s" for k, j in run.jobs.items())
        if run.watched_training:
            wall = f"in {run.finished_after or 0.0:.1f} s"
        else:  # finished before this tab asked for it
            wall = "trained before on this server"
        return "Finished", f"{run.epochs} epochs {wall} ({times})"
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


def _token() -> int:
    if TOKEN_KEY not in st.session_state:
        st.session_state[TOKEN_KEY] = next(_tokens)
    return st.session_state[TOKEN_KEY]


def sync_run(
    page: str,
    cfg: RunConfig,
    kinds: tuple[str, ...],
    mode: str,
    dataset_fn: Callable[[RunConfig], Dataset] | None = None,
) -> LiveRun:
    """The session's run for these settings (see `update_run`), stored in session state. The
    dataset comes from `dataset_fn` (the session's own uploaded data: private jobs) or else from
    the generated sets shared read-only by all sessions (`cached_dataset`), and the models
    trained from scratch on them from the shared store."""
    make = dataset_fn or cached_dataset
    store, share = shared_store(), dataset_fn is None
    run = update_run(st.session_state.get(RUN_KEY), page, cfg, kinds, mode, make, store, share)
    run.token = _token()  # one watcher number per session, whatever run it shows
    st.session_state[RUN_KEY] = run
    return run


def _watched(run: LiveRun) -> LiveRun:
    """`run` (started again if some of its models stopped while no tab watched them), marked as
    watched by this tab now."""
    if run.dropped:
        run = _revive(run)
    run.watch()
    return run


def _revive(run: LiveRun) -> LiveRun:
    """A run some of whose models stopped while no session watched them, started again."""
    fresh = update_run(
        run, run.page, run.cfg, run.kinds, "scratch", lambda _: run.dataset, run.store, run.share
    )
    fresh.notices = ("No one watched this run for a while, so it stopped; it started again.",)
    fresh.token, fresh.playing = run.token, run.playing
    st.session_state[RUN_KEY] = fresh
    return fresh


def _play() -> None:
    play(st.session_state[RUN_KEY])


def _pause() -> None:
    pause(st.session_state[RUN_KEY])


def _step() -> None:
    step_run(st.session_state[RUN_KEY])


def _reset() -> None:
    st.session_state[RUN_KEY] = reset_run(st.session_state[RUN_KEY])


def buttons(run: LiveRun) -> None:
    """Play / Pause, Step and Reset."""
    cols = st.columns([1, 1, 1, 5], vertical_alignment="center")
    stopped = run.done or run.error is not None
    if run.active:
        cols[0].button(
            "Pause",
            icon=":material/pause:",
            on_click=_pause,
            help="Stop here (others watching the same run carry on).",
            width="stretch",
        )
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
        help="Back to epoch 0 (same seed), paused: a run of your own.",
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
    run = _watched(run)
    if timed and not run.active:  # finished or stopped since the timer started: a full rerun
        st.rerun()  # shows the result and drops the timer
    with st.container(key=f"{page}-live"):
        _frame(run, page, draw, evaluate_run)


def _keep_alive(page: str) -> None:
    """A paused tab's heartbeat: the store keeps its run while the tab is open."""
    run = current_run(page)
    if run is not None:
        run.watch()


def _frame(
    run: LiveRun,
    page: str,
    draw: Callable[[LiveRun], None],
    evaluate_run: Callable[[LiveRun], dict] | None = None,
) -> None:
    """One frame: while playing, train FIRST_SLICE of the models still at epoch 0 (so the first
    chart shows training); then draw the run as it stands (see the module docstring)."""
    frame_start = time.perf_counter()
    fresh = [job for job in run.jobs.values() if job.epoch == 0 and not (job.done or job.large)]
    if run.active and fresh:
        for job in fresh:
            job.train(FIRST_SLICE / len(fresh), only_if=lambda job=job: job.epoch == 0)
    if not run.done:
        run.watched_training = True
    _after_training(run, 0)
    if run.done and run.error is None:
        finish(run, evaluate_run)
    start = time.perf_counter()
    with st.container(key=f"{page}-status"):  # CSS class st-key-<page>-status (for tests)
        status = st.empty()
    if run.error:
        st.error(run.error, icon=":material/error:")
    try:
        draw(run)
    except Exception:  # noqa: BLE001 - visitors get a message; the log gets the traceback
        _log.exception("drawing the %s run failed", page)
        st.error("Could not draw this run. Try Reset or other settings.")
    run.draw_seconds = time.perf_counter() - start
    _status(run, status)  # "Finished" once the charts are on their way
    run.ticks += 1
    if _DEBUG:
        bbb = run.jobs.get("bbb")
        print(
            f"[live] {frame_start - run.started:7.3f} -> "
            f"{time.perf_counter() - run.started:7.3f} s: draw {run.draw_seconds:.3f} s, "
            f"BBB epoch {bbb.epoch if bbb else '-'}",
            file=sys.stderr,
        )


def redraw_seconds(run: LiveRun) -> float:
    """The live fragment's period: REDRAW_SECONDS, longer while the workers have more jobs than
    lanes (each run then trains more slowly, and redraws between its snapshots cost the server
    without showing anything new)."""
    if run.store is None:
        return REDRAW_SECONDS
    pool = run.store.pool
    return REDRAW_SECONDS * max(1.0, pool.pending() / pool.workers)


def _long_run_notice(run: LiveRun) -> bool:
    """Say how long a run estimated at over LONG_RUN seconds would train; True when it is that
    long (a GPU's runs are not estimated)."""
    if run.done or any(job.device.type != "cpu" for job in run.jobs.values()):
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
                run.playing = any(job.epoch for job in run.jobs.values())
        except (TrainingDiverged, ValueError) as err:  # bbb_core's own, plain-text messages
            _log.info("settings rejected on the %s page: %s", page, err)
            st.error(f"These settings cannot train: {err}.", icon=":material/error:")
            return None
    if run is None:
        return None
    run = _watched(run)
    if _DEBUG:
        print(f"[live] panel {time.perf_counter() - run.started:7.3f}", file=sys.stderr)
    for notice in run.notices:  # as long as this run is shown (a knob starts a new one)
        st.info(notice, icon=":material/info:")
    buttons(run)
    # The charts redraw while training: do not fade them out as "stale" meanwhile.
    st.html(
        f"<style>.st-key-{page}-live [data-stale='true'] "
        "{opacity: 1 !important; transition: none !important;}</style>"
    )
    timed = run.active
    every = redraw_seconds(run) if timed else None
    st.fragment(_body, run_every=every)(page, draw, timed, evaluate_run)
    if not timed and run.error is None and not run.done:  # paused: the tab is still open
        st.fragment(_keep_alive, run_every=HEARTBEAT_SECONDS)(page)
    return run
