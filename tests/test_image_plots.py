"""The images page's figures and tables: traces, titles and numbers, checked without a browser."""

import pytest
import torch

from bbb_core.image_analysis import PRUNING_METHODS, Gallery, OodScores, RotationSweep
from bbb_core.image_plots import (
    accuracy_figure,
    auroc_frame,
    gallery_figure,
    pruning_frame,
    rotation_curve,
    rotation_panel,
    score_histograms,
)


def _scores(shift: float) -> OodScores:
    g = torch.Generator().manual_seed(0)
    test, noise = torch.rand(50, generator=g), torch.rand(40, generator=g) + shift
    return OodScores(
        entropy={"test": test, "gaussian_noise": noise, "letters": noise / 2},
        mutual_info={"test": test / 10, "gaussian_noise": noise / 10, "letters": noise / 20},
        auroc_entropy={"gaussian_noise": 0.9, "letters": 0.7},
        auroc_mi={"gaussian_noise": 0.8, "letters": 0.6},
    )


def test_accuracy_figure_draws_a_line_per_model_in_percent():
    fig = accuracy_figure({"bbb": [(1, 0.5), (3, 0.9)], "standard": [(2, 0.8)]}, epochs=60)
    assert [t.name for t in fig.data] == ["BBB", "Standard"]
    assert list(fig.data[0].x) == [1, 3] and list(fig.data[0].y) == pytest.approx([50.0, 90.0])
    assert tuple(fig.layout.xaxis.range) == (0, 60) and tuple(fig.layout.yaxis.range) == (0, 100)


def test_score_histograms_compare_the_test_set_with_the_chosen_sets():
    figures = score_histograms(_scores(1.0), ["gaussian_noise"], "bbb")
    assert set(figures) == {"entropy", "mutual_info"}
    assert [t.name for t in figures["entropy"].data] == ["test set", "gaussian noise"]
    assert figures["mutual_info"].layout.title.text == "BBB: mutual information"
    for trace in figures["entropy"].data:  # each bar set is a density over the shared bins
        assert float((trace.y * trace.width).sum()) == pytest.approx(1.0)


def test_auroc_frame_has_a_row_per_ood_set_and_a_column_per_model_and_score():
    table = auroc_frame({"bbb": _scores(1.0), "standard": _scores(0.5)})
    assert list(table.index) == ["gaussian noise", "letters"]
    assert table.loc["letters", "BBB (MI)"] == 0.6
    assert table.loc["gaussian noise", "Standard (entropy)"] == 0.9


def test_pruning_frame_rounds_the_errors_per_share_removed():
    curves = {
        PRUNING_METHODS["snr"]: torch.tensor([2.0, 2.123, 50.0]),
        PRUNING_METHODS["magnitude"]: torch.tensor([2.0, 3.456, 80.0]),
    }
    table = pruning_frame(curves, (0.0, 0.5, 0.99))
    assert list(table.index) == ["0 %", "50 %", "99 %"]
    assert list(table["error, by |μ|/σ"]) == [2.0, 2.12, 50.0]
    assert list(table["error, by |μ|"]) == [2.0, 3.46, 80.0]


def _probs(n: int) -> torch.Tensor:
    return torch.softmax(torch.arange(n * 10, dtype=torch.float32).reshape(n, 10) % 7, -1)


def test_gallery_figure_captions_say_true_predicted_and_the_score():
    probs = _probs(2)
    gallery = Gallery(
        indices=torch.tensor([4, 9]),
        images=torch.rand(2, 1, 8, 8),
        labels=torch.tensor([3, 1]),
        probs=probs,
        probs_std=torch.zeros_like(probs),
        scores=torch.tensor([1.25, 0.5]),
    )
    fig = gallery_figure(gallery, "bbb", "Most uncertain", by="mutual_info")
    texts = " ".join(a.text for a in fig.layout.annotations)
    predicted = int(probs[0].argmax())
    assert f"3 → {predicted}<br>MI 1.25" in texts
    wrong = gallery_figure(gallery, "bbb", "Most confidently wrong", by="confidence")
    assert "p 0.50" in " ".join(a.text for a in wrong.layout.annotations)


def test_rotation_panel_and_curve_show_the_chosen_angle():
    angles = torch.tensor([0.0, 10.0, 20.0])
    probs = _probs(3)
    sweep = RotationSweep(
        angles, torch.rand(3, 1, 8, 8), probs, torch.zeros_like(probs), *[None] * 2
    )
    panel = rotation_panel(sweep, 2, "standard", torch.tensor([3]))
    assert "Standard at 20°" in " ".join(a.text for a in panel.layout.annotations)
    curve = rotation_curve({"bbb": sweep, "standard": sweep}, 10, index=7, label=3)
    assert curve.layout.title.text.startswith("Test image #7 (a 3)")
    assert any(s.x0 == 10 for s in curve.layout.shapes)  # the marked angle
