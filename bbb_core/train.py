"""Training runs: a seeded, device-aware loop that reports progress as it goes.

`Trainer(cfg)` builds (or receives) the dataset and the model, moves the data to the device
once, and trains with Adam on the ELBO of `losses.py`. It advances an epoch at a time
(`step_epoch`), for a time slice (`advance(seconds)`, what a live UI calls between redraws; a
slice may end inside an epoch, and the next goes on from the same step) or to the end
(`iter(trainer)` yields a `Progress` per epoch; `run()` returns a `Result`). A trainer can start
from another model's weights (`init_from=`): after a knob moves, training continues from the
current posterior under the new prior or KL weight.

A loss that turns NaN or infinite raises `TrainingDiverged`, naming the term that blew up and
the settings that feed it. Per-step values stay on the device; they are read back once per epoch.

A trainer changes no process-wide state: its `Streams` (seeded with `cfg.seed`) drive the initial
weights, the minibatch order and every Monte Carlo draw, so two trainers may run side by side in
two threads, each giving what it gives alone. Thread counts and allocator settings belong to the
program that owns the process (`bbb_core.process`).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from .config import RunConfig
from .data import make_dataset
from .data.base import Dataset
from .evaluate import evaluate
from .losses import elbo_loss, kl_share, map_loss
from .models import build_model
from .process import SMALL_MODEL  # parameters: below this, "auto" keeps a model on the CPU
from .rng import Streams, use


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


def resolve_device(name: str = "auto", n_params: int | None = None) -> torch.device:
    """ "auto" -> cuda when a GPU is available, else cpu; "cuda" without a GPU is an error.

    With `n_params`, "auto" keeps a small model (under 200,000 parameters: the toy set-ups) on
    the CPU: its steps are a few tiny kernels each, and on a GPU kernel launches and per-epoch
    reads cost more than the arithmetic (measured on an H200: the default regression set-up
    trains in 7.5 s there against about 2 s on two CPU cores).
    """
    if name == "auto":
        small = n_params is not None and n_params < SMALL_MODEL
        return torch.device("cuda" if torch.cuda.is_available() and not small else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was requested but no CUDA GPU is available: use cpu/auto")
    if name not in ("cpu", "cuda"):
        raise ValueError(f"device must be one of auto, cpu, cuda; got {name!r}")
    return torch.device(name)


@dataclass(frozen=True)
class Progress:
    """One epoch's report. nll is summed over the epoch's points (averaged over MC samples), kl is
    the full KL[q || p] of the epoch's last training pass (before its update), elbo = -(nll + kl)
    and loss = nll + the weighted KL terms actually optimised (kl_weight, schedule). For a "map"
    network kl is -log p(w) (the prior's term, `losses.map_loss`) and elbo the log joint
    log p(D, w)."""

    step: int  # optimiser steps so far
    epoch: int  # epochs completed
    nll: float
    kl: float
    elbo: float
    loss: float
    seconds: float  # training time so far, excluding evaluation


@dataclass
class Result:
    """A finished (or stopped) run."""

    config: RunConfig
    model: nn.Module
    dataset: Dataset
    history: list[Progress]
    metrics: dict[str, float]
    device: str
    train_seconds: float
    steps: int

    def timing(self) -> dict[str, float]:
        rate = self.steps / self.train_seconds if self.train_seconds > 0 else float("nan")
        return {"train_seconds": self.train_seconds, "steps": self.steps, "steps_per_second": rate}


def _optimizer(model: nn.Module, cfg: RunConfig) -> torch.optim.Optimizer:
    decay = cfg.model.weight_decay if cfg.model.kind not in ("bbb", "map") else 0.0
    fused = next(model.parameters()).device.type in ("cpu", "cuda")
    return torch.optim.Adam(model.parameters(), lr=cfg.train.lr, weight_decay=decay, fused=fused)


def step_objective(
    model: nn.Module, *, n_data: int, kl_weight: float, train_samples: int, compile: str = "off"
) -> Callable[[Tensor, Tensor, float | Tensor], tuple[Tensor, Tensor, Tensor, Tensor]]:
    """The function a training step differentiates: (xb, yb, pi_i) -> (loss, nll, kl_term, kl),
    the `losses.elbo_loss` terms of minibatch (xb, yb) with KL share pi_i. One draw from the
    posterior serves the forward pass and the KL (`Network.draw`).

    compile="default" or "reduce-overhead" returns it through `torch.compile` (static shapes):
    the sampling, softplus and KL of every layer, forwards and backwards, become a few fused
    kernels, and "reduce-overhead" replays them as CUDA graphs. pi_i may be a float or a 0-dim
    tensor either way: a compiled objective takes a float through a reused tensor, so a new value
    does not compile anew. A program that compiles many models (the bench) raises the
    compiler's recompile limit first (`process.allow_recompiles`).
    """

    def objective(xb: Tensor, yb: Tensor, share: float | Tensor) -> tuple[Tensor, ...]:
        draw = model.draw(train_samples)  # shared by the forward pass and the KL
        out = model(xb, samples=train_samples, draw=draw)
        if model.kind == "map":  # the prior's -log p(w) at full strength (`losses.map_loss`)
            nll = model.likelihood.nll(out, yb)
            terms = map_loss(nll, model.neg_log_prior(), n_data=n_data, prior_share=share)
            return terms.loss, terms.nll, terms.kl_term, terms.kl
        terms = elbo_loss(
            model.likelihood.nll(out, yb),
            model.kl(draw),
            n_data=n_data,
            kl_weight=kl_weight,
            kl_share=share,
        )
        return terms.loss, terms.nll, terms.kl_term, terms.kl

    if compile == "off":
        return objective
    compiled = torch.compile(objective, mode=compile, dynamic=False)
    share_buffer: Tensor | None = None

    def compiled_objective(xb: Tensor, yb: Tensor, share: float | Tensor) -> tuple[Tensor, ...]:
        nonlocal share_buffer
        if not isinstance(share, Tensor):  # a new float would compile anew: pass it as a tensor
            if share_buffer is None:
                share_buffer = torch.zeros((), device=xb.device)
            share = share_buffer.fill_(share)
        if compile == "reduce-overhead":
            torch.compiler.cudagraph_mark_step_begin()  # the last step's outputs may be overwritten
        return compiled(xb, yb, share)

    return compiled_objective


def cosine_lr(base: float, epoch: int, epochs: int) -> float:
    """The learning rate of `epoch` (0-based) when it decays from `base` to 0 over `epochs`
    along half a cosine."""
    return 0.5 * base * (1.0 + math.cos(math.pi * epoch / epochs))


def _noise_std(model: nn.Module) -> float | None:
    """The likelihood's learned or fixed noise std (None for classification or "hetero")."""
    log_std = getattr(getattr(model, "likelihood", None), "log_std", None)
    if log_std is None or getattr(model.likelihood, "noise_model", "") == "hetero":
        return None
    return float(log_std.detach().exp())


def divergence_message(trainer: Trainer, nll: float, kl: float, kl_term: float) -> str:
    """Which term of the loss became NaN or infinite, and the settings that feed it."""
    cfg = trainer.cfg

    def state(v: float) -> str:
        return "NaN" if math.isnan(v) else "infinite"

    common = (
        f"lower the learning rate (now {cfg.train.lr:g}), start with a smaller sigma "
        f"(rho0 now {cfg.model.rho0:g}) or widen the {cfg.prior.family} prior"
    )
    noise = _noise_std(trainer.model)
    if not math.isfinite(nll):
        what = f"the data term (the NLL) became {state(nll)}"
        if noise is not None and not (1e-6 <= noise < math.inf):
            what += f", with the noise scale out of range (learned noise std now {noise:g})"
        advice = common
        if trainer.dataset is not None and trainer.dataset.task == "regression":
            data_noise = "default" if cfg.data.noise is None else f"{cfg.data.noise:g}"
            advice += (
                f", raise the noise std (now {cfg.model.noise_std:g}) or check the data "
                f"(noise {data_noise})"
            )
    elif not math.isfinite(kl):
        what, advice = f"the KL term became {state(kl)}", common
    else:
        what = (
            f"the weighted KL term (KL weight {cfg.train.kl_weight:g} x KL {kl:.4g}) became "
            f"{state(kl_term)}"
        )
        advice = "lower the KL weight"
    return f"{what} at epoch {trainer.epoch + 1}: {advice}"


@dataclass
class _Epoch:
    """An epoch in progress: its minibatches and KL shares (drawn at its start), the next step,
    and the sums its report is made of."""

    batches: list[Tensor] | None
    shares: list[float]
    index: int
    nll_sum: Tensor
    kl_terms: Tensor
    kl: Tensor
    seconds: float

    def copy(self) -> _Epoch:
        return _Epoch(
            None if self.batches is None else [b.clone() for b in self.batches],
            list(self.shares),
            self.index,
            self.nll_sum.clone(),
            self.kl_terms.clone(),
            self.kl.clone(),
            self.seconds,
        )


@dataclass
class Trainer:
    """Trains `cfg`'s model on `cfg`'s data (see the module docstring).

    Args:
        cfg: the run's configuration (validated here).
        dataset: a prepared dataset; None builds it from `cfg.data` and `cfg.seed`.
        init_from: a model whose weights (same architecture) start this run: a warm start.
        history_limit: keep at most this many Progress entries (oldest thinned), bounding memory.
    """

    cfg: RunConfig
    dataset: Dataset | None = None
    init_from: nn.Module | None = None
    history_limit: int = 5000
    history: list[Progress] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        self.cfg.validate()
        resolve_device(self.cfg.device)  # fail early on "cuda" without a GPU
        self.rng = Streams(self.cfg.seed)  # this run's own random streams (see `rng`)
        if self.dataset is None:
            self.dataset = make_dataset(self.cfg.data, self.cfg.seed)
        with use(self.rng):
            self.model = build_model(self.cfg.model, self.cfg.prior, self.dataset)
        n_params = sum(p.numel() for p in self.model.parameters())
        self.device = resolve_device(self.cfg.device, n_params)
        if self.init_from is not None:
            try:
                self.model.load_state_dict(self.init_from.state_dict())
            except RuntimeError as err:
                message = "cannot continue: the architecture changed; start from scratch"
                raise ValueError(message) from err
        self.model.to(self.device)
        self.optimizer = _optimizer(self.model, self.cfg)
        self.x = self.dataset.x_train.to(self.device)
        self.y = self.dataset.y_train.to(self.device)
        self.objective = step_objective(
            self.model,
            n_data=self.x.shape[0],
            kl_weight=self.cfg.train.kl_weight,
            train_samples=self.cfg.train.train_samples,
            compile=self.cfg.train.compile,
        )
        self.generator = self.rng.generator("cpu")  # minibatch order
        self.epoch = 0
        self.step = 0
        self.seconds = 0.0
        self._partial: _Epoch | None = None  # an epoch a time slice ended inside

    @property
    def done(self) -> bool:
        return self.epoch >= self.cfg.train.epochs

    def _batches(self) -> list[Tensor] | None:
        n, size = self.x.shape[0], self.cfg.train.batch_size
        if size is None or size >= n:
            return None
        order = torch.randperm(n, generator=self.generator).to(self.device)
        return list(order.split(size))

    def step_epoch(self) -> Progress:
        """Train one epoch (the rest of one a time slice began) and report it, every random
        draw from this run's streams."""
        with use(self.rng):
            if self._partial is None:
                self._begin_epoch()
            self._run_steps(deadline=None)
            return self._end_epoch()

    def advance(self, seconds: float, max_epochs: int | None = None) -> list[Progress]:
        """Train for about `seconds` (at least one optimiser step when `seconds` > 0), until the
        run is done or `max_epochs` more epochs are done; report the epochs completed.

        A slice may end inside an epoch: the next call goes on from the same step, with the same
        minibatches and random draws, so a run's result does not depend on how it was sliced.
        """
        start, events = time.perf_counter(), []
        if seconds <= 0:
            return events
        deadline = start + seconds
        with use(self.rng):
            while not self.done:
                if self._partial is None:
                    self._begin_epoch()
                if not self._run_steps(deadline):
                    break  # the slice ended inside the epoch
                events.append(self._end_epoch())
                if max_epochs is not None and len(events) >= max_epochs:
                    break
                if time.perf_counter() >= deadline:
                    break
        return events

    def clone(self) -> Trainer:
        """A new trainer in this one's exact state: weights, optimiser state, random streams,
        epoch, step, time, history and an epoch in progress; trained on, it takes the same
        steps this one would. It shares the (read-only) dataset."""
        twin = Trainer(self.cfg, self.dataset, history_limit=self.history_limit)
        twin.model.load_state_dict(self.model.state_dict())
        twin.optimizer.load_state_dict(copy.deepcopy(self.optimizer.state_dict()))
        for device in {torch.device("cpu"), self.device}:
            twin.rng.generator(device).set_state(self.rng.generator(device).get_state())
        twin.epoch, twin.step, twin.seconds = self.epoch, self.step, self.seconds
        twin.history = list(self.history)
        twin._partial = None if self._partial is None else self._partial.copy()
        return twin

    @property
    def mid_epoch(self) -> bool:
        """Whether a slice ended inside an epoch (the next one goes on from there)."""
        return self._partial is not None

    def _begin_epoch(self) -> None:
        tc = self.cfg.train
        if tc.lr_schedule == "cosine":
            for group in self.optimizer.param_groups:
                group["lr"] = cosine_lr(tc.lr, self.epoch, tc.epochs)
        batches = self._batches()
        m = 1 if batches is None else len(batches)
        shares = [kl_share(tc.kl_schedule, i, m, self.epoch, tc.warmup_epochs) for i in range(m)]
        zero = self.x.new_zeros(())
        self._partial = _Epoch(batches, shares, 0, zero, zero.clone(), zero.clone(), 0.0)

    def _run_steps(self, deadline: float | None) -> bool:
        """Take the epoch's remaining steps, at least one, stopping once `deadline` (a
        `time.perf_counter()` reading) has passed. True when the epoch's steps are all done."""
        t0 = time.perf_counter()
        e = self._partial
        self.model.train()
        m = len(e.shares)
        first = e.index
        while e.index < m:
            if deadline is not None and e.index > first and time.perf_counter() >= deadline:
                break
            rows = slice(None) if e.batches is None else e.batches[e.index]
            loss, nll, kl_term, kl = self.objective(self.x[rows], self.y[rows], e.shares[e.index])
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            e.nll_sum += nll.detach()
            e.kl_terms += kl_term.detach()
            e.kl = kl.detach()
            e.index += 1
            self.step += 1
        e.seconds += time.perf_counter() - t0
        return e.index >= m

    def _end_epoch(self) -> Progress:
        e, self._partial = self._partial, None
        nll_v, kl_v, klt_v = (float(v) for v in torch.stack([e.nll_sum, e.kl, e.kl_terms]))
        if not all(math.isfinite(v) for v in (nll_v, kl_v, klt_v)):
            raise TrainingDiverged(divergence_message(self, nll_v, kl_v, klt_v))
        self.epoch += 1
        self.seconds += e.seconds
        progress = Progress(
            step=self.step,
            epoch=self.epoch,
            nll=nll_v,
            kl=kl_v,
            elbo=-(nll_v + kl_v),
            loss=nll_v + klt_v,
            seconds=self.seconds,
        )
        self._record(progress)
        return progress

    def _record(self, progress: Progress) -> None:
        self.history.append(progress)
        if len(self.history) > self.history_limit:  # keep every other old entry
            half = len(self.history) // 2
            self.history[:half] = self.history[:half:2]

    def __iter__(self) -> Iterator[Progress]:
        while not self.done:
            yield self.step_epoch()

    def result(self) -> Result:
        """Evaluate the model as it stands and package the run."""
        metrics = evaluate(self.model, self.dataset, self.cfg)
        return Result(
            config=self.cfg,
            model=self.model,
            dataset=self.dataset,
            history=list(self.history),
            metrics=metrics,
            device=str(self.device),
            train_seconds=self.seconds,
            steps=self.step,
        )

    def run(self, callback: Callable[[Progress], bool | None] | None = None) -> Result:
        """Train to the end; `callback(progress)` returning True stops early."""
        for progress in self:
            if callback is not None and callback(progress):
                break
        return self.result()


def train(cfg: RunConfig, dataset: Dataset | None = None, callback=None) -> Result:
    """Train `cfg` to the end and return the `Result` (see `Trainer`)."""
    return Trainer(cfg, dataset).run(callback)
