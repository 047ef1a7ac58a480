"""Datasets: toy regression and 2-D classification (`toy`), images (`images`), OOD sets (`ood`),
your own data from a CSV file (`tabular`).

`make_dataset(cfg, seed)` is the one entry point for the generated and downloaded sets; a CSV file
comes in as bytes through `tabular.load_csv`. Every source returns a `Dataset`.
"""

from __future__ import annotations

from ..config import IMAGE_DATASETS, TABULAR_DATASETS, DataConfig
from .base import Dataset


def make_dataset(cfg: DataConfig, seed: int = 0) -> Dataset:
    """Generate or load the dataset `cfg.name`, deterministically from `seed`."""
    cfg.validate()
    if cfg.name in TABULAR_DATASETS.values():
        raise ValueError(
            f"data.name {cfg.name} is data from a CSV file: load it with "
            "bbb_core.data.tabular.load_csv (command line: --csv FILE)"
        )
    if cfg.name in IMAGE_DATASETS:
        from .images import make_image_dataset

        return make_image_dataset(cfg, seed)
    from .toy import make_toy

    return make_toy(cfg, seed)


__all__ = ["Dataset", "make_dataset"]
