"""Deployment modes in the reports: the terminal table, Tables 1-3, Fig. 3 and the report command,
on synthetic records of several modes (eager, compile, onnxruntime...)."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest
from report_synthetic import (
    NO_RAPL,
    energy,
    mode_records,
    output_check,
    platform_records,
    rec,
    write_results,
)

from pytest_dnnbench.record import Record
from pytest_dnnbench.report import table3 as T3
from pytest_dnnbench.report import tables as T
from pytest_dnnbench.report.csvfile import to_csv
from pytest_dnnbench.report.terminal import format_paper_tables, format_table

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CELL = re.compile(r"\S+(?: \S+)*")  # cells are separated by two spaces or more


def table_rows(lines: list[str]) -> list[dict[str, str]]:
    """The rows of :func:`format_table`'s output as dicts of header -> cell (cells are never empty but
    the note, the last one; they are separated by two spaces or more)."""
    header = CELL.findall(lines[0])
    body = lines[2 : lines.index("")] if "" in lines else lines[2:]
    rows = []
    for line in body:
        cells = CELL.findall(line)
        assert len(cells) in (len(header), len(header) - 1), line
        rows.append(dict(zip(header, cells + [""] * (len(header) - len(cells)), strict=True)))
    return rows


# -- modes ----------------------------------------------------------------------------------------


def test_modes_are_ordered_eager_first_then_the_known_ones_then_the_others() -> None:
    records = [rec("m", 1, 1.0, 1, mode=m) for m in ("zeta", "openvino", "alpha", "onnxruntime", "eager", "compile")]
    records.append(rec("m", 1, 1.0, 1, mode="cudagraph"))
    assert T.modes_of(records) == ["eager", "compile", "cudagraph", "onnxruntime", "openvino", "alpha", "zeta"]
    assert T.shows_modes([rec("m", 1, 1.0, 1)]) is False
    assert T.shows_modes([rec("m", 1, 1.0, 1, mode="onnxruntime")]) is True
    no_mode = rec("m", 1, 1.0, 1)
    del no_mode["mode"]
    assert T.modes_of([no_mode]) == ["eager"]  # older files and baselines: eager


def test_split_modes_eager_first_labels_and_missing() -> None:
    p = T.Platform(
        "cpu Test CPU (fp32)",
        mode_records({"onnxruntime": 0.5, "eager": 1.0}),
        {"device": "cpu"},
        [
            {"model": "gone", "batch_size": 1, "outcome": "skipped", "reason": "no library"},
            {"model": "oom", "batch_size": 2, "outcome": "failed", "reason": "out of memory", "mode": "onnxruntime"},
        ],
    )
    eager, onnx = T.split_modes(p)
    assert (eager.label, onnx.label) == ("cpu Test CPU (fp32) · eager", "cpu Test CPU (fp32) · onnxruntime")
    assert (eager.mode, onnx.mode, eager.split_from) == ("eager", "onnxruntime", "cpu Test CPU (fp32)")
    assert {r["mode"] for r in eager.records} == {"eager"} and {r["mode"] for r in onnx.records} == {"onnxruntime"}
    assert len(eager.records) == len(onnx.records) == len(platform_records())
    # An entry without a mode (a model that could not be built) is missing in every mode.
    assert [m["model"] for m in eager.missing] == ["gone"]
    assert [m["model"] for m in onnx.missing] == ["gone", "oom"]
    # Eager only: the very platform, as today; another single mode: one platform, named with it.
    only = T.Platform("x", platform_records())
    assert T.split_modes(only) == [only] and T.split_modes(only)[0] is only
    (single,) = T.split_modes(T.Platform("x", mode_records({"openvino": 0.5})))
    assert single.label == "x · openvino" and single.mode == "openvino"


# -- the terminal table -----------------------------------------------------------------------------


def test_terminal_table_puts_modes_side_by_side_with_the_ratio_to_eager() -> None:
    records = [
        rec("resnet18", 1, 10.0, 700, mode="onnxruntime", prepare_s=3.25, output=output_check(2e-7)),
        rec("resnet18", 1, 20.0, 700),
        rec("resnet18", 2, 16.0, 720, mode="compile", prepare_s=41.0, output=output_check(3e-2, top1_agreement=0.5)),
        rec("resnet18", 2, 8.0, 720),
        rec("mobilenet_v2", 1, 6.0, 600, mode="onnxruntime", prepare_s=1.0, output=output_check(1e-6)),
    ]
    lines = format_table(records)
    assert [c.group() for c in CELL.finditer(lines[0])][:6] == [
        "model",
        "batch",
        "mode",
        "ms/image",
        "vs eager",
        "prepare(s)",
    ]
    rows = table_rows(lines)
    # Model (first seen first), batch, then mode: eager before compile before onnxruntime.
    assert [(r["model"], r["batch"], r["mode"]) for r in rows] == [
        ("resnet18", "1", "eager"),
        ("resnet18", "1", "onnxruntime"),
        ("resnet18", "2", "eager"),
        ("resnet18", "2", "compile"),
        ("mobilenet_v2", "1", "onnxruntime"),
    ]
    # The ratio to the eager row of the same (model, batch), from the records' figures.
    assert [r["vs eager"] for r in rows] == ["-", "0.50x", "-", "2.00x", "-"]  # no eager mobilenet_v2: "-"
    assert [r["prepare(s)"] for r in rows] == ["-", "3.2", "-", "41.0", "1.0"]
    # The output check: the relative difference to eager, over its limit and Top-1 agreement when so.
    assert [r["note"] for r in rows] == ["", "out 2e-07", "", "out 3e-02>1e-03 top1 50%", "out 1e-06"]
    legend = lines[lines.index("") + 1 :]
    assert legend[0].startswith("out: max |output - eager's| / max |eager's| on the same batch")
    assert "0.001" in legend[0]
    assert any(line.startswith("vs eager:") for line in legend)
    assert any(line.startswith("prepare(s):") for line in legend)
    assert not any(line.startswith("energy") for line in legend)  # these records carry no energy
    "\n".join(lines).encode("ascii")


def test_terminal_table_of_a_single_non_eager_mode_shows_the_mode() -> None:
    lines = format_table([rec("a", 1, 5.0, 100, mode="openvino", prepare_s=2.0)])
    rows = table_rows(lines)
    assert rows[0]["mode"] == "openvino" and rows[0]["vs eager"] == "-"


def test_terminal_table_of_eager_records_is_as_before() -> None:
    """Eager records only: no mode column; an energy entry without figures adds its reason and nothing else."""
    base = platform_records()
    before = format_table(base)
    assert "mode" not in CELL.findall(before[0]) and "vs eager" not in before[0]
    with_energy = [{**r, "energy": energy(), "prepare_s": None, "runtime": None} for r in base]
    after = format_table(with_energy)
    assert after == before + [f"energy: not measured - {NO_RAPL}"]


def test_energy_column_only_when_some_record_has_a_figure() -> None:
    records = mode_records({"eager": 1.0, "onnxruntime": 0.5}, with_energy=True)
    records[-1]["energy"] = energy(reason="RAPL counter wrapped twice")
    lines = format_table(records)
    assert "energy" in [c.group() for c in CELL.finditer(lines[0])]
    rows = table_rows(lines)
    first = rows[0]  # fast_net, batch 1, eager: 4 ms per image, 0.05 J per ms
    assert (first["model"], first["mode"], first["energy"]) == ("fast_net", "eager", "0.200 J 30.0 W")
    assert rows[-1]["energy"] == "-"
    legend = lines[lines.index("") + 1 :]
    assert "energy: joules per image and mean power over the timed calls (rapl, package-0)" in legend
    assert "energy -: not measured - RAPL counter wrapped twice" in legend
    # All without a figure: no column, the first distinct reason said once under the table.
    lines = format_table(mode_records({"eager": 1.0, "onnxruntime": 0.5}))
    assert "energy" not in lines[0]
    assert [ln for ln in lines if ln.startswith("energy")] == [f"energy: not measured - {NO_RAPL}"]


# -- Tables 1-3 ------------------------------------------------------------------------------------------


def test_table1_and_table2_per_mode_in_the_terminal() -> None:
    records = mode_records({"onnxruntime": 0.5, "eager": 1.0, "compile": 0.8})
    text = "\n".join(format_paper_tables(records, width=100))
    titles = [ln for ln in text.splitlines() if ln.startswith(("Table 1", "Table 2", "Table 3"))]
    assert titles == [
        "Table 1 (eager): inference time per image (ms) by batch size",
        "Table 1 (compile): inference time per image (ms) by batch size",
        "Table 1 (onnxruntime): inference time per image (ms) by batch size",
        "Table 2 (eager): total memory (MiB) by batch size",
        "Table 2 (compile): total memory (MiB) by batch size",
        "Table 2 (onnxruntime): total memory (MiB) by batch size",
        "Table 3: best (model, mode) pairs by Top-1 under memory and FPS constraints (batch 1)",
    ]
    onnx = T.table1(T.of_mode(records, "onnxruntime"), mode="onnxruntime")
    assert {r[0].text: r[1].value for r in onnx.rows}["mid_net"] == pytest.approx(10.0)
    assert onnx.key == "table1_onnxruntime"
    # Eager only: the titles of today.
    eager_only = format_paper_tables(platform_records())
    assert "Table 1: inference time per image (ms) by batch size" in eager_only
    assert not any("(eager)" in ln for ln in eager_only)


def test_table3_ranks_model_mode_pairs() -> None:
    records = mode_records({"eager": 1.0, "onnxruntime": 0.5})
    eager = T3.select_table3(T.of_mode(records, "eager"), fallback=lambda m: None)
    pairs = T3.select_table3(records, fallback=lambda m: None)
    assert not eager.pairs and pairs.pairs
    # big_net: 16.7 FPS in eager, 33.3 FPS with onnxruntime, 1310 MiB: only the onnxruntime pair makes 30 FPS.
    assert "big_net" not in [c.model for c in eager.cells[(1.4, 30.0)]]
    best = pairs.cells[(1.4, 30.0)]
    assert (best[0].name, best[0].mode) == ("big_net (onnxruntime)", "onnxruntime")
    assert "big_net (eager)" not in [c.name for c in best]
    # Both pairs fit at 15 FPS: the same Top-1, the faster first.
    assert [c.name for c in pairs.cells[(1.4, 15.0)]][:2] == ["big_net (onnxruntime)", "big_net (eager)"]
    t = T3.table3_table(pairs)
    assert t.title == T3.TABLE3_PAIRS_TITLE and "(model, mode) pairs" in t.caption
    assert t.rows[2][2].lines is not None and t.rows[2][2].lines[0].text == "big_net (onnxruntime)  80.00"


def test_table3_pair_uses_the_top1_measured_in_its_mode() -> None:
    records = [
        rec("m", 1, 10.0, 500, top1=76.0, status="measured"),
        rec("m", 1, 5.0, 500, top1=75.5, status="measured", mode="onnxruntime"),
        rec("n", 1, 5.0, 500, top1=70.0, status="measured"),
        rec("n", 1, 2.0, 500, mode="onnxruntime"),  # no Top-1 of its own: the model's
    ]
    sel = T3.select_table3(records, fallback=lambda m: None)
    tops = {c.name: c.top1.value for c in sel.cells[(1.0, 15.0)]}
    assert tops == {"m (eager)": 76.0, "m (onnxruntime)": 75.5, "n (onnxruntime)": 70.0, "n (eager)": 70.0}


def test_table3_of_eager_records_is_as_before() -> None:
    before = T3.table3(platform_records())
    assert before.title == T3.TABLE3_TITLE and before.key == "table3"
    assert all("(eager)" not in c.text for row in before.rows for cell in row[1:] for c in cell.lines or [])


def test_csv_flattens_the_new_keys() -> None:
    records = mode_records({"eager": 1.0, "onnxruntime": 0.5}, with_energy=True)
    rows = list(csv.DictReader(io.StringIO(to_csv(records))))
    onnx = next(r for r in rows if r["mode"] == "onnxruntime")
    assert onnx["prepare_s"] == "2.5" and onnx["runtime.name"] == "onnxruntime"
    assert float(onnx["energy.joules_per_image"]) == pytest.approx(0.1) and onnx["energy.source"] == "rapl"
    assert '"metric": "output"' in onnx["checks"]


# -- the report ------------------------------------------------------------------------------------


def test_report_of_a_run_with_two_modes(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from pytest_dnnbench.report.build import build, write_report

    records = mode_records({"onnxruntime": 0.5, "eager": 1.0})
    p = T.Platform("cpu Test CPU (fp32)", records, {"device": "cpu"}, [], "this run")
    rep = build([p])
    assert rep.title == "pytest-dnnbench report: cpu Test CPU (fp32), 2 modes side by side"
    assert [v.label for v in rep.views] == ["cpu Test CPU (fp32) · eager", "cpu Test CPU (fp32) · onnxruntime"]
    titles = [t.title for _, tables in rep.sections for t in tables]
    assert titles.index("Table 1 (eager): inference time per image (ms) by batch size") < titles.index(
        "Table 1 (onnxruntime): inference time per image (ms) by batch size"
    )
    assert "Table 3: best (model, mode) pairs: cpu Test CPU (fp32)" in titles
    assert not rep.collapsed - {"Environments"}  # the modes of one run: their tables shown open
    assert any(f"Energy: not measured — {NO_RAPL}." == line for line in rep.intro)
    f3 = [f for f in rep.figures if f.key.startswith("fig3")]
    assert [(f.title, f.filename) for f in f3] == [
        ("Fig. 3 (eager): Top-1 accuracy vs images per second (batch 1)", "fig3_top1_vs_fps_eager.png"),
        ("Fig. 3 (onnxruntime): Top-1 accuracy vs images per second (batch 1)", "fig3_top1_vs_fps_onnxruntime.png"),
    ]
    assert set(rep.fits["upper_bound"]) == {v.label for v in rep.views}
    # The side-by-side time: onnxruntime at half eager's time.
    side = next(t for t in rep.sections[0][1] if t.key == "compare_per_image_ms")
    assert side.header[-1] == "cpu Test CPU (fp32) · onnxruntime ÷ cpu Test CPU (fp32) · eager"
    assert [r[-1].value for r in side.rows] == pytest.approx([0.5] * len(side.rows))
    # The run's results file is written whole, both modes in it.
    write_report([p], tmp_path)
    from pytest_dnnbench.results import load_results

    assert len(load_results(tmp_path / "results.json")["records"]) == len(records)
    for f in f3:
        assert (tmp_path / f.filename).read_bytes().startswith(PNG_MAGIC)
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert html.count('src="data:image/png;base64,') == 5


def test_report_of_one_non_eager_mode_is_titled_with_it() -> None:
    pytest.importorskip("matplotlib")
    from pytest_dnnbench.report.build import build

    rep = build([T.Platform("cpu X (fp32)", mode_records({"openvino": 0.5}, with_energy=True))])
    assert rep.title == "pytest-dnnbench report: cpu X (fp32) · openvino"
    titles = [t.title for t in rep.sections[0][1]]
    assert titles[0] == "Table 1 (openvino): inference time per image (ms) by batch size"
    assert titles[2] == "Energy (openvino): joules per image by batch size"
    assert titles[3].startswith("Table 3 (openvino): best models")
    assert [f.filename for f in rep.figures if f.key.startswith("fig3")] == ["fig3_top1_vs_fps_openvino.png"]


def test_report_command_splits_a_two_mode_file_eager_first(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from pytest_dnnbench.__main__ import main
    from pytest_dnnbench.report.inputs import by_mode, load_platform

    src = write_results(tmp_path / "two.json", mode_records({"onnxruntime": 0.5, "eager": 1.0}))
    platforms = by_mode(load_platform(src))
    assert [p.label for p in platforms] == ["cpu Test CPU (fp32) · eager", "cpu Test CPU (fp32) · onnxruntime"]
    out = tmp_path / "rep"
    assert main(["report", str(src), "--out", str(out)]) == 0
    md = (out / "report.md").read_text(encoding="utf-8")
    assert md.startswith("# pytest-dnnbench report: cpu Test CPU (fp32), 2 modes side by side")
    assert "| cpu Test CPU (fp32) · onnxruntime ÷ cpu Test CPU (fp32) · eager |" in md
    assert "| mid_net | 1 | 20.0 | 10.0 | 0.50× |" in md
    assert "Table 3: best (model, mode) pairs: cpu Test CPU (fp32)" in md
    assert "1. big_net (onnxruntime)  80.00" in md
    for name in ("fig3_top1_vs_fps_eager.png", "fig3_top1_vs_fps_onnxruntime.png"):
        assert (out / name).read_bytes().startswith(PNG_MAGIC) and f"]({name})" in md
    from pytest_dnnbench.results import load_results

    assert {r["mode"] for r in load_results(out / "results-1.json")["records"]} == {"eager"}
    assert {r["mode"] for r in load_results(out / "results-2.json")["records"]} == {"onnxruntime"}
    rows = list(csv.DictReader(io.StringIO((out / "results.csv").read_text(encoding="utf-8"))))
    assert [r["platform"] for r in rows][:: len(platform_records())] == [p.label for p in platforms]
    # --label names the file; the mode follows it.
    assert main(["report", str(src), "--out", str(tmp_path / "lab"), "--label", "laptop"]) == 0
    assert "laptop · onnxruntime ÷ laptop · eager" in (tmp_path / "lab" / "report.md").read_text(encoding="utf-8")


def test_report_command_on_an_eager_file_is_as_before(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from pytest_dnnbench.__main__ import main

    src = write_results(tmp_path / "a.json", platform_records())
    assert main(["report", str(src), "--out", str(tmp_path / "rep")]) == 0
    md = (tmp_path / "rep" / "report.md").read_text(encoding="utf-8")
    assert md.startswith("# pytest-dnnbench report: cpu Test CPU (fp32)\n")
    assert " · " not in md and "(eager)" not in md and "Energy" not in md
    assert "### Table 1: inference time per image (ms) by batch size" in md
    assert "](fig3_top1_vs_fps.png)" in md
    assert sorted(p.name for p in (tmp_path / "rep").glob("fig3*")) == ["fig3_top1_vs_fps.png"]


def test_a_baseline_file_of_several_modes_is_shown_mode_by_mode(tmp_path: Path) -> None:
    from pytest_dnnbench.baseline_save import save_run
    from pytest_dnnbench.report.inputs import by_mode, load_platform

    records = [
        rec("resnet18", 1, ms, 100.0, mode=mode, device_name="Intel Xeon")
        for mode, ms in (("eager", 20.0), ("onnxruntime", 10.0))
    ]
    path = tmp_path / "both.json"
    outcome = save_run(
        [Record.from_json(r) for r in records],
        {},
        choice=str(path),
        root=tmp_path,
        max_rounds=10,
        force=False,
        regressions=0,
        interrupted=False,
    )
    assert path.exists(), outcome
    platforms = by_mode(load_platform(path))
    assert [p.mode for p in platforms] == ["eager", "onnxruntime"]
    assert [p.records[0]["per_image_ms"] for p in platforms] == pytest.approx([20.0, 10.0])
