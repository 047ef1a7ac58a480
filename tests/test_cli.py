"""Tests for `bbb_core.cli`: `python -m bbb_core train ... --json PATH` writes the run (config that
reloads, per-epoch history, metrics, timing, device); flags reach the config; bad input exits with
status 2 and one line on stderr that names the field, never a traceback."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from bbb_core import cli
from bbb_core.config import RunConfig, default_config

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


@pytest.mark.parametrize(
    ("flags", "pattern"),
    [
        (["--dataset", "blundell", "--prior-sigma", "0"], r"prior\.sigma|--prior-sigma"),
        (["--dataset", "nope"], r"--dataset"),
    ],
)
def test_bad_input_from_a_real_process(tmp_path, flags, pattern):
    proc = run_module("train", *flags, cwd=tmp_path)
    assert proc.returncode == 2
    _assert_one_line_naming(proc.stderr, pattern)
    assert proc.stdout == ""
