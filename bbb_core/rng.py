"""Random streams: every random number of the package comes from here.

Initial weights, Monte Carlo noise, flipout signs, dropout masks and the fused kernels' seeds are
all drawn from `generator(device)`. Inside `with use(streams):` that is the `Streams` object's
own `torch.Generator` for the device, so a run that owns a `Streams` never reads or advances
PyTorch's global generator, and runs in different threads never share a stream (what `use` sets
is per thread). Outside any `use` it is None: PyTorch's default generator, as for any torch
module. A `Trainer` owns one `Streams` for its training; `predictive` and `evaluate` take one
(or a seed) for their draws.

One exception: a step compiled by `torch.compile` (`TrainConfig.compile`, a GPU option of the
command line and the bench; the app never compiles) draws inside the compiled code, from the
compiler's generator, which PyTorch's global one seeds.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

_SEED_LIMIT = 2**63 - 1  # torch.Generator.manual_seed takes seeds below 2**64


def derive_seed(seed: int, *stream: int) -> int:
    """An independent 63-bit seed for sub-stream `stream` of `seed` (numpy's SeedSequence)."""
    words = np.random.SeedSequence([seed, *stream]).generate_state(2, np.uint32)
    return (int(words[0]) << 31 ^ int(words[1])) & _SEED_LIMIT


class Streams:
    """The random streams of one run: a `torch.Generator` per device, all from one seed.

    The CPU stream is seeded with `seed`; a CUDA device's stream, made on first use, with a
    seed derived from it. `Streams(seed)` twice gives the same numbers in the same order.
    """

    def __init__(self, seed: int) -> None:
        if isinstance(seed, bool) or not (isinstance(seed, int) and 0 <= seed <= _SEED_LIMIT):
            raise ValueError(f"seed must be an integer in [0, 2**63 - 1]; got {seed!r}")
        self.seed = seed
        self._generators: dict[str, torch.Generator] = {}

    def generator(self, device: torch.device | str = "cpu") -> torch.Generator:
        """This run's generator for `device` (made on first use)."""
        device = torch.device(device)
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        key = str(device)
        if key not in self._generators:
            seed = self.seed if device.type == "cpu" else derive_seed(self.seed, device.index + 1)
            self._generators[key] = torch.Generator(device).manual_seed(seed)
        return self._generators[key]

    def __repr__(self) -> str:
        return f"Streams(seed={self.seed})"


_local = threading.local()


@contextmanager
def use(streams: Streams | None) -> Iterator[Streams | None]:
    """Draw every random number of this thread from `streams` inside the block (None: from
    PyTorch's default generator). Blocks nest; the previous streams come back on exit."""
    previous = getattr(_local, "streams", None)
    _local.streams = streams
    try:
        yield streams
    finally:
        _local.streams = previous


def current() -> Streams | None:
    """The streams this thread draws from now (None: PyTorch's default generator)."""
    return getattr(_local, "streams", None)


def generator(device: torch.device | str = "cpu") -> torch.Generator | None:
    """The generator for `device` of the streams in use in this thread, or None (default)."""
    streams = current()
    return None if streams is None else streams.generator(device)


def random_seed() -> int:
    """A fresh 62-bit seed drawn from this thread's CPU stream (for a sub-generator)."""
    return int(torch.randint(2**62, (), dtype=torch.int64, generator=generator("cpu")))


def streams_for(rng: Streams | int | None) -> Streams | None:
    """`rng` as `Streams`: a seed becomes fresh streams; None and `Streams` pass through."""
    return Streams(rng) if isinstance(rng, int) and not isinstance(rng, bool) else rng
