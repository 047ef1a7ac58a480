"""Signal-to-noise pruning: the right weights go, the copy is independent, the curve is sane."""

import pytest
import torch
from torch import nn

from bbb_core import BayesianLinear, ModelConfig, PriorConfig, build_model, make_dataset
from bbb_core.config import DataConfig
from bbb_core.pruning import error_rate, prune, pruning_curve, weight_scores


def _tiny_bbb():
    ds = make_dataset(DataConfig(name="moons", n_train=50), 0)
    model = build_model(ModelConfig(hidden=(8,)), PriorConfig(), ds)
    return model, ds


def test_snr_prunes_lowest_signal_to_noise_first():
    layer = BayesianLinear(2, 2)
    with torch.no_grad():
        layer.weight_mu.copy_(torch.tensor([[1.0, 0.1], [2.0, 0.5]]))
        layer.weight_rho.copy_(torch.tensor([[0.0, -5.0], [3.0, 0.0]]))
    model = nn.Sequential(layer)
    # snr = |mu| / softplus(rho): [[1.44, 14.9], [0.66, 0.72]] -> the two lowest are row 1
    pruned = prune(model, 0.5, "snr")[0]
    assert torch.equal(pruned.weight_mu == 0, torch.tensor([[False, False], [True, True]]))
    assert (pruned.weight_sigma[1] < 1e-12).all()
    by_magnitude = prune(model, 0.5, "magnitude")[0]
    assert torch.equal(by_magnitude.weight_mu == 0, torch.tensor([[False, True], [False, True]]))


@pytest.mark.parametrize("fraction", [0.0, 0.3, 0.9, 1.0])
def test_prune_removes_exactly_the_fraction_and_leaves_the_original(fraction):
    model, _ = _tiny_bbb()
    before = [p.clone() for p in model.parameters()]
    pruned = prune(model, fraction)
    n = sum(s.numel() for s in weight_scores(model))
    zeros = sum(int((layer.weight_mu == 0).sum()) for layer in _layers(pruned))
    assert zeros == round(fraction * n)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def _layers(model):
    return [m for m in model.modules() if isinstance(m, BayesianLinear)]


def test_curve_matches_error_of_pruned_models_and_is_100_percent_scale():
    model, ds = _tiny_bbb()
    curve = pruning_curve(model, ds.x_test, ds.y_test, [0.0, 0.5])
    assert curve.shape == (2,)
    assert curve[0] == pytest.approx(error_rate(model, ds.x_test, ds.y_test))
    assert ((curve >= 0) & (curve <= 100)).all()


def test_bad_arguments_raise():
    model, ds = _tiny_bbb()
    with pytest.raises(ValueError, match="fraction"):
        prune(model, 1.5)
    with pytest.raises(ValueError, match="score"):
        weight_scores(model, "nope")
    standard = build_model(ModelConfig(kind="standard", hidden=(8,)), PriorConfig(), ds)
    with pytest.raises(ValueError, match="Bayesian"):
        prune(standard, 0.5)
