"""``report.md``: the report as GitHub-flavoured Markdown, figures referenced as PNG files."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from .document import Report
    from .tables import Cell, Table


@dataclass(frozen=True)
class Footnotes:
    """A table's notes as rendered: only those its cells mark, numbered from 1 in that table.

    ``Table.notes`` may hold notes that no cell of the table marks (a :class:`~.tables.Notes`
    shared by several tables, a row left out after its cells took a number): they are not shown.
    The table's ``remarks`` (notes on the whole table, such as Table 3's key to its Top-1 marks)
    are shown unnumbered after the numbered ones. Markdown and HTML render through this, so that a
    table has the same numbers in both."""

    #: A cell's note number (1-based, into ``Table.notes``) -> the number shown.
    numbers: dict[int, int]
    #: The numbered notes, in the order of their numbers.
    texts: list[str]
    #: The notes on the whole table, unnumbered.
    remarks: list[str]

    def marks(self, notes: Iterable[int]) -> list[int]:
        """The numbers shown for a cell's marks (a mark with no note text is left out)."""
        return list(dict.fromkeys(self.numbers[n] for n in notes if n in self.numbers))


def _cells(t: Table) -> Iterable[Cell]:
    """Every cell in reading order: row by row; a list cell's lines before the cell's own marks."""
    for row in t.rows:
        for cell in row:
            yield from cell.lines or ()
            yield cell


def footnotes(t: Table) -> Footnotes:
    """The notes ``t``'s cells mark, renumbered 1, 2, ... in the order they are first marked, and
    its remarks (:attr:`~.tables.Table.remarks`) that no cell marks."""
    numbers: dict[int, int] = {}
    texts: list[str] = []
    for cell in _cells(t):
        for n in cell.notes:
            if n in numbers or not 1 <= n <= len(t.notes):
                continue
            text = t.notes[n - 1]
            if text in texts:  # the same text under two numbers (two numberings merged): one note
                numbers[n] = texts.index(text) + 1
            else:
                texts.append(text)
                numbers[n] = len(texts)
    remarks = [t.notes[n - 1] for n in t.remarks if n not in numbers and 1 <= n <= len(t.notes)]
    return Footnotes(numbers, texts, [r for r in dict.fromkeys(remarks) if r not in texts])


def _esc(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _sup(fn: Footnotes, notes: Iterable[int]) -> str:
    return "".join(f"<sup>{n}</sup>" for n in fn.marks(notes))


def _cell(cell: Cell, fn: Footnotes) -> str:
    marks = _sup(fn, cell.notes)
    if cell.lines is not None:
        if not cell.lines:
            return _esc(cell.text) + marks
        return "<br>".join(f"{i}. {_esc(c.text)}{_sup(fn, c.notes)}" for i, c in enumerate(cell.lines, 1)) + marks
    return _esc(cell.text) + marks


def table(t: Table, level: int = 3) -> list[str]:
    out = [f"{'#' * level} {t.title}", ""]
    if t.absent:  # not made: it would say nothing
        return out + [_esc(t.absent), ""]
    if t.caption:
        out += [f"_{_esc(t.caption)}_", ""]
    if not t.rows:
        return out + ["(no rows)", ""]
    out.append("| " + " | ".join(_esc(h) for h in t.header) + " |")
    aligns = ["---" if c.header or c.cls == "text" or c.lines is not None else "---:" for c in t.rows[0]]
    out.append("|" + "|".join(aligns) + "|")
    fn = footnotes(t)
    for row in t.rows:
        out.append("| " + " | ".join(_cell(c, fn) for c in row) + " |")
    out.append("")
    if t.legend:
        out += ["Key: " + "; ".join(label for _, label in t.legend) + " (colours in report.html)", ""]
    out += [f"- <sup>{i}</sup> {_esc(note)}" for i, note in enumerate(fn.texts, 1)]
    out += [f"- {_esc(note)}" for note in fn.remarks]
    if fn.texts or fn.remarks:
        out.append("")
    return out


def render(report: Report) -> str:
    out = [f"# {report.title}", ""]
    out += [line for line in report.intro]
    out.append("")
    for heading, tables in report.sections:
        out += [f"## {heading}", ""]
        for t in tables:
            out += table(t)
        if heading == report.figures_after:
            out += figures(report)
    if report.figures_after is None:
        out += figures(report)
    return "\n".join(out).rstrip() + "\n"


def figures(report: Report) -> list[str]:
    out = ["## Figures", ""]
    for f in report.figures:
        out += [f"### {f.title}", "", f"![{_esc(f.title)}]({f.filename})", "", f"_{_esc(f.caption)}_", ""]
        out += [f"- {_esc(n)}" for n in f.notes]
        out.append("")
    return out
