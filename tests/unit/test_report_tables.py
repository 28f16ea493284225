"""Tables 1-3, side-by-side tables, CSV and the terminal rendering, on synthetic records."""

from __future__ import annotations

import csv
import io

import pytest
from report_synthetic import platform_records, rec

from pytest_dnnbench.report import table3 as T3
from pytest_dnnbench.report import tables as T
from pytest_dnnbench.report.csvfile import flatten_record, to_csv
from pytest_dnnbench.report.terminal import format_paper_tables, render_grid, render_table3


def names(choices):
    return [c.model for c in choices]


def test_table3_selection_known_answer() -> None:
    sel = T3.select_table3(platform_records(), fallback=lambda m: None)
    cells = {k: names(v) for k, v in sel.cells.items()}
    assert cells[(0.7, 15.0)] == cells[(0.7, 30.0)] == cells[(0.7, 60.0)] == ["fast_net"]
    assert cells[(1.0, 15.0)] == cells[(1.0, 30.0)] == ["mid_net", "fast_net"]
    assert cells[(1.0, 60.0)] == ["fast_net"]
    assert cells[(1.4, 15.0)] == ["big_net", "mid_net", "fast_net"]  # big_net: 16.7 FPS, 1310 MiB
    assert cells[(1.4, 30.0)] == ["mid_net", "fast_net"]
    # nameless fits (610 MiB, 100 FPS) but has no Top-1 at all: listed apart, not ranked.
    assert names(sel.unranked[(0.7, 60.0)]) == ["nameless"]
    statuses = {c.model: c.top1.status for c in sel.cells[(1.4, 15.0)]}
    assert statuses == {"big_net": "measured", "mid_net": "reference", "fast_net": "measured"}


def test_table3_keeps_the_best_five_and_uses_batch_1_only() -> None:
    records = [rec(f"m{i}", 1, 5.0, 300, top1=60.0 + i, status="measured") for i in range(8)]
    records.append(rec("batch2_only", 2, 1.0, 300, top1=99.0, status="measured"))
    sel = T3.select_table3(records, fallback=lambda m: None)
    assert names(sel.cells[(0.7, 60.0)]) == ["m7", "m6", "m5", "m4", "m3"]


def test_table3_limits_are_inclusive_and_in_gib() -> None:
    at_limit = rec("edge", 1, 1000 / 15, 0.7 * 1024, top1=50.0, status="measured")  # exactly 0.7 GiB, 15 FPS
    at_limit["fps"], at_limit["memory_bytes"]["total"] = 15.0, int(0.7 * 2**30)
    over = rec("over", 1, 10.0, 0.7 * 1024 + 1, top1=90.0, status="measured")
    sel = T3.select_table3([at_limit, over], fallback=lambda m: None)
    assert names(sel.cells[(0.7, 15.0)]) == ["edge"]
    assert names(sel.cells[(1.0, 60.0)]) == ["over"]


def test_best_top1_prefers_measured_then_reference_then_paper() -> None:
    measured = rec("resnet18", 1, 1.0, 1, top1=70.1, status="measured")
    reference = rec("resnet18", 2, 1.0, 1, top1=69.76, status="reference")
    assert T.best_top1("resnet18", [reference, measured]).status == "measured"
    assert T.best_top1("resnet18", [reference]).status == "reference"
    # One record with both: the measured figure, never the published one.
    both = {**measured, "accuracy": {**measured["accuracy"], "reference": reference["accuracy"]["reference"]}}
    assert T.top1_of(both) == (70.1, "measured") and T.top1_of(reference) == (69.76, "reference")
    assert T.top1_of(rec("x", 1, 1.0, 1)) == (None, None)
    # Records of version 1 (a flat accuracy with its status) read the same.
    assert T.top1_of({"accuracy": {"top1": 70.1, "status": "measured"}}) == (70.1, "measured")
    assert T.top1_of({"accuracy": {"top1": 69.76, "status": "reference"}}) == (69.76, "reference")
    assert T.top1_of({"accuracy": {"top1": None, "status": "unavailable"}}) == (None, None)
    assert T.top1_of({}) == (None, None)
    old = {**reference, "accuracy": {"top1": 69.76, "status": "reference", "source": "x"}}
    assert T.best_top1("resnet18", [old]).status == "reference"
    assert T.param_file_mib({"param_file_mb": 4.5}) == T.param_file_mib({"param_file_mib": 4.5}) == 4.5
    paper = T.best_top1("resnet18", [rec("resnet18", 1, 1.0, 1)])
    assert (paper.value, paper.status, paper.text()) == (69.64, "paper", "69.64p")
    assert T.best_top1("not_a_model", [rec("not_a_model", 1, 1.0, 1)]).value is None


def test_table3_without_batch_1() -> None:
    t = T3.table3([rec("a", 2, 1.0, 100, top1=70.0, status="measured")])
    assert all(c.text == "none fits" for row in t.rows for c in row[1:])
    assert any("no batch-1 measurement" in n for n in t.notes)


def test_table1_missing_cells_carry_reasons_never_zero() -> None:
    records = platform_records()
    records.append(rec("oom_net", 1, 30.0, 900))
    records.append(rec("oom_net", 2, None, None, outcome="failed", reason="RuntimeError: out of memory"))
    missing = [
        {
            "model": "unbuildable",
            "paper_name": "Unbuildable",
            "batch_size": 1,
            "outcome": "skipped",
            "reason": "pretrainedmodels is not installed",
        }
    ]
    t = T.table1(records, missing)
    assert t.header == ["model", "1", "2"]
    rows = {r[0].text: r for r in t.rows}
    fast2 = rows["fast_net"][2]
    assert fast2.missing and fast2.text == T.MISSING and "not measured" in t.notes[fast2.notes[0] - 1]
    oom2 = rows["oom_net"][2]
    assert oom2.missing and "out of memory" in t.notes[oom2.notes[0] - 1]
    unb = rows["Unbuildable"][1]
    assert unb.missing and "pretrainedmodels is not installed" in t.notes[unb.notes[0] - 1]
    assert all(c.text not in ("0", "0.00") for r in t.rows for c in r[1:])
    # FPS bands: 4 ms = 250 FPS is in ">125" (the key's bands are strict), 60 ms = 16.7 FPS in ">15".
    assert rows["fast_net"][1].cls == "fps2"
    assert rows["big_net"][1].cls == "fps5"


@pytest.mark.parametrize(
    "fps, band", [(1001, 0), (1000, 1), (250.1, 1), (62.5, 4), (30.5, 4), (15.1, 5), (5.01, 6), (5, 7), (0.1, 7)]
)
def test_fps_bands_follow_the_papers_key(fps, band) -> None:
    assert T.fps_band(fps) == band


def test_table2_memory_bands() -> None:
    t = T.table2([rec("a", 1, 1.0, 900), rec("a", 2, 1.0, 2.5 * 1024), rec("a", 4, 1.0, 8 * 1024)])
    assert [c.cls for c in t.rows[0][1:]] == ["mem0", "mem2", "mem7"]
    assert [c.text for c in t.rows[0][1:]] == ["900", "2560", "8192"]


def test_compare_table_ratios_and_missing() -> None:
    a = T.Platform("A", platform_records())
    b = T.Platform("B", platform_records(scale=2.0, device_name="Other"))
    b.records = [r for r in b.records if r["model"] != "big_net"]
    t = T.compare_table([a, b], "per_image_ms")
    assert t.header == ["model", "batch", "A", "B", "B ÷ A"]
    rows = {(r[0].text, r[1].text): r for r in t.rows}
    assert rows[("fast_net", "1")][4].value == pytest.approx(2.0)
    assert rows[("big_net", "1")][3].missing and rows[("big_net", "1")][4].missing
    assert ("fast_net", "2") not in rows  # missing on every platform: no row
    # A pair that only a later platform has is left out (the first platform sets the rows).
    b.records.append(rec("only_b", 1, 1.0, 100))
    t = T.compare_table([a, b], "per_image_ms")
    assert "only_b" not in {r[0].text for r in t.rows} and "1 (model, batch) pairs" in t.caption
    mem = T.compare_table([a, b], "memory")
    assert {(r[0].text, r[1].text): r for r in mem.rows}[("mid_net", "1")][4].value == pytest.approx(1.0)


def test_csv_one_row_per_record_flattened() -> None:
    records = platform_records()
    text = to_csv(records)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == len(records)
    assert rows[0]["model"] == "fast_net" and float(rows[0]["memory_bytes.total"]) == 510 * 2**20
    assert "latency_ms.samples" not in rows[0] and rows[0]["latency_ms.ci_median.1"] == "0.0"
    # The measured and the published Top-1 in columns of their own, in every row (empty where null).
    assert rows[0]["accuracy.measured.top1"] == "70.0" and rows[0]["accuracy.reference.top1"] == ""
    mid = next(r for r in rows if r["model"] == "mid_net")
    assert mid["accuracy.measured.top1"] == "" and mid["accuracy.reference.top1"] == "75.0"
    assert "param_file_mib" in rows[0] and "accuracy.status" not in rows[0]
    assert flatten_record({"a": {"b": [1, 2]}, "c": [{"x": 1}]}) == {"a.b.0": 1, "a.b.1": 2, "c": '[{"x": 1}]'}


@pytest.mark.parametrize("width", [40, 60, 80, 200])
def test_terminal_tables_fit_the_width(width) -> None:
    records = [
        rec(f"model_with_a_rather_long_name_{i}", bs, 3.0, 500) for i in range(3) for bs in (1, 2, 4, 8, 16, 32, 64)
    ]
    lines = render_grid(T.table1(records), width)
    body = [ln for ln in lines[1:] if not ln.startswith(("[", "("))]
    assert all(len(ln) <= width for ln in body), [ln for ln in body if len(ln) > width]
    if width < 80:
        assert any("columns not shown" in ln for ln in lines)
    else:
        assert lines[1].split()[-1] == "64"


def test_terminal_table3_and_all_tables() -> None:
    lines = format_paper_tables(platform_records(), width=70)
    text = "\n".join(lines)
    assert "Table 1" in text and "Table 2" in text and "Table 3" in text
    assert "memory <= 1.4 GiB, >= 15 FPS: big_net 80.00, mid_net 75.00r, fast_net 70.00" in text.replace("\n    ", " ")
    assert all(len(ln) <= 70 for ln in "\n".join(render_table3(T3.table3(platform_records()), 70)).splitlines())
    text.encode("ascii")  # the terminal gets plain ASCII


def test_table3_notes_models_without_batch_1_figures() -> None:
    records = [
        rec("a", 1, 5.0, 300, top1=70.0, status="measured"),
        rec("b", 1, 5.0, None, top1=80.0, status="measured"),
    ]
    t = T3.table3(records, fallback=lambda m: None)
    assert [c.text for c in t.rows[0][1].lines] == ["a  70.00"]
    assert "not considered (no batch-1 FPS or memory figure): b" in t.notes
