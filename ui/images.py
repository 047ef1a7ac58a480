"""The sidebar and the helpers of the images page (Streamlit only).

The page trains Bayes by Backprop, a standard network and the chosen baselines on the 8x8 digits,
MNIST or Fashion-MNIST with the live loop of `ui.live`. Its settings are `TABLE`, its own rows of
`ui.params` (so the URL carries them, bad values falling back with a notice), read by
`widgets.Controls`; its presets are `presets_for("images")`, the MNIST ones offered only where
their data is on disk.

- `sidebar()`: the page's sidebar -> `widgets.Settings`; `config_from(values)` checks the widths
  against the architecture's bound (MLP units up to 2048, CNN channels up to 128).
- `dataset_or_message(cfg)`: the dataset, or a short message saying which files to put where.
- A run that would train for minutes says so and waits for Play: `ui.live` does that for every
  page, from `bbb_core.cost`'s estimate.
- While training, `live_scores(run)` holds every model's predictive on the test set and on the
  chosen OOD set (few samples, at most LIVE_IMAGES images each) and records the test accuracy per
  epoch in `run.series`. When the run finishes, `finished(run)` is its `Finished` analysis
  (`bbb_core.image_analysis`), computed once and cached on the run; `metrics(run)` is what
  `live.finish` stores.
- The sections the page draws: `progress_section`, `histogram_section`, `metrics_section`,
  `gallery_section`, `rotation_section`, `pruning_section`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import plotly.graph_objects as go
import streamlit as st
import torch

from bbb_core import Dataset, RunConfig, default_config
from bbb_core.config import (
    ARCHITECTURES,
    IMAGE_DATASETS,
    IMAGE_TRAIN_SIZES,
    OOD_SETS,
)
from bbb_core.data.images import (
    IDX_FILES,
    OTHER_DATASET,
    DataUnavailableError,
    data_dir,
    is_available_locally,
)
from bbb_core.evaluate import primary_ood
from bbb_core.image_analysis import (
    ImageAnalysis,
    RotationSweep,
    analyse,
    background_value,
    confidently_wrong,
    most_uncertain,
    predict_images,
    pruning_curves,
    rotation_angles,
    rotation_sweep,
    scores_from_predictives,
)
from bbb_core.image_plots import (
    SCORE_NAMES,
    accuracy_figure,
    auroc_frame,
    gallery_figure,
    pruning_frame,
    rotation_curve,
    rotation_panel,
    score_histograms,
)
from bbb_core.plots import loss_figure, model_label, pruning_figure, reliability_figure
from bbb_core.rng import derive_seed

from . import exports, live, widgets
from .params import (
    MAX_HIDDEN_CHARS,
    PARAMS,
    Param,
    config_from_values,
    friendly_error,
    hidden_rule,
    parse_hidden,
)
from .presets import Preset, presets_for

LOG = logging.getLogger("bbb_explorer.images")  # the details behind the page's short errors
PAGE = "images"
TASK = "images"  # the presets' task name
DATASETS = IMAGE_DATASETS
DATASET_LABELS = {
    "digits": "8x8 digits (bundled)",
    "mnist": "MNIST",
    "fashion_mnist": "Fashion-MNIST",
}
ARCH_LABELS = {"mlp": "MLP", "cnn": "CNN (Bayesian convolutions, flipout)"}
HIDDEN_LABELS = {"mlp": "Hidden units", "cnn": "Channels per convolution"}
MAX_UNITS = {"mlp": 2048, "cnn": 128}  # widest layer, most channels: a run fits in memory
CNN_CHANNELS = (16, 32)  # the CNN's default channels
OOD_LABELS = {name: name.replace("_", " ") for name in OOD_SETS} | {
    "other_dataset": "the other dataset (MNIST <-> Fashion-MNIST)"
}
TABLE: dict[str, Param] = {  # the page's settings: rows of ui.params plus its own
    **{k: PARAMS[k] for k in ("data", "prior", "sigma", "b", "pi", "sigma1", "sigma2", "kl")},
    "ood": Param("data.ood", "str", OOD_SETS),
    "n": Param("data.n_train", "int", low=50, high=max(IMAGE_TRAIN_SIZES.values())),
    "arch": Param("model.arch", "str", ARCHITECTURES),
    "hidden": Param("model.hidden", "hidden", high=max(MAX_UNITS.values())),
    "rho0": PARAMS["rho0"],
    "epochs": Param("train.epochs", "int", low=1, high=1000),
    **{k: PARAMS[k] for k in ("pred_samples", "show_dropout", "dropout", "show_ensemble")},
    "ensemble": PARAMS["ensemble"],
    **{k: PARAMS[k] for k in ("seed", "device", "mode", "preset")},
}
CHART_HEIGHT = 480  # the accuracy and ELBO charts
LIVE_IMAGES = 1000  # test and OOD images scored while training
PRUNE_FRACTIONS = (0.0, 0.5, 0.75, 0.9, 0.95, 0.98, 0.99)
ROTATION_STEP = 10  # degrees between the angles of the rotation sweep
SWEEPS_KEPT = 8  # rotation sweeps remembered per run
ANALYSIS_STREAM = 3  # the sub-stream of the run's seed that the final analysis draws from


# --- settings -------------------------------------------------------------------------------------


def available(name: str) -> bool:
    """Whether dataset `name` can be loaded without a download."""
    return name == "digits" or is_available_locally(name, data_dir(None))


def offered_presets() -> dict[str, Preset]:
    """The presets whose data is here (the digits always; MNIST's only when on disk)."""
    out = {}
    for slug, preset in presets_for(TASK).items():
        data = preset.config.data
        needed = [data.name] + ([OTHER_DATASET[data.name]] if data.ood == "other_dataset" else [])
        if all(available(n) for n in needed):
            out[slug] = preset
    return out


def ood_options(name: str) -> tuple[str, ...]:
    """The OOD sets of dataset `name` ("other_dataset" only for MNIST and Fashion-MNIST)."""
    return tuple(o for o in OOD_SETS if o != "other_dataset" or name in OTHER_DATASET)


def default_hidden(name: str, arch: str) -> tuple[int, ...]:
    return default_config(name).model.hidden if arch == "mlp" else CNN_CHANNELS


def _on_arch(page: str) -> None:
    arch = st.session_state[widgets._wkey(page, "arch")]
    data = st.session_state[widgets._store_key(page)]["data"]
    hidden = ", ".join(map(str, default_hidden(data, arch)))
    widgets._set_all(page, {"hidden": hidden, "preset": "custom"})


def config_from(values: dict[str, Any]) -> RunConfig:
    """The run the values describe; ValueError when the widths break the architecture's bound."""
    try:
        parse_hidden(values["hidden"], MAX_UNITS[values["arch"]])
    except ValueError as err:
        raise ValueError(f"model.hidden: {err}") from None
    return config_from_values(values, TABLE)


def _error(err: ValueError, arch: str) -> str:
    text = str(err)
    if text.startswith("model.hidden"):
        return f"{HIDDEN_LABELS[arch]}: {text[len('model.hidden') :].strip(' :')}. " + (
            "Change it in the sidebar."
        )
    return friendly_error(err)


def _prior_knobs(ctl: widgets.Controls) -> None:
    widgets.prior_family_knobs(ctl)
    ctl.select_slider(
        "kl",
        "KL weight",
        help="1 is the ELBO. The digits default, 0.1, counts the KL a tenth (a tempered "
        "posterior): with the full KL on 1,437 images and 26,000 weights the prior dominates "
        "and BBB turns under-confident.",
    )


def sidebar() -> widgets.Settings:
    """Draw the page's sidebar, write the settings into the URL, return `Settings`."""
    ctl = widgets.Controls(PAGE, TASK, DATASETS, TABLE)
    presets = offered_presets()
    with st.sidebar:
        widgets.preset_select(ctl, presets, widgets._on_preset, (PAGE, TASK, TABLE))
        ctl.select("mode", "After a change", labels=widgets.MODE_LABELS)
        with st.expander("Data", expanded=True):
            name = ctl.select(
                "data",
                "Dataset",
                DATASETS,
                labels=DATASET_LABELS,
                on_change=widgets._on_dataset,
                args=(PAGE, TABLE),
                help="Changing the dataset loads its recommended settings.",
            )
            ctl.select(
                "ood",
                "Out-of-distribution set",
                ood_options(name),
                labels=OOD_LABELS,
                help="The unfamiliar inputs the histograms and the metrics compare with the "
                "test set (the AUROC table scores every set).",
            )
            ctl.number(
                "n",
                "Training images",
                50,
                help="A seeded subset of the training set, the same share of every class (all "
                "of it: 1,437 digits, 60,000 MNIST images). Fewer images leave more epistemic "
                "uncertainty: see Does more data help? below.",
            )
        with st.expander("Network", expanded=True):
            arch = ctl.select(
                "arch",
                "Network",
                labels=ARCH_LABELS,
                radio=True,
                on_change=_on_arch,
                help="The dense layers use the local reparameterisation. A convolution shares "
                "its kernel across positions, so its outputs are correlated and the local trick "
                "would treat them as independent: its convolutions use flipout.",
            )
            ctl.text(
                "hidden",
                HIDDEN_LABELS[arch],
                max_chars=MAX_HIDDEN_CHARS,
                help=f"Write {hidden_rule(MAX_UNITS[arch])}.",
            )
            ctl.select_slider(
                "rho0", "Initial ρ", help="Every weight starts with σ = softplus(ρ₀)."
            )
        with st.expander("Prior and KL weight", expanded=True):
            _prior_knobs(ctl)
        with st.expander("Training and sampling"):
            ctl.number("epochs", "Epochs", 1, help="Passes over the training set.")
            ctl.select_slider(
                "pred_samples",
                "Prediction MC samples",
                help="Posterior samples of the final predictive (fewer while training).",
            )
        with st.expander("Baselines"):
            widgets.baselines_section(ctl)
        with st.expander("Seed and device"):
            widgets.run_section(ctl)
    values = ctl.collect()
    ctl.sync_url()
    common = {
        "kinds": widgets.kinds_from(values),
        "mode": values["mode"],
        "notices": tuple(ctl.notices),
    }
    try:
        cfg = config_from(values)
    except ValueError as err:
        return widgets.Settings(config=None, preset=None, error=_error(err, arch), **common)
    return widgets.Settings(config=cfg, preset=presets.get(values["preset"]), error=None, **common)


# --- data and cost --------------------------------------------------------------------------------


def dataset_or_message(cfg: RunConfig) -> Dataset | None:
    """The run's dataset, or None with a short message (the details go to the server's log)."""
    name = DATASET_LABELS[cfg.data.name]
    if cfg.data.ood == "other_dataset" and available(cfg.data.name):  # the OOD set is missing
        name = DATASET_LABELS[OTHER_DATASET[cfg.data.name]]
    try:
        return live.cached_dataset(cfg)
    except DataUnavailableError as err:
        LOG.warning("%s is unavailable: %s", cfg.data.name, err)
        st.error(
            f"{name} is not on this machine and could not be downloaded. Put its four files in "
            "the data folder (`BBB_DATA_DIR`; the server's log names it) and reload the page, "
            "or choose the 8x8 digits.",
            icon=":material/folder_off:",
        )
        st.code("\n".join(IDX_FILES), language=None)
    except (ValueError, OSError):
        LOG.exception("could not load %s", cfg.data.name)
        st.error(
            f"Could not load {name}: its files are damaged or unreadable (the server's log "
            "says which). Choose another dataset."
        )
    return None


# --- what the charts show -------------------------------------------------------------------------


def live_scores(run: live.LiveRun) -> dict[str, Any]:
    """Every model's scores on the test set and the chosen OOD set (few samples, at most
    LIVE_IMAGES images), computed once per run version for all its viewers; records the test
    accuracy in `run.series`."""
    ds, ood = run.dataset, primary_ood(run.dataset, run.cfg)

    def compute() -> dict[str, Any]:
        seed = derive_seed(run.cfg.seed, live.PREDICT_STREAM)
        x, y, x_ood = ds.x_test[:LIVE_IMAGES], ds.y_test[:LIVE_IMAGES], ds.ood[ood][:LIVE_IMAGES]
        scores = {}
        for kind, job in run.jobs.items():
            n, snapshot = live.samples_for(run, kind), job.snapshot
            test = predict_images(snapshot.model, x, n, seed)
            other = predict_images(snapshot.model, x_ood, n, seed)
            scores[kind] = scores_from_predictives(test, {ood: other})
            points = run.series.setdefault(kind, [])
            if not points or points[-1][0] < snapshot.epoch:
                accuracy = float((test.prediction == y.cpu()).float().mean())
                points.append((snapshot.epoch, accuracy))
        return scores

    return live.cached(run, ("images-live", ood), compute)


@dataclass
class Finished:
    """A finished run's analysis, computed once (`finished`)."""

    analysis: ImageAnalysis  # test and OOD predictives, metrics, reliability per model
    pruning: dict[str, torch.Tensor]  # BBB's test error (%) per share removed, per rule
    sweeps: dict[int, dict[str, RotationSweep]] = field(default_factory=dict)  # by test index


def finished(run: live.LiveRun) -> Finished | None:
    """The run's `Finished` analysis once every model has trained, else None."""
    if not run.done or run.error is not None:
        return None

    def compute() -> Finished:
        models = {kind: job.model for kind, job in run.jobs.items()}
        ds, cfg = run.dataset, run.cfg
        rng = derive_seed(cfg.seed, ANALYSIS_STREAM)
        result = analyse(models, ds, cfg.train.pred_samples, primary_ood(ds, cfg), rng=rng)
        pruning = pruning_curves(models["bbb"], ds, list(PRUNE_FRACTIONS))
        return Finished(result, pruning)

    return live.cached(run, "images", compute)


def metrics(run: live.LiveRun) -> dict[str, dict[str, float]]:
    """The metrics `live.finish` stores: the finished analysis's table."""
    return finished(run).analysis.metrics


# --- sections -------------------------------------------------------------------------------------


def _model_choice(run: live.LiveRun, key: str) -> str:
    kinds = list(run.jobs)
    return st.radio("Model", kinds, horizontal=True, format_func=model_label, key=key)


def progress_section(run: live.LiveRun, done: Finished | None) -> None:
    """The test accuracy per epoch and BBB's ELBO terms (the last point from the finished
    analysis, which has every model's predictive already)."""
    if done is None:
        live_scores(run)
    else:
        for kind, job in run.jobs.items():
            points = run.series.setdefault(kind, [])
            if not points or points[-1][0] < job.epoch:
                points.append((job.epoch, done.analysis.metrics[kind]["accuracy"]))
    left, right = st.columns(2)
    accuracy = accuracy_figure(run.series, run.epochs)
    accuracy.update_layout(height=CHART_HEIGHT)
    left.plotly_chart(accuracy, key=f"{PAGE}-accuracy")
    losses = loss_figure(run.jobs["bbb"].history, n_train=run.dataset.n_train)
    losses.update_layout(height=CHART_HEIGHT, title_text="BBB training: the terms of the ELBO")
    right.plotly_chart(losses, key=f"{PAGE}-loss")


def histogram_section(run: live.LiveRun, done: Finished | None) -> None:
    """Entropy and mutual information on the test set against OOD sets: the chosen one while
    training (few samples), any of them once finished."""
    st.subheader("Uncertainty on the test set and on unfamiliar inputs")
    chosen = primary_ood(run.dataset, run.cfg)
    left, right = st.columns([1, 2])
    with left:
        kind = _model_choice(run, f"{PAGE}-hist-model")
    if done is None:
        scores, shown = live_scores(run)[kind], [chosen]
        right.caption(
            f"Test set against {OOD_LABELS[chosen]}, from {live.samples_for(run, kind)} "
            "posterior samples while training; every OOD set once it finishes."
        )
    else:
        scores, names = done.analysis.ood[kind], list(run.dataset.ood)
        default = list(dict.fromkeys([chosen, *(n for n in ("letters", "rotated") if n in names)]))
        shown = right.multiselect(  # a new OOD choice (a preset) starts a new selection
            "OOD sets",
            names,
            default,
            format_func=OOD_LABELS.get,
            key=f"{PAGE}-hist-sets-{chosen}",
        )
    key = ("histograms", kind, tuple(shown), done is None)  # per snapshot, for every viewer
    figures = live.cached(run, key, lambda: score_histograms(scores, shown, kind))
    for col, attr in zip(st.columns(2), SCORE_NAMES, strict=True):
        col.plotly_chart(figures[attr], key=f"{PAGE}-hist-{attr}")


def metrics_section(run: live.LiveRun, done: Finished) -> None:
    """The metrics table and the downloads, the reliability diagram and the AUROC table."""
    st.subheader("Metrics")
    frame = lambda: exports.image_frame(run.dataset, done.analysis.test)  # noqa: E731
    exports.results(PAGE, run.cfg, run.metrics, frame, "Test predictions")
    left, right = st.columns([3, 2])
    with left:
        st.markdown("**OOD AUROC on every set**")
        st.dataframe(auroc_frame(done.analysis.ood), width="stretch", key=f"{PAGE}-auroc")
        st.caption(
            "How well a score tells an unfamiliar set from the test set (1 = perfectly, "
            "0.5 = chance), by predictive entropy or by mutual information (MI), its epistemic "
            "part. A standard network has no weight uncertainty: its MI is zero up to rounding, "
            "so its MI AUROC means nothing."
        )
    fig = reliability_figure(done.analysis.reliability)
    right.plotly_chart(fig, key=f"{PAGE}-reliability")


def gallery_section(run: live.LiveRun, done: Finished) -> None:
    st.subheader("The hardest test images")
    c1, c2, c3 = st.columns(3)
    with c1:
        kind = _model_choice(run, f"{PAGE}-gallery-model")
    by = c2.radio(
        "Rank by", list(SCORE_NAMES), horizontal=True, format_func=SCORE_NAMES.get, key=f"{PAGE}-by"
    )
    k = c3.slider("Images", 3, 10, 6, key=f"{PAGE}-gallery-k")

    def figures() -> dict[str, go.Figure | None]:  # title -> figure (None: no such image)
        pred, ds = done.analysis.test[kind], run.dataset
        galleries = {  # title -> (gallery, the score its captions show)
            "Most uncertain": (most_uncertain(pred, ds.x_test, ds.y_test, k, by), by),
            "Most confidently wrong": (
                confidently_wrong(pred, ds.x_test, ds.y_test, k),
                "confidence",
            ),
        }
        return {
            title: gallery_figure(gallery, kind, title, score) if len(gallery.indices) else None
            for title, (gallery, score) in galleries.items()
        }

    # built once per finished run and choice for every viewer: ~0.5 s of plotly per rerun else
    for i, (title, fig) in enumerate(live.cached(run, ("galleries", kind, by, k), figures).items()):
        if fig is None:
            st.info(f"{title}: none, {model_label(kind)} classifies every test image correctly.")
            continue
        st.plotly_chart(fig, key=f"{PAGE}-gallery-{i}")
    st.caption(
        "Above each image: true class → predicted class. Bars: the predictive probabilities, "
        "with their spread over the Monte Carlo samples; the true class is coloured."
    )
    split_section(run, done, kind, k)


def split_section(run: live.LiveRun, done: Finished, kind: str, k: int) -> None:
    """The images with the most aleatoric and the most epistemic uncertainty, side by side."""
    st.markdown(
        "**What more data would fix, and what it would not.** Left: the test images with the "
        "highest expected entropy, the aleatoric part: every sampled network is unsure (a "
        "digit half 4 and half 9). Right: the highest mutual information, the epistemic part: "
        "the sampled networks disagree, each sure of a different class."
    )
    if kind == "standard":
        st.info("A standard network is one network: it has no epistemic part. Pick BBB above.")
        return
    parts = (
        ("expected_entropy", "Most aleatoric (expected entropy)"),
        ("mutual_info", "Most epistemic (mutual information)"),
    )

    def figures() -> list[go.Figure]:
        pred, ds = done.analysis.test[kind], run.dataset
        return [
            gallery_figure(most_uncertain(pred, ds.x_test, ds.y_test, k, by), kind, title, by)
            for by, title in parts
        ]

    figs = live.cached(run, ("split galleries", kind, k), figures)
    for col, (by, _), fig in zip(st.columns(2), parts, figs, strict=True):
        col.plotly_chart(fig, key=f"{PAGE}-split-{by}")


def _sweeps(run: live.LiveRun, done: Finished, index: int) -> dict[str, RotationSweep]:
    """BBB's and the standard network's rotation sweeps of test image `index` (remembered)."""
    if index not in done.sweeps:
        angles, bg = rotation_angles(ROTATION_STEP), background_value(run.dataset)
        image, samples = run.dataset.x_test[index], run.cfg.train.pred_samples
        rng = derive_seed(run.cfg.seed, ANALYSIS_STREAM, index)
        done.sweeps[index] = {
            k: rotation_sweep(run.jobs[k].model, image, angles, samples, bg, rng=rng)
            for k in ("bbb", "standard")
        }
        while len(done.sweeps) > SWEEPS_KEPT:
            done.sweeps.pop(next(iter(done.sweeps)), None)
    return done.sweeps[index]


def rotation_section(run: live.LiveRun, done: Finished) -> None:
    st.subheader("Rotate a digit")
    st.caption(
        "Turn a test image and watch the predicted classes. Past some angle the image stops "
        "looking like its class: a standard network still picks a class with confidence, while "
        "BBB's probabilities spread out across its weight samples."
    )
    ds = run.dataset
    c1, c2, c3 = st.columns(3)
    pick = c1.radio("Choose", ["a class", "a test image"], horizontal=True, key=f"{PAGE}-rot-pick")
    if pick == "a class":
        cls = c2.selectbox("Class", list(range(ds.n_classes)), index=3, key=f"{PAGE}-rot-class")
        index = int((ds.y_test == cls).nonzero()[0])
    else:
        last = len(ds.y_test) - 1
        index = int(c2.number_input("Test image", 0, last, 0, key=f"{PAGE}-rot-index"))
    angle = c3.slider("Angle (degrees)", 0, 180, 60, ROTATION_STEP, key=f"{PAGE}-rot-angle")
    sweeps = _sweeps(run, done, index)
    label = ds.y_test[index : index + 1]
    left, right = st.columns([1, 2])
    for kind, sweep in sweeps.items():
        panel = rotation_panel(sweep, angle // ROTATION_STEP, kind, label)
        left.plotly_chart(panel, key=f"{PAGE}-rot-{kind}")
    curve = rotation_curve(sweeps, angle, index, int(label))
    right.plotly_chart(curve, key=f"{PAGE}-rot-curve")


def pruning_section(done: Finished) -> None:
    st.subheader("Pruning by signal-to-noise ratio")
    left, right = st.columns([2, 1])
    errors = {name: e / 100.0 for name, e in done.pruning.items()}  # % -> fraction
    fig = pruning_figure(torch.tensor(PRUNE_FRACTIONS), errors)
    left.plotly_chart(fig, key=f"{PAGE}-pruning")
    with right:
        st.caption(
            "BBB's weights with the smallest |μ| / σ set to zero first (the paper's Table 2), "
            "against removing the smallest |μ|; test error (%) of the posterior-mean network."
        )
        st.dataframe(pruning_frame(done.pruning, PRUNE_FRACTIONS), width="stretch")
