"""2-D classification: where Bayes by Backprop knows that it does not know.

Heatmaps over the plane of P(class 1), the predictive entropy (total uncertainty) and the mutual
information (its epistemic part), BBB next to the standard network and the chosen baselines, the
training points and the far-away ring on top; the ELBO terms and the metrics beside them.
"""

import streamlit as st

from bbb_core.config import CLASSIFICATION_DATASETS
from bbb_core.plots import classification_grid_figure, loss_figure
from ui import exports, live, routing, widgets

PAGE = "classification"
MAPS = {
    "probability": "P(class 1): where each model puts the boundary",
    "entropy": "Predictive entropy: all uncertainty (aleatoric + epistemic)",
    "mutual_info": "Mutual information: epistemic uncertainty only",
}

routing.require_router()
st.title("Classification: who knows it doesn't know?")
st.markdown(
    "Each map covers the whole plane, far beyond the training points. A standard network is "
    "confident almost everywhere; BBB's mutual information lights up where the data says nothing. "
    "The grey crosses mark a far-away ring of inputs (a quarter of them drawn) used to score "
    "out-of-distribution detection."
)
settings = widgets.sidebar(PAGE, "classification", CLASSIFICATION_DATASETS)
widgets.messages(settings)


def draw(run: live.LiveRun) -> None:
    preds = live.predictions(run)
    left, right = st.columns([2, 1])
    with left:
        for quantity, title in MAPS.items():
            fig = classification_grid_figure(run.dataset, preds, quantity, title=title)
            first = quantity == "probability"  # one legend for the three maps
            fig.update_layout(
                height=440 if first else 400,
                showlegend=first,
                legend=dict(y=-0.2, yanchor="top"),
                margin_t=60,
            )
            st.plotly_chart(fig, key=f"{PAGE}-{quantity}")
    with right:
        losses = loss_figure(run.trainers["bbb"].history, n_train=run.dataset.n_train)
        losses.update_layout(height=520, title_text="BBB training: the ELBO terms")
        st.plotly_chart(losses, key=f"{PAGE}-loss")
        st.caption(
            "The standard network has one set of weights, so its mutual information is zero "
            "everywhere: it cannot tell unfamiliar inputs from familiar ones."
        )
    exports.results(
        PAGE, run.cfg, run.metrics, lambda: exports.classification_frame(run.dataset, preds)
    )


live.live_panel(PAGE, settings.config, settings.kinds, settings.mode, draw)
