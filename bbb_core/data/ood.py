"""Out-of-distribution (OOD) image sets for the image datasets.

A network trained on digits should be unsure about inputs that are not digits. This module makes
such inputs, all as float32 tensors (N, 1, H, W) with pixel values in [0, 1] (the "unit" scale:
uint8 pixels / 255), so the caller preprocesses them exactly like its test set:

- ``gaussian_noise``: i.i.d. N(0.5, 0.25^2) pixels, clamped to [0, 1];
- ``uniform_noise``: i.i.d. U(0, 1) pixels;
- ``inverted``: test images with 1 - x (dark strokes on a white background);
- ``rotated``: test images rotated by 60 to 180 degrees either way;
- ``letters``: capital letters A-Z rendered with Pillow's bundled font (notMNIST-like);
- ``photos``: grayscale patches of scikit-learn's two bundled sample photographs.

The seventh set of `config.OOD_SETS`, "other_dataset" (MNIST <-> Fashion-MNIST), needs files on
disk and is supplied by `bbb_core.data.images`. Nothing here touches the network.

Every random choice is drawn from an explicit `torch.Generator`, so a seed fixes every set.

Noise, notMNIST letters and other data sets as OOD inputs for MNIST follow Hendrycks & Gimpel,
"A Baseline for Detecting Misclassified and Out-of-Distribution Examples in Neural Networks",
ICLR 2017.
"""

from __future__ import annotations

import math
import string
from collections.abc import Callable
from functools import cache, lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

Size = int | tuple[int, int]

GAUSSIAN_MEAN = 0.5  # gaussian_noise: pixel mean, mid-grey
GAUSSIAN_STD = 0.25  # gaussian_noise: pixel std; ~95% of pixels fall in [0, 1] before clamping
LETTER_CANVAS = 64  # letters: side of the canvas a letter is drawn on before resizing
PATCH_MIN, PATCH_MAX = 32, 160  # photos: side of a cropped square patch, in photo pixels


def _hw(size: Size) -> tuple[int, int]:
    """`size` as (H, W); an int means a square."""
    h, w = (size, size) if isinstance(size, int) else size
    if h < 1 or w < 1:
        raise ValueError(f"size must be positive; got {size!r}")
    return int(h), int(w)


def gaussian_noise(n: int, size: Size, generator: torch.Generator) -> Tensor:
    """n images of i.i.d. N(GAUSSIAN_MEAN, GAUSSIAN_STD^2) pixels, clamped to [0, 1].

    Mid-grey noise with a spread like that of real pixels; the clamp puts ~2.5% of pixels
    exactly on 0 and on 1 each. Returns (n, 1, H, W) float32.
    """
    h, w = _hw(size)
    x = torch.randn(n, 1, h, w, generator=generator)
    return (GAUSSIAN_MEAN + GAUSSIAN_STD * x).clamp_(0.0, 1.0)


def uniform_noise(n: int, size: Size, generator: torch.Generator) -> Tensor:
    """n images of i.i.d. U(0, 1) pixels. Returns (n, 1, H, W) float32."""
    h, w = _hw(size)
    return torch.rand(n, 1, h, w, generator=generator)


def inverted(x: Tensor) -> Tensor:
    """Negative images 1 - x of unit-scale images x (N, 1, H, W)."""
    return 1.0 - x


def rotate(x: Tensor, degrees: float | Tensor) -> Tensor:
    """Rotate images counter-clockwise (as displayed, row 0 on top) about their centre.

    Bilinear interpolation; pixels that come from outside the image are 0 (black). A multiple of
    90 degrees on a square image moves pixel centres onto pixel centres, so it is exact up to
    rounding (180 degrees equals flipping both axes).

    Args:
        x: images (N, C, H, W).
        degrees: one angle for all images, or one per image (N,).

    Returns:
        The rotated images, same shape and dtype as x.
    """
    n, _, h, w = x.shape
    rad = torch.deg2rad(torch.as_tensor(degrees, dtype=torch.float64)).expand(n)
    cos, sin = torch.cos(rad), torch.sin(rad)
    # affine_grid maps output to input coordinates, normalised to [-1, 1] along each axis;
    # h / w and w / h undo that normalisation so non-square images rotate rigidly.
    theta = torch.zeros(n, 2, 3, dtype=torch.float64)
    theta[:, 0, 0], theta[:, 0, 1] = cos, -sin * h / w
    theta[:, 1, 0], theta[:, 1, 1] = sin * w / h, cos
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)  # (N, H, W, 2)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def rotated(
    x: Tensor, generator: torch.Generator, min_deg: float = 60.0, max_deg: float = 180.0
) -> Tensor:
    """Rotate each image by an angle uniform in [min_deg, max_deg], in a random direction."""
    n = x.shape[0]
    magnitude = min_deg + (max_deg - min_deg) * torch.rand(n, generator=generator)
    sign = torch.randint(0, 2, (n,), generator=generator) * 2 - 1
    return rotate(x, magnitude * sign)


@cache
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def draw_letter(
    letter: str,
    font_px: int,
    stroke: int = 0,
    offset: tuple[float, float] = (0.0, 0.0),
    canvas: int = LETTER_CANVAS,
) -> np.ndarray:
    """One glyph, white (255) on black (0), its box centred `offset` (dx, dy) pixels off the
    middle of a `canvas`-pixel square; Pillow's bundled font. Returns (canvas, canvas) uint8."""
    image = Image.new("L", (canvas, canvas), 0)
    ImageDraw.Draw(image).text(
        (canvas / 2 + offset[0], canvas / 2 + offset[1]),
        letter,
        fill=255,
        font=_font(font_px),
        stroke_width=stroke,
        stroke_fill=255,
        anchor="mm",  # (x, y) is the middle of the text
    )
    return np.asarray(image)


def letters(n: int, size: Size, generator: torch.Generator) -> Tensor:
    """n capital letters A-Z, white on black, like notMNIST.

    Each letter is drawn (`draw_letter`) on a LETTER_CANVAS-pixel square: a random letter, a font
    size of 60% to 90% of the canvas (capitals about as tall as an MNIST digit), strokes 0 to 3
    pixels thicker, up to 8% of the canvas off the middle; then area-resized to `size`.
    Returns (n, 1, H, W).
    """
    h, w = _hw(size)
    c = LETTER_CANVAS
    which = torch.randint(0, 26, (n,), generator=generator).tolist()
    font_px = torch.randint(int(0.6 * c), int(0.9 * c) + 1, (n,), generator=generator).tolist()
    stroke = torch.randint(0, 4, (n,), generator=generator).tolist()
    shift = ((torch.rand(n, 2, generator=generator) * 2 - 1) * 0.08 * c).tolist()
    out = np.zeros((n, c, c), dtype=np.uint8)
    for i in range(n):
        letter = string.ascii_uppercase[which[i]]
        out[i] = draw_letter(letter, font_px[i], stroke[i], tuple(shift[i]), c)
    x = torch.from_numpy(out).float().div_(255.0).unsqueeze(1)  # (n, 1, c, c)
    return F.interpolate(x, size=(h, w), mode="area")


@lru_cache(maxsize=1)
def _sample_photos() -> tuple[Tensor, ...]:
    """scikit-learn's bundled photos (china.jpg, flower.jpg) as grayscale (H, W) in [0, 1]."""
    from sklearn.datasets import load_sample_images

    luma = torch.tensor([0.299, 0.587, 0.114], dtype=torch.float64)  # ITU-R BT.601
    return tuple(
        (torch.from_numpy(np.asarray(img, dtype=np.float64)) @ luma).div_(255.0).float()
        for img in load_sample_images().images
    )


def photos(n: int, size: Size, generator: torch.Generator) -> Tensor:
    """n grayscale patches of natural photographs.

    A random square patch of PATCH_MIN to PATCH_MAX photo pixels from a random one of
    scikit-learn's bundled sample photos, area-resized to `size`. Returns (n, 1, H, W).
    """
    h, w = _hw(size)
    images = _sample_photos()
    which = torch.randint(0, len(images), (n,), generator=generator).tolist()
    sides = torch.randint(PATCH_MIN, PATCH_MAX + 1, (n,), generator=generator).tolist()
    corners = torch.rand(n, 2, generator=generator).tolist()
    out = torch.empty(n, 1, h, w)
    for i in range(n):
        img = images[which[i]]
        side = min(sides[i], *img.shape)
        top = math.floor(corners[i][0] * (img.shape[0] - side + 1))
        left = math.floor(corners[i][1] * (img.shape[1] - side + 1))
        patch = img[top : top + side, left : left + side]
        out[i] = F.interpolate(patch[None, None], size=(h, w), mode="area")[0]
    return out


# name -> f(x_test_unit (N, 1, H, W), (H, W), generator) -> (N, 1, H, W) in [0, 1]
OodGenerator = Callable[[Tensor, tuple[int, int], torch.Generator], Tensor]
OOD_GENERATORS: dict[str, OodGenerator] = {
    "gaussian_noise": lambda x, hw, g: gaussian_noise(len(x), hw, g),
    "uniform_noise": lambda x, hw, g: uniform_noise(len(x), hw, g),
    "inverted": lambda x, hw, g: inverted(x),
    "rotated": lambda x, hw, g: rotated(x, g),
    "letters": lambda x, hw, g: letters(len(x), hw, g),
    "photos": lambda x, hw, g: photos(len(x), hw, g),
}
OOD_NAMES = tuple(OOD_GENERATORS)  # the sets made here: config.OOD_SETS less "other_dataset"


def make_ood_sets(
    x_test_unit: Tensor,
    size: Size,
    generator: torch.Generator,
    names: tuple[str, ...] = OOD_NAMES,
) -> dict[str, Tensor]:
    """Make the named OOD sets, each as many images as `x_test_unit`.

    Each set draws from its own generator, seeded from `generator` in the fixed order of
    OOD_NAMES, so a set does not change when other names are added to or dropped from `names`.

    Args:
        x_test_unit: in-distribution test images (N, 1, H, W) in [0, 1]; "inverted" and
            "rotated" transform them, the others only take their number N.
        size: (H, W) of the images (an int for a square); must match x_test_unit.
        generator: the source of every random choice.
        names: which sets to make, from OOD_NAMES.

    Returns:
        name -> (N, 1, H, W) float32 tensor in [0, 1], in the order of `names`.
    """
    hw = _hw(size)
    if x_test_unit.dim() != 4 or tuple(x_test_unit.shape[-2:]) != hw:
        raise ValueError(f"x_test_unit must be (N, 1, {hw[0]}, {hw[1]}); got {x_test_unit.shape}")
    unknown = [name for name in names if name not in OOD_GENERATORS]
    if unknown:
        hint = (
            " ('other_dataset' comes from bbb_core.data.images)"
            if "other_dataset" in unknown
            else ""
        )
        raise ValueError(f"unknown OOD set(s) {unknown}; choose from {OOD_NAMES}{hint}")
    seeds = torch.randint(0, 2**62, (len(OOD_NAMES),), generator=generator).tolist()
    sets = {}
    for name in names:
        g = torch.Generator().manual_seed(seeds[OOD_NAMES.index(name)])
        sets[name] = OOD_GENERATORS[name](x_test_unit, hw, g).float().clamp_(0.0, 1.0)
    return sets
