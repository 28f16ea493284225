"""``python -m pytest_dnnbench publish [--store URL] --out DIR``: a static site of the results store
(docs/dashboard.md).

The site is a folder: ``index.html`` (every history), ``models/<model>.html`` with ``data/<model>.js`` (each
page loads its own model's data), ``platforms.html`` (the platforms side by side, with ``platforms/``: the
report of the latest run of each platform and the paper's, Figures 1-4 among it), ``runs/<id>.html``,
``assets/`` (the style, the script, and Plotly's JavaScript copied from the ``plotly`` package: no CDN, no
network). It is built in a temporary folder beside ``--out`` and put in place at the end: a site that fails to
build leaves the previous one as it was; a folder that holds anything but a site published before is refused,
never overwritten.

Exit status 0, or 2 with one line that says what was wrong: a store that cannot be opened (its own message,
password masked), an ``--out`` that is a file, holds other files or cannot be written, Plotly not installed.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import TextIO

__all__ = ["MARKER", "add_arguments", "plotly_js", "publish", "run"]

#: The file that marks a folder as a site this command wrote (a later publish may replace it).
MARKER = ".dnnbench-site"
ASSETS = Path(__file__).with_name("assets")


class PublishError(Exception):
    """What stops a site from being published; the message says what to do."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store",
        metavar="URL",
        default=None,
        help="the results store: sqlite:///PATH, a path, or postgresql://USER@HOST/DB (default: DNNBENCH_STORE, "
        "else .dnnbench/history.sqlite under the current directory)",
    )
    parser.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="the site's folder (made, or replaced if it holds a site published before)",
    )
    parser.add_argument(
        "--last",
        type=int,
        default=None,
        metavar="N",
        help="the last N runs of each history (default 100, as the history command; 0: every run)",
    )
    parser.add_argument(
        "--reference",
        metavar="PLATFORM_KEY",
        default=None,
        help="the platform the others are compared with on the platforms page (default: the first "
        "platform key in order)",
    )
    parser.add_argument(
        "--no-figures",
        action="store_true",
        help="leave out the paper's Figures 1-4 and the report of the latest runs (faster)",
    )


def plotly_js() -> Path:
    """Plotly's bundled ``plotly.min.js`` (of the installed ``plotly`` package, found without importing it)."""
    spec = importlib.util.find_spec("plotly")
    roots = list(spec.submodule_search_locations or []) if spec is not None else []
    for root in roots:
        path = Path(root) / "package_data" / "plotly.min.js"
        if path.is_file():
            return path
    raise PublishError(
        "Plotly's JavaScript (plotly/package_data/plotly.min.js) is not installed; pip install 'plotly>=5' "
        "(pytest-dnnbench depends on it: reinstall the plugin)"
    )


def _check_out(out: Path) -> None:
    if out.exists() or out.is_symlink():
        if not out.is_dir():
            raise PublishError(f"--out {out}: exists and is not a directory; give a directory (made if missing)")
        entries = [p.name for p in out.iterdir()]
        if entries and MARKER not in entries:
            raise PublishError(
                f"--out {out}: holds {len(entries)} file(s) that are not a site published before (no {MARKER}); "
                "give a new or empty directory (nothing in it is overwritten)"
            )
    parent = out.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise PublishError(f"--out {out}: {parent} is a file, so the directory cannot be made")


def publish(
    store_url: str,
    out: Path,
    *,
    last: int | None = 100,
    reference: str | None = None,
    figures: bool = True,
    say: TextIO | None = None,
) -> dict[str, int]:
    """Build the site of the store at ``store_url`` into ``out``; returns the number of files of each kind.
    Raises :class:`PublishError` or :class:`~..store.urls.StoreError`."""
    from ..store.db import open_store
    from ..store.urls import mask_url
    from . import pages
    from .data import read_site

    out = Path(out)
    _check_out(out)
    plotly = plotly_js()
    t0 = time.perf_counter()
    with open_store(store_url, write=False) as store:
        site = read_site(store, last=last)
        latest_ids = [p.record_id for h in site.histories if (p := h.latest) is not None]
        latest = store.records_json(latest_ids) if figures and latest_ids else {}
    read_s = time.perf_counter() - t0
    files: list[pages.Page] = [pages.index_page(site)]
    for model in site.models:
        files.extend(pages.model_page(site, model))
    files.extend(pages.run_page(site, run) for run in site.runs.values())
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    except OSError as exc:
        raise PublishError(
            f"--out {out}: cannot be written ({exc.strerror or exc}); give a writable directory"
        ) from None
    try:
        report_files: list[str] = []
        report: str | None = None
        if figures and site.histories:
            report_files, report = _platform_report(site, latest, tmp / "platforms")
        paper = _paper_per_image() if site.histories else {}
        files.append(pages.platforms_page(site, reference, paper, report_files, report))
        for page in files:
            path = tmp / page.path
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(page.text, encoding="utf-8")
        (tmp / "assets").mkdir(exist_ok=True)
        for name in ("dashboard.js", "dashboard.css"):
            shutil.copyfile(ASSETS / name, tmp / "assets" / name)
        shutil.copyfile(plotly, tmp / "assets" / "plotly.min.js")
        (tmp / MARKER).write_text(
            f"a site of pytest-dnnbench's publish; store {mask_url(store_url)}\n", encoding="utf-8"
        )
        _swap(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if say is not None:
        print(f"read the store in {read_s:.1f} s; built the site in {time.perf_counter() - t0:.1f} s", file=say)
    return {
        "histories": len(site.histories),
        "models": len(site.models),
        "runs": len(site.runs),
        "platforms": len(site.platforms),
        "files": len(files) + 3 + len(report_files),
    }


def _swap(tmp: Path, out: Path) -> None:
    """Put the new site ``tmp`` where ``out`` is (the old site removed only once the new one is in place)."""
    os.chmod(tmp, 0o755 & ~_umask())
    if not out.exists():
        os.replace(tmp, out)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
    os.rmdir(old)
    os.replace(out, old)
    try:
        os.replace(tmp, out)
    except OSError:
        os.replace(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _platform_report(site: object, latest: dict[int, dict[str, object]], folder: Path) -> tuple[list[str], str]:
    """The report (Tables 1-3, Figures 1-4) of the latest record of each history per platform and of the paper's
    two platforms, written into ``folder``; returns the figures' and the report's paths under the site."""
    from ..baseline_store import PAPER_PLATFORMS
    from ..paperdata import paper_baseline
    from ..report.build import write_report
    from ..report.inputs import by_mode, records_from_baseline
    from ..report.tables import Platform
    from .data import Site

    assert isinstance(site, Site)
    platforms = []
    for key in site.platforms:
        mine = [h for h in site.histories if h.info.platform_key == key and h.latest is not None]
        records = [dict(latest[h.latest.record_id]) for h in mine if h.latest and h.latest.record_id in latest]
        if not records:
            continue
        run = max((h.latest.run_id for h in mine if h.latest), default=None)
        env = dict(site.environments.get(run, {})) if run is not None else {}
        platforms.extend(by_mode(Platform(key, records, env, [], f"store: {key}", "results")))
    platforms += [records_from_baseline(paper_baseline(p)) for p in PAPER_PLATFORMS]
    written = write_report(platforms, folder, title="The latest run of each platform, and the paper's")
    root = folder.parent
    figures = [p.relative_to(root).as_posix() for p in written if p.suffix == ".png"]
    return figures, (folder / "report.html").relative_to(root).as_posix()


def _paper_per_image() -> dict[str, dict[tuple[str, int], float]]:
    from ..baseline_store import PAPER_PLATFORMS
    from ..paperdata import paper_baseline
    from ..report.inputs import records_from_baseline

    out: dict[str, dict[tuple[str, int], float]] = {}
    for name in PAPER_PLATFORMS:
        p = records_from_baseline(paper_baseline(name))
        cells = {}
        for r in p.records:
            v = r.get("per_image_ms")
            if isinstance(v, (int, float)) and isinstance(r.get("batch_size"), int):
                cells[(str(r.get("model")), int(r["batch_size"]))] = float(v)
        out[p.label] = cells
    return out


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    from ..store.cli import ENV_VAR
    from ..store.urls import StoreError, resolve_url

    if args.last is not None and args.last < 0:
        print("error: --last N: N is 0 (every run) or more", file=err)
        return 2
    last = 100 if args.last is None else (args.last or None)
    value = args.store or os.environ.get(ENV_VAR) or None
    try:
        url = resolve_url(value, Path.cwd())
        counts = publish(url, Path(args.out), last=last, reference=args.reference, figures=not args.no_figures, say=out)
    except (PublishError, StoreError) as exc:
        print(f"error: {exc}", file=err)
        return 2
    except OSError as exc:
        print(
            f"error: --out {args.out}: cannot be written ({exc.strerror or exc}); give a writable directory", file=err
        )
        return 2
    print(
        f"site written to {args.out}: {counts['histories']} histories of {counts['models']} model(s) on "
        f"{counts['platforms']} platform(s), {counts['runs']} run page(s); open {Path(args.out) / 'index.html'}",
        file=out,
    )
    return 0
