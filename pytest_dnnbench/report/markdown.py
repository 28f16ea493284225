"""``report.md``: the report as GitHub-flavoured Markdown, figures referenced as PNG files."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from .build import Report
    from .tables import Cell, Table


def _esc(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _cell(cell: Cell) -> str:
    marks = "".join(f"<sup>{n}</sup>" for n in cell.notes)
    if cell.lines is not None:
        if not cell.lines:
            return _esc(cell.text) + marks
        return (
            "<br>".join(
                f"{i}. {_esc(c.text)}{''.join(f'<sup>{n}</sup>' for n in c.notes)}" for i, c in enumerate(cell.lines, 1)
            )
            + marks
        )
    return _esc(cell.text) + marks


def table(t: Table, level: int = 3) -> list[str]:
    out = [f"{'#' * level} {t.title}", ""]
    if t.caption:
        out += [f"_{_esc(t.caption)}_", ""]
    if not t.rows:
        return out + ["(no rows)", ""]
    out.append("| " + " | ".join(_esc(h) for h in t.header) + " |")
    aligns = ["---" if c.header or c.cls == "text" or c.lines is not None else "---:" for c in t.rows[0]]
    out.append("|" + "|".join(aligns) + "|")
    for row in t.rows:
        out.append("| " + " | ".join(_cell(c) for c in row) + " |")
    out.append("")
    if t.legend:
        out += ["Key: " + "; ".join(label for _, label in t.legend) + " (colours in report.html)", ""]
    for i, note in enumerate(t.notes, 1):
        out.append(f"- <sup>{i}</sup> {_esc(note)}")
    if t.notes:
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
