"""GPU checks, for a session with a CUDA device (skipped elsewhere; CI has none): training,
prediction and the bench on cuda, the compiled step in both modes, and the CPU-only kernels kept
off the GPU. Run on a lent GPU with `python -m pytest tests/test_cuda.py`."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from bbb_core import bench, predictive
from bbb_core.config import ModelConfig, PriorConfig, default_config
from bbb_core.layers import BayesianLinear
from bbb_core.models import build_model
from bbb_core.train import Trainer, step_objective

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _cuda_config(name: str = "moons", **train_fields):
    cfg = default_config(name, device="cuda")
    return replace(cfg, train=replace(cfg.train, epochs=30, **train_fields))


@pytest.mark.parametrize("estimator", ["reparam", "local", "flipout"])
def test_a_run_trains_and_predicts_on_the_gpu(estimator):
    cfg = _cuda_config(batch_size=64)
    cfg = replace(cfg, model=replace(cfg.model, estimator=estimator))
    trainer = Trainer(cfg)
    assert trainer.device.type == "cuda" and trainer.x.is_cuda
    events = list(trainer)
    assert all(math.isfinite(p.loss) for p in events)
    assert events[-1].nll < events[0].nll
    assert all(p.is_cuda for p in trainer.model.parameters())
    pred = predictive(trainer.model, trainer.dataset.x_test.cuda(), 20)
    assert pred.probs.is_cuda
    assert torch.allclose(pred.probs.sum(-1), torch.ones(len(pred.probs), device="cuda"))
    metrics = trainer.result().metrics
    assert metrics["accuracy"] > 0.8


@pytest.mark.parametrize("mode", ["default", "reduce-overhead"])
@pytest.mark.parametrize("prior", ["gaussian", "mixture"])
def test_the_compiled_step_trains_on_the_gpu(mode, prior):
    torch.manual_seed(0)
    data = bench._dataset(bench.BenchSizes(), 256)
    model = build_model(
        ModelConfig(kind="bbb", hidden=(128, 128), estimator="local"),
        PriorConfig(family=prior),
        data,
    ).cuda()
    x, y = data.x_train.cuda(), data.y_train.cuda()
    objective = step_objective(model, n_data=256, kl_weight=1.0, train_samples=1, compile=mode)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    share = torch.tensor(1.0, device="cuda")
    nlls = []
    for _ in range(60):
        loss, nll, _, _ = objective(x, y, share)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        nlls.append(float(nll))
    assert all(math.isfinite(v) for v in nlls)
    # random labels: the data term falls as the network memorises them (on a CPU, eager: 590
    # nats to 8 with the Gaussian prior, to 151 with the mixture)
    assert min(nlls[-10:]) < 0.5 * nlls[0]


def test_the_fused_cpu_kernels_stay_off_the_gpu():
    layer = BayesianLinear(200, 100).cuda()
    x = torch.randn(8, 200, device="cuda")
    draw = layer.draw()
    assert not draw.fused
    (layer(x, draw).sum() + layer.kl(draw)).backward()
    assert layer.posterior.rho.grad.is_cuda


def test_the_bench_runs_on_the_gpu():
    result = bench.run_bench("cuda", quick=True, parts=("train_step", "predict"))
    assert {r["batch"] for r in result["train_step"]} == {128, 1024}
    assert result["memory"]["peak_gpu_mb"] > 0
    assert all(r["median_ms"] > 0 for r in result["train_step"] + result["predict"])
