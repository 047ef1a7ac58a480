"""BBB Explorer's engine: Bayes by Backprop (Blundell et al., "Weight Uncertainty in Neural
Networks", ICML 2015) with its baselines, toy and image datasets, metrics and plots.

Pure PyTorch (numpy and scikit-learn where they serve); never imports streamlit.

    >>> from bbb_core import default_config, train, predictive
    >>> result = train(default_config("blundell"))
    >>> pred = predictive(result.model, result.dataset.x_grid, samples=100)
"""

from .config import (
    DataConfig,
    ModelConfig,
    PriorConfig,
    RunConfig,
    TrainConfig,
    default_config,
)
from .data import Dataset, make_dataset
from .evaluate import evaluate
from .layers import BayesianConv2d, BayesianLinear, bayesian_layers, posterior_mean
from .losses import ElboTerms, elbo_loss, kl_share
from .models import build_model
from .predict import ClassificationPredictive, RegressionPredictive, predictive
from .priors import GaussianPrior, LaplacePrior, ScaleMixturePrior, build_prior
from .pruning import prune, pruning_curve
from .train import Progress, Result, Trainer, TrainingDiverged, resolve_device, train

__all__ = [
    "BayesianConv2d",
    "BayesianLinear",
    "ClassificationPredictive",
    "DataConfig",
    "Dataset",
    "ElboTerms",
    "GaussianPrior",
    "LaplacePrior",
    "ModelConfig",
    "PriorConfig",
    "Progress",
    "RegressionPredictive",
    "Result",
    "RunConfig",
    "ScaleMixturePrior",
    "TrainConfig",
    "Trainer",
    "TrainingDiverged",
    "bayesian_layers",
    "build_model",
    "build_prior",
    "default_config",
    "elbo_loss",
    "evaluate",
    "kl_share",
    "make_dataset",
    "posterior_mean",
    "predictive",
    "prune",
    "pruning_curve",
    "resolve_device",
    "train",
]
