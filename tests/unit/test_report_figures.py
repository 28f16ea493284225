"""Fig. 3's labels: every model on the upper hull labelled, others where they fit, none overlapping."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import pytest

pytest.importorskip("matplotlib")

from pytest_dnnbench.paperdata import paper_baseline  # noqa: E402
from pytest_dnnbench.report import figures as F  # noqa: E402
from pytest_dnnbench.report import fits  # noqa: E402
from pytest_dnnbench.report.inputs import records_from_baseline  # noqa: E402
from pytest_dnnbench.report.tables import Platform  # noqa: E402

if TYPE_CHECKING:
    from matplotlib.transforms import Bbox


def _titan() -> Platform:
    return records_from_baseline(paper_baseline("titan_xp"), source="paper")


def _jetson() -> Platform:
    return records_from_baseline(paper_baseline("jetson_tx1"), source="paper")


def _boxes(plot: F.Fig3Plot) -> tuple[dict[tuple[str, str], Bbox], Bbox]:
    """The labels' rendered extents and the Axes' box, after a full draw (as the PNG is made)."""
    fig = plot.figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    return {k: t.get_window_extent(renderer) for k, t in plot.labels.items()}, plot.ax.get_window_extent(renderer)


def _check_layout(plot: F.Fig3Plot, min_others: int = 5) -> int:
    boxes, frame = _boxes(plot)
    assert plot.hull, "no model on the upper hull"
    assert set(plot.hull) <= set(boxes), f"hull models without a label: {set(plot.hull) - set(boxes)}"
    others = [k for k in boxes if k not in plot.hull]
    assert len(others) >= min_others, f"only {len(others)} models off the hull labelled"
    keys = sorted(boxes)
    for i, a in enumerate(keys):
        box = boxes[a]
        assert frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1, (a, box, frame)
        for b in keys[i + 1 :]:
            assert not box.overlaps(boxes[b]), f"labels {a[1]!r} and {b[1]!r} overlap"
    # No label over the legend, nor over any point marker.
    renderer = plot.figure.canvas.get_renderer()  # type: ignore[attr-defined]
    legend = plot.ax.get_legend()
    assert legend is not None
    lbox = legend.get_window_extent(renderer)
    assert not any(box.overlaps(lbox) for box in boxes.values())
    for coll in plot.ax.collections:
        for px, py in coll.get_offset_transform().transform(coll.get_offsets()):
            for k, box in boxes.items():
                assert not (box.x0 < px < box.x1 and box.y0 < py < box.y1), f"label {k[1]!r} covers a point"
    return len(boxes)


def test_fig3_of_the_titan_xp_labels_the_hull_and_more_without_overlaps() -> None:
    titan = _titan()
    plot = F.fig3_plot([titan])
    # The hull is the frontier the bound rests on: the paper's four (SENet-154 ... SqueezeNet-v1.1).
    names = {name for _, name in plot.hull}
    assert {"NASNet-A-Large", "ResNet-18", "SqueezeNet-v1.1"} <= names
    assert len(plot.points) == 26
    labelled = _check_layout(plot)
    assert labelled >= len(plot.hull) + 5
    # The figure is still a PNG, and the bound is the paper's.
    ff, bounds = F.fig3([titan])
    assert ff.png.startswith(b"\x89PNG") and ff.filename == "fig3_top1_vs_fps.png"
    bound = bounds[titan.label]
    assert bound.intercept is not None and bound.slope is not None
    assert (round(bound.intercept, 1), round(bound.slope, 4)) == (83.3, -0.0244)


def test_fig3_placement_is_deterministic() -> None:
    titan = _titan()
    a, b = F.fig3_plot([titan]), F.fig3_plot([titan])
    pos = [
        {
            k: (t.get_text(), t.get_ha(), t.get_va(), tuple(t.get_transform().transform((0.0, 0.0))))
            for k, t in p.labels.items()
        }
        for p in (a, b)
    ]
    assert pos[0] == pos[1]
    assert F.fig3([titan])[0].png == F.fig3([titan])[0].png


def test_fig3_per_mode_and_two_platforms_place_labels_alike() -> None:
    titan, jetson = _titan(), _jetson()
    plot = F.fig3_plot([titan], mode="onnxruntime")
    assert plot.file.title.startswith("Fig. 3 (onnxruntime)")
    assert plot.file.filename == "fig3_top1_vs_fps_onnxruntime.png"
    _check_layout(plot)
    both = F.fig3_plot([titan, jetson])
    assert {label for label, _ in both.hull} == {titan.label, jetson.label}
    _check_layout(both)


def test_fig3_per_mode_report_figures() -> None:
    """The report builder's per-mode Fig. 3 goes through the same placement."""
    from pytest_dnnbench.report.build import fig3_per_mode

    titan = _titan()
    eager = dataclasses.replace(titan, records=[{**r, "mode": "eager"} for r in titan.records], label="a · eager")
    onnx = dataclasses.replace(
        titan, records=[{**r, "mode": "onnxruntime"} for r in titan.records], label="a · onnxruntime"
    )
    views = [eager, onnx]
    files, bounds = fig3_per_mode(views, F.model_facts(views))
    assert [f.filename for f in files] == ["fig3_top1_vs_fps_eager.png", "fig3_top1_vs_fps_onnxruntime.png"]
    assert all(f.png.startswith(b"\x89PNG") for f in files) and set(bounds) == {"a · eager", "a · onnxruntime"}


def test_fig3_labels_order_hull_first_then_nearest_to_it() -> None:
    pts = [(10.0, 80.0, "top"), (100.0, 70.0, "end"), (50.0, 60.0, "far"), (20.0, 77.0, "near")]
    labels = F.fig3_labels([("p", "#000", pts)])
    assert [(lab.text, lab.required) for lab in labels] == [
        ("top", True),
        ("end", True),
        ("near", False),
        ("far", False),
    ]
    assert fits.upper_hull([(x, y) for x, y, _ in pts]) == [(10.0, 80.0), (100.0, 70.0)]


def test_a_crowded_plot_drops_labels_off_the_hull_but_never_overlaps() -> None:
    """Forty models in a corner: the hull is labelled, others only where they fit."""

    def rec(i: int, fps: float, top1: float) -> dict[str, object]:
        return {
            "model": f"m{i}",
            "paper_name": f"Model-{i:02d}",
            "batch_size": 1,
            "fps": fps,
            "accuracy": {"top1": top1, "status": "measured"},
            "outcome": "passed",
        }

    # A cluster, and two far points that squeeze it into a corner of the plot.
    records = [rec(i, 100.0 + i, 70.0 + (i % 7) * 0.1) for i in range(40)]
    records += [rec(40, 2000.0, 40.0), rec(41, 10.0, 30.0)]
    p = Platform(label="crowd", records=records)
    plot = F.fig3_plot([p], F.model_facts([p]))
    boxes, _ = _boxes(plot)
    assert set(plot.hull) <= set(boxes)
    assert len(boxes) < len(plot.points)
    keys = sorted(boxes)
    for i, a in enumerate(keys):
        for b in keys[i + 1 :]:
            if a in plot.hull and b in plot.hull:
                continue  # two hull labels are never dropped: with no room left they may touch
            assert not boxes[a].overlaps(boxes[b]), (a, b)
    assert any(n.startswith("labelled: ") for n in plot.file.notes)
