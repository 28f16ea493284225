"""``report.html``: one self-contained page (inline CSS, figures as ``data:`` URIs, no script),
readable offline and on a phone (viewport meta, tables scroll sideways in their own box)."""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable
from typing import TYPE_CHECKING

from .markdown import Footnotes, footnotes

if TYPE_CHECKING:  # pragma: no cover
    from .document import Report
    from .tables import Cell, Table

FPS_COLORS = ("#1a9850", "#66bd63", "#a6d96a", "#d9ef8b", "#fee08b", "#fdae61", "#f46d43", "#d73027")
MEM_COLORS = ("#eff3ff", "#c6dbef", "#9ecae1", "#6baed6", "#4292c6", "#2171b5", "#08519c", "#08306b")


def _css() -> str:
    bands = []
    for i, c in enumerate(FPS_COLORS):
        fg = "#fff" if i in (0, 7) else "#111"
        bands.append(f".fps{i}{{background:{c};color:{fg}}}")
    for i, c in enumerate(MEM_COLORS):
        fg = "#fff" if i >= 4 else "#111"
        bands.append(f".mem{i}{{background:{c};color:{fg}}}")
    return """
*{box-sizing:border-box}
body{font-family:-apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
 margin:0 auto;padding:0.8rem;max-width:72rem;line-height:1.4;color:#111;background:#fff}
h1{font-size:1.45rem}h2{font-size:1.2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
h3{font-size:1.02rem;margin-bottom:.3rem}
.scroll{overflow-x:auto;-webkit-overflow-scrolling:touch;margin:.3rem 0 .6rem;border:1px solid #e3e3e3}
table{border-collapse:collapse;font-size:.82rem;font-variant-numeric:tabular-nums}
th,td{padding:.22rem .45rem;border:1px solid #e3e3e3;text-align:right;white-space:nowrap;vertical-align:top}
th{background:#f6f6f6;position:sticky;top:0}
td.name,th.name{text-align:left;background:#fafafa}
tr>td.name:first-child{position:sticky;left:0;z-index:1}
td.text{text-align:left;white-space:normal;word-break:break-word}
td.missing{color:#888;background:#f3f3f3}
td.list{text-align:left}
td.list ol{margin:0;padding-left:1.3rem}
li.ref{font-style:italic;color:#444}li.missing{color:#888}
td.ratio{color:#333}
.caption{color:#555;font-size:.85rem;margin:.2rem 0}
.notes{font-size:.8rem;color:#444;margin:.2rem 0 1rem;padding-left:1.2rem}
.legend{font-size:.78rem;margin:.2rem 0}
.legend span{display:inline-block;padding:.05rem .35rem;margin:.1rem;border-radius:2px}
figure{margin:1rem 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.85rem;color:#444}
details{margin:.5rem 0}summary{cursor:pointer;font-weight:600}
@media (max-width:600px){body{padding:.4rem}table{font-size:.74rem}h1{font-size:1.2rem}}
""" + "\n".join(bands)


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _sup(notes: Iterable[int]) -> str:
    return "".join(f"<sup>{n}</sup>" for n in notes)


def _td(cell: Cell, fn: Footnotes) -> str:
    marks = _sup(fn.marks(cell.notes))
    if cell.header:
        return f'<td class="name">{_e(cell.text)}{marks}</td>'
    if cell.lines is not None:
        if not cell.lines:
            return f'<td class="missing list">{_e(cell.text)}{marks}</td>'
        items = "".join(f'<li class="{_e(c.cls or "")}">{_e(c.text)}{_sup(fn.marks(c.notes))}</li>' for c in cell.lines)
        return f'<td class="list"><ol>{items}</ol>{marks}</td>'
    cls = f' class="{_e(cell.cls)}"' if cell.cls else ""
    return f"<td{cls}>{_e(cell.text)}{marks}</td>"


class Anchors:
    """The ids of one page, each once: a key seen before gets the number of its occurrence (``table1``,
    ``table1-2``, ...: in a side-by-side report, each platform's Table 1, Table 3 and environment, in the
    order of the platforms)."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def take(self, key: str) -> str:
        anchor, n = key, 1
        while anchor in self.used:
            n += 1
            anchor = f"{key}-{n}"
        self.used.add(anchor)
        return anchor


def table(t: Table, level: int = 3, anchors: Anchors | None = None) -> str:
    fn = footnotes(t)
    anchor = t.key if anchors is None else anchors.take(t.key)
    parts = [f'<h{level} id="{_e(anchor)}">{_e(t.title)}</h{level}>']
    if t.absent:  # not made: it would say nothing
        return "\n".join([*parts, f'<p class="caption">{_e(t.absent)}</p>'])
    if t.caption:
        parts.append(f'<p class="caption">{_e(t.caption)}</p>')
    if t.legend:
        parts.append(
            '<p class="legend">'
            + "".join(f'<span class="{_e(c)}">{_e(label)}</span>' for c, label in t.legend)
            + "</p>"
        )
    if t.rows:
        heads = "".join(
            f'<th class="name">{_e(h)}</th>' if i < _name_cols(t) else f"<th>{_e(h)}</th>"
            for i, h in enumerate(t.header)
        )
        body = "".join("<tr>" + "".join(_td(c, fn) for c in row) + "</tr>" for row in t.rows)
        parts.append(f'<div class="scroll"><table><thead><tr>{heads}</tr></thead><tbody>{body}</tbody></table></div>')
    else:
        parts.append("<p>(no rows)</p>")
    if fn.texts:
        parts.append('<ol class="notes">' + "".join(f"<li>{_e(n)}</li>" for n in fn.texts) + "</ol>")
    if fn.remarks:
        parts.append('<ul class="notes remarks">' + "".join(f"<li>{_e(n)}</li>" for n in fn.remarks) + "</ul>")
    return "\n".join(parts)


def _name_cols(t: Table) -> int:
    return sum(1 for c in t.rows[0] if c.header) if t.rows else 1


def figures(report: Report, anchors: Anchors | None = None) -> str:
    anchors = anchors or Anchors()
    parts = [f'<h2 id="{anchors.take("figures")}">Figures</h2>']
    for f in report.figures:
        data = base64.b64encode(f.png).decode("ascii")
        notes = "".join(f"<li>{_e(n)}</li>" for n in f.notes)
        parts.append(
            f'<figure id="{_e(anchors.take(f.key))}"><h3>{_e(f.title)}</h3>'
            f'<img src="data:image/png;base64,{data}" alt="{_e(f.title)}" data-file="{_e(f.filename)}">'
            f"<figcaption>{_e(f.caption)}</figcaption>"
            + (f'<ul class="notes">{notes}</ul>' if notes else "")
            + "</figure>"
        )
    return "\n".join(parts)


def render(report: Report) -> str:
    anchors = Anchors()
    body = [f"<h1>{_e(report.title)}</h1>"]
    body += [f"<p>{_e(line)}</p>" for line in report.intro if line.strip()]
    for heading, tables in report.sections:
        collapsed = heading in report.collapsed
        if collapsed:
            body.append(f"<details><summary>{_e(heading)}</summary>")
        else:
            body.append(f"<h2>{_e(heading)}</h2>")
        body += [table(t, anchors=anchors) for t in tables]
        if collapsed:
            body.append("</details>")
        if heading == report.figures_after:
            body.append(figures(report, anchors))
    if report.figures_after is None:
        body.append(figures(report, anchors))
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(report.title)}</title><style>{_css()}</style></head>\n<body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )
