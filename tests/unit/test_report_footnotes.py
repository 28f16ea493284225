"""Each rendered table lists only the notes its own cells mark, numbered from 1 in that table."""

from __future__ import annotations

import re

from report_synthetic import rec

from pytest_dnnbench.report import html, markdown
from pytest_dnnbench.report import table3 as T3
from pytest_dnnbench.report import tables as T
from pytest_dnnbench.report.build import build
from pytest_dnnbench.report.markdown import footnotes


def _complete(label: str, scale: float) -> T.Platform:
    """Every model at every batch size, measured Top-1, small and fast: no cell needs a note."""
    records = [
        rec(m, bs, ms * scale, 300.0 + bs, top1=top1, status="measured")
        for m, ms, top1 in (("a_net", 2.0, 70.0), ("b_net", 4.0, 75.0))
        for bs in (1, 2)
    ]
    return T.Platform(label, records, {"device": "cpu"})


def _shared_notes_table() -> T.Table:
    notes = T.Notes()
    for text in ("first note", "second note", "third note"):
        notes.add(text)
    rows = [[T.Cell("a_net", header=True), T.Cell("1.00", value=1.0, notes=[3])]]
    return T.Table("t", "A table", ["model", "1"], rows, notes.texts)


def test_a_side_by_side_report_without_marks_prints_no_footnotes() -> None:
    rep = build([_complete("one", 1.0), _complete("two", 2.0)], figures=False)
    md, page = markdown.render(rep), html.render(rep)
    assert "<sup>" not in md and "<sup>" not in page
    assert '<ol class="notes">' not in page
    # Only Table 3's key to its Top-1 marks, once per platform, unnumbered.
    assert re.findall(r"^- .*", md, re.M) == ["- Top-1 without a mark: measured in this run"] * 2


def test_a_mark_of_a_shared_numbering_is_renumbered_from_1() -> None:
    t = _shared_notes_table()
    md = "\n".join(markdown.table(t))
    assert "| a_net | 1.00<sup>1</sup> |" in md
    assert "- <sup>1</sup> third note" in md
    assert "first note" not in md and "second note" not in md and "<sup>3</sup>" not in md
    page = html.table(t)
    assert "<td>1.00<sup>1</sup></td>" in page
    assert '<ol class="notes"><li>third note</li></ol>' in page
    assert "first note" not in page and "<sup>3</sup>" not in page


def test_numbers_follow_the_order_of_first_mark_and_repeat_for_the_same_note() -> None:
    notes = ["n1", "n2", "n3", "n4"]
    rows = [
        [T.Cell("x", header=True), T.Cell("–", notes=[4]), T.Cell("–", notes=[2])],
        [T.Cell("y", header=True), T.Cell("–", notes=[4]), T.Cell("1", value=1.0, notes=[2, 4])],
        [
            T.Cell("z", header=True),
            T.Cell("2 models", lines=[T.Cell("m  –", notes=[1])]),
            T.Cell("–", notes=[9]),  # no such note: no mark
        ],
    ]
    t = T.Table("t", "T", ["model", "1", "2"], rows, notes)
    fn = footnotes(t)
    assert fn.texts == ["n4", "n2", "n1"] and fn.remarks == []
    assert fn.marks([2, 4]) == [2, 1] and fn.marks([9]) == []
    md = "\n".join(markdown.table(t))
    assert "| y | –<sup>1</sup> | 1<sup>2</sup><sup>1</sup> |" in md
    assert "1. m  –<sup>3</sup>" in md
    assert [line for line in md.splitlines() if line.startswith("- ")] == [
        "- <sup>1</sup> n4",
        "- <sup>2</sup> n2",
        "- <sup>3</sup> n1",
    ]


def test_table3_remarks_are_listed_unnumbered_after_the_marked_notes() -> None:
    records = [
        rec("a_net", 1, 2.0, 300.0, top1=70.0, status="reference"),
        rec("b_net", 1, 2.0, 300.0),  # no Top-1: listed, not ranked (a marked note)
        rec("c_net", 2, 2.0, 300.0, top1=60.0, status="measured"),  # no batch 1: not considered (a remark)
    ]
    t = T3.table3_table(T3.select_table3(records))
    md = "\n".join(markdown.table(t))
    listed = [line for line in md.splitlines() if line.startswith("- ")]
    assert listed[0] == "- <sup>1</sup> no Top-1 known for this model (no measurement, no reference): not ranked"
    assert listed[1:] == [
        "- not considered (no batch-1 FPS or memory figure): c_net",
        "- Top-1 'r': published reference accuracy of these weights (not measured here)",
    ]
    page = html.table(t)
    assert '<ul class="notes remarks"><li>not considered (no batch-1 FPS or memory figure): c_net</li>' in page


def test_the_papers_side_by_side_memory_table_numbers_only_its_marks() -> None:
    """A (model, batch) row left out of a side-by-side table takes its note with it."""
    from pytest_dnnbench.paperdata import paper_baseline
    from pytest_dnnbench.report.inputs import records_from_baseline

    views = [records_from_baseline(paper_baseline(p)) for p in ("titan_xp", "jetson_tx1")]
    t = T.compare_table(views, "memory")
    md = "\n".join(markdown.table(t))
    body = "\n".join(line for line in md.splitlines() if line.startswith("|"))
    listed = [int(n) for n in re.findall(r"^- <sup>(\d+)</sup>", md, re.M)]
    assert listed == list(range(1, len(listed) + 1))
    assert {int(n) for n in re.findall(r"<sup>(\d+)</sup>", body)} == set(listed)
