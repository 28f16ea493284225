"""The paper's Figures 1-4 as PNG files (matplotlib, Agg canvas; imported only when a report is made).

No pyplot: each figure is a :class:`matplotlib.figure.Figure` on its own Agg canvas, so nothing
touches matplotlib's global backend or state, and nothing warns.

- Fig. 1: Top-1 vs GFLOPs (one image), ball area proportional to the parameters.
- Fig. 2: (a) accuracy density (Top-1 per million parameters), (b) Top-1 vs density.
- Fig. 3: Top-1 vs images per second at batch 1 (log x), with the linear upper bound
  ``Top-1 = a + b * FPS`` of each platform (:func:`~pytest_dnnbench.report.fits.upper_bound`);
  one per deployment mode when the report holds modes other than eager.
- Fig. 4: total memory vs parameter-file size at batch 1 (MiB, the paper's MB), with the
  least-squares line and, where the points fall into two groups, the two-line fit.

Where a figure has nothing to plot, or too few points for a fit, the PNG says so in words.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

from . import fits
from .tables import (
    MIB,
    Platform,
    Top1,
    as_number,
    mode_title,
    paper_top1,
    param_file_mib,
    safe_name,
    top1_by_model,
    total_memory,
)

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.text import Text
    from numpy.typing import NDArray

    from ..jsontypes import JsonMapping

DPI = 90
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
STATUS_LABEL = {
    "measured": "Top-1 measured",
    "reference": "Top-1 reference (not measured)",
    "paper": "Top-1 from the paper (not measured)",
}


@dataclass
class FigureFile:
    key: str
    filename: str
    title: str
    caption: str
    notes: list[str] = field(default_factory=list)
    png: bytes = b""


def require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:  # pragma: no cover - exercised where matplotlib is absent
        raise ImportError("the report's figures need matplotlib: pip install matplotlib") from exc


def _canvas(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _figure(width: float = 7.0, height: float = 4.6) -> tuple[Figure, Axes]:
    """A figure with one Axes."""
    fig = _canvas(width, height)
    return fig, fig.subplots(1, 1)


def _figure_pair(width: float, height: float) -> tuple[Figure, Axes, Axes]:
    """A figure with two Axes side by side."""
    fig = _canvas(width, height)
    # matplotlib's stubs type a 1 x n grid as Any; at run time it is a numpy array of n Axes.
    ax_a, ax_b = fig.subplots(1, 2)
    return fig, ax_a, ax_b


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()


def _say(ax: Axes, text: str) -> None:
    ax.text(
        0.5,
        0.5,
        text,
        transform=ax.transAxes,
        ha="center",
        va="center",
        fontsize=10,
        wrap=True,
        color="#444444",
        bbox={"boxstyle": "round", "fc": "#f4f4f4", "ec": "#cccccc"},
    )


# -- per-model facts, merged over platforms (complexity and accuracy do not depend on the device) --


@dataclass
class ModelFacts:
    model: str
    name: str
    top1: Top1
    gflops: float | None
    params_m: float | None
    param_file_mb: float | None


def model_facts(
    platforms: Sequence[Platform], fallback: Callable[[str], float | None] = paper_top1
) -> list[ModelFacts]:
    all_records = [r for p in platforms for r in p.records]
    accs = top1_by_model(all_records, fallback)
    out: dict[str, ModelFacts] = {}
    for r in all_records:
        m = str(r.get("model"))
        f = out.setdefault(m, ModelFacts(m, str(r.get("paper_name") or m), accs[m], None, None, None))
        if r.get("paper_name"):
            f.name = str(r["paper_name"])
        flops = as_number(r.get("flops"))
        if f.gflops is None and flops is not None and flops > 0:
            f.gflops = flops / 1e9
        params = as_number(r.get("params"))
        if f.params_m is None and params is not None and params > 0:
            f.params_m = params / 1e6
        pf = param_file_mib(r)
        if f.param_file_mb is None and pf is not None and pf > 0:
            f.param_file_mb = pf
    return list(out.values())


class _Style(TypedDict, total=False):
    """Keyword arguments of ``Axes.scatter`` that mark a Top-1's status."""

    alpha: float
    hatch: str


def _status_style(status: str | None) -> _Style:
    if status == "measured":
        return {"alpha": 0.75}
    return {"alpha": 0.35, "hatch": "///"}


def _log_x(ax: Axes, values: Sequence[float]) -> None:
    """A log x axis labelled with plain numbers (minor ticks labelled only over a short range)."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    ax.set_xscale("log")
    plain = FuncFormatter(lambda v, _pos: f"{v:g}")
    ax.xaxis.set_major_formatter(plain)
    if values and max(values) / max(min(values), 1e-12) < 30:
        ax.xaxis.set_minor_formatter(plain)
        ax.tick_params(axis="x", which="minor", labelsize=7)
    elif max(values) / max(min(values), 1e-12) < 1000:
        ax.xaxis.set_minor_formatter(FuncFormatter(_two_five))
        ax.tick_params(axis="x", which="minor", labelsize=7)
    else:
        ax.xaxis.set_minor_formatter(NullFormatter())


def _two_five(v: float, _pos: int | None) -> str:
    import math

    if v <= 0:
        return ""
    lead = round(v / 10 ** math.floor(math.log10(v)))
    return f"{v:g}" if lead in (2, 5) else ""


def _annotate(ax: Axes, x: float, y: float, text: str) -> None:
    ax.annotate(text, (x, y), xytext=(3, 3), textcoords="offset points", fontsize=6.5, color="#333333")


# -- Fig. 1 -------------------------------------------------------------------------------------


def fig1(platforms: Sequence[Platform], facts: list[ModelFacts] | None = None) -> FigureFile:
    facts = facts if facts is not None else model_facts(platforms)
    # (model, GFLOPs, Top-1) of the models that have both
    pts = [(f, f.gflops, f.top1.value) for f in facts if f.top1.value is not None and f.gflops is not None]
    ff = FigureFile(
        "fig1",
        "fig1_top1_vs_gflops.png",
        "Fig. 1: Top-1 accuracy vs GFLOPs",
        "Top-1 (%) against GFLOPs of one forward pass of one image (a multiply-add = 2 FLOPs); "
        "ball area proportional to the parameters.",
    )
    fig, ax = _figure()
    ax.set_xlabel("GFLOPs (one image)")
    ax.set_ylabel("Top-1 accuracy (%)")
    ax.set_title(ff.title)
    lacking = [f.name for f in facts if f.top1.value is None or f.gflops is None]
    if not pts:
        _say(ax, "no model has both a Top-1 accuracy and a FLOP count")
        ff.notes.append("nothing to plot: no model has both a Top-1 accuracy and a FLOP count")
    else:
        biggest = max((f.params_m or 1.0) for f, _, _ in pts)
        for status in ("measured", "reference", "paper"):
            sel = [(f, x, y) for f, x, y in pts if f.top1.status == status]
            if not sel:
                continue
            sizes = [30 + 1200 * (f.params_m or 0.5) / biggest for f, _, _ in sel]
            ax.scatter(
                [x for _, x, _ in sel],
                [y for _, _, y in sel],
                s=sizes,
                label=STATUS_LABEL[status],
                color=COLORS[0] if status == "measured" else COLORS[4],
                edgecolors="#333333",
                linewidths=0.5,
                **_status_style(status),
            )
            for f, x, y in sel:
                _annotate(ax, x, y, f.name)
        ax.legend(fontsize=7, loc="lower right", markerscale=0.4)
        ax.margins(0.12)
    if lacking:
        ff.notes.append("not plotted (no Top-1 or no FLOP count): " + ", ".join(lacking))
    ff.png = _png(fig)
    return ff


# -- Fig. 2 -------------------------------------------------------------------------------------


def fig2(platforms: Sequence[Platform], facts: list[ModelFacts] | None = None) -> FigureFile:
    facts = facts if facts is not None else model_facts(platforms)
    # (model, Top-1, millions of parameters) of the models that have both
    pts = [(f, f.top1.value, f.params_m) for f in facts if f.top1.value is not None and f.params_m]
    ff = FigureFile(
        "fig2",
        "fig2_accuracy_density.png",
        "Fig. 2: accuracy density",
        "(a) accuracy density = Top-1 (%) per million parameters; (b) Top-1 against accuracy density.",
    )
    fig, ax_a, ax_b = _figure_pair(9.0, 4.6)
    ax_a.set_title("(a) Top-1 per million parameters", fontsize=10)
    ax_b.set_title("(b) Top-1 vs accuracy density", fontsize=10)
    ax_b.set_xlabel("accuracy density (Top-1 % per M parameters)")
    ax_b.set_ylabel("Top-1 accuracy (%)")
    if not pts:
        _say(ax_a, "no model has both a Top-1 accuracy and a parameter count")
        _say(ax_b, "nothing to plot")
        ff.notes.append("nothing to plot: no model has both a Top-1 accuracy and a parameter count")
    else:
        pts = sorted(pts, key=lambda p: p[1] / p[2])
        dens = [top1 / params for _, top1, params in pts]
        colors = [COLORS[0] if f.top1.status == "measured" else COLORS[4] for f, _, _ in pts]
        ax_a.barh(range(len(pts)), dens, color=colors, alpha=0.8)
        ax_a.set_yticks(range(len(pts)), [f.name for f, _, _ in pts], fontsize=7 if len(pts) < 25 else 5)
        ax_a.set_xlabel("Top-1 % per M parameters")
        for status in ("measured", "reference", "paper"):
            sel = [(d, f, top1) for d, (f, top1, _) in zip(dens, pts, strict=True) if f.top1.status == status]
            if sel:
                ax_b.scatter(
                    [d for d, _, _ in sel],
                    [top1 for _, _, top1 in sel],
                    label=STATUS_LABEL[status],
                    color=COLORS[0] if status == "measured" else COLORS[4],
                    s=25,
                )
                for d, f, top1 in sel:
                    _annotate(ax_b, d, top1, f.name)
        ax_b.legend(fontsize=7, loc="lower right")
        ax_b.margins(0.12)
    lacking = [f.name for f in facts if f.top1.value is None or not f.params_m]
    if lacking:
        ff.notes.append("not plotted (no Top-1 or no parameter count): " + ", ".join(lacking))
    ff.png = _png(fig)
    return ff


# -- Fig. 3 -------------------------------------------------------------------------------------


def _batch1(p: Platform) -> dict[str, JsonMapping]:
    return {
        str(r.get("model")): r
        for r in p.records
        if int(r.get("batch_size") or 0) == 1 and r.get("outcome") != "skipped"
    }


#: Fig. 3's marker area (points²) and label size (points).
FIG3_MARKER = 22.0
LABEL_FONTSIZE = 6.5
#: Label offsets from their point (points), nearest first; a leader line joins a label placed at
#: :data:`LEADER_FROM` or more to its point.
LABEL_DISTANCES = (3.0, 8.0, 14.0, 22.0)
LEADER_FROM = 8.0
#: Directions tried at each distance, in order: right of the point first, then left, above, below.
LABEL_DIRECTIONS = ((1, 1), (1, 0), (1, -1), (-1, 1), (-1, 0), (-1, -1), (0, 1), (0, -1))
#: Pixels kept clear around a label box (labels never touch).
LABEL_GAP = 1.5


@dataclass
class PointLabel:
    """A model's label in a scatter plot: its point (data coordinates), its text and its rank.

    ``required`` labels (Fig. 3: the models on a platform's upper hull) are always placed; the
    others are placed, in order, only where they overlap nothing already there."""

    x: float
    y: float
    text: str
    required: bool = False
    color: str = "#333333"
    key: tuple[str, str] = ("", "")


#: A box in display pixels: (x0, y0, x1, y1).
_Box = tuple[float, float, float, float]


def _overlap(a: _Box, b: _Box) -> float:
    """The area two boxes share (0 when they only touch or are apart)."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return w * h if w > 0 and h > 0 else 0.0


def _inside(box: _Box, frame: _Box) -> bool:
    return box[0] >= frame[0] and box[1] >= frame[1] and box[2] <= frame[2] and box[3] <= frame[3]


def _line_samples(ax: Axes) -> NDArray[np.float64]:
    """Points every 2 pixels or less along the Axes' lines (display coordinates)."""
    import numpy as np

    chunks = [np.zeros((0, 2))]
    for line in ax.get_lines():
        xy = np.asarray(line.get_transform().transform(line.get_xydata()), dtype=float)
        xy = xy[np.isfinite(xy).all(axis=1)]
        for a, b in zip(xy[:-1], xy[1:], strict=True):
            steps = max(1, int(np.hypot(*(b - a)) / 2.0))
            chunks.append(a + (b - a) * (np.arange(steps + 1)[:, None] / steps))
        chunks.append(xy)
    return np.concatenate(chunks)


def _crosses(box: _Box, samples: NDArray[np.float64]) -> bool:
    x, y = samples[:, 0], samples[:, 1]
    return bool(((x >= box[0]) & (x <= box[2]) & (y >= box[1]) & (y <= box[3])).any())


def place_labels(
    fig: Figure, ax: Axes, labels: Sequence[PointLabel], *, marker_area: float = FIG3_MARKER
) -> dict[tuple[str, str], Text]:
    """Label points without overlaps: deterministic greedy placement in display coordinates.

    The figure is drawn once first, so that the axes' position, limits and legend are final
    (the legend is then pinned where "best" put it, so that the labels cannot move it). For each
    label, in the order given, candidate positions around its point (:data:`LABEL_DIRECTIONS` at
    each of :data:`LABEL_DISTANCES`) are tried against the text's rendered extent: the first that
    lies inside the axes and overlaps no label already placed, no point marker and not the legend
    wins, the first that crosses no line (the bounds) preferred. A label that has no such place is
    dropped, unless it is ``required``: it then takes the place that overlaps least. Labels far
    from their point get a thin leader line. Returns the placed labels' Text artists by ``key``;
    labels are left out of the layout, so that they do not move the axes.
    """
    from matplotlib.transforms import ScaledTranslation

    fig.canvas.draw()  # the layout, the axis limits and the legend's place are final from here on
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]  # Agg canvas
    px_per_pt = fig.dpi / 72.0
    frame_bb = ax.get_window_extent(renderer)
    frame: _Box = (frame_bb.x0 + 1, frame_bb.y0 + 1, frame_bb.x1 - 1, frame_bb.y1 - 1)
    obstacles: list[_Box] = []
    legend = ax.get_legend()
    if legend is not None:
        lb = legend.get_window_extent(renderer)
        # Pin it: "best" takes texts and lines into account, so the labels would move it otherwise.
        fx, fy = ax.transAxes.inverted().transform((lb.x0, lb.y0))
        legend.set_loc((float(fx), float(fy)))
        obstacles.append((lb.x0, lb.y0, lb.x1, lb.y1))
    radius = (marker_area**0.5) / 2 * px_per_pt + 1.0
    points = [ax.transData.transform((lab.x, lab.y)) for lab in labels]
    obstacles += [(float(px) - radius, float(py) - radius, float(px) + radius, float(py) + radius) for px, py in points]
    lines = _line_samples(ax)
    placed: list[_Box] = []
    out: dict[tuple[str, str], Text] = {}
    for lab, (px, py) in zip(labels, points, strict=True):
        text = ax.text(
            lab.x, lab.y, lab.text, fontsize=LABEL_FONTSIZE, color=lab.color, ha="left", va="bottom", zorder=4
        )
        text.set_in_layout(False)
        size = text.get_window_extent(renderer)
        w, h = size.width, size.height
        # (overlap with labels, markers and the legend; crosses a line; order tried), box, distance, direction
        best: tuple[tuple[float, bool, int], _Box, float, int, int] | None = None
        order = 0
        for dist in LABEL_DISTANCES:
            d = dist * px_per_pt
            for ux, uy in LABEL_DIRECTIONS:
                order += 1
                diag = 0.7071 if ux and uy else 1.0
                ax_, ay_ = float(px) + ux * d * diag, float(py) + uy * d * diag
                x0 = ax_ if ux > 0 else ax_ - w if ux < 0 else ax_ - w / 2
                y0 = ay_ if uy > 0 else ay_ - h if uy < 0 else ay_ - h / 2
                box: _Box = (x0, y0, x0 + w, y0 + h)
                if not _inside(box, frame):
                    continue
                padded: _Box = (x0 - LABEL_GAP, y0 - LABEL_GAP, x0 + w + LABEL_GAP, y0 + h + LABEL_GAP)
                hard = sum(_overlap(padded, b) for b in placed) + sum(_overlap(box, b) for b in obstacles)
                cost = (hard, _crosses(box, lines), order)
                if best is None or cost < best[0]:
                    best = (cost, box, dist, ux, uy)
        if best is None or (best[0][0] > 0 and not lab.required):
            text.remove()
            continue
        _, box, dist, ux, uy = best
        text.set_horizontalalignment("left" if ux > 0 else "right" if ux < 0 else "center")
        text.set_verticalalignment("bottom" if uy > 0 else "top" if uy < 0 else "center")
        diag = 0.7071 if ux and uy else 1.0
        dx, dy = ux * dist * diag, uy * dist * diag  # points
        text.set_transform(ax.transData + ScaledTranslation(dx / 72.0, dy / 72.0, fig.dpi_scale_trans))
        if dist >= LEADER_FROM:  # a thin line from the label's nearest edge to the point
            ex = min(max(float(px), box[0]), box[2]) - float(px)
            ey = min(max(float(py), box[1]), box[3]) - float(py)
            leader = ax.annotate(
                "",
                (lab.x, lab.y),
                xytext=(ex / px_per_pt, ey / px_per_pt),
                textcoords="offset points",
                arrowprops={
                    "arrowstyle": "-",
                    "color": "#999999",
                    "lw": 0.5,
                    "shrinkA": 0,
                    "shrinkB": radius / px_per_pt,
                },
                zorder=2.5,
            )
            leader.set_in_layout(False)
        placed.append(box)
        out[lab.key] = text
    return out


def _hull_gap(hull: Sequence[tuple[float, float]], x: float, y: float) -> float:
    """How far (Top-1 points) a point lies below the upper hull at its x."""
    for (x0, y0), (x1, y1) in zip(hull, hull[1:], strict=False):
        if x0 <= x <= x1:
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0) - y if x1 > x0 else max(y0, y1) - y
    return max(yy for _, yy in hull) - y if hull else 0.0


def fig3_labels(platform_points: Sequence[tuple[str, str, Sequence[tuple[float, float, str]]]]) -> list[PointLabel]:
    """Fig. 3's labels in placement order, from (platform label, colour, [(FPS, Top-1, name)]).

    First every model on a platform's upper hull (the accuracy/speed frontier the bound rests on;
    required), left to right, platform by platform; then the others, nearest to their platform's
    hull first (vertical distance in Top-1 points), ties by name."""
    hull_labels: list[PointLabel] = []
    others: list[tuple[float, str, int, PointLabel]] = []
    for k, (label, color, pts) in enumerate(platform_points):
        hull = fits.upper_hull([(x, y) for x, y, _ in pts])
        on_hull = set(hull)
        for x, y, name in sorted(pts):
            lab = PointLabel(x, y, name, required=(x, y) in on_hull, color=color, key=(label, name))
            if lab.required:
                hull_labels.append(lab)
            else:
                others.append((_hull_gap(hull, x, y), name, k, lab))
    return hull_labels + [lab for *_, lab in sorted(others, key=lambda o: o[:3])]


@dataclass
class Fig3Plot:
    """Fig. 3 before it becomes a PNG: the figure, its Axes, the placed labels and the bounds."""

    file: FigureFile
    bounds: dict[str, fits.Fit]
    figure: Figure
    ax: Axes
    #: (platform label, model name) -> its label, for the labels placed.
    labels: dict[tuple[str, str], Text] = field(default_factory=dict)
    #: The (platform label, model name) pairs on a platform's upper hull.
    hull: list[tuple[str, str]] = field(default_factory=list)
    #: Every plotted (platform label, model name) pair.
    points: list[tuple[str, str]] = field(default_factory=list)


def fig3(
    platforms: Sequence[Platform], facts: list[ModelFacts] | None = None, *, mode: str | None = None
) -> tuple[FigureFile, dict[str, fits.Fit]]:
    """Fig. 3 of these platforms; with ``mode`` (the one mode of their records), titled with it and
    written to ``fig3_top1_vs_fps_<mode>.png``."""
    plot = fig3_plot(platforms, facts, mode=mode)
    plot.file.png = _png(plot.figure)
    return plot.file, plot.bounds


def fig3_plot(
    platforms: Sequence[Platform], facts: list[ModelFacts] | None = None, *, mode: str | None = None
) -> Fig3Plot:
    """:func:`fig3`'s figure, drawn, with its labels placed (:func:`place_labels`), not yet a PNG."""
    facts = facts if facts is not None else model_facts(platforms)
    acc = {f.model: f for f in facts}
    ff = FigureFile(
        f"fig3_{safe_name(mode)}" if mode else "fig3",
        f"fig3_top1_vs_fps_{safe_name(mode)}.png" if mode else "fig3_top1_vs_fps.png",
        mode_title("Fig. 3: Top-1 accuracy vs images per second (batch 1)", mode),
        "Top-1 (%) against images per second at batch 1 (log scale), with the linear upper bound "
        "Top-1 = a + b·FPS: the line on or above every point with the least total vertical distance "
        "to them (it looks curved on the log axis). The paper: a = 83.3, b = -0.0244 (Titan Xp); "
        "a = 83.0, b = -0.2025 (Jetson TX1). Labelled: every model on the upper convex hull, then "
        "the others nearest to it whose label fits without overlapping another.",
    )
    fig, ax = _figure()
    ax.set_xscale("log")
    all_fps: list[float] = []
    ax.set_xlabel("images per second, batch 1 (log scale)")
    ax.set_ylabel("Top-1 accuracy (%)")
    ax.set_title(ff.title, fontsize=10)
    bounds: dict[str, fits.Fit] = {}
    to_label: list[tuple[str, str, list[tuple[float, float, str]]]] = []
    for k, p in enumerate(platforms):
        color = COLORS[k % len(COLORS)]
        # Each platform's own Top-1 first (the paper's figures for the paper's platform), else any.
        own = top1_by_model(p.records)
        top1 = {
            m: (own[m] if own.get(m) is not None and own[m].value is not None else acc[m].top1) for m in own if m in acc
        }
        pts: list[tuple[float, float, str]] = []  # (FPS, Top-1, name)
        for m, r in _batch1(p).items():
            if not (as_number(r.get("fps")) and m in top1):
                continue
            value = top1[m].value
            if value is not None:
                pts.append((float(r["fps"]), value, acc[m].name))
        label = p.label if len(platforms) > 1 else "models"
        if not pts:
            ff.notes.append(f"{p.label}: no batch-1 model with both FPS and a Top-1 accuracy")
            continue
        all_fps += [x for x, _, _ in pts]
        ax.scatter([x for x, _, _ in pts], [y for _, y, _ in pts], color=color, s=FIG3_MARKER, label=label, zorder=3)
        to_label.append((p.label, "#333333" if len(platforms) == 1 else color, pts))
        bound = fits.upper_bound([x for x, _, _ in pts], [y for _, y, _ in pts])
        bounds[p.label] = bound
        if bound.ok:
            lo, hi = min(x for x, _, _ in pts), max(x for x, _, _ in pts)
            xs = [lo * (hi / lo) ** (i / 199) for i in range(200)] if hi > lo else [lo]
            ax.plot(
                xs,
                [bound(x) for x in xs],
                color=color,
                lw=1.2,
                ls="--",
                label=f"bound: a = {bound.intercept:.4g}, b = {bound.slope:.4g}",
            )
            ff.notes.append(
                f"{p.label}: upper bound Top-1 = {bound.intercept:.4g} + ({bound.slope:.4g})·FPS "
                f"(n = {bound.n})" + (f"; {bound.note}" if bound.note else "")
            )
        else:
            ff.notes.append(f"{p.label}: {bound.note}; no bound drawn")
    plot = Fig3Plot(ff, bounds, fig, ax)
    if not to_label:
        _say(ax, "no batch-1 model with both FPS and a Top-1 accuracy")
        return plot
    _log_x(ax, all_fps)
    ax.legend(fontsize=7, loc="best")
    ax.margins(0.1)
    labels = fig3_labels(to_label)
    plot.points = [lab.key for lab in labels]
    plot.hull = [lab.key for lab in labels if lab.required]
    plot.labels = place_labels(fig, ax, labels)
    shown = sum(1 for key in plot.points if key in plot.labels)
    if shown < len(plot.points):
        ff.notes.append(
            f"labelled: {shown} of {len(plot.points)} points (every model on the upper hull, then those whose "
            "label fits without overlapping)"
        )
    return plot


# -- Fig. 4 -------------------------------------------------------------------------------------


class MemoryFits(TypedDict):
    """Fig. 4's lines for one platform."""

    least_squares: fits.Fit
    two_lines: fits.TwoLineFit


def fig4(
    platforms: Sequence[Platform], facts: list[ModelFacts] | None = None
) -> tuple[FigureFile, dict[str, MemoryFits]]:
    facts = facts if facts is not None else model_facts(platforms)
    size = {f.model: f for f in facts}
    ff = FigureFile(
        "fig4",
        "fig4_memory_vs_model_size.png",
        "Fig. 4: total memory vs parameter-file size (batch 1)",
        "total memory at batch 1 (MiB) against the size of the serialized parameters (MiB), with the "
        "least-squares line and, where the points fall into two groups, a two-line fit. The paper "
        "(Titan Xp): slopes 1.10 and 1.15, intercepts 910 and 639 MB.",
    )
    fig, ax = _figure()
    ax.set_xlabel("parameter-file size (MiB)")
    ax.set_ylabel("total memory, batch 1 (MiB)")
    ax.set_title(ff.title, fontsize=10)
    out: dict[str, MemoryFits] = {}
    plotted = 0
    for k, p in enumerate(platforms):
        color = COLORS[k % len(COLORS)]
        pts: list[tuple[float, float, str]] = []  # (parameter file MiB, total memory MiB, name)
        for m, r in _batch1(p).items():
            if m not in size:
                continue
            file_mb, total = size[m].param_file_mb, total_memory(r)
            if file_mb and total:
                pts.append((file_mb, total / MIB, size[m].name))
        if not pts:
            ff.notes.append(f"{p.label}: no batch-1 model with both a memory figure and a parameter-file size")
            continue
        plotted += len(pts)
        xs, ys = [x for x, _, _ in pts], [y for _, y, _ in pts]
        ax.scatter(xs, ys, color=color, s=22, zorder=3, label=p.label if len(platforms) > 1 else "models")
        for x, y, name in pts:
            _annotate(ax, x, y, name)
        one = fits.least_squares(xs, ys, min_points=3)
        two = fits.two_lines(xs, ys)
        out[p.label] = {"least_squares": one, "two_lines": two}
        lo, hi = min(xs), max(xs)
        if one.intercept is not None and one.slope is not None:  # one.ok
            ax.plot(
                [lo, hi],
                [one(lo), one(hi)],
                color=color,
                lw=1.0,
                label=f"least squares: {one.slope:.3g}·x + {one.intercept:.4g}",
            )
            sign = "-" if one.slope < 0 else "+"
            ff.notes.append(
                f"{p.label}: least squares memory = {one.intercept:.4g} MiB {sign} {abs(one.slope):.3g} × "
                f"file size (n = {one.n})"
            )
        else:
            ff.notes.append(f"{p.label}: {one.note}; no line drawn")
        if two.ok and two.distinct:
            for g, (line, idx) in enumerate(zip(two.lines, two.groups, strict=True)):
                gx = [xs[i] for i in idx]
                ax.plot(
                    [min(gx), max(gx)],
                    [line(min(gx)), line(max(gx))],
                    color=color,
                    lw=1.2,
                    ls="--" if g == 0 else ":",
                    label=f"line {g + 1}: {line.slope:.3g}·x + {line.intercept:.4g} ({len(idx)} models)",
                )
            ff.notes.append(
                f"{p.label}: two lines: "
                + "; ".join(
                    f"slope {f.slope:.3g}, intercept {f.intercept:.4g} MiB ({len(g)} models)"
                    for f, g in zip(two.lines, two.groups, strict=True)
                )
            )
        else:
            ff.notes.append(f"{p.label}: no two-line fit ({two.note})")
    if plotted == 0:
        _say(ax, "no batch-1 model with both a memory figure and a parameter-file size")
    else:
        ax.legend(fontsize=7, loc="best")
        ax.margins(0.1)
    ff.png = _png(fig)
    return ff, out


def all_figures(platforms: Sequence[Platform]) -> list[FigureFile]:
    require_matplotlib()
    facts = model_facts(platforms)
    f3, _ = fig3(platforms, facts)
    f4, _ = fig4(platforms, facts)
    return [fig1(platforms, facts), fig2(platforms, facts), f3, f4]


def write_figures(figures: Sequence[FigureFile], out: Path) -> list[Path]:
    import os

    paths = []
    for f in figures:
        path = Path(out) / f.filename
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(f.png)
        os.replace(tmp, path)
        paths.append(path)
    return paths
