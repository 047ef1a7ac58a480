"""The command line: `python -m bbb_core train ...` for headless runs, `... bench` for speed.

`train` builds a `RunConfig` from `default_config(--dataset)` and the flags given, trains, prints a
short summary and, with `--json PATH`, writes one JSON object with `config` (reloadable with
`RunConfig.from_dict`), `history` (per epoch: nll, kl, elbo, loss), `metrics`, `timing` and
`device`. The JSON is strict: a NaN or infinite number (a metric that could not be computed, a
loss that blew up) is written as null, never as `NaN` or `Infinity`.

Bad input never becomes a traceback: a flag outside its range (`bbb_core.config.LIMITS`, see
docs/limits.md), a malformed command line, missing or corrupt data, a run that diverges
(`TrainingDiverged`) or any other failure exits with status 2 and exactly one line on stderr,
`error: ...`, naming the flag and the config field with its allowed range where there is one.
Ctrl-C exits with status 130.
"""

from __future__ import annotations

import argparse
import json
import math
import numbers
import re
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from .config import (
    BENCH_PARTS,
    COMPILE_MODES,
    DATASETS,
    DEVICES,
    ESTIMATORS,
    KL_SCHEDULES,
    LR_SCHEDULES,
    MATMUL_PRECISIONS,
    MODELS,
    NOISE_MODELS,
    OOD_SETS,
    PREPROCESSING,
    PRIORS,
    TABULAR_DATASETS,
    RunConfig,
    default_config,
)

# flag -> (config section, field); a flag left out keeps the dataset's default
_FLAGS: dict[str, tuple[str, str]] = {
    "n_train": ("data", "n_train"),
    "noise": ("data", "noise"),
    "gap": ("data", "gap"),
    "ood": ("data", "ood"),
    "preprocessing": ("data", "preprocessing"),
    "data_dir": ("data", "data_dir"),
    "prior": ("prior", "family"),
    "prior_sigma": ("prior", "sigma"),
    "laplace_b": ("prior", "b"),
    "mixture_pi": ("prior", "pi"),
    "mixture_sigma1": ("prior", "sigma1"),
    "mixture_sigma2": ("prior", "sigma2"),
    "model": ("model", "kind"),
    "arch": ("model", "arch"),
    "hidden": ("model", "hidden"),
    "activation": ("model", "activation"),
    "estimator": ("model", "estimator"),
    "rho0": ("model", "rho0"),
    "noise_model": ("model", "noise_model"),
    "noise_std": ("model", "noise_std"),
    "dropout": ("model", "dropout"),
    "ensemble_size": ("model", "ensemble_size"),
    "weight_decay": ("model", "weight_decay"),
    "epochs": ("train", "epochs"),
    "lr": ("train", "lr"),
    "batch_size": ("train", "batch_size"),
    "kl_weight": ("train", "kl_weight"),
    "kl_schedule": ("train", "kl_schedule"),
    "warmup_epochs": ("train", "warmup_epochs"),
    "train_samples": ("train", "train_samples"),
    "pred_samples": ("train", "pred_samples"),
    "lr_schedule": ("train", "lr_schedule"),
    "compile": ("train", "compile"),
}


# config field -> the flag that sets it, to name both in an error
_FIELD_FLAGS = {f"{s}.{n}": "--" + flag.replace("_", "-") for flag, (s, n) in _FLAGS.items()}
_FIELD_FLAGS |= {"seed": "--seed", "device": "--device"}


class _UsageError(Exception):
    """A malformed command line (argparse's complaint)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # `main` prints one line and exits 2, no usage dump
        raise _UsageError(message)


def _train_parser(sub) -> None:
    p = sub.add_parser("train", help="train one model and report its metrics")
    p.add_argument("--dataset", choices=DATASETS, help="a built-in dataset (or --csv)")
    p.add_argument("--csv", metavar="FILE", help="your own data: a CSV file (instead of --dataset)")
    p.add_argument("--target", help="--csv: the target or class label column")
    p.add_argument("--inputs", nargs="+", help="--csv: the input column(s): one, or two")
    p.add_argument("--task", choices=tuple(TABULAR_DATASETS), help="--csv: default from columns")
    p.add_argument("--model", choices=MODELS, help="bbb (default) or a baseline")
    p.add_argument("--prior", choices=PRIORS, help="prior family of the Bayesian weights")
    p.add_argument("--prior-sigma", type=float, help="gaussian prior std")
    p.add_argument("--laplace-b", type=float, help="laplace prior scale b")
    p.add_argument("--mixture-pi", type=float, help="scale mixture: weight of the wide part")
    p.add_argument("--mixture-sigma1", type=float, help="scale mixture: wide std")
    p.add_argument("--mixture-sigma2", type=float, help="scale mixture: narrow std")
    p.add_argument("--kl-weight", type=float, help="1 = ELBO, 0 = no prior, >1 over-regularise")
    p.add_argument("--kl-schedule", choices=KL_SCHEDULES)
    p.add_argument("--warmup-epochs", type=int)
    p.add_argument("--train-samples", type=int, help="MC samples per training step")
    p.add_argument("--pred-samples", type=int, help="MC samples of the predictive")
    p.add_argument("--lr-schedule", choices=LR_SCHEDULES, help="cosine: lr decays to 0")
    p.add_argument("--compile", choices=COMPILE_MODES, help="torch.compile the step (GPU)")
    p.add_argument("--estimator", choices=ESTIMATORS)
    p.add_argument("--arch", choices=("mlp", "cnn"))
    p.add_argument("--hidden", type=int, nargs="+", help="hidden widths (cnn: channels)")
    p.add_argument("--activation", choices=("relu", "tanh"))
    p.add_argument("--rho0", type=float, help="initial rho; sigma0 = softplus(rho0)")
    p.add_argument("--noise-model", choices=NOISE_MODELS, help="regression noise")
    p.add_argument("--noise-std", type=float, help="fixed (or initial learned) noise std")
    p.add_argument("--dropout", type=float, help="MC dropout probability")
    p.add_argument("--ensemble-size", type=int)
    p.add_argument("--weight-decay", type=float, help="baselines' L2 penalty")
    p.add_argument("--epochs", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--batch-size", type=int, help="0 = full batch")
    p.add_argument("--n-train", type=int, help="training points (subset for images)")
    p.add_argument("--noise", type=float, help="toy data noise")
    p.add_argument("--gap", type=float, help="'gap' set: width of the gap")
    p.add_argument("--ood", choices=OOD_SETS, help="images: the OOD set for the AUROC")
    p.add_argument("--preprocessing", choices=PREPROCESSING, help="images: pixel scaling")
    p.add_argument("--data-dir", help="images: cache directory (default $BBB_DATA_DIR)")
    p.add_argument("--seed", type=int)
    p.add_argument("--device", choices=DEVICES)
    p.add_argument("--json", metavar="PATH", help="write the run as one JSON object")
    p.add_argument("--quiet", action="store_true", help="no per-epoch progress lines")


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """`default_config(args.dataset)` with every flag given applied; validated."""
    cfg = default_config(args.dataset)
    sections: dict[str, dict[str, Any]] = {}
    for flag, (section, name) in _FLAGS.items():
        value = getattr(args, flag, None)
        if value is None:
            continue
        if flag == "hidden":
            value = tuple(value)
        if flag == "batch_size" and value == 0:
            value = None
        sections.setdefault(section, {})[name] = value
    for section, values in sections.items():
        cfg = replace(cfg, **{section: replace(getattr(cfg, section), **values)})
    top = {k: getattr(args, k) for k in ("seed", "device") if getattr(args, k, None) is not None}
    return replace(cfg, **top).validate()


def finite(value: Any) -> Any:
    """`value` with every NaN or infinite float (in nested dicts, lists, tuples) made None, so
    `json.dumps(..., allow_nan=False)` writes strict JSON."""
    if isinstance(value, numbers.Real) and not isinstance(value, int):  # numpy floats too
        return float(value) if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def run_record(result) -> dict[str, Any]:
    """The JSON object of a finished run (non-finite numbers as None)."""
    return finite(
        {
            "config": result.config.to_dict(),
            "history": [
                {"epoch": p.epoch, "step": p.step, "nll": p.nll, "kl": p.kl, "elbo": p.elbo}
                | {"loss": p.loss}
                for p in result.history
            ],
            "metrics": result.metrics,
            "timing": result.timing(),
            "device": result.device,
        }
    )


_CSV_ONLY = ("target", "inputs", "task")  # flags that only go with --csv
_NOT_CSV = ("n_train", "noise", "gap", "ood", "preprocessing", "data_dir")  # generated data only


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def tabular_run(args: argparse.Namespace):
    """The config and the `TabularData` of `--csv FILE` (the same rules as the app's upload)."""
    from .data import tabular

    if args.dataset is not None:
        raise ValueError("give --dataset or --csv, not both")
    given = [_flag(f) for f in _NOT_CSV if getattr(args, f, None) is not None]
    if given:
        raise ValueError(f"{', '.join(given)}: not for --csv (the file is the data)")
    if args.target is None:
        raise ValueError("--csv needs --target: the target or class label column")
    path = Path(args.csv)
    if not path.is_file():
        raise ValueError(f"--csv {args.csv}: no such file")
    if path.stat().st_size > tabular.MAX_BYTES:
        limit = tabular.MAX_BYTES // 2**20
        raise ValueError(f"--csv {args.csv}: the file is larger than the limit of {limit} MB")
    try:
        table = tabular.read_csv(path.read_bytes())
        task = args.task or tabular.guess_task(table, args.target, args.inputs)
        seed = 0 if args.seed is None else args.seed
        data = tabular.make_tabular(table, task, args.target, args.inputs, seed=seed)
    except tabular.TabularError as err:
        raise ValueError(f"--csv {args.csv}: {err}") from None
    # the file's own row count, so the size checks of `validate` see the real training set
    csv_fields = {"dataset": TABULAR_DATASETS[task], "n_train": data.n_train}
    args = argparse.Namespace(**{**vars(args), **csv_fields})
    cfg = config_from_args(args)
    source = replace(cfg.data, source=data.source, n_train=data.n_train)
    if task == "regression" and args.noise_std is None:  # start at the target's scale
        cfg = replace(cfg, model=replace(cfg.model, noise_std=data.noise_start))
    return replace(cfg, data=source).validate(), data


def _train(args: argparse.Namespace) -> int:
    from .process import allow_recompiles, configure_for
    from .train import Trainer

    data = None
    if args.csv is not None:
        cfg, data = tabular_run(args)
    elif args.dataset is None:
        raise _UsageError("one of --dataset or --csv is required")
    else:
        given = [_flag(f) for f in _CSV_ONLY if getattr(args, f, None) is not None]
        if given:
            raise ValueError(f"{', '.join(given)}: only with --csv")
        cfg = config_from_args(args)
    _check_writable(args.json)
    trainer = Trainer(cfg, None if data is None else data.dataset)
    configure_for(trainer.model)  # this process trains one model: its threads, its allocator
    if cfg.train.compile != "off":
        allow_recompiles()
    every = max(1, cfg.train.epochs // 10)
    for progress in trainer:
        if not args.quiet and (progress.epoch % every == 0 or progress.epoch == 1):
            print(
                f"epoch {progress.epoch:5d}  nll {progress.nll:12.4f}  kl {progress.kl:12.4f}  "
                f"elbo {progress.elbo:12.4f}  {progress.seconds:7.2f}s",
                flush=True,
            )
    result = trainer.result()
    print(
        f"{cfg.model.kind} on {cfg.data.name} ({result.device}): {result.steps} steps in "
        f"{result.train_seconds:.2f}s"
    )
    for key, value in result.metrics.items():
        print(f"  {key:24s} {value:.4f}" if isinstance(value, float) else f"  {key:24s} {value}")
    if data is not None:
        dropped = sum(data.dropped.values())
        print(f"  rows: {data.n_train} train, {data.n_test} test, {dropped} dropped")
    if args.json:
        record = run_record(result)
        if data is not None:
            record["csv"] = csv_record(data)
        text = json.dumps(record, indent=1, allow_nan=False)
        Path(args.json).write_text(text + "\n")
        print(f"wrote {args.json}")
    return 0


def csv_record(data) -> dict[str, Any]:
    """What the JSON says about a `--csv` run's data: columns, rows, drops and class labels."""
    return {
        "task": data.task,
        "inputs": list(data.inputs),
        "target": data.target,
        "rows": data.n_rows,
        "train_rows": data.n_train,
        "test_rows": data.n_test,
        "dropped": dict(data.dropped),
        "labels": list(data.labels),
    }


def _check_writable(path: str | None) -> None:
    """Fail before training, not after, when `--json PATH` cannot be written."""
    if path is None:
        return
    if Path(path).is_dir():
        raise ValueError(f"--json {path}: is a directory, not a file name")
    if not Path(path).resolve().parent.is_dir():
        raise ValueError(f"--json {path}: no such directory {Path(path).resolve().parent}")


def _bench_parser(sub) -> None:
    p = sub.add_parser("bench", help="time training steps and prediction (see bbb_core.bench)")
    p.add_argument("--device", choices=DEVICES, default="cpu")
    p.add_argument("--json", metavar="PATH")
    p.add_argument("--quick", action="store_true", help="small sizes and few repeats (a smoke run)")
    p.add_argument("--compile", choices=COMPILE_MODES, default="off", help="torch.compile steps")
    p.add_argument(
        "--matmul-precision",
        choices=MATMUL_PRECISIONS,
        default="highest",
        help="float32 matrix products: highest = full fp32, high = TF32 on a GPU",
    )
    p.add_argument("--hidden", type=int, nargs="+", help="time only this MLP's hidden widths")
    p.add_argument("--batch", type=int, nargs="+", help="only these training batch sizes")
    p.add_argument("--parts", nargs="+", choices=BENCH_PARTS, default=BENCH_PARTS)


def _bench(args: argparse.Namespace) -> int:
    from .bench import main as bench_main

    return bench_main(
        device=args.device,
        json_path=args.json,
        quick=args.quick,
        compile=args.compile,
        matmul_precision=args.matmul_precision,
        hidden=None if args.hidden is None else tuple(args.hidden),
        batches=None if args.batch is None else tuple(args.batch),
        parts=tuple(args.parts),
    )


def _one_line(err: BaseException) -> str:
    """The error as one line: the config field's flag first, newlines folded into spaces."""
    text = " ".join(str(err).split())
    if not isinstance(err, (ValueError, RuntimeError, OSError)) or not text:
        text = f"{type(err).__name__}: {text}" if text else type(err).__name__
    field = re.match(r"[a-z_]+(\.[a-z_0-9]+)?\b", text)
    flag = _FIELD_FLAGS.get(field.group(0)) if field else None
    return f"error: {flag}: {text}" if flag else f"error: {text}"


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status (0, 2 on any error, 130 on Ctrl-C)."""
    parser = _Parser(prog="python -m bbb_core", description="BBB Explorer, headless")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _train_parser(sub)
    _bench_parser(sub)
    try:
        args = parser.parse_args(argv)
        return {"train": _train, "bench": _bench}[args.command](args)
    except _UsageError as err:
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    except MemoryError:
        print("error: out of memory: use a smaller network, batch or dataset", file=sys.stderr)
        return 2
    except Exception as err:  # a bad value, missing data, a diverged run, ...: never a traceback
        print(_one_line(err), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
