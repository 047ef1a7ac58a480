"""Shared test helpers: every test starts from the same seeds, and `assert_close` compares with
tolerances the caller must state."""

from __future__ import annotations

import random
import sys

import numpy as np
import pytest
import torch

SEED = 0


@pytest.fixture(autouse=True)
def _seed_everything():
    """Seed torch, numpy and random before every test, so each test is reproducible on its own."""
    torch.manual_seed(SEED)
    np.random.seed(SEED)
    random.seed(SEED)
    yield


@pytest.fixture(autouse=True)
def _fresh_shared_runs():
    """Every test starts with an empty store of shared runs (the app keeps one per process):
    no test sees the runs another one trained."""
    yield
    live = sys.modules.get("ui.live")
    if live is not None:
        live.reset_shared()


def assert_close(actual, expected, *, rtol: float, atol: float, msg: str | None = None) -> None:
    """`torch.testing.assert_close` on tensors, arrays or numbers, with explicit tolerances.

    Both sides are converted to float64 tensors first, so a float32 result can be compared with a
    float64 oracle; the tolerances say how close is close enough (no silent defaults).
    """
    a = torch.as_tensor(np.asarray(actual) if not torch.is_tensor(actual) else actual)
    e = torch.as_tensor(np.asarray(expected) if not torch.is_tensor(expected) else expected)
    torch.testing.assert_close(
        a.detach().cpu().to(torch.float64),
        e.detach().cpu().to(torch.float64),
        rtol=rtol,
        atol=atol,
        msg=msg,
    )


@pytest.fixture
def single_thread():
    """Run a test on one intra-op thread: the engine's tiny tensors lose more to thread hand-offs
    than they gain (the command line makes the same choice, `process.threads_for`)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
