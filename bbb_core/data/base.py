"""The `Dataset` every BBB Explorer data source returns.

Toy regression, 2-D classification and image sets share one shape so that the models, the
training loop, the predictive and the plots treat them alike. Arrays are float32 torch tensors on
the CPU (labels int64); the training loop moves them to the run's device once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor


@dataclass
class Dataset:
    """One generated or loaded data set.

    Attributes:
        name: the dataset's name (`DataConfig.name`).
        task: "regression" or "classification".
        x_train, y_train: training inputs (N, D) or images (N, 1, H, W); targets (N,) float for
            regression, int64 class labels for classification.
        x_test, y_test: held-out data drawn from the training distribution.
        x_grid: evaluation inputs. Regression: (G, 1) on a line wider than the training range.
            2-D classification: (G*G, 2), the flattened meshgrid of `grid_axes`. Images: None.
        in_range: bool (G,) or (G*G,), True where a grid point lies in the training range.
        f_grid: regression only: the noise-free true function on the grid (G,), else None.
        noise_grid: regression only: the true noise std on the grid (G,), else None.
        grid_axes: 2-D classification only: (xs, ys) 1-D tensors that span the grid.
        n_classes: number of classes (classification), else 1.
        train_range: regression: list of (low, high) intervals of x seen in training.
        ood: named out-of-distribution input sets (2-D: the far-away region; images: noise, ...).
        noise_std: regression: the true noise std (None for input-dependent noise).
    """

    name: str
    task: str
    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    x_grid: Tensor | None = None
    in_range: Tensor | None = None
    f_grid: Tensor | None = None
    noise_grid: Tensor | None = None
    grid_axes: tuple[Tensor, Tensor] | None = None
    n_classes: int = 1
    train_range: list[tuple[float, float]] = field(default_factory=list)
    ood: dict[str, Tensor] = field(default_factory=dict)
    noise_std: float | None = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one input: (D,) for vectors, (1, H, W) for images."""
        return tuple(self.x_train.shape[1:])

    @property
    def n_train(self) -> int:
        return self.x_train.shape[0]

    @property
    def is_image(self) -> bool:
        return self.x_train.dim() == 4
