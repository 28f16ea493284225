"""``python -m pytest_dnnbench report RESULTS.json [RESULTS.json ...] --out DIR``

Rebuild the report (tables, figures, Markdown, HTML, CSV) from saved results files
(``--dnn-json`` or ``--dnn-report``'s ``results.json``) and baseline files, of this version or an
earlier one (read as this version writes them: docs/usage.md, the results file). With several inputs
the platforms are put side by side, the first being the reference of the ratio columns. A file
that holds several deployment modes (``--dnn-modes``) is shown as one platform per mode, side by
side, eager first: ``<label> · <mode>``.

``python -m pytest_dnnbench publish [--store URL] --out DIR``

A static site of the results store (docs/dashboard.md): every history, a page per model, the platforms side by
side, a page per run; Plotly's JavaScript inside the site.

``python -m pytest_dnnbench history [--store URL] [--metric FIGURE] [--model GLOB] ... [--json]``

The results store's histories (``--dnn-store``): per fingerprint the latest figure, its trend and its change
points with the commits where they begin; ``history accept SELECTION --reason TEXT [--commit SHA]`` records an
accepted change, ``history ignore SELECTION --commit SHA --reason TEXT`` a commit to leave out
(docs/history.md).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pytest_dnnbench", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    rep = sub.add_parser(
        "report",
        help="rebuild the report from results (and baseline) files",
        description="Rebuild the report from saved results files and baseline files; "
        "several inputs are put side by side (ratios against the first); a file of several modes is shown "
        "as one platform per mode, eager first.",
    )
    rep.add_argument(
        "inputs",
        nargs="+",
        metavar="RESULTS.json",
        help="results files (schema pytest-dnnbench/2, or /1 of earlier versions) or baseline files (any version)",
    )
    rep.add_argument("--out", required=True, metavar="DIR", help="directory to write the report into")
    rep.add_argument("--title", default=None, help="title of the report")
    rep.add_argument(
        "--label",
        action="append",
        default=[],
        metavar="LABEL",
        help="name of a platform, once per input in order (default: device name and precision); "
        "a file of several modes gets ' · MODE' after it, per mode",
    )
    from .store.cli import add_parser as add_history_parser  # the parser only: no SQLAlchemy, no ruptures

    add_history_parser(sub)
    from . import merge as merge_command

    merge_command.add_arguments(
        sub.add_parser("merge", help="merge the results files of one run's shards (--dnn-shard) into one")
    )
    from .dashboard import publish as publish_command  # the parser only: no SQLAlchemy, no Plotly

    publish_command.add_arguments(
        sub.add_parser(
            "publish",
            help="write a static site of the results store (histories, change points, platforms, runs)",
            description="Write a static site of the results store: every history with its sparkline, a page per "
            "model (latency and memory over the runs, change points and accepted changes marked), the platforms "
            "side by side, a page per run. No server, no network: open index.html (docs/dashboard.md).",
        )
    )
    args = parser.parse_args(argv)
    if args.command == "publish":
        return publish_command.run(args)
    if args.command == "history":
        from .store.cli import run as run_history

        return run_history(args)
    if args.command == "merge":
        return merge_command.run(args)

    from .report.build import write_report
    from .report.inputs import InputError, by_mode, load_platform
    from .report.tables import unique_labels

    if args.label and len(args.label) != len(args.inputs):
        parser.error(f"--label given {len(args.label)} times for {len(args.inputs)} inputs: give one per input")
    out = Path(args.out)
    problem = _unwritable(out)
    if problem:
        print(f"error: --out {args.out}: {problem}", file=sys.stderr)
        return 2
    try:
        platforms = [
            load_platform(Path(p), warn=lambda m: print(f"warning: {m}", file=sys.stderr)) for p in args.inputs
        ]
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not any(p.records or p.missing for p in platforms):
        print("error: the inputs hold no record and no missing cell: nothing to report", file=sys.stderr)
        return 2
    labels = args.label or unique_labels([p.label for p in platforms])
    for p, label in zip(platforms, labels, strict=True):
        p.label = label
    platforms = [view for p in platforms for view in by_mode(p)]
    existed = out.exists()
    try:
        written = write_report(
            platforms,
            out,
            title=args.title,
            command="python -m pytest_dnnbench report " + " ".join(args.inputs),
        )
    except (ImportError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        if not existed:  # the folder this command made, still empty: not left behind
            with contextlib.suppress(OSError):
                out.rmdir()
        return 2
    for path in written:
        print(path)
    return 0


def _unwritable(out: Path) -> str | None:
    """Why the report could not be written into ``out`` (a directory, made if missing), or None."""
    try:
        if out.exists():
            if not out.is_dir():
                return "exists and is not a directory; give a directory (it is made if missing)"
            return None if os.access(out, os.W_OK | os.X_OK) else "is not writable"
    except OSError as exc:
        return f"the system refuses this path ({exc.strerror})"
    parent = out.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        return f"{parent} is a file, so the directory cannot be made"
    return None if os.access(parent, os.W_OK | os.X_OK) else f"{parent} is not writable"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
