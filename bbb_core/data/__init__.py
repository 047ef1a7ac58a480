"""Datasets: toy regression and 2-D classification (`toy`), images (`images`), OOD sets (`ood`).

`make_dataset(cfg, seed)` is the one entry point; every source returns a `Dataset`.
"""

from __future__ import annotations

from ..config import IMAGE_DATASETS, DataConfig
from .base import Dataset


def make_dataset(cfg: DataConfig, seed: int = 0) -> Dataset:
    """Generate or load the dataset `cfg.name`, deterministically from `seed`."""
    cfg.validate()
    if cfg.name in IMAGE_DATASETS:
        from .images import make_image_dataset

        return make_image_dataset(cfg, seed)
    from .toy import make_toy

    return make_toy(cfg, seed)


__all__ = ["Dataset", "make_dataset"]
