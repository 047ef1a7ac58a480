"""Priors and weights: maximum likelihood, MAP (weight decay) and Bayes by Backprop side by side.

The sidebar (`ui.priors`) sets one prior; the live loop (`ui.live`) trains the three estimates of
one network while their predictions, the losses they minimise and their weights redraw: the
histograms against the prior's density, BBB's sigmas, |mu| against sigma and, once finished,
the pruning curves, the metrics and the downloads.
"""

import math

import streamlit as st

from bbb_core import build_prior
from bbb_core.plots import pruning_figure
from bbb_core.priors import GaussianPrior, LaplacePrior, ScaleMixturePrior
from bbb_core.weight_plots import (
    estimate_label,
    estimates_figure,
    estimates_map_figure,
    priors_figure,
    sigma_histogram_figure,
    snr_scatter_figure,
    weight_histogram_figure,
)
from bbb_core.weights import (
    point_weights,
    posterior_weights,
    prior_density,
    pruning_curves,
    summarise,
    summary_rows,
    weights_table,
)
from ui import exports, live, priors, routing, widgets

PAGE = priors.PAGE
FRACTIONS = (0.0, 0.25, 0.5, 0.75, 0.9, 0.95, 0.98, 0.99)
FAMILY_NAMES = {"gaussian": "Gaussian", "laplace": "Laplace", "mixture": "scale mixture"}

routing.require_router()
st.title("Priors and weights: MLE, MAP and a distribution")
st.markdown(
    "Maximum likelihood (MLE) fits one value per weight. MAP adds the prior's −log p(w) to the "
    "loss: a Gaussian prior is exactly L2 weight decay, a Laplace prior is L1. Bayes by Backprop "
    "keeps a Gaussian over every weight (twice the parameters), and that spread is where "
    '"I don\'t know" comes from. All three train live on the same data, under the prior set '
    "on the left."
)
settings = priors.sidebar()
widgets.messages(settings)


def prior_panel(cfg) -> None:
    p = cfg.prior
    shown = {
        f"Gaussian σ = {p.sigma:g}": GaussianPrior(p.sigma),
        f"Laplace b = {p.b:g}": LaplacePrior(p.b),
        f"mixture π = {p.pi:g}": ScaleMixturePrior(p.pi, p.sigma1, p.sigma2),
    }
    active = list(shown)[list(FAMILY_NAMES).index(p.family)]
    w_max = max(1.0, 3.5 * max(p.sigma, 2 * p.b, p.sigma1))
    fig = priors_figure(shown, active=active, w_max=w_max)
    st.plotly_chart(fig, key=f"{PAGE}-prior")


def figures(run: live.LiveRun) -> dict:
    """The run's charts and weight summary as it stands (computed once for all its viewers)."""
    preds, cfg = live.predictions(run), run.cfg
    mle, map_, bbb = (run.jobs[k].model for k in ("standard", "map", "bbb"))
    if run.dataset.task == "regression":
        fit = estimates_figure(run.dataset, preds)
    else:
        fit = estimates_map_figure(run.dataset, preds, title="P(class 1) of the three estimates")
    post = posterior_weights(bbb)
    weights = {"MLE": point_weights(mle), "MAP": point_weights(map_), "BBB means μ": post.mu}
    w_max = max(float(w.abs().max()) for w in weights.values())
    density = prior_density(build_prior(cfg.prior), max(w_max, 1e-3))
    name = f"prior p(w): {FAMILY_NAMES[cfg.prior.family]}"
    sigma0 = math.log1p(math.exp(cfg.model.rho0))
    return {
        "fit": fit,
        "weights": weight_histogram_figure(weights, density, name),
        "sigma": sigma_histogram_figure(post.sigma, sigma0),
        "snr": snr_scatter_figure(post.mu, post.sigma),
        "summary": summary_rows(summarise(weights["MLE"], weights["MAP"], post)),
    }


def draw(run: live.LiveRun) -> None:
    preds, cfg = live.predictions(run), run.cfg
    mle, map_, bbb = (run.jobs[k].model for k in ("standard", "map", "bbb"))
    figs = live.cached(run, "figures", lambda: figures(run))
    st.caption("Now (sums over the training set, in nats): " + priors.loss_now(histories(run)))
    left, right = st.columns([3, 2])
    left.plotly_chart(figs["fit"], key=f"{PAGE}-fit")
    right.plotly_chart(figs["weights"], key=f"{PAGE}-weights")
    left, right = st.columns(2)
    left.plotly_chart(figs["sigma"], key=f"{PAGE}-sigma")
    right.plotly_chart(figs["snr"], key=f"{PAGE}-snr")
    st.dataframe(figs["summary"], hide_index=True)
    if run.metrics is None:
        st.caption("The pruning curves, the metrics and the downloads follow when training ends.")
        return
    curves, metric = pruning(run)
    fig = pruning_figure(FRACTIONS, curves, "Pruning the mean network", metric, height=380)
    st.plotly_chart(fig, key=f"{PAGE}-pruning")
    regression = run.dataset.task == "regression"
    frame = exports.regression_frame if regression else exports.classification_frame
    metrics = {estimate_label(k): v for k, v in run.metrics.items()}
    exports.results(PAGE, cfg, metrics, lambda: frame(run.dataset, preds))
    st.download_button(
        "Weights (CSV)",
        lambda: weights_table(mle, map_, bbb).to_csv(index=False),  # when pressed
        file_name=f"bbb_{PAGE}_weights.csv",
        mime="text/csv",
        on_click="ignore",
        icon=":material/download:",
        key=f"{PAGE}-download-weights",
    )


def histories(run: live.LiveRun) -> dict:
    return {kind: job.history for kind, job in run.jobs.items()}


def pruning(run: live.LiveRun) -> tuple[dict, str]:
    """The finished run's pruning curves and their metric, computed once per run version."""

    def compute() -> tuple[dict, str]:
        metric = "error" if run.dataset.task == "classification" else "rmse"
        bbb, map_ = run.jobs["bbb"].model, run.jobs["map"].model
        return pruning_curves(bbb, map_, run.dataset, FRACTIONS, metric), metric

    return live.cached(run, "pruning", compute)


if settings.config is not None:
    left, right = st.columns(2, vertical_alignment="center")
    left.latex(priors.loss_latex(settings.config))
    with right:
        prior_panel(settings.config)
live.live_panel(PAGE, settings.config, settings.kinds, settings.mode, draw)
