"""The speed bench (`bbb_core.bench`, `python -m bbb_core bench`): it runs and reports in the shape
issue 5 specifies. Speed itself is never asserted here: timings depend on the machine."""

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
    assert {"device", "train_step", "predict", "toy", "memory"} <= set(quick_result)
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
