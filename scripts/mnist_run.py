"""Train one MNIST model within a time budget and evaluate it on every OOD set.

Takes the flags of `python -m bbb_core train` (the same config is built from them), plus:

    --budget-min M    stop after the epoch that brings training time past M minutes
                      (--epochs stays the upper bound)
    --eval-samples S  Monte Carlo samples of the predictive for the evaluation (default: the
                      config's pred_samples)
    --out PATH        one JSON object: config, epochs done, times, hardware, metrics, AUROC by
                      entropy and by MI on every OOD set
    --save PATH       the model's state_dict (torch.save)
    --threads N       intra-op CPU threads (on a shared, oversubscribed CPU 1 beats 2)
    --eval-every K    every K epochs, record the test error (posterior mean, and the predictive
                      with 10 samples) against the training time so far: the "trace"

Example (the run reported in docs/mnist.md):

    python scripts/mnist_run.py --dataset mnist --model bbb --hidden 1200 1200 --prior mixture \
        --data-dir /tmp/mnist --preprocessing paper --lr 1e-3 --batch-size 128 --rho0 -5 \
        --epochs 100 --budget-min 14 --eval-samples 20 --threads 1 --out bbb.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bbb_core.cli import _train_parser, config_from_args  # noqa: E402
from bbb_core.image_analysis import analyse  # noqa: E402
from bbb_core.predict import predictive  # noqa: E402
from bbb_core.pruning import error_rate  # noqa: E402
from bbb_core.train import Trainer  # noqa: E402


def _hardware() -> dict:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": gpu,
        "torch": torch.__version__,
        "loadavg_start": os.getloadavg(),
    }


def _test_errors(trainer: Trainer, x: torch.Tensor, y: torch.Tensor) -> dict:
    """Test error (%) of the posterior mean network and of the 10-sample predictive, at the
    trainer's current epoch and training time (evaluation time excluded)."""
    model = trainer.model
    mc = predictive(model, x, 10, coherent=False).probs.argmax(-1)
    record = {"epoch": trainer.epoch, "seconds": trainer.seconds}
    record["mc10"] = 100.0 * float((mc != y).float().mean())
    record["mean"] = error_rate(model, x, y) if trainer.cfg.model.kind == "bbb" else record["mc10"]
    model.train()
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    _train_parser(sub)
    parser.add_argument("--budget-min", type=float, default=None)
    parser.add_argument("--eval-samples", type=int, default=None)
    parser.add_argument("--out", required=True)
    parser.add_argument("--save", default=None)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--eval-every", type=int, default=None)
    argv = sys.argv[1:] if argv is None else argv
    ours = {"--budget-min", "--eval-samples", "--out", "--save", "--threads", "--eval-every"}
    own, rest, i = [], [], 0
    while i < len(argv):  # split our flags (each takes one value) from the CLI's
        (own if argv[i] in ours else rest).extend(
            argv[i : i + 2] if argv[i] in ours else argv[i : i + 1]
        )
        i += 2 if argv[i] in ours else 1
    args = parser.parse_args([*own, "train", *rest])
    cfg = config_from_args(args)
    if args.eval_samples:
        cfg = replace(cfg, train=replace(cfg.train, pred_samples=args.eval_samples))
    hardware = _hardware()
    trainer = Trainer(cfg)
    if args.threads:
        torch.set_num_threads(args.threads)  # after Trainer, which picks its own default
    hardware["torch_threads"] = torch.get_num_threads()
    budget = None if args.budget_min is None else 60.0 * args.budget_min
    wall0 = time.perf_counter()
    x_test = trainer.dataset.x_test.to(trainer.device)
    y_test = trainer.dataset.y_test.to(trainer.device)
    trace = []
    for progress in trainer:
        line = (
            f"epoch {progress.epoch:3d}  nll/N {progress.nll / trainer.dataset.n_train:.4f}  "
            f"kl {progress.kl:.1f}  {progress.seconds:7.1f}s"
        )
        if args.eval_every and (progress.epoch % args.eval_every == 0 or trainer.done):
            trace.append(_test_errors(trainer, x_test, y_test))
            line += f"  test error {trace[-1]['mc10']:.2f} % (mean net {trace[-1]['mean']:.2f} %)"
        print(line, flush=True)
        if budget is not None and progress.seconds >= budget:
            break
    wall_train = time.perf_counter() - wall0
    t0 = time.perf_counter()
    out = analyse({cfg.model.kind: trainer.model}, trainer.dataset, cfg.train.pred_samples)
    kind = cfg.model.kind
    x, y = trainer.dataset.x_test.to(trainer.device), trainer.dataset.y_test.to(trainer.device)
    mean_error = error_rate(trainer.model, x, y) if kind == "bbb" else None
    scores = out.ood[kind]
    record = {
        "config": cfg.to_dict(),
        "epochs_done": trainer.epoch,
        "steps": trainer.step,
        "train_seconds": trainer.seconds,
        "train_wall_seconds": wall_train,
        "eval_seconds": time.perf_counter() - t0,
        "eval_samples": cfg.train.pred_samples,
        "hardware": hardware | {"loadavg_end": os.getloadavg()},
        "metrics": out.metrics[kind],
        "test_error_percent": 100.0 * (1.0 - out.metrics[kind]["accuracy"]),
        "test_error_posterior_mean_percent": mean_error,
        "ood_auroc_entropy": scores.auroc_entropy,
        "ood_auroc_mi": scores.auroc_mi,
        "history": [vars(p) for p in trainer.history],
        "trace": trace,
    }
    Path(args.out).write_text(json.dumps(record, indent=1))
    if args.save:
        torch.save(trainer.model.state_dict(), args.save)
    print(
        json.dumps(
            {
                k: record[k]
                for k in (
                    "epochs_done",
                    "train_seconds",
                    "test_error_percent",
                    "ood_auroc_entropy",
                    "ood_auroc_mi",
                )
            },
            indent=1,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
