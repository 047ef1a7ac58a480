"""Tests for bbb_core.data.ood: shapes, ranges, determinism and rotation geometry."""

from __future__ import annotations

import string
import urllib.request

import numpy as np
import pytest
import torch

from bbb_core.config import OOD_SETS
from bbb_core.data import ood

SIZES = [28, 8, (12, 20)]


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("tests must not touch the network")

    monkeypatch.setattr(urllib.request, "urlopen", fail)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def images(n: int, size, seed: int = 0) -> torch.Tensor:
    h, w = (size, size) if isinstance(size, int) else size
    return torch.rand(n, 1, h, w, generator=gen(seed))


def blob(size: int = 28, centre: tuple[float, float] | None = None) -> torch.Tensor:
    """A smooth Gaussian blob (1, 1, size, size), by default at the image centre."""
    cy, cx = centre if centre is not None else ((size - 1) / 2, (size - 1) / 2)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    r2 = (yy - cy) ** 2 + (xx - cx) ** 2
    return torch.exp(-r2 / (2 * (size / 8) ** 2)).double()[None, None]


def asymmetric(size: int = 28) -> torch.Tensor:
    """An image with no rotational symmetry: an L-shaped stroke plus a dot, (1, 1, size, size)."""
    x = torch.zeros(1, 1, size, size, dtype=torch.float64)
    x[..., 5:22, 9:13] = 1.0
    x[..., 18:22, 9:20] = 0.7
    x[..., 6, 18] = 0.4
    return x


def test_names_match_config():
    assert set(ood.OOD_NAMES) == set(OOD_SETS) - {"other_dataset"}


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("name", ood.OOD_NAMES)
def test_shape_dtype_and_range(name, size):
    x = images(16, size)
    out = ood.make_ood_sets(x, size, gen(), names=(name,))[name]
    assert out.shape == x.shape
    assert out.dtype == torch.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", ood.OOD_NAMES)
def test_deterministic_per_seed(name):
    x = images(12, 28)
    a = ood.make_ood_sets(x, 28, gen(3), names=(name,))[name]
    b = ood.make_ood_sets(x, 28, gen(3), names=(name,))[name]
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    if name != "inverted":  # the only set without randomness
        c = ood.make_ood_sets(x, 28, gen(4), names=(name,))[name]
        assert not torch.equal(a, c)


def test_a_set_does_not_depend_on_the_other_names():
    x = images(8, 28)
    everything = ood.make_ood_sets(x, 28, gen(1))
    assert tuple(everything) == ood.OOD_NAMES
    alone = ood.make_ood_sets(x, 28, gen(1), names=("photos",))
    torch.testing.assert_close(alone["photos"], everything["photos"], rtol=0, atol=0)


def test_unknown_name_and_size_mismatch_raise():
    x = images(4, 28)
    with pytest.raises(ValueError, match="bbb_core.data.images"):
        ood.make_ood_sets(x, 28, gen(), names=("other_dataset",))
    with pytest.raises(ValueError, match="unknown OOD set"):
        ood.make_ood_sets(x, 28, gen(), names=("nope",))
    with pytest.raises(ValueError, match="x_test_unit"):
        ood.make_ood_sets(x, 8, gen())


def test_gaussian_noise_moments():
    x = ood.gaussian_noise(400, 28, gen())
    assert abs(x.mean().item() - ood.GAUSSIAN_MEAN) < 0.01
    assert 0.2 < x.std().item() < ood.GAUSSIAN_STD  # clamping shrinks the spread a little
    clipped = ((x == 0) | (x == 1)).float().mean().item()
    assert 0.03 < clipped < 0.07  # P(|z| > 2) = 4.55%


def test_uniform_noise_moments():
    x = ood.uniform_noise(400, 28, gen())
    assert abs(x.mean().item() - 0.5) < 0.01
    assert abs(x.var().item() - 1 / 12) < 0.002


def test_inverted_is_one_minus_x():
    x = images(3, 28)
    torch.testing.assert_close(ood.inverted(x), 1 - x, rtol=0, atol=0)


def test_rotate_by_zero_is_identity():
    x = images(5, 28).double()
    torch.testing.assert_close(ood.rotate(x, 0.0), x, rtol=0, atol=1e-12)


def test_rotate_by_90_is_counter_clockwise_like_rot90():
    x = asymmetric()
    expected = torch.rot90(x, 1, dims=(-2, -1))  # counter-clockwise as displayed
    torch.testing.assert_close(ood.rotate(x, 90.0), expected, rtol=0, atol=1e-12)


def test_rotate_by_90_four_times_is_identity_on_a_centred_blob():
    x = blob()
    y = x
    for _ in range(4):
        y = ood.rotate(y, 90.0)
    torch.testing.assert_close(y, x, rtol=0, atol=1e-9)


def test_rotate_180_flips_both_axes():
    x = asymmetric()
    flipped = torch.flip(x, dims=(-2, -1))
    inner = (..., slice(2, -2), slice(2, -2))
    torch.testing.assert_close(ood.rotate(x, 180.0)[inner], flipped[inner], rtol=0, atol=1e-9)


def test_rotate_180_of_a_non_square_image_flips_both_axes():
    x = torch.rand(2, 1, 12, 20, generator=gen(), dtype=torch.float64)
    flipped = torch.flip(x, dims=(-2, -1))
    torch.testing.assert_close(ood.rotate(x, 180.0), flipped, rtol=0, atol=1e-9)


def test_rotate_takes_one_angle_per_image():
    x = torch.cat([asymmetric(), asymmetric()])
    out = ood.rotate(x, torch.tensor([0.0, 180.0]))
    torch.testing.assert_close(out[:1], ood.rotate(x[:1], 0.0))
    torch.testing.assert_close(out[1:], ood.rotate(x[1:], 180.0))


def test_rotate_off_centre_blob_moves_it():
    x = blob(centre=(8.0, 20.0))  # top right
    y = ood.rotate(x, 90.0)[0, 0]
    row, col = divmod(int(y.argmax()), 28)
    assert (row, col) == (7, 8)  # counter-clockwise: top right -> top left


def test_rotated_angles_are_large():
    x = asymmetric().float().expand(64, 1, 28, 28)
    out = ood.rotated(x, gen())
    change = (out - x).abs().flatten(1).sum(1)
    assert (change > 5).all()  # no image left (nearly) as it was


def test_draw_letter_distinct_non_blank_and_centred():
    glyphs = np.stack([ood.draw_letter(c, font_px=48, stroke=1) for c in string.ascii_uppercase])
    assert glyphs.shape == (26, ood.LETTER_CANVAS, ood.LETTER_CANVAS)
    assert glyphs.dtype == np.uint8
    assert (glyphs.max(axis=(1, 2)) == 255).all()
    assert ((glyphs > 127).mean(axis=(1, 2)) > 0.02).all()
    flat = glyphs.reshape(26, -1).astype(np.int32)
    distance = np.abs(flat[:, None] - flat[None]).mean(-1)
    assert (distance + np.eye(26) * 1e9 > 1).all()  # every pair differs (O vs Q the least)
    mass = glyphs.astype(np.float64)
    yy, xx = np.mgrid[: ood.LETTER_CANVAS, : ood.LETTER_CANVAS]
    cy = (mass * yy).sum((1, 2)) / mass.sum((1, 2))
    cx = (mass * xx).sum((1, 2)) / mass.sum((1, 2))
    middle = ood.LETTER_CANVAS / 2
    assert np.abs(cy - middle).max() < 8 and np.abs(cx - middle).max() < 8


def test_letters_are_non_blank_and_varied():
    x = ood.letters(64, 28, gen())
    assert (x.amax(dim=(1, 2, 3)) > 0.5).all()
    assert (x.mean(dim=(1, 2, 3)) > 0.02).all()
    assert (x[:, :, 0, :] < 0.05).all() and (x[:, :, -1, :] < 0.05).all()  # black border rows
    assert len({tuple(v.flatten().tolist()) for v in x}) == 64


def test_photos_are_non_constant():
    x = ood.photos(64, 28, gen())
    per_image_std = x.flatten(1).std(1)
    assert (per_image_std > 0.01).float().mean() > 0.75
    assert x.std() > 0.1
    assert len({tuple(v.flatten().tolist()) for v in x}) == 64
