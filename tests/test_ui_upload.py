"""Uploading your own CSV file on the regression and classification pages (AppTest drives the real
`st.file_uploader`): the pickers, the preview, training on the upload, presets on it, the URL's
`data=uploaded`, a hostile file's message, exports safe for spreadsheets, and two sessions that
never see each other's upload (nor does the cache they share)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

pytest.importorskip("streamlit")
from app_helpers import assert_inert, chart, open_page, run_to_finish  # noqa: E402
from app_helpers import run as _run  # noqa: E402
from streamlit.testing.v1 import AppTest  # noqa: E402

from bbb_core.data import tabular  # noqa: E402
from ui import exports, live, upload  # noqa: E402
from ui.presets import ANY_DATA, presets_for  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
REGRESSION = (EXAMPLES / "regression.csv").read_bytes()
CLASSIFICATION = (EXAMPLES / "classification.csv").read_bytes()


def _upload(at: AppTest, page: str, name: str, data: bytes | None) -> AppTest:
    widget = at.file_uploader(key=f"{page}-upload-file")
    widget.set_value(None if data is None else (name, data, "text/csv"))
    return _run(at)


def _epochs(at: AppTest, page: str, epochs: int) -> AppTest:
    at.number_input(key=f"{page}:epochs").set_value(epochs)
    return _run(at)


def _frame(at: AppTest, column: str) -> pd.DataFrame:
    """The first table shown that has a column `column`."""
    for element in at.dataframe:
        if column in element.value.columns:
            return element.value
    raise AssertionError(f"no table with {column}: {[list(e.value.columns) for e in at.dataframe]}")


def _same_points(dataset, data: tabular.TabularData) -> bool:
    return torch.equal(dataset.x_train, data.dataset.x_train)


@pytest.fixture
def cache_calls(monkeypatch):
    """Every config that reached the dataset cache shared by all sessions."""
    calls = []
    shared = live.cached_dataset

    def record(cfg):
        calls.append(cfg)
        return shared(cfg)

    monkeypatch.setattr(live, "cached_dataset", record)
    return calls


def test_a_regression_upload_trains_on_the_file_and_the_url_says_uploaded(cache_calls):
    at = open_page("regression")
    assert at.session_state["live_run"].cfg.data.name == "blundell"
    _upload(at, "regression", "sales.csv", REGRESSION)
    at = run_to_finish(_epochs(at, "regression", 40))
    run = at.session_state["live_run"]
    mine = at.session_state["regression::upload"].data
    assert run.cfg.data.name == "csv_regression" and run.cfg.data.source == mine.source
    assert run.cfg.data.n_train == 238 and _same_points(run.dataset, mine)
    assert run.cfg.model.noise_std == mine.noise_start == 10  # the learned noise starts near
    assert at.number_input(key="regression:noise_std").value == 10
    assert at.query_params["data"] == "uploaded"
    assert "sales" not in str(dict(at.query_params)) and "csv:" not in str(dict(at.query_params))
    assert not {"n", "noise", "gap"} & set(at.query_params)  # no generator settings for a file
    assert at.multiselect(key="regression-upload-inputs").value == ["temperature_c"]
    assert at.selectbox(key="regression-upload-target").value == "sales"
    preview = _frame(at, "humidity_pct")
    assert list(preview.columns) == ["temperature_c", "humidity_pct", "sales"] and len(preview) == 5
    dropped = _frame(at, "dropped for")
    assert dropped["rows"].tolist() == [3] and "missing" in dropped["dropped for"][0]
    assert any("**238** rows train the models, **59** are held out" in m.value for m in at.markdown)
    fit = chart(at, "regression", "fit")
    assert fit["layout"]["xaxis"]["title"]["text"] == "temperature_c"
    assert "your data" in fit["layout"]["title"]["text"]
    assert _frame(at, "RMSE").index.tolist() == ["BBB", "Standard"]
    assert not at.error and not at.exception
    assert all(c.data.name != "csv_regression" for c in cache_calls)  # never in the shared cache


def test_choosing_another_input_column_retrains_on_it():
    at = _upload(open_page("regression"), "regression", "sales.csv", REGRESSION)
    first = at.session_state["live_run"]
    at.multiselect(key="regression-upload-inputs").unselect("temperature_c").select("humidity_pct")
    _run(at)
    run = at.session_state["live_run"]
    assert run.cfg.data.source != first.cfg.data.source
    values = torch.cat([run.dataset.x_train[:, 0], run.dataset.x_test[:, 0]])
    assert values.min() >= 30 and values.max() <= 90  # humidity, not temperature


def test_a_bad_choice_of_columns_shows_why_and_keeps_the_run():
    at = _upload(open_page("regression"), "regression", "sales.csv", REGRESSION)
    run = at.session_state["live_run"]
    at.selectbox(key="regression-upload-target").set_value("temperature_c")
    _run(at)
    assert any("cannot be both an input and the target" in e.value for e in at.error)
    assert at.session_state["live_run"] is run


def test_a_classification_upload_maps_labels_and_draws_the_uncertainty(cache_calls):
    at = open_page("classification")
    _upload(at, "classification", "beans.csv", CLASSIFICATION)
    at = run_to_finish(_epochs(at, "classification", 30))
    run = at.session_state["live_run"]
    assert run.cfg.data.name == "csv_classification" and run.dataset.n_classes == 3
    mapping = _frame(at, "label in the file")
    assert mapping["label in the file"].tolist() == ["kidney", "lima", "navy"]
    entropy = chart(at, "classification", "entropy")
    names = [t.get("name") for t in entropy["data"] if t.get("legendgroup", "").startswith("class")]
    assert names[:3] == ["0: kidney", "1: lima", "2: navy"]
    keys = [c.proto.id for c in at.get("plotly_chart")]
    assert not any("classification-probability" in k for k in keys)  # three classes: no P(class 1)
    assert _frame(at, "accuracy").index.tolist() == ["BBB", "Standard"]
    assert at.query_params["data"] == "uploaded" and not at.exception
    assert all(c.data.name != "csv_classification" for c in cache_calls)


def test_two_sessions_never_see_each_others_upload():
    a = _upload(open_page("regression"), "regression", "mine.csv", REGRESSION)
    b = open_page("regression", data="uploaded")  # a link from session a, opened elsewhere
    assert b.session_state["live_run"].cfg.data.name == "blundell"
    assert "regression::upload" not in b.session_state
    assert len(b.warning) == 1 and "never shared" in b.warning[0].value
    assert "csv_regression" not in [o for o in b.selectbox(key="regression:data").options]
    other = REGRESSION.replace(b"temperature_c", b"degrees")
    _upload(b, "regression", "theirs.csv", other)
    run_a, run_b = a.session_state["live_run"], b.session_state["live_run"]
    assert run_a.cfg.data.source != run_b.cfg.data.source
    assert run_a.dataset is not run_b.dataset
    _run(a)
    assert a.session_state["regression::upload"].name == "mine.csv"
    assert a.multiselect(key="regression-upload-inputs").value == ["temperature_c"]
    assert b.multiselect(key="regression-upload-inputs").value == ["degrees"]


def test_removing_the_file_goes_back_to_a_toy_set():
    at = _upload(open_page("regression"), "regression", "sales.csv", REGRESSION)
    assert at.session_state["live_run"].cfg.data.name == "csv_regression"
    _upload(at, "regression", "", None)
    assert at.session_state["live_run"].cfg.data.name == "blundell"
    assert "regression::upload" not in at.session_state
    assert at.query_params["data"] == "blundell" and not at.error


def test_a_hostile_file_shows_an_inert_message_and_trains_nothing_from_it():
    rows = REGRESSION.decode().splitlines()
    rows[5] = "![x](http://127.0.0.1:9/pixel.png),50,:red[boom] <img src=x onerror=alert(1)>"
    at = open_page("regression")
    _upload(at, "regression", "[click](http://127.0.0.1:9/login).csv", "\n".join(rows).encode())
    assert not at.exception and len(at.error) == 1
    text = at.error[0].value
    assert_inert(text, "pixel", "click", "onerror", "boom")
    assert "must hold numbers" in text
    assert at.session_state["live_run"].cfg.data.name == "blundell"


@pytest.mark.parametrize(
    "data, what",
    [(b"PK\x03\x04" + b"\x00" * 64, "spreadsheet"), (b"", "empty"), (b"a\x00b", "NUL bytes")],
)
def test_files_that_are_not_csv_show_a_message(data, what):
    at = _upload(open_page("classification"), "classification", "file.csv", data)
    assert not at.exception and what in at.error[0].value
    assert at.session_state["live_run"].cfg.data.name == "moons"


def test_presets_on_uploaded_data_keep_the_data():
    at = _upload(open_page("regression"), "regression", "sales.csv", REGRESSION)
    options = at.selectbox(key="regression:preset").options
    wanted = [p.name for slug, p in presets_for("regression").items() if slug in ANY_DATA]
    assert options == ["— your own settings —", *wanted] and len(wanted) == 4
    at.selectbox(key="regression:preset").set_value("no-kl")
    _run(at)
    run = at.session_state["live_run"]
    assert run.cfg.data.name == "csv_regression" and run.cfg.train.kl_weight == 0.0
    assert "no KL" in at.info[0].value


def test_exports_of_uploaded_data_neutralise_formulas():
    rows = ["u,v,=cmd|' /C calc'!A0"]
    for k, label in enumerate(['=HYPERLINK("http://127.0.0.1:9")', "@SUM(1)"]):
        rows += [f"{k + 0.1 * i},{i % 3 - k},{label}" for i in range(12)]
    data = tabular.load_csv("\n".join(rows).encode(), "classification", "=cmd|' /C calc'!A0")
    frame = exports.classification_frame(data.dataset, {})
    out = upload.export_frame(frame, data)
    text = out.to_csv(index=False)
    parsed = pd.read_csv(pd.io.common.StringIO(text))
    assert "label [=cmd|' /C calc'!A0]" in parsed.columns
    labels = set(parsed["label_text"].dropna())
    assert labels == {'\'=HYPERLINK("http://127.0.0.1:9")', "'@SUM(1)"}
    for column in parsed.columns:
        assert not str(column).startswith(tabular.FORMULA_START)
        cells = parsed[column].dropna()
        if not pd.api.types.is_numeric_dtype(cells):
            assert not cells.astype(str).str.startswith(tabular.FORMULA_START).any(), column
