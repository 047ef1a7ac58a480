"""Regression: Bayes by Backprop's predictive band next to a standard network's line.

Sidebar knobs (`ui.widgets`) make a `RunConfig`; the live loop (`ui.live`) trains BBB and the
chosen baselines while the fit and the ELBO terms redraw; the metrics table and the downloads
follow when training finishes.
"""

import streamlit as st

from bbb_core.config import REGRESSION_DATASETS
from bbb_core.plots import loss_figure, regression_figure
from ui import exports, live, routing, widgets

PAGE = "regression"
CHART_HEIGHT = 480

routing.require_router()
st.title("Regression: where is the network unsure?")
st.markdown(
    "BBB learns a distribution over every weight, so its prediction is a band: wide where the "
    "data cannot pin the function down, narrow where it can. The standard network gives one line. "
    "Move a knob on the left and the models retrain at once."
)
settings = widgets.sidebar(PAGE, "regression", REGRESSION_DATASETS)
widgets.messages(settings)


def draw(run: live.LiveRun) -> None:
    preds = live.predictions(run)
    fit = regression_figure(
        run.dataset, preds, title=f"Predictive distribution · {run.dataset.name}"
    )
    fit.update_layout(height=CHART_HEIGHT, legend=dict(y=-0.16, yanchor="top"), margin_t=50)
    losses = loss_figure(run.trainers["bbb"].history, n_train=run.dataset.n_train)
    losses.update_layout(height=CHART_HEIGHT, title_text="BBB training: the terms of the ELBO")
    left, right = st.columns([3, 2])
    left.plotly_chart(fit, key=f"{PAGE}-fit")
    right.plotly_chart(losses, key=f"{PAGE}-loss")
    st.caption(
        "Shaded grey: no training data. Bands are central 95 % intervals; the darker band is the "
        "epistemic part (disagreement between sampled networks), the lighter one adds the noise."
    )
    exports.results(
        PAGE, run.cfg, run.metrics, lambda: exports.regression_frame(run.dataset, preds)
    )


live.live_panel(PAGE, settings.config, settings.kinds, settings.mode, draw)
