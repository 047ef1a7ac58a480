"""Weight statistics, point-estimate pruning, pruning curves and prior densities (bbb_core.weights),
checked against hand-computed values and torch.distributions; and the measured sparsity of MAP
under a Laplace prior (L1) against a Gaussian one (L2) on the same data."""

import math

import pytest
import torch
import torch.nn.functional as F
from conftest import assert_close
from torch import nn

from bbb_core import (
    DataConfig,
    ModelConfig,
    PriorConfig,
    RunConfig,
    TrainConfig,
    Trainer,
    build_model,
    make_dataset,
)
from bbb_core.priors import GaussianPrior, LaplacePrior, ScaleMixturePrior
from bbb_core.pruning import prune
from bbb_core.weights import (
    PRUNING_RULES,
    mean_network_score,
    near_zero_fraction,
    point_weights,
    posterior_weights,
    prior_density,
    prune_point,
    pruning_curves,
    weight_summary,
    weights_table,
)


def _f64(x: float) -> torch.Tensor:
    return torch.tensor(x, dtype=torch.float64)


def _integral(w, p) -> float:
    return float(torch.trapezoid(torch.as_tensor(p), torch.as_tensor(w)))


def _models(name: str = "moons", hidden=(8,)):
    ds = make_dataset(DataConfig(name=name, n_train=40), 0)
    built = {
        kind: build_model(ModelConfig(kind=kind, hidden=hidden), PriorConfig(), ds)
        for kind in ("standard", "map", "bbb")
    }
    return built, ds


def test_point_weights_lists_every_weight_and_bias_in_layer_order():
    models, _ = _models()
    net = models["map"]
    w = point_weights(net)
    # moons: 2 -> 8 -> 2: 16 + 8 + 16 + 2 weights and biases
    assert w.shape == (42,)
    first = net.body[0]
    assert torch.equal(w[:16], first.weight.detach().flatten())
    assert torch.equal(w[16:24], first.bias.detach())
    with pytest.raises(ValueError, match="standard or MAP"):
        point_weights(models["bbb"])


def test_posterior_weights_are_mu_and_softplus_rho_in_the_same_order():
    models, _ = _models()
    bbb = models["bbb"]
    post = posterior_weights(bbb)
    assert post.mu.shape == post.sigma.shape == (42,)
    layer = bbb.body[0]
    assert torch.equal(post.mu[:16], layer.weight_mu.detach().flatten())
    assert_close(post.sigma[:16], F.softplus(layer.weight_rho).flatten(), rtol=0, atol=0)
    assert_close(post.snr, post.mu.abs() / post.sigma, rtol=0, atol=0)
    with pytest.raises(ValueError, match="Bayesian"):
        posterior_weights(models["map"])


def test_near_zero_fraction_counts_strictly_below_the_tolerance():
    w = torch.tensor([0.0, 5e-4, -9.99e-4, 1e-3, -0.5, 2.0, 1e-5, 0.1])
    assert near_zero_fraction(w) == 4 / 8  # 0, 5e-4, -9.99e-4, 1e-5; 1e-3 itself is not below
    assert near_zero_fraction(w, tol=0.2) == 6 / 8
    with pytest.raises(ValueError):
        near_zero_fraction(torch.empty(0))


def test_weight_summary_counts_bbb_parameters_twice():
    models, _ = _models()
    summary = weight_summary(models["standard"], models["map"], models["bbb"])
    assert summary["mle"]["parameters"] == summary["map"]["parameters"] == 42
    assert summary["bbb"]["parameters"] == 84 and summary["bbb"]["weights"] == 42
    post = posterior_weights(models["bbb"])
    assert summary["bbb"]["mean_sigma"] == pytest.approx(float(post.sigma.mean()))
    table = weights_table(models["standard"], models["map"], models["bbb"])
    assert list(table.columns) == ["mle_w", "map_w", "bbb_mu", "bbb_sigma"] and len(table) == 42


@pytest.mark.parametrize("fraction", [0.0, 0.25, 0.5, 1.0])
def test_prune_point_zeroes_the_smallest_weights_keeps_biases_and_the_original(fraction):
    models, _ = _models()
    net = models["map"]
    before = [p.detach().clone() for p in net.parameters()]
    pruned = prune_point(net, fraction)
    linears = [m for m in pruned.modules() if isinstance(m, nn.Linear)]
    originals = [m for m in net.modules() if isinstance(m, nn.Linear)]
    n = sum(m.weight.numel() for m in linears)  # 32 weights (biases are not pruned)
    zeros = sum(int((m.weight == 0).sum()) for m in linears)
    assert zeros == round(fraction * n)
    kept = torch.cat([m.weight.abs().flatten() for m in linears])
    removed = torch.cat(
        [
            o.weight.abs().flatten()[(m.weight == 0).flatten()]
            for m, o in zip(linears, originals, strict=True)
        ]
    )
    if 0 < zeros < n:  # every removed weight was at most as large as every kept one
        assert removed.max() <= kept[kept > 0].min()
    for m, o in zip(linears, originals, strict=True):
        assert torch.equal(m.bias, o.bias)
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))


def test_mean_network_score_by_hand():
    ds = make_dataset(DataConfig(name="blundell", n_train=20), 0)
    net = build_model(
        ModelConfig(kind="standard", hidden=(4,), noise_model="fixed"), PriorConfig(), ds
    )
    x, y = ds.x_test[:7], ds.y_test[:7]
    with torch.no_grad():
        mean = net(x)[0, :, 0]
    rmse = math.sqrt(float(((mean - y) ** 2).mean()))
    assert mean_network_score(net, x, y, "rmse") == pytest.approx(rmse, rel=1e-6)
    std = math.exp(float(net.likelihood.log_std))
    nll = -torch.distributions.Normal(mean.double(), std).log_prob(y.double()).mean()
    assert mean_network_score(net, x, y, "nll") == pytest.approx(float(nll), rel=1e-5)
    with pytest.raises(ValueError, match="does not fit"):
        mean_network_score(net, x, y, "error")


@pytest.mark.parametrize(
    "name, metric", [("moons", "error"), ("blundell", "rmse"), ("moons", "nll")]
)
def test_pruning_curve_at_fraction_zero_equals_the_unpruned_model(name, metric):
    models, ds = _models(name)
    curves = pruning_curves(models["bbb"], models["map"], ds, [0.0, 0.5, 1.0], metric)
    assert list(curves) == list(PRUNING_RULES)
    bbb = mean_network_score(models["bbb"], ds.x_test, ds.y_test, metric)
    map_ = mean_network_score(models["map"], ds.x_test, ds.y_test, metric)
    assert curves["BBB by |μ|/σ"][0] == pytest.approx(bbb, rel=0, abs=0)
    assert curves["BBB by |μ|"][0] == pytest.approx(bbb, rel=0, abs=0)
    assert curves["MAP by |w|"][0] == pytest.approx(map_, rel=0, abs=0)
    # at fraction 1 every weight is gone: the rules agree on what is left for BBB
    assert curves["BBB by |μ|/σ"][2] == pytest.approx(float(curves["BBB by |μ|"][2]))
    half = mean_network_score(prune(models["bbb"], 0.5, "snr"), ds.x_test, ds.y_test, metric)
    assert curves["BBB by |μ|/σ"][1] == pytest.approx(half)


def test_pruning_curves_default_to_the_task_metric():
    models, ds = _models("moons")
    curves = pruning_curves(models["bbb"], models["map"], ds, [0.0])
    error = mean_network_score(models["bbb"], ds.x_test, ds.y_test, "error")
    assert float(curves["BBB by |μ|"][0]) == error and 0.0 <= error <= 1.0


@pytest.mark.parametrize(
    "prior, oracle",
    [
        (GaussianPrior(0.3), torch.distributions.Normal(_f64(0.0), _f64(0.3))),
        (LaplacePrior(0.2), torch.distributions.Laplace(_f64(0.0), _f64(0.2))),
    ],
)
def test_prior_density_matches_torch_distributions_and_integrates_to_one(prior, oracle):
    w, p = prior_density(prior, w_max=4.0)
    assert w[0] == -4.0 and w[-1] == 4.0 and 0.0 in w and (w[1:] > w[:-1]).all()
    expected = oracle.log_prob(torch.as_tensor(w)).exp()
    assert_close(p, expected, rtol=1e-10, atol=1e-12)
    assert _integral(w, p) == pytest.approx(1, abs=1e-3)


def test_prior_density_resolves_the_mixture_spike():
    prior = ScaleMixturePrior(0.25, 1.0, math.exp(-6))
    w, p = prior_density(prior, w_max=3.0)
    # at 0: 0.25 N(0; 0, 1) + 0.75 N(0; 0, e^-12) = (0.25 + 0.75 e^6) / sqrt(2 pi)
    assert p[w == 0.0][0] == pytest.approx((0.25 + 0.75 * math.exp(6)) / math.sqrt(2 * math.pi))
    assert _integral(w, p) == pytest.approx(1, abs=5e-3)
    with pytest.raises(ValueError):
        prior_density(prior, w_max=0.0)


def _map_run(family: str) -> Trainer:
    cfg = RunConfig(
        DataConfig(name="blundell", n_train=100),
        PriorConfig(family=family, sigma=1.0, b=1.0),
        ModelConfig(kind="map", hidden=(16,)),
        TrainConfig(epochs=300, lr_schedule="cosine"),
        seed=0,
        device="cpu",
    )
    trainer = Trainer(cfg)
    trainer.run()
    return trainer


def test_laplace_map_is_sparser_than_gaussian_map_on_the_same_data(single_thread):
    """Measured (seed 0, blundell n = 100, 1-16-1, 300 epochs, cosine lr): |w| < 1e-3 for 0.0 %
    of the weights and biases under N(0, 1) (L2), 42.9 % under Laplace(0, 1) (L1), with about the
    same fit (summed NLL -150.9 and -150.0)."""
    gaussian, laplace = _map_run("gaussian"), _map_run("laplace")
    sparse_l2 = near_zero_fraction(point_weights(gaussian.model))
    sparse_l1 = near_zero_fraction(point_weights(laplace.model))
    assert sparse_l2 <= 0.05
    assert sparse_l1 >= 0.35
    assert laplace.history[-1].nll == pytest.approx(gaussian.history[-1].nll, abs=10.0)
