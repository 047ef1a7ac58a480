"""Tests for bbb_core.data.images: IDX parsing, the download path (offline), caching, hostile cache
files (empty splits, counts that differ, labels outside 0..9, gzip and zip bombs), the digits split,
preprocessing and `make_image_dataset`. Nothing here touches the network."""

from __future__ import annotations

import gzip
import hashlib
import re
import struct
import urllib.request
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from bbb_core.config import DataConfig
from bbb_core.data import images
from bbb_core.data.images import DataUnavailableError
from bbb_core.data.ood import OOD_NAMES

SHARED_MNIST = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist.npz"
needs_mnist = pytest.mark.skipif(not SHARED_MNIST.is_file(), reason=f"{SHARED_MNIST} absent")


@pytest.fixture(autouse=True)
def no_network(monkeypatch, tmp_path):
    """Any download fails the test loudly; the default data dir is a temporary one."""

    def fail(*args, **kwargs):
        raise AssertionError("tests must not touch the network")

    monkeypatch.setattr(urllib.request, "urlopen", fail)
    monkeypatch.setattr(images, "fetch_url", fail)
    monkeypatch.setenv("BBB_DATA_DIR", str(tmp_path / "env_data_dir"))


def idx_bytes(array: np.ndarray, type_byte: int = 0x08) -> bytes:
    """The IDX encoding, written out by hand: 0, 0, type, ndim, big-endian dims, data."""
    header = struct.pack(">BBBB", 0, 0, type_byte, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


def write_idx(path: Path, array: np.ndarray, type_byte: int = 0x08) -> Path:
    data = idx_bytes(array, type_byte)
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def fake_mnist(n_train: int = 40, n_test: int = 20, seed: int = 0) -> dict[str, np.ndarray]:
    """Small random arrays shaped like MNIST: uint8 (N, 28, 28), labels cycling 0..9."""
    rng = np.random.default_rng(seed)
    return {
        "x_train": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "y_train": (np.arange(n_train) % 10).astype(np.uint8),
        "x_test": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "y_test": (np.arange(n_test) % 10).astype(np.uint8),
    }


def write_fake_idx_files(folder: Path, arrays: dict[str, np.ndarray], gz: bool = True) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for filename, key in zip(images.IDX_FILES, images.NPZ_KEYS, strict=True):
        name = filename if gz else filename.removesuffix(".gz")
        write_idx(folder / name, arrays[key])


def serve_as_mnist(arrays: dict[str, np.ndarray], monkeypatch) -> dict[str, bytes]:
    """The arrays as the four .gz files, with MD5["mnist"] patched to their checksums."""
    served = {
        f: gzip.compress(idx_bytes(arrays[k]))
        for f, k in zip(images.IDX_FILES, images.NPZ_KEYS, strict=True)
    }
    for filename, data in served.items():
        monkeypatch.setitem(images.MD5["mnist"], filename, hashlib.md5(data).hexdigest())
    return served


# --- data_dir -----------------------------------------------------------------------------------


def test_data_dir_precedence(monkeypatch, tmp_path):
    assert images.data_dir(str(tmp_path / "cfg")) == tmp_path / "cfg"
    monkeypatch.setenv("BBB_DATA_DIR", str(tmp_path / "env"))
    assert images.data_dir(None) == tmp_path / "env"
    monkeypatch.delenv("BBB_DATA_DIR")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert images.data_dir(None) == tmp_path / "home" / ".cache" / "bbb_explorer"


# --- read_idx -----------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize(
    "array, type_byte",
    [
        (np.arange(3 * 28 * 28, dtype=np.uint8).reshape(3, 28, 28), 0x08),
        (np.array([7, 0, 9, 3], dtype=np.uint8), 0x08),
        (np.arange(-6, 6, dtype=">i4").reshape(3, 4), 0x0C),
        (np.linspace(-1, 1, 10, dtype=">f4"), 0x0D),
    ],
)
def test_read_idx_round_trip(tmp_path, array, type_byte, suffix):
    path = write_idx(tmp_path / f"data.idx{suffix}", array, type_byte)
    out = images.read_idx(path)
    assert out.shape == array.shape
    assert out.dtype.isnative
    np.testing.assert_array_equal(out, array)


@pytest.mark.parametrize(
    "mangle, message",
    [
        (lambda b: b"\x01\x02" + b[2:], "bad magic number"),
        (lambda b: b[:2] + b"\x42" + b[3:], "bad magic number"),  # unknown type byte
        (lambda b: b[:3] + b"\x00" + b[4:], "bad magic number"),  # zero dimensions
        (lambda b: b[:6], "header"),
        (lambda b: b[:-5], "data bytes"),  # truncated data
        (lambda b: b + b"\x00", "data bytes"),  # trailing bytes
        (lambda b: b"", "bad magic number"),
    ],
)
def test_read_idx_rejects_corrupt_files(tmp_path, mangle, message):
    good = idx_bytes(np.zeros((2, 28, 28), dtype=np.uint8))
    path = tmp_path / "bad-idx3-ubyte"
    path.write_bytes(mangle(good))
    with pytest.raises(ValueError, match=f"corrupt IDX file {path}: .*{message}"):
        images.read_idx(path)


def test_read_idx_rejects_truncated_gzip(tmp_path):
    data = gzip.compress(idx_bytes(np.zeros((2, 28, 28), dtype=np.uint8)))
    path = tmp_path / "bad.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="corrupt IDX file .*gzip"):
        images.read_idx(path)


# --- load_mnist_arrays: files on disk -----------------------------------------------------------


@pytest.mark.parametrize("gz", [True, False])
def test_load_from_idx_files_then_from_the_npz_cache(tmp_path, gz):
    arrays = fake_mnist()
    write_fake_idx_files(tmp_path / "mnist", arrays, gz=gz)
    x_train, y_train, x_test, y_test = images.load_mnist_arrays("mnist", tmp_path, download=False)
    assert x_train.dtype == np.uint8 and y_train.dtype == np.int64 and y_test.dtype == np.int64
    for got, key in zip((x_train, y_train, x_test, y_test), images.NPZ_KEYS, strict=True):
        np.testing.assert_array_equal(got, arrays[key])

    cache = tmp_path / "mnist.npz"
    assert cache.is_file()
    for f in (tmp_path / "mnist").iterdir():
        f.unlink()
    again = images.load_mnist_arrays("mnist", tmp_path, download=False)
    for got, key in zip(again, images.NPZ_KEYS, strict=True):
        np.testing.assert_array_equal(got, arrays[key])


def test_inconsistent_idx_files_raise(tmp_path):
    arrays = fake_mnist()
    arrays["y_test"] = arrays["y_test"][:-1]  # one label short
    write_fake_idx_files(tmp_path / "mnist", arrays)
    with pytest.raises(ValueError, match="y_test"):
        images.load_mnist_arrays("mnist", tmp_path, download=False)


def test_npz_missing_keys_is_a_clear_error(tmp_path):
    arrays = fake_mnist()
    del arrays["y_test"]
    np.savez(tmp_path / "fashion_mnist.npz", **arrays)
    with pytest.raises(ValueError, match=r"corrupt cache .*fashion_mnist.npz.*\['y_test'\]"):
        images.load_mnist_arrays("fashion_mnist", tmp_path, download=False)


def test_npz_wrong_shape_or_garbage_is_a_clear_error(tmp_path):
    arrays = fake_mnist()
    arrays["x_train"] = arrays["x_train"][:, :27]
    np.savez(tmp_path / "mnist.npz", **arrays)
    with pytest.raises(ValueError, match="corrupt data .*x_train"):
        images.load_mnist_arrays("mnist", tmp_path, download=False)
    (tmp_path / "mnist.npz").write_bytes(b"not an npz file")
    with pytest.raises(ValueError, match="corrupt cache .*cannot be read"):
        images.load_mnist_arrays("mnist", tmp_path, download=False)


def _empty(arrays, split):
    arrays[f"x_{split}"] = arrays[f"x_{split}"][:0]
    arrays[f"y_{split}"] = arrays[f"y_{split}"][:0]


HOSTILE = [  # (how the arrays are broken, the array the error names, what it says)
    (lambda a: _empty(a, "train"), "x_train", "holds 0 images, expected 1 to 100000"),
    (lambda a: _empty(a, "test"), "x_test", "holds 0 images, expected 1 to 20000"),
    (lambda a: a.update(y_train=a["y_train"][:-3]), "y_train", "expected 40 integer labels"),
    (lambda a: a.update(y_test=np.tile(a["y_test"], 2)), "y_test", "expected 20 integer labels"),
    (lambda a: a["y_train"].__setitem__(5, 10), "y_train", "labels outside 0..9"),
    (lambda a: a["y_test"].__setitem__(0, 255), "y_test", "labels outside 0..9"),
    (lambda a: a.update(y_test=a["y_test"].astype(np.int8) - 1), "y_test", "outside 0..9"),
    (lambda a: a.update(y_train=a["y_train"] * 0.5), "y_train", "integer labels"),
]
HOSTILE_IDS = ["empty-train", "empty-test", "short", "long", "label-10", "label-255", "-1", "float"]


@pytest.mark.parametrize(("mangle", "key", "message"), HOSTILE, ids=HOSTILE_IDS)
def test_a_hostile_npz_cache_is_rejected_naming_it(tmp_path, mangle, key, message):
    arrays = fake_mnist()
    mangle(arrays)
    np.savez(tmp_path / "mnist.npz", **arrays)
    path = re.escape(str(tmp_path / "mnist.npz"))
    with pytest.raises(ValueError, match=rf"^corrupt data {path}: {key} .*{re.escape(message)}"):
        images.load_mnist_arrays("mnist", tmp_path, download=False)


IDX_TYPE = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(np.float64): 0x0E}


@pytest.mark.parametrize(("mangle", "key", "message"), HOSTILE, ids=HOSTILE_IDS)
def test_hostile_idx_files_are_rejected_naming_the_file(tmp_path, mangle, key, message):
    arrays = fake_mnist()
    mangle(arrays)
    folder = tmp_path / "fashion_mnist"
    folder.mkdir()
    for filename, k in zip(images.IDX_FILES, images.NPZ_KEYS, strict=True):
        array = arrays[k].astype(arrays[k].dtype.newbyteorder(">"))
        write_idx(folder / filename, array, IDX_TYPE[arrays[k].dtype])
    path = folder / images.IDX_FILES[images.NPZ_KEYS.index(key)]
    pattern = rf"^corrupt data {re.escape(str(path))}: {key} .*{re.escape(message)}"
    with pytest.raises(ValueError, match=pattern):
        images.load_mnist_arrays("fashion_mnist", tmp_path, download=False)
    assert not (tmp_path / "fashion_mnist.npz").exists()  # nothing bad is cached


def test_more_images_than_allowed_is_rejected(tmp_path, monkeypatch):
    monkeypatch.setitem(images.MAX_IMAGES, "test", 19)
    np.savez(tmp_path / "mnist.npz", **fake_mnist(n_test=20))
    with pytest.raises(ValueError, match=r"mnist.npz: x_test holds 20 images, expected 1 to 19"):
        images.load_mnist_arrays("mnist", tmp_path, download=False)


def test_a_gzip_bomb_is_not_unpacked(tmp_path, monkeypatch):
    """A small .gz that unpacks past MAX_CACHE_BYTES stops there, named, not out of memory."""
    data = np.zeros((40, 28, 28), dtype=np.uint8)  # 31,376 bytes: gzip packs them into ~100
    path = write_idx(tmp_path / "train-images-idx3-ubyte.gz", data)
    assert path.stat().st_size < 1000
    monkeypatch.setattr(images, "MAX_CACHE_BYTES", 10_000)
    with pytest.raises(ValueError, match=rf"^corrupt IDX file {re.escape(str(path))}: more than"):
        images.read_idx(path)
    plain = write_idx(tmp_path / "train-images-idx3-ubyte", data)
    with pytest.raises(ValueError, match=rf"^corrupt IDX file {re.escape(str(plain))}: more than"):
        images.read_idx(plain)


def test_a_zip_bomb_npz_is_not_unpacked(tmp_path, monkeypatch):
    np.savez_compressed(tmp_path / "mnist.npz", **fake_mnist(n_train=200))  # ~190 kB unpacked
    monkeypatch.setattr(images, "MAX_CACHE_BYTES", 100_000)
    with pytest.raises(ValueError, match=r"^corrupt cache .*mnist.npz: .*unpacks to \d+ bytes"):
        images.load_mnist_arrays("mnist", tmp_path, download=False)


def test_idx_dimensions_whose_product_overflows_int64(tmp_path):
    """2^22 x 2^21 x 2^21 = 2^64 bytes, 0 in int64: the header claims 0 bytes of data."""
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(struct.pack(">BBBB3I", 0, 0, 0x08, 3, 2**22, 2**21, 2**21))
    with pytest.raises(ValueError, match=rf"corrupt IDX file {re.escape(str(path))}: .*{2**64}"):
        images.read_idx(path)


# --- load_mnist_arrays: the download path, offline ----------------------------------------------


def assert_instructions(message: str, name: str, root: Path) -> None:
    assert str(root / name) in message
    for filename in images.IDX_FILES:
        assert filename in message
    assert images.MIRRORS[name][0] in message


def test_missing_files_without_download(tmp_path):
    with pytest.raises(DataUnavailableError) as info:
        images.load_mnist_arrays("mnist", tmp_path, download=False)
    assert_instructions(str(info.value), "mnist", tmp_path)
    assert "download=False" in str(info.value)


def test_network_failure_tries_every_mirror_then_explains(tmp_path, monkeypatch):
    tried = []

    def offline(url, dest):
        tried.append(url)
        raise OSError("network is unreachable")

    monkeypatch.setattr(images, "fetch_url", offline)
    with pytest.raises(DataUnavailableError) as info:
        images.load_mnist_arrays("mnist", tmp_path, download=True)
    assert_instructions(str(info.value), "mnist", tmp_path)
    assert "network is unreachable" in str(info.value)
    assert tried == [m + images.IDX_FILES[0] for m in images.MIRRORS["mnist"]]
    assert list((tmp_path / "mnist").iterdir()) == []  # no partial downloads left


def test_checksum_mismatch_raises_and_deletes_the_file(tmp_path, monkeypatch):
    wrong = b"these are not the bytes you are looking for"
    monkeypatch.setattr(images, "fetch_url", lambda url, dest: Path(dest).write_bytes(wrong))
    filename = images.IDX_FILES[0]
    expected = images.MD5["fashion_mnist"][filename]
    got = hashlib.md5(wrong).hexdigest()
    with pytest.raises(ValueError, match=f"{filename}.*expected md5 {expected}, got {got}"):
        images.load_mnist_arrays("fashion_mnist", tmp_path, download=True)
    assert list((tmp_path / "fashion_mnist").iterdir()) == []


def test_checksum_mismatch_on_one_mirror_falls_back_to_the_next(tmp_path, monkeypatch):
    arrays = fake_mnist()
    served = serve_as_mnist(arrays, monkeypatch)
    first, second = images.MIRRORS["mnist"]

    def serve(url, dest):  # the first mirror answers with an HTML error page
        body = b"<html>moved</html>" if url.startswith(first) else served[url[len(second) :]]
        Path(dest).write_bytes(body)

    monkeypatch.setattr(images, "fetch_url", serve)
    out = images.load_mnist_arrays("mnist", tmp_path, download=True)
    np.testing.assert_array_equal(out[2], arrays["x_test"])
    assert sorted(p.name for p in (tmp_path / "mnist").iterdir()) == sorted(images.IDX_FILES)


def test_download_verifies_and_moves_files_into_place(tmp_path, monkeypatch):
    arrays = fake_mnist()
    served = serve_as_mnist(arrays, monkeypatch)
    urls = []

    def serve(url, dest):
        urls.append(url)
        Path(dest).write_bytes(served[url.rsplit("/", 1)[1]])

    monkeypatch.setattr(images, "fetch_url", serve)
    out = images.load_mnist_arrays("mnist", tmp_path, download=True)
    np.testing.assert_array_equal(out[0], arrays["x_train"])
    assert urls == [images.MIRRORS["mnist"][0] + f for f in images.IDX_FILES]
    assert sorted(p.name for p in (tmp_path / "mnist").iterdir()) == sorted(images.IDX_FILES)
    assert (tmp_path / "mnist.npz").is_file()


def test_published_checksums():
    """Pinned to torchvision/datasets/mnist.py (MNIST and FashionMNIST `resources`)."""
    assert images.MD5["mnist"]["train-images-idx3-ubyte.gz"] == "f68b3c2dcbeaaa9fbdd348bbdeb94873"
    assert images.MD5["fashion_mnist"]["t10k-labels-idx1-ubyte.gz"] == (
        "bb300cfdad3c16e7a12a480ee83cd310"
    )
    for name in ("mnist", "fashion_mnist"):
        assert set(images.MD5[name]) == set(images.IDX_FILES)
        assert len(set(images.MD5[name].values())) == 4


# --- digits and preprocessing -------------------------------------------------------------------


def test_digits_split_shapes_classes_and_determinism():
    x_train, y_train, x_test, y_test = images.load_digits_arrays(seed=0)
    assert x_train.shape == (1437, 8, 8) and x_test.shape == (360, 8, 8)
    assert y_train.dtype == np.int64 and x_train.dtype == np.float32
    assert x_train.min() == 0 and x_train.max() == 255
    np.testing.assert_array_equal(np.unique(y_test), np.arange(10))
    counts = np.bincount(y_test, minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37  # stratified: ~36 of each class
    again = images.load_digits_arrays(seed=0)
    np.testing.assert_array_equal(again[0], x_train)
    other = images.load_digits_arrays(seed=1)
    assert not np.array_equal(other[0], x_train)


def test_pixel_stats_match_numpy():
    x = np.random.default_rng(0).integers(0, 256, (50, 28, 28)).astype(np.uint8)
    mean, std = images.pixel_stats(x)
    assert mean == pytest.approx((x / 255.0).mean(), abs=1e-6)
    assert std == pytest.approx((x / 255.0).std(ddof=1), abs=1e-6)


@pytest.mark.parametrize(
    "mode, low, high",
    [("unit", 0.0, 1.0), ("paper", 0.0, 255 / 126)],
)
def test_preprocess_fixed_scalings(mode, low, high):
    x = np.array([[[0, 255], [126, 51]]], dtype=np.uint8)  # (1, 2, 2)
    out = images.preprocess(x, mode)
    assert out.shape == (1, 1, 2, 2) and out.dtype == torch.float32
    assert out.min().item() == pytest.approx(low)
    assert out.max().item() == pytest.approx(high)
    if mode == "paper":
        assert out[0, 0, 1, 0].item() == pytest.approx(1.0)


def test_preprocess_standardize_uses_train_statistics():
    rng = np.random.default_rng(0)
    x_train = rng.integers(0, 256, (64, 8, 8)).astype(np.uint8)
    stats = images.pixel_stats(x_train)
    z = images.preprocess(x_train, "standardize", stats)
    assert z.mean().item() == pytest.approx(0.0, abs=1e-5)
    assert z.std().item() == pytest.approx(1.0, abs=1e-5)
    x = torch.full((1, 1, 2, 2), 51.0)
    expected = (51.0 / 255.0 - stats[0]) / stats[1]
    torch.testing.assert_close(
        images.preprocess(x, "standardize", stats), torch.full((1, 1, 2, 2), expected)
    )
    with pytest.raises(ValueError, match="stats"):
        images.preprocess(x_train, "standardize")
    with pytest.raises(ValueError, match="mode"):
        images.preprocess(x_train, "nope")


# --- make_image_dataset -------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["unit", "paper", "standardize"])
def test_digits_dataset(mode):
    cfg = DataConfig(name="digits", preprocessing=mode)
    ds = images.make_image_dataset(cfg, seed=0)
    assert ds.task == "classification" and ds.n_classes == 10 and ds.is_image
    assert ds.x_train.shape == (1437, 1, 8, 8) and ds.x_test.shape == (360, 1, 8, 8)
    assert ds.x_train.dtype == torch.float32 and ds.y_train.dtype == torch.int64
    assert ds.x_grid is None and ds.in_range is None
    assert tuple(ds.ood) == OOD_NAMES  # no "other_dataset" for 8x8 digits
    for x in ds.ood.values():
        assert x.shape == (360, 1, 8, 8) and x.dtype == torch.float32
    # OOD sets are scaled like the test set: the white background of an inverted digit (pixel
    # 255) maps to what 255 maps to in the test set, and no OOD value goes beyond it.
    stats = images.pixel_stats(images.load_digits_arrays(seed=0)[0])
    white = images.preprocess(np.full((1, 8, 8), 255.0), mode, stats).max().item()
    assert ds.x_test.max().item() == pytest.approx(white)
    assert ds.ood["inverted"].max().item() == pytest.approx(white)
    for x in ds.ood.values():
        assert x.max().item() <= white + 1e-5
    if mode == "standardize":
        assert ds.x_train.mean().item() == pytest.approx(0.0, abs=1e-4)
        assert ds.x_train.std().item() == pytest.approx(1.0, abs=1e-4)


def test_digits_dataset_subset_and_determinism():
    cfg = DataConfig(name="digits", n_train=100)
    a = images.make_image_dataset(cfg, seed=0)
    b = images.make_image_dataset(cfg, seed=0)
    c = images.make_image_dataset(cfg, seed=1)
    assert a.x_train.shape == (100, 1, 8, 8)
    assert torch.bincount(a.y_train, minlength=10).min() >= 9  # stratified
    torch.testing.assert_close(a.x_train, b.x_train, rtol=0, atol=0)
    for name in OOD_NAMES:
        torch.testing.assert_close(a.ood[name], b.ood[name], rtol=0, atol=0)
    assert not torch.equal(a.x_train, c.x_train)


def test_mnist_dataset_other_dataset_only_when_on_disk(tmp_path):
    np.savez(tmp_path / "mnist.npz", **fake_mnist(60, 30))
    cfg = DataConfig(name="mnist", data_dir=str(tmp_path), n_train=20)
    ds = images.make_image_dataset(cfg, seed=0)  # would fail loudly if it tried to download
    assert ds.x_train.shape == (20, 1, 28, 28) and ds.x_test.shape == (30, 1, 28, 28)
    assert torch.bincount(ds.y_train, minlength=10).tolist() == [2] * 10
    assert "other_dataset" not in ds.ood
    assert images.is_available_locally("mnist", tmp_path)
    assert not images.is_available_locally("fashion_mnist", tmp_path)
    with pytest.raises(DataUnavailableError, match="fashion_mnist"):
        images.make_image_dataset(replace(cfg, ood="other_dataset"), seed=0)

    np.savez(tmp_path / "fashion_mnist.npz", **fake_mnist(10, 12, seed=1))
    ds = images.make_image_dataset(cfg, seed=0)
    other = ds.ood["other_dataset"]
    assert other.shape == (12, 1, 28, 28)  # all the other set's 12 test images (< 30)
    assert 0.0 <= other.min() and other.max() <= 1.0


@needs_mnist
def test_mnist_from_the_shared_npz(tmp_path):
    (tmp_path / "mnist.npz").symlink_to(SHARED_MNIST)
    x_train, y_train, x_test, y_test = images.load_mnist_arrays("mnist", tmp_path, download=False)
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert y_train.dtype == np.int64 and set(np.unique(y_test)) == set(range(10))

    cfg = DataConfig(name="mnist", data_dir=str(tmp_path), n_train=500, preprocessing="paper")
    ds = images.make_image_dataset(cfg, seed=0)
    assert ds.x_train.shape == (500, 1, 28, 28) and ds.x_test.shape == (10000, 1, 28, 28)
    assert torch.bincount(ds.y_train, minlength=10).min() >= 40  # stratified subset
    assert ds.x_test.max().item() == pytest.approx(255 / 126)
    assert tuple(ds.ood) == OOD_NAMES
    for x in ds.ood.values():
        assert x.shape == (1000, 1, 28, 28)
