"""Tests for `bbb_core.data.toy`: shapes, determinism, the config overrides, the true functions and
noise stds against independent re-implementations and hand-computed numbers, and the 2-D grid,
standardisation and OOD conventions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import Tensor

from bbb_core.config import CLASSIFICATION_DATASETS, REGRESSION_DATASETS, DataConfig
from bbb_core.data.toy import TOY_DATASETS, TOY_DEFAULTS, make_toy

REGRESSION = ("blundell", "cubic", "gap", "hetero")
CLASSIFICATION = ("moons", "circles", "spirals", "xor")
ALL = REGRESSION + CLASSIFICATION

EXPECTED_DEFAULTS = {  # name -> (n_train, noise), as specified
    "blundell": (200, 0.02),
    "cubic": (20, 3.0),
    "gap": (80, 0.1),
    "hetero": (200, 0.5),
    "moons": (200, 0.1),
    "circles": (200, 0.08),
    "spirals": (200, 0.2),
    "xor": (200, 0.25),
}


def _blundell(x: Tensor) -> Tensor:
    return x + 0.3 * torch.sin(2 * math.pi * x) + 0.3 * torch.sin(4 * math.pi * x)


ORACLE_F = {  # the noise-free functions, written independently of the module
    "blundell": _blundell,
    "cubic": lambda x: x**3,
    "gap": lambda x: torch.sin(2 * x) + 0.3 * x,
    "hetero": lambda x: torch.sin(x) + 0.2 * x,
}


def toy(name: str, seed: int = 0, **fields: object):
    return make_toy(DataConfig(name=name, **fields), seed)


def tensors(d) -> dict[str, Tensor]:
    """Every tensor a Dataset carries, by name."""
    out = {k: getattr(d, k) for k in ("x_train", "y_train", "x_test", "y_test", "x_grid")}
    out["in_range"] = d.in_range
    for k in ("f_grid", "noise_grid"):
        if getattr(d, k) is not None:
            out[k] = getattr(d, k)
    if d.grid_axes is not None:
        out["xs"], out["ys"] = d.grid_axes
    out.update({f"ood.{k}": v for k, v in d.ood.items()})
    return out


def residual(d) -> Tensor:
    """y - f(x) on the training set, in float64."""
    return d.y_train.double() - ORACLE_F[d.name](d.x_train[:, 0].double())


def loo_1nn_accuracy(x: Tensor, y: Tensor) -> float:
    dist = torch.cdist(x, x)
    dist.fill_diagonal_(math.inf)
    return (y[dist.argmin(dim=1)] == y).double().mean().item()


# --- all datasets ---------------------------------------------------------------------------------


def test_names_and_defaults():
    assert TOY_DATASETS == REGRESSION_DATASETS + CLASSIFICATION_DATASETS == ALL
    assert TOY_DEFAULTS == EXPECTED_DEFAULTS


@pytest.mark.parametrize("name", ALL)
def test_shapes_and_dtypes(name):
    d = toy(name)
    n = EXPECTED_DEFAULTS[name][0]
    assert d.name == name
    for k, t in tensors(d).items():
        assert t.device.type == "cpu", k
        expected = torch.bool if k == "in_range" else torch.float32
        expected = torch.int64 if (k.startswith("y_") and name in CLASSIFICATION) else expected
        assert t.dtype == expected, k
    if name in REGRESSION:
        assert d.task == "regression" and d.n_classes == 1
        assert d.x_train.shape == (n, 1) and d.y_train.shape == (n,)
        assert d.x_test.shape == (200, 1) and d.y_test.shape == (200,)
        assert d.x_grid.shape == (400, 1)
        assert d.in_range.shape == d.f_grid.shape == d.noise_grid.shape == (400,)
        assert d.grid_axes is None and d.ood == {}
    else:
        assert d.task == "classification" and d.n_classes == 2
        assert d.x_train.shape == (n, 2) and d.y_train.shape == (n,)
        assert d.x_test.shape == (500, 2) and d.y_test.shape == (500,)
        assert d.x_grid.shape == (3600, 2) and d.in_range.shape == (3600,)
        assert d.f_grid is None and d.noise_grid is None and d.noise_std is None
        assert set(d.ood) == {"far"} and d.ood["far"].shape == (500, 2)
    assert d.input_shape == d.x_train.shape[1:] and not d.is_image


@pytest.mark.parametrize("name", ALL)
def test_same_seed_is_bit_identical(name):
    a, b = tensors(toy(name, seed=3)), tensors(toy(name, seed=3))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.parametrize("name", ALL)
def test_different_seed_differs(name):
    a, b = toy(name, seed=0), toy(name, seed=1)
    assert not torch.equal(a.x_train, b.x_train)
    assert not torch.equal(a.x_test, b.x_test)
    assert not torch.equal(a.x_train[:20], a.x_test[:20])  # the test set is a fresh draw


@pytest.mark.parametrize("name", ALL)
def test_global_rngs_untouched(name):
    torch_state, np_state = torch.get_rng_state(), np.random.get_state()
    toy(name)
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert np.array_equal(np.random.get_state()[1], np_state[1])


@pytest.mark.parametrize("name", ALL)
def test_defaults_equal_explicit_values(name):
    n, noise = EXPECTED_DEFAULTS[name]
    a, b = tensors(toy(name)), tensors(toy(name, n_train=n, noise=noise))
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.parametrize("name", ALL)
def test_n_train_override(name):
    d, ref = toy(name, n_train=37), toy(name)
    assert d.x_train.shape[0] == d.y_train.shape[0] == d.n_train == 37
    # The test set comes from its own stream, so it does not move (2-D inputs are re-standardised
    # with the new training statistics; their labels stay).
    assert torch.equal(d.y_test, ref.y_test)
    if name in REGRESSION:
        assert torch.equal(d.x_test, ref.x_test)


@pytest.mark.parametrize("name", ["digits", "mnist", "nope"])
def test_unknown_name_raises(name):
    with pytest.raises(ValueError, match="data.name") as info:
        make_toy(DataConfig(name=name), 0)
    assert name in str(info.value)
    assert all(toy_name in str(info.value) for toy_name in ALL)


# --- regression -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", REGRESSION)
def test_grid_and_in_range_follow_train_range(name):
    d = toy(name)
    x = d.x_grid[:, 0]
    lows = [low for low, _ in d.train_range]
    highs = [high for _, high in d.train_range]
    assert x[0] < min(lows) and x[-1] > max(highs)  # the grid extends past the data
    torch.testing.assert_close(x.diff(), torch.full((399,), (x[-1] - x[0]).item() / 399))
    inside = torch.zeros(400, dtype=torch.bool)
    for low, high in d.train_range:
        inside |= (x >= low) & (x <= high)
    assert torch.equal(d.in_range, inside)
    for xs in (d.x_train[:, 0], d.x_test[:, 0]):
        hit = torch.zeros_like(xs, dtype=torch.bool)
        for low, high in d.train_range:
            hit |= (xs >= low) & (xs <= high)
        assert hit.all()


@pytest.mark.parametrize("name", REGRESSION)
def test_f_grid_is_the_true_function(name):
    d = toy(name)
    expected = ORACLE_F[name](d.x_grid[:, 0].double()).float()
    torch.testing.assert_close(d.f_grid, expected)


@pytest.mark.parametrize("name", REGRESSION)
def test_zero_noise_gives_the_function(name):
    d = toy(name, noise=0.0)
    zeros = torch.zeros(d.n_train, dtype=torch.float64)
    torch.testing.assert_close(residual(d), zeros, atol=1e-4, rtol=0)
    assert d.noise_grid.min() >= 0 and d.noise_grid.max() < 1e-6  # blundell: rounding residue


@pytest.mark.parametrize("name", ["cubic", "gap", "hetero"])
def test_noise_override_scales_the_noise(name):
    noise = EXPECTED_DEFAULTS[name][1]
    a, b = toy(name), toy(name, noise=2 * noise)
    torch.testing.assert_close(residual(b), 2 * residual(a), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(b.noise_grid, 2 * a.noise_grid)
    assert b.noise_std == (None if name == "hetero" else 2 * noise)


def test_blundell_inputs_and_grid():
    d = toy("blundell")
    assert d.train_range == [(0.0, 0.5)]
    assert d.x_train.min() >= 0 and d.x_train.max() <= 0.5
    torch.testing.assert_close(d.x_grid[[0, -1], 0], torch.tensor([-0.4, 1.2]))
    assert d.noise_std is None  # input noise: the std of y given x varies with x


def test_blundell_residual_rms_hand_number():
    # y = f(x + e), so to first order y - f(x) = e f'(x) with f'(x) = 1 + 0.6 pi cos(2 pi x)
    # + 1.2 pi cos(4 pi x); averaged over x ~ U[0, 0.5], E[f'^2] = 1 + 0.18 pi^2 + 0.72 pi^2.
    # rms = 0.02 * sqrt(1 + 0.9 pi^2) = 0.06287, not the naive 0.02 (a 1e6-point check: 0.06238).
    d = toy("blundell", n_train=20_000)
    rms = residual(d).pow(2).mean().sqrt().item()
    assert rms == pytest.approx(0.02 * math.sqrt(1 + 0.9 * math.pi**2), rel=0.05)
    mean_var = d.noise_grid[d.in_range].double().pow(2).mean().item()  # the exact std, averaged
    assert rms == pytest.approx(math.sqrt(mean_var), rel=0.05)


def test_blundell_noise_grid_matches_monte_carlo():
    d = toy("blundell", noise=0.05)
    idx = torch.arange(0, 400, 37)
    x = d.x_grid[idx, 0].double()  # (K,)
    gen = torch.Generator().manual_seed(0)
    e = 0.05 * torch.randn(200_000, 1, generator=gen, dtype=torch.float64)
    mc_std = _blundell(x + e).std(dim=0)
    torch.testing.assert_close(d.noise_grid[idx].double(), mc_std, rtol=0.02, atol=1e-4)


@pytest.mark.parametrize("gap", [1.0, 2.5])
def test_gap_has_no_points_inside(gap):
    d = toy("gap", gap=gap)
    half = gap / 2
    assert d.train_range == [(-half - 1.5, -half), (half, half + 1.5)]
    for x in (d.x_train[:, 0], d.x_test[:, 0]):
        assert not ((x > -half) & (x < half)).any()
    assert (d.x_train[:, 0] < 0).sum() == 40  # half the points on each side
    x = d.x_grid[:, 0]
    in_gap = (x > -half) & (x < half)
    assert in_gap.sum() > 10 and not d.in_range[in_gap].any()
    torch.testing.assert_close(x[[0, -1]], torch.tensor([-half - 2.5, half + 2.5]))


def test_hetero_noise_grows_left_to_right():
    d = toy("hetero", n_train=3000)
    x, r = d.x_train[:, 0], residual(d)
    left, right = r[x < -1].std().item(), r[x > 1].std().item()
    # s(x) = 0.5 (0.1 + (x + 3) / 6): rms over [-3, -1] is 0.142, over [1, 3] 0.469.
    assert left == pytest.approx(0.142, rel=0.15) and right == pytest.approx(0.469, rel=0.15)
    assert right > 2.5 * left
    grid = d.x_grid[:, 0]
    s = d.noise_grid
    torch.testing.assert_close(s[(grid - 3).abs().argmin()], torch.tensor(0.55), atol=0.005, rtol=0)
    torch.testing.assert_close(s[(grid + 3).abs().argmin()], torch.tensor(0.05), atol=0.005, rtol=0)
    assert s.min() >= 0.01 - 1e-7 and (s.diff() >= 0).all() and d.noise_std is None


# --- 2-D classification ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", CLASSIFICATION)
def test_labels_balanced(name):
    d = toy(name)
    for y in (d.y_train, d.y_test):
        assert set(y.tolist()) == {0, 1}
        assert 0.4 <= y.double().mean().item() <= 0.6


@pytest.mark.parametrize("name", CLASSIFICATION)
def test_standardised_with_training_statistics(name):
    d = toy(name)
    torch.testing.assert_close(d.x_train.mean(dim=0), torch.zeros(2), atol=1e-5, rtol=0)
    torch.testing.assert_close(
        d.x_train.std(dim=0, unbiased=False), torch.ones(2), atol=1e-4, rtol=0
    )
    torch.testing.assert_close(d.x_test.mean(dim=0), torch.zeros(2), atol=0.2, rtol=0)
    torch.testing.assert_close(d.x_test.std(dim=0), torch.ones(2), atol=0.2, rtol=0)
    assert d.x_train.abs().max() < 3  # roughly [-2, 2]^2


@pytest.mark.parametrize("name", CLASSIFICATION)
def test_noise_controls_class_overlap(name):
    noise = EXPECTED_DEFAULTS[name][1]
    clean, blurred = toy(name, noise=0.0), toy(name, noise=10 * noise)
    assert loo_1nn_accuracy(clean.x_train, clean.y_train) > 0.95
    assert loo_1nn_accuracy(blurred.x_train, blurred.y_train) < 0.85


@pytest.mark.parametrize("name", CLASSIFICATION)
def test_grid_layout(name):
    d = toy(name)
    xs, ys = d.grid_axes
    torch.testing.assert_close(xs, torch.linspace(-4, 4, 60))
    torch.testing.assert_close(ys, torch.linspace(-4, 4, 60))
    grid = d.x_grid.reshape(60, 60, 2)  # [i, j] = (xs[j], ys[i]): rows follow ys
    assert torch.equal(grid[..., 0], xs.expand(60, 60))
    assert torch.equal(grid[..., 1], ys[:, None].expand(60, 60))
    assert torch.equal(grid[5, 7], torch.stack([xs[7], ys[5]]))


@pytest.mark.parametrize("name", CLASSIFICATION)
def test_in_range_near_training_points(name):
    d = toy(name)
    nearest = torch.cdist(d.x_train, d.x_grid).argmin(dim=1)  # within 0.1 of each point
    assert d.in_range[nearest].all()
    corners = torch.tensor([[-4.0, -4.0], [-4.0, 4.0], [4.0, -4.0], [4.0, 4.0]])
    assert not d.in_range[torch.cdist(corners, d.x_grid).argmin(dim=1)].any()
    assert 0.05 < d.in_range.double().mean().item() < 0.6


@pytest.mark.parametrize("name", CLASSIFICATION)
@pytest.mark.parametrize("seed", [0, 1])
def test_ood_far_points(name, seed):
    d = toy(name, seed=seed)
    far = d.ood["far"]
    r = far.norm(dim=1)
    assert r.min() >= 3 - 1e-5 and r.max() <= 4 + 1e-5
    # uniform in area: r^2 ~ U[9, 16], so half the points have r^2 < 12.5
    assert 0.4 < (r**2 < 12.5).double().mean().item() < 0.6
    assert (far > 0).all(dim=1).any() and (far < 0).all(dim=1).any()  # all around the ring
    data = torch.cat([d.x_train, d.x_test])
    assert torch.cdist(far, data).min() > 0.5  # out of range by the in_range rule
    ring = (d.x_grid.norm(dim=1) >= 3) & (d.x_grid.norm(dim=1) <= 4)
    assert not d.in_range[ring].any()
