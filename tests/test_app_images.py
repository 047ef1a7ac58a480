"""The images page through Streamlit's AppTest: defaults, a short training run, the charts, and
short messages (no server paths) for bad widths and missing data."""

from pathlib import Path

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

PAGE = str(Path(__file__).resolve().parents[1] / "pages" / "images.py")
TIMEOUT = 120


def _page() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT)
    at.run()
    assert not at.exception, at.exception
    return at


def _train(at: AppTest, epochs: int = 2, samples: int = 4) -> AppTest:
    at.number_input(key="img_epochs_digits").set_value(epochs)
    at.number_input(key="img_samples_digits").set_value(samples)
    at.button(key="img_train").click()
    at.run()
    assert not at.exception, at.exception
    return at


def test_page_runs_with_defaults_and_asks_to_train():
    at = _page()
    assert at.title[0].value.startswith("Images")
    assert any("Train" in i.value for i in at.info)
    assert not at.get("plotly_chart")


def test_training_shows_metrics_and_every_chart():
    at = _train(_page())
    assert not at.error
    assert len(at.dataframe) == 3  # metrics, the AUROC per OOD set, the pruning errors
    metrics = at.dataframe[0].value
    assert len(metrics.index) == 2
    assert {"accuracy", "ECE", "OOD AUROC (entropy)", "OOD AUROC (MI)"} <= set(metrics.columns)
    assert (metrics["accuracy"] > 0.3).all()  # 2 epochs on digits: well above chance
    # reliability, 2 histograms, up to 2 galleries, 2 rotated images, rotation curve, pruning
    assert len(at.get("plotly_chart")) >= 7
    subheaders = [s.value for s in at.subheader]
    for part in ("Metrics", "unfamiliar", "hardest", "Rotate", "Pruning"):
        assert any(part in s for s in subheaders), (part, subheaders)


def test_rotation_explorer_and_gallery_controls_rerun_without_training():
    at = _train(_page())
    charts = len(at.get("plotly_chart"))
    at.slider(key="img_rot_angle").set_value(120)
    at.radio(key="img_rot_pick").set_value("a test image")
    at.run()
    at.number_input(key="img_rot_idx").set_value(7)
    at.radio(key="img_gal_by").set_value("mutual_info")
    at.radio(key="img_hist_model").set_value("standard")
    at.run()
    assert not at.exception, at.exception
    assert len(at.get("plotly_chart")) == charts


def test_baselines_are_trained_when_asked():
    at = _page()
    at.multiselect(key="img_baselines").set_value(["dropout"])
    at = _train(at)
    assert len(at.dataframe[0].value.index) == 3


def test_bad_hidden_sizes_give_a_short_message():
    at = _page()
    at.text_input(key="img_hidden_digits_mlp").set_value("128, zero")
    at.run()
    assert not at.exception
    assert at.error[0].value.startswith("Hidden units: write 1 to 4 layer widths")
    assert "(got `'128, zero'`)" in at.error[0].value
    assert not at.get("plotly_chart")


@pytest.mark.parametrize(
    "arch, text, bound",
    [("mlp", "30000, 30000", 2048), ("cnn", "16, 512", 128), ("mlp", "8, 8, 8, 8, 8", 2048)],
)
def test_hidden_sizes_are_bounded_and_the_message_names_the_bound(arch, text, bound):
    at = _page()
    if arch == "cnn":
        at.radio(key="img_arch").set_value("cnn")
        at.run()
    at.text_input(key=f"img_hidden_digits_{arch}").set_value(text)
    at.run()
    assert not at.exception, at.exception
    assert f"1 to 4 layer widths between 1 and {bound}" in at.error[0].value
    assert at.error[0].value.endswith("Change it in the sidebar.")
    assert at.text_input(key=f"img_hidden_digits_{arch}").proto.max_chars == 64


def test_missing_mnist_shows_where_to_put_the_files(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("BBB_DATA_DIR", str(tmp_path))
    import bbb_core.data.images as images

    def offline(url, dest, timeout=60.0):
        raise OSError("offline (test)")

    monkeypatch.setattr(images, "fetch_url", offline)
    at = _page()
    at.selectbox(key="img_dataset").set_value("fashion_mnist")
    at.run()
    assert not at.exception, at.exception
    assert at.error and "Fashion-MNIST is not on this machine" in at.error[0].value
    assert "train-images-idx3-ubyte" in at.code[0].value
    shown = " ".join(e.value for e in [*at.error, *at.code, *at.markdown, *at.caption])
    assert str(tmp_path) not in shown and "offline (test)" not in shown
    assert str(tmp_path) in caplog.text and "offline (test)" in caplog.text  # the server's log


def test_the_cnn_trains_and_shows_the_rotation_explorer():
    at = _page()
    at.radio(key="img_arch").set_value("cnn")
    at.run()
    at.text_input(key="img_hidden_digits_cnn").set_value("4, 8")
    at = _train(at, epochs=1)
    assert not at.error
    assert any("Rotate" in s.value for s in at.subheader)
    assert len(at.get("plotly_chart")) >= 7
