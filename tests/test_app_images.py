"""The images page through Streamlit's AppTest: the default run trains at once, the live charts,
the finished analysis and its downloads, presets, the URL (round trip and bad values), a long
run waiting for Play, and short messages (no server paths) for bad widths and missing data.

AppTest runs the live `run_every` fragment once per `run()`, i.e. one training tick; tests that
need a finished run use a few epochs (`?epochs=2`) and run until the run is done.
"""

from types import SimpleNamespace

import pytest

pytest.importorskip("streamlit")
from app_helpers import chart, open_page, run_to_finish  # noqa: E402
from app_helpers import run as _run  # noqa: E402
from app_helpers import trace_names as _names  # noqa: E402
from streamlit.testing.v1 import AppTest  # noqa: E402

from bbb_core import default_config, make_dataset  # noqa: E402
from bbb_core import image_plots as images_plots  # noqa: E402
from bbb_core.cost import estimate_seconds  # noqa: E402
from ui import exports, images, live  # noqa: E402

P = "images"
LIVE_CHARTS = ("accuracy", "loss", "hist-entropy", "hist-mutual_info")
FINAL_CHARTS = (
    "reliability",
    "gallery-0",
    "split-expected_entropy",
    "split-mutual_info",
    "rot-bbb",
    "rot-standard",
    "rot-curve",
    "pruning",
)


def _page(**params: str) -> AppTest:
    return open_page(P, **params)


def test_the_default_run_trains_without_a_click_and_draws_the_live_charts():
    at = _page()
    assert at.title[0].value.startswith("Images")
    run = at.session_state["live_run"]
    cfg, digits = run.cfg, default_config("digits")
    assert cfg.data.name == "digits" and cfg.model.hidden == (128, 128) == digits.model.hidden
    assert (cfg.train.kl_weight, cfg.model.rho0, cfg.train.epochs) == (0.1, -7.0, 60)
    assert run.playing and run.jobs["bbb"].epoch > 0 and not run.done
    assert run.kinds == ("bbb", "standard")
    assert [b.label for b in at.button] == ["Pause", "Step", "Reset", "Sweep the training-set size"]
    for name in LIVE_CHARTS:
        chart(at, P, name)
    assert _names(chart(at, P, "hist-entropy")) == ["test set", "gaussian noise"]
    assert _names(chart(at, P, "accuracy")) == ["BBB", "Standard"]
    assert not at.error and not at.warning and not at.dataframe  # the analysis waits


def test_a_finished_run_shows_the_whole_analysis_and_the_downloads(monkeypatch):
    built: list[str] = []  # gallery figures built (most of a rerun's plotly work: cached)

    def counting(gallery, kind, title, by="entropy"):
        built.append(title)
        return images_plots.gallery_figure(gallery, kind, title, by)

    monkeypatch.setattr(images, "gallery_figure", counting)
    at = run_to_finish(_page(epochs="2", pred_samples="5"))
    run = at.session_state["live_run"]
    assert any(m.value.startswith(":green[**Finished**]") for m in at.markdown)
    for name in LIVE_CHARTS + FINAL_CHARTS:
        chart(at, P, name)
    metrics = at.dataframe[0].value
    assert list(metrics.index) == ["BBB", "Standard"]
    assert {"accuracy", "ECE", "OOD AUROC (entropy)", "OOD AUROC (MI)"} <= set(metrics.columns)
    assert (metrics["accuracy"] > 0.3).all()  # 2 epochs on digits: well above chance
    auroc = at.dataframe[1].value
    assert {"gaussian noise", "letters", "rotated", "photos"} <= set(auroc.index)
    assert run.metrics == images.finished(run).analysis.metrics  # computed once, cached
    subheaders = " ".join(s.value for s in at.subheader)
    for part in ("Metrics", "unfamiliar", "hardest", "Rotate", "Pruning"):
        assert part in subheaders, part
    labels = [b.label for b in at.get("download_button")]
    assert labels == ["Config (JSON)", "Test predictions (CSV)", "Metrics (CSV)"]
    frame = exports.image_frame(run.dataset, images.finished(run).analysis.test)
    assert len(frame) == len(run.dataset.y_test) == 360
    assert {"label", "bbb_prediction", "standard_entropy", "bbb_p9"} <= set(frame.columns)
    accuracy = run.series["bbb"][-1]  # recorded while training: (epoch, accuracy)
    assert accuracy[0] == 2 and 0.3 < accuracy[1] <= 1.0
    assert len(built) == 4  # the two hardest-image galleries and the two of the split
    _run(at)  # a rerun (any widget, a sweep's frame, another viewer) reuses them
    assert len(built) == 4
    at.slider(key=f"{P}-gallery-k").set_value(4)
    _run(at)
    assert len(built) == 8 and chart(at, P, "gallery-0")  # a new choice: built anew


def test_the_final_view_controls_rerun_without_training():
    at = run_to_finish(_page(epochs="2", pred_samples="5"))
    run, charts = at.session_state["live_run"], len(at.get("plotly_chart"))
    at.slider(key=f"{P}-rot-angle").set_value(120)
    at.radio(key=f"{P}-by").set_value("mutual_info")
    at.radio(key=f"{P}-hist-model").set_value("standard")
    _run(at)
    assert at.session_state["live_run"] is run and len(at.get("plotly_chart")) == charts
    assert chart(at, P, "hist-entropy")["layout"]["title"]["text"].startswith("Standard")


@pytest.mark.parametrize(
    "slug, check",
    [
        ("letters", lambda c: c.data.ood == "letters"),
        ("rotated", lambda c: c.data.ood == "rotated"),
        ("cnn", lambda c: c.model.arch == "cnn" and c.model.hidden == (16, 32)),
        ("full-kl", lambda c: c.train.kl_weight == 1.0 and c.model.rho0 == -4.0),
    ],
)
def test_a_preset_loads_its_settings_and_tells_its_story(slug, check):
    at = _page()
    at.selectbox(key=f"{P}:preset").set_value(slug)
    _run(at)
    run = at.session_state["live_run"]
    assert check(run.cfg) and run.jobs["bbb"].epoch > 0
    assert images.offered_presets()[slug].name in at.info[0].value
    assert at.query_params["preset"] == slug
    ood = run.cfg.data.ood or "gaussian_noise"
    assert _names(chart(at, P, "hist-entropy"))[1] == ood.replace("_", " ")


def test_the_noise_preset_adds_mc_dropout_and_a_knob_leaves_the_preset():
    at = _page()
    at.selectbox(key=f"{P}:preset").set_value("noise")
    _run(at)
    assert at.session_state["live_run"].kinds == ("bbb", "standard", "dropout")
    at.select_slider(key=f"{P}:kl").set_value(0.5)
    _run(at)
    assert at.selectbox(key=f"{P}:preset").value == "custom" and not at.info


def test_mnist_presets_are_offered_only_with_their_data(tmp_path, monkeypatch):
    monkeypatch.setenv("BBB_DATA_DIR", str(tmp_path))
    at = _page()
    offered = at.selectbox(key=f"{P}:preset").options  # the names shown
    presets = images.presets_for(images.TASK)
    assert [presets[s].name for s in ("noise", "letters", "rotated", "cnn", "full-kl")] == offered[
        1:
    ]
    assert not any("MNIST" in o for o in offered)
    (tmp_path / "mnist.npz").write_bytes(b"")  # a cached copy of the set is what counts
    assert "mnist-paper" in images.offered_presets()


def test_a_link_round_trips_every_setting():
    link = {
        "arch": "cnn",
        "hidden": "8,16",
        "kl": "0.5",
        "prior": "laplace",
        "b": "0.5",
        "ood": "letters",
        "seed": "3",
        "show_dropout": "1",
        "epochs": "2",
        "pred_samples": "10",
    }
    at = _page(**link)
    assert not at.warning
    cfg = at.session_state["live_run"].cfg
    assert (cfg.model.arch, cfg.model.hidden, cfg.train.kl_weight) == ("cnn", (8, 16), 0.5)
    assert (cfg.prior.family, cfg.prior.b, cfg.data.ood, cfg.seed) == ("laplace", 0.5, "letters", 3)
    assert at.session_state["live_run"].kinds == ("bbb", "standard", "dropout")
    shared = dict(at.query_params)
    assert {k: shared[k] for k in link} == link
    again = _page(**shared)  # the shared link shows the same view
    assert again.session_state["live_run"].cfg == cfg
    assert dict(again.query_params) == shared
    assert again.text_input(key=f"{P}:hidden").value == "8, 16"


def test_bad_values_in_a_link_fall_back_with_a_notice():
    at = _page(hidden="30000,30000", ood="banana", epochs="5000", data="cifar")
    assert not at.exception and len(at.warning) == 1
    text = at.warning[0].value
    assert "`hidden='30000,30000'`: expected 1 to 4 layer widths between 1 and 2048" in text
    assert "`ood='banana'`: expected one of gaussian_noise, uniform_noise" in text
    assert "`epochs='5000'`: expected a whole number in [1, 1000]; using 60" in text
    assert "`data='cifar'` is not a dataset of this page; using digits" in text
    cfg = at.session_state["live_run"].cfg
    assert cfg.model.hidden == (128, 128) and cfg.train.epochs == 60
    assert at.query_params["hidden"] == "128,128" and at.query_params["epochs"] == "60"


@pytest.mark.parametrize(
    "arch, text, bound",
    [("mlp", "3000, 3000", 2048), ("cnn", "16, 512", 128), ("mlp", "8, 8, 8, 8, 8", 2048)],
)
def test_widths_are_bounded_per_architecture_and_the_message_names_the_bound(arch, text, bound):
    at = _page(arch=arch, epochs="2", pred_samples="2", hidden="4" if arch == "mlp" else "4,4")
    at.text_input(key=f"{P}:hidden").set_value(text)
    _run(at)
    label = images.HIDDEN_LABELS[arch]
    assert at.error[0].value.startswith(f"{label}: write 1 to 4 layer widths between 1 and {bound}")
    assert at.error[0].value.endswith("Change it in the sidebar.")
    assert at.text_input(key=f"{P}:hidden").proto.max_chars == 64


def test_switching_to_the_cnn_loads_its_channels_and_retrains():
    at = _page()
    at.radio(key=f"{P}:arch").set_value("cnn")
    _run(at)
    cfg = at.session_state["live_run"].cfg
    assert cfg.model.arch == "cnn" and cfg.model.hidden == images.CNN_CHANNELS
    assert at.text_input(key=f"{P}:hidden").value == "16, 32"
    assert at.query_params["arch"] == "cnn" and at.query_params["hidden"] == "16,32"


def test_the_kl_weight_retrains_bbb_only_and_the_ood_set_retrains_nothing():
    at = _page()
    run = at.session_state["live_run"]
    at.select_slider(key=f"{P}:kl").set_value(1.0)
    _run(at)
    after = at.session_state["live_run"]
    assert after.jobs["bbb"] is not run.jobs["bbb"]
    assert after.jobs["standard"] is run.jobs["standard"]
    at.selectbox(key=f"{P}:ood").set_value("photos")
    _run(at)
    last = at.session_state["live_run"]
    assert last.cfg.data.ood == "photos" and last.jobs == after.jobs
    assert _names(chart(at, P, "hist-entropy")) == ["test set", "photos"]


def test_a_run_of_minutes_says_so_and_waits_for_play():
    at = _page(epochs="1000", show_ensemble="1")
    assert len(at.warning) == 1 and "minutes" in at.warning[0].value
    run = at.session_state["live_run"]
    assert not run.playing and run.jobs["bbb"].epoch == 0
    assert at.button[0].label == "Play"
    at.button[0].click()
    _run(at)
    run = at.session_state["live_run"]
    assert run.playing and run.jobs["bbb"].epoch > 0


def test_pause_step_and_reset():
    at = _page(epochs="200")  # a run of seconds that the first frame cannot finish
    at.button[0].click()  # Pause
    _run(at)
    run = at.session_state["live_run"]
    assert not run.playing and at.button[0].label == "Play"
    epoch = run.jobs["bbb"].epoch
    at.button[1].click()  # Step: epochs // 20
    _run(at)
    assert at.session_state["live_run"].jobs["bbb"].epoch == epoch + 10
    chart(at, P, "accuracy")  # the charts show the paused run
    at.button[2].click()  # Reset
    _run(at)
    run = at.session_state["live_run"]
    assert run.jobs["bbb"].epoch == 0 and not run.playing


def test_the_estimate_grows_with_the_network_the_data_and_the_epochs():
    digits = default_config("digits")
    shape = SimpleNamespace(task="classification", n_classes=10)  # what the estimate reads
    seconds = estimate_seconds(digits, ("bbb", "standard"), make_dataset(digits.data, 0))
    assert 2 < seconds < live.LONG_RUN  # the default run: seconds
    mnist = SimpleNamespace(**vars(shape), input_shape=(1, 28, 28), n_train=60_000)
    assert estimate_seconds(default_config("mnist"), ("bbb", "standard"), mnist) > 3600


def test_missing_mnist_shows_where_to_put_the_files(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("BBB_DATA_DIR", str(tmp_path))
    import bbb_core.data.images as data_images

    def offline(url, dest, timeout=60.0):
        raise OSError("offline (test)")

    monkeypatch.setattr(data_images, "fetch_url", offline)
    at = _page()
    at.selectbox(key=f"{P}:data").set_value("fashion_mnist")
    _run(at)
    assert at.error and "Fashion-MNIST is not on this machine" in at.error[0].value
    assert "train-images-idx3-ubyte" in at.code[0].value
    assert not at.get("plotly_chart") and not at.button  # no live panel without data
    shown = " ".join(e.value for e in [*at.error, *at.code, *at.markdown, *at.caption])
    assert str(tmp_path) not in shown and "offline (test)" not in shown
    assert str(tmp_path) in caplog.text and "offline (test)" in caplog.text  # the server's log


def test_the_data_size_sweep_offers_the_digits_with_the_standard_network_for_contrast():
    at = _page(epochs="2", pred_samples="4")
    button = next(b for b in at.button if b.label == "Sweep the training-set size")
    button.click()
    _run(at)
    sweep = at.session_state["images::size_sweep"]
    assert sweep.sizes[-1] == 1437 and sweep.kinds == ("bbb", "dropout", "standard")
    for _ in range(25):
        if sweep.done:
            break
        _run(at)
    assert sweep.done and sweep.error is None and len(sweep.points) == 18
    fig = chart(at, P, "size-sweep")
    assert [t["name"] for t in fig["data"]][::2] == ["BBB", "MC dropout", "Standard"]
    standard = [p for p in sweep.points if p.kind == "standard"]
    assert all(p.epistemic == 0.0 and p.aleatoric > 0 for p in standard)


def test_the_number_of_training_images_is_a_knob_in_the_link():
    at = _page(epochs="2", pred_samples="4")
    assert at.number_input(key=f"{P}:n").value == 1437  # all the digits
    assert at.session_state["live_run"].dataset.n_train == 1437
    at = _page(epochs="2", pred_samples="4", n="200")
    run = at.session_state["live_run"]
    assert run.cfg.data.n_train == 200 and run.dataset.n_train == 200
    assert at.query_params["n"] == "200"
    assert len(run.dataset.y_test) == 360  # the same test set whatever the training subset
