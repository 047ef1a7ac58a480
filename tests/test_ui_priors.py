"""The "Priors and weights" page's helpers (`ui.priors`) without Streamlit running: the run it
trains, the paper's grid as widget values, the labels and the losses written with numbers."""

import math
from dataclasses import replace

import pytest

from bbb_core import default_config
from bbb_core.train import Progress
from ui import params, priors


def test_the_page_trains_with_a_cosine_learning_rate_and_leaves_the_rest():
    cfg = default_config("moons")
    run = priors.page_config(cfg)
    assert run.train.lr_schedule == "cosine"
    assert replace(run, train=replace(run.train, lr_schedule="constant")) == cfg


def test_the_papers_grid_is_27_points_every_one_a_valid_link_value():
    assert len(priors.PAPER_GRID) == 27 == len(set(priors.PAPER_GRID))
    for pi, sigma1, sigma2 in priors.PAPER_GRID:
        for key, value in (("pi", pi), ("sigma1", sigma1), ("sigma2", sigma2)):
            text = params.format_value(params.PARAMS[key], value)
            assert params.parse_value(params.PARAMS[key], text) == value
    assert {round(-math.log(s)) for _, s, _ in priors.PAPER_GRID} == {0, 1, 2}
    assert {round(-math.log(s)) for _, _, s in priors.PAPER_GRID} == {6, 7, 8}
    assert {p for p, _, _ in priors.PAPER_GRID} == {0.25, 0.5, 0.75}


@pytest.mark.parametrize(
    "value, label",
    [(math.exp(-1), "e^-1 ≈ 0.368"), (math.exp(-6), "e^-6 ≈ 0.00248"), (0.3, "0.3"), (1.0, "1")],
)
def test_scale_labels(value, label):
    assert priors.scale_label(value) == label


def test_grid_labels():
    assert priors.grid_label((0.25, 1.0, math.exp(-6))) == "π = 0.25, σ₁ = 1, σ₂ = e^-6"
    assert priors.grid_label((0.75, math.exp(-2), math.exp(-8))) == "π = 0.75, σ₁ = e^-2, σ₂ = e^-8"


@pytest.mark.parametrize(
    "prior, expected",
    [
        ({"family": "gaussian", "sigma": 0.5}, r"2\sum_j w_j^2"),  # 1 / (2 * 0.5^2) = 2: L2
        ({"family": "gaussian", "sigma": 0.1}, r"50\sum_j w_j^2"),
        ({"family": "laplace", "b": 0.2}, r"5\sum_j |w_j|"),  # 1 / b: L1
        (
            {"family": "mixture", "pi": 0.25},
            r"0.25\,\mathcal{N}(w_j; 0, 1^2) + 0.75\,\mathcal{N}(w_j; 0, (e^{-6})^2)",
        ),
    ],
)
def test_the_loss_is_written_with_the_priors_numbers(prior, expected):
    cfg = default_config("blundell")
    cfg = replace(cfg, prior=replace(cfg.prior, **prior))
    latex = priors.loss_latex(cfg)
    assert expected in latex
    assert r"\text{MLE:}" in latex and r"\text{BBB:}" in latex and r"\mathrm{KL}" in latex
    weighted = priors.loss_latex(replace(cfg, train=replace(cfg.train, kl_weight=0.1)))
    assert r"0.1\cdot\mathrm{KL}" in weighted


def test_the_current_terms_of_each_loss():
    def progress(nll: float, kl: float) -> Progress:
        return Progress(step=1, epoch=1, nll=nll, kl=kl, elbo=-(nll + kl), loss=nll + kl, seconds=0)

    text = priors.loss_now(
        {"standard": [progress(-12.34, 0.0)], "map": [progress(-10.0, 55.54)], "bbb": []}
    )
    assert text == "MLE: NLL -12.3 · MAP: NLL -10.0, −log p(w) 55.5"
