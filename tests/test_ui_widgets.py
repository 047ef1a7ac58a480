"""Widget values <-> RunConfig <-> URL (`ui.params`), links written by anyone (hostile values
fall back with inert, bounded notices), the presets (`ui.presets`) and the downloads
(`ui.exports`), without Streamlit running."""

import json
import math
import re
from dataclasses import replace

import pytest
from app_helpers import assert_inert

from bbb_core import RunConfig, default_config, predictive
from bbb_core.config import CLASSIFICATION_DATASETS, REGRESSION_DATASETS
from ui import exports, images, live, params
from ui.presets import PRESETS, presets_for

STORY_PRESETS = {
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
    assert "`kl='banana'`: expected one of 0, 0.001, " in notices[0]
    assert notices[-1] == "`bogus='1'` is not a setting; ignored"
    assert notices[1] == "`seed='-3'`: expected a whole number in [0, 2147483647]; using 0"


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


@pytest.mark.parametrize(
    "text", ["", "a,b", "0", "32,32,32,32,32", "5000", "16, x", "1.5", "١٢", "1_0", "+8", "1e3"]
)
def test_parse_hidden_rejects_with_the_rule(text):
    with pytest.raises(ValueError, match="layer widths between 1 and 1024"):
        params.parse_hidden(text)


def test_parse_hidden_takes_a_wider_bound_and_names_it():
    assert params.parse_hidden("1200, 1200", max_width=2048) == (1200, 1200)
    with pytest.raises(ValueError, match="between 1 and 2048") as err:
        params.parse_hidden("30000, 30000", max_width=2048)
    assert "(got `'30000, 30000'`)" in str(err.value)


def test_parse_hidden_rejects_a_long_text_before_any_regex_work(monkeypatch):
    def no_regex(*args, **kwargs):
        raise AssertionError("a regex ran on an over-long text")

    monkeypatch.setattr(params.re, "split", no_regex)
    text = "32, " * 25_000  # 100,000 characters
    with pytest.raises(ValueError, match=r"layer widths .*\(got 100,000 characters\)"):
        params.parse_hidden(text)


def test_plain_decimal_numbers_are_read():
    query = {"epochs": "1e3", "seed": " 7 ", "n": "300.0", "noise": ".5", "pred_samples": "2e1"}
    values, notices = params.read_url(query, "regression", REGRESSION_DATASETS)
    assert notices == []
    assert (values["epochs"], values["seed"], values["n"]) == (1000, 7, 300)
    assert values["noise"] == 0.5 and values["pred_samples"] == 20


# --- links written by anyone ----------------------------------------------------------------------

NOTICE_CHARS = 300  # the longest notice: an echoed key and value plus the widest list of options
HOSTILE = (  # each is invalid for every parameter
    "inf",
    "-inf",
    "nan",
    "Infinity",
    "1e400",
    "-1e400",
    "9" * 5000,
    "0x10",
    "1_000",
    "١٢",
    "",
    " ",
    "![x](http://127.0.0.1:9/pixel.png)",
    "[Session expired: click here](http://127.0.0.1:9/login)",
    "<img src=x onerror=alert(1)>",
    ":material/home: :red[Alert] :smile: $x^2$ `code` **bold** www.example.com a@b.cd",
    "\x00\x1b[31m\n\u202e\u200b",
    "![x](http://127.0.0.1:9/pixel.png)" * 3000,
    "x" * 100_000,
)
FROM_THE_LINK = ("pixel", "login", "Session", "onerror", "material", "Alert", "smile", "x^2")
FROM_THE_LINK += ("code", "bold", "example", "b.cd")
CODE_SPAN = re.compile(r"`([^`]*)`")


def _assert_inert(notice: str) -> None:
    """The link's text is only in code spans (printable, cut to the echo bound); outside them
    nothing Markdown, HTML or the link's would act on."""
    assert len(notice) <= NOTICE_CHARS, len(notice)
    assert_inert(notice, "www", "@", "*", "\\", *FROM_THE_LINK)
    for span in CODE_SPAN.findall(notice):
        assert len(span) <= params.MAX_ECHO_KEY + 1 + params.MAX_ECHO
    assert CODE_SPAN.sub("", notice).isprintable(), notice


def _defaults() -> dict:
    return params.read_url({}, "regression", REGRESSION_DATASETS)[0]


@pytest.mark.parametrize("key", sorted(params.PARAMS))
def test_a_hostile_value_in_any_parameter_falls_back_with_an_inert_notice(key):
    defaults = _defaults()
    for text in HOSTILE:
        values, notices = params.read_url({key: text}, "regression", REGRESSION_DATASETS)
        assert values == defaults, (key, text[:40])
        params.config_from_values(values)
        assert len(notices) == 1 and notices[0].startswith(f"`{key}="), (key, text[:40])
        assert "using" in notices[0] or "ignored" in notices[0] or "no preset" in notices[0]
        _assert_inert(notices[0])


@pytest.mark.parametrize(
    "query, notice",
    [
        ({"epochs": "inf"}, "`epochs='inf'`: expected a whole number in [1, 20000]; using 600"),
        ({"n": "1e400"}, "`n='1e400'`: expected a whole number in [10, 2000]; using 200"),
        ({"ensemble": "-inf"}, "`ensemble='-inf'`: expected a whole number in [2, 10]; using 5"),
        ({"noise": "nan"}, "`noise='nan'`: expected a number in [0, 20]; using 0.02"),
        (
            {"train_samples": "Infinity"},
            "`train_samples='Infinity'`: expected a whole number in [1, 16]; using 1",
        ),
        (
            {"pred_samples": "inf"},
            "`pred_samples='inf'`: expected one of 1, 2, 3, 5, 10, 20, 30, 50, 100, 200, 500; "
            "using 100",
        ),
        (
            {"warmup": "inf", "schedule": "warmup"},
            "`warmup='inf'`: expected a whole number in [1, 5000]; using 10",
        ),
        (
            {"seed": "9" * 5000},
            f"`seed='{'9' * 78}…`: 5,000 characters is too long; expected a whole number in "
            "[0, 2147483647]; using 0",
        ),
        (
            {"hidden": "1" * 100_000},
            f"`hidden='{'1' * 78}…`: 100,000 characters is too long; expected 1 to 4 layer "
            "widths between 1 and 1024, separated by commas, e.g. 32, 32; using 32,32",
        ),
        (
            {"preset": "![x](http://h/p.png)"},
            "`preset='![x](http://h/p.png)'` is not a preset; no preset loaded",
        ),
    ],
)
def test_a_hostile_link_names_the_value_the_rule_and_the_fallback(query, notice):
    values, notices = params.read_url(query, "regression", REGRESSION_DATASETS)
    assert notices == [notice]
    params.config_from_values(values)


def test_a_100_kb_value_in_every_parameter_and_unknown_keys_en_masse():
    junk = {f"junk{i}": "![x](http://127.0.0.1:9/p.png)" for i in range(10_000)}
    odd = {"<img src=x onerror=alert(1)>" * 100: "1", "k\x00`\n": "1", "![a](http://h/)": "1"}
    query = {key: "x" * 100_000 for key in params.PARAMS} | junk | odd
    values, notices = params.read_url(query, "regression", REGRESSION_DATASETS)
    assert values == _defaults()
    params.config_from_values(values)
    assert len(notices) == params.MAX_NOTICES
    more = len(query) - (params.MAX_NOTICES - 1)
    assert notices[-1] == f"and {more:,} more ignored or invalid parameters"
    for notice in notices:
        _assert_inert(notice)
    _, notices = params.read_url(odd, "regression", REGRESSION_DATASETS)
    assert len(notices) == 3
    for notice in notices:
        _assert_inert(notice)


def test_echo_shows_text_literally_and_cuts_it():
    assert params.echo("abc") == "`'abc'`"
    assert params.echo("a`b\x00\n") == "`'a\\x60b\\x00\\n'`"  # no backtick can end the span
    assert params.echo(":material/home:") == "`':material\\x2fhome:'`"  # Streamlit rewrites "/"
    assert params.echo("z" * 78) == "`'" + "z" * 78 + "'`"  # 80 characters with the quotes
    cut = params.echo("z" * 79)
    assert cut == "`'" + "z" * 78 + "…`" and len(cut) == params.MAX_ECHO + 2
    assert len(params.echo("\x00" * 1000)) == params.MAX_ECHO + 2  # escapes count too
    assert params.echo("k" * 100, 30) == "`'" + "k" * 28 + "…`"


def test_config_errors_name_the_widget():
    values = params.values_from_config(default_config("blundell")) | {"hidden": "abc"}
    with pytest.raises(ValueError) as err:
        params.config_from_values(values)
    assert "layer widths" in str(err.value)
    msg = params.friendly_error(ValueError("train.epochs must be an integer >= 1; got 0"))
    assert msg.startswith("Epochs:") and msg.endswith("Change it in the sidebar.")


def test_the_story_presets_exist_and_tell_a_story():
    names = {p.name for p in presets_for("regression").values()}
    assert STORY_PRESETS <= names
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
    table = images.TABLE if task == "images" else params.PARAMS  # the page's own settings
    values = params.preset_values(preset, {"device": "cpu", "mode": "continue"}, table)
    for key, value in values.items():
        param = table[key]
        if param.options and key != "preset":
            assert value in param.options, (slug, key, value)
    assert values["device"] == "cpu" and values["mode"] == "continue"
    rebuilt = params.config_from_values(values, table)
    assert live.relevant_config(rebuilt, "bbb") == live.relevant_config(
        replace(preset.config, device="cpu", data=rebuilt.data), "bbb"
    )


@pytest.mark.parametrize(
    "task, page_default",
    [("regression", "blundell"), ("classification", "moons"), ("images", "digits")],
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
