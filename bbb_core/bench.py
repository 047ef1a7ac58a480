"""`python -m bbb_core bench`: how much Bayes by Backprop costs next to a standard network.

Four measurements, printed as tables and optionally written as JSON:

- `train_step`: the median time of one full training step (forward, ELBO via
  `losses.elbo_loss` with the likelihood's NLL and the model's KL, backward, Adam step) of the
  MLPs 784-400-400-10 and 784-1200-1200-10 at batch 128 (and 1024 on a GPU), for the standard
  network and for BBB with each estimator (`bbb-reparam`, `bbb-local`, `bbb-flipout`). The cases
  run round-robin after a warm-up, so each `ratio` (median / the standard step's median) compares
  steps measured side by side in the same run, under the same machine load.
- `toy_step`: the same ratio on the app's own networks and data: one full-batch training step
  (`Trainer.step_epoch`) of the default regression (`default_config("blundell")`) and
  classification (`default_config("moons")`) set-ups, on one CPU thread as the app trains them,
  for the standard network and BBB with each estimator, round-robin.
- `predict`: the time `predict.predictive` takes to produce predictive probabilities for 1,000
  inputs with S = 1, 10 and 100 posterior samples; `ratio` is to one standard forward pass of the
  same inputs (the `standard` row).
- `toy`: the end-to-end wall time of `train.train` on the app's default regression
  (`default_config("blundell")`) and classification (`default_config("moons")`) set-ups.

Plus the peak resident memory of the process (and the peak GPU memory on cuda) and the CPU thread
count. Options (`run_bench`): the training steps through `torch.compile`, the float32 matrix
product precision, and which MLP, batch sizes and parts to time. BBB uses the Gaussian prior
N(0, 1) (closed-form KL), as the peer libraries' timings in the README do. On cuda every timing
is bracketed by `torch.cuda.synchronize()`; nothing else syncs.
"""

from __future__ import annotations

import json
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
from torch import Tensor, nn

from .config import (
    BENCH_PARTS,
    COMPILE_MODES,
    DEVICES,
    LIMITS,
    MATMUL_PRECISIONS,
    ModelConfig,
    PriorConfig,
    check_hidden,
    default_config,
    network_size,
)
from .data.base import Dataset
from .models import build_model
from .predict import predictive
from .process import allow_recompiles, configure_for, tune_cpu_allocator
from .rng import Streams, use
from .train import Trainer, resolve_device, step_objective

MODEL_NAMES = ("standard", "bbb-reparam", "bbb-local", "bbb-flipout")
N_DATA = 60_000  # the ELBO's dataset size (MNIST): scales the KL against the minibatch NLL
N_BATCHES = 469  # minibatches per epoch at batch 128: the KL share of one step is 1 / 469


@dataclass(frozen=True)
class BenchSizes:
    """What the bench measures and how often."""

    hidden: tuple[tuple[int, ...], ...] = ((400, 400), (1200, 1200))  # MLP hidden widths
    batches: tuple[int, ...] = (128,)  # training batch sizes
    gpu_batches: tuple[int, ...] = (1024,)  # more training batch sizes on a GPU
    n_in: int = 784  # input size (MNIST pixels)
    n_classes: int = 10  # output size
    step_warmup: int = 5  # untimed training steps per case before timing
    step_rounds: int = 40  # timed round-robin rounds (one step of every case per round)
    toy_rounds: int = 300  # timed rounds of the toy steps (each well under 10 ms)
    n_predict: int = 1000  # inputs of the prediction timing
    samples: tuple[int, ...] = (1, 10, 100)  # Monte Carlo samples of the predictive
    predict_rounds: int = 3  # timed round-robin rounds of the prediction cases
    toy_epochs: int | None = None  # None: the toy set-ups' default epochs
    compile: str = "off"  # training steps through torch.compile: "off", "default", ...


QUICK = BenchSizes(
    hidden=((32, 32),),
    n_in=20,
    step_warmup=1,
    step_rounds=3,
    toy_rounds=3,
    n_predict=50,
    predict_rounds=1,
    toy_epochs=5,
)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_round_robin(
    cases: dict[str, Callable[[], object]], rounds: int, warmup: int, device: torch.device
) -> dict[str, list[float]]:
    """Milliseconds of each call of each case, the cases interleaved round-robin.

    Every case runs `warmup` times first. Each round then times one call of every case, starting
    one case later than the round before, so slow drifts of the machine load hit all cases alike.
    """
    names = list(cases)
    for _ in range(warmup):
        for name in names:
            cases[name]()
    _sync(device)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            t0 = time.perf_counter()
            cases[name]()
            _sync(device)
            times[name].append((time.perf_counter() - t0) * 1e3)
    return times


def _dataset(sizes: BenchSizes, n: int, seed: int = 0) -> Dataset:
    """Random MNIST-shaped data: inputs in [0, 1), uniform labels (speed does not care)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(n, sizes.n_in, generator=gen)
    y = torch.randint(sizes.n_classes, (n,), generator=gen)
    return Dataset("bench", "classification", x, y, x, y, n_classes=sizes.n_classes)


def build_bench_model(name: str, hidden: tuple[int, ...], data: Dataset) -> nn.Module:
    """The MLP `name` (one of MODEL_NAMES) with hidden widths `hidden`, on the CPU."""
    if name == "standard":
        cfg = ModelConfig(kind="standard", hidden=hidden)
    else:
        cfg = ModelConfig(kind="bbb", hidden=hidden, estimator=name.removeprefix("bbb-"))
    return build_model(cfg, PriorConfig(), data)


def train_step_fn(
    model: nn.Module, x: Tensor, y: Tensor, compile: str = "off"
) -> Callable[[], Tensor]:
    """One training step as the Trainer takes it: forward, ELBO, backward, Adam step."""
    device_type = x.device.type
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=device_type in ("cpu", "cuda"))
    objective = step_objective(
        model, n_data=N_DATA, kl_weight=1.0, train_samples=1, compile=compile
    )

    def step() -> Tensor:
        loss = objective(x, y, 1.0 / N_BATCHES)[0]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.detach()

    model.train()
    return step


def _rows(times: dict[str, list[float]], base: str, **keys) -> list[dict]:
    """One row per case: `keys`, ["samples",] "model", "median_ms", "ratio" (to case `base`).

    A case named "model@S" is the model with S samples.
    """
    base_ms = statistics.median(times[base])
    rows = []
    for name, ms in times.items():
        model, _, samples = name.partition("@")
        row = dict(keys, samples=int(samples)) if samples else dict(keys)
        median = statistics.median(ms)
        rows.append({**row, "model": model, "median_ms": median, "ratio": median / base_ms})
    return rows


def bench_train_steps(sizes: BenchSizes, device: torch.device) -> list[dict]:
    """Rows {"hidden", "batch", "model", "median_ms", "ratio"} (ratio to `standard`)."""
    batches = sizes.batches + (sizes.gpu_batches if device.type == "cuda" else ())
    rows = []
    for hidden in sizes.hidden:
        for batch in batches:
            data = _dataset(sizes, batch)
            x, y = data.x_train.to(device), data.y_train.to(device)
            cases = {}
            for name in MODEL_NAMES:
                with use(Streams(0)):
                    model = build_bench_model(name, hidden, data).to(device)
                cases[name] = train_step_fn(model, x, y, sizes.compile)
            times = time_round_robin(cases, sizes.step_rounds, sizes.step_warmup, device)
            rows += _rows(times, "standard", hidden=list(hidden), batch=batch)
    return rows


TOY_SETUPS = ("blundell", "moons")  # the app's default regression and classification set-ups


def bench_toy_steps(sizes: BenchSizes, device: torch.device) -> list[dict]:
    """Rows {"setup", "hidden", "batch", "model", "median_ms", "ratio"} (ratio to `standard`):
    one full-batch training step of each model on the app's default networks and data."""
    rows = []
    threads = torch.get_num_threads()
    try:
        for name in TOY_SETUPS:
            base = default_config(name, device=device.type)
            cases, trainers = {}, {}
            for model in MODEL_NAMES:
                kind, _, estimator = model.partition("-")
                mcfg = replace(base.model, kind=kind, estimator=estimator or base.model.estimator)
                trainers[model] = Trainer(replace(base, model=mcfg))
                cases[model] = trainers[model].step_epoch
            configure_for(trainers["standard"].model)  # as the app: one thread for these
            times = time_round_robin(cases, sizes.toy_rounds, sizes.step_warmup, device)
            hidden, batch = list(base.model.hidden), trainers["standard"].x.shape[0]
            rows += _rows(times, "standard", setup=name, hidden=hidden, batch=batch)
    finally:
        torch.set_num_threads(threads)
    return rows


def bench_predict(sizes: BenchSizes, device: torch.device) -> list[dict]:
    """Rows {"hidden", "samples", "model", "median_ms", "ratio"}.

    The `standard` row (samples 1) is one forward pass of the standard network under
    `torch.no_grad()`: the unit of every ratio. BBB rows time `predictive(model, x, samples)`.
    """
    rows = []
    data = _dataset(sizes, sizes.n_predict, seed=1)
    x = data.x_train.to(device)
    for hidden in sizes.hidden:
        with use(Streams(0)):
            standard = build_bench_model("standard", hidden, data).to(device).eval()
        cases: dict[str, Callable[[], object]] = {"standard@1": _no_grad(standard, x)}
        for name in MODEL_NAMES[1:]:
            model = build_bench_model(name, hidden, data).to(device)
            for s in sizes.samples:
                cases[f"{name}@{s}"] = _predict_fn(model, x, s)
        times = time_round_robin(cases, sizes.predict_rounds, 1, device)
        rows += _rows(times, "standard@1", hidden=list(hidden))
    return rows


def _no_grad(model: nn.Module, x: Tensor) -> Callable[[], Tensor]:
    def forward() -> Tensor:
        with torch.no_grad():
            return model(x)

    return forward


def _predict_fn(model: nn.Module, x: Tensor, samples: int) -> Callable[[], Tensor]:
    return lambda: predictive(model, x, samples, coherent=False).probs


def bench_toy(sizes: BenchSizes, device: torch.device) -> list[dict]:
    """Rows {"setup", "seconds"}: end-to-end `train(default_config(name))`, data included."""
    rows = []
    threads = torch.get_num_threads()
    try:
        for name in ("blundell", "moons"):
            cfg = default_config(name, device=device.type)
            if sizes.toy_epochs is not None:
                cfg = replace(cfg, train=replace(cfg.train, epochs=sizes.toy_epochs))
            t0 = time.perf_counter()
            trainer = Trainer(cfg)
            configure_for(trainer.model)  # as the command line does for one run
            trainer.run()
            _sync(device)
            rows.append({"setup": name, "seconds": time.perf_counter() - t0})
    finally:
        torch.set_num_threads(threads)
    return rows


def memory_report(device: torch.device) -> dict:
    """Peak resident memory of this process and, on cuda, peak allocated GPU memory (MiB)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rss_mb = rss / 2**20 if sys.platform == "darwin" else rss / 2**10  # bytes vs KiB
    gpu = None
    if device.type == "cuda":
        gpu = torch.cuda.max_memory_allocated(device) / 2**20
    return {"peak_rss_mb": rss_mb, "peak_gpu_mb": gpu}


def _fail(flag: str, allowed: str, value: object) -> None:
    got = value if isinstance(value, str) else repr(value)  # str: a worked-out size
    raise ValueError(f"{flag} must be {allowed}; got {got}")


def check_options(
    device: str,
    compile: str,
    matmul_precision: str,
    hidden: tuple[int, ...] | None,
    batches: tuple[int, ...] | None,
    parts: tuple[str, ...],
    sizes: BenchSizes,
) -> None:
    """Raise ValueError, naming the `bench` flag, for an option `run_bench` cannot time.

    The MLP and batch sizes obey the training limits (`config.LIMITS`): 1 to 8 layers of 1 to
    4096 units, at most 20 M weights with `sizes`' inputs and classes, batches of 1 to 100,000
    inputs, and at most 200 M activations in one step (batch x units).
    """
    for flag, value, choices in (
        ("--device", device, DEVICES),
        ("--compile", compile, COMPILE_MODES),
        ("--matmul-precision", matmul_precision, MATMUL_PRECISIONS),
    ):
        if not isinstance(value, str) or value not in choices:
            _fail(flag, "one of " + ", ".join(choices), repr(value))
    if not parts or not all(isinstance(p, str) and p in BENCH_PARTS for p in parts):
        _fail("--parts", "one or more of " + ", ".join(BENCH_PARTS), repr(parts))
    all_hidden = sizes.hidden if hidden is None else (hidden,)
    all_batches = sizes.batches + sizes.gpu_batches if batches is None else batches
    if not all_batches:
        _fail("--batch", "one or more batch sizes", batches)
    for b in all_batches:
        if b not in LIMITS["train.batch_size"]:
            _fail("--batch", LIMITS["train.batch_size"].allowed(), b)
    for widths in all_hidden:
        check_hidden(widths, "--hidden")
        weights, units = network_size("mlp", widths, (sizes.n_in,), sizes.n_classes)
        if weights not in LIMITS["network.weights"]:
            top = LIMITS["network.weights"].high
            _fail("--hidden", f"an MLP of at most {top:.0f} weights", f"{widths}: {weights}")
        for b in all_batches:
            if b * units not in LIMITS["train.activations"]:
                top = LIMITS["train.activations"].high
                allowed = f"small enough for at most {top:.0f} activations (batch x units)"
                _fail("--batch", allowed, f"{b} x {units} units of {widths}")


def run_bench(
    device: str = "cpu",
    quick: bool = False,
    *,
    compile: str = "off",
    matmul_precision: str = "highest",
    hidden: tuple[int, ...] | None = None,
    batches: tuple[int, ...] | None = None,
    parts: tuple[str, ...] = BENCH_PARTS,
) -> dict:
    """Every measurement of the module docstring, as the JSON-ready dict `main` writes.

    compile: the training steps (standard and BBB alike) through `train.step_objective`'s
    torch.compile mode. matmul_precision: `torch.set_float32_matmul_precision` for the whole
    run ("high" lets a GPU use TF32). hidden: only this MLP. batches: only these training
    batch sizes. parts: which measurements to run
    (a part left out is an empty list). Options it cannot time raise ValueError
    (`check_options`).
    """
    base = QUICK if quick else BenchSizes()
    check_options(device, compile, matmul_precision, hidden, batches, parts, base)
    dev = resolve_device(device)
    sizes = replace(base, compile=compile)
    if hidden is not None:
        sizes = replace(sizes, hidden=(tuple(hidden),))
    if batches is not None:
        sizes = replace(sizes, batches=tuple(batches), gpu_batches=())
    if dev.type == "cpu":
        tune_cpu_allocator()  # as the command line does for a large model
    if compile != "off":
        allow_recompiles()  # every bench model compiles its own step
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision(matmul_precision)
    measure = {
        "train_step": bench_train_steps,
        "toy_step": bench_toy_steps,
        "predict": bench_predict,
        "toy": bench_toy,
    }
    try:
        result = {
            "device": str(dev) if dev.type == "cpu" else torch.cuda.get_device_name(dev),
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "machine": platform.processor() or platform.machine(),
            "quick": quick,
            "compile": compile,
            "matmul_precision": matmul_precision,
        }
        for part, fn in measure.items():
            with use(Streams(0)):  # the bench's own random streams
                result[part] = fn(sizes, dev) if part in parts else []
    finally:
        torch.set_float32_matmul_precision(before)
    result["memory"] = memory_report(dev)
    return result


def _width(row: dict) -> str:
    return "-".join(str(w) for w in row["hidden"])


def _timing_table(title: str, rows: list[dict], columns: tuple[str, str, str, str]) -> list[str]:
    """Lines of one timing table; columns = (row key, its header, ratio header, ratio format)."""
    key, key_header, ratio_header, ratio_format = columns
    lines = ["", title]
    lines.append(f"{'hidden':>10} {key_header:>6} {'model':>12} {'ms':>10} {ratio_header:>11}")
    for r in rows:
        lines.append(
            f"{_width(r):>10} {r[key]:>6} {r['model']:>12} {r['median_ms']:>10.2f} "
            f"{r['ratio']:>11{ratio_format}}"
        )
    return lines


def format_table(result: dict) -> str:
    """The bench result as plain-text tables."""
    lines = [
        f"device {result['device']}, {result['threads']} CPU threads, torch {result['torch']}, "
        f"compile {result['compile']}, float32 matmul precision {result['matmul_precision']}"
    ]
    lines += _timing_table(
        "training step (forward, ELBO, backward, Adam)",
        result["train_step"],
        ("batch", "batch", "x standard", ".2f"),
    )
    lines += _timing_table(
        "the app's networks: one full-batch training step (blundell, then moons)",
        result["toy_step"],
        ("batch", "batch", "x standard", ".2f"),
    )
    lines += _timing_table(
        "predictive probabilities of the bench inputs with S samples",
        result["predict"],
        ("samples", "S", "x forward", ".1f"),
    )
    lines += ["", "toy set-ups, end to end"]
    lines += [f"{r['setup']:>10} {r['seconds']:>8.2f} s" for r in result["toy"]]
    mem = result["memory"]
    gpu = "" if mem["peak_gpu_mb"] is None else f", peak GPU memory {mem['peak_gpu_mb']:.0f} MiB"
    lines += ["", f"peak RSS {mem['peak_rss_mb']:.0f} MiB{gpu}"]
    return "\n".join(lines)


def main(device: str = "cpu", json_path: str | None = None, quick: bool = False, **options) -> int:
    """Run the bench, print the table and, with `json_path`, write the result as JSON.
    `options` go to `run_bench`."""
    result = run_bench(device, quick, **options)
    print(format_table(result), flush=True)
    if json_path:
        from .cli import finite  # strict JSON: a non-finite number is written as null

        with open(json_path, "w") as f:
            json.dump(finite(result), f, indent=1, allow_nan=False)
        print(f"wrote {json_path}")
    return 0
