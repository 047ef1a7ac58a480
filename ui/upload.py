"""Your own data on a live page: the CSV uploader, the column pickers, the preview, and the
session's private copy of the data.

The file is read and checked by `bbb_core.data.tabular` (the rules and bounds are in its
docstring). What is uploaded stays in the session that uploaded it: the parsed table and the
choices live in `st.session_state` (`Upload`, one per page), the dataset is built from them for
the session's own run (`dataset_fn`), and nothing of it goes to disk, to `st.cache_data` /
`st.cache_resource`, or into the URL (which says `data=uploaded`; see `ui.params`).

- `panel(page, task)`: the uploader, the pickers and the preview, in an expander above the charts.
  The uploader's and the pickers' callbacks parse and check the file and switch the page's
  dataset to the upload (or back to the page's first toy set when the file goes).
- `prepare(page, task, cfg)`: the config of a run on the uploaded data (its `data.source` names
  file, columns and split; `data.n_train` the training rows) and the function that makes its
  dataset; (None, None) while the upload cannot train.
- `export_frame(frame, data)`: a plotted-data table of uploaded data as it is downloaded: the
  file's column names and labels, every text cell safe to open in a spreadsheet.
- `plot_text(text)`: a column name or label as plotly may show it (no markup).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import pandas as pd
import streamlit as st

from bbb_core import Dataset, RunConfig
from bbb_core.config import TABULAR_DATASETS
from bbb_core.data import tabular
from bbb_core.data.tabular import Table, TabularData, TabularError

from . import widgets
from .params import echo

PREVIEW_ROWS = 5
MAX_UPLOAD_MB = tabular.MAX_BYTES // 2**20  # 10
DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab"}
_PLOT_SAFE = re.compile(r"[^A-Za-z0-9 _.,()%/-]")


@dataclass
class Upload:
    """A page's uploaded file and the choices made on it (in session state only)."""

    name: str  # the file's name as the browser sent it (shown through `echo` only)
    table: Table | None  # None when the file could not be read
    inputs: tuple[str, ...] = ()
    target: str = ""
    error: TabularError | None = None  # why the file or the columns cannot train
    data: TabularData | None = None  # built for the chosen columns with the seed `seed`
    seed: int = 0  # the seed `data` was built with (another seed rebuilds it)

    @property
    def ready(self) -> bool:
        return self.error is None and self.data is not None


def _key(page: str) -> str:
    return f"{page}::upload"


def _widget(page: str, name: str) -> str:
    return f"{page}-upload-{name}"


def current(page: str) -> Upload | None:
    """The upload this visitor made on the page, if any."""
    return st.session_state.get(_key(page))


def _seed(page: str) -> int:
    return int(st.session_state.get(f"{page}:seed", 0) or 0)


def _check(upload: Upload, task: str, seed: int) -> None:
    """Build the data for the chosen columns; keep the error when it cannot."""
    upload.error, upload.data, upload.seed = None, None, seed
    try:
        upload.data = tabular.make_tabular(
            upload.table, task, upload.target, upload.inputs, seed=seed
        )
    except TabularError as err:
        upload.error = err


def _choose(page: str, task: str, upload: Upload) -> None:
    """Switch the page to the upload, a regression's noise std starting at the data's scale."""
    start = {"noise_std": upload.data.noise_start} if task == "regression" else {}
    widgets.choose_dataset(page, TABULAR_DATASETS[task], **start)


def _on_upload(page: str, task: str, first_dataset: str) -> None:
    """A file arrived or went: read it, pick default columns, switch the page's dataset."""
    file = st.session_state.get(_widget(page, "file"))
    data_name = TABULAR_DATASETS[task]
    if file is None:
        st.session_state.pop(_key(page), None)
        store = st.session_state.get(f"{page}::values", {})
        if store.get("data") == data_name:
            widgets.choose_dataset(page, first_dataset)
        return
    upload = Upload(name=str(file.name), table=None)
    try:
        upload.table = tabular.read_csv(file.getvalue())
    except TabularError as err:
        upload.error = err
    if upload.table is not None:
        upload.inputs, upload.target = tabular.default_columns(upload.table, task)
        _check(upload, task, _seed(page))
        for name in ("target", "inputs"):  # the pickers show the new file's defaults
            st.session_state.pop(_widget(page, name), None)
    st.session_state[_key(page)] = upload
    if upload.ready:
        _choose(page, task, upload)
    elif st.session_state.get(f"{page}::values", {}).get("data") == data_name:
        widgets.choose_dataset(page, first_dataset)


def _on_columns(page: str, task: str) -> None:
    upload = current(page)
    if upload is None or upload.table is None:
        return
    upload.target = st.session_state[_widget(page, "target")]
    upload.inputs = tuple(st.session_state[_widget(page, "inputs")])
    _check(upload, task, _seed(page))
    if upload.ready:
        _choose(page, task, upload)


def _pickers(page: str, task: str, upload: Upload) -> None:
    table = upload.table
    want = tabular.TASK_INPUTS[task]
    left, right = st.columns(2)
    st.session_state.setdefault(_widget(page, "target"), upload.target)
    st.session_state.setdefault(_widget(page, "inputs"), list(upload.inputs))
    label = "Target column" if task == "regression" else "Class label column"
    left.selectbox(
        label, table.columns, key=_widget(page, "target"), on_change=_on_columns, args=(page, task)
    )
    right.multiselect(
        "Input column" if want == 1 else "Input columns (two)",
        table.columns,
        max_selections=want,
        key=_widget(page, "inputs"),
        on_change=_on_columns,
        args=(page, task),
    )


def _cut(cell: str, limit: int = 60) -> str:
    return cell if len(cell) <= limit else cell[: limit - 1] + "…"


def _preview(page: str, upload: Upload) -> None:
    """The first rows as read; then what trains, what was dropped and the class labels."""
    table = upload.table
    left, right = st.columns([3, 2])
    header = "first row as column names" if table.header else "no header row"
    left.caption(
        f"{table.n_rows:,} rows · {len(table.columns)} columns · {table.encoding} · "
        f"{DELIMITER_NAMES[table.delimiter]}-separated · {header}. The first rows:"
    )
    rows = [[_cut(cell) for cell in row] for row in table.rows(PREVIEW_ROWS)]
    frame = pd.DataFrame(rows, columns=list(table.columns))
    left.dataframe(frame, hide_index=True, key=_widget(page, "preview"))
    data = upload.data
    if data is None:
        return
    with right:
        dropped = sum(data.dropped.values())
        st.markdown(
            f"**{data.n_train:,}** rows train the models, **{data.n_test:,}** are held out for "
            f"the test metrics ({tabular.TEST_FRACTION:.0%}, chosen by the seed); "
            f"**{dropped:,}** dropped."
        )
        if data.dropped:
            frame = pd.DataFrame(
                {"dropped for": list(data.dropped), "rows": [*data.dropped.values()]}
            )
            st.dataframe(frame, hide_index=True, key=_widget(page, "dropped"))
        if data.labels:
            mapping = pd.DataFrame({"label in the file": [_cut(label) for label in data.labels]})
            mapping.index.name = "class"
            st.dataframe(mapping, key=_widget(page, "labels"))


def panel(page: str, task: str, datasets: Sequence[str]) -> tuple[str, ...]:
    """The uploader, the column pickers and the preview; returns the datasets the page offers
    (`datasets`, and the upload once its file could be read)."""
    upload = current(page)
    with st.expander("Your own data: upload a CSV file", expanded=upload is not None):
        st.file_uploader(
            f"A CSV file of at most {MAX_UPLOAD_MB} MB and {tabular.MAX_ROWS:,} rows: "
            + (
                "one input column and a numeric target."
                if task == "regression"
                else "two input columns and a class label (2 to 10 classes)."
            ),
            type="csv",
            max_upload_size=MAX_UPLOAD_MB,
            key=_widget(page, "file"),
            on_change=_on_upload,
            args=(page, task, datasets[0]),
            help="The file stays in this browser tab's session: it is not saved, not shared "
            "with other visitors and not put in the link.",
        )
        if upload is not None:
            if upload.table is not None:
                _pickers(page, task, upload)
            if upload.error is not None:
                st.error(
                    f"{echo(upload.name)}: {upload.error.markdown(echo)}.",
                    icon=":material/error:",
                )
            if upload.table is not None:
                _preview(page, upload)
    if upload is not None and upload.table is not None:  # offered while its columns are fixed
        return (*datasets, TABULAR_DATASETS[task])
    return tuple(datasets)


def prepare(
    page: str, task: str, cfg: RunConfig | None
) -> tuple[RunConfig | None, Callable[[RunConfig], Dataset] | None]:
    """The run's config on the uploaded data and its dataset function; `cfg` unchanged (and no
    function) for a toy set; (None, None) when the upload cannot train."""
    if cfg is None or cfg.data.name != TABULAR_DATASETS[task]:
        return cfg, None
    upload = current(page)
    if upload is None or not upload.ready:
        return None, None
    data = upload.data
    cfg = replace(cfg, data=replace(cfg.data, source=data.source, n_train=data.n_train))

    def dataset_fn(run_cfg: RunConfig) -> Dataset:
        if upload.data is None or upload.data.source != run_cfg.data.source:
            raise ValueError("the uploaded data changed: choose its columns again")
        if upload.seed == run_cfg.seed:  # built for these columns and this seed already
            return upload.data.dataset
        try:
            built = tabular.make_tabular(
                upload.table, task, upload.target, upload.inputs, seed=run_cfg.seed
            )
        except TabularError as err:
            raise ValueError(f"the uploaded data: {err.markdown(echo)}") from None
        upload.data, upload.seed = built, run_cfg.seed
        return built.dataset

    return cfg, dataset_fn


def data_of(page: str, run) -> TabularData | None:
    """The uploaded data `run` (a `live.LiveRun`) trains on, or None for a toy set."""
    upload = current(page)
    source = run.cfg.data.source
    if source is None or upload is None or upload.data is None or upload.data.source != source:
        return None
    return upload.data


CLASS_PALETTE = (  # up to 10 classes; the first two as the toy sets' (plots.CLASS_COLORS)
    "#B2182B", "#2166AC", "#1B9E77", "#D95F02", "#7570B3",
    "#E7298A", "#66A61E", "#E6AB02", "#A6761D", "#666666",
)  # fmt: skip


def label_classes(fig, data: TabularData) -> None:
    """Name the classes' marker traces of a classification figure by the file's labels (made
    plain by `plot_text`) and give each class its own colour."""
    for trace in fig.data:
        group = getattr(trace, "legendgroup", None) or ""
        if group.startswith("class ") and group[6:].isdigit():
            c = int(group[6:])
            label = data.labels[c] if c < len(data.labels) else str(c)
            trace.name = f"{c}: {plot_text(label)}"
            trace.marker.color = CLASS_PALETTE[c % len(CLASS_PALETTE)]


def plot_text(text: str, limit: int = tabular.MAX_NAME) -> str:
    """`text` with only letters, digits, spaces and _ . , ( ) % / -: no markup plotly reads."""
    return _PLOT_SAFE.sub("?", text)[:limit]


def export_frame(frame: pd.DataFrame, data: TabularData) -> pd.DataFrame:
    """The plotted data of uploaded data as downloaded: our columns ("x", "y" or "x1", "x2",
    "label") named with the file's columns ("x [temperature]"), the file's label text beside the
    class index, and every text cell neutralised for spreadsheets (`tabular.neutralise`)."""
    frame = frame.copy()
    ours = ("x",) if data.task == "regression" else ("x1", "x2")
    names = dict(zip(ours, data.inputs, strict=True))
    names["y" if data.task == "regression" else "label"] = data.target
    if data.labels and "label" in frame:
        labels = dict(enumerate(data.labels))
        frame["label_text"] = frame["label"].map(lambda v: labels.get(v) if pd.notna(v) else v)
    frame = frame.rename(columns={k: f"{k} [{v}]" for k, v in names.items()})
    frame.columns = [tabular.neutralise(str(c)) for c in frame.columns]
    for column in frame.columns:
        if not pd.api.types.is_numeric_dtype(frame[column]):  # text (object or str dtype)
            frame[column] = frame[column].map(tabular.neutralise)
    return frame
