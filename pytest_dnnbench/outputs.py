"""The files a run reads and writes, checked before anything is built, and where its results went (no pytest).

Before the first model: every file the run will write can be written (:func:`check_outputs`), the results
file is not a file the run reads or writes otherwise, the baseline files and a ``--dnn-weights`` checkpoint
can be read (:func:`check_baseline_files`, :func:`check_weights_file`, :func:`check_automatic_baseline`), and
the results file is locked for the whole run (:func:`lock_results`). What is wrong is raised as a
:class:`UsageProblem`, which the session turns into pytest's usage error. At the end, :func:`results_lines`
says where the results file is, or where its records went when it could not be written.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from .baseline_save import LockTimeout, file_lock, lock_path
from .baseline_store import BaselineError, load_baselines
from .problems import UsageProblem, bad_value, check_writable
from .results import ResultsFile, lock_holder, not_a_regular_file, note_lock_holder, probe_temporary

if TYPE_CHECKING:
    from .gate import BaselineSource
    from .settings import Settings

__all__ = [
    "RESULTS_LOCK_WAIT_S",
    "check_automatic_baseline",
    "check_baseline_files",
    "check_outputs",
    "check_weights_file",
    "fallback_folders",
    "link_note",
    "lock_results",
    "os_error",
    "results_lines",
    "same_file",
]

#: Seconds a run waits for another run's lock on the same ``--dnn-json`` file before it stops with a usage error.
RESULTS_LOCK_WAIT_S = 3.0
#: The names ``--dnn-report`` writes into its folder (``report.build.write_report``, ``report.figures``).
_REPORT_FILE = re.compile(r"results(-\d+)?\.(json|csv)|report\.(md|html)|fig\w*\.png")
#: The names of automatic baseline files (``baselines/<platform key>.json``, ``baseline_store.platform_key``).
_AUTO_BASELINE_FILE = re.compile(r"(cpu|cuda)-.*\.json")


# -- before anything runs -------------------------------------------------------------------------------


def check_outputs(s: Settings) -> None:
    """Every file the run will write can be written: a usage problem now, not a lost measurement later."""
    if s.json_path is not None:
        check_writable(s.json_path, "--dnn-json")
        check_results_file(s, s.json_path)
    if s.report_dir is not None:
        check_writable(s.report_dir, "--dnn-report", directory=True)
    if s.save_baseline == "auto":
        check_writable(s.rootpath / "baselines", "--dnn-save-baseline", directory=True)
    elif s.save_baseline is not None:
        check_writable(Path(s.save_baseline), "--dnn-save-baseline")


def check_results_file(s: Settings, path: Path) -> None:
    """``--dnn-json``: a regular file or a path where one can be made, written through its symlinks, not a
    file this run reads or writes otherwise, in a folder that takes the temporary file of an atomic write."""
    target = Path(os.path.realpath(path))
    where = f"{path}{link_note(path, target)}"
    what = not_a_regular_file(path)
    if what is not None:
        raise bad_value(
            "--dnn-json",
            path,
            f"{where} is {what}, not a regular file, and the results file would replace it",
            "Give the path of a regular file (it is made if missing), e.g. --dnn-json=results.json",
        )
    own_path = "Give the results file a path of its own, e.g. --dnn-json=results.json"
    for option, value in (("--dnn-save-baseline", s.save_baseline), ("--dnn-baseline", s.baseline)):
        if value in (None, "auto", "none", "store"):
            continue
        assert value is not None
        label = option if option == "--dnn-save-baseline" or s.baseline_given else "the ini's dnn_baseline"
        if same_file(target, Path(value)):
            raise bad_value(
                "--dnn-json",
                path,
                f"{where} is the baseline file of {label} ({value}), which this run reads or saves; the results "
                "would replace it",
                own_path,
            )
    auto = s.rootpath / "baselines"
    if (
        "auto" in (s.baseline, s.save_baseline)
        and same_file(target.parent, auto)
        and _AUTO_BASELINE_FILE.fullmatch(target.name)
    ):
        raise bad_value(
            "--dnn-json",
            path,
            f"{where} is named as an automatic baseline file of {auto} (baselines/<platform key>.json), "
            "which this run reads or saves; the results would replace it",
            own_path,
        )
    if s.report_dir is not None and same_file(target.parent, s.report_dir) and _REPORT_FILE.fullmatch(target.name):
        raise bad_value(
            "--dnn-json",
            path,
            f"{where} is a file the report of --dnn-report={s.report_dir} writes; the report would replace it",
            "Give the results file a path outside the report's files, e.g. --dnn-json=results.json "
            f"(the report holds its own copy, {s.report_dir / 'results.json'})",
        )
    try:
        probe_temporary(target)
    except OSError as exc:
        raise bad_value(
            "--dnn-json",
            path,
            f"no temporary file can be made beside {target} ({os_error(exc)}); the results file is written "
            "as a temporary file in its folder, then renamed",
            "Give a path in a folder this user may write",
        ) from None


def lock_results(results: ResultsFile) -> contextlib.ExitStack:
    """Hold the results file's inter-process lock (until the stack is closed): a second run on the same file
    stops now, with a usage problem, instead of replacing the first one's records."""
    stack = contextlib.ExitStack()
    lock = lock_path(results.target)
    try:
        stack.enter_context(file_lock(results.target, RESULTS_LOCK_WAIT_S))
    except LockTimeout:
        pid = lock_holder(lock)
        who = f"another pytest run (pid {pid})" if pid is not None else "another pytest run"
        raise bad_value(
            "--dnn-json",
            results.path,
            f"{who} is writing its results to {results.target} (it holds the lock {lock}; waited "
            f"{RESULTS_LOCK_WAIT_S:g} s), and one of the two runs would lose its records",
            "Use a different --dnn-json for this run, or run it after the other one",
        ) from None
    except OSError as exc:
        why = f"cannot make the lock file {lock} ({os_error(exc)})"
        raise bad_value("--dnn-json", results.path, why, "Give a path this user may write") from None
    note_lock_holder(lock, os.getpid())
    stack.callback(note_lock_holder, lock, None)  # (runs first: the note goes before the lock is released)
    return stack


def check_baseline_files(s: Settings) -> None:
    """An explicit baseline file is checked now, before any model is built; it is never modified on error."""
    for path in sorted({p for p in (s.baseline, s.save_baseline) if p not in (None, "auto", "none", "store")}):
        assert path is not None
        p = Path(path)
        if p.exists() or p.is_symlink():  # a broken or looping link is read, and named as such
            try:
                load_baselines(p)
            except BaselineError as exc:
                if path == s.baseline and s.baseline_given:
                    option = "--dnn-baseline"
                elif path == s.baseline and path != s.save_baseline:
                    option = "the ini's dnn_baseline"
                else:
                    option = "--dnn-save-baseline"
                raise UsageProblem(f"{option}: {exc}. Fix or remove the file (it was left untouched)") from None
        elif path == s.baseline and path != s.save_baseline and s.baseline_given:
            # (named in the ini file instead, a missing file is "no baseline applies", said in the summary)
            raise UsageProblem(
                f"--dnn-baseline={path}: the file does not exist. Create it with --dnn-save-baseline={path} "
                "(one round per run, at least 5 recommended), or use --dnn-baseline=auto"
            )


def check_weights_file(s: Settings) -> None:
    """A checkpoint file named by --dnn-weights is read now: one that cannot be loaded is a usage problem,
    not a silent fall-back to random weights. (A folder of checkpoints is searched per model.)"""
    path = Path(s.weights)
    if s.weights in ("random", "pretrained") or not path.is_file():
        return
    from .accuracy.weights import WeightsUnavailable, read_state_dict

    try:
        read_state_dict(path)
    except (WeightsUnavailable, OSError) as exc:
        raise UsageProblem(
            f"--dnn-weights={path}: {exc}. Give a checkpoint that torch.load (weights_only) or safetensors reads, "
            "or --dnn-weights=random"
        ) from None


def check_automatic_baseline(s: Settings, baselines: BaselineSource) -> None:
    """On the CPU, this run's automatic baseline file is known before any model is built: a corrupt one
    is a usage problem naming it. (On a GPU its name needs the device, which is not touched here: a
    corrupt file is reported with the first test, as an unusable baseline, not a regression.)"""
    if not any((s.rootpath / "baselines").glob("cpu-*.json")):
        return  # no CPU baseline file at all: nothing to check (and no torch to import for its name)
    import torch

    from .baseline_store import platform_key
    from .measure.backends import cpu_model_name
    from .measure.bench import default_threads

    threads = s.threads or default_threads(torch.get_num_threads())
    for mode in s.modes:
        key = platform_key("cpu", cpu_model_name(), threads, s.precision, mode, s.channels_last)
        path = baselines.path_for(key)
        loaded = baselines.load(path) if path is not None else None
        if isinstance(loaded, BaselineError):
            raise UsageProblem(
                f"the automatic baseline of this platform is unusable: {loaded}. Fix or remove the file "
                "(it was left untouched), or run with --dnn-baseline=none"
            )


# -- at the end -----------------------------------------------------------------------------------------


def fallback_folders(results: ResultsFile, rootpath: Path) -> list[Path]:
    """Where the records go when the results file cannot be written at the end: the system's temporary
    folder (writable by design, and often another file system than the project's), then the rootdir."""
    folders = [Path(tempfile.gettempdir()), rootpath]
    return [f for f in folders if not same_file(f, results.target.parent)]


def results_lines(results: ResultsFile, results_at: Path | None, rootpath: Path) -> list[str]:
    """Where the results file is: the summary's line, and what went wrong writing it, if anything
    (``results_at``: where the records were written at the end, None: nowhere)."""
    link = link_note(results.path, results.target)
    if results.error is None:
        return [f"results: {results.path}{link}"]
    failed = f"{results.failures} write{'s' if results.failures != 1 else ''} of {results.path}{link} failed"
    error = os_error(results.error)
    if results_at == results.target:
        return [f"results: {results.path}{link} ({failed}, the first with {error}; it now holds every record)"]
    partial = (
        f"; {results.path} holds {results.written_records} of the {len(results.records)} records"
        if results.written_records is not None
        else ""
    )
    if results_at is not None:
        return [f"results NOT written to {results.path}{link} ({error}): every record is in {results_at}{partial}"]
    tried = ", ".join(str(f) for f in fallback_folders(results, rootpath))
    return [
        f"results NOT written to {results.path}{link} ({error}), nor to a fallback file in {tried}: "
        f"the records are lost{partial}"
    ]


def same_file(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` are one file: the same path through symlinks, or (hard links) the same inode."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return False


def link_note(path: Path, target: Path) -> str:
    """`` (a link to TARGET)`` where ``path`` itself is a symlink (not where a folder above it is one)."""
    return f" (a link to {target})" if os.path.islink(path) else ""


def os_error(exc: OSError) -> str:
    """``No space left on device (ENOSPC)``: what the system said, and its name."""
    name = errno.errorcode.get(exc.errno) if exc.errno is not None else None
    text = exc.strerror or str(exc)
    return f"{text} ({name})" if name else text
