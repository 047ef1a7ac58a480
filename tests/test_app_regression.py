"""The regression page through Streamlit's AppTest: defaults, moved widgets, presets, the URL
(hostile links included), finishing a run, and errors shown as messages.

AppTest runs the live `run_every` fragment once per `run()`, i.e. one training tick; tests that
need a finished run use a few epochs and run until the status says so. The loop's step function
itself is tested in test_ui_live.py.
"""

import pytest

from ui import params

pytest.importorskip("streamlit")
from app_helpers import (  # noqa: E402
    assert_inert,
    chart,
    defaults_not_values,
    open_page,
    run_to_finish,
)
from app_helpers import run as _run  # noqa: E402
from app_helpers import trace_data as _data  # noqa: E402
from app_helpers import trace_names as _traces  # noqa: E402
from streamlit.testing.v1 import AppTest  # noqa: E402

P = "regression"


def _page(**params: str) -> AppTest:
    return open_page(P, **params)


def _chart(at: AppTest, name: str) -> dict:
    return chart(at, P, name)


def test_defaults_draw_the_fit_the_losses_and_the_prior():
    at = _page()
    assert at.title[0].value.startswith("Regression")
    assert len(at.get("plotly_chart")) == 3
    fit = _traces(_chart(at, "fit"))
    for name in ("BBB mean", "Standard mean", "training data", "true function", "BBB total 95 %"):
        assert name in fit
    assert _traces(_chart(at, "loss")) == ["NLL", "KL", "−ELBO"]
    assert len(_chart(at, "prior-plot")["data"]) == 1
    assert [b.label for b in at.button] == ["Pause", "Step", "Reset", "Sweep the training-set size"]
    assert not at.error and not at.warning
    run = at.session_state["live_run"]
    assert run.kinds == ("bbb", "standard") and run.jobs["bbb"].epoch > 0


def test_every_setting_is_written_into_the_url():
    at = _page()
    params = at.query_params
    assert params["data"] == "blundell" and params["kl"] == "1.0" and params["seed"] == "0"
    assert {"sigma", "epochs", "pred_samples", "hidden", "mode", "device"} <= set(params)


def test_moving_the_kl_weight_retrains_bbb_and_changes_the_chart():
    at = _page()
    before, run = _data(_chart(at, "fit")), at.session_state["live_run"]
    at.select_slider(key=f"{P}:kl").set_value(0.0)
    _run(at)
    after = at.session_state["live_run"]
    assert after.cfg.train.kl_weight == 0.0 and after.jobs["bbb"] is not run.jobs["bbb"]
    assert after.jobs["standard"] is run.jobs["standard"]
    assert _data(_chart(at, "fit")) != before
    assert at.query_params["kl"] == "0.0"


def test_moving_the_prior_sigma_changes_the_prior_plot_and_the_fit():
    at = _page()
    prior, fit = _data(_chart(at, "prior-plot")), _data(_chart(at, "fit"))
    at.select_slider(key=f"{P}:sigma").set_value(0.1)
    _run(at)
    assert at.session_state["live_run"].cfg.prior.sigma == 0.1
    assert _data(_chart(at, "prior-plot")) != prior and _data(_chart(at, "fit")) != fit


def test_a_preset_loads_its_settings_and_tells_its_story():
    at = _page()
    fit = _data(_chart(at, "fit"))
    at.selectbox(key=f"{P}:preset").set_value("gap")
    _run(at)
    assert "in-between gap" in at.info[0].value and "Foong" in at.info[0].value
    run = at.session_state["live_run"]
    assert run.cfg.data.name == "gap" and run.cfg.data.gap == 2.0
    assert run.kinds == ("bbb", "standard", "ensemble")
    assert "Ensemble mean" in _traces(_chart(at, "fit")) and _data(_chart(at, "fit")) != fit
    assert at.query_params["preset"] == "gap"
    at.select_slider(key=f"{P}:kl").set_value(0.5)  # any knob: no longer the preset's view
    _run(at)
    assert at.selectbox(key=f"{P}:preset").value == "custom" and not at.info


def test_every_widget_is_sent_with_its_current_value_as_its_default():
    """A link, a preset and a moved knob set values through session state; each widget's default
    follows, so a browser that redraws it before storing the value still shows the value."""
    at = _page(kl="0.5", hidden="16", noise_model="fixed", epochs="150", batch="32", seed="3")
    assert at.select_slider(key=f"{P}:kl").value == 0.5
    assert defaults_not_values(at, f"{P}:") == {}
    at.selectbox(key=f"{P}:preset").set_value("gap")  # a callback sets many widgets
    _run(at)
    assert at.number_input(key=f"{P}:epochs").value != 150
    assert defaults_not_values(at, f"{P}:") == {}
    at.select_slider(key=f"{P}:kl").set_value(0.1)
    _run(at)
    _run(at)  # a rerun with nothing new to send
    assert defaults_not_values(at, f"{P}:") == {}
    kl = at.select_slider(key=f"{P}:kl")
    assert kl.options[int(kl.proto.default[0])] == "0.1"


def test_the_url_sets_the_widgets_and_bad_values_fall_back_with_a_notice():
    at = _page(kl="0.1", epochs="20000", seed="4", sigma="oops")  # still training: the notice
    assert at.select_slider(key=f"{P}:kl").value == 0.1
    assert at.number_input(key=f"{P}:epochs").value == 20000
    cfg = at.session_state["live_run"].cfg
    assert (cfg.train.kl_weight, cfg.train.epochs, cfg.seed) == (0.1, 20000, 4)
    assert cfg.prior.sigma == 1.0
    assert len(at.warning) == 1 and "sigma='oops'" in at.warning[0].value


def test_a_markdown_injection_link_shows_inert_notices_and_the_url_is_cleaned():
    link = {
        "preset": "![x](http://127.0.0.1:9/pixel.png)",
        "seed": "[Session expired: click here](http://127.0.0.1:9/login)",
        "hidden": "<img src=x onerror=alert(1)>" * 4000,  # 112 KB
        "x:red[y]": ":material/home: $x^2$",
    }
    at = _page(**link)
    assert not at.exception and len(at.warning) == 1
    text = at.warning[0].value
    assert_inert(text, "pixel", "Session", "onerror", "material")
    assert "`preset='![x](http://127.0.0.1:9/pixel.png)'` is not a preset" in text
    assert "`hidden='<img src=x onerror=alert(1)>" in text and "112,000 characters" in text
    assert len(text) < params.MAX_NOTICES * 300
    cfg = at.session_state["live_run"].cfg
    assert cfg.seed == 0 and cfg.model.hidden == (32, 32)
    assert at.query_params["preset"] == "custom" and at.query_params["seed"] == "0"
    assert "x:red[y]" not in at.query_params  # the page rewrote the URL with valid values only


def test_infinite_and_huge_numbers_in_a_link_fall_back_with_notices():
    at = _page(
        epochs="inf",
        n="1e400",
        ensemble="-inf",
        show_ensemble="1",
        train_samples="Infinity",
        pred_samples="inf",
        warmup="inf",
        schedule="warmup",
        noise="nan",
    )
    assert not at.exception and len(at.warning) == 1
    text = at.warning[0].value
    for notice in (
        "`epochs='inf'`: expected a whole number in [1, 20000]; using 600",
        "`n='1e400'`: expected a whole number in [10, 2000]; using 200",
        "`ensemble='-inf'`: expected a whole number in [2, 10]; using 5",
        "`train_samples='Infinity'`: expected a whole number in [1, 16]; using 1",
        "`pred_samples='inf'`: expected one of 1, 2, 3, 5, 10, 20, 30, 50, 100, 200, 500;",
        "`warmup='inf'`: expected a whole number in [1, 5000]; using 10",
        "`noise='nan'`: expected a number in [0, 20]; using 0.02",
    ):
        assert notice in text, notice
    cfg = at.session_state["live_run"].cfg
    assert (cfg.train.epochs, cfg.data.n_train, cfg.model.ensemble_size) == (600, 200, 5)
    assert cfg.train.kl_schedule == "warmup" and cfg.train.warmup_epochs == 10


def test_a_huge_seed_falls_back_with_a_short_notice():
    at = _page(seed="9" * 5000)
    assert not at.exception and at.session_state["live_run"].cfg.seed == 0
    assert "5,000 characters is too long" in at.warning[0].value
    assert len(at.warning[0].value) < 300


def test_the_link_notice_stays_after_the_run_finishes_until_a_setting_changes():
    at = run_to_finish(_page(epochs="40", sigma="oops"))  # the finished run reran the page
    assert at.dataframe
    assert len(at.warning) == 1 and "sigma='oops'" in at.warning[0].value
    _run(at)  # any later rerun (Play, Pause, a page switch) still shows it
    assert len(at.warning) == 1
    at.select_slider(key=f"{P}:kl").set_value(0.5)  # the user moves on: it goes
    _run(at)
    assert not at.warning


def test_a_finished_run_shows_metrics_and_downloads():
    at = run_to_finish(_page(epochs="20"))
    status = at.session_state["live_run"]
    assert status.metrics is not None
    assert any(m.value.startswith(":green[**Finished**]") for m in at.markdown)
    table = at.dataframe[0].value
    assert list(table.index) == ["BBB", "Standard"]
    assert {"RMSE", "NLL", "95 % coverage", "mean std out of range"} <= set(table.columns)
    labels = [b.label for b in at.get("download_button")]
    assert labels == ["Config (JSON)", "Plotted data (CSV)", "Metrics (CSV)"]
    assert at.button[0].label == "Play" and at.button[0].disabled


def test_pause_step_and_reset():
    at = _page(epochs="20000")  # a run the first frame cannot finish
    at.button[0].click()  # Pause
    _run(at)
    run = at.session_state["live_run"]
    assert not run.playing and at.button[0].label == "Play"
    epoch = run.jobs["bbb"].epoch
    at.button[1].click()  # Step: epochs // 20
    _run(at)
    assert at.session_state["live_run"].jobs["bbb"].epoch == epoch + run.epochs // 20
    at.button[2].click()  # Reset
    _run(at)
    run = at.session_state["live_run"]
    assert run.jobs["bbb"].epoch == 0 and not run.playing


def test_bad_hidden_layers_show_what_to_change_and_keep_the_last_run():
    at = _page()
    run = at.session_state["live_run"]
    at.text_input(key=f"{P}:hidden").set_value("32, banana")
    _run(at)
    assert "Hidden layers" in at.error[0].value and "e.g. 32, 32" in at.error[0].value
    assert at.session_state["live_run"] is run and len(at.get("plotly_chart")) == 2


def test_switching_the_dataset_loads_its_settings_and_baselines_join_the_chart():
    at = _page()
    at.selectbox(key=f"{P}:data").set_value("cubic")
    _run(at)
    cfg = at.session_state["live_run"].cfg
    assert cfg.model.hidden == (50,) and cfg.model.noise_model == "fixed"
    assert at.number_input(key=f"{P}:noise_std").value == 3.0
    at.checkbox(key=f"{P}:show_dropout").check()
    _run(at)
    assert "MC dropout mean" in _traces(_chart(at, "fit"))


def test_a_diverging_run_shows_a_message_not_a_traceback(monkeypatch):
    from bbb_core import Trainer, TrainingDiverged

    def explode(self):
        raise TrainingDiverged("the loss became NaN at epoch 1: lower the learning rate (now 0.1)")

    monkeypatch.setattr(Trainer, "_end_epoch", explode)  # where the check is
    at = _page(lr="0.1")
    assert not at.exception
    assert any("diverged" in e.value and "learning rate" in e.value for e in at.error)


def test_the_data_size_sweep_runs_a_point_per_frame_and_draws_both_parts():
    at = _page(epochs="20")
    button = next(b for b in at.button if b.label == "Sweep the training-set size")
    button.click()
    _run(at)
    sweep = at.session_state["regression::size_sweep"]
    assert sweep.cfg.model.noise_model == "hetero" and len(sweep.points) == 1
    for _ in range(15):
        if sweep.done:
            break
        _run(at)  # AppTest runs the sweep's fragment once per run: one more point
    assert sweep.done and sweep.error is None
    assert [(p.n_train, p.kind) for p in sweep.points][:3] == [
        (25, "bbb"),
        (25, "dropout"),
        (50, "bbb"),
    ]
    fig = _chart(at, "size-sweep")
    assert [t["name"] for t in fig["data"]] == ["BBB", "BBB", "MC dropout", "MC dropout"]
    assert not at.exception and not at.error


def test_a_link_for_a_run_of_days_says_so_and_waits_for_play():
    from ui.load import HEAVY  # the heaviest valid link, which `python -m ui.load --heavy` plays

    at = _page(**HEAVY)
    run = at.session_state["live_run"]
    assert not run.playing and all(t.epoch == 0 for t in run.jobs.values())
    (warning,) = [w.value for w in at.warning if "would train for about" in w.value]
    assert "days" in warning and "Play" in warning
    assert [b.label for b in at.button][0] == "Play"
    default = _page()
    assert default.session_state["live_run"].playing  # a run of seconds starts at once
    assert not [w for w in default.warning if "would train for about" in w.value]
