"""Widget values <-> RunConfig <-> URL (`ui.params`), the presets (`ui.presets`) and the
downloads (`ui.exports`), without Streamlit running."""

import json
import math
from dataclasses import replace

import pytest

from bbb_core import RunConfig, default_config, predictive
from bbb_core.config import CLASSIFICATION_DATASETS, REGRESSION_DATASETS
from ui import exports, live, params
from ui.presets import PRESETS, presets_for

ISSUE_PRESETS = {
    "no KL: overconfident",
    "KL weight too high: underfit",
    "prior too narrow",
    "few MC samples: noisy band",
    "in-between gap: what mean-field VI misses",
    "heteroscedastic noise: aleatoric vs epistemic",
}


@pytest.mark.parametrize("name", REGRESSION_DATASETS + CLASSIFICATION_DATASETS)
def test_config_round_trips_through_widget_values(name):
    cfg = default_config(name)
    assert params.config_from_values(params.values_from_config(cfg)) == replace(
        cfg,
        data=replace(
            cfg.data,
            n_train=cfg.data.n_train or params.TOY_DEFAULTS[name][0],
            noise=cfg.data.noise or params.TOY_DEFAULTS[name][1],
        ),
    )


@pytest.mark.parametrize("name", REGRESSION_DATASETS + CLASSIFICATION_DATASETS)
def test_default_values_are_allowed_by_their_widgets(name):
    for key, value in params.values_from_config(default_config(name)).items():
        param = params.PARAMS[key]
        if param.options:
            assert value in param.options, (key, value)


def test_values_round_trip_through_the_url():
    values = params.values_from_config(default_config("gap"))
    values.update(kl=0.01, hidden="64, 16", show_ensemble=True, seed=7, sigma2=math.exp(-6))
    query = params.url_params(values)
    assert query["kl"] == "0.01" and query["hidden"] == "64,16" and query["show_ensemble"] == "1"
    back, notices = params.read_url(query, "regression", REGRESSION_DATASETS)
    assert notices == [] and back == values


def test_every_setting_is_in_the_url_seed_included():
    query = params.url_params(
        params.values_from_config(default_config("blundell")) | params.UI_DEFAULTS
    )
    assert {"seed", "kl", "sigma", "epochs", "pred_samples", "device", "mode"} <= set(query)
    assert set(query) <= set(params.PARAMS)


def test_invalid_url_values_fall_back_to_defaults_with_notices():
    query = {
        "kl": "banana",
        "seed": "-3",
        "hidden": "0,2",
        "sigma": "0.123",
        "bogus": "1",
        "epochs": "50",
    }
    values, notices = params.read_url(query, "regression", REGRESSION_DATASETS)
    defaults = params.values_from_config(default_config("blundell"))
    assert values["kl"] == defaults["kl"] and values["seed"] == 0 and values["epochs"] == 50
    assert values["hidden"] == "32, 32" and values["sigma"] == 1.0
    assert len(notices) == 5
    assert any(n.startswith("kl='banana'") for n in notices)
    assert any("bogus" in n for n in notices)


def test_a_dataset_of_another_page_falls_back_with_a_notice():
    values, notices = params.read_url({"data": "moons"}, "regression", REGRESSION_DATASETS)
    assert values["data"] == "blundell" and "moons" in notices[0]


def test_cuda_in_the_url_without_a_gpu_falls_back(monkeypatch):
    monkeypatch.setitem(params.PARAMS, "device", params.Param("device", "str", ("auto", "cpu")))
    values, notices = params.read_url({"device": "cuda"}, "regression", REGRESSION_DATASETS)
    assert values["device"] == "auto" and notices


def test_a_preset_in_the_url_loads_its_settings_under_the_other_parameters():
    values, notices = params.read_url(
        {"preset": "gap", "seed": "3"}, "regression", REGRESSION_DATASETS
    )
    assert notices == []
    assert values["data"] == "gap" and values["gap"] == 2.0 and values["show_ensemble"]
    assert values["seed"] == 3 and values["preset"] == "gap"


@pytest.mark.parametrize(
    "text, widths", [("32, 32", (32, 32)), ("64x64", (64, 64)), ("8 16 4", (8, 16, 4))]
)
def test_parse_hidden(text, widths):
    assert params.parse_hidden(text) == widths


@pytest.mark.parametrize("text", ["", "a,b", "0", "32,32,32,32,32", "5000", "16, x", "1.5"])
def test_parse_hidden_rejects_with_the_rule(text):
    with pytest.raises(ValueError, match="layer widths"):
        params.parse_hidden(text)


def test_config_errors_name_the_widget():
    values = params.values_from_config(default_config("blundell")) | {"hidden": "abc"}
    with pytest.raises(ValueError) as err:
        params.config_from_values(values)
    assert "layer widths" in str(err.value)
    msg = params.friendly_error(ValueError("train.epochs must be an integer >= 1; got 0"))
    assert msg.startswith("Epochs:") and msg.endswith("Change it in the sidebar.")


def test_the_issue_presets_exist_and_tell_a_story():
    names = {p.name for p in presets_for("regression").values()}
    assert ISSUE_PRESETS <= names
    for task in PRESETS:
        for preset in presets_for(task).values():
            preset.config.validate()
            assert preset.task == task and preset.story.endswith(".")
            assert len(preset.story) < 260


@pytest.mark.parametrize(
    "task, slug", [(task, slug) for task in PRESETS for slug in presets_for(task)]
)
def test_preset_values_are_allowed_by_their_widgets_and_rebuild_the_preset(task, slug):
    preset = presets_for(task)[slug]
    values = params.preset_values(preset, {"device": "cpu", "mode": "continue"})
    for key, value in values.items():
        param = params.PARAMS[key]
        if param.options and key != "preset":
            assert value in param.options, (slug, key, value)
    assert values["device"] == "cpu" and values["mode"] == "continue"
    rebuilt = params.config_from_values(values)
    assert live.relevant_config(rebuilt, "bbb") == live.relevant_config(
        replace(preset.config, device="cpu", data=rebuilt.data), "bbb"
    )


@pytest.mark.parametrize(
    "task, page_default", [("regression", "blundell"), ("classification", "moons")]
)
def test_every_preset_changes_the_page_default_view(task, page_default):
    for preset in presets_for(task).values():
        assert preset.config != default_config(page_default) or preset.baselines, preset.slug


def test_exports_regression_frame_and_config():
    cfg = replace(default_config("blundell"), train=replace(default_config().train, epochs=1))
    run = live.update_run(None, "regression", cfg, ("bbb", "standard"))
    preds = live.predictions(run)
    frame = exports.regression_frame(run.dataset, preds)
    grid, train = frame[frame.set == "grid"], frame[frame.set == "train"]
    assert len(grid) == run.dataset.x_grid.shape[0] and len(train) == run.dataset.n_train
    assert {
        "x",
        "true_f",
        "in_range",
        "bbb_mean",
        "bbb_epistemic_std",
        "bbb_lower_95",
        "standard_upper_95",
        "y",
    } <= set(frame.columns)
    assert RunConfig.from_json(exports.config_json(cfg)) == cfg
    csv = exports.metrics_csv({"bbb": {"rmse": 0.5, "nll": 1.0}, "standard": {"rmse": 0.4}})
    assert csv.splitlines()[0] == "model,RMSE,NLL" and csv.splitlines()[2].endswith(",")


def test_exports_classification_frame():
    cfg = replace(default_config("moons"), train=replace(default_config().train, epochs=1))
    run = live.update_run(None, "classification", cfg, ("bbb", "standard"))
    frame = exports.classification_frame(run.dataset, live.predictions(run))
    assert {"x1", "x2", "bbb_p1", "bbb_entropy", "standard_mutual_info", "label"} <= set(
        frame.columns
    )
    assert (frame[frame.set == "grid"]["bbb_p1"].between(0, 1)).all()
    assert json.loads(exports.config_json(cfg))["data"]["name"] == "moons"
    assert predictive  # the exports take what bbb_core.predictive returns
