"""Images: what a network says about digits it has never seen, and about things that are not digits.

Bayes by Backprop, a standard network and the chosen baselines train live (`ui.live`) on
scikit-learn's 8x8 digits, MNIST or Fashion-MNIST, while the test accuracy, the ELBO terms and the
entropy and mutual-information histograms on the test set against an out-of-distribution set
redraw. When training ends the page shows the metrics and the calibration, the histograms and the
AUROC on every OOD set, galleries of the hardest test images, a rotating digit and pruning by
signal-to-noise ratio (Blundell et al., ICML 2015, Table 2). The sidebar and the sections are
`ui.images`; the analyses are `bbb_core.image_analysis`, the figures `bbb_core.image_plots`.
"""

import streamlit as st

from ui import images, live, routing, sweep, widgets

PAGE = images.PAGE

routing.require_router()
st.title("Images: does the network know what it hasn't seen?")
st.markdown(
    "Bayes by Backprop and a standard network learn handwritten digits while you watch; then "
    "they are shown things that are not digits: noise, letters, photos, inverted and rotated "
    "digits. Both classify test digits well; only one of them hesitates on the rest. Move a "
    "knob on the left and the models retrain at once."
)
settings = images.sidebar()
widgets.messages(settings)
config = settings.config
dataset = images.dataset_or_message(config) if config is not None else None
if config is not None and dataset is None:
    st.stop()  # the message says which files to put where


def draw(run: live.LiveRun) -> None:
    done = images.finished(run)
    images.progress_section(run, done)
    images.histogram_section(run, done)
    if done is None:
        st.caption(
            "The metrics, the AUROC on every OOD set, the galleries of the hardest test images, "
            "the rotating digit, pruning and the downloads follow when training ends."
        )
        return
    images.metrics_section(run, done)
    images.gallery_section(run, done)
    images.rotation_section(run, done)
    images.pruning_section(done)


live.live_panel(
    PAGE,
    config,
    settings.kinds,
    settings.mode,
    draw,
    evaluate_run=images.metrics,
)
digits = config is not None and config.data.name == "digits"  # the sweep trains in seconds there
sweep.panel(PAGE, "classification", config, digits, sweep.DIGIT_SIZES, sweep.DIGIT_KINDS)
