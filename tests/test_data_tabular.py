"""bbb_core.data.tabular: every rule of reading a CSV file has a hostile file here, and the datasets
it makes have the fields the toy sets have (grid, in-range mask, split, standardisation, far ring).
"""

from __future__ import annotations

import gzip
import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from bbb_core import Trainer, default_config
from bbb_core.config import TABULAR_DATASETS
from bbb_core.data import make_dataset, tabular
from bbb_core.data.tabular import TabularError, load_csv, make_tabular, neutralise, read_csv

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _csv(rows, header=("x", "y"), sep=",") -> bytes:
    lines = [sep.join(header)] if header else []
    lines += [sep.join(str(c) for c in row) for row in rows]
    return ("\n".join(lines) + "\n").encode()


def _line(n=30, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2, 2, n)
    return [(f"{a:.4f}", f"{2 * a + 1 + 0.1 * rng.normal():.4f}") for a in x]


def _blobs(n_per=20, classes=("a", "b"), seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for k, label in enumerate(classes):
        for _ in range(n_per):
            rows.append((f"{k + rng.normal():.3f}", f"{-k + rng.normal():.3f}", label))
    return rows


def _fails(data: bytes, match: str, **kw) -> TabularError:
    with pytest.raises(TabularError, match=match) as info:
        if kw:
            load_csv(data, **kw)
        else:
            read_csv(data)
    assert "\n" not in str(info.value)
    return info.value


# --- what the file is ----------------------------------------------------------------------------


def test_the_example_files_read_and_make_datasets():
    reg = load_csv(
        (EXAMPLES / "regression.csv").read_bytes(), "regression", "sales", ["temperature_c"]
    )
    assert reg.dropped == {tabular.DROP_REASONS["missing"]: 3} and reg.n_rows == 300
    assert reg.n_train + reg.n_test == 297 and reg.n_test == round(0.2 * 297)
    cls = load_csv((EXAMPLES / "classification.csv").read_bytes(), "classification", "bean")
    assert cls.labels == ("kidney", "lima", "navy") and cls.dataset.n_classes == 3


def test_a_file_over_10_mb_is_refused_before_it_is_read():
    data = b"x,y\n" + b"1,2\n" * (tabular.MAX_BYTES // 4 + 1)
    _fails(data, r"MB; the limit is 10 MB")


def test_more_than_100000_rows_is_refused():
    data = b"x,y\n" + b"1,2\n" * (tabular.MAX_ROWS + 1)
    assert len(data) < tabular.MAX_BYTES
    _fails(data, r"more than 100,000 rows")
    read_csv(b"x,y\n" + b"1,2\n" * tabular.MAX_ROWS)  # exactly the limit is fine


def test_more_than_a_million_cells_is_refused():
    header = ",".join(f"c{j}" for j in range(20)).encode()
    data = header + b"\n" + (b"1," * 19 + b"1\n") * 50_001
    _fails(data, r"1,000,020 cells \(50,001 rows of 20 columns\); the limit is 1,000,000")
    read_csv(header + b"\n" + (b"1," * 19 + b"1\n") * 50_000)


def test_a_row_with_too_many_cells_is_refused():
    _fails(b"x,y\n1,2\n" + b"," * 5000 + b"\n", r"more than 1,000 cells")


@pytest.mark.parametrize(
    "data, what",
    [
        (b"", "empty"),
        (b"  \n\n \r\n", "empty"),
        (b"PK\x03\x04\x14\x00\x06\x00" + b"\x00" * 40, r"spreadsheet \(.xlsx"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 40, r"Excel 97"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "PDF"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "PNG image"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "JPEG"),
        (b"x,y\n1,2\x00\n3,4\n", "NUL bytes"),
        ("x,y\n1,2\n".encode("utf-16"), "UTF-16"),
        (b"x,y\n" + bytes(range(1, 9)) * 50 + b"\n", "control characters"),
    ],
)
def test_files_that_are_not_csv_text_are_refused_by_name(data, what):
    err = _fails(data, what)
    assert "Traceback" not in str(err)


def test_a_real_xlsx_and_a_gzip_are_refused():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("xl/workbook.xml", "<workbook/>")
    _fails(buffer.getvalue(), "spreadsheet")
    _fails(gzip.compress(_csv(_line())), "gzip")


def test_a_header_without_rows_and_a_single_column_are_refused():
    _fails(b"x,y\n", "no data rows")
    _fails(b"x\n1\n2\n3\n", "only one column")


def test_invalid_csv_quoting_is_one_line():
    data = b'x,y\n1,"2\n' + b"3,4\n" * 5
    try:  # the csv module accepts a quote running to the end; either way no traceback
        read_csv(data)
    except TabularError as err:
        assert "\n" not in str(err)


# --- encodings, delimiters, headers -------------------------------------------------------------


def test_utf8_with_a_byte_order_mark():
    table = read_csv(b"\xef\xbb\xbf" + "température,y\n1,2\n3,4\n".encode())
    assert table.encoding == "UTF-8 with BOM" and table.columns == ("température", "y")


def test_latin1_is_the_fallback():
    table = read_csv("température,y\n1,2\n3,4\n".encode("latin-1"))
    assert table.encoding == "Latin-1" and table.columns[0] == "température"
    assert read_csv(b"x,y\n1,2\n").encoding == "UTF-8"


@pytest.mark.parametrize("sep", [",", ";", "\t"])
def test_delimiters_are_sniffed(sep):
    rows = _line()
    table = read_csv(_csv(rows, sep=sep))
    assert table.delimiter == sep and table.columns == ("x", "y") and table.n_rows == len(rows)
    data = make_tabular(table, "regression", "y")
    want = np.array([float(r[0]) for r in rows], dtype=np.float32)
    got = torch.cat([data.dataset.x_train[:, 0], data.dataset.x_test[:, 0]]).numpy()
    assert sorted(got.tolist()) == sorted(want.tolist())


def test_a_semicolon_file_may_use_decimal_commas():
    rows = [(f"{i},5", f"{2 * i},25") for i in range(12)]
    data = load_csv(_csv(rows, sep=";"), "regression", "y")
    ys = torch.cat([data.dataset.y_train, data.dataset.y_test]).sort().values
    assert ys[:2].tolist() == [0.25, 2.25]


def test_a_file_without_a_header_gets_numbered_columns():
    rows = _line()
    table = read_csv(_csv(rows, header=None))
    assert not table.header and table.columns == ("column 1", "column 2")
    assert table.n_rows == len(rows)
    assert read_csv(_csv(rows), header=False).n_rows == len(rows) + 1  # forced: the names are data


def test_hostile_column_names_are_cleaned_cut_and_made_unique():
    long = "![x](http://127.0.0.1:9/p.png)" + "a" * 500
    data = _csv(_line(12), header=(long, "y\x1b[31m"))
    table = read_csv(data)
    assert len(table.columns[0]) == tabular.MAX_NAME and table.columns[0].endswith("…")
    assert "\x1b" not in table.columns[1]
    dup = read_csv(b"a,a,,b\n1,2,3,4\n5,6,7,8\n")
    assert dup.columns == ("a", "a (2)", "column 3", "b")


def test_rows_with_another_number_of_cells_are_dropped_and_counted():
    rows = [*_line(20), ("1", "2", "3"), ("4",)]
    data = load_csv(_csv(rows), "regression", "y")
    assert data.dropped == {"another number of cells than the header row": 2}
    assert data.n_train + data.n_test == 20 and data.n_rows == 22


# --- cells ----------------------------------------------------------------------------------------


def test_text_in_a_numeric_column_names_column_row_and_cell():
    rows = _line(20)
    rows[6] = ("![img](http://127.0.0.1:9/x.png)", rows[6][1])
    err = _fails(
        _csv(rows), r"column 'x' must hold numbers.*data row 7", task="regression", target="y"
    )
    assert "'![img](http://127.0.0.1:9/x.png)'" in str(err)
    md = err.markdown(lambda text: f"`{text}`")  # the app passes params.echo
    assert "`x`" in md and "`![img](http://127.0.0.1:9/x.png)`" in md


def test_a_formula_in_a_numeric_column_is_text():
    rows = _line(20)
    rows[0] = ("=1+2", rows[0][1])
    _fails(_csv(rows), "must hold numbers", task="regression", target="y")


def test_a_huge_cell_is_cut_in_the_message():
    rows = _line(20)
    rows[3] = ("z" * 100_000, rows[3][1])
    err = _fails(_csv(rows), "must hold numbers", task="regression", target="y")
    assert len(str(err)) < 300


def test_missing_infinite_and_huge_numbers_drop_their_rows_and_are_counted():
    rows = _line(30)
    for i, cell in enumerate(["", "NA", "nan", "NaN", "null", "?", "-"]):
        rows[i] = (cell, rows[i][1])
    rows[10] = (rows[10][0], "inf")
    rows[11] = ("-Infinity", rows[11][1])
    rows[12] = ("1e400", rows[12][1])  # overflows to inf
    rows[13] = (rows[13][0], "1e20")
    data = load_csv(_csv(rows), "regression", "y")
    assert data.dropped == {
        tabular.DROP_REASONS["missing"]: 7,
        tabular.DROP_REASONS["infinite"]: 3,
        tabular.DROP_REASONS["large"]: 1,
    }
    assert data.n_train + data.n_test == 19
    for t in (data.dataset.x_train, data.dataset.y_train, data.dataset.x_test):
        assert torch.isfinite(t).all()


@pytest.mark.parametrize("which", ["x", "y"])
def test_a_constant_column_is_refused(which):
    rows = [("3.5" if which == "x" else str(i), "7" if which == "y" else str(i)) for i in range(20)]
    _fails(_csv(rows), f"column '{which}' is constant", task="regression", target="y")


def test_too_few_rows_in_all_is_refused():
    _fails(_csv(_line(9)), r"only 9 usable rows; at least 10", task="regression", target="y")
    rows = _line(12)
    rows[0] = ("", rows[0][1])
    rows[1] = ("NA", rows[1][1])
    rows[2] = ("inf", rows[2][1])
    _fails(_csv(rows), r"only 9 usable rows.*3 dropped", task="regression", target="y")
    load_csv(_csv(_line(10)), "regression", "y")  # exactly ten is enough


def test_too_few_rows_of_a_class_is_refused_naming_it():
    rows = _blobs(20, ("a", "b")) + _blobs(9, ("=rare",), seed=1)
    err = _fails(
        _csv(rows, header=("u", "v", "k")),
        r"class '=rare' has 9 rows; .* at least 10",
        task="classification",
        target="k",
    )
    assert err.values == ("=rare",)


@pytest.mark.parametrize("k", [1, 11])
def test_one_class_or_more_than_ten_is_refused(k):
    rows = _blobs(10, tuple(f"c{i}" for i in range(k)))
    match = "one class only" if k == 1 else r"11 distinct values; classification takes 2 to 10"
    _fails(_csv(rows, header=("u", "v", "k")), match, task="classification", target="k")


def test_a_continuous_target_as_classes_says_so():
    rows = [(str(i), str(i % 7), f"{i * 0.37:.2f}") for i in range(40)]
    _fails(
        _csv(rows, header=("u", "v", "k")),
        "is it a regression target",
        task="classification",
        target="k",
    )


def test_text_labels_are_mapped_in_sorted_order():
    rows = _blobs(15, ("zebra", '=HYPERLINK("http://127.0.0.1:9")', "ant"))
    data = load_csv(_csv(rows, header=("u", "v", "k")), "classification", "k")
    assert data.labels == ('=HYPERLINK("http://127.0.0.1:9")', "ant", "zebra")
    y = torch.cat([data.dataset.y_train, data.dataset.y_test])
    assert torch.bincount(y).tolist() == [15, 15, 15]
    assert data.dataset.n_classes == 3


def test_numeric_labels_keep_their_numeric_order_and_merge_spellings():
    rows = _blobs(12, ("10", "2")) + [("0.1", "0.2", "2.0")] * 3
    data = load_csv(_csv(rows, header=("u", "v", "k")), "classification", "k")
    assert data.labels == ("2", "10")
    assert torch.bincount(torch.cat([data.dataset.y_train, data.dataset.y_test])).tolist() == [
        15,
        12,
    ]


def test_rows_with_a_missing_label_are_dropped():
    rows = _blobs(12) + [("0.1", "0.2", ""), ("0.3", "0.4", "NA")]
    data = load_csv(_csv(rows, header=("u", "v", "k")), "classification", "k")
    assert data.dropped == {tabular.DROP_REASONS["missing"]: 2} and data.labels == ("a", "b")


@pytest.mark.parametrize(
    "cell, out",
    [
        ("=SUM(A1:A2)", "'=SUM(A1:A2)"),
        ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
        ("-2+3+cmd|' /C calc'!A0", "'-2+3+cmd|' /C calc'!A0"),
        ("@SUM(1)", "'@SUM(1)"),
        ("\t=1", "'\t=1"),
        ("-1.5", "-1.5"),
        ("+2", "+2"),
        ("kidney", "kidney"),
        (3.0, 3.0),
    ],
)
def test_formula_like_cells_are_neutralised(cell, out):
    assert neutralise(cell) == out


# --- columns --------------------------------------------------------------------------------------


def test_the_chosen_columns_are_used_among_more():
    rows = [(str(i), f"{i % 5}", f"{2 * i + 1}", "ignore me") for i in range(20)]
    data = _csv(rows, header=("id", "noise", "target", "note"))
    err = _fails(
        data, r"one input column; choose them among the 3 other", task="regression", target="target"
    )
    assert "Traceback" not in str(err)
    made = load_csv(data, "regression", "target", ["id"])
    x = torch.cat([made.dataset.x_train[:, 0], made.dataset.x_test[:, 0]])
    y = torch.cat([made.dataset.y_train, made.dataset.y_test])
    assert torch.equal(y, 2 * x + 1)
    _fails(data, "there is no column 'nope'", task="regression", target="nope")
    _fails(data, "both an input and the target", task="regression", target="id", inputs=["id"])
    _fails(data, "takes two input columns", task="classification", target="noise", inputs=["id"])
    _fails(data, "must hold numbers", task="regression", target="target", inputs=["note"])


def test_default_columns_and_the_guessed_task():
    table = read_csv((EXAMPLES / "regression.csv").read_bytes())
    assert tabular.default_columns(table, "regression") == (("temperature_c",), "sales")
    assert tabular.guess_task(table, "sales") == "regression"
    beans = read_csv((EXAMPLES / "classification.csv").read_bytes())
    assert tabular.default_columns(beans, "classification") == (("length_mm", "width_mm"), "bean")
    assert tabular.guess_task(beans, "bean") == "classification"
    assert tabular.guess_task(beans, "bean", ["length_mm"]) == "regression"


def test_the_source_names_file_columns_and_split():
    data = _csv([(str(i), str(i * i), str(-i)) for i in range(20)], header=("a", "b", "c"))
    one = load_csv(data, "regression", "c", ["a"]).source
    assert one == load_csv(data, "regression", "c", ["a"], seed=5).source
    assert one != load_csv(data, "regression", "c", ["b"]).source
    assert one != load_csv(data.replace(b"19,", b"18,"), "regression", "c", ["a"]).source
    assert one.startswith("csv:") and len(one) == 20


# --- the datasets ---------------------------------------------------------------------------------


def test_the_regression_split_is_seeded_and_holds_out_20_percent():
    data = _csv(_line(50))
    a, b, c = (load_csv(data, "regression", "y", seed=s).dataset for s in (0, 0, 1))
    assert a.x_test.shape[0] == 10 and a.n_train == 40
    assert torch.equal(a.x_test, b.x_test) and not torch.equal(a.x_test, c.x_test)
    both = torch.cat([a.x_train[:, 0], a.x_test[:, 0]]).sort().values
    assert torch.equal(both, torch.cat([c.x_train[:, 0], c.x_test[:, 0]]).sort().values)
    assert load_csv(data, "regression", "y", test_fraction=0.5).dataset.x_test.shape[0] == 25


@pytest.mark.parametrize("scale, start", [(1.0, 0.05), (1000.0, 50.0), (1e4, 100.0), (1e-6, 1e-3)])
def test_the_noise_starts_at_a_tenth_of_the_targets_std_within_bounds(scale, start):
    rows = [(str(i), f"{scale * (i % 2):.10g}") for i in range(40)]  # std about scale / 2
    data = load_csv(_csv(rows), "regression", "y")
    assert data.noise_start == pytest.approx(start, rel=0.05)


def test_the_regression_grid_reaches_beyond_the_data_and_marks_the_gap():
    xs = [*np.linspace(0, 1, 30), *np.linspace(3, 4, 30)]
    data = load_csv(_csv([(f"{x:.4f}", f"{np.sin(x):.4f}") for x in xs]), "regression", "y")
    ds = data.dataset
    assert ds.name == TABULAR_DATASETS["regression"] and ds.task == "regression"
    assert ds.x_grid.shape == (tabular.GRID_POINTS, 1) and ds.in_range.shape == (
        tabular.GRID_POINTS,
    )
    low, high = float(ds.x_train.min()), float(ds.x_train.max())
    assert ds.x_grid.min() < low - 1 and ds.x_grid.max() > high + 1
    assert len(ds.train_range) == 2  # the hole between 1 and 3 is out of range
    grid = ds.x_grid[:, 0]
    assert not ds.in_range[(grid > 1.2) & (grid < 2.8)].any()
    assert ds.in_range[(grid > 0.1) & (grid < 0.9)].all()
    assert ds.f_grid is None and ds.noise_grid is None


def test_classification_is_standardised_with_training_statistics_and_has_a_far_ring():
    rows = [(f"{100 + 10 * float(a):.3f}", f"{5 + float(b) / 10:.4f}", k) for a, b, k in _blobs(30)]
    data = load_csv(_csv(rows, header=("u", "v", "k")), "classification", "k", seed=3)
    ds = data.dataset
    assert ds.x_train.mean(0).abs().max() < 1e-4
    assert (ds.x_train.std(0, unbiased=False) - 1).abs().max() < 1e-4
    assert ds.x_test.shape == (12, 2) and torch.bincount(ds.y_test).tolist() == [6, 6]  # stratified
    xs, ys = ds.grid_axes
    assert xs.min() <= -4 and xs.max() >= 4 and ds.x_grid.shape == (len(xs) * len(ys), 2)
    assert ds.in_range.any() and not ds.in_range.all()
    far = ds.ood["far"]
    assert far.shape == (tabular.N_OOD, 2)
    nearest = torch.cdist(far, ds.x_train).min(dim=1).values
    assert nearest.min() > 0.5  # the ring lies away from the data


def test_a_model_trains_on_uploaded_data():
    data = load_csv((EXAMPLES / "classification.csv").read_bytes(), "classification", "bean")
    cfg = default_config("csv_classification", seed=0)
    cfg = cfg.__class__(
        data=cfg.data.__class__(name=cfg.data.name, source=data.source, n_train=data.n_train),
        prior=cfg.prior,
        model=cfg.model,
        train=cfg.train.__class__(epochs=30),
    )
    result = Trainer(cfg, data.dataset).run()
    assert result.metrics["accuracy"] > 0.8
    assert all(np.isfinite(v) for v in result.metrics.values())


def test_make_dataset_never_reads_uploaded_data():
    with pytest.raises(ValueError, match="data from a CSV file"):
        make_dataset(default_config("csv_regression").data)


def test_a_bad_source_in_a_config_is_refused():
    cfg = default_config("csv_regression")
    bad = cfg.__class__(data=cfg.data.__class__(name=cfg.data.name, source="../../etc/passwd"))
    with pytest.raises(ValueError, match="data.source"):
        bad.validate()
