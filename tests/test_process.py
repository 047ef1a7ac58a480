"""Tests for `bbb_core.process`: the process-wide settings that only an entry point makes."""

from __future__ import annotations

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
