"""Tests for `bbb_core.cli`: `python -m bbb_core train ... --json PATH` writes the run (config that
reloads, per-epoch history, metrics, timing, device) as strict JSON; flags reach the config; bad
input (out-of-range flags, missing or corrupt data, a diverging run, any failure in training)
exits with status 2 and one line on stderr that names the flag and field, never a traceback."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from bbb_core import TrainingDiverged, cli
from bbb_core.config import RunConfig, default_config
from bbb_core.data import images
from bbb_core.train import Trainer

pytestmark = pytest.mark.usefixtures("single_thread")

ROOT = Path(__file__).resolve().parents[1]
REGRESSION_KEYS = {"rmse", "nll", "coverage_95", "mean_std_in_range", "mean_std_out_of_range"}
CLASSIFICATION_KEYS = {"accuracy", "nll", "ece", "ood_auroc_entropy", "ood_auroc_mi"}


def run_module(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """`python -m bbb_core ARGS` in a fresh interpreter that imports this checkout."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "bbb_core", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow  # a fresh interpreter (imports torch and scikit-learn) and 50 epochs: ~3-5 s
def test_train_writes_the_run_as_json(tmp_path):
    out = tmp_path / "out.json"
    proc = run_module(
        "train", "--dataset", "blundell", "--epochs", "50", "--json", str(out), cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    record = json.loads(out.read_text())
    assert {"config", "history", "metrics", "timing", "device"} <= set(record)

    cfg = RunConfig.from_dict(record["config"])
    default = default_config("blundell")
    assert cfg == replace(default, train=replace(default.train, epochs=50))

    history = record["history"]
    assert [h["epoch"] for h in history] == list(range(1, 51))
    for h in history:
        assert {"nll", "kl", "elbo"} <= set(h)
        assert h["elbo"] == pytest.approx(-(h["nll"] + h["kl"]), rel=1e-9)

    assert REGRESSION_KEYS <= set(record["metrics"])
    assert record["metrics"]["mean_std_in_range"] > 0
    timing = record["timing"]
    assert timing["steps"] == 50 and timing["train_seconds"] > 0
    assert timing["steps_per_second"] == pytest.approx(50 / timing["train_seconds"])
    assert record["device"] == ("cuda" if torch.cuda.is_available() else "cpu")  # --device auto
    assert "rmse" in proc.stdout  # the short summary


def test_classification_run_and_flags_reach_the_config(tmp_path, capsys):
    out = tmp_path / "moons.json"
    argv = [
        "train", "--dataset", "moons", "--epochs", "3", "--hidden", "8", "4",
        "--prior", "mixture", "--mixture-pi", "0.5", "--mixture-sigma1", "2",
        "--mixture-sigma2", "0.01", "--kl-weight", "0.5", "--kl-schedule", "blundell",
        "--train-samples", "2", "--pred-samples", "7", "--estimator", "flipout",
        "--batch-size", "64", "--lr", "0.005", "--rho0", "-3", "--seed", "3",
        "--device", "cpu", "--n-train", "128", "--lr-schedule", "cosine", "--json", str(out),
        "--quiet",
    ]  # fmt: skip
    assert cli.main(argv) == 0
    captured = capsys.readouterr()
    assert not any(line.startswith("epoch") for line in captured.out.splitlines())  # --quiet
    record = json.loads(out.read_text())
    cfg = RunConfig.from_dict(record["config"])
    assert cfg.model.hidden == (8, 4) and cfg.model.estimator == "flipout"
    assert (cfg.model.rho0, cfg.model.kind) == (-3.0, "bbb")
    assert (cfg.prior.family, cfg.prior.pi, cfg.prior.sigma1, cfg.prior.sigma2) == (
        "mixture",
        0.5,
        2.0,
        0.01,
    )
    t = cfg.train
    assert (t.epochs, t.kl_weight, t.kl_schedule, t.train_samples, t.pred_samples) == (
        3,
        0.5,
        "blundell",
        2,
        7,
    )
    assert (t.batch_size, t.lr, cfg.seed, cfg.device, cfg.data.n_train) == (
        64,
        0.005,
        3,
        "cpu",
        128,
    )
    assert (t.lr_schedule, t.compile) == ("cosine", "off")
    assert CLASSIFICATION_KEYS <= set(record["metrics"])
    assert len(record["history"]) == 3 and record["timing"]["steps"] == 3 * 2  # 128 / 64


def test_batch_size_zero_means_full_batch(tmp_path):
    out = tmp_path / "full.json"
    argv = [
        "train",
        "--dataset",
        "xor",
        "--epochs",
        "2",
        "--hidden",
        "4",
        "--batch-size",
        "0",
        "--pred-samples",
        "2",
        "--quiet",
        "--json",
        str(out),
    ]
    assert cli.main(argv) == 0
    record = json.loads(out.read_text())
    assert record["config"]["train"]["batch_size"] is None and record["timing"]["steps"] == 2


BAD = [  # (flags after `train --dataset blundell`, what the one stderr line must name)
    (["--prior-sigma", "0"], r"prior\.sigma|--prior-sigma"),
    (["--mixture-pi", "1.5"], r"prior\.pi|--mixture-pi"),
    (["--pred-samples", "0"], r"train\.pred_samples|--pred-samples"),
    (["--train-samples", "0"], r"train\.train_samples|--train-samples"),
    (["--kl-weight", "-1"], r"train\.kl_weight|--kl-weight"),
    (["--hidden", "0"], r"model\.hidden|--hidden"),
    (["--hidden", "16", "-3"], r"model\.hidden|--hidden"),
    (["--estimator", "nope"], r"--estimator"),
    (["--prior", "cauchy"], r"--prior"),
    (["--epochs", "0"], r"train\.epochs|--epochs"),
    (["--epochs", "ten"], r"--epochs"),
    (["--lr", "-0.1"], r"train\.lr|--lr"),
    (["--rho0", "50"], r"model\.rho0|--rho0"),
    (["--laplace-b", "0"], r"prior\.b|--laplace-b"),
    (["--dropout", "1"], r"model\.dropout|--dropout"),
    (["--seed", "-1"], r"seed"),
    (["--compile", "fast"], r"--compile"),
    (["--lr-schedule", "step"], r"--lr-schedule"),
]


def _assert_one_line_naming(stderr: str, pattern: str) -> None:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    assert re.search(pattern, lines[0]), lines[0]


@pytest.mark.parametrize(("flags", "pattern"), BAD, ids=[" ".join(f) for f, _ in BAD])
def test_bad_input_exits_2_with_one_line(capsys, flags, pattern):
    assert cli.main(["train", "--dataset", "blundell", *flags]) == 2
    captured = capsys.readouterr()
    _assert_one_line_naming(captured.err, pattern)
    assert captured.out == ""  # nothing trained


@pytest.mark.parametrize(
    ("argv", "pattern"),
    [
        (["train", "--dataset", "nope"], r"--dataset"),
        (["train"], r"--dataset"),
        ([], r"command"),
        (["fly"], r"fly|command"),
    ],
)
def test_bad_command_lines_exit_2_with_one_line(capsys, argv, pattern):
    assert cli.main(argv) == 2
    _assert_one_line_naming(capsys.readouterr().err, pattern)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
def test_cuda_without_a_gpu_exits_2(capsys):
    assert cli.main(["train", "--dataset", "blundell", "--device", "cuda"]) == 2
    _assert_one_line_naming(capsys.readouterr().err, r"cuda")


# (flags after `train`, the flag and the field the one stderr line must name, the bound it states)
ATTACKS = [
    (["--dataset", "blundell", "--noise", "1e300"], "--noise: data.noise", "[0, 100]"),
    (["--dataset", "blundell", "--n-train", "400000000"], "--n-train: data.n_train", "[2, 100000]"),
    (
        ["--dataset", "blundell", "--model", "ensemble", "--ensemble-size", "100000000"],
        "--ensemble-size: model.ensemble_size",
        "[1, 20]",
    ),
    (
        ["--dataset", "blundell", "--seed", "18446744073709551616"],
        "--seed: seed",
        "[0, 4294967295]",
    ),
    (["--dataset", "mnist", "--hidden", "30000", "30000"], "--hidden: model.hidden", "[1, 4096]"),
    (["--dataset", "digits", "--hidden", "30000", "30000"], "--hidden: model.hidden", "[1, 4096]"),
    (["--dataset", "mnist", "--hidden", "4096", "4096"], "--hidden: model.hidden", "20000000"),
    (["--dataset", "moons", "--hidden", *["64"] * 9], "--hidden: model.hidden", "1 to 8"),
    (["--dataset", "blundell", "--lr", "nan"], "--lr: train.lr", "(0, 10]"),
    (["--dataset", "blundell", "--kl-weight", "inf"], "--kl-weight: train.kl_weight", "[0, 1000]"),
    (["--dataset", "blundell", "--epochs", "10" * 30], "--epochs: train.epochs", "[1, 100000]"),
    (["--dataset", "blundell", "--batch-size", "-5"], "--batch-size: train.batch_size", "[1, "),
    (["--dataset", "blundell", "--pred-samples", "100000"], "--pred-samples", "[1, 1000]"),
    (["--dataset", "blundell", "--train-samples", "65"], "--train-samples", "[1, 64]"),
    (["--dataset", "blundell", "--noise-std", "1e-30"], "--noise-std", "[1e-06, 1000]"),
    (
        ["--dataset", "mnist", "--batch-size", "0", "--train-samples", "64"],
        "--batch-size: train.batch_size",
        "200000000 activations",
    ),
    (
        ["--dataset", "blundell", "--hidden", "4096", "4096", "--estimator", "reparam"]
        + ["--train-samples", "64"],
        "--train-samples: train.train_samples",
        "250000000 sampled weights",
    ),
]


@pytest.mark.parametrize(
    ("flags", "names", "bound"), ATTACKS, ids=[" ".join(a[0]) for a in ATTACKS]
)
def test_out_of_range_flags_exit_2_naming_flag_field_and_bound(capsys, flags, names, bound):
    assert cli.main(["train", *flags]) == 2
    captured = capsys.readouterr()
    _assert_one_line_naming(captured.err, re.escape(f"error: {names}"))
    assert bound in captured.err
    assert captured.out == ""  # rejected before any data was made or network built


def _raise(exc: BaseException):
    def step_epoch(self):
        raise exc

    return step_epoch


@pytest.mark.parametrize(
    ("exc", "pattern"),
    [
        (TrainingDiverged("the loss became NaN at epoch 1"), r"^error: the loss became NaN"),
        (OverflowError("int too large to convert to float"), r"^error: OverflowError: int too"),
        (MemoryError(), r"^error: out of memory"),
        (KeyError("x_train"), r"^error: KeyError: 'x_train'"),
        (RuntimeError("two\nlines"), r"^error: two lines$"),
        (ZeroDivisionError(), r"^error: ZeroDivisionError$"),
    ],
)
def test_any_failure_in_training_exits_2_with_one_line(capsys, monkeypatch, exc, pattern):
    monkeypatch.setattr(Trainer, "step_epoch", _raise(exc))
    assert cli.main(["train", "--dataset", "xor", "--hidden", "4", "--epochs", "2"]) == 2
    _assert_one_line_naming(capsys.readouterr().err, pattern)


def test_ctrl_c_exits_130(capsys, monkeypatch):
    monkeypatch.setattr(Trainer, "step_epoch", _raise(KeyboardInterrupt()))
    assert cli.main(["train", "--dataset", "xor", "--hidden", "4", "--epochs", "2"]) == 130
    assert capsys.readouterr().err.strip() == "interrupted"


def test_a_diverging_run_exits_2_and_writes_no_json(tmp_path, capsys):
    """A real divergence: lr 10 drives the learned noise std to 0, the NLL to infinity."""
    out = tmp_path / "run.json"
    argv = ["train", "--dataset", "blundell", "--hidden", "8", "--lr", "10", "--rho0", "10"]
    argv += ["--prior-sigma", "1e-6", "--epochs", "30", "--quiet", "--json", str(out)]
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    _assert_one_line_naming(captured.err, r"^error: .*(NaN|infinite).* epoch \d+")
    assert not out.exists()


def test_finite_turns_nan_and_infinity_into_none():
    value = {
        "a": math.nan,
        "b": [1.5, math.inf, (-math.inf, 2)],
        "c": {"d": np.float64("nan"), "e": 3, "f": "NaN", "g": None, "h": True},
        "i": [np.float32("inf"), np.float32(0.5)],
    }
    assert cli.finite(value) == {
        "a": None,
        "b": [1.5, None, [None, 2]],
        "c": {"d": None, "e": 3, "f": "NaN", "g": None, "h": True},
        "i": [None, 0.5],
    }
    json.dumps(cli.finite(value), allow_nan=False)  # strict JSON now
    with pytest.raises(ValueError):
        json.dumps(value, allow_nan=False)


def _strict(constant: str):
    raise AssertionError(f"non-standard JSON constant {constant}")


def test_json_output_is_strict_even_with_non_finite_metrics(tmp_path, capsys, monkeypatch):
    metrics = {"accuracy": math.nan, "nll": math.inf, "ece": 0.25}
    train_module = sys.modules[Trainer.__module__]  # `bbb_core.train` is also a function's name
    monkeypatch.setattr(train_module, "evaluate", lambda *args, **kwargs: dict(metrics))
    out = tmp_path / "run.json"
    argv = ["train", "--dataset", "xor", "--hidden", "4", "--epochs", "2", "--pred-samples", "2"]
    assert cli.main([*argv, "--quiet", "--json", str(out)]) == 0
    text = out.read_text()
    assert "NaN" not in text and "Infinity" not in text
    record = json.loads(text, parse_constant=_strict)
    assert record["metrics"] == {"accuracy": None, "nll": None, "ece": 0.25}
    assert "accuracy" in capsys.readouterr().out  # the summary still prints every metric


def test_json_path_in_a_missing_directory_fails_before_training(tmp_path, capsys):
    bad = tmp_path / "no" / "such" / "dir" / "run.json"
    argv = ["train", "--dataset", "xor", "--epochs", "2", "--json", str(bad)]
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    _assert_one_line_naming(captured.err, r"^error: --json .*no such directory")
    assert captured.out == ""


def test_missing_image_data_is_one_line(tmp_path, capsys, monkeypatch):
    """The data instructions span lines; the command line folds them into one."""

    def offline(url, dest):
        raise OSError("network is unreachable")

    monkeypatch.setattr(images, "fetch_url", offline)
    argv = ["train", "--dataset", "mnist", "--data-dir", str(tmp_path), "--epochs", "1"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    _assert_one_line_naming(err, r"^error: mnist is not available: .*network is unreachable")
    assert str(tmp_path / "mnist" / "train-images-idx3-ubyte.gz") in err


def test_a_corrupt_image_cache_is_one_line_naming_the_file(tmp_path, capsys):
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.integers(0, 256, (20, 28, 28), dtype=np.uint8),
        "y_train": np.arange(20, dtype=np.uint8) % 10,
        "x_test": np.zeros((0, 28, 28), dtype=np.uint8),  # no test images
        "y_test": np.zeros(0, dtype=np.uint8),
    }
    np.savez(tmp_path / "mnist.npz", **arrays)
    argv = ["train", "--dataset", "mnist", "--data-dir", str(tmp_path), "--epochs", "1"]
    assert cli.main(argv) == 2
    pattern = rf"^error: corrupt data {re.escape(str(tmp_path / 'mnist.npz'))}: x_test holds 0"
    _assert_one_line_naming(capsys.readouterr().err, pattern)


@pytest.mark.parametrize(
    ("flags", "pattern"),
    [
        (["--dataset", "blundell", "--prior-sigma", "0"], r"prior\.sigma|--prior-sigma"),
        (["--dataset", "nope"], r"--dataset"),
        (["--dataset", "blundell", "--seed", "18446744073709551616"], r"--seed: seed .*4294967295"),
    ],
)
def test_bad_input_from_a_real_process(tmp_path, flags, pattern):
    proc = run_module("train", *flags, cwd=tmp_path)
    assert proc.returncode == 2
    _assert_one_line_naming(proc.stderr, pattern)
    assert proc.stdout == ""
