"""Baselines, deployment constraints and regression gating (pytest glue).

Every record produced by ``dnn_bench`` is checked (``pytest_dnnbench_record``, ``trylast``:
accuracy has filled its part by then) against the deployment constraints and against the
stored baseline; a violated check fails the test, constraint violations and baseline
regressions reported in separate sections. Saving a baseline, stale-baseline notes and
"no baseline applies" happen at the controller, from the records (so also under
pytest-xdist). The logic lives in ``baselines.py`` and ``constraints.py``; no torch here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Optional

import pytest

from .baselines import (
    DEFAULT_MAX_ROUNDS, Baseline, BaselineError, Tolerances, compare_entry, load_baseline, merge_records,
    platform_from_record, save_document,
)
from .constraints import Constraints, check_constraints, format_bytes, parse_fps, parse_size
from .options import raw

DEFAULT_TOLERANCES = Tolerances()

_TEXT_OPTIONS: list[tuple[str, str, str, str]] = [
    ("--dnn-baseline", "dnn_baseline", "auto",
     "baseline to check against: a file, 'auto' (baselines/<platform key>.json under the rootdir, the "
     "default) or 'none'."),
    ("--dnn-baseline-rounds", "dnn_baseline_rounds", str(DEFAULT_MAX_ROUNDS),
     "rounds kept per entry when saving a baseline (each --dnn-save-baseline run adds one; use at least 5)."),
    ("--dnn-latency-tolerance", "dnn_latency_tolerance", "10%",
     "latency regression threshold: slower than baseline x (1 + this), and significant (e.g. 10%% or 0.1)."),
    ("--dnn-memory-tolerance", "dnn_memory_tolerance", "10%",
     "memory regression threshold: total memory above baseline x (1 + this)."),
    ("--dnn-top1-tolerance", "dnn_top1_tolerance", "0.5",
     "Top-1 regression threshold in percentage points (measured accuracy only)."),
    ("--dnn-latency-alpha", "dnn_latency_alpha", "0.001",
     "one-sided significance level of the latency test against the between-round spread (0.001; 0.01 "
     "catches more, with more false alarms: docs/baselines.md)."),
    ("--dnn-max-memory", "dnn_max_memory", "",
     "deployment constraint: maximum total process memory (0.7GB = 7e8 bytes, 700MB, 1.4GiB = 1.4 x 2^30, bytes)."),
    ("--dnn-min-fps", "dnn_min_fps", "",
     "deployment constraint: minimum images per second at the batch size under test (e.g. 30)."),
]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("dnnbench", "deep-network benchmarks (pytest-dnnbench)")
    for opt, ini, default, help_text in _TEXT_OPTIONS:
        group.addoption(opt, dest=ini, default=None, metavar="VALUE", help=help_text)
        parser.addini(ini, help=f"default for {opt}", type="string", default=default)
    group.addoption("--dnn-require-baseline", dest="dnn_require_baseline", action="store_true", default=None,
                    help="fail a test for which no baseline applies (for CI).")
    parser.addini("dnn_require_baseline", help="default for --dnn-require-baseline", type="bool", default=False)
    group.addoption("--dnn-save-baseline", dest="dnn_save_baseline", nargs="?", const="auto", default=None,
                    metavar="PATH",
                    help="add this run as one round to a baseline file (default: the platform's file in "
                         "baselines/), merging with the entries already there; written atomically, and not "
                         "after a run with a regression unless --dnn-baseline-force.")
    group.addoption("--dnn-baseline-force", dest="dnn_baseline_force", action="store_true", default=False,
                    help="with --dnn-save-baseline: save even though this run regressed against the baseline "
                         "(or the file is for another platform).")


# -- parsed settings -----------------------------------------------------------------------------

@dataclass(frozen=True)
class GatingOptions:
    baseline: str  # "auto", "none" or a path (absolute)
    baseline_given: bool
    require: bool
    save: Optional[str]  # None, "auto" or an absolute path
    force: bool
    rounds: int
    tolerances: Tolerances
    constraints: Constraints


@dataclass
class GatingState:
    options: GatingOptions
    rootpath: Path
    cache: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    saved: list = field(default_factory=list)
    save_failed: bool = False


GATING_KEY = pytest.StashKey[GatingState]()
ITEM_KEY = pytest.StashKey[tuple]()


def _usage(option: str, value: Any, why: str, fix: str) -> pytest.UsageError:
    return pytest.UsageError(f"{option}={value!s}: {why}. {fix}")


def parse_tolerance(value: Any, option: str, unit: str = "relative") -> float:
    """``10%`` or ``0.1`` (relative), or points for Top-1; zero or more, finite."""
    v = str(value).strip()
    try:
        if unit == "relative" and v.endswith("%"):
            f = float(v[:-1]) / 100.0
        else:
            f = float(v)
    except ValueError:
        fix = "Give a fraction or a percentage such as 0.1 or 10%" if unit == "relative" else \
            "Give percentage points such as 0.5"
        raise _usage(option, value, "not a number", fix) from None
    if not math.isfinite(f) or f < 0:
        raise _usage(option, value, "must be zero or more", "Give a tolerance such as 10% (latency, memory) or 0.5 (Top-1)")
    return f


def _alpha(value: Any, option: str) -> float:
    try:
        a = float(str(value).strip())
    except ValueError:
        raise _usage(option, value, "not a number", "Give a probability such as 0.001") from None
    if not 0.0 < a < 0.5:
        raise _usage(option, value, "must lie between 0 and 0.5", "Give a probability such as 0.001 or 0.01")
    return a


def _size(value: Any, option: str) -> int:
    try:
        return parse_size(value)
    except ValueError as exc:
        raise _usage(option, value, str(exc), "Use e.g. 1.0GB (10^9 bytes), 700MB, 1.4GiB (2^30 bytes) or plain bytes") from None


def _fps(value: Any, option: str) -> float:
    try:
        return parse_fps(value)
    except ValueError as exc:
        raise _usage(option, value, str(exc), "Give images per second such as 15, 30 or 60") from None


def _path(value: str, base: Path) -> str:
    p = Path(value).expanduser()
    return str(p if p.is_absolute() else (base / p).resolve())


def _source(config: pytest.Config, name: str, option: str, value: Any) -> str:
    if value is None:
        return ""
    return f"{option}={value}" if config.getoption(name, default=None) is not None else f"ini {name} = {value}"


def parse_gating_options(config: pytest.Config) -> GatingOptions:
    invocation = Path(config.invocation_params.dir)
    baseline_given = config.getoption("dnn_baseline", default=None) is not None
    baseline = str(raw(config, "dnn_baseline") or "auto").strip()
    save = config.getoption("dnn_save_baseline", default=None)
    if save is not None:
        save = str(save).strip() or "auto"
        save = "auto" if save.lower() == "auto" else _path(save, invocation)
    if baseline.lower() in ("auto", "none"):
        baseline = baseline.lower()
    else:  # relative to where pytest was started; an ini value relative to the ini file
        ini_dir = Path(config.inipath).parent if config.inipath else Path(config.rootpath)
        baseline = _path(baseline, invocation if baseline_given else ini_dir)
    if not baseline_given and save not in (None, "auto"):
        baseline = save  # --dnn-save-baseline=PATH alone: compare with that file too
    require = config.getoption("dnn_require_baseline", default=None)
    if require is None:
        require = bool(config.getini("dnn_require_baseline"))
    if require and baseline == "none":
        raise pytest.UsageError("--dnn-require-baseline with --dnn-baseline=none: no baseline could ever apply. "
                                "Drop one of the two, or name a baseline file (or auto)")
    rounds_raw = raw(config, "dnn_baseline_rounds")
    try:
        rounds = int(str(rounds_raw).strip())
    except ValueError:
        raise _usage("--dnn-baseline-rounds", rounds_raw, "not a whole number",
                     "Give a number of rounds such as 10") from None
    if rounds < 1:
        raise _usage("--dnn-baseline-rounds", rounds_raw, "must be at least 1",
                     "Give a number of rounds such as 10 (at least 5 recommended)")
    tol = Tolerances(
        latency=parse_tolerance(raw(config, "dnn_latency_tolerance"), "--dnn-latency-tolerance"),
        memory=parse_tolerance(raw(config, "dnn_memory_tolerance"), "--dnn-memory-tolerance"),
        top1=parse_tolerance(raw(config, "dnn_top1_tolerance"), "--dnn-top1-tolerance", unit="points"),
        alpha=_alpha(raw(config, "dnn_latency_alpha"), "--dnn-latency-alpha"),
    )
    mem = raw(config, "dnn_max_memory")
    fps = raw(config, "dnn_min_fps")
    constraints = Constraints(
        max_memory=_size(mem, "--dnn-max-memory") if mem is not None else None,
        min_fps=_fps(fps, "--dnn-min-fps") if fps is not None else None,
        max_memory_source=_source(config, "dnn_max_memory", "--dnn-max-memory", mem),
        min_fps_source=_source(config, "dnn_min_fps", "--dnn-min-fps", fps),
    )
    opts = GatingOptions(baseline=baseline, baseline_given=baseline_given, require=bool(require), save=save,
                         force=bool(config.getoption("dnn_baseline_force", default=False)), rounds=rounds,
                         tolerances=tol, constraints=constraints)
    # An explicit file is checked now, before any model is built; it is never modified on error.
    for path in sorted({p for p in (opts.baseline, opts.save) if p not in (None, "auto", "none")}):
        p = Path(path)
        if p.exists():
            try:
                load_baseline(p)
            except BaselineError as exc:
                option = "--dnn-baseline" if path == opts.baseline else "--dnn-save-baseline"
                raise pytest.UsageError(f"{option}: {exc}. Fix or remove the file (it was left untouched)") from None
        elif path == opts.baseline and path != opts.save and baseline_given:
            # (named in the ini file instead, a missing file is "no baseline applies", said in the summary)
            raise pytest.UsageError(
                f"--dnn-baseline={path}: the file does not exist. Create it with --dnn-save-baseline={path} "
                "(one round per run, at least 5 recommended), or use --dnn-baseline=auto"
            )
    return opts


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "dnn_tolerance(latency=None, memory=None, top1=None): override the baseline tolerances for this test "
        "(latency and memory relative, e.g. 0.2 or '20%'; top1 in percentage points).",
    )
    config.addinivalue_line(
        "markers",
        "dnn_constraints(max_memory=None, min_fps=None): deployment limits for this test's dnn_bench records "
        "(max_memory: '1.0GB', '700MB', '1.4GiB' or bytes; min_fps: images per second at the batch under test).",
    )
    config.stash[GATING_KEY] = GatingState(options=parse_gating_options(config), rootpath=Path(config.rootpath))


def get_gating(config: pytest.Config) -> GatingState:
    return config.stash[GATING_KEY]


# -- markers -------------------------------------------------------------------------------------

def item_settings(item: pytest.Item) -> tuple[Tolerances, Constraints]:
    """This test's tolerances and constraints: options, overridden by its markers."""
    cached = item.stash.get(ITEM_KEY, None)
    if cached is not None:
        return cached
    gs = get_gating(item.config)
    tol, cons = gs.options.tolerances, gs.options.constraints
    where = item.nodeid
    m = item.get_closest_marker("dnn_tolerance")
    if m is not None:
        if m.args:
            raise pytest.UsageError(f"{where}: dnn_tolerance takes keywords only, e.g. dnn_tolerance(latency=0.2)")
        unknown = set(m.kwargs) - {"latency", "memory", "top1"}
        if unknown:
            raise pytest.UsageError(f"{where}: dnn_tolerance got unknown keyword(s) {', '.join(sorted(unknown))}; "
                                    "use latency, memory or top1")
        kw = {}
        for name, value in m.kwargs.items():
            unit = "points" if name == "top1" else "relative"
            kw[name] = parse_tolerance(value, f"{where}: dnn_tolerance({name}", unit)
        tol = tol.replace(**kw)
    m = item.get_closest_marker("dnn_constraints")
    if m is not None:
        if m.args:
            raise pytest.UsageError(f"{where}: dnn_constraints takes keywords only, "
                                    "e.g. dnn_constraints(max_memory='1GB')")
        unknown = set(m.kwargs) - {"max_memory", "min_fps"}
        if unknown:
            raise pytest.UsageError(f"{where}: dnn_constraints got unknown keyword(s) {', '.join(sorted(unknown))}; "
                                    "use max_memory or min_fps")
        kw2: dict = {}
        if m.kwargs.get("max_memory") is not None:
            kw2["max_memory"] = _size(m.kwargs["max_memory"], f"{where}: dnn_constraints(max_memory")
            kw2["max_memory_source"] = f"marker dnn_constraints(max_memory={m.kwargs['max_memory']!r})"
        if m.kwargs.get("min_fps") is not None:
            kw2["min_fps"] = _fps(m.kwargs["min_fps"], f"{where}: dnn_constraints(min_fps")
            kw2["min_fps_source"] = f"marker dnn_constraints(min_fps={m.kwargs['min_fps']!r})"
        cons = replace(cons, **kw2)
    item.stash[ITEM_KEY] = (tol, cons)
    return tol, cons


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list) -> None:
    """Bad marker values stop the run here, before any model is built."""
    for item in items:
        if item.get_closest_marker("dnn_tolerance") or item.get_closest_marker("dnn_constraints"):
            item_settings(item)


# -- per test ------------------------------------------------------------------------------------

def _baseline_path(gs: GatingState, key: str) -> Optional[Path]:
    b = gs.options.baseline
    if b == "none":
        return None
    if b == "auto":
        return gs.rootpath / "baselines" / f"{key}.json"
    return Path(b)


def _load_cached(gs: GatingState, path: Path) -> Any:
    k = str(path)
    if k not in gs.cache:
        if not path.exists():
            gs.cache[k] = None
        else:
            try:
                gs.cache[k] = load_baseline(path)
            except BaselineError as exc:
                gs.cache[k] = exc
    return gs.cache[k]


def _display(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def baseline_checks(gs: GatingState, record: dict, tol: Tolerances) -> tuple[list[dict], dict]:
    """The baseline checks of one record, and what the record says about its baseline."""
    key = platform_from_record(record)["key"]
    path = _baseline_path(gs, key)
    info: dict = {"key": key, "path": None, "status": "disabled", "rounds": 0}
    if path is None:
        return [], info
    shown = _display(path, gs.rootpath)
    info["path"] = shown
    loaded = _load_cached(gs, path)
    checks: list[dict] = []
    where = f"{record.get('model')} at batch {record.get('batch_size')}"
    if isinstance(loaded, BaselineError):
        info["status"] = "error"
        checks.append({"kind": "baseline", "metric": "file", "limit": None, "measured": None, "passed": False,
                       "message": f"{loaded} (the file was left untouched)"})
        return checks, info
    if loaded is None:
        info["status"] = "no-file"
        info["reason"] = f"no baseline file {shown}"
    elif loaded.key != key:
        info["status"] = "platform-mismatch"
        info["reason"] = f"{shown} is for platform {loaded.key}, this run is {key}"
    else:
        entry = loaded.entry(record["model"], record["batch_size"])
        if entry is None:
            info["status"] = "no-entry"
            info["reason"] = f"{shown} has no entry for {where}"
        else:
            info["status"] = "compared"
            info["rounds"] = len(entry.get("rounds") or []) or 1
            checks = compare_entry(record, entry, tol)
            for c in checks:
                c["baseline_file"] = shown
            info["stale"] = any(c.get("stale") for c in checks)
    if info["status"] != "compared" and gs.options.require:
        checks.append({"kind": "baseline", "metric": "presence", "limit": None, "measured": None, "passed": False,
                       "message": f"no baseline applies to {where}: {info['reason']} (--dnn-require-baseline)"})
    return checks, info


@pytest.hookimpl(trylast=True)
def pytest_dnnbench_record(record: dict, item: pytest.Item) -> None:
    gs = item.config.stash.get(GATING_KEY, None)
    if gs is None:
        return
    tol, cons = item_settings(item)
    constraint_checks = check_constraints(record, cons)
    base_checks, info = baseline_checks(gs, record, tol)
    record.setdefault("checks", [])
    record["checks"].extend(constraint_checks + base_checks)  # in place: pytest-benchmark shares the list
    record["baseline"] = info
    record["tolerances"] = {"latency": tol.latency, "memory": tol.memory, "top1": tol.top1, "alpha": tol.alpha}
    bad_constraints = [c for c in constraint_checks if not c["passed"]]
    bad_baseline = [c for c in base_checks if not c["passed"]]
    if bad_constraints or bad_baseline:
        pytest.fail(failure_message(record, bad_constraints, bad_baseline, info), pytrace=False)


def failure_message(record: dict, bad_constraints: list, bad_baseline: list, info: dict) -> str:
    lines = [f"dnnbench: {record.get('model')} at batch {record.get('batch_size')} failed "
             f"{len(bad_constraints) + len(bad_baseline)} check(s)"]
    if bad_constraints:
        lines.append("deployment constraint violated (too slow or too big for the device):")
        lines += [f"  - {c['message']}" for c in bad_constraints]
    if bad_baseline:
        lines.append(f"baseline regression (against {info.get('path')}):")
        lines += [f"  - {c['message']}" for c in bad_baseline]
    return "\n".join(lines)


# -- at the controller ---------------------------------------------------------------------------

def _regressions(records: list) -> list[tuple[dict, dict]]:
    return [(r, c) for r in records for c in r.get("checks") or []
            if c.get("kind") == "baseline" and not c.get("passed") and c.get("metric") not in ("presence", "file")]


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    from .state import STATE_KEY

    config = session.config
    gs = config.stash.get(GATING_KEY, None)
    state = config.stash.get(STATE_KEY, None)
    if gs is None or state is None or state.is_worker or gs.options.save is None:
        return
    records = [r for r in state.records if (r.get("latency_ms") or {}).get("median")]
    if not records:
        gs.notes.append("baseline not saved: this run produced no benchmark records")
        return
    if exitstatus == pytest.ExitCode.INTERRUPTED:
        gs.notes.append("baseline not saved: the run was interrupted")
        return
    regressions = _regressions(records)
    if regressions and not gs.options.force:
        gs.notes.append(f"baseline not saved: {len(regressions)} regression(s) in this run; a regressed run never "
                        "overwrites the baseline (add --dnn-baseline-force to accept it)")
        return
    groups: dict = {}
    for rec in records:
        plat = platform_from_record(rec, state.environment)
        groups.setdefault(plat["key"], (plat, []))[1].append(rec)
    if gs.options.save != "auto" and len(groups) > 1:
        gs.notes.append(f"baseline not saved: the records come from {len(groups)} platforms "
                        f"({', '.join(groups)}); use --dnn-save-baseline without a path (one file per platform)")
        gs.save_failed = True
    else:
        for key, (plat, recs) in groups.items():
            _save_group(gs, key, plat, recs, bool(regressions))
    if gs.save_failed and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _save_group(gs: GatingState, key: str, plat: dict, recs: list, forced: bool) -> None:
    path = gs.rootpath / "baselines" / f"{key}.json" if gs.options.save == "auto" else Path(gs.options.save)
    shown = _display(path, gs.rootpath)
    existing = None
    if path.exists():
        try:
            existing = load_baseline(path)
        except BaselineError as exc:
            gs.notes.append(f"baseline not saved: {exc} (the file was left untouched)")
            gs.save_failed = True
            return
        if existing.key != key and not gs.options.force:
            gs.notes.append(f"baseline not saved: {shown} is for platform {existing.key}, this run is {key} "
                            "(choose another path, or --dnn-baseline-force to replace its platform)")
            gs.save_failed = True
            return
    doc = merge_records(existing.document if existing else None, recs, plat, max_rounds=gs.options.rounds)
    try:
        save_document(path, doc)
    except (OSError, ValueError) as exc:
        gs.notes.append(f"baseline not saved to {shown}: {exc}")
        gs.save_failed = True
        return
    touched = {(r["model"], int(r["batch_size"])) for r in recs}
    rounds = sorted({len(e["rounds"]) for e in doc["entries"] if (e["model"], e["batch_size"]) in touched})
    kept = len(doc["entries"]) - len(touched)
    gs.saved.append(shown)
    gs.notes.append(f"baseline saved: {shown} ({len(touched)} entr{'y' if len(touched) == 1 else 'ies'} "
                    f"updated, {kept} kept; rounds per updated entry: {', '.join(map(str, rounds))} of at most "
                    f"{doc['max_rounds']}{'; forced despite regressions' if forced else ''})")


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    from .state import STATE_KEY

    gs = config.stash.get(GATING_KEY, None)
    state = config.stash.get(STATE_KEY, None)
    if gs is None or state is None or state.is_worker:
        return
    records = [r for r in state.records if "baseline" in r]
    if not records and not gs.notes:
        return
    tr = terminalreporter
    tr.write_sep("-", "dnnbench: baselines and deployment constraints")
    for line in summary_lines(records, gs):
        tr.write_line(line)


def summary_lines(records: list, gs: GatingState) -> list[str]:
    lines: list[str] = []
    by_status: dict = {}
    for r in records:
        by_status.setdefault(r["baseline"].get("status"), []).append(r)
    compared = by_status.get("compared", [])
    if compared:
        paths = sorted({r["baseline"]["path"] for r in compared})
        lines.append(f"baseline: {', '.join(paths)}: {len(compared)} of {len(records)} result(s) compared")
    missing = [r for r in records if r["baseline"].get("status") in ("no-file", "no-entry", "platform-mismatch")]
    if records and not compared and by_status.get("disabled"):
        lines.append("no baseline applies: baseline checks are off (--dnn-baseline=none)")
    elif missing:
        reasons = sorted({r["baseline"].get("reason", "") for r in missing})
        head = "no baseline applies" if not compared else f"no baseline applies to {len(missing)} result(s)"
        lines.append(f"{head}: {'; '.join(reasons[:3])}{' ...' if len(reasons) > 3 else ''}")
        if gs.options.save is None:
            lines.append("  create one: run the same command with --dnn-save-baseline, five times or more "
                         "(each run adds one round); see docs/baselines.md")
    errors = sorted({c["message"] for r in records for c in r.get("checks") or [] if c.get("metric") == "file"})
    lines += [f"baseline unusable: {m}" for m in errors]
    for r in records:
        for c in r.get("checks") or []:
            if c.get("metric") == "latency" and c.get("stale"):
                lines.append(
                    f"stale baseline: {r['model']} at batch {r['batch_size']} ran {1 / c['ratio']:.2f}x faster than "
                    f"{c.get('baseline_file')} ({c['measured']:.4g} ms against {c['baseline']:.4g} ms): "
                    "refresh it with --dnn-save-baseline"
                )
    regressions = _regressions(records)
    violations = [(r, c) for r in records for c in r.get("checks") or []
                  if c.get("kind") == "constraint" and not c.get("passed")]
    if regressions:
        lines.append(f"baseline regressions: {len(regressions)}")
        lines += [f"  - {c['message']}" for _, c in regressions]
    if violations:
        lines.append(f"deployment constraint violations: {len(violations)}")
        lines += [f"  - {c['message']}" for _, c in violations]
    cons = [c for r in records for c in r.get("checks") or [] if c.get("kind") == "constraint"]
    if cons and not violations:
        lines.append(f"deployment constraints: {len(cons)} check(s) passed")
    lines += gs.notes
    return lines


# -- pytest-benchmark: comparing with the paper ------------------------------------------------

@pytest.hookimpl(wrapper=True, optionalhook=True)
def pytest_benchmark_compare_machine_info(config: pytest.Config, benchmarksession: Any, machine_info: dict,
                                          compared_benchmark: dict) -> Any:
    """The paper's runs (baselines/paper) differ from every machine by design: no warning for that.

    pytest-benchmark warns (a Python warning) when the compared run's ``machine_info`` differs
    from this machine's; under ``-W error`` or ``filterwarnings = error`` that warning would stop
    the run before any test. For the paper's files, whose machine is a 2018 Titan Xp or Jetson
    TX1, it says nothing new, so it is silenced for them alone (other files still warn).
    """
    info = (compared_benchmark or {}).get("machine_info") or {}
    if (info.get("dnnbench") or {}).get("source") != "paper":
        return (yield)
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Benchmark machine_info is different")
        return (yield)


__all__ = ["Baseline", "GatingOptions", "GatingState", "format_bytes", "get_gating", "parse_gating_options",
           "parse_tolerance"]
