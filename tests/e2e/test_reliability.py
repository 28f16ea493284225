"""Bad input and faults: each is a usage error or a clean end, never an INTERNALERROR or a lost record."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import FAST, TINY_MODULE, as_record, load_json, reap
from test_robustness import FAULTY_CONFTEST, FAULTY_MODULE, _wait_for

from pytest_dnnbench.problems import MAX_SHOWN
from pytest_dnnbench.settings import OPTIONS, Settings

# -- absurd values in every option --------------------------------------------------------------------

ABSURD = ["9" * 400, "1e999", "-1e999", "nan", "inf", "-0", "x" * 5000, "1" + "0" * 5000, "1e400GB", "0x10", "１"]
VALUE_OPTIONS = [o for o in OPTIONS if o.kind == "value" and o.flag not in ("--dnn-models", "--dnn-imagenet")]


@pytest.mark.parametrize("option", VALUE_OPTIONS, ids=lambda o: o.flag)
def test_every_option_parses_or_is_a_short_usage_error(pytester: pytest.Pytester, option: object) -> None:
    flag = option.flag  # type: ignore[attr-defined]
    for value in ABSURD:
        config = pytester.parseconfig(f"{flag}={value}", "-p", "no:cacheprovider")
        try:
            Settings.from_config(config)
        except pytest.UsageError as exc:
            msg = str(exc)
            assert msg.startswith(f"{flag}=") and len(msg) < 700, msg  # names the option; a long value is cut
            assert len(value) < 100 or msg.count(value[: MAX_SHOWN - 3]) <= 1, msg  # a long value: once, cut


def test_absurd_marker_values_are_usage_errors(tiny_project: pytest.Pytester) -> None:
    tiny_project.makepyfile(
        test_m="""
        import pytest

        @pytest.mark.dnn_tolerance(latency=10**400)
        def test_a(dnn_bench):
            pass

        @pytest.mark.dnn_constraints(min_fps="1e999", max_memory="1e400GB")
        def test_b(dnn_bench):
            pass
        """
    )
    result = tiny_project.runpytest(*FAST, "test_m.py")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    result.stderr.fnmatch_lines(["*test_a*dnn_tolerance(latency=*"])


# -- empty --dnn-models -----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["", "  "])
def test_an_explicit_empty_model_list_is_a_usage_error(tiny_project: pytest.Pytester, value: str) -> None:
    result = tiny_project.runpytest(*FAST, f"--dnn-models={value}", "--dnn-require-baseline")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--dnn-models=*: no model given. Name models*"])


def test_an_empty_ini_model_list_stays_off(tiny_project: pytest.Pytester) -> None:
    tiny_project.makeini("[pytest]\ndnn_models =\n")
    tiny_project.makepyfile(test_plain="def test_a():\n    pass\n")
    tiny_project.runpytest(*FAST).assert_outcomes(passed=1)


# -- output paths checked when the run starts ------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "make", "expected"),
    [
        ("--dnn-json", "dir", "*--dnn-json=*out: *out exists and is not a file*"),
        ("--dnn-json", "under-file", "*--dnn-json=*blocker/r.json: *blocker is a file, so*cannot be made*"),
        ("--dnn-report", "file", "*--dnn-report=*out: *out exists and is not a directory*"),
        ("--dnn-report", "under-file", "*--dnn-report=*blocker/r.json: *blocker is a file*"),
        ("--dnn-save-baseline", "dir", "*--dnn-save-baseline=*out: *out exists and is not a file*"),
    ],
)
def test_unwritable_output_paths_stop_the_run_before_any_model(
    tiny_project: pytest.Pytester, option: str, make: str, expected: str
) -> None:
    if make == "dir":
        target = tiny_project.mkdir("out")
    elif make == "file":
        target = tiny_project.path / "out"
        target.write_text("x")
    else:
        (tiny_project.path / "blocker").write_text("x")
        target = tiny_project.path / "blocker" / "r.json"
    result = tiny_project.runpytest(*FAST, "--dnn-models=tiny", "--dnn-batch-sizes=1", f"{option}={target}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str()
    result.stderr.fnmatch_lines([expected])
    assert "test_dnn" not in result.stdout.str()


def test_the_results_file_is_written_when_every_test_is_skipped(tiny_project: pytest.Pytester) -> None:
    out = tiny_project.path / "r.json"
    result = tiny_project.runpytest(*FAST, "--dnn-models=broken", "--dnn-batch-sizes=1", f"--dnn-json={out}")
    assert result.ret != pytest.ExitCode.INTERNAL_ERROR
    data = load_json(out)
    assert data["records"] == []
    assert [(m["model"], m["batch_size"]) for m in data["missing"]] == [("broken", 1)]
    assert data["missing"][0]["reason"]


def test_a_bad_save_baseline_file_is_named_as_such(tiny_project: pytest.Pytester) -> None:
    bad = tiny_project.path / "b.json"
    bad.write_text("{")
    result = tiny_project.runpytest(*FAST, "--dnn-models=tiny", f"--dnn-save-baseline={bad}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--dnn-save-baseline: baseline file*b.json is truncated*"])


# -- SIGTERM to a pytest-xdist controller -----------------------------------------------------------------


def test_sigterm_to_an_xdist_controller_ends_the_run_like_ctrl_c(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(tinymodels=TINY_MODULE, faultymodels=FAULTY_MODULE)
    pytester.makeconftest(FAULTY_CONFTEST)
    out = pytester.path / "r.json"
    marker = pytester.path / "sleeping"
    env = dict(
        os.environ,
        DNN_SLEEP_MARKER=str(marker),
        PYTHONPATH=os.pathsep.join([str(pytester.path), os.environ.get("PYTHONPATH", "")]),
    )
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        *FAST,
        "-n",
        "2",
        "--dnn-allow-parallel-cpu",
        "--dnn-models=tiny,sleepy",
        "--dnn-batch-sizes=1,2",
        f"--dnn-json={out}",
        "-p",
        "no:cacheprovider",
    ]
    proc = subprocess.Popen(cmd, cwd=pytester.path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        _wait_for(marker.exists, timeout=120)  # one worker is inside sleepy's forward
        _wait_for(lambda: out.exists() and len(load_json(out)["records"]) >= 2, timeout=60)
        before = {(r["model"], r["batch_size"]) for r in load_json(out)["records"]}
        proc.send_signal(signal.SIGTERM)
        stdout, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = stdout.decode(errors="replace")
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, text
    assert "KeyboardInterrupt" in text or "Interrupted" in text, text
    data = load_json(out)  # valid JSON with what was completed
    assert {(r["model"], r["batch_size"]) for r in data["records"]} >= before  # nothing completed is lost
    assert not list(Path(pytester.path).glob(".r.json.*.tmp"))


# -- the host-memory guard ----------------------------------------------------------------------------------


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the host-memory guard needs Linux RLIMIT_DATA")
@pytest.mark.parametrize(
    "limit",
    [
        ["--dnn-threads=32", "--dnn-max-host-memory=200MB"],
        ["--dnn-max-host-memory=30MB"],
        ["--dnn-max-host-memory=50MB"],
    ],
    ids=["32-threads-200MB", "30MB", "50MB"],
)
def test_the_host_memory_guard_only_ever_skips_the_breaching_test(
    tiny_project: pytest.Pytester, limit: list[str]
) -> None:
    """The reproductions that used to end the run (libgomp's thread creation, a segfault) or fail a test
    with a torch error: the measurement runs in a child that holds the limit."""
    out = tiny_project.path / "r.json"
    result = tiny_project.runpytest(
        *FAST, "-rs", "--dnn-models=tiny,squeezenet1_1", "--dnn-batch-sizes=1", f"--dnn-json={out}", *limit
    )
    text = result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.OK, text
    assert "INTERNALERROR" not in text
    data = load_json(out)
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) + outcomes.get("skipped", 0) == 2 and not outcomes.get("failed")
    assert len(data["records"]) == outcomes.get("passed", 0)
    for missing in data.get("missing", []):
        assert missing["outcome"] == "skipped" and missing["reason"].startswith("out of memory at batch 1 on cpu")
        assert "host-memory limit of" in missing["reason"]
    if limit == ["--dnn-max-host-memory=30MB"]:
        assert [r["model"] for r in data["records"]] == ["tiny"]  # squeezenet1_1 breached, tiny did not


def test_a_native_crash_under_the_limit_counts_as_out_of_memory() -> None:
    from pytest_dnnbench.isolated import _caused_by_memory, died_of_the_memory_limit

    assert died_of_the_memory_limit(-signal.SIGSEGV, "")
    assert died_of_the_memory_limit(
        -signal.SIGABRT, "libgomp: Thread creation failed: Resource temporarily unavailable"
    )
    assert died_of_the_memory_limit(1, "terminate called after throwing an instance of 'std::bad_alloc'")
    assert not died_of_the_memory_limit(3, "ValueError: the model is broken")
    try:
        try:
            raise MemoryError
        except MemoryError as inner:
            raise RuntimeError("unexpected pos 294080 vs 146512") from inner
    except RuntimeError as exc:
        assert _caused_by_memory(exc)
    assert not _caused_by_memory(RuntimeError("shape mismatch"))


# -- the report command -----------------------------------------------------------------------------------


def _results(path: Path, records: list[object]) -> Path:
    import json

    path.write_text(json.dumps({"schema": "pytest-dnnbench/1", "environment": {"device": "cpu"}, "records": records}))
    return path


GOOD = {"model": "resnet18", "batch_size": 1, "latency_ms": {"median": 20.0}, "memory_bytes": {"total": 10**9}}


@pytest.mark.parametrize("make", ["file", "under-file"])
def test_report_command_refuses_an_out_that_is_not_a_directory(tmp_path: Path, make: str, capsys) -> None:
    from pytest_dnnbench.__main__ import main

    src = _results(tmp_path / "r.json", [GOOD])
    (tmp_path / "f").write_text("x")
    out = tmp_path / "f" if make == "file" else tmp_path / "f" / "rep"
    assert main(["report", str(src), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --out {out}: ") and "Traceback" not in err


def test_report_command_names_junk_records_and_writes_nothing_from_junk_alone(tmp_path: Path, capsys) -> None:
    from pytest_dnnbench.__main__ import main

    junk = _results(tmp_path / "junk.json", [1, {"model": "x"}, {"model": "y", "batch_size": 0, "latency_ms": {}}])
    assert main(["report", str(junk), "--out", str(tmp_path / "rep")]) == 2
    err = capsys.readouterr().err
    assert "record 0 is left out: not a JSON object but int" in err
    assert "record 1 is left out: 'batch_size' must be a positive integer" in err
    assert "none of its 3 record(s) can be used" in err
    assert not (tmp_path / "rep").exists()
    mixed = _results(tmp_path / "mixed.json", [GOOD, {"model": "x"}])
    assert main(["report", str(mixed), "--out", str(tmp_path / "rep2")]) == 0
    assert "record 1 is left out" in capsys.readouterr().err
    assert (tmp_path / "rep2" / "report.md").exists()


# -- corrupt inputs ---------------------------------------------------------------------------------------


def test_a_weights_file_that_cannot_be_loaded_is_a_usage_error(tiny_project: pytest.Pytester) -> None:
    bad = tiny_project.path / "w.pt"
    bad.write_bytes(b"PK\x03\x04 not really a checkpoint")
    result = tiny_project.runpytest(*FAST, "--dnn-models=tiny", "--dnn-batch-sizes=1", f"--dnn-weights={bad}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*--dnn-weights={bad}: cannot read {bad} as a checkpoint*"])


def test_a_corrupt_automatic_baseline_is_a_usage_error_naming_it(tiny_project: pytest.Pytester) -> None:
    # One sample is enough for a round here: on a loaded machine FAST's 0.3 s budget left the round with fewer than
    # three, and such a round is not saved.
    saving = [*FAST, "--dnn-min-samples=1", "--dnn-models=tiny", "--dnn-batch-sizes=1", "--dnn-save-baseline"]
    tiny_project.runpytest(*saving).assert_outcomes(passed=1)
    (saved,) = (tiny_project.path / "baselines").glob("*.json")
    saved.write_text("{")  # corrupt the automatic baseline
    result = tiny_project.runpytest(*FAST, "--dnn-models=tiny", "--dnn-batch-sizes=1")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [f"*automatic baseline of this platform is unusable: baseline file *{saved.name} is truncated*"]
    )
    assert saved.read_text() == "{"  # left untouched


def test_an_unusable_baseline_is_not_reported_as_a_regression() -> None:
    """(On a GPU the automatic file is first read by the first test.)"""
    from pytest_dnnbench.gate import failure_message
    from pytest_dnnbench.record import Check

    unusable = Check.make(kind="baseline", metric="file", passed=False, message="baseline file x.json is truncated")
    slower = Check.make(kind="baseline", metric="latency", passed=False, message="1.50x the baseline")
    text = failure_message(as_record({"model": "m", "batch_size": 1}), [], [unusable], {"path": "x.json"})
    assert "no usable baseline (not a regression):\n  - baseline file x.json is truncated" in text
    assert "baseline regression" not in text
    both = failure_message(as_record({"model": "m", "batch_size": 1}), [], [slower, unusable], {"path": "x.json"})
    assert "baseline regression (against x.json):\n  - 1.50x the baseline" in both


# -- a test that kills its pytest-xdist worker --------------------------------------------------------------

CRASH_MODULE = """
import ctypes
import os

from torch import nn


class Exits(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        os._exit(3)


class Segv(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        ctypes.string_at(0)


def exits():
    return Exits()


def segv():
    return Segv()


def ok():
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten())
"""

CRASH_CONFTEST = """
def pytest_dnnbench_register_models(registry, config):
    for name in ("exits", "segv"):
        registry.register(name, f"crashmodels:{name}", input_size=(3, 16, 16))
    registry.register("ok1", "crashmodels:ok", input_size=(3, 16, 16))
    registry.register("ok2", "crashmodels:ok", input_size=(3, 16, 16))
"""


#: Two orders (a crash first, between passing tests; and last): not every order, at 17 s each on 2 cores.
CRASH_ORDERS = ["exits,ok1,segv,ok2", "ok1,ok2,exits,segv"]


@pytest.fixture(scope="module")
def crash_runs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Each order's run (its stdout, then its stderr), the two started side by side: a run is mostly its workers
    starting again (a Python process importing torch, one core each), so two overlap well. Each in a project of
    its own, with the environment pytester gives its runs (no outer PYTEST_ADDOPTS, a home of its own)."""
    test = test_a_test_that_kills_its_worker_fails_once_and_the_run_goes_on.__name__
    # Only the orders this session runs (-k may leave one out).
    items = [item for item in request.session.items if getattr(item, "originalname", None) == test]
    selected = {item.callspec.params["order"] for item in items}
    procs: dict[str, subprocess.Popen[str]] = {}
    try:
        for order in [o for o in CRASH_ORDERS if o in selected]:
            path = tmp_path_factory.mktemp("crash")
            (path / "crashmodels.py").write_text(CRASH_MODULE)
            (path / "conftest.py").write_text(CRASH_CONFTEST)
            env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_ADDOPTS", "TOX_ENV_DIR")}
            env.update(HOME=str(path), USERPROFILE=str(path), PY_COLORS="0")
            env["PYTHONPATH"] = os.pathsep.join([str(path), os.environ.get("PYTHONPATH", "")])
            cmd = [
                sys.executable,
                "-m",
                "pytest",
                *FAST,
                "-n",
                "2",
                "--dnn-allow-parallel-cpu",
                f"--dnn-models={order}",
                "--dnn-batch-sizes=1,8",
                "-p",
                "no:cacheprovider",
                "-rf",
            ]
            procs[order] = subprocess.Popen(
                cmd, cwd=path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
        yield {order: "".join(proc.communicate(timeout=300)) for order, proc in procs.items()}
    finally:
        reap(procs.values())


# pytest-xdist: both orders on one worker, which starts both runs once.
@pytest.mark.xdist_group("crash_runs")
@pytest.mark.parametrize("order", CRASH_ORDERS)
def test_a_test_that_kills_its_worker_fails_once_and_the_run_goes_on(crash_runs: dict[str, str], order: str) -> None:
    text = crash_runs[order]
    assert "INTERNALERROR" not in text, text[-3000:]
    failed = sorted(line.split(" ")[1].split("::")[-1] for line in text.splitlines() if line.startswith("FAILED "))
    assert failed == ["test_dnn[exits-bs1]", "test_dnn[exits-bs8]", "test_dnn[segv-bs1]", "test_dnn[segv-bs8]"], text
    assert "4 failed, 4 passed" in text, text[-2000:]
    assert "maximum crashed workers reached" not in text
