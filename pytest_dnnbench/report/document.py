"""What a report holds, apart from how it is built (:mod:`.build`) and written (:mod:`.markdown`,
:mod:`.html`): the writers and the builder import this module, not one another.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypedDict

if TYPE_CHECKING:  # pragma: no cover
    from . import tables as T
    from .figures import FigureFile, MemoryFits
    from .fits import Fit

__all__ = ["Report", "ReportFits"]


class ReportFits(TypedDict, total=False):
    """The lines fitted for the figures (absent when the report has no figures)."""

    #: Fig. 3's upper bound per platform label.
    upper_bound: dict[str, Fit]
    #: Fig. 4's memory fits per platform label.
    memory: dict[str, MemoryFits]


@dataclass
class Report:
    title: str
    #: The platforms as given (their results files are written as they are).
    platforms: list[T.Platform]
    intro: list[str] = field(default_factory=list)
    #: (heading, tables) in order.
    sections: list[tuple[str, list[T.Table]]] = field(default_factory=list)
    figures: list[FigureFile] = field(default_factory=list)
    #: The figures go after the section with this heading (None: at the end).
    figures_after: str | None = None
    #: Headings of the sections shown collapsed in HTML.
    collapsed: set[str] = field(default_factory=set)
    #: Upper bounds (Fig. 3) and memory fits (Fig. 4) per platform label.
    fits: ReportFits = field(default_factory=ReportFits)
    #: The platforms shown: the given ones, a platform of several modes split into one per mode.
    views: list[T.Platform] = field(default_factory=list)
