"""Toy regression curves and 2-D classification sets, generated from a seed.

`make_toy(cfg, seed)` returns a `Dataset` for any name in `TOY_DATASETS`. `TOY_DEFAULTS` holds each
set's default `(n_train, noise)`; `cfg.n_train` and `cfg.noise` override them when not None.

Regression: x (N, 1), y (N,); a 400-point grid wider than the data carrying the noise-free function
(`f_grid`) and the true noise std of y given x (`noise_grid`); a test set of 200 fresh points drawn
like the training points.

- "blundell": the curve of Blundell et al. (2015), "Weight Uncertainty in Neural Networks",
  section 5.2: y = x + 0.3 sin(2 pi (x + e)) + 0.3 sin(4 pi (x + e)) + e, e ~ N(0, noise^2),
  x ~ U[0, 0.5]. This is y = f(x + e): the noise enters through the input, so the std of y given
  x is not `noise` but about noise * |f'(x)| (~3x larger on average, near 0 where f' = 0).
  `noise_grid` holds its exact value (`_blundell_std`) and `noise_std` is None.
- "cubic": y = x^3 + e, e ~ N(0, 3^2), 20 points x ~ U[-4, 4], from Hernández-Lobato & Adams
  (2015), "Probabilistic Backpropagation for Scalable Learning of Bayesian Neural Networks".
- "gap": y = sin(2x) + 0.3x + e on two clusters with an empty interval of width `cfg.gap` centred
  at 0, after Foong et al. (2019), "'In-Between' Uncertainty in Bayesian Neural Networks".
- "hetero": y = sin(x) + 0.2x + e, x ~ U[-3, 3], with a noise std that grows linearly in x.

2-D classification: x (N, 2), y int64 in {0, 1}; a test set of 500 fresh points. "moons" and
"circles" come from scikit-learn, "spirals" are two interleaved arms, "xor" four Gaussian blobs;
`noise` is the jitter std in each generator's raw units. Train and test are standardised with the
training set's per-coordinate mean and std. The grid spans [-4, 4]^2 (layout in `_grid_2d`);
`in_range` marks grid points within 0.5 of a training point; `ood["far"]` holds 500 points spread
uniformly over the annulus 3 <= r <= 4, away from all the data.

Randomness: `numpy.random.SeedSequence(seed)` is split into independent streams for the training
set, the test set and the OOD set, so the test set does not change with `n_train`; no global RNG is
used. Everything is computed in float64 and stored as float32 CPU tensors (labels int64).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import numpy as np
import torch
from sklearn.datasets import make_circles, make_moons
from torch import Tensor

from bbb_core.config import CLASSIFICATION_DATASETS, REGRESSION_DATASETS, DataConfig
from bbb_core.data.base import Dataset

TOY_DATASETS = REGRESSION_DATASETS + CLASSIFICATION_DATASETS

TOY_DEFAULTS: dict[str, tuple[int, float]] = {  # name -> (n_train, noise)
    "blundell": (200, 0.02),  # std of e, the input jitter
    "cubic": (20, 3.0),
    "gap": (80, 0.1),
    "hetero": (200, 0.5),  # scale of s(x) = noise * (0.1 + (x + 3) / 6)
    "moons": (200, 0.1),
    "circles": (200, 0.08),
    "spirals": (200, 0.2),
    "xor": (200, 0.25),
}

GRID_POINTS = 400  # regression grid size
N_TEST_REGRESSION = 200
N_TEST_CLASSIFICATION = 500
AXIS_LIMIT = 4.0  # 2-D grid spans [-AXIS_LIMIT, AXIS_LIMIT]^2 (standardised units)
AXIS_POINTS = 60  # 2-D grid points per axis
IN_RANGE_RADIUS = 0.5  # 2-D: a grid point is in range within this distance of a training point
N_OOD = 500
OOD_RADII = (3.0, 4.0)  # 2-D: the "far" annulus

Array = np.ndarray
Draw = Callable[[np.random.Generator, int], tuple[Array, Array]]

_BLUNDELL_TERMS = ((0.3, 2 * math.pi), (0.3, 4 * math.pi))  # (c, b) of each c * sin(b * u)


def _settings(cfg: DataConfig) -> tuple[int, float]:
    n_train, noise = TOY_DEFAULTS[cfg.name]
    n_train = n_train if cfg.n_train is None else cfg.n_train
    return n_train, noise if cfg.noise is None else float(cfg.noise)


def _streams(seed: int) -> list[np.random.Generator]:
    """Independent generators for the training, test and OOD sets."""
    return [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3)]


def _f32(a: Array) -> Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))


# --- regression ----------------------------------------------------------------------------------


def _blundell_f(u: Array) -> Array:
    return u + sum(c * np.sin(b * u) for c, b in _BLUNDELL_TERMS)


def _blundell_std(x: Array, noise: float) -> Array:
    """Exact std of y = f(x + e) given x, for e ~ N(0, noise^2).

    With u = x + e: E[sin(b u)] = sin(b x) phi(b) and E[cos(b u)] = cos(b x) phi(b), where
    phi(t) = exp(-(t noise)^2 / 2); by Stein's lemma Cov(e, c sin(b u)) = c b noise^2 E[cos(b u)].
    """

    def phi(t: float) -> float:
        return math.exp(-0.5 * (t * noise) ** 2)

    var = np.full_like(x, noise**2)
    for c, b in _BLUNDELL_TERMS:
        var += 2 * c * b * noise**2 * np.cos(b * x) * phi(b)
        for c2, b2 in _BLUNDELL_TERMS:  # Cov(c sin(b u), c2 sin(b2 u)), both orders
            e_prod = 0.5 * (np.cos((b - b2) * x) * phi(b - b2) - np.cos((b + b2) * x) * phi(b + b2))
            var += c * c2 * (e_prod - np.sin(b * x) * phi(b) * np.sin(b2 * x) * phi(b2))
    return np.sqrt(np.maximum(var, 0.0))  # rounding can leave -1e-17 where noise = 0


def _regression(
    name: str,
    seed: int,
    n_train: int,
    draw: Draw,
    *,
    f: Callable[[Array], Array],
    std: Callable[[Array], Array],
    grid: tuple[float, float],
    train_range: list[tuple[float, float]],
    noise_std: float | None,
) -> Dataset:
    rng_train, rng_test, _ = _streams(seed)
    x_train, y_train = draw(rng_train, n_train)
    x_test, y_test = draw(rng_test, N_TEST_REGRESSION)
    # f, std and in_range are evaluated at the grid points exactly as stored (float32).
    x_grid = np.linspace(*grid, GRID_POINTS).astype(np.float32).astype(np.float64)
    in_range = np.zeros(GRID_POINTS, dtype=bool)
    for low, high in train_range:
        in_range |= (x_grid >= low) & (x_grid <= high)
    return Dataset(
        name=name,
        task="regression",
        x_train=_f32(x_train.reshape(-1, 1)),  # (N, 1)
        y_train=_f32(y_train),  # (N,)
        x_test=_f32(x_test.reshape(-1, 1)),
        y_test=_f32(y_test),
        x_grid=_f32(x_grid.reshape(-1, 1)),  # (G, 1)
        in_range=torch.from_numpy(in_range),  # (G,)
        f_grid=_f32(f(x_grid)),  # (G,)
        noise_grid=_f32(std(x_grid)),  # (G,)
        n_classes=1,
        train_range=[(float(low), float(high)) for low, high in train_range],
        noise_std=noise_std,
    )


def _blundell(cfg: DataConfig, seed: int) -> Dataset:
    n_train, noise = _settings(cfg)

    def draw(rng: np.random.Generator, m: int) -> tuple[Array, Array]:
        x = rng.uniform(0.0, 0.5, m)
        return x, _blundell_f(x + rng.normal(0.0, noise, m))

    return _regression(
        cfg.name,
        seed,
        n_train,
        draw,
        f=_blundell_f,
        std=partial(_blundell_std, noise=noise),
        grid=(-0.4, 1.2),
        train_range=[(0.0, 0.5)],
        noise_std=None,
    )


def _cubic_f(x: Array) -> Array:
    return x**3


def _cubic(cfg: DataConfig, seed: int) -> Dataset:
    n_train, noise = _settings(cfg)

    def draw(rng: np.random.Generator, m: int) -> tuple[Array, Array]:
        x = rng.uniform(-4.0, 4.0, m)
        return x, _cubic_f(x) + rng.normal(0.0, noise, m)

    return _regression(
        cfg.name,
        seed,
        n_train,
        draw,
        f=_cubic_f,
        std=lambda x: np.full_like(x, noise),
        grid=(-6.0, 6.0),
        train_range=[(-4.0, 4.0)],
        noise_std=noise,
    )


def _gap_f(x: Array) -> Array:
    return np.sin(2 * x) + 0.3 * x


def _gap(cfg: DataConfig, seed: int) -> Dataset:
    n_train, noise = _settings(cfg)
    half = cfg.gap / 2

    def draw(rng: np.random.Generator, m: int) -> tuple[Array, Array]:
        offset = rng.uniform(0.0, 1.5, m)  # distance from the gap's edge
        x = np.where(np.arange(m) < m // 2, -half - offset, half + offset)
        x = rng.permutation(x)
        return x, _gap_f(x) + rng.normal(0.0, noise, m)

    return _regression(
        cfg.name,
        seed,
        n_train,
        draw,
        f=_gap_f,
        std=lambda x: np.full_like(x, noise),
        grid=(-half - 2.5, half + 2.5),
        train_range=[(-half - 1.5, -half), (half, half + 1.5)],
        noise_std=noise,
    )


def _hetero_f(x: Array) -> Array:
    return np.sin(x) + 0.2 * x


def _hetero_std(x: Array, noise: float) -> Array:
    """noise * (0.1 + (x + 3) / 6): from 0.1 noise at x = -3 to 1.1 noise at x = 3.

    Floored at 0.02 noise (0.01 at the default) where the grid extends the line below x = -3.4.
    """
    return noise * np.maximum(0.1 + (x + 3.0) / 6.0, 0.02)


def _hetero(cfg: DataConfig, seed: int) -> Dataset:
    n_train, noise = _settings(cfg)

    def draw(rng: np.random.Generator, m: int) -> tuple[Array, Array]:
        x = rng.uniform(-3.0, 3.0, m)
        return x, _hetero_f(x) + _hetero_std(x, noise) * rng.standard_normal(m)

    return _regression(
        cfg.name,
        seed,
        n_train,
        draw,
        f=_hetero_f,
        std=partial(_hetero_std, noise=noise),
        grid=(-4.5, 4.5),
        train_range=[(-3.0, 3.0)],
        noise_std=None,
    )


# --- 2-D classification --------------------------------------------------------------------------


def _sklearn_seed(rng: np.random.Generator) -> int:
    return int(rng.integers(2**31 - 1))


def _moons(rng: np.random.Generator, m: int, noise: float) -> tuple[Array, Array]:
    return make_moons(m, noise=noise, random_state=_sklearn_seed(rng))


def _circles(rng: np.random.Generator, m: int, noise: float) -> tuple[Array, Array]:
    return make_circles(m, noise=noise, factor=0.5, random_state=_sklearn_seed(rng))


def _spirals(rng: np.random.Generator, m: int, noise: float) -> tuple[Array, Array]:
    """Two arms, r in [0.5, 3.5], 1.75 turns each, the second rotated by pi; label = arm."""
    arm = rng.permutation(np.arange(m) % 2)
    r = np.sqrt(rng.uniform(0.5**2, 3.5**2, m))  # density ~ r: roughly even spacing along an arm
    theta = 1.75 * 2 * math.pi * (r - 0.5) / 3.0 + math.pi * arm
    x = np.stack([r * np.cos(theta), r * np.sin(theta)], axis=1)
    return x + rng.normal(0.0, noise, (m, 2)), arm


def _xor(rng: np.random.Generator, m: int, noise: float) -> tuple[Array, Array]:
    """Blobs of std `noise` at (+-1, +-1); label 1 where the centre's coordinates differ in sign."""
    blob = rng.permutation(np.arange(m) % 4)
    centre = np.array([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]])[blob]
    label = (centre[:, 0] != centre[:, 1]).astype(np.int64)
    return centre + rng.normal(0.0, noise, (m, 2)), label


def _grid_2d(xs: Tensor, ys: Tensor) -> Tensor:
    """The (len(ys) * len(xs), 2) meshgrid, row-major over (y, x).

    `grid.reshape(len(ys), len(xs), 2)[i, j] == (xs[j], ys[i])`, so a prediction `p` on the grid
    reshaped to `(len(ys), len(xs))` is an image whose rows follow ys and columns follow xs (what
    plotly's `go.Heatmap(x=xs, y=ys, z=p.reshape(len(ys), len(xs)))` expects).
    """
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx, gy], dim=-1).reshape(-1, 2)


def _annulus(rng: np.random.Generator, m: int, low: float, high: float) -> Array:
    """`m` points uniform in area on low <= |x| <= high."""
    r = np.sqrt(rng.uniform(low**2, high**2, m))
    theta = rng.uniform(0.0, 2 * math.pi, m)
    return np.stack([r * np.cos(theta), r * np.sin(theta)], axis=1)


def _classification(
    cfg: DataConfig,
    seed: int,
    draw: Callable[[np.random.Generator, int, float], tuple[Array, Array]],
) -> Dataset:
    n_train, noise = _settings(cfg)
    rng_train, rng_test, rng_ood = _streams(seed)
    x_train, y_train = draw(rng_train, n_train, noise)
    x_test, y_test = draw(rng_test, N_TEST_CLASSIFICATION, noise)
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)  # training statistics only
    x_train_t = _f32((x_train - mean) / std)  # (N, 2)
    axis = torch.linspace(-AXIS_LIMIT, AXIS_LIMIT, AXIS_POINTS)
    xs, ys = axis, axis.clone()
    x_grid = _grid_2d(xs, ys)  # (AXIS_POINTS**2, 2)
    in_range = torch.cdist(x_grid, x_train_t).min(dim=1).values < IN_RANGE_RADIUS
    return Dataset(
        name=cfg.name,
        task="classification",
        x_train=x_train_t,
        y_train=torch.from_numpy(np.asarray(y_train, dtype=np.int64)),  # (N,)
        x_test=_f32((x_test - mean) / std),
        y_test=torch.from_numpy(np.asarray(y_test, dtype=np.int64)),
        x_grid=x_grid,
        in_range=in_range,  # (AXIS_POINTS**2,)
        grid_axes=(xs, ys),
        n_classes=2,
        ood={"far": _f32(_annulus(rng_ood, N_OOD, *OOD_RADII))},  # (N_OOD, 2)
    )


_MAKERS: dict[str, Callable[[DataConfig, int], Dataset]] = {
    "blundell": _blundell,
    "cubic": _cubic,
    "gap": _gap,
    "hetero": _hetero,
    "moons": partial(_classification, draw=_moons),
    "circles": partial(_classification, draw=_circles),
    "spirals": partial(_classification, draw=_spirals),
    "xor": partial(_classification, draw=_xor),
}


def make_toy(cfg: DataConfig, seed: int) -> Dataset:
    """Generate toy dataset `cfg.name`; the same `cfg` and `seed` give bit-identical tensors.

    Raises:
        ValueError: `cfg.name` is not a toy dataset (image sets are loaded elsewhere).
    """
    if cfg.name not in _MAKERS:
        raise ValueError(
            f"data.name must be one of {', '.join(TOY_DATASETS)} for make_toy; got {cfg.name!r}"
        )
    return _MAKERS[cfg.name](cfg, seed)
