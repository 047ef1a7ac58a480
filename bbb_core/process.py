"""Process-wide settings, for the program that owns the process: the command line and the
app's start-up call these once; a `Trainer`, `predictive` or anything else in `bbb_core` never
does (a server trains many sessions' runs in one process, and they must not change each other's
settings).

- `configure_threads(n)`: PyTorch's intra-op CPU threads.
- `threads_for(model)`: 1 for small networks (the toy set-ups), whose many tiny operations lose
  more to thread hand-offs than they gain; else every core.
- `tune_cpu_allocator()`: let glibc keep freed memory for the next training step.
"""

from __future__ import annotations

import ctypes
import os
import platform

import torch
from torch import nn

SMALL_MODEL = 200_000  # parameters: below this, one CPU thread beats several (tiny ops)
_DEFAULT_THREADS = torch.get_num_threads()
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters (malloc.h)
_KEEP_FREE_HEAP = 256 << 20  # bytes of freed heap glibc may keep instead of returning them
_MMAP_FROM = 32 << 20  # bytes: blocks at least this large are still mapped and unmapped alone
_allocator_tuned = False


def is_small(model: nn.Module) -> bool:
    """Whether `model` has under SMALL_MODEL parameters: its operations are too small to split
    across threads, and its training is bound by Python's per-operation overhead."""
    return sum(p.numel() for p in model.parameters()) < SMALL_MODEL


def threads_for(model: nn.Module) -> int:
    """Intra-op CPU threads that train `model` fastest: 1 for a small one (`is_small`), else
    the process's default (every core)."""
    return 1 if is_small(model) else _DEFAULT_THREADS


def configure_threads(threads: int) -> None:
    """Set PyTorch's intra-op CPU threads for the whole process."""
    if threads < 1:
        raise ValueError(f"threads must be >= 1; got {threads}")
    torch.set_num_threads(threads)


def tune_cpu_allocator() -> bool:
    """Let glibc keep up to 256 MiB of freed memory rather than hand it back to the OS at once.

    Why: a Bayes by Backprop step allocates and frees a dozen weight-sized temporaries (noise,
    sampled weights, their gradients); by default glibc returns such memory to the OS and then
    page-faults it back in, every step: about a sixth of the CPU time of a 784-1200-1200-10
    step. Process-wide, once; True if applied. A no-op off glibc or when the user sets glibc's
    own MALLOC_TRIM_THRESHOLD_ / MALLOC_MMAP_THRESHOLD_.
    """
    global _allocator_tuned
    if _allocator_tuned:
        return True
    if platform.libc_ver()[0] != "glibc" or any(
        k in os.environ for k in ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_")
    ):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    _allocator_tuned = (
        mallopt(_M_MMAP_THRESHOLD, _MMAP_FROM) == 1
        and mallopt(_M_TRIM_THRESHOLD, _KEEP_FREE_HEAP) == 1
    )
    return _allocator_tuned


def configure_for(model: nn.Module) -> None:
    """What the command line does before training `model` alone in its process: the threads
    that train it fastest and, for large models, the allocator setting."""
    threads = threads_for(model)
    configure_threads(threads)
    if threads > 1:
        tune_cpu_allocator()


RECOMPILE_LIMIT = 256  # compiled variants of the training step per process


def allow_recompiles(limit: int = RECOMPILE_LIMIT) -> None:
    """Let `torch.compile` keep up to `limit` compiled variants of one function: every model
    (and batch shape) a process compiles, as the bench does, takes one entry of the step
    objective's cache, and past the limit the compiler silently falls back to eager."""
    dynamo = torch._dynamo.config
    name = "recompile_limit" if hasattr(dynamo, "recompile_limit") else "cache_size_limit"
    setattr(dynamo, name, max(getattr(dynamo, name), limit))
