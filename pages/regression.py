"""Regression: Bayes by Backprop's predictive band next to a standard network's line.

Sidebar knobs (`ui.widgets`) make a `RunConfig`; the live loop (`ui.live`) trains BBB and the
chosen baselines while the fit and the ELBO terms redraw; the metrics table and the downloads
follow when training finishes. A CSV file uploaded above the charts (`ui.upload`) replaces the toy
curve with the visitor's own data, private to their session.
"""

import streamlit as st

from bbb_core.config import REGRESSION_DATASETS
from bbb_core.plots import loss_figure, regression_figure
from ui import exports, live, routing, sweep, upload, widgets

PAGE = "regression"
CHART_HEIGHT = 480

routing.require_router()
st.title("Regression: where is the network unsure?")
st.markdown(
    "BBB learns a distribution over every weight, so its prediction is a band: wide where the "
    "data cannot pin the function down, narrow where it can. The standard network gives one line. "
    "Move a knob on the left and the models retrain at once."
)
datasets = upload.panel(PAGE, "regression", REGRESSION_DATASETS)
settings = widgets.sidebar(PAGE, "regression", datasets)
widgets.messages(settings)
config, dataset_fn = upload.prepare(PAGE, "regression", settings.config)


def figures(run: live.LiveRun, mine) -> tuple:
    """The fit and the ELBO terms as the run stands (computed once for all its viewers)."""
    preds = live.predictions(run)
    name = "your data" if mine else run.dataset.name
    fit = regression_figure(run.dataset, preds, title=f"Predictive distribution · {name}")
    fit.update_layout(height=CHART_HEIGHT, legend=dict(y=-0.16, yanchor="top"), margin_t=50)
    if mine:
        fit.update_xaxes(title_text=upload.plot_text(mine.inputs[0]))
        fit.update_yaxes(title_text=upload.plot_text(mine.target))
    losses = loss_figure(run.jobs["bbb"].history, n_train=run.dataset.n_train)
    losses.update_layout(height=CHART_HEIGHT, title_text="BBB training: the terms of the ELBO")
    return fit, losses


def draw(run: live.LiveRun) -> None:
    mine = upload.data_of(PAGE, run)
    fit, losses = live.cached(run, "figures", lambda: figures(run, mine))
    left, right = st.columns([3, 2])
    left.plotly_chart(fit, key=f"{PAGE}-fit")
    right.plotly_chart(losses, key=f"{PAGE}-loss")
    st.caption(
        "Shaded grey: no training data. Bands are central 95 % intervals; the darker band is the "
        "epistemic part (disagreement between sampled networks), the lighter one adds the noise."
    )

    def plotted():
        frame = exports.regression_frame(run.dataset, live.predictions(run))
        return upload.export_frame(frame, mine) if mine else frame

    exports.results(PAGE, run.cfg, run.metrics, plotted)


live.live_panel(PAGE, config, settings.kinds, settings.mode, draw, dataset_fn)
generated = config is not None and config.data.name in REGRESSION_DATASETS
sweep.panel(PAGE, "regression", config, generated)
