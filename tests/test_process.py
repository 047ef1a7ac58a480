"""Tests for `bbb_core.process`: the process-wide settings that only an entry point makes."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from bbb_core import process


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_small_models_train_on_one_thread_large_ones_on_every_core():
    assert process.threads_for(nn.Linear(10, 10)) == 1
    big = nn.Linear(1000, process.SMALL_MODEL // 1000 + 1)
    assert process.threads_for(big) == process._DEFAULT_THREADS


def test_configure_threads_sets_the_count(restore_threads):
    process.configure_threads(1)
    assert torch.get_num_threads() == 1
    with pytest.raises(ValueError, match="threads"):
        process.configure_threads(0)


def test_configure_for_a_small_model_uses_one_thread(restore_threads):
    process.configure_for(nn.Linear(4, 4))
    assert torch.get_num_threads() == 1


def test_allocator_tuning_is_idempotent():
    first = process.tune_cpu_allocator()
    assert process.tune_cpu_allocator() == first


def test_allow_recompiles_raises_the_compilers_limit_and_never_lowers_it():
    dynamo = torch._dynamo.config
    name = "recompile_limit" if hasattr(dynamo, "recompile_limit") else "cache_size_limit"
    before = getattr(dynamo, name)
    try:
        setattr(dynamo, name, 8)
        process.allow_recompiles(300)
        assert getattr(dynamo, name) == 300
        process.allow_recompiles(20)
        assert getattr(dynamo, name) == 300
    finally:
        setattr(dynamo, name, before)


_ARENAS_SCRIPT = """
import ctypes, sys, threading
from bbb_core import process
if sys.argv[1] == "limit":
    assert process.limit_malloc_arenas(1)
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
start = threading.Barrier(8)
def work():
    start.wait()  # all at once: glibc gives contending threads heaps of their own
    blocks = [libc.malloc(4096) for _ in range(20000)]
    for b in blocks:
        libc.free(b)
threads = [threading.Thread(target=work) for _ in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
libc.malloc_stats()  # one "Arena N:" paragraph per heap, on stderr
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc only")
def test_limit_malloc_arenas_caps_the_heaps_of_a_threaded_process():
    def arenas(mode: str) -> int:
        env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
        done = subprocess.run(
            [sys.executable, "-c", _ARENAS_SCRIPT, mode],
            capture_output=True,
            text=True,
            env=env,
            cwd=Path(__file__).resolve().parents[1],
            timeout=120,
            check=True,
        )
        return done.stderr.count("Arena ")

    assert arenas("limit") == 1
    assert arenas("free") > 1  # without the limit the threads got heaps of their own


def test_limit_malloc_arenas_rejects_zero():
    with pytest.raises(ValueError, match="arenas"):
        process.limit_malloc_arenas(0)
