"""Image datasets: scikit-learn's 8x8 digits, MNIST and Fashion-MNIST.

`make_image_dataset(cfg, seed)` returns a `Dataset` of images (N, 1, H, W) with 10 classes and a
dict of out-of-distribution sets (`bbb_core.data.ood`) preprocessed like the test set.

- digits: `sklearn.datasets.load_digits`, bundled with scikit-learn, so always offline; 8x8
  images with values 0..16, rescaled to 0..255 and split 80/20, stratified and seeded.
- MNIST (LeCun, Bottou, Bengio & Haffner, "Gradient-based learning applied to document
  recognition", 1998) and Fashion-MNIST (Xiao, Rasul & Vollgraf, arXiv:1708.07747, 2017): 28x28
  uint8 images, read from `<data_dir>/<name>.npz` if present, else from the four IDX files in
  `<data_dir>/<name>/`, downloaded (md5-checked) when missing. The IDX load is cached as the npz.
  Files on disk are not trusted: an npz or IDX file that is not what it claims, unpacks to more
  than MAX_CACHE_BYTES, has an empty split or one over MAX_IMAGES, image and label counts that
  differ, or labels outside 0..9 raises a ValueError naming the file.

Three pixel scalings (`preprocess`): "unit" x / 255; "paper" x / 126, as in Blundell, Cornebise,
Kavukcuoglu & Wierstra, "Weight Uncertainty in Neural Networks", ICML 2015; "standardize"
(x / 255 - mean) / std with the training set's mean and std (`pixel_stats`).
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import logging
import math
import os
import shutil
import tempfile
import urllib.request
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from bbb_core.config import IMAGE_DATASETS, DataConfig
from bbb_core.data.base import Dataset
from bbb_core.data.ood import OOD_NAMES, make_ood_sets

log = logging.getLogger(__name__)

DEFAULT_DATA_DIR = Path("~/.cache/bbb_explorer")  # used when neither cfg nor $BBB_DATA_DIR say
IDX_FILES = (  # the four files of MNIST and of Fashion-MNIST, in the order they are returned
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
MIRRORS = {  # base URLs tried in order; the file name is appended
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",  # PyTorch's mirror
        "http://yann.lecun.com/exdb/mnist/",  # the original site
    ),
    "fashion_mnist": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
}
MD5 = {  # md5 of each .gz file, as published in torchvision/datasets/mnist.py
    "mnist": {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    "fashion_mnist": {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
}
OTHER_DATASET = {"mnist": "fashion_mnist", "fashion_mnist": "mnist"}  # "other_dataset" OOD set
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
IMAGE_SIDE = 28  # MNIST and Fashion-MNIST images are 28 x 28
N_CLASSES = 10
N_OOD = 1000  # images per OOD set (fewer if the test set is smaller)
# Images a cache may hold: at least one per split; at most 100,000 training images (the largest
# data.n_train) and 20,000 test images (the predictive keeps samples x test images x classes
# floats; MNIST has 60,000 and 10,000)
MAX_IMAGES = {"train": 100_000, "test": 20_000}
# Bytes an IDX file may unpack to, and an npz cache may hold unpacked: room for the largest
# allowed split (100,000 x 28 x 28 = 78 MB) and its labels; a gzip or zip "bomb" stops here
MAX_CACHE_BYTES = 128 << 20

# IDX type byte -> big-endian numpy dtype (http://yann.lecun.com/exdb/mnist/, "IDX file format")
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class DataUnavailableError(RuntimeError):
    """A dataset is neither on disk nor downloadable; the message says what to put where."""


def data_dir(cfg_dir: str | None) -> Path:
    """Where image data lives: `cfg_dir`, else $BBB_DATA_DIR, else ~/.cache/bbb_explorer."""
    chosen = cfg_dir or os.environ.get("BBB_DATA_DIR") or DEFAULT_DATA_DIR
    return Path(chosen).expanduser()


def _instructions(name: str, root: Path, reason: str) -> str:
    folder = root / name
    files = "\n".join(f"    {folder / f}" for f in IDX_FILES)
    sources = " or ".join(MIRRORS[name])
    return (
        f"{name} is not available: {reason}.\n"
        f"Put these four files (gzipped or not) in {folder}:\n{files}\n"
        f"They can be downloaded from {sources} (e.g. {MIRRORS[name][0]}{IDX_FILES[0]}).\n"
        f"Alternatively put {root / (name + '.npz')} with uint8 arrays "
        f"{', '.join(NPZ_KEYS)}, or point DataConfig.data_dir or $BBB_DATA_DIR at a directory "
        "that holds them."
    )


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (gzipped or plain) into a native-endian numpy array.

    Raises ValueError "corrupt IDX file <path>: ..." when the magic number, the dimensions or
    the data size are wrong, the gzip stream is broken, or the data is over MAX_CACHE_BYTES.
    """
    path = Path(path)
    with open(path, "rb") as f:
        gzipped = f.read(2) == b"\x1f\x8b"
    too_big = f"corrupt IDX file {path}: more than {MAX_CACHE_BYTES} bytes of data"
    if gzipped:
        try:
            with gzip.open(path, "rb") as f:
                raw = f.read(MAX_CACHE_BYTES + 1)  # never unpacks more than this
        except (OSError, EOFError, zlib.error) as exc:
            raise ValueError(f"corrupt IDX file {path}: bad gzip data ({exc})") from exc
    elif path.stat().st_size > MAX_CACHE_BYTES:
        raise ValueError(too_big)
    else:
        raw = path.read_bytes()
    if len(raw) > MAX_CACHE_BYTES:
        raise ValueError(too_big)
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] not in _IDX_DTYPES or raw[3] == 0:
        raise ValueError(f"corrupt IDX file {path}: bad magic number {raw[:4].hex() or 'none'}")
    ndim, dtype = raw[3], np.dtype(_IDX_DTYPES[raw[2]])
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"corrupt IDX file {path}: header shorter than its {ndim} dimensions")
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    expected = math.prod(dims) * dtype.itemsize  # Python ints: no int64 wrap-around
    if len(raw) - header != expected:
        raise ValueError(
            f"corrupt IDX file {path}: dimensions {dims} need {expected} data bytes, "
            f"found {len(raw) - header}"
        )
    return np.frombuffer(raw, dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def fetch_url(url: str, dest: Path, timeout: float = 60.0) -> None:
    """Download `url` into the file `dest`. Raises OSError (URLError included) on failure."""
    request = urllib.request.Request(url, headers={"User-Agent": "bbb-explorer"})
    with urllib.request.urlopen(request, timeout=timeout) as response, open(dest, "wb") as f:
        shutil.copyfileobj(response, f)


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(name: str, filename: str, root: Path) -> None:
    """Fetch one file into root/name/filename, trying each mirror in turn.

    A download goes to a temporary file, which is moved into place only if its md5 matches;
    otherwise it is deleted and the next mirror is tried. Raises ValueError if some mirror served
    a file with the wrong md5 and none the right one, DataUnavailableError if none could be
    reached.
    """
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    expected, errors, mismatches = MD5[name][filename], [], []
    for mirror in MIRRORS[name]:
        url = mirror + filename
        fd, tmp_name = tempfile.mkstemp(prefix=filename + ".", suffix=".part", dir=folder)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            log.info("downloading %s", url)
            fetch_url(url, tmp)
            got = _md5(tmp)
            if got == expected:
                os.replace(tmp, folder / filename)
                return
            mismatches.append(
                f"checksum mismatch for {filename} from {url}: expected md5 {expected}, "
                f"got {got}; the download was deleted"
            )
        except (OSError, http.client.HTTPException) as exc:
            errors.append(f"{url}: {exc}")
        finally:
            tmp.unlink(missing_ok=True)
    if mismatches:
        raise ValueError("; ".join(mismatches))
    raise DataUnavailableError(
        _instructions(name, root, "download failed (" + "; ".join(errors) + ")")
    )


def _idx_path(folder: Path, filename: str) -> Path | None:
    """The file as downloaded (.gz) or as the user unpacked it (no .gz); None if neither."""
    for candidate in (folder / filename, folder / filename.removesuffix(".gz")):
        if candidate.is_file():
            return candidate
    return None


def _check_arrays(arrays: dict[str, np.ndarray], sources: Path | dict[str, Path]) -> None:
    """Raise ValueError naming the file unless each split holds 1 to MAX_IMAGES uint8 images
    (N, 28, 28) and N integer labels in 0..9. `sources`: one file (the npz) or each array's."""
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        problem, bad = None, f"x_{split}"
        if x.dtype != np.uint8 or x.shape[1:] != (IMAGE_SIDE, IMAGE_SIDE) or x.ndim != 3:
            problem = f"x_{split} is {x.dtype} {x.shape}, expected uint8 (N, 28, 28)"
        elif not 1 <= len(x) <= MAX_IMAGES[split]:
            problem = f"x_{split} holds {len(x)} images, expected 1 to {MAX_IMAGES[split]}"
        else:
            bad = f"y_{split}"
            if y.ndim != 1 or len(y) != len(x) or not np.issubdtype(y.dtype, np.integer):
                problem = f"y_{split} is {y.dtype} {y.shape}, expected {len(x)} integer labels"
            elif y.min() < 0 or y.max() >= N_CLASSES:
                problem = f"y_{split} has labels outside 0..{N_CLASSES - 1}"
        if problem:
            source = sources if isinstance(sources, Path) else sources[bad]
            raise ValueError(f"corrupt data {source}: {problem}")


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    hint = "; delete it to rebuild it from the IDX files"
    try:
        with zipfile.ZipFile(path) as archive:  # an npz is a zip of .npy files
            unpacked = sum(info.file_size for info in archive.infolist())
        if unpacked > MAX_CACHE_BYTES:
            raise ValueError(f"it unpacks to {unpacked} bytes, more than {MAX_CACHE_BYTES}")
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in NPZ_KEYS if k in z.files}
    except Exception as exc:  # not a zip, truncated, pickled, too big, ...
        raise ValueError(f"corrupt cache {path}: cannot be read as .npz ({exc}){hint}") from exc
    missing = [k for k in NPZ_KEYS if k not in arrays]
    if missing:
        raise ValueError(
            f"corrupt cache {path}: missing array(s) {missing}, expected {list(NPZ_KEYS)}{hint}"
        )
    _check_arrays(arrays, path)
    return arrays


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write the cache atomically (uncompressed: it loads fastest); warn if it cannot."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".npz", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except OSError as exc:
        warnings.warn(f"could not write the cache {path}: {exc}", stacklevel=3)


def is_available_locally(name: str, root: Path) -> bool:
    """True if `name` loads from `root` without downloading (the npz or all four IDX files)."""
    folder = root / name
    npz = (root / f"{name}.npz").is_file()
    return npz or all(_idx_path(folder, f) is not None for f in IDX_FILES)


def load_mnist_arrays(
    name: str, root: Path, download: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Load MNIST or Fashion-MNIST as numpy arrays.

    Looks for `root/<name>.npz` (keys x_train, y_train, x_test, y_test), else the four IDX files
    in `root/<name>/`, downloading the missing ones if `download` (each checked against its md5
    before it is moved into place). After an IDX load the arrays are cached as `root/<name>.npz`.

    Returns:
        x_train (60000, 28, 28) uint8, y_train (60000,) int64, x_test (10000, 28, 28) uint8,
        y_test (10000,) int64.

    Raises:
        DataUnavailableError: files missing and `download` is False or every mirror failed.
        ValueError: a corrupt npz or IDX file (see the module docstring), or a download whose
            md5 does not match.
    """
    if name not in MIRRORS:
        raise ValueError(f"name must be one of {tuple(MIRRORS)}; got {name!r}")
    root = Path(root)
    npz = root / f"{name}.npz"
    if npz.is_file():
        arrays = _load_npz(npz)
    else:
        folder = root / name
        missing = [f for f in IDX_FILES if _idx_path(folder, f) is None]
        if missing and not download:
            reason = f"missing {', '.join(missing)} and download=False"
            raise DataUnavailableError(_instructions(name, root, reason))
        for filename in missing:
            _download(name, filename, root)
        paths = {key: _idx_path(folder, f) for key, f in zip(NPZ_KEYS, IDX_FILES, strict=True)}
        arrays = {key: read_idx(p) for key, p in paths.items()}
        _check_arrays(arrays, paths)
        _save_npz(npz, arrays)
    return (
        arrays["x_train"],
        arrays["y_train"].astype(np.int64),
        arrays["x_test"],
        arrays["y_test"].astype(np.int64),
    )


def load_digits_arrays(
    seed: int = 0, test_size: float = 0.2
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits (1797 images), split train/test, stratified and seeded.

    Pixels 0..16 are rescaled by 255 / 16 to the 0..255 range of MNIST (as float32), so the
    same `preprocess` modes apply. Returns x_train (N, 8, 8), y_train (N,) int64, x_test, y_test.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.images * (255.0 / 16.0)).astype(np.float32)  # (1797, 8, 8)
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=test_size, stratify=y, random_state=seed
    )
    return x_train, y_train, x_test, y_test


def pixel_stats(x_train: np.ndarray | Tensor) -> tuple[float, float]:
    """Mean and std of the unit-scaled pixels x / 255 over a whole training set."""
    x = _as_float(x_train) / 255.0
    std, mean = torch.std_mean(x)
    return float(mean), float(std)


def _as_float(x: np.ndarray | Tensor) -> Tensor:
    t = x if isinstance(x, Tensor) else torch.from_numpy(np.asarray(x))
    return t.to(torch.float32)


def preprocess(
    x: np.ndarray | Tensor, mode: str, stats: tuple[float, float] | None = None
) -> Tensor:
    """Scale 0..255 pixels (N, H, W) or (N, 1, H, W) to float32 network inputs (N, 1, H, W).

    Args:
        x: pixels in 0..255 (uint8 or float; unit-scale OOD images times 255).
        mode: "unit" x / 255 -> [0, 1]; "paper" x / 126 -> [0, 255 / 126] (Blundell et al.);
            "standardize" (x / 255 - mean) / std.
        stats: (mean, std) of the training set's x / 255 (`pixel_stats`); "standardize" only.
    """
    t = _as_float(x)
    if t.dim() == 3:
        t = t.unsqueeze(1)  # (N, 1, H, W)
    if t.dim() != 4 or t.shape[1] != 1:
        raise ValueError(f"x must be (N, H, W) or (N, 1, H, W); got {tuple(t.shape)}")
    if mode == "unit":
        return t / 255.0
    if mode == "paper":
        return t / 126.0
    if mode == "standardize":
        if stats is None:
            raise ValueError("preprocess mode 'standardize' needs stats=pixel_stats(x_train)")
        mean, std = stats
        if not std > 0:
            raise ValueError(f"standardize needs a positive std; got {std}")
        return (t / 255.0 - mean) / std
    raise ValueError(f"mode must be one of 'unit', 'paper', 'standardize'; got {mode!r}")


def _subset(y: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Sorted indices of n training points: stratified by class when possible, else random."""
    from sklearn.model_selection import train_test_split

    classes = len(np.unique(y))
    if n >= classes and len(y) - n >= classes:
        idx, _ = train_test_split(np.arange(len(y)), train_size=n, stratify=y, random_state=seed)
    else:
        idx = np.random.default_rng(seed).permutation(len(y))[:n]
    return np.sort(idx)


def _other_dataset_unit(
    name: str, root: Path, n: int, generator: torch.Generator, required: bool
) -> Tensor | None:
    """n test images of the other 28x28 set in [0, 1], if it is on disk (never downloaded)."""
    other = OTHER_DATASET.get(name)
    if other is None:
        if required:
            raise ValueError(f"'other_dataset' OOD set: there is none for {name!r}")
        return None
    try:
        *_, x_test, _ = load_mnist_arrays(other, root, download=False)
    except DataUnavailableError:
        if required:
            reason = "it is the 'other_dataset' OOD set and is never downloaded implicitly"
            raise DataUnavailableError(_instructions(other, root, reason)) from None
        return None
    except ValueError as exc:
        if required:
            raise
        warnings.warn(f"'other_dataset' OOD set skipped: {exc}", stacklevel=3)
        return None
    pick = torch.randperm(len(x_test), generator=generator)[:n]
    return torch.from_numpy(x_test[pick.numpy()]).float().div_(255.0).unsqueeze(1)


def make_image_dataset(cfg: DataConfig, seed: int) -> Dataset:
    """Load an image dataset (digits, mnist, fashion_mnist) with its OOD sets.

    `cfg.n_train`, when set, keeps a seeded subset of the training set (stratified by class
    when it has at least one image per class). Inputs are scaled by `cfg.preprocessing`, with
    "standardize" statistics from the training images kept.

    `ood` holds min(1000, N_test) images per set of OOD_NAMES (`bbb_core.data.ood`), made
    from a seeded random subset of the test images and preprocessed like the test set, plus
    "other_dataset" (MNIST <-> Fashion-MNIST) when the other set is on disk. It is never
    downloaded; if `cfg.ood == "other_dataset"` and it is missing, DataUnavailableError says
    where to put it.
    """
    if cfg.name not in IMAGE_DATASETS:
        raise ValueError(f"data.name must be one of {IMAGE_DATASETS}; got {cfg.name!r}")
    root = data_dir(cfg.data_dir)
    if cfg.name == "digits":
        x_train, y_train, x_test, y_test = load_digits_arrays(seed)
    else:
        x_train, y_train, x_test, y_test = load_mnist_arrays(cfg.name, root, download=True)
    if cfg.n_train is not None and cfg.n_train < len(y_train):
        keep = _subset(y_train, cfg.n_train, seed)
        x_train, y_train = x_train[keep], y_train[keep]

    stats = pixel_stats(x_train) if cfg.preprocessing == "standardize" else None
    x_test_t = preprocess(x_test, cfg.preprocessing, stats)  # (N_test, 1, H, W)
    size = tuple(x_test_t.shape[-2:])

    generator = torch.Generator().manual_seed(seed)
    n = min(N_OOD, len(x_test))
    pick = torch.randperm(len(x_test), generator=generator)[:n]
    x_ood_base = torch.as_tensor(x_test[pick.numpy()]).float().div_(255.0).unsqueeze(1)
    ood_unit = make_ood_sets(x_ood_base, size, generator, OOD_NAMES)
    other = _other_dataset_unit(cfg.name, root, n, generator, required=cfg.ood == "other_dataset")
    if other is not None:
        ood_unit["other_dataset"] = other
    return Dataset(
        name=cfg.name,
        task="classification",
        x_train=preprocess(x_train, cfg.preprocessing, stats),
        y_train=torch.as_tensor(y_train, dtype=torch.int64),
        x_test=x_test_t,
        y_test=torch.as_tensor(y_test, dtype=torch.int64),
        n_classes=N_CLASSES,
        ood={k: preprocess(v * 255.0, cfg.preprocessing, stats) for k, v in ood_unit.items()},
    )
