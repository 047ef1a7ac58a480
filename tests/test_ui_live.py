"""The live loop's step function and run bookkeeping (`ui.live`), without Streamlit running.

AppTest runs a `run_every` fragment only once, so the loop itself is tested here: ticks advance
the trainers to the end, a knob retrains only the models it affects, "continue" starts from the
current weights, divergence becomes a message, and the result does not depend on how training
was sliced into ticks.
"""

from dataclasses import replace

import pytest
import torch

from bbb_core import TrainingDiverged, default_config
from bbb_core.predict import ClassificationPredictive, RegressionPredictive
from ui import live

KINDS = ("bbb", "standard")


def _cfg(name: str = "blundell", epochs: int = 20, **train):
    cfg = default_config(name)
    return replace(cfg, train=replace(cfg.train, epochs=epochs, pred_samples=8, **train))


def _train(cfg, kinds=KINDS, page="regression"):
    return live.update_run(None, page, cfg, kinds)


def _run_to_end(run, seconds: float = 0.05, limit: int = 500) -> int:
    ticks = 0
    while not run.done and ticks < limit:
        live.tick(run, seconds)
        ticks += 1
    return ticks


def _weights(model) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_ticks_train_every_model_to_the_end_and_finish_computes_metrics():
    run = _train(_cfg(epochs=15))
    assert run.active and not run.done and run.progress() == 0.0
    _run_to_end(run)
    assert run.done and not run.active and run.finished_after is not None
    assert all(t.epoch == 15 for t in run.jobs.values())
    assert len(run.jobs["bbb"].history) == 15
    assert run.progress() == 1.0
    metrics = live.finish(run)
    assert set(metrics) == set(KINDS)
    assert {"rmse", "nll", "coverage_95"} <= set(metrics["bbb"])
    assert live.finish(run) is metrics  # computed once
    assert live.status_text(run)[0] == "Finished"


def test_a_tick_on_a_finished_or_stopped_run_does_nothing():
    run = _train(_cfg(epochs=3))
    _run_to_end(run)
    version = run.version
    assert live.tick(run) == 0 and run.version == version


def test_predictions_use_few_samples_while_training_and_all_once_finished(monkeypatch):
    monkeypatch.setattr(live, "LIVE_SAMPLES", 3)
    run = _train(_cfg(epochs=4))
    assert live.samples_for(run, "bbb") == 3 and live.samples_for(run, "standard") == 1
    preds = live.predictions(run)
    assert set(preds) == set(KINDS) and isinstance(preds["bbb"], RegressionPredictive)
    assert live.predictions(run) is preds  # cached until the models change
    _run_to_end(run)
    assert live.samples_for(run, "bbb") == 8
    assert live.predictions(run) is not preds


def test_classification_predictions_cover_the_grid():
    run = _train(_cfg("moons", epochs=2), page="classification")
    preds = live.predictions(run)
    assert isinstance(preds["bbb"], ClassificationPredictive)
    assert preds["bbb"].probs.shape == (run.dataset.x_grid.shape[0], 2)


def test_result_does_not_depend_on_how_training_is_sliced():
    cfg = _cfg(epochs=12)
    a, b = _train(cfg), _train(cfg)
    while not a.done:  # one epoch per tick, with live redraws drawing noise in between
        live.step_run(a, 1)
        live.predictions(a)
        torch.rand(10)  # someone else using the global RNG
    _run_to_end(b, seconds=10.0)
    for kind in KINDS:
        torch.testing.assert_close(_weights(a.jobs[kind].model), _weights(b.jobs[kind].model))


def test_same_settings_keep_the_run_and_the_kl_weight_retrains_only_bbb():
    cfg = _cfg()
    run = _train(cfg)
    assert live.update_run(run, "regression", cfg, KINDS) is run
    moved = live.update_run(
        run, "regression", replace(cfg, train=replace(cfg.train, kl_weight=0.1)), KINDS
    )
    assert moved is not run and moved.playing
    assert moved.jobs["standard"] is run.jobs["standard"]
    assert moved.jobs["bbb"] is not run.jobs["bbb"]
    assert moved.dataset is run.dataset


def test_prediction_samples_retrain_nothing_and_a_new_baseline_trains_alone():
    cfg = _cfg()
    run = _train(cfg)
    more = live.update_run(
        run, "regression", replace(cfg, train=replace(cfg.train, pred_samples=50)), KINDS
    )
    assert all(more.jobs[k] is run.jobs[k] for k in KINDS)
    with_dropout = live.update_run(more, "regression", more.cfg, (*KINDS, "dropout"))
    assert all(with_dropout.jobs[k] is run.jobs[k] for k in KINDS)
    assert with_dropout.jobs["dropout"].cfg.model.kind == "dropout"


def test_prior_parameters_of_another_family_do_not_retrain():
    cfg = _cfg()
    run = _train(cfg)
    other = replace(cfg, prior=replace(cfg.prior, b=0.1))  # laplace's b, prior is gaussian
    assert live.update_run(run, "regression", other, KINDS).jobs["bbb"] is run.jobs["bbb"]


def test_data_change_retrains_everything_on_the_new_data():
    cfg = _cfg()
    run = _train(cfg)
    new = live.update_run(run, "regression", replace(cfg, seed=1), KINDS)
    assert new.dataset is not run.dataset
    assert all(new.jobs[k] is not run.jobs[k] for k in KINDS)


def test_continue_starts_from_the_current_posterior():
    cfg = _cfg(epochs=10)
    run = _train(cfg)
    _run_to_end(run)
    moved = live.update_run(
        run, "regression", replace(cfg, train=replace(cfg.train, kl_weight=0.1)), KINDS, "continue"
    )
    bbb = moved.jobs["bbb"]
    assert bbb.epoch == 0 and bbb is not run.jobs["bbb"]
    torch.testing.assert_close(_weights(bbb.model), _weights(run.jobs["bbb"].model))


def test_continue_after_an_architecture_change_starts_from_scratch_with_a_notice():
    cfg = _cfg()
    run = _train(cfg)
    wider = replace(cfg, model=replace(cfg.model, hidden=(16,)))
    moved = live.update_run(run, "regression", wider, KINDS, "continue")
    assert moved.jobs["bbb"].cfg.model.hidden == (16,)
    assert len(moved.notices) == 2 and "from scratch" in moved.notices[0]


def test_divergence_stops_the_run_with_a_message(monkeypatch):
    run = _train(_cfg())

    def explode(self):
        raise TrainingDiverged("the loss became NaN at epoch 1: lower the learning rate")

    monkeypatch.setattr(type(run.jobs["bbb"].trainer), "_end_epoch", explode)  # where the check is
    live.tick(run)
    assert run.error.startswith("BBB diverged") and "learning rate" in run.error
    assert not run.active and live.status_text(run)[0] == "Stopped"


def test_step_pauses_and_reset_goes_back_to_epoch_zero():
    run = _train(_cfg(epochs=40))
    assert live.step_run(run) == 2 * 2  # epochs // 20 for each model
    assert not run.playing and run.jobs["bbb"].epoch == 2
    fresh = live.reset_run(run)
    assert not fresh.playing and all(t.epoch == 0 for t in fresh.jobs.values())
    assert fresh.dataset is run.dataset


def test_a_new_page_starts_a_new_run():
    run = _train(_cfg())
    other = live.update_run(run, "classification", _cfg("moons"), KINDS)
    assert other.page == "classification" and other.jobs["bbb"] is not run.jobs["bbb"]


@pytest.mark.parametrize("kind", ["standard", "dropout", "ensemble"])
def test_relevant_config_ignores_what_a_baseline_does_not_use(kind):
    cfg = _cfg()
    changed = replace(
        cfg,
        prior=replace(cfg.prior, sigma=0.1),
        model=replace(cfg.model, rho0=-2.0, estimator="flipout"),
        train=replace(cfg.train, kl_weight=5.0, pred_samples=3),
    )
    assert live.relevant_config(changed, kind) == live.relevant_config(cfg, kind)
    assert live.relevant_config(changed, "bbb") != live.relevant_config(cfg, "bbb")


def test_a_run_is_unchanged_by_an_images_training_and_global_reseeds_in_another_thread():
    """Sessions share one process: another session training the images page's models (and
    anything reseeding PyTorch's global generator) meanwhile must not change this run."""
    import threading

    from bbb_core import Trainer

    cfg = _cfg("moons", epochs=30)
    alone = _train(cfg, page="classification")
    _run_to_end(alone)
    expected = live.finish(alone)

    images = default_config("digits", device="cpu")
    images = replace(images, train=replace(images.train, epochs=3))
    stop = threading.Event()

    def other_session() -> None:
        while not stop.is_set():
            torch.manual_seed(123)
            trainer = Trainer(images)
            trainer.advance(0.2)

    neighbour = threading.Thread(target=other_session)
    neighbour.start()
    try:
        run = _train(cfg, page="classification")
        _run_to_end(run, seconds=0.02)
        assert live.finish(run) == expected
        for kind in KINDS:
            assert torch.equal(_weights(run.jobs[kind].model), _weights(alone.jobs[kind].model))
    finally:
        stop.set()
        neighbour.join()


def test_relevant_config_of_map_keeps_the_prior_and_ignores_bbbs_knobs():
    cfg = _cfg()
    bbb_only = replace(
        cfg,
        model=replace(cfg.model, rho0=-2.0, estimator="flipout"),
        train=replace(cfg.train, kl_weight=5.0, train_samples=4, pred_samples=3),
    )
    assert live.relevant_config(bbb_only, "map") == live.relevant_config(cfg, "map")
    narrower = replace(cfg, prior=replace(cfg.prior, sigma=0.1))
    assert live.relevant_config(narrower, "map") != live.relevant_config(cfg, "map")
    laplace = replace(cfg, prior=replace(cfg.prior, family="laplace"))
    assert live.relevant_config(laplace, "map") != live.relevant_config(cfg, "map")
    other_family = replace(cfg, prior=replace(cfg.prior, b=0.1))  # the prior is Gaussian
    assert live.relevant_config(other_family, "map") == live.relevant_config(cfg, "map")


def test_the_prior_retrains_map_and_bbb_and_the_kl_weight_only_bbb():
    kinds = ("bbb", "standard", "map")
    cfg = _cfg()
    run = _train(cfg, kinds, page="priors")
    narrow = live.update_run(
        run, "priors", replace(cfg, prior=replace(cfg.prior, sigma=0.1)), kinds
    )
    assert narrow.jobs["standard"] is run.jobs["standard"]
    assert narrow.jobs["map"] is not run.jobs["map"]
    assert narrow.jobs["bbb"] is not run.jobs["bbb"]
    assert narrow.jobs["map"].cfg.prior.sigma == 0.1
    weighted = live.update_run(
        narrow, "priors", replace(narrow.cfg, train=replace(cfg.train, kl_weight=0.1)), kinds
    )
    assert weighted.jobs["map"] is narrow.jobs["map"]
    assert weighted.jobs["bbb"] is not narrow.jobs["bbb"]
    _run_to_end(weighted)
    assert live.samples_for(weighted, "map") == 1
    assert live.predictions(weighted)["map"].epistemic_var.abs().max() == 0


def test_what_a_page_recorded_of_a_kept_model_stays_with_it():
    cfg = _cfg(epochs=3)
    run = _train(cfg)
    run.series["bbb"], run.series["standard"] = [(1, 0.5)], [(1, 0.6)]
    changed = live.update_run(
        run, "regression", replace(cfg, train=replace(cfg.train, kl_weight=0.5)), KINDS
    )
    assert changed.jobs["standard"] is run.jobs["standard"]
    assert changed.series == {"standard": [(1, 0.6)]}  # BBB retrains: its record starts anew
