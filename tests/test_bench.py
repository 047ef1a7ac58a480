"""The speed bench (`bbb_core.bench`, `python -m bbb_core bench`): it runs and reports its rows in
a fixed shape, and rejects options it cannot time. Speed itself is never asserted here:
timings depend on the machine."""

from __future__ import annotations

import json

import pytest
import torch

from bbb_core import bench
from bbb_core.cli import main

SAMPLES = {1, 10, 100}


@pytest.fixture(scope="module")
def quick_result(tmp_path_factory):
    """One `bench --quick --json` run through the command line, shared by the tests below."""
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    path = tmp_path_factory.mktemp("bench") / "bench.json"
    assert main(["bench", "--quick", "--json", str(path)]) == 0
    assert torch.get_num_threads() == threads  # the toy runs must not leave their thread count
    return json.loads(path.read_text())


def test_top_level_keys(quick_result):
    assert {"device", "train_step", "toy_step", "predict", "toy", "memory"} <= set(quick_result)
    assert quick_result["device"] == "cpu"
    assert quick_result["threads"] >= 1


def test_train_step_rows(quick_result):
    rows = quick_result["train_step"]
    assert {tuple(r) for r in rows} == {("hidden", "batch", "model", "median_ms", "ratio")}
    groups = {(tuple(r["hidden"]), r["batch"]) for r in rows}
    for hidden, batch in groups:
        models = [r["model"] for r in rows if (tuple(r["hidden"]), r["batch"]) == (hidden, batch)]
        assert sorted(models) == sorted(bench.MODEL_NAMES)
    for r in rows:
        assert r["median_ms"] > 0 and r["ratio"] > 0
        if r["model"] == "standard":
            assert r["ratio"] == pytest.approx(1.0)


def test_toy_step_rows_are_the_apps_networks(quick_result):
    rows = quick_result["toy_step"]
    assert {tuple(r) for r in rows} == {("setup", "hidden", "batch", "model", "median_ms", "ratio")}
    from bbb_core.config import default_config

    for setup in bench.TOY_SETUPS:
        mine = [r for r in rows if r["setup"] == setup]
        assert sorted(r["model"] for r in mine) == sorted(bench.MODEL_NAMES)
        assert {tuple(r["hidden"]) for r in mine} == {default_config(setup).model.hidden}
        standard = next(r for r in mine if r["model"] == "standard")
        assert standard["ratio"] == pytest.approx(1.0)
    assert all(r["median_ms"] > 0 and r["batch"] > 0 for r in rows)


def test_the_json_is_strict(tmp_path, monkeypatch):
    path = tmp_path / "bench.json"
    fake = {"device": "cpu", "timing": [float("nan"), float("inf"), 1.5]}
    monkeypatch.setattr(bench, "run_bench", lambda *a, **k: fake)
    monkeypatch.setattr(bench, "format_table", lambda result: "table")
    assert bench.main(json_path=str(path)) == 0
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text)["timing"] == [None, None, 1.5]


def test_predict_rows(quick_result):
    rows = quick_result["predict"]
    assert {tuple(r) for r in rows} == {("hidden", "samples", "model", "median_ms", "ratio")}
    standard = [r for r in rows if r["model"] == "standard"]
    assert [r["samples"] for r in standard] == [1] * len(standard)
    assert all(r["ratio"] == pytest.approx(1.0) for r in standard)
    for name in bench.MODEL_NAMES[1:]:
        assert {r["samples"] for r in rows if r["model"] == name} == SAMPLES
    assert all(r["median_ms"] > 0 for r in rows)


def test_toy_and_memory(quick_result):
    assert [r["setup"] for r in quick_result["toy"]] == ["blundell", "moons"]
    assert all(set(r) == {"setup", "seconds"} and r["seconds"] > 0 for r in quick_result["toy"])
    memory = quick_result["memory"]
    assert memory["peak_rss_mb"] > 0
    assert memory["peak_gpu_mb"] is None  # cpu run


def test_table_names_every_model(quick_result):
    table = bench.format_table(quick_result)
    for name in bench.MODEL_NAMES:
        assert name in table


def test_round_robin_interleaves_and_warms_up():
    calls: list[str] = []
    cases = {name: (lambda name=name: calls.append(name)) for name in "abc"}
    times = bench.time_round_robin(cases, rounds=3, warmup=2, device=torch.device("cpu"))
    assert {name: len(ms) for name, ms in times.items()} == {"a": 3, "b": 3, "c": 3}
    assert calls[:6] == list("abcabc")  # warm-up
    assert calls[6:] == list("abc") + list("bca") + list("cab")  # each round starts one later


def test_bench_model_names_build_the_right_estimators():
    data = bench._dataset(bench.QUICK, 4)
    assert bench.build_bench_model("standard", (8,), data).kind == "standard"
    for name in bench.MODEL_NAMES[1:]:
        model = bench.build_bench_model(name, (8,), data)
        estimators = {layer.estimator for layer in model.modules() if hasattr(layer, "estimator")}
        assert estimators == {name.removeprefix("bbb-")}


def test_options_pick_the_parts_sizes_and_precision(tmp_path):
    path = tmp_path / "part.json"
    argv = ["bench", "--quick", "--parts", "train_step", "--hidden", "6", "--batch", "8", "16"]
    argv += ["--matmul-precision", "high", "--json", str(path)]
    before = torch.get_float32_matmul_precision()
    assert main(argv) == 0
    assert torch.get_float32_matmul_precision() == before  # restored after the run
    result = json.loads(path.read_text())
    assert (result["compile"], result["matmul_precision"]) == ("off", "high")
    assert result["predict"] == [] and result["toy"] == []
    rows = result["train_step"]
    assert {(tuple(r["hidden"]), r["batch"]) for r in rows} == {((6,), 8), ((6,), 16)}
    assert sorted(r["model"] for r in rows) == sorted(bench.MODEL_NAMES * 2)


BAD_OPTIONS = [  # (flags after `bench --quick`, what the one stderr line must start with)
    (["--batch", "0"], "error: --batch must be an integer in [1, 100000]; got 0"),
    (["--batch", "-3"], "error: --batch must be an integer in [1, 100000]; got -3"),
    (["--batch", "8", "100001"], "error: --batch must be an integer in [1, 100000]; got 100001"),
    (["--hidden", "0"], "error: --hidden must be an integer in [1, 4096]; got 0"),
    (["--hidden", "-8", "8"], "error: --hidden must be an integer in [1, 4096]; got -8"),
    (["--hidden", "30000", "30000"], "error: --hidden must be an integer in [1, 4096]"),
    (["--hidden", *["8"] * 9], "error: --hidden must be a list of 1 to 8 layer widths"),
    (["--batch", "100000", "--hidden", "4096"], "error: --batch must be small enough for"),
    (["--parts", "nope"], "error: argument --parts: invalid choice"),
    (["--batch", "ten"], "error: argument --batch: invalid int value"),
]


@pytest.mark.parametrize(("flags", "start"), BAD_OPTIONS, ids=[" ".join(f) for f, _ in BAD_OPTIONS])
def test_options_it_cannot_time_exit_2_before_timing(capsys, flags, start):
    assert main(["bench", "--quick", *flags]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(start), captured.err
    assert captured.out == ""  # no table of meaningless timings


def test_the_full_size_mlp_is_checked_with_mnist_inputs():
    """784 inputs: 784-4096-4096-10 has 20.04 M weights, over the limit; 2 x 1200 is fine."""
    sizes = bench.BenchSizes()
    with pytest.raises(ValueError, match=r"^--hidden must be an MLP of at most 20000000 weights"):
        bench.check_options("cpu", "off", "highest", (4096, 4096), None, ("predict",), sizes)
    bench.check_options("cpu", "off", "highest", (1200, 1200), (128, 1024), ("toy",), sizes)


@pytest.mark.parametrize(
    ("option", "value", "flag"),
    [
        ("device", "tpu", "--device"),
        ("compile", "max-autotune", "--compile"),
        ("matmul_precision", "low", "--matmul-precision"),
        ("parts", (), "--parts"),
        ("parts", ("toy", "nope"), "--parts"),
        ("batches", (), "--batch"),
        ("batches", (True,), "--batch"),
        ("hidden", (), "--hidden"),
    ],
)
def test_run_bench_rejects_options_by_flag(option, value, flag):
    options = {"device": "cpu", "compile": "off", "matmul_precision": "highest"}
    options |= {"hidden": None, "batches": None, "parts": bench.BENCH_PARTS}
    options[option] = value
    with pytest.raises(ValueError, match=rf"^{flag} must be "):
        bench.check_options(**options, sizes=bench.QUICK)


def test_train_step_goes_through_the_trainers_objective(monkeypatch):
    """The bench times the Trainer's own objective (`train.step_objective`), compile mode
    passed through, so a compiled bench measures what a compiled run trains with."""
    seen = []
    real = bench.step_objective

    def spy(model, **kw):
        seen.append(kw)
        return real(model, **{**kw, "compile": "off"})

    monkeypatch.setattr(bench, "step_objective", spy)
    sizes = bench.BenchSizes(
        hidden=((4,),), n_in=5, step_warmup=0, step_rounds=1, compile="reduce-overhead"
    )
    rows = bench.bench_train_steps(sizes, torch.device("cpu"))
    assert len(rows) == len(bench.MODEL_NAMES) == len(seen)
    assert all(kw["compile"] == "reduce-overhead" and kw["train_samples"] == 1 for kw in seen)
    assert all(kw["n_data"] == bench.N_DATA for kw in seen)
