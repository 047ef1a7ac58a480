"""Runs shared by every session of one server, and the workers that train them (no Streamlit).

A model's training is a value of its relevant settings and seed (`ui.live.relevant_config`): the
same settings give the same weights, however training is sliced and whatever else the process
trains meanwhile (every `bbb_core.Trainer` draws from its own random streams). So a class opening
one link needs one training, not one per visitor:

- `Job`: one model's training, a `bbb_core.Trainer`, and its latest `Snapshot` (a copy of the
  model, the history and the epoch) that viewers read while a worker trains on, published at
  most every PUBLISH_SECONDS (so the viewers' redraws share it and what they compute from it).
  A job is shared (it has a `key` in the store) or private to one session (`key` None: a warm
  start from that session's posterior, the session's uploaded data, or a run it paused,
  stepped or reset).
  Viewers are `watch`ers: a session says every frame that it still looks, and whether it wants
  the job to train.
- `Store`: the process-wide index of shared jobs by key. The first session asking for a key
  builds the trainer, every other one gets the same job. Finished jobs stay, least recently used
  out first, while their estimated memory (`Job.nbytes`) fits in STORE_MB; a finished job keeps
  its final snapshot only (the trainer and its optimiser are let go). `detach` makes a session's
  copy of a shared job (see below). `sweep` stops every job no session has watched for
  UNWATCHED_SECONDS, lets its memory go (and whatever its `on_sweep` hooks let go: the views'
  figures no one looks at) and hands freed memory back to the system.
- `Pool`: WORKERS threads taking SLICE_SECONDS slices of training from the waiting jobs in turn
  (round robin), so a short run finishes while a long one trains. Small networks are bound by
  Python's interpreter lock, so two of them training in two threads are slower than one after the
  other: at most SMALL_LANES small jobs train at once. Jobs whose steps release the lock (large
  networks) or whose epochs last longer than a slice take the other workers, never all of them:
  a worker stays free for the short slices of everyone else. A slice ends inside an epoch when
  its time is up (one epoch of the heaviest link takes most of a minute here), so a long job
  gives its worker back, pauses and stops within a slice, and goes on from the same step.

What a session's buttons do to a shared job: nothing another session sees. Pausing or stepping a
shared job makes the session's own copy (`Store.detach`): the job itself when no one else
watches it, else an exact clone of its trainer (weights, optimiser state and random streams), so
the copy, played on, ends with the same result the shared job does. A reset starts a private job.
"""

from __future__ import annotations

import copy
import ctypes
import ctypes.util
import functools
import gc
import itertools
import logging
import math
import os
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable, Iterable
from typing import Any

import torch
from torch import nn

from bbb_core import Trainer, TrainingDiverged
from bbb_core.plots import model_label
from bbb_core.process import is_small

SLICE_SECONDS = 0.2  # one turn of a worker on one job (at least one optimiser step)
PUBLISH_SECONDS = 1.0  # a training job publishes a new snapshot at most this often
UNWATCHED_SECONDS = 10.0  # a job no session has watched this long stops and is let go
SWEEP_SECONDS = 2.0  # how often the store looks for unwatched jobs
# After the last tab's last look, freed memory is handed back every TRIM_SECONDS for QUIET_SECONDS:
# Streamlit lets a closed tab's session go up to `server.disconnectedSessionTTL` later.
TRIM_SECONDS, QUIET_SECONDS = 15.0, 120.0
STORE_MB = float(os.environ.get("BBB_RUN_STORE_MB", "256"))  # finished jobs kept, in MiB
WORKERS = int(os.environ.get("BBB_WORKERS", "0")) or max(2, os.cpu_count() or 1)
SMALL_LANES = 1  # small networks training at once (they share the interpreter lock)
HISTORY_LIMIT = 2000  # Progress entries kept per trainer
_HISTORY_BYTES = 200  # rough bytes of one Progress entry

_log = logging.getLogger(__name__)
_serials = itertools.count(1)  # unique snapshot numbers (cache keys; never reused)


def _tensor_bytes(tensors: Iterable[torch.Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def _model_bytes(model: nn.Module | None) -> int:
    if model is None:
        return 0
    return _tensor_bytes(model.parameters()) + _tensor_bytes(model.buffers())


def _value_bytes(value: Any) -> int:
    """Bytes of the tensors in a cached value (a predictive dataclass, a dict, a tensor)."""
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, dict):
        return sum(_value_bytes(v) for v in value.values())
    if hasattr(value, "__dataclass_fields__"):
        return sum(_value_bytes(getattr(value, f)) for f in value.__dataclass_fields__)
    return 0


class Snapshot:
    """A job's state after a slice of training, read-only: what every viewer draws from.

    `model` is a copy of the trainer's model (the model itself once training has ended);
    `cache` holds what viewers computed from it (predictives), so many viewers cost one
    computation: `cached(key, compute)` computes each entry once.
    """

    def __init__(self, trainer: Trainer, final: bool = False) -> None:
        self.serial = next(_serials)
        self.cfg = trainer.cfg
        self.device = trainer.device
        self.epoch = trainer.epoch
        self.step = trainer.step
        self.seconds = trainer.seconds
        self.history = list(trainer.history)
        self.model: nn.Module | None = trainer.model if final else copy.deepcopy(trainer.model)
        self.cache: dict[Hashable, Any] = {}
        self._lock = threading.Lock()

    @property
    def done(self) -> bool:
        return self.epoch >= self.cfg.train.epochs

    def cached(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        with self._lock:
            if key not in self.cache:
                self.cache[key] = compute()
            return self.cache[key]

    def nbytes(self) -> int:
        cached = sum(_value_bytes(v) for v in list(self.cache.values()))
        return _model_bytes(self.model) + cached + len(self.history) * _HISTORY_BYTES

    def release(self) -> None:
        """Let go of the model and the cache (the job was dropped)."""
        self.model = None
        self.cache = {}


class Job:
    """One model's training (see the module docstring). `trainer` is None once training ended
    or the job was dropped; `snapshot` is what viewers read. The trainer's attributes that
    pages read (`cfg`, `model`, `history`, `epoch`, `seconds`, `device`, `done`) come from the
    latest snapshot."""

    def __init__(self, trainer: Trainer, key: Hashable | None = None) -> None:
        self.key = key  # the store's key while shared; None when private
        self.trainer: Trainer | None = trainer
        self.kind: str = trainer.cfg.model.kind
        self.cfg = trainer.cfg
        self.error: str | None = None  # what went wrong (training stopped)
        self.dropped = False  # stopped because no one watched it; its memory is let go
        self.series: list | None = None  # what a page records frame by frame for this model
        self.watchers: dict[int, tuple[float, bool]] = {}  # token -> (last seen, wants training)
        self.queued = False  # in the pool's queue or in a worker (guarded by the pool)
        self.large = not is_small(trainer.model)
        self._lock = threading.Lock()  # held while the trainer trains
        self.snapshot = Snapshot(trainer, final=trainer.done)
        self._published = time.monotonic()
        if trainer.done:
            self.trainer = None

    # -- what viewers read --------------------------------------------------------------------
    @property
    def model(self) -> nn.Module | None:
        return self.snapshot.model

    @property
    def history(self) -> list:
        return self.snapshot.history

    @property
    def epoch(self) -> int:
        return self.snapshot.epoch

    @property
    def seconds(self) -> float:
        return self.snapshot.seconds

    @property
    def device(self) -> torch.device:
        return self.snapshot.device

    @property
    def done(self) -> bool:
        return self.snapshot.done

    @property
    def epochs(self) -> int:
        return self.cfg.train.epochs

    @property
    def long_epochs(self) -> bool:
        """Whether one epoch takes longer than a slice (known after the first epoch)."""
        s = self.snapshot
        return s.epoch > 0 and s.seconds / s.epoch > SLICE_SECONDS

    def __repr__(self) -> str:
        state = "shared" if self.key is not None else "private"
        return f"Job({self.kind}, {state}, epoch {self.epoch}/{self.epochs})"

    # -- watching ---------------------------------------------------------------------------
    def watch(self, token: int, wants: bool, now: float) -> None:
        """Session `token` looks at this job now and wants it trained (`wants`) or not."""
        self.watchers[token] = (now, wants)

    def unwatch(self, token: int) -> None:
        self.watchers.pop(token, None)

    def watched(self, now: float, but: int | None = None) -> bool:
        """Whether a session (other than `but`) has watched within UNWATCHED_SECONDS."""
        return any(
            now - seen <= UNWATCHED_SECONDS
            for token, (seen, _) in list(self.watchers.items())
            if token != but
        )

    def wanted(self, now: float) -> bool:
        """Whether the job should train: unfinished and a recent watcher wants it."""
        if self.trainer is None or self.error is not None or self.dropped:
            return False
        return any(
            wants and now - seen <= UNWATCHED_SECONDS
            for seen, wants in list(self.watchers.values())
        )

    # -- training ---------------------------------------------------------------------------
    def train(
        self,
        seconds: float,
        max_epochs: int | None = None,
        only_if: Callable[[], bool] | None = None,
    ) -> int:
        """Train for about `seconds` (at least one optimiser step; a slice may end inside an
        epoch) or `max_epochs` epochs, then publish a snapshot of the epochs completed. With
        `only_if`, train only if it still holds once the job is ours (a worker asks whether
        anyone still wants it). Returns the epochs completed."""
        with self._lock:
            trainer = self.trainer
            if trainer is None or self.error is not None or (only_if and not only_if()):
                return 0
            try:
                events = trainer.advance(seconds, max_epochs=max_epochs)  # >= one step
            except TrainingDiverged as err:
                self.error = f"{model_label(self.kind)} diverged: {err}."
                _log.info("%s", self.error)
                events = []
            publish = (
                max_epochs is not None  # a Step: shown at once
                or trainer.done
                or self.snapshot.epoch == 0  # the first chart shows training
                or time.monotonic() - self._published >= PUBLISH_SECONDS
            )
            if events and publish:
                self._publish()
            if trainer.done:
                self.trainer = None  # the final snapshot keeps the model; the optimiser goes
            return len(events)

    def _publish(self) -> None:
        """A snapshot of the trainer as it stands (under the lock)."""
        trainer = self.trainer
        if trainer is not None and trainer.epoch != self.snapshot.epoch:
            self.snapshot = Snapshot(trainer, final=trainer.done)
        self._published = time.monotonic()

    def clone(self) -> Job:
        """A private job that continues exactly where this one stands (`Trainer.clone`)."""
        with self._lock:
            if self.trainer is None:
                raise ValueError("this job has no trainer to copy")
            self._publish()  # the copy starts where the viewers see this one
            job = Job(self.trainer.clone())
        job.series = list(self.series) if self.series is not None else None
        return job

    def settle(self) -> None:
        """Wait for a slice in progress to end and publish what it trained."""
        with self._lock:
            self._publish()

    def drop(self) -> None:
        """Stop for good and let the memory go (no one watches)."""
        with self._lock:
            self.dropped = True
            self.trainer = None
            self.snapshot.release()

    def nbytes(self) -> int:
        """Estimated memory: the snapshot and, while training, the model with Adam's two
        moments and the gradients."""
        trainer = self.trainer
        return self.snapshot.nbytes() + (4 * _model_bytes(trainer.model) if trainer else 0)


def trim_memory(collect: bool = False) -> None:
    """Ask glibc to hand freed heap back to the system (each thread's arena keeps what it freed
    otherwise; a no-op off glibc), after a full garbage collection if `collect`: that finds the
    closed sessions' reference cycles, but walks every object of the process (0.2 to 0.3 s
    with a few sessions open, holding the interpreter lock), so it waits for a quiet server."""
    if collect:
        gc.collect()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, looked up once (find_library runs ldconfig); None off glibc."""
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        return None


class Pool:
    """Worker threads that train the queued jobs a slice at a time, in turn (see the module
    docstring). Threads start on the first `submit` (with `autostart`; else call `serve_one`);
    `clock` is the time `Job.wanted` uses."""

    def __init__(
        self,
        workers: int = WORKERS,
        slice_seconds: float = SLICE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        small_lanes: int = SMALL_LANES,
        autostart: bool = True,
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1; got {workers}")
        self.workers, self.slice_seconds, self.clock = workers, slice_seconds, clock
        self.small_lanes, self.autostart = small_lanes, autostart
        self.slices = 0  # slices trained, for the curious
        self._queue: deque[Job] = deque()
        self._running: dict[Job, bool] = {}  # job -> counts as small
        self._cond = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._stopping = False

    def submit(self, job: Job) -> None:
        """Queue `job` for training unless it is queued or training already."""
        with self._cond:
            if job.queued:
                return
            job.queued = True
            self._queue.append(job)
            self._cond.notify()
            if self.autostart and len(self._threads) < self.workers:
                self._start()

    def _start(self) -> None:
        while len(self._threads) < self.workers:
            thread = threading.Thread(
                target=self._work, name=f"bbb-worker-{len(self._threads)}", daemon=True
            )
            self._threads.append(thread)
            thread.start()

    def _small(self, job: Job) -> bool:
        return not (job.large or job.long_epochs)

    def _take(self) -> Job | None:
        """The first queued job a free worker may train (under the condition's lock)."""
        small_busy = sum(self._running.values())
        large_busy = len(self._running) - small_busy
        for job in self._queue:
            if self._small(job):
                if small_busy < self.small_lanes:
                    return job
            elif large_busy < max(1, self.workers - 1):
                return job
        return None

    def next_job(self, timeout: float | None = None) -> Job | None:
        """Take the next job in turn (waiting up to `timeout`); None when there is none."""
        with self._cond:
            deadline = None if timeout is None else time.monotonic() + timeout
            while (job := self._take()) is None:
                if self._stopping:
                    return None
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return None
                self._cond.wait(left)
            self._queue.remove(job)
            self._running[job] = self._small(job)
            return job

    def done_with(self, job: Job) -> None:
        """Put `job` back at the end of the queue if it still wants training, else let it go."""
        with self._cond:
            self._running.pop(job, None)
            if job.wanted(self.clock()) and not job.done:
                self._queue.append(job)
            else:
                job.queued = False
            self._cond.notify_all()

    def serve_one(self, timeout: float | None = None) -> Job | None:
        """One turn of a worker: take the next job, train a slice, requeue it. Returns it."""
        job = self.next_job(timeout)
        if job is None:
            return None
        try:
            job.train(self.slice_seconds, only_if=lambda: job.wanted(self.clock()))
            self.slices += 1
        except Exception:  # noqa: BLE001 - a worker must survive any one job's failure
            _log.exception("training %r failed", job)
            job.error = f"{model_label(job.kind)} stopped: an error on the server."
        finally:
            self.done_with(job)
        return job

    def _work(self) -> None:
        while not self._stopping:
            self.serve_one(timeout=SWEEP_SECONDS)

    def stop(self, timeout: float = 5.0) -> None:
        """Let the workers finish their slices and end (at the program's exit)."""
        with self._cond:
            self._stopping = True
            self._queue.clear()
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout)

    def pending(self) -> int:
        with self._cond:
            return len(self._queue) + len(self._running)


class Store:
    """The process-wide index of shared jobs (see the module docstring).

    `limit_mb` bounds the estimated memory of the jobs it keeps (finished ones are evicted,
    least recently used first); `clock` is the time watchers are stamped with.
    """

    def __init__(
        self,
        limit_mb: float = STORE_MB,
        clock: Callable[[], float] = time.monotonic,
        pool: Pool | None = None,
    ) -> None:
        self.limit_bytes = int(limit_mb * 2**20)
        self.clock = clock
        self.pool = pool if pool is not None else Pool(clock=clock)
        self.built = 0  # trainers built for shared jobs
        self._jobs: OrderedDict[Hashable, Job] = OrderedDict()
        self._building: dict[Hashable, threading.Event] = {}
        self._private: set[Job] = set()  # private jobs the pool may train (swept like the rest)
        self._lock = threading.Lock()
        self._sweeper: threading.Thread | None = None
        self._closed = threading.Event()
        self.on_sweep: list[Callable[[], int]] = []  # more to let go: returns how much went
        self._looked = -math.inf  # the clock at the last `watch`
        self._trimmed = -math.inf  # the clock at the last `trim_memory`

    # -- shared jobs -------------------------------------------------------------------------
    def get(self, key: Hashable, build: Callable[[], Trainer]) -> Job:
        """The shared job of `key`, built by `build()` if no session has asked for it yet (or
        it was dropped or evicted). Concurrent callers of one key wait for one build."""
        while True:
            with self._lock:
                job = self._jobs.get(key)
                if job is not None and not job.dropped:
                    self._jobs.move_to_end(key)
                    return job
                event = self._building.get(key)
                if event is None:
                    event = self._building[key] = threading.Event()
                    break
            event.wait()
        try:
            job = Job(build(), key)
            self.built += 1
        finally:
            with self._lock:
                self._building.pop(key, None)
            event.set()
        with self._lock:
            self._jobs[key] = job
            evicted = self._evict()
        if evicted:
            trim_memory()
        return job

    def keys(self) -> list[Hashable]:
        with self._lock:
            return list(self._jobs)

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._jobs

    def nbytes(self) -> int:
        """Estimated memory of the finished jobs kept (what the bound applies to: unfinished
        ones are bounded by being watched)."""
        with self._lock:
            return sum(job.nbytes() for job in self._jobs.values() if job.done)

    def _evict(self) -> int:
        """Drop finished jobs, least recently used first, while they take more than the bound
        (under the lock). Sessions showing an evicted job keep it; new ones train it again."""
        finished = [(key, job) for key, job in self._jobs.items() if job.done]
        total = sum(job.nbytes() for _, job in finished)
        evicted = 0
        for key, job in finished:
            if total <= self.limit_bytes:
                break
            del self._jobs[key]
            job.key = None
            total -= job.nbytes()
            evicted += 1
        return evicted

    def private(self, trainer: Trainer) -> Job:
        """A private job (never shared), trained by the pool like the shared ones."""
        job = Job(trainer)
        with self._lock:
            self._private.add(job)
        return job

    def detach(self, job: Job, token: int) -> Job:
        """Session `token`'s own copy of `job`: `job` itself if it is private, finished, or
        shared but watched by no other session (it leaves the store), else a clone."""
        if job.key is None or job.done or job.trainer is None:
            return job
        with self._lock:
            if not job.watched(self.clock(), but=token) and self._jobs.get(job.key) is job:
                del self._jobs[job.key]
                job.key = None
                self._private.add(job)
                return job
        twin = job.clone()
        with self._lock:
            self._private.add(twin)
        job.unwatch(token)
        return twin

    # -- watching and sweeping -----------------------------------------------------------------
    def watch(self, jobs: Iterable[Job], token: int, wants: bool) -> None:
        """Session `token` looks at `jobs` now; if it `wants` them trained, queue them."""
        now = self.clock()
        self._looked = now
        for job in jobs:
            job.watch(token, wants, now)
            if wants and job.wanted(now):
                self.pool.submit(job)
        self._ensure_sweeper()

    def sweep(self) -> int:
        """Drop every unfinished job no session has watched for UNWATCHED_SECONDS (shared or
        private), evict over the bound, and hand freed memory back: after letting something go,
        and, with a full garbage collection, every TRIM_SECONDS from TRIM_SECONDS to
        QUIET_SECONDS after the last look while nothing trains (the sessions of closed tabs go
        meanwhile; open tabs that still look are not slowed down). Returns the jobs dropped."""
        now = self.clock()
        with self._lock:
            stale = [
                (key, job)
                for key, job in self._jobs.items()
                if not job.done and job.error is None and not job.watched(now)
            ]
            for key, _ in stale:
                del self._jobs[key]
            mine = [job for job in self._private if not job.watched(now) or job.done]
            self._private.difference_update(mine)
            evicted = self._evict()
        dropped = [job for _, job in stale] + [job for job in mine if not job.done]
        for job in dropped:
            job.drop()
        released = sum(hook() for hook in self.on_sweep)
        quiet = (
            TRIM_SECONDS <= now - self._looked < QUIET_SECONDS
            and now - self._trimmed >= TRIM_SECONDS
            and self.pool.pending() == 0
        )
        if dropped or evicted or released or quiet:
            trim_memory(collect=quiet)
            self._trimmed = now
        return len(dropped)

    def close(self, timeout: float = 5.0) -> None:
        """Stop the sweeper and the workers (slices in progress end first)."""
        self._closed.set()
        if self._sweeper is not None:
            self._sweeper.join(timeout)
        self.pool.stop(timeout)

    def _ensure_sweeper(self) -> None:
        if self._sweeper is not None:
            return
        with self._lock:
            if self._sweeper is not None or self._closed.is_set():
                return
            self._sweeper = threading.Thread(target=self._sweep_forever, daemon=True)
            self._sweeper.start()

    def _sweep_forever(self) -> None:
        while not self._closed.wait(SWEEP_SECONDS):
            try:
                self.sweep()
            except Exception:  # noqa: BLE001 - the sweeper must outlive any one failure
                _log.exception("sweeping the run store failed")


class Views:
    """What viewers of the same runs compute from them (figures, metrics, analyses), shared.

    A view is a page's picture of some jobs under one config: `entry(view, serials)` is its
    dict of cached values for the jobs' current snapshots (`serials`); a newer snapshot starts
    a new dict. At most `limit` views are kept, least recently used out first.
    """

    def __init__(self, limit: int = 32, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.clock = limit, clock
        self._entries: OrderedDict[Hashable, tuple[tuple, dict, threading.RLock]] = OrderedDict()
        self._used: dict[Hashable, float] = {}
        self._lock = threading.Lock()

    def entry(self, view: Hashable, serials: tuple) -> tuple[dict, threading.RLock]:
        with self._lock:
            found = self._entries.get(view)
            if found is None or found[0] != serials:
                found = (serials, {}, threading.RLock())
                self._entries[view] = found
            self._entries.move_to_end(view)
            self._used[view] = self.clock()
            while len(self._entries) > self.limit:
                self._used.pop(self._entries.popitem(last=False)[0], None)
            return found[1], found[2]

    def expire(self, seconds: float = UNWATCHED_SECONDS) -> int:
        """Forget the views no one has looked at for `seconds` (their figures go with them; a
        later viewer computes them again). Returns how many went."""
        now = self.clock()
        with self._lock:
            old = [view for view, used in self._used.items() if now - used > seconds]
            for view in old:
                self._entries.pop(view, None)
                self._used.pop(view, None)
        return len(old)

    def cached(self, view: Hashable, serials: tuple, key: Hashable, compute: Callable[[], Any]):
        """`compute()` for `key` of this view, once (other viewers wait for it)."""
        values, lock = self.entry(view, serials)
        with lock:
            if key not in values:
                values[key] = compute()
            return values[key]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._used.clear()

    def __len__(self) -> int:
        return len(self._entries)
