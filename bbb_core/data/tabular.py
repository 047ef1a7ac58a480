"""Your own data: a small CSV file read, validated and turned into a `Dataset`.

The file is the one input a stranger fully controls, so every step is bounded and every failure
is a `TabularError` with a one-line message (never a traceback):

- `read_csv(data)`: bytes -> `Table` (column names and raw cells). At most `MAX_BYTES` (10 MB),
  `MAX_ROWS` (100,000) data rows, `MAX_COLUMNS` (1,000) columns and `MAX_CELLS` (1,000,000)
  cells. UTF-8 with or without a byte-order
  mark, else Latin-1; the delimiter (comma, semicolon or tab) is sniffed; the first row is a
  header when some column has a name there and numbers below it. Binary files (NUL bytes,
  spreadsheets, zip, gzip, PDF, images), UTF-16 and empty files are refused by name.
- `make_tabular(table, task, target, inputs, seed)`: the chosen columns -> `TabularData`.
  Regression takes one input column and a numeric target, classification two input columns and a
  class label (2 to `MAX_CLASSES` distinct values; text labels are mapped to 0, 1, ... in sorted
  order and the mapping returned). Rows with an empty or missing cell ("", NA, NaN, null, ?, ...),
  an infinite number or one beyond +-`MAX_ABS` are dropped and counted; any other text in a
  numeric column is an error naming the column, the row and the cell. At least `MIN_ROWS` rows
  remain (classification: `MIN_PER_CLASS` per class); no column is constant.
- A seeded split holds out `TEST_FRACTION` (20 %) of the rows (per class for classification) for
  the test metrics. As for the toy sets, regression inputs stay in their own units (the network
  standardises with the training statistics) on a 400-point grid reaching half the data's span
  beyond it, `in_range` marking the intervals with training data (a hole wider than both an
  eighth of the span and three times the median spacing is out of range); classification inputs
  are standardised with the training mean and std, the grid spans at least [-4, 4]^2, `in_range`
  marks grid points within 0.5 of a training point and `ood["far"]` is a ring of 500 points
  beyond the data.
- `neutralise(cell)`: a text cell that a spreadsheet would run as a formula (it starts with =, +,
  -, @, a tab or a carriage return and is not a number) gets a leading apostrophe; exports of
  uploaded data pass every text cell and column name through it.

Nothing here touches the file system or a cache: the bytes come in, a `Dataset` goes out.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from bbb_core.config import TABULAR_DATASETS
from bbb_core.data.base import Dataset

MAX_BYTES = 10 * 1024 * 1024  # 10 MB
MAX_ROWS = 100_000  # data rows (the header not counted)
MAX_COLUMNS = 1_000
MAX_CELLS = 1_000_000  # rows x columns: what one session keeps in memory (e.g. 100,000 x 10)
MAX_NAME = 40  # characters of a column name kept (longer ones are cut, marked with "…")
MAX_SHOWN = 40  # characters of a cell or name repeated in a message
MIN_ROWS = 10  # usable rows in all
MIN_PER_CLASS = 10  # usable rows per class
MAX_CLASSES = 10
MAX_ABS = 1e15  # larger numbers are dropped: their float32 statistics would overflow
TEST_FRACTION = 0.2
DELIMITERS = (",", ";", "\t")
MISSING = frozenset({"", "na", "n/a", "nan", "null", "none", "?", "-", "--", "missing", "#n/a"})
INFINITE = frozenset({"inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"})
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

GRID_POINTS = 400  # regression grid
GRID_MARGIN = 0.5  # regression: the grid reaches this share of the data's span beyond it
AXIS_LIMIT = 4.0  # classification: the grid spans at least [-4, 4]^2 (standardised units)
AXIS_POINTS = 60
IN_RANGE_RADIUS = 0.5
N_OOD = 500

TASK_INPUTS = {"regression": 1, "classification": 2}  # input columns per task

_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_DECIMAL_COMMA = re.compile(r"[+-]?[0-9]+,[0-9]+")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_MAGIC = (  # leading bytes -> what the file is
    (b"PK\x03\x04", "a spreadsheet (.xlsx, .ods) or a zip archive"),
    (b"PK\x05\x06", "an empty zip archive"),
    (b"\xd0\xcf\x11\xe0", "an Excel 97-2003 workbook (.xls)"),
    (b"\x1f\x8b", "a gzip-compressed file"),
    (b"%PDF", "a PDF document"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
)


def shown(text: str, limit: int = MAX_SHOWN) -> str:
    """`text` as a message repeats it: its Python repr (control characters escaped), cut."""
    out = repr(text[: limit + 1])
    return out if len(text) <= limit and len(out) <= limit + 2 else out[: limit + 1] + "…"


class TabularError(ValueError):
    """A file or a choice of columns that cannot become a dataset.

    `template` is our sentence with `{}` where text from the file goes (`values`): `str(err)`
    shows each value through `shown`, `err.markdown(quote)` through `quote` (the app passes a
    function that makes text inert Markdown), so a cell never becomes markup.
    """

    def __init__(self, template: str, *values: str) -> None:
        self.template, self.values = template, tuple(str(v) for v in values)
        super().__init__(self.template.format(*(shown(v) for v in self.values)))

    def markdown(self, quote: Callable[[str], str]) -> str:
        return self.template.format(*(quote(v) for v in self.values))


# --- bytes -> Table -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Table:
    """A CSV file's cells as text, by column."""

    columns: tuple[str, ...]  # unique, printable, at most MAX_NAME characters
    cells: tuple[tuple[str, ...], ...]  # cells[j][i]: column j of data row i (stripped)
    encoding: str  # "UTF-8", "UTF-8 with BOM" or "Latin-1"
    delimiter: str  # ",", ";" or "\t"
    header: bool  # whether the first row named the columns
    ragged: int  # rows dropped for having another number of cells than the header
    digest: str  # SHA-256 of the file's bytes

    @property
    def n_rows(self) -> int:
        return len(self.cells[0]) if self.cells else 0

    def column(self, name: str) -> tuple[str, ...]:
        if name not in self.columns:
            raise TabularError("there is no column {}", name)
        return self.cells[self.columns.index(name)]

    def rows(self, limit: int) -> list[tuple[str, ...]]:
        """The first `limit` data rows."""
        return [tuple(col[i] for col in self.cells) for i in range(min(limit, self.n_rows))]


def _kind(data: bytes) -> str | None:
    for magic, what in _MAGIC:
        if data.startswith(magic):
            return what
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return "UTF-16 text (save it as UTF-8)"
    if b"\x00" in data:
        return "a binary file (it holds NUL bytes)"
    return None


def _decode(data: bytes) -> tuple[str, str]:
    if data.startswith(b"\xef\xbb\xbf"):
        data, bom = data[3:], True
    else:
        bom = False
    try:
        text, encoding = data.decode("utf-8"), "UTF-8 with BOM" if bom else "UTF-8"
    except UnicodeDecodeError:
        text, encoding = data.decode("latin-1"), "Latin-1"
    return text, encoding


def _sniff(lines: list[str]) -> str:
    """The delimiter that splits the sample lines into the same number (> 1) of cells most often."""
    best, score = None, (0, 0)
    for delimiter in DELIMITERS:
        counts = Counter(len(row) for row in csv.reader(lines, delimiter=delimiter))
        width, agree = counts.most_common(1)[0]
        if width > 1 and (agree, width) > score:
            best, score = delimiter, (agree, width)
    if best is None:
        raise TabularError(
            "found only one column: write the columns separated by commas, semicolons or tabs"
        )
    return best


def _clean_name(name: str, index: int) -> str:
    name = " ".join(_CONTROL.sub(" ", name).split())
    if not name:
        return f"column {index + 1}"
    return name if len(name) <= MAX_NAME else name[: MAX_NAME - 1] + "…"


def _unique(names: Sequence[str]) -> tuple[str, ...]:
    out: list[str] = []
    for name in names:
        candidate, k = name, 2
        while candidate in out:
            candidate, k = f"{name} ({k})", k + 1
        out.append(candidate)
    return tuple(out)


def _looks_numeric(cell: str) -> bool:
    return _cell_value(cell, decimal_comma=True)[1] != "text"


def _is_header(first: Sequence[str], rest: Sequence[Sequence[str]]) -> bool:
    """Some column has text in the first row and numbers below it (a lone row: any text)."""
    if not rest:
        return not all(map(_looks_numeric, first))
    for j, cell in enumerate(first):
        below = [row[j] for row in rest[:20] if j < len(row)]
        if not _looks_numeric(cell) and below and sum(map(_looks_numeric, below)) > len(below) / 2:
            return True
    return False


def read_csv(data: bytes, header: bool | None = None) -> Table:
    """Read a CSV file's bytes into a `Table` (see the module docstring for the rules).

    Args:
        data: the file's bytes.
        header: whether the first row holds column names; None guesses.

    Raises:
        TabularError: the file is too large, not text, empty or has no columns to use.
    """
    if len(data) > MAX_BYTES:
        raise TabularError(
            f"the file is {len(data) / 2**20:.1f} MB; the limit is {MAX_BYTES // 2**20} MB"
        )
    if not data.strip():
        raise TabularError("the file is empty")
    what = _kind(data)
    if what is not None:
        raise TabularError(f"this is not a CSV text file but {what}: export the data as CSV")
    text, encoding = _decode(data)
    controls = len(_CONTROL.findall(text))
    if controls > max(10, len(text) // 100):
        raise TabularError(f"this is not a CSV text file: it holds {controls:,} control characters")
    lines = text.splitlines()
    sample = [line for line in lines[:60] if line.strip()]
    if not sample:
        raise TabularError("the file is empty")
    delimiter = _sniff(sample)
    longest = max(line.count(delimiter) for line in lines)
    if longest + 1 > MAX_COLUMNS:
        raise TabularError(
            f"a row has more than {MAX_COLUMNS:,} cells; the limit is {MAX_COLUMNS:,}"
        )
    rows: list[list[str]] = []
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue  # blank lines
            rows.append([cell.strip() for cell in row])
            if len(rows) > MAX_ROWS + 1:
                raise TabularError(f"the file has more than {MAX_ROWS:,} rows; the limit is that")
    except csv.Error as err:
        raise TabularError(f"the file is not valid CSV (line {reader.line_num}: {err})") from None
    if header is None:
        header = _is_header(rows[0], rows[1:])
    if header:
        first, body = rows[0], rows[1:]
        names = [_clean_name(name, j) for j, name in enumerate(first)]
    else:
        body = rows
        names = [f"column {j + 1}" for j in range(len(rows[0]))]
    if len(body) > MAX_ROWS:
        raise TabularError(f"the file has more than {MAX_ROWS:,} rows; the limit is that")
    if not body:
        raise TabularError("the file has a header but no data rows")
    width = len(names)
    if width < 2:
        raise TabularError("found only one column: a dataset needs inputs and a target")
    if width * len(body) > MAX_CELLS:
        raise TabularError(
            f"the file has {width * len(body):,} cells ({len(body):,} rows of {width} columns); "
            f"the limit is {MAX_CELLS:,}: keep only the columns you need"
        )
    kept = [row for row in body if len(row) == width]
    if not kept:
        raise TabularError(f"no row has the {width} cells of the first row")
    cells = tuple(tuple(row[j] for row in kept) for j in range(width))
    digest = hashlib.sha256(data).hexdigest()
    return Table(_unique(names), cells, encoding, delimiter, header, len(body) - len(kept), digest)


# --- cells -> numbers -----------------------------------------------------------------------------


def _cell_value(cell: str, decimal_comma: bool) -> tuple[float, str]:
    """(value, kind) with kind "number", "missing", "infinite", "large" or "text"."""
    low = cell.strip().lower()
    if low in MISSING:
        return math.nan, "missing"
    if low in INFINITE:
        return math.nan, "infinite"
    if decimal_comma and _DECIMAL_COMMA.fullmatch(low):
        low = low.replace(",", ".")
    if not _NUMBER.fullmatch(low):
        return math.nan, "text"
    value = float(low)
    if not math.isfinite(value):
        return math.nan, "infinite"  # 1e400
    if abs(value) > MAX_ABS:
        return math.nan, "large"
    return value, "number"


DROP_REASONS = {  # kind -> what the preview says about the dropped rows
    "missing": "an empty or missing cell (empty, NA, NaN, null, ?)",
    "infinite": "an infinite number",
    "large": f"a number beyond ±{MAX_ABS:.0e}",
}


def _numbers(table: Table, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Column `name` as float64 and the kind of each cell; text cells raise TabularError."""
    comma = table.delimiter != ","
    values, kinds = zip(*(_cell_value(c, comma) for c in table.column(name)), strict=True)
    kinds_a = np.array(kinds)
    text = np.flatnonzero(kinds_a == "text")
    if text.size:
        i = int(text[0])
        first = i + 1 + table.header  # the line in the file, counting the header (ragged not)
        raise TabularError(
            f"column {{}} must hold numbers, but {text.size:,} of its cells do not; the first is "
            f"{{}} in data row {i + 1} (about line {first})",
            name,
            table.column(name)[i],
        )
    return np.array(values, dtype=np.float64), kinds_a


# --- Table -> Dataset -----------------------------------------------------------------------------


@dataclass
class TabularData:
    """A dataset made from chosen columns of a `Table`, and what the preview tells about it."""

    dataset: Dataset
    task: str
    inputs: tuple[str, ...]
    target: str
    n_rows: int  # data rows in the file (ragged rows included)
    dropped: dict[str, int]  # reason -> rows dropped for it
    labels: tuple[str, ...] = ()  # classification: the file's label of class 0, 1, ...
    source: str = ""  # identifies file, columns, task and split (DataConfig.source)
    notes: list[str] = field(default_factory=list)  # plain remarks (e.g. numeric labels)

    @property
    def n_train(self) -> int:
        return self.dataset.n_train

    @property
    def n_test(self) -> int:
        return int(self.dataset.x_test.shape[0])

    @property
    def noise_start(self) -> float:
        """Regression: a starting noise std in the target's units, a tenth of its training std
        (two significant digits, within [1e-3, 100]), so a learned noise need not travel far."""
        std = float(self.dataset.y_train.double().std())
        return min(100.0, max(1e-3, float(f"{0.1 * std:.2g}")))


def default_columns(table: Table, task: str) -> tuple[tuple[str, ...], str]:
    """A first guess of (inputs, target): the last column is the target, the first numeric columns
    before it the inputs."""
    target = table.columns[-1]
    numeric = [
        name
        for name in table.columns[:-1]
        if sum(map(_looks_numeric, table.column(name)[:50])) > min(50, table.n_rows) / 2
    ]
    others = numeric or list(table.columns[:-1])
    return tuple(others[: TASK_INPUTS[task]]), target


def guess_task(table: Table, target: str, inputs: Sequence[str] | None = None) -> str:
    """The task when none is named: from the number of input columns, else classification when
    the target holds text or at most MAX_CLASSES distinct values, else regression."""
    if inputs is not None and len(inputs) in (1, 2):
        return "regression" if len(inputs) == 1 else "classification"
    comma = table.delimiter != ","
    values = {_cell_value(c, comma) for c in table.column(target)}
    if any(kind == "text" for _, kind in values):
        return "classification"
    distinct = {v for v, kind in values if kind == "number"}
    return "classification" if len(distinct) <= MAX_CLASSES else "regression"


def source_id(table: Table, task: str, inputs: Sequence[str], target: str, fraction: float) -> str:
    """A short id of the data a run trains on: the file's digest and the choices made."""
    text = "\x1f".join([table.digest, task, target, *inputs, repr(fraction)])
    return "csv:" + hashlib.sha256(text.encode()).hexdigest()[:16]


def _labels(cells: Sequence[str]) -> tuple[np.ndarray, tuple[str, ...]]:
    """Class indices and the label text of each class: numeric labels in numeric order, others in
    text order."""
    distinct = sorted(set(cells))
    numeric = all(_cell_value(c, False)[1] == "number" for c in distinct)
    if numeric:  # "1", "1.0" and "01" are one class
        by_value: dict[float, str] = {}
        for c in distinct:
            by_value.setdefault(_cell_value(c, False)[0], c)
        order = sorted(by_value)
        index = {c: order.index(_cell_value(c, False)[0]) for c in distinct}
        names = tuple(by_value[v] for v in order)
    else:
        index = {c: k for k, c in enumerate(distinct)}
        names = tuple(distinct)
    return np.array([index[c] for c in cells], dtype=np.int64), names


def _split(rng: np.random.Generator, groups: np.ndarray, fraction: float) -> np.ndarray:
    """A boolean test mask: `fraction` of each group's rows (at least one), chosen at random."""
    test = np.zeros(len(groups), dtype=bool)
    for g in np.unique(groups):
        rows = np.flatnonzero(groups == g)
        k = max(1, round(fraction * len(rows)))
        test[rng.choice(rows, size=k, replace=False)] = True
    return test


def _f32(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))


def _check_constant(name: str, values: np.ndarray) -> None:
    v32 = values.astype(np.float32)
    if v32.size == 0 or float(v32.max()) == float(v32.min()):
        raise TabularError(
            "column {} is constant in the training rows: it tells the model nothing", name
        )


def _train_range(x: np.ndarray) -> list[tuple[float, float]]:
    """Intervals of x with training data: split where the spacing exceeds both an eighth of the
    span and three times the median spacing."""
    xs = np.sort(x)
    gaps = np.diff(xs)
    hole = max((xs[-1] - xs[0]) / 8, 3 * float(np.median(gaps)))
    intervals, start = [], xs[0]
    for k in np.flatnonzero(gaps > hole):
        intervals.append((float(start), float(xs[k])))
        start = xs[k + 1]
    intervals.append((float(start), float(xs[-1])))
    return intervals


def _regression(name: str, x: np.ndarray, y: np.ndarray, test: np.ndarray) -> Dataset:
    x_train, y_train = x[~test], y[~test]
    ranges = _train_range(x_train)
    low, high = float(x_train.min()), float(x_train.max())
    margin = GRID_MARGIN * (high - low)
    grid = np.linspace(low - margin, high + margin, GRID_POINTS).astype(np.float32)
    in_range = np.zeros(GRID_POINTS, dtype=bool)
    for a, b in ranges:
        in_range |= (grid >= np.float32(a)) & (grid <= np.float32(b))
    return Dataset(
        name=name,
        task="regression",
        x_train=_f32(x_train.reshape(-1, 1)),  # (N, 1), in the file's units
        y_train=_f32(y_train),  # (N,)
        x_test=_f32(x[test].reshape(-1, 1)),
        y_test=_f32(y[test]),
        x_grid=torch.from_numpy(grid.reshape(-1, 1)),  # (G, 1)
        in_range=torch.from_numpy(in_range),  # (G,)
        n_classes=1,
        train_range=ranges,
    )


def _near(grid: torch.Tensor, points: torch.Tensor, radius: float) -> torch.Tensor:
    """(G,) True where a grid point lies within `radius` of one of `points` (in chunks)."""
    near = torch.zeros(grid.shape[0], dtype=torch.bool)
    for chunk in points.split(4096):
        near |= torch.cdist(grid, chunk).min(dim=1).values < radius
    return near


def _classification(
    name: str, x: np.ndarray, y: np.ndarray, n_classes: int, test: np.ndarray, rng
) -> Dataset:
    x_train = x[~test]
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)  # training statistics only
    z_train, z_test = (x_train - mean) / std, (x[test] - mean) / std
    reach = float(np.quantile(np.linalg.norm(z_train, axis=1), 0.99))
    inner = max(3.0, reach + 1.0)  # the far ring lies beyond 99 % of the training points
    limit = max(AXIS_LIMIT, inner + 1.0)
    axis = torch.linspace(-limit, limit, AXIS_POINTS)
    xs, ys = axis, axis.clone()
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    x_grid = torch.stack([gx, gy], dim=-1).reshape(-1, 2)  # row-major over (y, x), as toy sets
    r = np.sqrt(rng.uniform(inner**2, (inner + 1.0) ** 2, N_OOD))
    theta = rng.uniform(0.0, 2 * math.pi, N_OOD)
    ring = np.stack([r * np.cos(theta), r * np.sin(theta)], axis=1)
    z_train_t = _f32(z_train)
    return Dataset(
        name=name,
        task="classification",
        x_train=z_train_t,  # (N, 2), standardised
        y_train=torch.from_numpy(y[~test]),  # (N,)
        x_test=_f32(z_test),
        y_test=torch.from_numpy(y[test]),
        x_grid=x_grid,  # (AXIS_POINTS**2, 2)
        in_range=_near(x_grid, z_train_t, IN_RANGE_RADIUS),
        grid_axes=(xs, ys),
        n_classes=n_classes,
        ood={"far": _f32(ring)},  # (N_OOD, 2)
    )


def make_tabular(
    table: Table,
    task: str,
    target: str,
    inputs: Sequence[str] | None = None,
    seed: int = 0,
    test_fraction: float = TEST_FRACTION,
) -> TabularData:
    """The `Dataset` of `table`'s columns `inputs` -> `target` (see the module docstring).

    Args:
        table: from `read_csv`.
        task: "regression" (one input column) or "classification" (two).
        target: the target (regression) or class label (classification) column.
        inputs: the input columns; None takes the only ones there are besides `target`.
        seed: seeds the split into training and test rows and the far ring.
        test_fraction: the share of rows held out for the test metrics, in (0, 0.5].

    Raises:
        TabularError: a choice of columns or a column's content that cannot be used.
    """
    if task not in TASK_INPUTS:
        raise TabularError("task must be regression or classification; got {}", task)
    if not 0 < test_fraction <= 0.5:
        raise TabularError(f"the test fraction must be in (0, 0.5]; got {test_fraction:g}")
    want = TASK_INPUTS[task]
    words = "one input column" if want == 1 else "two input columns"
    table.column(target)
    if inputs is None:
        others = [c for c in table.columns if c != target]
        if len(others) != want:
            raise TabularError(
                f"{task} takes {words}; choose them among the {len(others)} other columns"
            )
        inputs = others
    inputs = tuple(inputs)
    if len(inputs) != want or len(set(inputs)) != want:
        raise TabularError(
            f"{task} takes {words} (two different ones)" if want == 2 else f"{task} takes {words}"
        )
    if target in inputs:
        raise TabularError("column {} cannot be both an input and the target", target)
    columns = [_numbers(table, name) for name in inputs]
    kinds = np.stack([k for _, k in columns], axis=1)
    if task == "regression":
        y, y_kind = _numbers(table, target)
        kinds = np.concatenate([kinds, y_kind[:, None]], axis=1)
    else:
        label_cells = np.array(table.column(target), dtype=object)
        missing = np.array([c.strip().lower() in MISSING for c in label_cells])
        kinds = np.concatenate([kinds, np.where(missing, "missing", "number")[:, None]], axis=1)
    dropped: dict[str, int] = {}
    if table.ragged:
        dropped["another number of cells than the header row"] = table.ragged
    bad = np.zeros(len(kinds), dtype=bool)
    for kind, reason in DROP_REASONS.items():
        rows = (kinds == kind).any(axis=1) & ~bad
        if rows.any():
            dropped[reason] = int(rows.sum())
        bad |= rows
    keep = ~bad
    x = np.stack([v for v, _ in columns], axis=1)[keep]
    if keep.sum() < MIN_ROWS:
        raise TabularError(
            f"only {int(keep.sum())} usable rows; at least {MIN_ROWS} are needed"
            + (f" ({sum(dropped.values()):,} dropped)" if dropped else "")
        )
    rng_split, rng_ood = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    kind = TABULAR_DATASETS[task]
    result = dict(task=task, inputs=inputs, target=target, n_rows=table.n_rows + table.ragged)
    source = source_id(table, task, inputs, target, test_fraction)
    if task == "regression":
        y = y[keep]
        test = _split(rng_split, np.zeros(len(y)), test_fraction)
        _check_constant(inputs[0], x[~test, 0])
        _check_constant(target, y[~test])
        dataset = _regression(kind, x[:, 0], y, test)
        return TabularData(dataset, dropped=dropped, source=source, **result)
    labels, names = _labels([c for c, k in zip(label_cells, keep, strict=True) if k])
    if len(names) < 2:
        raise TabularError(
            f"column {{}} holds one class only; classification needs 2 to {MAX_CLASSES}", target
        )
    if len(names) > MAX_CLASSES:
        raise TabularError(
            f"column {{}} holds {len(names):,} distinct values; classification takes 2 to "
            f"{MAX_CLASSES} classes (is it a regression target?)",
            target,
        )
    counts = np.bincount(labels, minlength=len(names))
    if counts.min() < MIN_PER_CLASS:
        small = int(counts.argmin())
        raise TabularError(
            f"class {{}} has {int(counts.min())} rows; every class needs at least {MIN_PER_CLASS}",
            names[small],
        )
    test = _split(rng_split, labels, test_fraction)
    for j, name in enumerate(inputs):
        _check_constant(name, x[~test, j])
    dataset = _classification(kind, x, labels, len(names), test, rng_ood)
    return TabularData(dataset, dropped=dropped, labels=names, source=source, **result)


def load_csv(
    data: bytes,
    task: str,
    target: str,
    inputs: Sequence[str] | None = None,
    seed: int = 0,
    test_fraction: float = TEST_FRACTION,
) -> TabularData:
    """`read_csv` then `make_tabular`."""
    return make_tabular(read_csv(data), task, target, inputs, seed, test_fraction)


# --- exports --------------------------------------------------------------------------------------


def neutralise(cell):
    """A text cell a spreadsheet would run as a formula, with a leading apostrophe (OWASP's CSV
    injection advice); numbers and other cells as they are."""
    if isinstance(cell, str) and cell.startswith(FORMULA_START):
        if _cell_value(cell, False)[1] in ("number", "infinite"):
            return cell  # "-1.5", "+2": a number, not a formula
        return "'" + cell
    return cell
