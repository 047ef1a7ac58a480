"""Tests for `bbb_core.rng`: a run's own random streams, per thread, never the global one."""

from __future__ import annotations

import threading

import pytest
import torch

from bbb_core import rng


def draws(n: int = 5) -> torch.Tensor:
    return torch.empty(n).normal_(generator=rng.generator("cpu"))


def test_same_seed_same_numbers_and_the_global_stream_is_never_drawn():
    state = torch.get_rng_state()
    with rng.use(rng.Streams(3)):
        a = draws()
    with rng.use(rng.Streams(3)):
        b = draws()
    with rng.use(rng.Streams(4)):
        c = draws()
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(torch.get_rng_state(), state)


def test_outside_any_streams_the_default_generator_is_used():
    assert rng.current() is None and rng.generator("cpu") is None
    torch.manual_seed(5)
    a = draws()
    torch.manual_seed(5)
    assert torch.equal(a, torch.randn(5))


def test_use_nests_and_restores():
    outer, inner = rng.Streams(1), rng.Streams(2)
    with rng.use(outer):
        with rng.use(inner):
            assert rng.current() is inner
        assert rng.current() is outer
        with pytest.raises(KeyError), rng.use(inner):
            raise KeyError  # restored on errors too
        assert rng.current() is outer
    assert rng.current() is None


def test_streams_are_per_thread():
    seen = {}
    barrier = threading.Barrier(2)

    def worker(seed: int) -> None:
        with rng.use(rng.Streams(seed)):
            barrier.wait()  # both threads are inside their own `use` at once
            seen[seed] = (rng.current().seed, draws())

    threads = [threading.Thread(target=worker, args=(s,)) for s in (7, 8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for seed in (7, 8):
        with rng.use(rng.Streams(seed)):
            assert seen[seed][0] == seed and torch.equal(seen[seed][1], draws())
    assert rng.current() is None  # the main thread never saw the workers' streams


def test_derived_seeds_are_distinct_and_repeatable():
    seeds = {rng.derive_seed(0, k) for k in range(100)} | {rng.derive_seed(1, 0)}
    assert len(seeds) == 101
    assert rng.derive_seed(5, 2) == rng.derive_seed(5, 2)
    assert all(0 <= s < 2**63 for s in seeds)


@pytest.mark.parametrize("bad", [-1, 2**63, 1.5, True, "3"])
def test_streams_reject_bad_seeds(bad):
    with pytest.raises(ValueError, match="seed"):
        rng.Streams(bad)


def test_streams_for_accepts_seeds_and_streams():
    streams = rng.Streams(1)
    assert rng.streams_for(streams) is streams
    assert rng.streams_for(None) is None
    assert rng.streams_for(9).seed == 9


def test_random_seed_comes_from_the_streams():
    with rng.use(rng.Streams(11)):
        a = rng.random_seed()
    with rng.use(rng.Streams(11)):
        assert rng.random_seed() == a
