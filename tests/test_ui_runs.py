"""Shared runs and the worker pool (`ui.runs`, through `ui.live`), without Streamlit running.

Sessions are `ui.live.update_run` calls with one store; the pool is driven a turn at a time
(`Pool.serve_one`, no threads) and time is a fake clock, so nothing here depends on how fast
the machine is. Trainer constructions are counted by wrapping the `Trainer` that `ui.live`
builds shared and private runs with.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from bbb_core import Trainer, default_config
from ui import live, runs

KINDS = ("bbb", "standard")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def store(clock, monkeypatch):
    monkeypatch.setattr(runs, "PUBLISH_SECONDS", 0.0)  # a snapshot after every turn
    # slices of one epoch each: what a turn trains does not depend on the machine's speed
    pool = runs.Pool(workers=1, slice_seconds=1e-9, clock=clock, autostart=False)
    store = runs.Store(clock=clock, pool=pool)
    yield store
    store.close()


@pytest.fixture
def built(monkeypatch):
    """The kinds of every trainer `ui.live` builds, in order."""
    kinds: list[str] = []

    def counting(*args, **kwargs):
        trainer = Trainer(*args, **kwargs)
        kinds.append(trainer.cfg.model.kind)
        return trainer

    monkeypatch.setattr(live, "Trainer", counting)
    return kinds


def _cfg(name: str = "blundell", epochs: int = 12, **train):
    cfg = default_config(name)
    return replace(cfg, train=replace(cfg.train, epochs=epochs, pred_samples=6, **train))


def _session(store, cfg, kinds=KINDS, previous=None, mode="scratch", page="regression"):
    run = live.update_run(previous, page, cfg, kinds, mode, store=store)
    run.watch()
    return run


def _serve_until(store, done, limit: int = 2000) -> list[runs.Job]:
    served = []
    while not done() and len(served) < limit:
        job = store.pool.serve_one(timeout=0)
        if job is None:
            break
        served.append(job)
    return served


def _weights(model) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_two_sessions_asking_for_the_same_run_train_it_once(store, built):
    cfg = _cfg()
    a, b = _session(store, cfg), _session(store, cfg)
    assert sorted(built) == sorted(KINDS)  # one trainer per model, not per session
    assert all(a.jobs[k] is b.jobs[k] for k in KINDS) and a.token != b.token
    _serve_until(store, lambda: a.done)
    assert a.done and b.done
    assert live.predictions(a) is live.predictions(b)  # one computation for every viewer
    assert live.finish(a) is live.finish(b)
    moved = _session(store, replace(cfg, train=replace(cfg.train, kl_weight=0.2)), previous=a)
    assert built.count("bbb") == 2 and built.count("standard") == 1  # the KL weight: BBB only
    assert moved.jobs["standard"] is b.jobs["standard"]


def test_a_shared_run_ends_as_a_run_trained_alone(store):
    cfg = _cfg("moons", epochs=8)
    shared = _session(store, cfg, page="classification")
    _serve_until(store, lambda: shared.done)
    alone = live.update_run(None, "classification", cfg, KINDS)  # private, no store
    while not alone.done:
        live.tick(alone, 0.05)
    for kind in KINDS:
        torch.testing.assert_close(
            _weights(shared.jobs[kind].model), _weights(alone.jobs[kind].model), rtol=0, atol=0
        )


def test_a_warm_start_is_private_and_never_reaches_another_session(store, built):
    cfg = _cfg()
    a = _session(store, cfg)
    _serve_until(store, lambda: a.done)
    lower = replace(cfg, train=replace(cfg.train, kl_weight=0.1))
    warm = _session(store, lower, previous=a, mode="continue")
    assert warm.jobs["bbb"].key is None and warm.jobs["bbb"].epoch == 0
    torch.testing.assert_close(_weights(warm.jobs["bbb"].model), _weights(a.jobs["bbb"].model))
    assert live.run_key(lower, "bbb") not in store
    b = _session(store, lower)  # another session, the same settings, from scratch
    assert b.jobs["bbb"] is not warm.jobs["bbb"] and b.jobs["bbb"].key is not None
    fresh = Trainer(live.kind_config(lower, "bbb"))
    torch.testing.assert_close(_weights(b.jobs["bbb"].model), _weights(fresh.model))
    assert not torch.equal(_weights(b.jobs["bbb"].model), _weights(warm.jobs["bbb"].model))


def test_uploaded_data_is_a_private_run(store):
    cfg = _cfg()
    mine = live.update_run(None, "regression", cfg, KINDS, store=store, share=False)
    theirs = _session(store, cfg)
    assert all(job.key is None for job in mine.jobs.values())
    assert all(mine.jobs[k] is not theirs.jobs[k] for k in KINDS)


def test_an_unwatched_run_stops_and_lets_its_memory_go(store, clock):
    run = _session(store, _cfg(epochs=5000))
    served = _serve_until(store, lambda: run.jobs["bbb"].epoch > 0)
    assert served and store.pool.pending() > 0
    clock.now += runs.UNWATCHED_SECONDS + 1  # every tab closed
    job = run.jobs["bbb"]
    epoch = job.epoch
    _serve_until(store, lambda: False, limit=10)  # the workers let the queue go
    assert job.epoch == epoch and store.pool.pending() == 0
    assert store.sweep() == len(KINDS)
    assert job.dropped and job.trainer is None and job.model is None
    assert store.keys() == []
    back = _session(store, run.cfg, previous=run)  # a tab that comes back starts again
    assert back is not run and back.jobs["bbb"].epoch == 0 and not back.dropped


def test_a_watched_run_is_not_swept(store, clock):
    run = _session(store, _cfg(epochs=5000))
    clock.now += runs.UNWATCHED_SECONDS - 1
    run.watch()  # the fragment's heartbeat
    clock.now += runs.UNWATCHED_SECONDS - 1
    assert store.sweep() == 0 and len(store.keys()) == len(KINDS)


def test_memory_is_handed_back_while_the_tabs_go_quiet(store, clock, monkeypatch):
    """Once no tab has looked at any run for TRIM_SECONDS, freed memory goes back to the system,
    after a full garbage collection, every TRIM_SECONDS until QUIET_SECONDS (closed tabs'
    sessions are let go meanwhile), then no more."""
    trims: list[tuple[float, bool]] = []
    monkeypatch.setattr(runs, "trim_memory", lambda collect=False: trims.append((clock(), collect)))
    store.sweep()
    assert trims == []  # no tab ever looked: nothing to hand back
    run = _session(store, _cfg(epochs=3))
    _serve_until(store, lambda: run.done)
    assert run.done and store.pool.pending() == 0
    run.watch()  # the finished view's last look
    start = clock()
    while clock() < start + runs.QUIET_SECONDS + 3 * runs.TRIM_SECONDS:
        store.sweep()
        clock.now += runs.SWEEP_SECONDS
    times = [t for t, collect in trims if collect]
    assert times == [t for t, _ in trims]  # every quiet trim collects
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert times and all(gap >= runs.TRIM_SECONDS for gap in gaps)
    assert len(times) >= runs.QUIET_SECONDS // (runs.TRIM_SECONDS + runs.SWEEP_SECONDS) - 1
    assert start + runs.TRIM_SECONDS <= times[0]  # not while a tab may still be looking
    assert times[-1] < start + runs.QUIET_SECONDS  # quiet for good: no more trims
    run.watch()  # a tab looks again: no collection while it does
    for _ in range(3):
        clock.now += runs.TRIM_SECONDS / 2
        run.watch()
        store.sweep()
    assert trims[-1][0] < start + runs.QUIET_SECONDS


def test_no_quiet_trim_while_a_run_trains(store, clock, monkeypatch):
    trims: list[float] = []
    monkeypatch.setattr(runs, "trim_memory", lambda collect=False: trims.append(clock()))
    run = _session(store, _cfg(epochs=5000))
    assert store.pool.pending() > 0
    for _ in range(5):
        clock.now += runs.TRIM_SECONDS
        run.watch()  # the tab's redraws
        store.sweep()
    assert trims == [] and store.pool.pending() > 0


def test_the_store_evicts_finished_runs_least_recently_used_first(store):
    def finished(seed: int):
        run = _session(store, replace(_cfg(epochs=2), seed=seed), kinds=("standard",))
        _serve_until(store, lambda: run.done)
        return run.jobs["standard"]

    first = finished(1)
    store.limit_bytes = int(2.5 * first.nbytes())  # room for two finished runs
    second = finished(2)
    assert store.keys() == [first.key, second.key]
    _session(store, first.cfg, kinds=("standard",))  # asked for again: the most recent
    third = finished(3)
    store.sweep()  # evicts what the finished runs take over the bound
    assert store.keys() == [first.key, third.key]  # the second, least recently used, went
    assert second.key is None and store.nbytes() <= store.limit_bytes
    assert second.model is not None  # a session showing it keeps it


def test_the_pool_serves_runs_in_turn_so_a_short_run_finishes_beside_a_long_one(store):
    long = _session(store, _cfg(epochs=5000), kinds=("standard",))
    short = _session(store, _cfg(epochs=4, kl_weight=0.5), kinds=("bbb",))
    served = _serve_until(store, lambda: short.done)
    assert short.done and not long.done
    order = [job.kind for job in served]
    assert order[:4] == ["standard", "bbb", "standard", "bbb"]
    assert len(served) <= 2 * short.epochs  # every turn trains at least one epoch


def test_large_jobs_never_take_every_worker(clock):
    pool = runs.Pool(workers=2, clock=clock, autostart=False)
    trainers = [Trainer(_cfg(epochs=50, kl_weight=w)) for w in (0.1, 0.2, 0.3, 0.4)]
    big1, big2, tiny1, tiny2 = (runs.Job(t) for t in trainers)
    big1.large = big2.large = True
    for job in (big1, big2, tiny1, tiny2):
        job.watch(1, True, clock())
        pool.submit(job)
    assert pool.next_job(timeout=0) is big1  # one worker on a large job
    assert pool.next_job(timeout=0) is tiny1  # the other keeps serving the small ones
    assert pool.next_job(timeout=0) is None  # not the second large job, nor a second small one
    pool.done_with(tiny1)
    assert pool.next_job(timeout=0) is tiny2


def test_pausing_a_shared_run_watched_by_others_pauses_a_copy(store, built):
    cfg = _cfg(epochs=30)
    a, b = _session(store, cfg), _session(store, cfg)
    _serve_until(store, lambda: a.jobs["bbb"].epoch >= 5)
    shared = b.jobs["bbb"]
    live.pause(a)
    mine = a.jobs["bbb"]
    assert mine is not shared and mine.key is None and mine.epoch == shared.epoch
    assert shared.key is not None and shared.wanted(store.clock())  # b still trains it
    assert not mine.wanted(store.clock()) and not a.playing
    assert len(built) == len(KINDS)  # a copy, not a run trained again
    _serve_until(store, lambda: b.done)
    live.play(a)
    _serve_until(store, lambda: a.done)
    for kind in KINDS:  # played on, the copy ends exactly as the shared run
        assert torch.equal(_weights(a.jobs[kind].model), _weights(b.jobs[kind].model))


def test_a_slice_ends_inside_a_long_epoch_and_a_pause_there_copies_it_exactly(store):
    """A long epoch (many minibatches) gives its worker back when a slice's time is up; a tab
    pausing then gets a copy that goes on from the same step and ends as the shared run."""
    cfg = _cfg(epochs=3, batch_size=10)  # 20 steps per epoch on the 200 default points
    a, b = _session(store, cfg), _session(store, cfg)
    store.pool.serve_one(timeout=0)
    job = next(j for j in a.jobs.values() if j.trainer.step)
    assert job.trainer.mid_epoch and job.trainer.step == 1 and job.epoch == 0
    _serve_until(store, lambda: all(j.trainer.step >= 7 for j in a.jobs.values()))
    live.pause(a)
    assert all(a.jobs[k] is not b.jobs[k] and a.jobs[k].trainer.mid_epoch for k in KINDS)
    _serve_until(store, lambda: b.done)
    live.play(a)
    _serve_until(store, lambda: a.done)
    for kind in KINDS:
        assert torch.equal(_weights(a.jobs[kind].model), _weights(b.jobs[kind].model))


def test_pausing_a_run_no_one_else_watches_keeps_the_run_itself(store):
    a = _session(store, _cfg(epochs=30))
    job = a.jobs["bbb"]
    _serve_until(store, lambda: job.epoch > 0)
    live.pause(a)
    assert a.jobs["bbb"] is job and job.key is None and store.keys() == []
    epoch = job.epoch
    _serve_until(store, lambda: False, limit=5)
    assert job.epoch == epoch  # paused: the workers leave it


def test_step_and_reset_of_a_shared_run_leave_the_other_session_alone(store):
    cfg = _cfg(epochs=40)
    a, b = _session(store, cfg), _session(store, cfg)
    _serve_until(store, lambda: b.jobs["bbb"].epoch >= 3)
    epoch = b.jobs["bbb"].epoch
    live.step_run(a)  # 40 // 20 = 2 epochs
    assert a.jobs["bbb"].epoch == epoch + 2 and b.jobs["bbb"].epoch == epoch
    fresh = live.reset_run(a)
    assert all(job.epoch == 0 and job.key is None for job in fresh.jobs.values())
    assert b.jobs["bbb"].epoch == epoch and b.jobs["bbb"].key is not None


def test_snapshots_are_published_at_most_so_often_and_when_a_tab_pauses(store, monkeypatch):
    monkeypatch.setattr(runs, "PUBLISH_SECONDS", float("inf"))
    run = _session(store, _cfg(epochs=50))
    job = run.jobs["bbb"]
    _serve_until(store, lambda: False, limit=8)  # four turns each
    assert job.epoch == 1  # the first epoch, for the first chart; then none until...
    assert job.trainer.epoch == 4
    live.pause(run)  # ...the tab pauses: it sees where training stands
    assert job.epoch == 4 and job.snapshot.model is not job.trainer.model


def test_views_keep_one_entry_per_view_and_drop_the_least_recently_used():
    views = runs.Views(limit=2)
    calls = []

    def compute():
        calls.append(1)
        return len(calls)

    assert views.cached("a", (1,), "fig", compute) == 1
    assert views.cached("a", (1,), "fig", compute) == 1  # once per view version
    assert views.cached("a", (2,), "fig", compute) == 2  # a newer snapshot: computed anew
    views.cached("b", (1,), "fig", compute)
    views.cached("c", (1,), "fig", compute)
    assert len(views) == 2 and views.cached("a", (2,), "fig", compute) == 5


def test_views_no_one_looks_at_expire_with_the_sweep(store, clock):
    views = runs.Views(clock=clock)
    store.on_sweep.append(views.expire)
    views.cached("a", (1,), "fig", lambda: "figure")
    clock.now += runs.UNWATCHED_SECONDS / 2
    views.cached("b", (1,), "fig", lambda: "figure")
    clock.now += runs.UNWATCHED_SECONDS / 2 + 1
    store.sweep()
    assert len(views) == 1 and views.cached("b", (1,), "fig", lambda: "again") == "figure"
