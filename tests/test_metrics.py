"""Tests for `bbb_core.metrics`: hand-computed numbers, torch / scikit-learn oracles and an
independent numpy re-implementation of the reliability binning, all in float64 and seeded."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score

from bbb_core import metrics
from bbb_core.metrics import (
    Reliability,
    accuracy,
    brier_score,
    categorical_nll,
    ece,
    gaussian_nll,
    interval_coverage,
    ood_auroc,
    reliability,
    rmse,
)

TOL = 1e-12  # float64 identities
HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)  # 0.9189385332046727


def random_classification(seed: int, n: int = 500, c: int = 4):
    """Dirichlet probabilities (N, C) and labels drawn from them, as float64 / int64 tensors."""
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.full(c, 0.7), size=n)
    y = np.array([rng.choice(c, p=p) for p in probs])
    return torch.from_numpy(probs), torch.from_numpy(y)


# --- regression ---------------------------------------------------------------------------------


def test_rmse_hand_computed():
    # errors 0, -2, 3 -> squares 0, 4, 9 -> mean 13/3
    assert rmse(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([1.0, 4.0, 0.0])) == pytest.approx(
        math.sqrt(13 / 3), abs=TOL
    )


def test_rmse_matches_torch_mse():
    torch.manual_seed(0)
    mean, y = torch.randn(200, dtype=torch.float64), torch.randn(200, dtype=torch.float64)
    expected = torch.sqrt(F.mse_loss(mean, y)).item()
    assert rmse(mean, y) == pytest.approx(expected, abs=TOL)


def test_gaussian_nll_hand_computed():
    # standard normal at its mean: 0.5 log(2 pi)
    assert gaussian_nll([0.0], [0.0], [1.0]) == pytest.approx(0.9189385332046727, abs=TOL)
    # point 1: z = 1, std = 1 -> c + 0.5; point 2: z = 0, std = 2 -> c + log 2; then the mean
    expected = (HALF_LOG_2PI + 0.5 + HALF_LOG_2PI + math.log(2.0)) / 2
    assert expected == pytest.approx(1.5155121234846454, abs=TOL)
    got = gaussian_nll(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 0.0]), torch.tensor([1.0, 2.0]))
    assert got == pytest.approx(expected, abs=TOL)


@pytest.mark.parametrize("shape", [(300,), (300, 1)])
def test_gaussian_nll_matches_torch_normal(shape):
    torch.manual_seed(1)
    y = torch.randn(shape, dtype=torch.float64)
    mean = torch.randn(shape, dtype=torch.float64)
    std = torch.rand(shape, dtype=torch.float64) * 2 + 0.05
    expected = -torch.distributions.Normal(mean, std).log_prob(y).mean().item()
    assert gaussian_nll(y, mean, std) == pytest.approx(expected, abs=TOL)


@pytest.mark.parametrize("bad", [0.0, -1.0])
def test_gaussian_nll_rejects_non_positive_std(bad):
    with pytest.raises(ValueError, match="std"):
        gaussian_nll([0.0, 1.0], [0.0, 0.0], [1.0, bad])


def test_interval_coverage_hand_built():
    y = torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0])
    lower = torch.tensor([0.0, 0.0, 3.0, 2.0, 5.0])
    upper = torch.tensor([1.0, 0.5, 4.0, 3.0, 6.0])
    # in (on the lower edge), out (above), out (below), in (on the upper edge), out (below)
    assert interval_coverage(y, lower, upper) == pytest.approx(2 / 5, abs=TOL)
    assert interval_coverage(y, y - 1, y + 1) == 1.0
    assert interval_coverage(y, y + 1, y + 2) == 0.0


# --- classification -----------------------------------------------------------------------------


def test_accuracy_hand_computed():
    probs = torch.tensor(
        [[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.1, 0.3, 0.6], [0.3, 0.4, 0.3]], dtype=torch.float64
    )
    # predictions 0, 1, 2, 1 against labels 0, 1, 1, 1
    assert accuracy(probs, torch.tensor([0, 1, 1, 1])) == pytest.approx(0.75, abs=TOL)
    assert accuracy(probs, torch.tensor([0, 1, 2, 1])) == 1.0


def test_accuracy_tie_goes_to_first_class():
    probs = torch.tensor([[0.5, 0.5], [0.5, 0.5]], dtype=torch.float64)
    assert accuracy(probs, torch.tensor([0, 1])) == pytest.approx(0.5, abs=TOL)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_categorical_nll_matches_torch_nll_loss(seed):
    probs, y = random_classification(seed)
    expected = F.nll_loss(torch.log(probs), y).item()
    assert categorical_nll(probs, y) == pytest.approx(expected, abs=TOL)


def test_categorical_nll_hand_computed_and_clamped():
    probs = torch.tensor([[0.5, 0.5], [0.25, 0.75]], dtype=torch.float64)
    # (-log 0.5 - log 0.25) / 2 = 1.5 log 2
    assert categorical_nll(probs, torch.tensor([0, 0])) == pytest.approx(1.5 * math.log(2), abs=TOL)
    zero = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    assert categorical_nll(zero, torch.tensor([1])) == pytest.approx(-math.log(1e-12), abs=1e-9)
    assert categorical_nll(zero, torch.tensor([1]), eps=1e-3) == pytest.approx(
        -math.log(1e-3), abs=TOL
    )


def test_brier_score_hand_computed():
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.5, 0.4]], dtype=torch.float64)
    # point 1 (y=0): 0.3^2 + 0.2^2 + 0.1^2 = 0.14; point 2 (y=2): 0.1^2 + 0.5^2 + 0.6^2 = 0.62
    assert brier_score(probs, torch.tensor([0, 2])) == pytest.approx(0.38, abs=TOL)
    # a confident wrong answer scores the maximum, 2; a confident right one scores 0
    onehot = torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64)
    assert brier_score(onehot, torch.tensor([1])) == pytest.approx(2.0, abs=TOL)
    assert brier_score(onehot, torch.tensor([0])) == pytest.approx(0.0, abs=TOL)


@pytest.mark.parametrize("y", [[0, 3], [-1, 0]])
def test_classification_rejects_out_of_range_labels(y):
    with pytest.raises(ValueError, match="labels"):
        accuracy(torch.full((2, 3), 1 / 3), torch.tensor(y))


# --- calibration --------------------------------------------------------------------------------

# 3 classes, 2 bins [0, 0.5] and (0.5, 1]:
#   conf 0.40 right, conf 0.45 wrong -> bin 0: n 2, conf 0.425, acc 0.5, gap 0.075
#   conf 0.90 right, conf 0.70 wrong -> bin 1: n 2, conf 0.800, acc 0.5, gap 0.300
#   ECE = 2/4 * 0.075 + 2/4 * 0.3 = 0.1875
SMALL_PROBS = torch.tensor(
    [[0.4, 0.3, 0.3], [0.2, 0.45, 0.35], [0.9, 0.05, 0.05], [0.1, 0.7, 0.2]], dtype=torch.float64
)
SMALL_Y = torch.tensor([0, 2, 0, 0])


def test_reliability_hand_computed():
    rel = reliability(SMALL_PROBS, SMALL_Y, n_bins=2)
    np.testing.assert_allclose(rel.bin_edges, [0.0, 0.5, 1.0], atol=TOL, rtol=0)
    np.testing.assert_array_equal(rel.counts, [2, 2])
    np.testing.assert_allclose(rel.confidence, [0.425, 0.8], atol=TOL, rtol=0)
    np.testing.assert_allclose(rel.accuracy, [0.5, 0.5], atol=TOL, rtol=0)


def test_ece_hand_computed():
    assert ece(SMALL_PROBS, SMALL_Y, n_bins=2) == pytest.approx(0.1875, abs=TOL)


def test_reliability_bin_boundaries():
    # 4 bins with exactly representable edges 0, .25, .5, .75, 1; bins are (lo, hi], 0 -> first.
    # Rows [c, (1-c)/4 x 4] have confidence c; an all-zero (degenerate) row has confidence 0.
    conf = [0.0, 0.25, 0.26, 0.5, 0.75, 1.0]
    probs = torch.tensor([[c] + [(1 - c) / 4] * 4 for c in conf], dtype=torch.float64)
    probs[0] = 0.0
    rel = reliability(probs, torch.zeros(len(conf), dtype=torch.long), n_bins=4)
    # 0 and 0.25 -> bin 0; 0.26 and 0.5 -> bin 1; 0.75 -> bin 2; 1.0 -> bin 3 (the last bin)
    np.testing.assert_array_equal(rel.counts, [2, 2, 1, 1])
    np.testing.assert_allclose(rel.confidence, [0.125, 0.38, 0.75, 1.0], atol=TOL, rtol=0)


@pytest.mark.parametrize("n_bins", [1, 10, 15])
def test_confidence_one_goes_in_last_bin(n_bins):
    probs = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    rel = reliability(probs, torch.tensor([0, 0]), n_bins=n_bins)
    assert rel.counts[-1] == 2 and rel.counts.sum() == 2
    assert rel.confidence[-1] == 1.0 and rel.accuracy[-1] == pytest.approx(0.5, abs=TOL)
    assert ece(probs, torch.tensor([0, 0]), n_bins=n_bins) == pytest.approx(0.5, abs=TOL)


def test_reliability_empty_bins_are_nan_and_arrays_read_only():
    rel = reliability(SMALL_PROBS, SMALL_Y, n_bins=10)
    assert isinstance(rel, Reliability)
    assert rel.bin_edges.shape == (11,) and rel.counts.shape == (10,)
    assert rel.counts.dtype == np.int64
    empty = rel.counts == 0
    assert empty.any()
    assert np.isnan(rel.confidence[empty]).all() and np.isnan(rel.accuracy[empty]).all()
    assert not np.isnan(rel.confidence[~empty]).any()
    with pytest.raises(ValueError):
        rel.counts[0] = 99


def test_ece_perfectly_calibrated_is_zero():
    # binary points at confidences 0.55, 0.7, 0.9, 1.0 (20 each), right exactly that often
    probs, y = [], []
    for conf in (0.55, 0.7, 0.9, 1.0):
        n_right = round(conf * 20)
        probs += [[conf, 1 - conf]] * 20
        y += [0] * n_right + [1] * (20 - n_right)
    probs, y = torch.tensor(probs, dtype=torch.float64), torch.tensor(y)
    assert ece(probs, y) == pytest.approx(0.0, abs=TOL)
    rel = reliability(probs, y)
    full = rel.counts > 0
    np.testing.assert_allclose(rel.accuracy[full], rel.confidence[full], atol=TOL, rtol=0)


def numpy_reliability(probs: np.ndarray, y: np.ndarray, n_bins: int):
    """Straightforward reference: loop over bins (b/n, (b+1)/n], the first closed at 0."""
    conf, correct = probs.max(axis=1), probs.argmax(axis=1) == y
    counts, confs, accs, total = [], [], [], 0.0
    for b in range(n_bins):
        lo, hi = b / n_bins, (b + 1) / n_bins
        mask = (conf <= hi) & ((conf > lo) | (b == 0))
        counts.append(mask.sum())
        confs.append(conf[mask].mean() if mask.any() else np.nan)
        accs.append(correct[mask].mean() if mask.any() else np.nan)
        if mask.any():
            total += mask.sum() / len(y) * abs(accs[-1] - confs[-1])
    return np.array(counts), np.array(confs), np.array(accs), total


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("n_bins", [1, 5, 15, 40])
def test_reliability_and_ece_match_numpy_reference(seed, n_bins):
    probs, y = random_classification(seed, n=1000)
    counts, confs, accs, expected_ece = numpy_reliability(probs.numpy(), y.numpy(), n_bins)
    rel = reliability(probs, y, n_bins=n_bins)
    np.testing.assert_array_equal(rel.counts, counts)
    assert rel.counts.sum() == len(y)
    np.testing.assert_allclose(rel.confidence, confs, atol=TOL, rtol=0, equal_nan=True)
    np.testing.assert_allclose(rel.accuracy, accs, atol=TOL, rtol=0, equal_nan=True)
    assert ece(probs, y, n_bins=n_bins) == pytest.approx(expected_ece, abs=TOL)


# --- out-of-distribution detection --------------------------------------------------------------


@pytest.mark.parametrize(
    ("score_in", "score_out", "expected"),
    [
        ([0.0, 1.0, 2.0], [3.0, 4.0], 1.0),  # every OOD score above every in-distribution score
        ([3.0, 4.0], [0.0, 1.0, 2.0], 0.0),  # reversed
        ([1.0, 1.0, 1.0], [1.0, 1.0], 0.5),  # all tied
        ([0.0, 2.0], [1.0, 3.0], 0.75),  # 3 of the 4 (in, out) pairs ordered correctly
    ],
)
def test_ood_auroc_hand_computed(score_in, score_out, expected):
    assert ood_auroc(torch.tensor(score_in), torch.tensor(score_out)) == pytest.approx(
        expected, abs=TOL
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ood_auroc_matches_sklearn_and_pairwise_count(seed):
    rng = np.random.default_rng(seed)
    score_in = rng.normal(0.0, 1.0, size=150).round(1)  # rounding creates ties
    score_out = rng.normal(0.8, 1.0, size=90).round(1)
    labels = np.r_[np.zeros(150), np.ones(90)]
    diff = score_out[None, :] - score_in[:, None]  # (150, 90): P(out > in) + P(tie) / 2
    pairwise = ((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size
    got = ood_auroc(torch.from_numpy(score_in), torch.from_numpy(score_out))
    assert got == pytest.approx(roc_auc_score(labels, np.r_[score_in, score_out]), abs=TOL)
    assert got == pytest.approx(pairwise, abs=TOL)


@pytest.mark.parametrize(("score_in", "score_out"), [([], [1.0]), ([1.0], []), ([], [])])
def test_ood_auroc_empty_raises(score_in, score_out):
    with pytest.raises(ValueError, match="at least one"):
        ood_auroc(torch.tensor(score_in), torch.tensor(score_out))


# --- input handling -----------------------------------------------------------------------------


def test_numpy_and_float32_inputs_match_float64_tensors():
    torch.manual_seed(3)
    mean, y, std = torch.randn(3, 50, dtype=torch.float64)
    std = std.abs() + 0.1
    probs, labels = random_classification(4, n=200)
    cases = [
        (rmse, (mean, y)),
        (gaussian_nll, (y, mean, std)),
        (interval_coverage, (y, mean - std, mean + std)),
        (accuracy, (probs, labels)),
        (categorical_nll, (probs, labels)),
        (brier_score, (probs, labels)),
        (ece, (probs, labels)),
        (ood_auroc, (std[:20], std[20:])),
    ]
    for fn, args in cases:
        expected = fn(*args)
        assert isinstance(expected, float)
        assert fn(*(a.numpy() for a in args)) == pytest.approx(expected, abs=TOL)
        # float32 inputs are promoted, so only the float32 rounding of the inputs shows
        as_f32 = (a.float() if a.is_floating_point() else a for a in args)
        assert fn(*as_f32) == pytest.approx(expected, abs=1e-5)
    rel = reliability(probs.numpy(), labels.numpy())
    np.testing.assert_array_equal(rel.counts, reliability(probs, labels).counts)


@pytest.mark.parametrize(
    ("fn", "args", "names"),
    [
        (rmse, ([1.0, 2.0], [1.0]), "mean and y"),
        (gaussian_nll, ([1.0, 2.0], [1.0, 2.0], [1.0]), "y and std"),
        (gaussian_nll, ([1.0, 2.0], [1.0], [1.0, 1.0]), "y and mean"),
        (interval_coverage, ([1.0], [0.0], [2.0, 3.0]), "y and upper"),
        (accuracy, ([[0.5, 0.5]], [0, 1]), "probs and y"),
        (categorical_nll, ([[0.5, 0.5], [0.2, 0.8]], [0]), "probs and y"),
        (brier_score, ([[1.0, 0.0]], [0, 0, 1]), "probs and y"),
        (ece, ([[1.0, 0.0]], [0, 1]), "probs and y"),
    ],
)
def test_mismatched_lengths_raise_naming_arguments(fn, args, names):
    with pytest.raises(ValueError, match=names):
        fn(*(torch.tensor(a) for a in args))


def test_no_broadcasting_between_column_and_vector():
    # (N, 1) against (N,) would silently broadcast to (N, N); it must be refused instead
    with pytest.raises(ValueError, match="same shape"):
        rmse(torch.zeros(4, 1), torch.zeros(4))


def test_public_api():
    assert set(metrics.__all__) == {
        "Reliability",
        "accuracy",
        "brier_score",
        "categorical_nll",
        "ece",
        "gaussian_nll",
        "interval_coverage",
        "ood_auroc",
        "reliability",
        "rmse",
    }
