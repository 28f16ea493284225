"""The ``--dnn-json`` results file never clobbers, never aborts a run, never loses records.

- it is refused at the start where it is no regular file (a device, a FIFO, a directory), where it is a
  file the run reads or writes otherwise (a baseline, a report file), or where no temporary file can be
  made beside it; it is written through a symlink, the link kept;
- a write that fails during the run is said once, every test still runs, and the records are written at
  the end: to the file, or to a fallback file that the summary names;
- two runs on one file at once: the second one stops with a usage error (the first holds a lock).

Faults are injected by the pytester project's conftest: the real errno (ENOSPC, EACCES), raised from the
call where the system raises it (``os.fsync`` of the temporary file for a full disk, ``tempfile.mkstemp``
in the folder for one that cannot be written), only for the results file's own writes. This works as
root too, where permissions are not enforced.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from helpers import FAST, TINY_CONFTEST, load_json

from pytest_dnnbench.baseline_store import paper_baseline_files

pytest.importorskip("torch")

RUN = [*FAST, "--dnn-threads=1", "-p", "no:cacheprovider"]
REAL_FSYNC, REAL_MKSTEMP = os.fsync, tempfile.mkstemp
#: Four tests of tiny models, each a record.
FOUR = ["--dnn-models=tiny,tiny_wide", "--dnn-batch-sizes=1,2"]

#: Added to the project's conftest: while DNN_FAULT_NAME is set, writes of the file of that name fail with
#: DNN_FAULT_ERRNO at DNN_FAULT_AT (``fsync`` or ``mkstemp``) for the calls numbered DNN_FAULT_CALLS
#: (``"2-"``: the second and later; ``"3-4"``), counted over that file's writes; with DNN_FAULT_FALLBACK the
#: plugin's fallback files (``dnnbench-results-<pid>.json``) fail every time.
FAULTS = """
import errno
import os
import tempfile

_REAL = {"fsync": os.fsync, "mkstemp": tempfile.mkstemp}
_CALLS = {"n": 0}


def _fail_now(name):
    target = os.environ.get("DNN_FAULT_NAME")
    if not target:
        return False
    if os.environ.get("DNN_FAULT_FALLBACK") and ".dnnbench-results-" in name:
        return True
    if not os.path.basename(name).startswith(f".{target}."):
        return False
    _CALLS["n"] += 1
    first, _, last = os.environ["DNN_FAULT_CALLS"].partition("-")
    return int(first) <= _CALLS["n"] and (not last or _CALLS["n"] <= int(last))


def _error(name):
    code = getattr(errno, os.environ["DNN_FAULT_ERRNO"])
    return OSError(code, os.strerror(code), name)


def _fsync(fd):
    name = os.readlink(f"/proc/self/fd/{fd}")
    if _fail_now(name):
        raise _error(name)
    return _REAL["fsync"](fd)


def _mkstemp(suffix=None, prefix=None, dir=None, text=False):
    name = os.path.join(str(dir or ""), str(prefix or "") + "X" + str(suffix or ""))
    if _fail_now(name):
        raise _error(str(dir))
    return _REAL["mkstemp"](suffix, prefix, dir, text)


# Installed while this project's conftest is loaded (before the plugin checks its files), removed at the end.
if os.environ.get("DNN_FAULT_AT") == "fsync":
    os.fsync = _fsync
elif os.environ.get("DNN_FAULT_AT") == "mkstemp":
    tempfile.mkstemp = _mkstemp


def pytest_unconfigure(config):
    os.fsync = _REAL["fsync"]
    tempfile.mkstemp = _REAL["mkstemp"]
"""


def _char_device(where: Path) -> Path:
    """A character device to aim at: a null device made in ``where`` as root (so that a plugin that still
    replaced it could not harm the machine's /dev/null), else /dev/null (which a plain user cannot replace)."""
    if os.geteuid() == 0:
        node = where / "null"
        os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, 3))
        return node
    return Path("/dev/null")


def test_what_stands_at_a_path(tmp_path: Path) -> None:
    """Only a regular file, or nothing (a file can be made there, also at a dangling link's target), is fit."""
    import socket

    from pytest_dnnbench.results import not_a_regular_file

    (tmp_path / "file").write_text("x")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere" / "r.json")
    os.mkfifo(tmp_path / "fifo")
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(tmp_path / "sock"))
        kinds = {name: not_a_regular_file(tmp_path / name) for name in ("file", "missing", "dangling", "fifo", "sock")}
    finally:
        sock.close()
    kinds["dir"] = not_a_regular_file(tmp_path)
    kinds["null"] = not_a_regular_file(Path(os.devnull))
    assert kinds == {
        "file": None,
        "missing": None,
        "dangling": None,
        "fifo": "a FIFO (named pipe)",
        "sock": "a socket",
        "dir": "a directory",
        "null": "a character device",
    }


# -- refused at the start ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["char-device", "link-to-device", "fifo", "directory"])
def test_a_path_that_is_no_regular_file_is_refused_and_left_alone(tiny_project: pytest.Pytester, kind: str) -> None:
    if kind in ("char-device", "link-to-device"):
        thing = _char_device(tiny_project.path)
        expected = "is a character device, not a regular file"
    elif kind == "fifo":
        thing = tiny_project.path / "pipe"
        os.mkfifo(thing)
        expected = "is a FIFO (named pipe), not a regular file"
    else:
        thing = tiny_project.mkdir("out")
        expected = "exists and is not a file"
    given = thing
    if kind == "link-to-device":
        given = tiny_project.path / "r.json"
        given.symlink_to(thing)
    before = os.stat(thing)
    result = tiny_project.runpytest(*RUN, "--dnn-models=tiny", "--dnn-batch-sizes=1", f"--dnn-json={given}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str()
    result.stderr.fnmatch_lines([f"*--dnn-json={given}: *{expected}*"])
    assert "test_dnn" not in result.stdout.str()  # before any test
    after = os.stat(thing)
    assert stat.S_IFMT(after.st_mode) == stat.S_IFMT(before.st_mode)
    assert (after.st_ino, after.st_rdev) == (before.st_ino, before.st_rdev)  # the very same node
    if kind == "link-to-device":
        assert given.is_symlink() and os.readlink(given) == str(thing)


def _baseline(project: pytest.Pytester) -> Path:
    """A valid baseline file in the project (the paper's Titan Xp figures)."""
    path = project.path / "b.json"
    shutil.copyfile(paper_baseline_files()["titan_xp"], path)
    return path


#: What each case's usage error says.
CONFLICTS = {
    "baseline": "*--dnn-json=*b.json: *is the baseline file of --dnn-baseline (*b.json)*",
    "dotted-path": "*--dnn-json=*sub/../b.json: *is the baseline file of --dnn-baseline*",
    "symlink": "*--dnn-json=*link.json: *link.json (a link to *b.json) is the baseline file of --dnn-baseline*",
    "hard-link": "*--dnn-json=*hard.json: *is the baseline file of --dnn-baseline*",
    "save-baseline": "*--dnn-json=*b.json: *is the baseline file of --dnn-save-baseline*",
    "automatic-baseline": "*--dnn-json=*cpu-x-1t-fp32-eager.json: *named as an automatic baseline file*",
    "report": "*--dnn-json=*rep/results.json: *is a file the report of --dnn-report=*rep writes*",
}


@pytest.mark.parametrize("case", list(CONFLICTS))
def test_a_file_the_run_reads_or_writes_otherwise_is_refused_untouched(
    tiny_project: pytest.Pytester, case: str
) -> None:
    base = _baseline(tiny_project)
    original = base.read_bytes()
    p = tiny_project.path
    options = [f"--dnn-baseline={base}"]
    if case == "baseline":
        given = base
    elif case == "dotted-path":
        (p / "sub").mkdir()
        given = p / "sub" / ".." / "b.json"
    elif case == "symlink":
        given = p / "link.json"
        given.symlink_to(base)
    elif case == "hard-link":
        given = p / "hard.json"
        os.link(base, given)
    elif case == "save-baseline":
        given, options = base, [f"--dnn-save-baseline={base}"]
    elif case == "automatic-baseline":
        given, options = p / "baselines" / "cpu-x-1t-fp32-eager.json", ["--dnn-save-baseline"]
    else:
        given, options = p / "rep" / "results.json", [f"--dnn-report={p / 'rep'}"]
    result = tiny_project.runpytest(*RUN, "--dnn-models=tiny", "--dnn-batch-sizes=1", *options, f"--dnn-json={given}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str()
    result.stderr.fnmatch_lines([CONFLICTS[case]])
    assert "test_dnn" not in result.stdout.str()
    assert base.read_bytes() == original  # byte for byte
    if case == "symlink":
        assert given.is_symlink()
    if case in ("automatic-baseline", "report"):
        assert not given.exists()


def test_a_folder_that_takes_no_temporary_file_is_refused_at_the_start(
    tiny_project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file itself may be writable: it is replaced by a temporary file made beside it, which the folder
    must take (here it refuses with EACCES, as a folder without write permission does)."""
    tiny_project.makeconftest(TINY_CONFTEST + FAULTS)
    out = tiny_project.path / "r.json"
    out.write_text("{}\n")
    for name, value in {"NAME": "r.json", "AT": "mkstemp", "ERRNO": "EACCES", "CALLS": "1-"}.items():
        monkeypatch.setenv(f"DNN_FAULT_{name}", value)
    result = tiny_project.runpytest(*RUN, "--dnn-models=tiny", "--dnn-batch-sizes=1", f"--dnn-json={out}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str()
    result.stderr.fnmatch_lines(
        [f"*--dnn-json={out}: no temporary file can be made beside {out} (Permission denied (EACCES))*"]
    )
    assert out.read_text() == "{}\n"
    assert tempfile.mkstemp is REAL_MKSTEMP  # the project's fault injection is gone with its run


# -- written through a symlink ------------------------------------------------------------------------------


def test_a_symlink_is_written_through_and_stays_a_link(tiny_project: pytest.Pytester) -> None:
    data = tiny_project.mkdir("data")
    target = data / "real.json"
    target.write_text("{}\n")
    link = tiny_project.path / "r.json"
    link.symlink_to(target)
    result = tiny_project.runpytest(*RUN, "--dnn-models=tiny", "--dnn-batch-sizes=1", f"--dnn-json={link}")
    result.assert_outcomes(passed=1)
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert [r["model"] for r in load_json(target)["records"]] == ["tiny"]
    result.stdout.fnmatch_lines([f"results: {link} (a link to {target})"])
    # The lock file lies beside the file written, as for baselines, while the run holds it; neither it nor a
    # temporary file is left.
    assert sorted(q.name for q in data.iterdir()) == ["real.json"]
    assert sorted(q.name for q in tiny_project.path.iterdir() if q.name.startswith(".r.json")) == []


# -- a write that fails during the run -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("at", "error", "calls", "fallback_fails"),
    [
        ("fsync", "ENOSPC", "2-", False),  # the disk fills after the first record: the records go to the fallback
        ("mkstemp", "EACCES", "3-4", False),  # records 2 and 3 cannot be written, record 4 can: the file has them all
        ("fsync", "ENOSPC", "2-", True),  # the fallback fails too: said, and the exit status says it
    ],
    ids=["full-disk-fallback", "unwritable-then-recovered", "nowhere"],
)
def test_a_write_failing_mid_run_is_said_once_and_every_test_runs(
    tiny_project: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    at: str,
    error: str,
    calls: str,
    fallback_fails: bool,
) -> None:
    if at == "fsync" and not Path("/proc/self/fd").is_dir():
        pytest.fail("the fsync fault needs /proc (Linux)")
    tiny_project.makeconftest(TINY_CONFTEST + FAULTS)
    out = tiny_project.path / "r.json"
    spare = tiny_project.mkdir("tmp")
    monkeypatch.setattr(tempfile, "tempdir", str(spare))  # the system's temporary folder, for this run
    for name, value in {"NAME": "r.json", "AT": at, "ERRNO": error, "CALLS": calls}.items():
        monkeypatch.setenv(f"DNN_FAULT_{name}", value)
    if fallback_fails:
        monkeypatch.setenv("DNN_FAULT_FALLBACK", "1")
    result = tiny_project.runpytest(*RUN, *FOUR, f"--dnn-json={out}")
    text = result.stdout.str() + result.stderr.str()
    assert "INTERNALERROR" not in text
    result.assert_outcomes(passed=4)  # every test ran
    assert text.count("dnnbench: cannot write the results file") == 1, text
    reason = {"ENOSPC": "No space left on device (ENOSPC)", "EACCES": "Permission denied (EACCES)"}[error]
    fallback = spare / f"dnnbench-results-{os.getpid()}.json"
    if calls == "3-4":  # recovered: the file holds every record, and the summary says what happened
        assert result.ret == pytest.ExitCode.OK
        result.stdout.fnmatch_lines([f"results: {out} (2 writes of {out} failed, the first with {reason}; *)"])
        assert len(load_json(out)["records"]) == 4
        assert not fallback.exists()
    elif not fallback_fails:  # the records are where the summary says, and the exit status is the tests'
        assert result.ret == pytest.ExitCode.OK
        result.stdout.fnmatch_lines(
            [f"results NOT written to {out} ({reason}): every record is in {fallback}; {out} holds 1 of the 4 records"]
        )
        assert len(load_json(fallback)["records"]) == 4
        assert len(load_json(out)["records"]) == 1
    else:
        assert result.ret == pytest.ExitCode.TESTS_FAILED
        result.stdout.fnmatch_lines(
            [f"results NOT written to {out} ({reason}), nor to a fallback file in {spare}*: the records are lost*"]
        )
        assert not fallback.exists()
    assert not [q for q in tiny_project.path.rglob("*.tmp")]
    assert (os.fsync, tempfile.mkstemp) == (REAL_FSYNC, REAL_MKSTEMP)  # the fault injection is gone with its run


# -- two runs on one results file ----------------------------------------------------------------------------


WAITING_TEST = """
import os
import pathlib
import time

from tinymodels import tiny


def test_first(dnn_bench):
    dnn_bench(tiny(), input_size=(3, 16, 16), batch_size=1, name="first")
    pathlib.Path(os.environ["DNN_STARTED"]).write_text("started")
    deadline = time.monotonic() + 120
    while not pathlib.Path(os.environ["DNN_GO"]).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
"""


def test_a_second_run_on_the_same_results_file_is_refused(tiny_project: pytest.Pytester) -> None:
    """A real first run (another process) holds the file's lock for its whole duration; a second run on the
    same file waits a few seconds, then stops naming the file and the first run's PID, and the first run keeps
    its records. Once the first run is over, the file is free again."""
    tiny_project.makepyfile(test_wait=WAITING_TEST)
    out = tiny_project.path / "r.json"
    started, go = tiny_project.path / "started", tiny_project.path / "go"
    env = dict(os.environ, DNN_STARTED=str(started), DNN_GO=str(go))
    env["PYTHONPATH"] = os.pathsep.join([str(tiny_project.path), os.environ.get("PYTHONPATH", "")])
    first = subprocess.Popen(
        [sys.executable, "-m", "pytest", *RUN, f"--dnn-json={out}", "test_wait.py"],
        cwd=tiny_project.path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 120
        while not started.exists():
            if first.poll() is not None or time.monotonic() > deadline:
                first.kill()
                raise AssertionError("the first run did not start its test:\n" + first.communicate()[0].decode())
            time.sleep(0.05)
        second = tiny_project.runpytest(*RUN, "--dnn-models=tiny", "--dnn-batch-sizes=1", f"--dnn-json={out}")
        go.write_text("go")
        stdout, _ = first.communicate(timeout=120)
    finally:
        go.write_text("go")
        if first.poll() is None:
            first.kill()
            first.wait()
        if first.stdout is not None:
            first.stdout.close()
    lock = tiny_project.path / ".r.json.lock"  # beside the file, named as a baseline file's lock
    assert second.ret == pytest.ExitCode.USAGE_ERROR, second.stdout.str()
    second.stderr.fnmatch_lines(
        [
            f"*--dnn-json={out}: another pytest run (pid {first.pid}) is writing its results to {out} "
            f"(it holds the lock {lock}; waited *), * Use a different --dnn-json*"
        ]
    )
    assert "test_dnn" not in second.stdout.str()
    assert first.returncode == pytest.ExitCode.OK, stdout.decode(errors="replace")
    assert [r["model"] for r in load_json(out)["records"]] == ["first"]  # the first run's records, kept
    # Once the first run is over, the file is free; a finished run removes its lock file.
    assert not lock.exists()
    again = tiny_project.runpytest(*RUN, "--dnn-models=tiny", "--dnn-batch-sizes=1", f"--dnn-json={out}")
    again.assert_outcomes(passed=1)
    assert [r["model"] for r in load_json(out)["records"]] == ["tiny"]
