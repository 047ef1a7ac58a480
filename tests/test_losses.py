"""Tests for `bbb_core.losses`: the per-minibatch KL shares of every schedule (sums over an epoch,
Blundell's closed form, stability for many minibatches) and the ELBO's reductions pinned to
hand-computed numbers; one epoch of minibatch losses adds up to the full-batch free energy."""

from __future__ import annotations

import math
from itertools import pairwise

import pytest
import torch
from conftest import assert_close

from bbb_core.config import KL_SCHEDULES
from bbb_core.layers import BayesianLinear, posterior_mean
from bbb_core.losses import ElboTerms, elbo_loss, kl_share, map_loss
from bbb_core.models import GaussianLikelihood
from bbb_core.priors import GaussianPrior, LaplacePrior

F64 = torch.float64
N_BATCHES = [1, 2, 3, 7, 64, 2000]


def shares(schedule: str, m: int, epoch: int = 0, warmup_epochs: int = 1) -> list[float]:
    return [kl_share(schedule, i, m, epoch, warmup_epochs) for i in range(m)]


# --- kl_share -------------------------------------------------------------------------------------


@pytest.mark.parametrize("schedule", KL_SCHEDULES)
@pytest.mark.parametrize("m", N_BATCHES)
def test_shares_add_up_to_one_full_kl_per_epoch(schedule, m):
    # warmup after its ramp (epoch >= warmup_epochs - 1) charges the full KL, like the others
    pis = shares(schedule, m, epoch=5, warmup_epochs=3)
    assert all(math.isfinite(p) and p >= 0 for p in pis)
    assert math.fsum(pis) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("m", [1, 4, 50])
@pytest.mark.parametrize(
    ("warmup_epochs", "epoch", "total"),
    [
        (4, 0, 0.25),
        (4, 1, 0.5),
        (4, 2, 0.75),
        (4, 3, 1.0),
        (4, 10, 1.0),
        (1, 0, 1.0),
        (10, 4, 0.5),
    ],
)
def test_warmup_ramps_linearly_to_one(m, warmup_epochs, epoch, total):
    # sum over the epoch = min(1, (epoch + 1) / warmup_epochs), split evenly
    pis = shares("warmup", m, epoch=epoch, warmup_epochs=warmup_epochs)
    assert math.fsum(pis) == pytest.approx(total, abs=1e-12)
    assert max(pis) - min(pis) == pytest.approx(0.0, abs=1e-15)


@pytest.mark.parametrize("m", N_BATCHES)
def test_uniform_is_one_over_m(m):
    assert shares("uniform", m) == pytest.approx([1 / m] * m, abs=1e-15)


@pytest.mark.parametrize(
    ("m", "expected"),
    [
        (1, [1.0]),
        (2, [2 / 3, 1 / 3]),
        (3, [4 / 7, 2 / 7, 1 / 7]),
        (4, [8 / 15, 4 / 15, 2 / 15, 1 / 15]),
    ],
)
def test_blundell_hand_computed(m, expected):
    # pi_i = 2^(M - i) / (2^M - 1), i = 1..M; for M = 3: 4/7, 2/7, 1/7
    assert shares("blundell", m) == pytest.approx(expected, rel=1e-15)


@pytest.mark.parametrize("m", [10, 60, 1023, 1024, 1100, 2000])
def test_blundell_matches_exact_fractions_and_stays_finite(m):
    # the textbook formula overflows: 2.0 ** 2000 raises OverflowError in floating point
    with pytest.raises(OverflowError):
        2.0**2000  # noqa: B018
    pis = shares("blundell", m)
    assert all(math.isfinite(p) for p in pis)
    assert all(a >= b for a, b in pairwise(pis))  # early minibatches carry more
    assert math.fsum(pis) == pytest.approx(1.0, abs=1e-12)
    exact = 2 ** (m - 1) / (2**m - 1)  # Python integers, then one rounding
    assert pis[0] == pytest.approx(exact, rel=1e-15)
    for i in (1, m // 2, m - 1):
        expected = 2 ** (m - i - 1) / (2**m - 1)  # 0-based index i
        assert pis[i] == pytest.approx(expected, rel=1e-12, abs=1e-300)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("cosine", 0, 3), "kl_schedule"),
        (("uniform", 3, 3), "index"),
        (("blundell", -1, 3), "index"),
    ],
)
def test_kl_share_rejects_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        kl_share(*args)


# --- elbo_loss ------------------------------------------------------------------------------------


def test_elbo_loss_hand_computed():
    # S = 2 samples of B = 2 points: mean over samples [2, 3], summed over points 5;
    # KL term 10 * 0.5 * 0.25 = 1.25; loss (5 + 1.25) / 100 = 0.0625
    terms = elbo_loss(
        torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=F64),
        torch.tensor(10.0, dtype=F64),
        n_data=100,
        kl_weight=0.5,
        kl_share=0.25,
    )
    assert isinstance(terms, ElboTerms)
    assert terms.nll.item() == pytest.approx(5.0, abs=1e-15)
    assert terms.kl.item() == pytest.approx(10.0, abs=1e-15)  # unweighted, unshared
    assert terms.kl_term.item() == pytest.approx(1.25, abs=1e-15)
    assert terms.loss.item() == pytest.approx(0.0625, abs=1e-15)


@pytest.mark.parametrize(
    ("nll", "kl", "n_data", "kl_weight", "share", "expected"),
    [
        # one sample, three points: nll 0.5 + 1.5 + 2 = 4; (4 + 4) / 3
        ([[0.5, 1.5, 2.0]], 4.0, 3, 1.0, 1.0, (4.0, 4.0, 8 / 3)),
        # three samples of two points: means [2, 4] -> 6; KL dropped; 6 / 10
        ([[1.0, 3.0], [2.0, 4.0], [3.0, 5.0]], 7.0, 10, 0.0, 0.5, (6.0, 0.0, 0.6)),
        # over-regularised: 2 * (1/3) * 9 = 6; (1 + 6) / 7 = 1
        ([[1.0]], 9.0, 7, 2.0, 1 / 3, (1.0, 6.0, 1.0)),
    ],
)
def test_elbo_loss_more_hand_computed(nll, kl, n_data, kl_weight, share, expected):
    terms = elbo_loss(
        torch.tensor(nll, dtype=F64),
        torch.tensor(kl, dtype=F64),
        n_data=n_data,
        kl_weight=kl_weight,
        kl_share=share,
    )
    got = (terms.nll.item(), terms.kl_term.item(), terms.loss.item())
    assert got == pytest.approx(expected, abs=1e-14)


def test_elbo_loss_sums_points_and_averages_samples():
    nll = torch.rand(5, 9, dtype=F64)
    terms = elbo_loss(nll, torch.tensor(0.0, dtype=F64), n_data=9, kl_weight=1.0, kl_share=1.0)
    assert_close(terms.nll, nll.mean(0).sum(), rtol=1e-15, atol=0)
    # for a full batch without KL the loss is the usual mean NLL per point
    assert_close(terms.loss, nll.mean(), rtol=1e-14, atol=0)


def _tiny_model():
    """A deterministic BayesianLinear(2, 1) with a Gaussian prior (closed-form KL) and fixed
    Gaussian noise: minibatch losses are exact functions of the parameters."""
    layer = BayesianLinear(2, 1, prior=GaussianPrior(0.8), rho0=-2.0, dtype=F64)
    likelihood = GaussianLikelihood("fixed", 0.3)
    return layer, likelihood


@pytest.mark.parametrize("schedule", KL_SCHEDULES)
@pytest.mark.parametrize("m", [1, 3, 4])
@pytest.mark.parametrize("kl_weight", [1.0, 0.3])
def test_epoch_of_minibatch_losses_adds_up_to_full_batch(schedule, m, kl_weight):
    # sum_i F_i over one epoch = F = kl_weight * KL - log p(D | w), and so are the gradients
    n = 12
    x = torch.randn(n, 2, dtype=F64)
    y = torch.randn(n, dtype=F64)
    layer, likelihood = _tiny_model()

    def f_i(idx: torch.Tensor, share: float) -> torch.Tensor:
        with posterior_mean(layer):
            out = layer(x[idx]).unsqueeze(0)  # (S=1, B, 1)
        nll = likelihood.nll(out, y[idx])
        terms = elbo_loss(nll, layer.kl(), n_data=n, kl_weight=kl_weight, kl_share=share)
        return terms.loss

    order = torch.randperm(n)
    batches = order.tensor_split(m)
    epoch_sum = sum(
        f_i(idx, kl_share(schedule, i, m, epoch=2, warmup_epochs=3))
        for i, idx in enumerate(batches)
    )
    full = f_i(torch.arange(n), 1.0)
    assert_close(epoch_sum, full, rtol=1e-13, atol=0)
    params = [layer.posterior.mu, layer.posterior.rho]
    grads_sum = torch.autograd.grad(epoch_sum, params)
    grads_full = torch.autograd.grad(full, params)
    for g_sum, g_full in zip(grads_sum, grads_full, strict=True):
        assert_close(g_sum, g_full, rtol=1e-12, atol=1e-15)
    # and F itself: the NLL summed over all points plus the weighted KL, over N
    with posterior_mean(layer):
        nll_all = likelihood.nll(layer(x).unsqueeze(0), y).sum()
    assert_close(full * n, nll_all + kl_weight * layer.kl(), rtol=1e-13, atol=0)


# --- map_loss -------------------------------------------------------------------------------------


def test_map_loss_hand_computed():
    # NLL (1, 3) = [0.5, 1.0, 1.5] -> 3.0; -log p(w) = 8, share 1/2 -> prior term 4
    # (no KL weight: the prior counts in full); loss = (3 + 4) / 10 = 0.7
    terms = map_loss(
        torch.tensor([[0.5, 1.0, 1.5]], dtype=F64),
        torch.tensor(8.0, dtype=F64),
        n_data=10,
        prior_share=0.5,
    )
    assert isinstance(terms, ElboTerms)
    assert_close(terms.nll, 3.0, rtol=0, atol=1e-12)
    assert_close(terms.kl, 8.0, rtol=0, atol=1e-12)
    assert_close(terms.kl_term, 4.0, rtol=0, atol=1e-12)
    assert_close(terms.loss, 0.7, rtol=0, atol=1e-12)


@pytest.mark.parametrize("sigma, n_data", [(1.0, 1), (0.3, 20), (2.0, 7)])
def test_map_l2_gradient_is_the_gaussian_priors_gradient(sigma, n_data):
    """MAP under N(0, sigma^2): the prior's part of d loss / d w is w / (sigma^2 N) per weight,
    the gradient of the L2 penalty w^2 / (2 sigma^2) in the summed loss, and equals
    -d/dw log N(w; 0, sigma^2) / N from torch.distributions."""
    w = torch.tensor([[-1.5, 0.2, 0.0], [0.7, -0.05, 3.0]], dtype=F64, requires_grad=True)
    prior = GaussianPrior(sigma)
    neg_log_prior = -prior.log_prob(w).sum()
    terms = map_loss(torch.zeros(1, 4, dtype=F64), neg_log_prior, n_data=n_data, prior_share=1.0)
    (grad,) = torch.autograd.grad(terms.loss, w)
    coefficient = 1.0 / (2.0 * sigma**2)  # the L2 coefficient per weight in the summed loss
    assert_close(grad, 2.0 * coefficient * w.detach() / n_data, rtol=1e-12, atol=1e-15)
    oracle_w = w.detach().clone().requires_grad_(True)
    normal = torch.distributions.Normal(
        torch.tensor(0.0, dtype=F64), torch.tensor(sigma, dtype=F64)
    )
    (oracle,) = torch.autograd.grad(-normal.log_prob(oracle_w).sum() / n_data, oracle_w)
    assert_close(grad, oracle, rtol=1e-12, atol=1e-15)
    # the penalty itself: L2 plus the normaliser, P log(sigma sqrt(2 pi))
    l2 = coefficient * (w.detach() ** 2).sum() + 6 * math.log(sigma * math.sqrt(2 * math.pi))
    assert_close(neg_log_prior, l2, rtol=1e-12, atol=1e-12)


def test_map_l1_gradient_is_the_laplace_priors_gradient():
    """MAP under Laplace(0, b): the prior gives sign(w) / (b N): L1 with coefficient 1 / b."""
    b, n_data = 0.25, 4
    w = torch.tensor([-1.5, 0.2, 0.7, -0.05], dtype=F64, requires_grad=True)
    neg_log_prior = -LaplacePrior(b).log_prob(w).sum()
    terms = map_loss(torch.zeros(1, 2, dtype=F64), neg_log_prior, n_data=n_data, prior_share=1.0)
    (grad,) = torch.autograd.grad(terms.loss, w)
    assert_close(grad, torch.sign(w.detach()) / (b * n_data), rtol=1e-12, atol=1e-15)
    laplace = torch.distributions.Laplace(torch.tensor(0.0, dtype=F64), torch.tensor(b, dtype=F64))
    assert_close(neg_log_prior, -laplace.log_prob(w.detach()).sum(), rtol=1e-12, atol=1e-12)
