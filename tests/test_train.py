"""Tests for `bbb_core.train`: seeded runs repeat exactly, progress events, time-sliced training,
warm starts, the NaN guard, minibatches with every KL schedule wired to `losses`, and the device
resolution. Tiny networks on tiny data, a few epochs each."""

from __future__ import annotations

import importlib
import math
import shutil
import time
from dataclasses import replace
from itertools import pairwise

import pytest
import torch

from bbb_core.config import KL_SCHEDULES, RunConfig, default_config
from bbb_core.layers import bayesian_layers
from bbb_core.models import build_model
from bbb_core.train import (
    Progress,
    Result,
    Trainer,
    TrainingDiverged,
    cosine_lr,
    resolve_device,
    step_objective,
)

pytestmark = pytest.mark.usefixtures("single_thread")

# the module, not the `bbb_core.train` function that the package exports under the same name
train_module = importlib.import_module("bbb_core.train")


def tiny(name: str = "moons", *, seed: int = 0, **train_fields) -> RunConfig:
    """`default_config(name)` shrunk: 40 points, one hidden layer of 8, 5 epochs."""
    cfg = default_config(name, device="cpu", seed=seed)
    fields = {"epochs": 5, "pred_samples": 10, **train_fields}
    return replace(
        cfg,
        data=replace(cfg.data, n_train=40),
        model=replace(cfg.model, hidden=(8,), ensemble_size=2),
        train=replace(cfg.train, **fields),
    )


def with_model(cfg: RunConfig, **model_fields) -> RunConfig:
    return replace(cfg, model=replace(cfg.model, **model_fields))


def numbers(history: list[Progress]) -> list[tuple]:
    """Everything a Progress reports except the wall-clock time."""
    return [(p.step, p.epoch, p.nll, p.kl, p.elbo, p.loss) for p in history]


def params(model: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


# --- no process-wide state -----------------------------------------------------------------------

# large enough for the fused CPU kernels (>= 4,096 weights)
_WIDE = {"hidden": (80, 80)}


@pytest.mark.parametrize(
    ("name", "kind", "model_fields"),
    [
        ("moons", "bbb", {}),
        ("blundell", "bbb", _WIDE),
        ("moons", "dropout", {}),
        ("blundell", "ensemble", {}),
        ("moons", "bbb", {"estimator": "flipout", **_WIDE}),
    ],
)
def test_training_and_evaluating_leave_global_torch_state_alone(name, kind, model_fields):
    torch.manual_seed(1234)
    seed, rng_state, threads = torch.initial_seed(), torch.get_rng_state(), torch.get_num_threads()
    cfg = with_model(tiny(name, batch_size=16), kind=kind, **model_fields)
    Trainer(cfg).run()  # training, then `evaluate` with the Monte Carlo predictive
    assert torch.initial_seed() == seed
    assert torch.equal(torch.get_rng_state(), rng_state)
    assert torch.get_num_threads() == threads


@pytest.mark.parametrize(
    ("name", "kind", "model_fields"),
    [
        ("moons", "bbb", _WIDE),
        ("blundell", "bbb", {"estimator": "reparam"}),
        ("moons", "dropout", {}),
    ],
)
def test_trainers_in_two_threads_give_what_each_gives_alone(name, kind, model_fields):
    import threading

    cfg = with_model(tiny(name, batch_size=16, epochs=8), kind=kind, **model_fields)
    alone = Trainer(cfg).run()
    results: list = [None, None]
    start = threading.Barrier(2)

    def run(i: int) -> None:
        trainer = Trainer(cfg)
        start.wait()  # both threads train at the same time
        torch.manual_seed(99 + i)  # and whatever a thread does to the global stream is ignored
        results[i] = trainer.run()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for res in results:
        assert numbers(res.history) == numbers(alone.history)
        assert res.metrics == alone.metrics
        for a, b in zip(res.model.parameters(), alone.model.parameters(), strict=True):
            assert torch.equal(a, b)


def test_another_seed_gives_another_run():
    a = Trainer(tiny("moons", seed=0)).run()
    b = Trainer(tiny("moons", seed=1)).run()
    assert numbers(a.history) != numbers(b.history)


# --- reproducibility ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind", "batch_size"),
    [
        ("moons", "bbb", None),
        ("moons", "bbb", 16),
        ("blundell", "bbb", None),
        ("moons", "dropout", 16),
        ("blundell", "ensemble", None),
    ],
)
def test_seeded_runs_repeat_exactly(name, kind, batch_size):
    cfg = with_model(tiny(name, batch_size=batch_size), kind=kind)
    first = Trainer(cfg).run()
    second = Trainer(cfg).run()
    assert numbers(first.history) == numbers(second.history)
    for a, b in zip(first.model.parameters(), second.model.parameters(), strict=True):
        assert torch.equal(a, b)
    assert first.metrics == second.metrics


@pytest.mark.parametrize("kind", ["bbb", "standard"])
def test_different_seeds_differ(kind):
    a = Trainer(with_model(tiny(seed=0), kind=kind)).run()
    b = Trainer(with_model(tiny(seed=1), kind=kind)).run()
    assert numbers(a.history) != numbers(b.history)
    pairs = zip(a.model.parameters(), b.model.parameters(), strict=True)
    assert any(not torch.equal(p, q) for p, q in pairs)


# --- progress, stopping, time slices --------------------------------------------------------------


@pytest.mark.parametrize(("batch_size", "steps_per_epoch"), [(None, 1), (16, 3), (40, 1), (7, 6)])
def test_progress_events(batch_size, steps_per_epoch):
    trainer = Trainer(tiny(batch_size=batch_size))
    events = list(trainer)
    assert [p.epoch for p in events] == [1, 2, 3, 4, 5]
    assert [p.step for p in events] == [steps_per_epoch * e for e in range(1, 6)]
    for p in events:
        assert all(math.isfinite(v) for v in (p.nll, p.kl, p.elbo, p.loss, p.seconds))
        assert p.elbo == pytest.approx(-(p.nll + p.kl), rel=1e-12)
        assert p.kl > 0
    assert all(a.seconds <= b.seconds for a, b in pairwise(events))
    assert trainer.history == events and trainer.done


def test_standard_network_reports_zero_kl():
    events = list(Trainer(with_model(tiny(), kind="standard")))
    assert all(p.kl == 0.0 and p.elbo == -p.nll and p.loss == p.nll for p in events)


def test_callback_stops_the_run():
    seen: list[int] = []
    result = Trainer(tiny(epochs=50)).run(lambda p: seen.append(p.epoch) or p.epoch == 2)
    assert seen == [1, 2]
    assert isinstance(result, Result) and len(result.history) == 2 and result.steps == 2


def test_advance_stops_in_time():
    # 5000 epochs take far longer than 0.3 s (ms each), yet a clock-blind loop still ends
    trainer = Trainer(tiny(epochs=5000))
    assert trainer.advance(0.0) == []
    start = time.perf_counter()
    events = trainer.advance(0.3)
    elapsed = time.perf_counter() - start
    assert events and not trainer.done
    # it checks the clock between epochs: at most one epoch (milliseconds here) over the budget;
    # the extra second absorbs a loaded test machine
    assert elapsed < 0.3 + 1.0
    assert [p.epoch for p in events] == list(range(1, len(events) + 1))
    assert len(trainer.advance(10.0, max_epochs=3)) == 3
    assert trainer.epoch == len(events) + 3


def _same_state(a: Trainer, b: Trainer) -> bool:
    weights = zip(a.model.state_dict().values(), b.model.state_dict().values(), strict=True)
    return all(torch.equal(x, y) for x, y in weights) and (a.epoch, a.step) == (b.epoch, b.step)


def test_a_slice_may_end_inside_an_epoch_and_the_next_goes_on_from_there():
    """An epoch of many minibatches (a long epoch: seconds for a wide network on many points)
    is trained a step at a time by tiny slices, and ends as an epoch trained in one go."""
    cfg = tiny(epochs=3, batch_size=4, kl_schedule="blundell")  # 10 steps per epoch
    whole, sliced = Trainer(cfg), Trainer(cfg)
    assert sliced.advance(1e-12) == [] and sliced.step == 1 and sliced.mid_epoch
    assert sliced.epoch == 0 and whole.step == 0
    while sliced.step < 7:
        assert sliced.advance(1e-12) == []
    assert sliced.step_epoch().epoch == 1 and not sliced.mid_epoch  # the rest of the epoch
    whole.step_epoch()
    assert _same_state(sliced, whole)
    sliced_events = []
    while not sliced.done:
        sliced_events += sliced.advance(1e-12)
    whole_events = whole.advance(60.0)
    assert _same_state(sliced, whole)
    assert [(p.epoch, p.step, p.loss, p.kl) for p in sliced_events] == [
        (p.epoch, p.step, p.loss, p.kl) for p in whole_events
    ]


def test_a_clone_made_inside_an_epoch_takes_the_same_steps():
    source = Trainer(tiny(epochs=2, batch_size=4))
    source.advance(1e-12), source.advance(1e-12), source.advance(1e-12)
    twin = source.clone()
    assert twin.mid_epoch and (twin.epoch, twin.step) == (0, 3)
    source.advance(60.0)
    twin.advance(60.0)
    assert source.done and _same_state(twin, source)
    assert [p.loss for p in twin.history] == [p.loss for p in source.history]


def test_advance_on_a_finished_run_does_nothing():
    trainer = Trainer(tiny(epochs=2))
    assert len(trainer.advance(5.0)) == 2
    assert trainer.done and trainer.advance(5.0) == []


def test_history_limit_thins_old_entries():
    trainer = Trainer(tiny(epochs=30), history_limit=8)
    list(trainer)
    assert len(trainer.history) <= 8
    assert trainer.history[-1].epoch == 30
    epochs = [p.epoch for p in trainer.history]
    assert epochs == sorted(epochs)


def test_result_reports_metrics_timing_and_device():
    result = Trainer(tiny(batch_size=16)).run()
    assert result.device == "cpu" and result.steps == 15
    timing = result.timing()
    assert set(timing) == {"train_seconds", "steps", "steps_per_second"}
    assert timing["steps"] == 15
    assert timing["steps_per_second"] == pytest.approx(15 / timing["train_seconds"])
    assert {"accuracy", "nll", "ece", "ood_auroc_entropy", "ood_auroc_mi"} <= set(result.metrics)


# --- warm start -----------------------------------------------------------------------------------


def test_warm_start_begins_at_the_given_weights():
    source = Trainer(tiny(epochs=20)).run().model
    before = params(source)
    lr = 0.01
    # a knob moved (KL weight, prior width): training continues from the current posterior
    cfg = replace(tiny(lr=lr, kl_weight=0.5), prior=replace(tiny().prior, sigma=0.5))
    warm = Trainer(cfg, init_from=source)
    for p, q in zip(warm.model.parameters(), before, strict=True):
        assert torch.equal(p, q)
    warm.step_epoch()  # one full-batch Adam step moves every parameter by at most ~lr
    moved = max(
        (p - q).abs().max().item() for p, q in zip(warm.model.parameters(), before, strict=True)
    )
    assert 0 < moved <= 1.01 * lr
    cold = Trainer(cfg)
    gap = max(
        (p - q).abs().max().item() for p, q in zip(cold.model.parameters(), before, strict=True)
    )
    assert gap > 10 * lr
    unchanged = zip(source.parameters(), before, strict=True)
    assert all(torch.equal(p, q) for p, q in unchanged)  # the source is not aliased


@pytest.mark.parametrize(
    "change",
    [{"hidden": (16,)}, {"hidden": (8, 8)}, {"kind": "standard"}, {"noise_model": "hetero"}],
)
def test_warm_start_with_a_changed_architecture_raises(change):
    source = Trainer(tiny("blundell", epochs=1)).model
    with pytest.raises(ValueError, match="architecture"):
        Trainer(with_model(tiny("blundell"), **change), init_from=source)


# --- the NaN guard --------------------------------------------------------------------------------


def _assert_names_the_causes(err: pytest.ExceptionInfo) -> None:
    message = str(err.value)
    for cause in ("learning rate", "rho0", "prior"):
        assert cause in message, f"{cause!r} missing from: {message}"


def test_a_collapsed_noise_scale_is_named():
    trainer = Trainer(tiny("blundell"))
    with torch.no_grad():
        trainer.model.likelihood.log_std.fill_(-1e4)  # noise std exp(-1e4) = 0
    with pytest.raises(TrainingDiverged) as err:
        trainer.step_epoch()
    message = str(err.value)
    assert "data term" in message and "noise scale out of range" in message
    assert "noise std (now 0.1)" in message  # the setting that feeds it
    _assert_names_the_causes(err)


@pytest.mark.parametrize(
    ("nll", "kl", "kl_term", "names", "advice"),
    [
        (math.inf, 1.0, 1.0, "the data term (the NLL) became infinite", "learning rate"),
        (math.nan, 1.0, 1.0, "the data term (the NLL) became NaN", "rho0"),
        (1.0, math.inf, math.inf, "the KL term became infinite", "prior"),
        (1.0, 5.0, math.inf, "weighted KL term (KL weight 1 x KL 5) became infinite", "KL weight"),
    ],
)
def test_the_divergence_message_names_the_term_and_its_settings(nll, kl, kl_term, names, advice):
    trainer = Trainer(tiny("moons"))
    message = train_module.divergence_message(trainer, nll, kl, kl_term)
    assert names in message and advice in message
    assert "epoch 1" in message


def test_an_infinite_weighted_kl_stops_the_run(monkeypatch):
    trainer = Trainer(tiny("moons"))
    real = train_module.elbo_loss

    def exploding(*args, **kwargs):  # the data term and the KL stay finite
        terms = real(*args, **kwargs)
        return type(terms)(**{**vars(terms), "kl_term": terms.kl_term * math.inf})

    monkeypatch.setattr(train_module, "elbo_loss", exploding)
    trainer.objective = train_module.step_objective(
        trainer.model, n_data=40, kl_weight=1.0, train_samples=1
    )
    with pytest.raises(TrainingDiverged, match="weighted KL term"):
        trainer.step_epoch()


@pytest.mark.parametrize("name", ["blundell", "moons"])
@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_poisoned_parameter_raises_training_diverged(name, value):
    trainer = Trainer(tiny(name))
    with torch.no_grad():
        bayesian_layers(trainer.model)[0].weight_mu[0, 0] = value
    with pytest.raises(TrainingDiverged) as err:
        trainer.step_epoch()
    _assert_names_the_causes(err)
    assert trainer.epoch == 0 and trainer.history == []


# --- minibatches and KL schedules -----------------------------------------------------------------


@pytest.mark.parametrize("schedule", KL_SCHEDULES)
def test_minibatch_training_with_each_schedule(monkeypatch, schedule):
    calls: list[tuple] = []
    real_share, real_loss = train_module.kl_share, train_module.elbo_loss

    def spy_share(*args):
        calls.append(("share", *args))
        return real_share(*args)

    def spy_loss(nll, kl, **kw):
        calls.append(("loss", tuple(nll.shape), kw["n_data"], kw["kl_weight"], kw["kl_share"]))
        return real_loss(nll, kl, **kw)

    monkeypatch.setattr(train_module, "kl_share", spy_share)
    monkeypatch.setattr(train_module, "elbo_loss", spy_loss)
    cfg = tiny(batch_size=16, epochs=3, kl_schedule=schedule, warmup_epochs=2, train_samples=2)
    cfg = replace(cfg, train=replace(cfg.train, kl_weight=0.7))
    events = list(Trainer(cfg))
    assert [p.step for p in events] == [3, 6, 9]
    assert all(math.isfinite(p.loss) for p in events)
    shares = [c for c in calls if c[0] == "share"]
    losses = [c for c in calls if c[0] == "loss"]
    # minibatch i of M = 3 in epoch e (0-based) asks for its share with the config's schedule
    assert [c[1:] for c in shares] == [(schedule, i, 3, e, 2) for e in range(3) for i in range(3)]
    sizes = [16, 16, 8]
    for k, (_, shape, n_data, kl_weight, share) in enumerate(losses):
        i, e = k % 3, k // 3
        assert shape == (2, sizes[i])  # (train_samples, batch)
        assert n_data == 40 and kl_weight == 0.7  # scaled to the dataset, not the batch
        assert share == real_share(schedule, i, 3, e, 2)


@pytest.mark.parametrize("schedule", KL_SCHEDULES)
def test_zero_kl_weight_optimises_the_nll_alone(schedule):
    events = list(Trainer(tiny(batch_size=16, kl_weight=0.0, kl_schedule=schedule)))
    assert all(p.loss == pytest.approx(p.nll, rel=1e-6) and p.kl > 0 for p in events)


# --- devices --------------------------------------------------------------------------------------


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="cuda"):
            resolve_device("cuda")
    with pytest.raises(ValueError, match="device"):
        resolve_device("tpu")


def test_auto_keeps_small_models_on_the_cpu_when_a_gpu_is_there(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto").type == "cuda"
    assert resolve_device("auto", n_params=1_000_000).type == "cuda"
    assert resolve_device("auto", n_params=5_000).type == "cpu"
    assert resolve_device("cpu", n_params=1_000_000).type == "cpu"
    trainer = Trainer(replace(tiny(), device="auto"))  # 8 hidden units: trains on the CPU
    assert trainer.device.type == "cpu" and trainer.x.device.type == "cpu"


# --- learning-rate schedule ------------------------------------------------------------------


def test_cosine_lr_falls_from_the_base_rate_towards_zero():
    rates = [cosine_lr(0.1, epoch, 10) for epoch in range(10)]
    assert rates[0] == 0.1 and rates[5] == pytest.approx(0.05)
    assert all(a > b > 0 for a, b in pairwise(rates))
    assert rates[-1] == pytest.approx(0.1 * 0.5 * (1 + math.cos(math.pi * 0.9)))


@pytest.mark.parametrize("schedule", ["constant", "cosine"])
def test_each_epoch_trains_at_its_scheduled_rate(schedule):
    trainer = Trainer(tiny(epochs=4, lr=0.01, lr_schedule=schedule, batch_size=16))
    rates = []
    for _ in trainer:
        rates.append(trainer.optimizer.param_groups[0]["lr"])
    expected = [cosine_lr(0.01, e, 4) if schedule == "cosine" else 0.01 for e in range(4)]
    assert rates == pytest.approx(expected)


# --- torch.compile ---------------------------------------------------------------------------

needs_compiler = pytest.mark.skipif(
    shutil.which("g++") is None and shutil.which("c++") is None,
    reason="torch.compile on a CPU needs a C++ compiler",
)


@needs_compiler
@pytest.mark.parametrize(("estimator", "prior"), [("reparam", "gaussian"), ("local", "mixture")])
def test_compiled_objective_computes_what_the_eager_one_does(monkeypatch, estimator, prior):
    """With the compiler told to draw its random numbers as eager PyTorch does, the traced
    plain operations give the eager path's loss, NLL, KL and gradients."""
    monkeypatch.setattr(torch._inductor.config, "fallback_random", True)
    cfg = with_model(tiny(batch_size=16), estimator=estimator, rho0=-2.0)
    cfg = replace(cfg, prior=replace(cfg.prior, family=prior))
    trainer = Trainer(cfg)  # the dataset
    x, y = trainer.x[:16], trainer.y[:16]
    results = []
    for mode in ("off", "default"):
        torch.manual_seed(0)
        model = build_model(cfg.model, cfg.prior, trainer.dataset)
        objective = step_objective(model, n_data=40, kl_weight=0.5, train_samples=2, compile=mode)
        torch.manual_seed(1)
        terms = objective(x, y, torch.tensor(0.25))
        terms[0].backward()
        results.append((terms, [p.grad for p in model.parameters()]))
    (eager, eager_grads), (compiled, compiled_grads) = results
    for a, b in zip(eager, compiled, strict=True):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-5)
    for a, b in zip(eager_grads, compiled_grads, strict=True):
        assert torch.allclose(a, b, rtol=1e-3, atol=1e-5)


@needs_compiler
def test_a_compiled_run_trains_without_compiling_anew_every_step():
    """KL shares go in as tensors: a run compiles once per batch shape (16 and the last 8),
    not once per share value, and trains as an eager run does."""
    counters = torch._dynamo.utils.counters
    cfg = tiny(batch_size=16, epochs=3, kl_schedule="blundell", compile="default")
    before = counters["stats"]["unique_graphs"]
    events = list(Trainer(cfg))
    assert counters["stats"]["unique_graphs"] - before <= 2
    eager = list(Trainer(replace(cfg, train=replace(cfg.train, compile="off"))))
    assert [p.step for p in events] == [p.step for p in eager] == [3, 6, 9]
    assert all(math.isfinite(p.loss) for p in events)
    assert events[-1].nll == pytest.approx(eager[-1].nll, rel=0.5)  # other noise, same scale


# --- MAP ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", ["gaussian", "laplace", "mixture"])
def test_map_reports_minus_log_prior_and_the_log_joint(family):
    cfg = tiny("blundell")
    cfg = replace(with_model(cfg, kind="map"), prior=replace(cfg.prior, family=family))
    trainer = Trainer(replace(cfg, train=replace(cfg.train, batch_size=None)))  # full batch
    events = []
    while not trainer.done:  # the KL reported is that of the epoch's pass, before its update
        with torch.no_grad():
            before = float(trainer.model.neg_log_prior())
        events.append(trainer.step_epoch())
        assert events[-1].kl == pytest.approx(before, rel=1e-6)
    assert all(p.elbo == pytest.approx(-(p.nll + p.kl)) for p in events)  # log p(D, w)
    assert all(p.loss != p.nll for p in events)  # the prior's term is optimised


@pytest.mark.parametrize("kl_weight", [0.0, 1.0, 10.0])
def test_map_objective_charges_the_full_prior_whatever_the_kl_weight(kl_weight):
    cfg = with_model(tiny("blundell"), kind="map")
    trainer = Trainer(cfg)
    model, x, y = trainer.model, trainer.x, trainer.y
    objective = step_objective(model, n_data=40, kl_weight=kl_weight, train_samples=1)
    loss, nll, prior_term, penalty_term = objective(x[:10], y[:10], 0.25)
    with torch.no_grad():
        expected_nll = model.likelihood.nll(model(x[:10]), y[:10]).sum()
        penalty = model.neg_log_prior()
    assert nll.item() == pytest.approx(float(expected_nll), rel=1e-6)
    assert prior_term.item() == pytest.approx(0.25 * float(penalty), rel=1e-6)
    assert penalty_term.item() == pytest.approx(float(penalty), rel=1e-6)
    total = (float(expected_nll) + 0.25 * float(penalty)) / 40
    assert loss.item() == pytest.approx(total, rel=1e-6)


def test_map_puts_its_penalty_in_the_loss_not_in_adams_weight_decay():
    cfg = with_model(tiny("blundell"), kind="map", weight_decay=0.5)
    trainer = Trainer(cfg)
    assert all(group["weight_decay"] == 0.0 for group in trainer.optimizer.param_groups)
    standard = Trainer(with_model(tiny("blundell"), kind="standard", weight_decay=0.5))
    assert all(group["weight_decay"] == 0.5 for group in standard.optimizer.param_groups)
