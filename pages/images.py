"""Images: what a network says about digits it has never seen, and about things that are not digits.

Trains Bayes by Backprop and a standard network (and optionally MC dropout and an ensemble) on
scikit-learn's 8x8 digits, MNIST or Fashion-MNIST, then shows calibration, uncertainty on
out-of-distribution sets, a gallery of the hardest test images, a "rotate a digit" explorer and
pruning by signal-to-noise ratio (Blundell et al., ICML 2015, Table 2). All computing is
`bbb_core.image_analysis`; this page holds widgets and layout. A run lives in the session.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import pandas as pd
import streamlit as st
import torch

from bbb_core import RunConfig, Trainer, TrainingDiverged, default_config
from bbb_core.config import PRIORS
from bbb_core.data.images import IDX_FILES, DataUnavailableError
from bbb_core.image_analysis import (
    PRUNING_METHODS,
    analyse,
    auroc_table,
    background_value,
    baseline_config,
    confidently_wrong,
    most_uncertain,
    pruning_curves,
    rotation_angles,
    rotation_sweep,
)
from bbb_core.plots import (
    image_gallery_figure,
    metrics_frame,
    model_label,
    pruning_figure,
    reliability_figure,
    rotation_figure,
    uncertainty_histogram,
)
from bbb_core.rng import derive_seed
from ui import live, routing
from ui.params import MAX_HIDDEN_CHARS, hidden_rule, parse_hidden
from ui.widgets import PRIOR_LABELS, friendly_error

LOG = logging.getLogger("bbb_explorer.images")  # the details behind the page's short errors
PAGE = "images"
RUN_KEY = "images_run"  # st.session_state: this session's trained models and their analysis
DATASETS = {"digits": "8x8 digits (bundled)", "mnist": "MNIST", "fashion_mnist": "Fashion-MNIST"}
ARCHS = {"mlp": "MLP", "cnn": "CNN (Bayesian convolutions, flipout)"}
HIDDEN_LABELS = {"mlp": "Hidden units", "cnn": "Channels per convolution"}
MAX_UNITS = {"mlp": 2048, "cnn": 128}  # widest layer, most channels: a run fits in memory
CNN_CHANNELS = (16, 32)
SCORES = {"entropy": "entropy", "mutual_info": "mutual information"}
PRUNE_FRACTIONS = [0.0, 0.5, 0.75, 0.9, 0.95, 0.98, 0.99]
ROTATION_STEP = 10  # degrees between the angles of the rotation sweep
SWEEPS_KEPT = 8  # rotation sweeps remembered per run
ANALYSIS_STREAM = 3  # the sub-stream of the run's seed that the analysis draws from


def _widths(text: str, arch: str) -> tuple[int, ...]:
    """The widths (or channels) typed for `arch`; ValueError names the box and the bounds."""
    try:
        return parse_hidden(text, max_width=MAX_UNITS[arch])
    except ValueError as err:
        raise ValueError(f"{HIDDEN_LABELS[arch]}: {err}") from None


def settings() -> tuple[RunConfig, list[str]]:
    """The sidebar widgets; returns the BBB run's config and the model kinds to train."""
    with st.sidebar:
        name = st.selectbox("Dataset", list(DATASETS), format_func=DATASETS.get, key="img_dataset")
        base = default_config(name)
        arch = st.radio(
            "Network",
            list(ARCHS),
            format_func=ARCHS.get,
            key="img_arch",
            help="The dense layers use the local reparameterisation. A convolution shares its "
            "kernel across positions, so its outputs are correlated and the local trick would "
            "treat them as independent: its convolutions use flipout.",
        )
        hidden_default = base.model.hidden if arch == "mlp" else CNN_CHANNELS
        hidden = st.text_input(
            HIDDEN_LABELS[arch],
            ", ".join(map(str, hidden_default)),
            max_chars=MAX_HIDDEN_CHARS,
            key=f"img_hidden_{name}_{arch}",
            help=f"Write {hidden_rule(MAX_UNITS[arch])}.",
        )
        prior = st.selectbox(
            "Prior",
            PRIORS,
            index=PRIORS.index(base.prior.family),
            format_func=PRIOR_LABELS.get,
            key=f"img_prior_{name}",
        )
        kl_weight = st.number_input(
            "KL weight",
            0.0,
            10.0,
            base.train.kl_weight,
            0.05,
            key=f"img_kl_weight_{name}",
            help="1 is the ELBO. The digits default, 0.1, counts the KL a tenth (a tempered "
            "posterior): with the full KL on 1,437 images and 26,000 weights the prior dominates "
            "and BBB turns under-confident (docs/digits_defaults.md).",
        )
        epochs = st.number_input("Epochs", 1, 1000, base.train.epochs, key=f"img_epochs_{name}")
        samples = st.number_input(
            "Prediction MC samples",
            2,
            500,
            100 if name == "digits" else 20,
            key=f"img_samples_{name}",
            help="Posterior samples of the predictive on the test and OOD images.",
        )
        extra = st.multiselect(
            "Also train",
            ["dropout", "ensemble"],
            key="img_baselines",
            format_func=model_label,
            help="BBB and the standard network are always trained.",
        )
    cfg = replace(
        base,
        prior=replace(base.prior, family=prior),
        model=replace(base.model, arch=arch, hidden=_widths(hidden, arch)),
        train=replace(base.train, kl_weight=kl_weight, epochs=int(epochs), pred_samples=samples),
    )
    return cfg.validate(), ["bbb", "standard", *extra]


def train_models(cfg: RunConfig, kinds: list[str], dataset) -> dict:
    """Train every kind on `dataset` an epoch at a time, with a progress bar; analyse them."""
    total, done = cfg.train.epochs * len(kinds), 0
    bar = st.progress(0.0, text="Training ...")
    models, seconds = {}, {}
    for kind in kinds:
        trainer = Trainer(baseline_config(cfg, kind), dataset=dataset)
        for p in trainer:
            done += 1
            text = f"{model_label(kind)}: epoch {p.epoch} / {cfg.train.epochs} ({p.seconds:.1f} s)"
            bar.progress(done / total, text=text)
        models[kind], seconds[kind] = trainer.model, trainer.seconds
    bar.progress(1.0, text="Evaluating on the test set and every OOD set ...")
    analysis = analyse(
        models,
        dataset,
        cfg.train.pred_samples,
        cfg.data.ood or "gaussian_noise",
        rng=derive_seed(cfg.seed, ANALYSIS_STREAM),
    )
    pruning = pruning_curves(models["bbb"], dataset, PRUNE_FRACTIONS)
    bar.empty()
    return {
        "config": cfg,
        "models": models,
        "seconds": seconds,
        "analysis": analysis,
        "pruning": pruning,
        "sweeps": {},
    }


def show_metrics(run: dict) -> None:
    st.subheader("Metrics")
    frame = metrics_frame(run["analysis"].metrics)
    frame["train time (s)"] = [run["seconds"][k] for k in frame.index]
    st.dataframe(frame.rename(index=model_label), width="stretch")
    left, right = st.columns([3, 2])
    with left:
        st.markdown("**OOD AUROC on every set**")
        labelled = {model_label(k): v for k, v in run["analysis"].ood.items()}
        table = pd.DataFrame(auroc_table(labelled)).T
        table.index = [name.replace("_", " ") for name in table.index]
        st.dataframe(table, width="stretch")
        st.caption(
            "How well a score tells an unfamiliar set from the test set (1 = perfectly, "
            "0.5 = chance), by predictive entropy or by mutual information (MI), its epistemic "
            "part. A standard network has no weight uncertainty: its MI is zero up to rounding, "
            "so its MI AUROC means nothing."
        )
    right.plotly_chart(reliability_figure(run["analysis"].reliability), key="img-reliability")


def show_histograms(run: dict, kinds: list[str]) -> None:
    st.subheader("Uncertainty on the test set and on unfamiliar inputs")
    scores = run["analysis"].ood
    ood_names = [k for k in next(iter(scores.values())).entropy if k != "test"]
    c1, c2 = st.columns([1, 2])
    kind = c1.radio("Model", kinds, horizontal=True, format_func=model_label, key="img_hist_model")
    default = [n for n in ("gaussian_noise", "letters", "rotated") if n in ood_names]
    shown = c2.multiselect(
        "OOD sets",
        ood_names,
        default,
        key="img_hist_sets",
        format_func=lambda n: n.replace("_", " "),
    )
    left, right = st.columns(2)
    for col, attr in ((left, "entropy"), (right, "mutual_info")):
        values = getattr(scores[kind], attr)
        fig = uncertainty_histogram(
            values["test"],
            {k: values[k] for k in shown},
            f"{model_label(kind)}: {SCORES[attr]}",
            f"{SCORES[attr]} (nats)",
        )
        col.plotly_chart(fig, key=f"img-hist-{attr}")


def show_gallery(run: dict, kinds: list[str], dataset) -> None:
    st.subheader("The hardest test images")
    c1, c2, c3 = st.columns(3)
    kind = c1.radio("Model", kinds, horizontal=True, format_func=model_label, key="img_gal_model")
    by = c2.radio(
        "Rank by", list(SCORES), horizontal=True, format_func=SCORES.get, key="img_gal_by"
    )
    k = c3.slider("Images", 3, 10, 6, key="img_gal_k")
    pred = run["analysis"].test[kind]
    galleries = (
        ("Most uncertain", most_uncertain(pred, dataset.x_test, dataset.y_test, k, by)),
        ("Most confidently wrong", confidently_wrong(pred, dataset.x_test, dataset.y_test, k)),
    )
    for title, g in galleries:
        if len(g.indices) == 0:
            st.info(f"{title}: none, {model_label(kind)} classifies every test image correctly.")
            continue
        score = "H" if by == "entropy" else "MI"
        score = score if title == "Most uncertain" else "p"
        titles = [
            f"{int(t)} → {int(p)}<br>{score} {float(s):.2f}"
            for t, p, s in zip(g.labels, g.probs.argmax(-1), g.scores, strict=True)
        ]
        fig = image_gallery_figure(
            g.images, g.probs, g.probs_std, g.labels, titles, kind=kind, title=title
        )
        st.plotly_chart(fig, key=f"img-gallery-{title}")
    st.caption(
        "Above each image: true class → predicted class. Bars: the predictive probabilities, "
        "with their spread over the Monte Carlo samples; the true class is coloured."
    )


def _sweeps(run: dict, index: int, dataset) -> dict:
    """BBB's and the standard network's rotation sweeps of test image `index` (remembered)."""
    cache = run["sweeps"]
    if index not in cache:
        angles, bg = rotation_angles(ROTATION_STEP), background_value(dataset)
        samples = run["config"].train.pred_samples
        image = dataset.x_test[index]
        cache[index] = {
            k: rotation_sweep(
                run["models"][k],
                image,
                angles,
                samples,
                bg,
                rng=derive_seed(run["config"].seed, ANALYSIS_STREAM, index),
            )
            for k in ("bbb", "standard")
        }
        while len(cache) > SWEEPS_KEPT:
            cache.pop(next(iter(cache)))
    return cache[index]


def show_rotation(run: dict, dataset) -> None:
    st.subheader("Rotate a digit")
    st.caption(
        "Turn a test image and watch the predicted classes. Past some angle the image stops "
        "looking like its digit: a standard network still picks a class with confidence, while "
        "BBB's probabilities spread out across its weight samples."
    )
    c1, c2, c3 = st.columns(3)
    pick = c1.radio("Choose", ["a class", "a test image"], horizontal=True, key="img_rot_pick")
    if pick == "a class":
        cls = c2.selectbox("Class", list(range(dataset.n_classes)), index=3, key="img_rot_class")
        index = int((dataset.y_test == cls).nonzero()[0])
    else:
        index = int(c2.number_input("Test image", 0, len(dataset.y_test) - 1, 0, key="img_rot_idx"))
    angle = c3.slider("Angle (degrees)", 0, 180, 60, ROTATION_STEP, key="img_rot_angle")
    sweeps = _sweeps(run, index, dataset)
    i = angle // ROTATION_STEP
    label = dataset.y_test[index : index + 1]
    left, right = st.columns([1, 2])
    with left:
        for kind, s in sweeps.items():
            fig = image_gallery_figure(
                s.images[i : i + 1],
                s.probs[i : i + 1],
                s.probs_std[i : i + 1],
                label,
                [f"{model_label(kind)} at {angle}°"],
                kind=kind,
            )
            fig.update_layout(height=300)
            st.plotly_chart(fig, key=f"img-rot-{kind}")
    curves = {k: (s.probs, s.probs_std) for k, s in sweeps.items()}
    angles = next(iter(sweeps.values())).angles
    title = f"Test image #{index} (a {int(label)}) from 0 to 180°"
    fig = rotation_figure(angles, curves, title=title)
    fig.add_vline(x=angle, line_dash="dot", line_color="#888888")
    fig.update_layout(legend=dict(y=-0.25, yanchor="top"), margin_b=90)
    right.plotly_chart(fig, key="img-rot-curve")


def show_pruning(run: dict) -> None:
    st.subheader("Pruning by signal-to-noise ratio")
    left, right = st.columns([2, 1])
    errors = {name: e / 100.0 for name, e in run["pruning"].items()}  # % -> fraction
    fig = pruning_figure(torch.tensor(PRUNE_FRACTIONS), errors)
    left.plotly_chart(fig, key="img-pruning")
    with right:
        st.caption(
            "BBB's weights with the smallest |μ| / σ set to zero first (the paper's Table 2), "
            "against removing the smallest |μ|; test error (%) of the posterior-mean network."
        )
        short = {"snr": "error, by |μ|/σ", "magnitude": "error, by |μ|"}
        table = pd.DataFrame(
            {short[k]: run["pruning"][v].tolist() for k, v in PRUNING_METHODS.items()},
            index=[f"{100 * f:g} %" for f in PRUNE_FRACTIONS],
        ).round(2)
        table.index.name = "removed"
        st.dataframe(table, width="stretch")


def _training_stopped(err: Exception) -> None:
    """A short message on the page; the details (a traceback if unexpected) in the server's log."""
    if isinstance(err, TrainingDiverged):  # its message says what to change
        LOG.warning("training diverged: %s", err)
        st.error(f"Training stopped: {err}", icon=":material/error:")
        return
    LOG.exception("training failed")
    st.error(
        "Training stopped by an internal error (the server's log has the details). "
        "Try fewer units or epochs, or other settings.",
        icon=":material/error:",
    )


def main() -> None:
    routing.require_router()
    st.title("Images: does the network know what it hasn't seen?")
    st.markdown(
        "Train Bayes by Backprop and a standard network on handwritten digits, then show them "
        "things that are not digits: noise, letters, photos, inverted and rotated digits. Both "
        "classify test digits well; only one of them hesitates on the rest."
    )
    try:
        cfg, kinds = settings()
    except ValueError as err:
        st.error(friendly_error(err))
        return
    try:
        dataset = live.cached_dataset(cfg)
    except DataUnavailableError as err:
        LOG.warning("%s is unavailable: %s", cfg.data.name, err)
        st.error(
            f"{DATASETS[cfg.data.name]} is not on this machine and could not be downloaded. "
            "Put its four files in the data folder (`BBB_DATA_DIR`; the server's log names it) "
            "and reload the page, or choose the 8x8 digits."
        )
        st.code("\n".join(IDX_FILES), language=None)
        return
    except (ValueError, OSError):
        LOG.exception("could not load %s", cfg.data.name)
        st.error(
            f"Could not load {DATASETS[cfg.data.name]}: its files are damaged or unreadable "
            "(the server's log says which). Choose another dataset."
        )
        return
    if cfg.data.name != "digits" and not torch.cuda.is_available():
        st.caption(
            "On a CPU, MNIST-sized data trains slowly (minutes per epoch for 2 x 1200 units): "
            "try fewer units or epochs, or the 8x8 digits."
        )
    if st.button("Train", type="primary", key="img_train", icon=":material/play_arrow:"):
        try:
            st.session_state[RUN_KEY] = train_models(cfg, kinds, dataset)
        except (TrainingDiverged, ValueError, RuntimeError) as err:
            _training_stopped(err)
            return
    run = st.session_state.get(RUN_KEY)
    if run is None or run["config"].data != cfg.data:
        st.info("Choose the settings in the sidebar and press **Train**.")
        return
    if run["config"] != cfg or list(run["models"]) != kinds:
        st.caption(
            "These results are from the last run; press **Train** to apply the new settings."
        )
    trained = list(run["models"])
    show_metrics(run)
    show_histograms(run, trained)
    show_gallery(run, trained, dataset)
    show_rotation(run, dataset)
    show_pruning(run)


main()
