"""``python -m pytest_dnnbench history``: the results store's histories, their change points, and the accepted
changes and ignored commits people record (docs/history.md, "The history command").

::

    history [--store URL] [--metric FIGURE] [--model GLOB] [--batch-size N] [--mode MODE] [--branch BRANCH]
            [--fingerprint PREFIX] [--last N] [--all] [--alpha A] [--min-step PCT] [--json]
    history accept SELECTION --reason TEXT [--commit SHA | --at TIME] [--author NAME] [--store URL]
    history ignore SELECTION --commit SHA --reason TEXT [--author NAME] [--store URL]

Exit status: 0 (change points are shown, not judged: the gate is pytest's); 2 for a store that cannot be opened
(the store's own message, its password masked), a figure the store does not have, a selection that matches no
history. Importing this module imports neither SQLAlchemy nor ruptures: the parser is built before either is
needed (``python -m pytest_dnnbench report`` builds it too).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from .db import SeriesPoint
    from .history import Entry, History

__all__ = ["add_parser", "format_history", "parse_selection", "run"]

#: What ``--store`` falls back to: this variable, else the embedded store under the current directory.
ENV_VAR = "DNNBENCH_STORE"
#: The keys a SELECTION may name, with their short forms.
SELECTION_ALIASES = {
    "model": "model",
    "batch_size": "batch_size",
    "batch": "batch_size",
    "mode": "mode",
    "precision": "precision",
    "device": "device",
    "platform_key": "platform_key",
    "platform": "platform_key",
    "source": "source",
}
#: The points the sparkline of a row shows (the last ones).
SPARK_POINTS = 24
_SPARKS = "▁▂▃▄▅▆▇█"
_HEX = re.compile(r"[0-9a-f]+")


def _store_option(parser: argparse.ArgumentParser, *, inherited: bool = False) -> None:
    parser.add_argument(
        "--store",
        metavar="URL",
        # On a subcommand: not set unless given there, so that ``history --store X accept ...`` keeps X.
        default=argparse.SUPPRESS if inherited else None,
        help=f"the results store: sqlite:///PATH, a path, or postgresql://USER@HOST/DB (default: {ENV_VAR}, "
        "else .dnnbench/history.sqlite under the current directory)",
    )


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Add ``history`` (and its ``accept``, ``ignore``) to the subcommands of ``python -m pytest_dnnbench``."""
    hist = sub.add_parser(
        "history",
        help="the results store's histories: latest figure, trend, change points, accepted changes",
        description="Per history of the results store (one fingerprint: model, batch, mode, precision, platform): "
        "its points, the latest figure and its commit, the trend, and the change points (ruptures' PELT on the log "
        "of the figure, each step tested with Mann-Whitney U) with the commits where they begin; and the accepted "
        "changes and ignored commits recorded with 'history accept' and 'history ignore'.",
    )
    _store_option(hist)
    hist.add_argument(
        "--metric",
        default="latency_median_ms",
        metavar="FIGURE",
        help="the figure (a column of the store: latency_median_ms, fps, memory_total_bytes, per_image_ms, "
        "top1_pct...; default latency_median_ms)",
    )
    hist.add_argument("--model", metavar="GLOB", help="histories of these models only (a glob: resnet*)")
    hist.add_argument("--batch-size", type=int, metavar="N", help="histories of this batch size only")
    hist.add_argument("--mode", metavar="MODE", help="histories of this mode only (eager, compile...)")
    hist.add_argument("--branch", metavar="BRANCH", help="runs of this branch only")
    hist.add_argument("--fingerprint", metavar="PREFIX", help="the histories whose fingerprint starts so")
    hist.add_argument(
        "--last",
        type=int,
        default=None,
        metavar="N",
        help="the last N runs of each history (default 100; 0: all of them)",
    )
    hist.add_argument(
        "--all",
        action="store_true",
        dest="all_points",
        help="every run's point, also of incomplete or interrupted runs and busy or insufficient records "
        "(default: only what a baseline may use)",
    )
    hist.add_argument(
        "--alpha", type=float, default=None, metavar="A", help="a step's Mann-Whitney U level (default 0.01)"
    )
    hist.add_argument(
        "--min-step",
        type=float,
        default=None,
        metavar="PCT",
        help="the smallest step reported, in per cent (default 5)",
    )
    hist.add_argument("--json", action="store_true", help="machine output: every point, change point, annotation")
    actions = hist.add_subparsers(dest="action", metavar="{accept,ignore,import,export}")
    for kind, words in (
        ("accept", "an accepted change: the level moved on purpose; the baseline starts again from that commit"),
        ("ignore", "a commit whose records are no baseline and no point of the history (a broken build, a bad runner)"),
    ):
        act = actions.add_parser(
            kind,
            help=f"record {words.split(':')[0]}",
            description=f"Record {words}. SELECTION: KEY=VALUE[,KEY=VALUE...] (keys model, batch_size, mode, "
            "precision, device, platform_key, source; a value may be a glob, or alternatives a|b), 'all', or a "
            "fingerprint prefix.",
        )
        act.add_argument("selection", metavar="SELECTION", help="model=resnet18,batch_size=8 | all | a fingerprint")
        act.add_argument("--reason", required=True, help="why (kept with the annotation)")
        when = act.add_mutually_exclusive_group(required=kind == "ignore")
        when.add_argument("--commit", metavar="SHA", help="from the first run of this commit on (7+ hex digits)")
        if kind == "accept":
            when.add_argument("--at", metavar="TIME", help="from this time on (ISO 8601; without a zone: local time)")
        act.add_argument("--author", help="who (default: the CI's user, else the login name)")
        _store_option(act, inherited=True)
    imp = actions.add_parser(
        "import",
        help="add results files and baseline files (any version) to the store",
        description="Add results files (--dnn-json, schema 1 or 2: one complete run each) and baseline files "
        "(schema 1 or 2: one complete run per saved round time, each round a record) to the store. A file that "
        "cannot be read is reported and skipped; nothing of it is written.",
    )
    imp.add_argument("files", nargs="+", metavar="FILE", help="results files and baseline files")
    _store_option(imp, inherited=True)
    exp = actions.add_parser(
        "export",
        help="write the latest record of each history in a format other tools read",
        description="Write the latest record of each history (or every record of one run, --run) as json, csv, "
        "github-action-benchmark (customSmallerIsBetter input) or bencher (Bencher Metric Format).",
    )
    from .transfer import EXPORT_FORMATS

    exp.add_argument("--format", required=True, choices=EXPORT_FORMATS, dest="export_format")
    exp.add_argument("--run", type=int, metavar="ID", help="the records of this run only")
    exp.add_argument("--out", metavar="FILE", help="write to this file (atomically) instead of the standard output")
    _store_option(exp, inherited=True)
    return hist


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run ``history`` (or its ``accept``/``ignore``) as parsed by :func:`add_parser`; returns the exit status."""
    out = out or sys.stdout
    err = err or sys.stderr
    from .urls import StoreError

    try:
        if getattr(args, "action", None) in ("accept", "ignore"):
            return _annotate(args, out, err)
        if getattr(args, "action", None) == "import":
            return _import(args, out, err)
        if getattr(args, "action", None) == "export":
            return _export(args, out, err)
        return _show(args, out, err)
    except StoreError as exc:
        print(f"error: {exc}", file=err)
        return 2
    except BrokenPipeError:  # ``history --json | head``: the reader has gone, nothing is wrong
        if out is sys.stdout:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 0


def _url(args: argparse.Namespace) -> str:
    from .urls import resolve_url

    value = getattr(args, "store", None) or os.environ.get(ENV_VAR) or None
    if value is not None and value.strip() == "default":
        value = None
    return resolve_url(value, Path.cwd())


# -- history ---------------------------------------------------------------------------------------------------


def _show(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from .changes import ALPHA, MIN_STEP
    from .db import open_store
    from .history import DEFAULT_LAST, Filters, collect, to_json
    from .schema import FIGURES

    if args.metric not in FIGURES:
        print(f"error: --metric {args.metric}: the store has no such figure; one of {', '.join(FIGURES)}", file=err)
        return 2
    if args.last is not None and args.last < 0:
        print("error: --last N: N is 0 (all runs) or more", file=err)
        return 2
    alpha = ALPHA if args.alpha is None else args.alpha
    min_step = MIN_STEP if args.min_step is None else args.min_step / 100.0
    if not 0 < alpha < 1 or min_step < 0:
        print("error: --alpha is between 0 and 1, --min-step is 0 or more", file=err)
        return 2
    last = DEFAULT_LAST if args.last is None else (args.last or None)
    filters = Filters(model=args.model, batch_size=args.batch_size, mode=args.mode, fingerprint=args.fingerprint)
    with open_store(_url(args), write=False) as store:
        history = collect(
            store,
            metric=args.metric,
            filters=filters,
            branch=args.branch,
            last=last,
            usable=not args.all_points,
            alpha=alpha,
            min_step=min_step,
        )
    if args.json:
        json.dump(to_json(history), out, indent=2)
        out.write("\n")
    else:
        out.write(format_history(history, ascii_only=not _can_write(out, _SPARKS + "→×·…")))
    return 0


def _can_write(stream: TextIO, text: str) -> bool:
    try:
        text.encode(getattr(stream, "encoding", None) or "utf-8")
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def _unit(metric: str) -> tuple[str, Callable[[float], str]]:
    """The unit a figure is shown in, and how a value of it is written."""
    if metric.endswith("_bytes"):
        return "MiB", lambda v: f"{v / 2**20:.1f} MiB"
    if metric.endswith("_ms"):
        return "ms", lambda v: f"{_digits(v)} ms"
    if metric.endswith("_pct"):
        return "%", lambda v: f"{v:.2f} %"
    if metric == "fps":
        return "images/s", lambda v: f"{_digits(v)} fps"
    if metric == "energy_watts":
        return "W", lambda v: f"{_digits(v)} W"
    if metric.endswith("_j_per_image"):
        return "J/image", lambda v: f"{_digits(v)} J"
    return "", lambda v: f"{v:.4g}"


def _digits(value: float, significant: int = 3) -> str:
    """``value`` with ``significant`` digits, trailing zeros kept, never in exponent form (61.0, 0.0512, 1234)."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    decimals = max(0, significant - 1 - math.floor(math.log10(abs(value))))
    return f"{value:.{decimals}f}"


def _short_commit(commit: str | None) -> str:
    return commit[:7] if commit else "-"


def _short_platform(key: str, precision: str, mode: str, width: int = 28, ellipsis: str = "…") -> str:
    """The platform key without the precision and mode (their own columns), its middle elided past ``width``."""
    tail = f"-{precision}-{mode}"
    if key.endswith(tail):
        key = key[: -len(tail)]
    if len(key) <= width:
        return key
    keep = width - len(ellipsis)
    return key[: keep // 2] + ellipsis + key[-(keep - keep // 2) :]


def _spark(points: Sequence[SeriesPoint]) -> str:
    values = [p.value for p in points[-SPARK_POINTS:]]
    if not values:
        return ""
    low, high = min(values), max(values)
    if high <= low:
        return _SPARKS[3] * len(values)
    return "".join(_SPARKS[min(7, int((v - low) / (high - low) * 8))] for v in values)


def _when(value: datetime) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _table(rows: list[list[str]], right: set[int]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(
            c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ).rstrip()
        for r in rows
    ]


def format_history(history: History, *, ascii_only: bool = False) -> str:
    """The words of ``history``: a header, then per history one row and its change points and annotations."""
    unit, show = _unit(history.metric)
    arrow, times, dot, ellipsis = ("->", "x", "-", "...") if ascii_only else ("→", "×", "·", "…")
    window = f"the last {history.last} runs of each history" if history.last else "every run"
    which = "complete runs, records neither busy nor insufficient" if history.usable else "every run's record"
    branch = f", branch {history.branch}" if history.branch else ""
    lines = [
        f"results store {history.url}",
        f"{history.metric}{f' ({unit})' if unit else ''} {dot} {window}{branch} {dot} {which}",
    ]
    if history.total == 0:
        lines.append("the store holds no record yet: run pytest with --dnn-store to add some")
        return "\n".join(lines) + "\n"
    shown = [e for e in history.entries if e.points]
    unusable = [e for e in history.entries if not e.points and e.unusable]
    empty = len(history.entries) - len(shown) - len(unusable)
    if not history.entries:
        lines.append(f"none of the {history.total} histories in the store matches the filters")
        return "\n".join(lines) + "\n"
    lines.append(f"{len(shown)} of {history.total} histories")
    if unusable:
        lines.append(
            f"{len(unusable)} more with no usable point: their {sum(e.unusable for e in unusable)} run(s) measured on "
            "a busy machine, with too few samples, or not complete (--all shows them)"
        )
    if empty:
        lines.append(f"{empty} more without a point of {history.metric} here")
    if not shown:
        return "\n".join(lines) + "\n"
    header = ["model", "batch", "mode", "precision", "platform", "fingerprint", "runs", "latest", "trend", ""]
    rows = [header]
    for e in shown:
        latest = e.points[-1]
        rows.append(
            [
                e.info.model,
                str(e.info.batch_size),
                e.info.mode,
                e.info.precision,
                _short_platform(e.info.platform_key, e.info.precision, e.info.mode, ellipsis=ellipsis),
                e.info.fingerprint[:12],
                str(len(e.points)),
                f"{show(latest.value)} @ {_short_commit(latest.git_commit)}",
                f"{times}{e.trend:.2f}" if e.trend is not None else "-",
                "" if ascii_only else _spark(e.points),
            ]
        )
    table = _table(rows, right={1, 6})
    lines += ["", table[0]]
    for e, row in zip(shown, table[1:], strict=True):
        lines.append(row)
        lines += [f"    {text}" for text in _details(e, history.metric, show, arrow)]
    return "\n".join(lines) + "\n"


def _details(e: Entry, metric: str, show: Callable[[float], str], arrow: str) -> list[str]:
    out = []
    n = len(e.points)
    for c in e.changes:
        cp = c.point
        verdict = "worse" if c.worse(metric) else "better"
        accepted = f"; accepted (#{c.accepted_by})" if c.accepted_by is not None else ""
        out.append(
            f"change at run {c.run_number} of {n} ({_short_commit(c.git_commit)}, {_when(c.started_at)}): "
            f"{show(cp.before)} {arrow} {show(cp.after)}, {cp.step * 100:+.1f} % ({verdict}), p = {cp.p_value:.1e}, "
            f"{cp.n_before} runs before, {cp.n_after} after{accepted}"
        )
    if not e.changes:
        out.append("no change point")
    for a in e.annotations:
        by = f" ({a.author})" if a.author else ""
        effect = e.effective.get(a.id)
        if a.kind == "ignore":
            out.append(f"ignored #{a.id}: commit {_short_commit(a.git_commit)}: {a.reason}{by}")
            continue
        label, since, on = ("accepted", "from ", "from ") if a.kind == "accept" else (a.kind, "on ", "at ")
        if a.git_commit:
            where = f"{since}commit {_short_commit(a.git_commit)}" + (f" ({_when(effect)})" if effect else "")
        else:
            where = f"{on}{_when(effect)}" if effect else ""
        head = f"{label} #{a.id}" + (f" {where}" if where else "")
        out.append(f"{head}: {a.reason}{by}")
    if e.ignored:
        out.append(f"{e.ignored} run(s) of ignored commits left out")
    return out


# -- accept, ignore ----------------------------------------------------------------------------------------------


def parse_selection(text: str) -> dict[str, object] | None:
    """A SELECTION as an annotation keeps it: ``KEY=VALUE[,KEY=VALUE...]`` (a value a glob, or ``a|b``;
    ``batch_size`` integers), ``all`` (every history), or None for a fingerprint prefix (hex digits).

    Raises ValueError for anything else."""
    text = text.strip()
    if text == "all":
        return {"model": "*"}
    if "=" not in text:
        if len(text) >= 4 and _HEX.fullmatch(text.lower()):
            return None
        raise ValueError(
            f"SELECTION {text!r}: give KEY=VALUE[,KEY=VALUE...] (keys {', '.join(sorted(set(SELECTION_ALIASES)))}), "
            "'all', or a fingerprint prefix of 4 or more hex digits"
        )
    selection: dict[str, object] = {}
    for part in text.split(","):
        key, eq, value = (s.strip() for s in part.partition("="))
        name = SELECTION_ALIASES.get(key.lower().replace("-", "_"))
        if not eq or name is None or not value:
            raise ValueError(
                f"SELECTION {text!r}: {part!r} is not KEY=VALUE with a key among {', '.join(SELECTION_ALIASES)}"
            )
        options: list[object] = []
        for option in value.split("|"):
            if name == "batch_size":
                if not option.strip().isdigit():
                    raise ValueError(f"SELECTION {text!r}: batch_size={option!r} is not a whole number")
                options.append(int(option))
            else:
                options.append(option.strip())
        selection[name] = options if len(options) > 1 else options[0]
    return selection


def _parse_time(text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"--at {text!r} is not a time (ISO 8601: 2026-12-07 14:30, 2026-12-07T14:30+01:00)") from None
    return when.astimezone() if when.tzinfo is None else when


def _annotate(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from .db import _matches, open_store

    kind: str = args.action
    try:
        selection = parse_selection(args.selection)
        at = _parse_time(args.at) if getattr(args, "at", None) else None
    except ValueError as exc:
        print(f"error: {exc}", file=err)
        return 2
    commit = args.commit.strip().lower() if args.commit else None
    if commit is not None and not (7 <= len(commit) <= 64 and _HEX.fullmatch(commit)):
        print(f"error: --commit {args.commit!r}: give a commit hash (7 or more hex digits)", file=err)
        return 2
    if not args.reason.strip():
        print("error: --reason: say why", file=err)
        return 2
    url = _url(args)
    with open_store(url, write=False) as store:  # read first: a store that is not there is not made here
        facts = store.selection_facts()
        if selection is None:
            prefix = args.selection.strip().lower()
            matched = [fp for fp in facts if fp.startswith(prefix)]
            if len(matched) != 1:
                print(
                    f"error: SELECTION {args.selection}: {'no' if not matched else len(matched)} histories of the "
                    "store have a fingerprint starting so"
                    + ("; give more digits" if matched else " (python -m pytest_dnnbench history lists them)"),
                    file=err,
                )
                return 2
        else:
            matched = sorted(fp for fp, f in facts.items() if _matches(selection, f))
            if not matched:
                print(
                    f"error: SELECTION {args.selection}: it matches none of the {len(facts)} histories of the store "
                    "(python -m pytest_dnnbench history lists them)",
                    file=err,
                )
                return 2
        known = commit is None or store.has_commit(commit)
    from .runmeta import author

    with open_store(url) as store:
        note_id = store.annotate(
            args.reason,
            kind=kind,
            fingerprint=matched[0] if selection is None else None,
            selection=selection,
            commit=commit,
            at=at,
            author=args.author or author(os.environ),
        )
    many = f"{len(matched)} histor{'y' if len(matched) == 1 else 'ies'}"
    what = f"fingerprint {matched[0][:12]}" if selection is None else f"{args.selection.strip()} ({many})"
    if kind == "accept":
        where = f"from commit {commit[:7]}" if commit else f"from {_when(at)}" if at else "from now"
        print(f"accepted change #{note_id} recorded for {what} {where}: {args.reason.strip()}", file=out)
    else:
        print(f"ignored commit {commit} (#{note_id}) recorded for {what}: {args.reason.strip()}", file=out)
    if not known:
        print(
            f"note: the store has no run of commit {commit} yet: "
            + ("it takes effect from its first run" if kind == "accept" else "its runs will be left out"),
            file=err,
        )
    return 0


# -- import and export -------------------------------------------------------------------------------------


def _import(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from .db import open_store
    from .transfer import import_files

    with open_store(_url(args)) as store:
        done = import_files(store, [Path(f) for f in args.files])
        print(f"results store {store.url}", file=out)
    for item in done:
        if item.problem is not None:
            print(f"error: {item.path}: {item.problem} (nothing of it was imported)", file=err)
        else:
            print(f"{item.path}: {item.kind} file, {item.runs} run(s), {item.records} record(s)", file=out)
    return 1 if any(i.problem for i in done) else 0


def _export(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from ..results import atomic_write_text
    from .db import open_store
    from .transfer import export, latest_points

    with open_store(_url(args), write=False) as store:
        text = export(latest_points(store, args.run), args.export_format)
    if args.out:
        try:
            atomic_write_text(Path(args.out), text)
        except OSError as exc:
            print(f"error: --out {args.out}: {exc}", file=err)
            return 2
    else:
        out.write(text)
    return 0
