"""`python -m bbb_core train --csv FILE --target COL [--inputs ...] [--task ...]`: your own data on
the command line, with the same checks as the app's upload and the same JSON; every bad file or
choice exits with status 2 and one line on stderr."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from bbb_core import RunConfig, cli
from bbb_core.data import tabular

pytestmark = pytest.mark.usefixtures("single_thread")

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
REGRESSION = str(EXAMPLES / "regression.csv")
CLASSIFICATION = str(EXAMPLES / "classification.csv")


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


def test_regression_from_a_csv_writes_the_same_json_and_the_data_summary(tmp_path, capsys):
    out = tmp_path / "run.json"
    argv = ["train", "--csv", REGRESSION, "--target", "sales", "--inputs", "temperature_c"]
    assert cli.main([*argv, "--epochs", "20", "--quiet", "--json", str(out)]) == 0
    record = json.loads(out.read_text())
    assert {"config", "history", "metrics", "timing", "device", "csv"} <= set(record)
    cfg = RunConfig.from_dict(record["config"]).validate()
    assert cfg.data.name == "csv_regression" and cfg.data.source.startswith("csv:")
    assert cfg.data.n_train == record["csv"]["train_rows"] == 238
    data = tabular.load_csv(Path(REGRESSION).read_bytes(), "regression", "sales", ["temperature_c"])
    assert cfg.model.noise_std == data.noise_start == 10  # a tenth of the sales' std, not 0.1
    assert record["csv"] | {"dropped": None} == {
        "task": "regression",
        "inputs": ["temperature_c"],
        "target": "sales",
        "rows": 300,
        "train_rows": 238,
        "test_rows": 59,
        "dropped": None,
        "labels": [],
    }
    assert sum(record["csv"]["dropped"].values()) == 3
    assert {"rmse", "nll", "coverage_95", "mean_std_out_of_range"} <= set(record["metrics"])
    assert len(record["history"]) == 20
    assert "rows: 238 train, 59 test, 3 dropped" in capsys.readouterr().out


def test_classification_task_and_inputs_come_from_the_file(tmp_path):
    out = tmp_path / "run.json"
    argv = ["train", "--csv", CLASSIFICATION, "--target", "bean", "--epochs", "5", "--quiet"]
    assert cli.main([*argv, "--hidden", "8", "--json", str(out)]) == 0
    record = json.loads(out.read_text())
    assert record["csv"]["task"] == "classification"
    assert record["csv"]["inputs"] == ["length_mm", "width_mm"]
    assert record["csv"]["labels"] == ["kidney", "lima", "navy"]
    assert record["config"]["model"]["hidden"] == [8]
    assert {"accuracy", "ood_auroc_entropy"} <= set(record["metrics"])


def _write(tmp_path, data: bytes, name="data.csv") -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


@pytest.mark.parametrize(
    "data, extra, pattern",
    [
        (b"", [], r"the file is empty"),
        (b"PK\x03\x04" + b"\x00" * 60, [], r"spreadsheet"),
        (b"x,y\n1,\x002\n", [], r"NUL bytes"),
        (b"x,y\n" + b"1,2\n" * 5, [], r"only 5 usable rows; at least 10"),
        (b"x,y\n" + b"1,2\n" * 20, [], r"column 'x' is constant"),
        (b"x,y\n=cmd|calc,1\n" + b"1,2\n" * 20, [], r"column 'x' must hold numbers.*'=cmd\|calc'"),
        (b"x,y\n1,2\n", ["--inputs", "z"], r"there is no column 'z'"),
    ],
)
def test_bad_files_exit_2_with_one_line(tmp_path, capsys, data, extra, pattern):
    path = _write(tmp_path, data)
    argv = ["train", "--csv", path, "--target", "y", "--task", "regression", *extra]
    assert cli.main([*argv, "--epochs", "1"]) == 2
    line = _one_error_line(capsys)
    assert f"--csv {path}:" in line or "--csv" in line
    assert re.search(pattern, line), line


def test_a_file_over_the_size_bound_is_refused_unread(tmp_path, capsys, monkeypatch):
    path = _write(tmp_path, b"x,y\n1,2\n")
    monkeypatch.setattr(tabular, "MAX_BYTES", 4)
    assert cli.main(["train", "--csv", path, "--target", "y"]) == 2
    assert "larger than the limit of 0 MB" in _one_error_line(capsys)


@pytest.mark.parametrize(
    "argv, pattern",
    [
        (["train", "--csv", "missing.csv", "--target", "y"], r"--csv missing.csv: no such file"),
        (["train", "--csv", REGRESSION], r"--csv needs --target"),
        (["train", "--csv", REGRESSION, "--target", "sales", "--dataset", "moons"], "not both"),
        (["train", "--csv", REGRESSION, "--target", "sales", "--n-train", "5"], "--n-train"),
        (["train", "--dataset", "moons", "--target", "y"], r"--target: only with --csv"),
        (["train"], r"one of --dataset or --csv is required"),
        (["train", "--csv", REGRESSION, "--target", "sales", "--task", "nope"], r"--task"),
        (
            ["train", "--csv", REGRESSION, "--target", "sales", "--task", "classification"],
            r"column 'sales' holds 190 distinct values; .* \(is it a regression target",
        ),
        (
            ["train", "--csv", REGRESSION, "--target", "sales", "--inputs", "temperature_c",
             "--epochs", "0"],
            r"--epochs: train.epochs",
        ),
    ],
)  # fmt: skip
def test_bad_command_lines_exit_2_with_one_line(capsys, argv, pattern):
    assert cli.main(argv) == 2
    assert re.search(pattern, _one_error_line(capsys))


def test_the_size_checks_see_the_files_own_rows(tmp_path):
    """A wide network on a small file is within the activation bound: the check counts the
    file's rows, not the largest file allowed."""
    path = tmp_path / "small.csv"
    path.write_text("x,y\n" + "".join(f"{i / 60},{2 * i / 60}\n" for i in range(60)))
    args = [
        "train",
        "--csv",
        str(path),
        "--target",
        "y",
        "--hidden",
        "1024",
        "1024",
        "--epochs",
        "1",
    ]
    assert cli.main(args) == 0
