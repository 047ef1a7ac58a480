"""2-D classification: where Bayes by Backprop knows that it does not know.

Heatmaps over the plane of P(class 1), the predictive entropy (total uncertainty) and the mutual
information (its epistemic part), BBB next to the standard network and the chosen baselines, the
training points and the far-away ring on top; the ELBO terms and the metrics beside them. A CSV
file uploaded above the charts (`ui.upload`: two input columns and a label of 2 to 10 classes)
replaces the toy set with the visitor's own data, private to their session.
"""

import streamlit as st

from bbb_core.config import CLASSIFICATION_DATASETS
from bbb_core.plots import classification_grid_figure, loss_figure
from ui import exports, live, routing, sweep, upload, widgets

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
datasets = upload.panel(PAGE, "classification", CLASSIFICATION_DATASETS)
settings = widgets.sidebar(PAGE, "classification", datasets)
widgets.messages(settings)
config, dataset_fn = upload.prepare(PAGE, "classification", settings.config)


def figures(run: live.LiveRun, mine) -> dict:
    """The maps and the ELBO terms as the run stands (computed once for all its viewers)."""
    preds = live.predictions(run)
    maps = dict(MAPS)
    if run.dataset.n_classes > 2:  # P(class 1) alone says little about three or more classes
        maps.pop("probability")
    out = {}
    for quantity, title in maps.items():
        fig = classification_grid_figure(run.dataset, preds, quantity, title=title)
        first = quantity == next(iter(maps))  # one legend for the maps
        fig.update_layout(
            height=440 if first else 400,
            showlegend=first,
            legend=dict(y=-0.2, yanchor="top"),
            margin_t=60,
        )
        if mine:
            upload.label_classes(fig, mine)
        out[quantity] = fig
    losses = loss_figure(run.jobs["bbb"].history, n_train=run.dataset.n_train)
    losses.update_layout(height=520, title_text="BBB training: the ELBO terms")
    out["loss"] = losses
    return out


def draw(run: live.LiveRun) -> None:
    mine = upload.data_of(PAGE, run)
    figs = live.cached(run, "figures", lambda: figures(run, mine))
    left, right = st.columns([2, 1])
    with left:
        if "probability" not in figs:
            st.caption(
                f"{run.dataset.n_classes} classes: the maps show the uncertainty; P(class 1) is "
                "drawn for two classes only."
            )
        for quantity in MAPS:
            if quantity in figs:
                st.plotly_chart(figs[quantity], key=f"{PAGE}-{quantity}")
    with right:
        st.plotly_chart(figs["loss"], key=f"{PAGE}-loss")
        st.caption(
            "The standard network has one set of weights, so its mutual information is zero "
            "everywhere: it cannot tell unfamiliar inputs from familiar ones."
        )

    def plotted():
        frame = exports.classification_frame(run.dataset, live.predictions(run))
        return upload.export_frame(frame, mine) if mine else frame

    exports.results(PAGE, run.cfg, run.metrics, plotted)


live.live_panel(PAGE, config, settings.kinds, settings.mode, draw, dataset_fn)
generated = config is not None and config.data.name in CLASSIFICATION_DATASETS
sweep.panel(PAGE, "classification", config, generated)
