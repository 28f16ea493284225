"""What the end of a run and the report say, each thing once and where it can be read: a failure's reason
in full once (the tables and the summary name it in a few words), digits enough to show a violation,
no Table 3 where there is nothing to rank, "batch 1" for a test that has no batch sizes, and a
side-by-side HTML report whose ids are unique, whose notes are carried by cells, and whose Top-1
figures read the same everywhere."""

from __future__ import annotations

import re
from html import escape
from html.parser import HTMLParser
from pathlib import Path

import pytest
from helpers import FAST, as_record
from report_synthetic import platform_records, rec, write_results

from pytest_dnnbench.gate import short_reason
from pytest_dnnbench.record import Check
from pytest_dnnbench.report import table3 as T3
from pytest_dnnbench.report import tables as T
from pytest_dnnbench.report.terminal import format_table, render_table3

RUN = [*FAST, "--dnn-threads=1", "-p", "no:cacheprovider"]
PAPER_MARK = "(paper)"  # the results table's mark of the paper's Top-1
#: A piece of the memory constraint's whole message (its figures in bytes), which no short form has.
FULL_MEMORY_MESSAGE = "bytes > limit 1 MB (0.9537 MiB) = 1,000,000 bytes (--dnn-max-memory=1MB)"


def _tables(out: str) -> str:
    """The paper's tables of a run's terminal output (up to the line of the next section)."""
    start = out.index("dnnbench: the paper's tables for this run")
    return out[start : out.rindex("\n", 0, out.index("dnnbench: baselines and"))]


# -- item 5: each failure reason once ------------------------------------------------------------------


@pytest.mark.parametrize("tb", ["auto", "no"])
def test_a_failure_reason_is_printed_in_full_once(
    tiny_project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tb: str
) -> None:
    pytest.importorskip("torch")
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.delenv("CI", raising=False)  # under CI pytest's short summary repeats a failure's whole text
    monkeypatch.delenv("BUILD_NUMBER", raising=False)
    result = tiny_project.runpytest(
        *RUN, "--dnn-models=tiny", "--dnn-batch-sizes=1", "--dnn-max-memory=1MB", "--dnn-baseline=none", f"--tb={tb}"
    )
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    # In full once: in the test's failure, or, where pytest shows no failures (--tb=no), in the summary.
    assert out.count(FULL_MEMORY_MESSAGE) == 1, out
    summary = out[out.index("dnnbench: baselines and deployment constraints") :]
    if tb == "auto":
        assert out.index(FULL_MEMORY_MESSAGE) < out.index("dnnbench: the paper's tables")
        assert "deployment constraint violations: 1 (in full in the failures above)" in summary
        assert re.search(r"\n  - tiny at batch 1: memory 0\.\d+ GB > 0\.001 GB\n", summary), summary
    else:
        assert FULL_MEMORY_MESSAGE in summary
    # Tables 1 and 2 name it in a few words: no "Failed: ", no second line of the failure
    tables = _tables(out)
    notes = [line for line in tables.splitlines() if line.startswith("[1]")]
    assert len(notes) == 2 and all(re.fullmatch(r"\[1\] failed: memory 0\.\d+ GB > 0\.001 GB", n) for n in notes)
    assert "dnnbench: tiny at batch 1 failed" not in tables


def test_the_summary_gives_a_check_in_full_only_where_no_failure_shows_it() -> None:
    from pytest_dnnbench.gate import summary_lines

    check = {
        "kind": "constraint",
        "metric": "fps",
        "limit": 15.0,
        "measured": 14.999,
        "passed": False,
        "message": "FPS of m at batch 1: 14.999 images/s < minimum 15 FPS (--dnn-min-fps=15)",
    }
    ours = "Failed: 14.999 FPS < 15 FPS\ndnnbench: m at batch 1 failed 1 check(s)\n  - " + check["message"]
    record = {"model": "m", "batch_size": 1, "baseline": {"status": "disabled"}, "checks": [check]}
    failed = {**record, "outcome": "failed", "reason": ours}
    brief = summary_lines([as_record(failed)], [], False)
    assert "deployment constraint violations: 1 (in full in the failures above)" in brief
    assert "  - m at batch 1: 14.999 FPS < 15 FPS" in brief and f"  - {check['message']}" not in brief
    # --tb=no: no failure is shown; a hook of the project's failed the test first; the test passed (xfail...)
    for records, shown in (
        ([failed], False),
        ([{**failed, "reason": "Failed: mynet must run at 100 FPS"}], True),
        ([{**record, "outcome": "skipped", "reason": None}], True),
    ):
        lines = summary_lines([as_record(r) for r in records], [], False, shown)
        assert f"  - {check['message']}" in lines and "deployment constraint violations: 1" in lines, lines


def test_the_short_memory_and_fps_reasons_show_the_violation() -> None:
    memory = Check.make(kind="constraint", metric="memory", limit=1e9, measured=1_003_130_688, passed=False)
    assert short_reason(memory) == "memory 1.003 GB > 1 GB"
    big = Check.make(kind="constraint", metric="memory", limit=1e9, measured=1.16e9, passed=False)
    assert short_reason(big) == "memory 1.16 GB > 1 GB"  # three digits where they are enough
    fps = Check.make(kind="constraint", metric="fps", limit=15.0, measured=14.999, passed=False)
    assert short_reason(fps) == "14.999 FPS < 15 FPS"
    top1 = Check.make(kind="baseline", metric="top1", limit=76.125, measured=76.1249, passed=False)
    assert short_reason(top1) == "Top-1 76.1249 % < 76.125 %"  # not "76.12 % < 76.12 %"


def test_a_run_without_any_top1_prints_no_table3_lines(
    tiny_project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("torch")
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.delenv("CI", raising=False)  # under CI pytest's short summary repeats a failure's whole text
    monkeypatch.delenv("BUILD_NUMBER", raising=False)
    result = tiny_project.runpytest(*RUN, "--dnn-models=tiny", "--dnn-batch-sizes=1", "--dnn-baseline=none")
    result.assert_outcomes(passed=1)
    tables = _tables(result.stdout.str())
    table3 = tables[tables.index("Table 3") :].strip().splitlines()
    assert table3 == [
        "Table 3: best models by Top-1 under memory and FPS constraints (batch 1): nothing to rank: no model "
        "measured at batch 1 here has a Top-1 (measured, published for its weights, or the paper's)"
    ], table3
    assert "tiny -[" not in tables


def test_table3_of_models_without_top1_is_one_line_in_every_renderer() -> None:
    from pytest_dnnbench.report import html, markdown

    records = [rec("a_net", 1, 10.0, 500), rec("b_net", 1, 20.0, 600)]
    t = T3.table3(records)
    assert t.absent.startswith("nothing to rank") and not t.rows
    assert render_table3(t, 300) == [f"{T3.TABLE3_TITLE}: {t.absent}"]
    assert markdown.table(t) == [f"### {T3.TABLE3_TITLE}", "", t.absent, ""]
    page = html.table(t)
    assert "<table>" not in page and "(no rows)" not in page and escape(t.absent) in page
    # one model with a Top-1 is enough: the table is made, the others listed unranked
    ranked = T3.table3([rec("a_net", 1, 10.0, 500, top1=70.0, status="measured"), rec("b_net", 1, 20.0, 600)])
    assert not ranked.absent and ranked.rows


# -- item 7: a test with no batch sizes ran at batch 1 -----------------------------------------------------


def test_an_own_test_without_dnn_batch_size_runs_at_batch_1(
    tiny_project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("torch")
    monkeypatch.setenv("COLUMNS", "200")
    tiny_project.makepyfile(
        test_mine="""
        def test_mine(dnn_model, dnn_bench):
            dnn_bench(dnn_model)
        """
    )
    result = tiny_project.runpytest(*RUN, "test_mine.py", "--dnn-models=tiny,broken", "--dnn-baseline=none")
    result.assert_outcomes(passed=1, errors=1)
    out = result.stdout.str()
    assert "batch sizes None" not in out
    result.stdout.fnmatch_lines(
        [
            "dnnbench: model 1/2 tiny, batch 1 (2 of 2 tests left), time left: unknown",
            "dnnbench: model 2/2 broken, batch 1 (1 of 2 tests left), *",
        ]
    )
    tables = _tables(out)
    assert "not measured" not in tables, tables
    table1 = tables[tables.index("Table 1") : tables.index("Table 2")].splitlines()
    assert table1[1].split() == ["model", "1"]  # one column: batch 1
    # the model that could not be built has its cell at batch 1, with its reason
    assert re.search(r"\nbroken +-\[1\]\n\[1\] failed: RuntimeError: this model cannot be built\n", "\n".join(table1))


def test_a_missing_entry_without_a_batch_size_is_batch_1() -> None:
    entry = {"model": "b_net", "batch_size": None, "outcome": "failed", "reason": "RuntimeError: boom"}
    t = T.table1([rec("a_net", 1, 10.0, 500)], [entry])
    assert t.header == ["model", "1"]
    assert t.notes == ["failed: RuntimeError: boom"]


# -- item 8: the side-by-side HTML report ------------------------------------------------------------------


class _Ids(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.ids += [value or "" for name, value in attrs if name == "id"]


def test_a_side_by_side_html_report_has_unique_ids(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from pytest_dnnbench.__main__ import main

    a = write_results(tmp_path / "a.json", platform_records(1.0, "Alpha CPU"), "Alpha CPU")
    b = write_results(tmp_path / "b.json", platform_records(3.0, "Beta CPU"), "Beta CPU")
    out = tmp_path / "cmp"
    assert main(["report", str(a), str(b), "--out", str(out)]) == 0
    parser = _Ids()
    parser.feed((out / "report.html").read_text(encoding="utf-8"))
    ids = parser.ids
    assert len(ids) == len(set(ids)), sorted({i for i in ids if ids.count(i) > 1})
    # each platform's tables and environment have their own
    for key in ("table1", "table2", "table3", "environment"):
        assert {key, f"{key}-2"} <= set(ids), ids


def test_table3_note_numbers_are_carried_by_cells_in_the_terminal() -> None:
    records = platform_records()  # mid_net: a reference Top-1 (a key note); nameless: no Top-1 (a cell note)
    lines = render_table3(T3.table3(records), 300)
    numbered = [line for line in lines if re.match(r"\[\d+\] ", line)]
    body = "\n".join(line for line in lines[1:] if line not in numbered)
    assert numbered, lines
    for line in numbered:
        mark = line.split(" ", 1)[0]
        assert mark in body, (mark, lines)  # a number no cell carries is not given
    # the key to the Top-1 marks is on the whole table: unnumbered
    assert "Top-1 'r': published reference accuracy of these weights (not measured here)" in lines


def test_a_top1_from_the_paper_reads_the_same_in_the_results_table_and_table3() -> None:
    record = rec("mobilenet_v1", 1, 10.0, 500, paper_name="MobileNet-v1")  # no measured, no reference Top-1
    table = format_table([record])
    row = table[2]
    assert f"69.52 {PAPER_MARK}" in row, table
    assert any(line.startswith(f"Top-1(%): {PAPER_MARK} = the paper's Top-1") for line in table), table
    t3 = "\n".join(render_table3(T3.table3([record]), 300))
    assert "MobileNet-v1 69.52p" in t3, t3
