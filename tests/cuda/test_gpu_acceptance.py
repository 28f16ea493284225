"""The GPU acceptance script, ``benchmarks/gpu_acceptance.py`` (docs/gpu-acceptance.md).

The script is run on a GPU only when a GPU machine is lent (rarely, for minutes, in two calls),
so the suite runs its ``--cpu`` mode end to end, call A and then call B (which reads call A's
output): the same steps, through the same code, on the CPU with small models. Each call gets
twice its default deadline, so that a loaded machine ends with steps "not run (time limit)"
rather than a FAIL; on a quiet machine every step must run and pass. That keeps the GPU check
from rotting between loans. The other tests here cover the parts a CPU run cannot reach: the
time limit and the decision to start a step, a failing step, the GPU plan's criteria, the
out-of-memory batch for the lent cards, the TF32 verdict, the per-record checks on GPU records,
throttle reasons.

Select these tests with ``-k gpu_acceptance``; the two end-to-end ones take about 110 and 50 s on
2 cores, quiet (``-k "gpu_acceptance and not end_to_end"`` leaves them out).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "gpu_acceptance.py"
#: The end-to-end runs' time limits: twice each call's --cpu default (150 s, 90 s; see the tests).
CALL_A_DEADLINE_S = 300
CALL_B_DEADLINE_S = 180
CALL_A_STEPS = [
    "env-start",
    "cudagraph",
    "lowp",
    "oom",
    "xdist",
    "isolation",
    "compile",
    "main",
    "records",
    "loop",
    "env-end",
]
CALL_B_STEPS = ["env-start", "rerun", "memory", "order", "tf32", "env-end"]
ALL_STEPS = CALL_A_STEPS[:-1] + CALL_B_STEPS[1:]
#: Why a step may legitimately be "not run" in an end-to-end run on a loaded machine.
TIME_LIMIT_REASONS = ("s left, expects", "stopped at its time limit", "did not run")


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gpu_acceptance", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_acceptance"] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


def run_script(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        check=False,
    )


def check_end_to_end(proc: subprocess.CompletedProcess[str], doc: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """What every --cpu call must hold: the call's steps in order, none failed, a step not run only for
    the time limit (and then the exit status says so), and on a quiet machine every step passed."""
    output = proc.stdout[-8000:] + proc.stderr[-3000:]
    steps = {s["name"]: s for s in doc["steps"]}
    assert list(steps) == names, output
    bad = {n: (s["status"], s["summary"]) for n, s in steps.items() if s["status"] not in ("PASS", "n/a")}
    assert not {n: b for n, b in bad.items() if b[0] != "not run (time limit)"}, output
    assert all(any(r in s["summary"] for r in TIME_LIMIT_REASONS) for n, s in steps.items() if n in bad), output
    assert doc["finished"] is True and doc["wall_s"] <= doc["deadline_s"] + 5
    if bad:
        assert proc.returncode == 2 and doc["overall"] == "INCOMPLETE", output
        assert doc["not_run"] == list(bad)
        # Only a machine slow enough to use most of the deadline leaves steps out.
        assert doc["wall_s"] > 0.5 * doc["deadline_s"], output
    else:
        assert proc.returncode == 0 and doc["overall"] == "PASS", output
    assert steps["env-start"]["status"] == "PASS" and steps["env-end"]["status"] == "PASS", output
    # The per-step seconds are printed and written for the next run.
    assert "step seconds (measured; step_seconds.json" in proc.stdout
    assert "versions used (env-start probe" in proc.stdout and "pytest-benchmark" in proc.stdout
    return steps


@pytest.fixture(scope="module")
def call_a(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[subprocess.CompletedProcess[str], Path]]:
    out = tmp_path_factory.mktemp("acc") / "A"
    proc = run_script(
        "--cpu", "--call", "A", "--out", str(out), "--deadline", str(CALL_A_DEADLINE_S), timeout=CALL_A_DEADLINE_S + 60
    )
    yield proc, out


# pytest-xdist: keep the acceptance runs on one worker (call B reads call A's output), away from the others.
@pytest.mark.xdist_group("gpu_acceptance")
def test_gpu_acceptance_end_to_end_cpu_call_a(call_a: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    proc, out = call_a
    doc = json.loads((out / "acceptance.json").read_text())
    assert doc["call"] == "A" and doc["deadline_s"] == CALL_A_DEADLINE_S
    steps = check_end_to_end(proc, doc, CALL_A_STEPS)
    passed = {n for n, s in steps.items() if s["status"] == "PASS"}
    plan = doc["plan"]
    cells = {(m, b) for m in plan["models"] for b in plan["batches"]}
    if "main" in passed:
        assert {(r["model"], r["batch"]) for r in steps["main"]["rows"]} == cells
        assert (out / "main.json").exists() and (out / "report").is_dir()
    if "records" in passed:
        rows = steps["records"]["rows"]
        assert {(r["model"], r["batch"]) for r in rows} == cells
        assert all(r["total_mib"] > 0 and r["memory_method"] for r in rows)
        assert "memory breakdown per main record" in proc.stdout
    if "loop" in passed:
        assert {(r["model"], r["batch"]) for r in steps["loop"]["rows"]} == cells
        assert all(r["verdict"] in ("PASS", "info") and r["ratio"] > 0 for r in steps["loop"]["rows"])
        assert "plugin / loop, interleaved in one process" in proc.stdout
    if "xdist" in passed:
        assert "refused without --dnn-allow-parallel-cpu" in steps["xdist"]["summary"]
    if "oom" in passed:
        oom = steps["oom"]["rows"][0]
        assert oom["outcome"] == "skipped" and "out of memory" in oom["reason"]
        assert oom["activation_gb"] > oom["limit_gb"] and oom["input_gb"] < 0.1
    if "isolation" in passed:
        assert steps["isolation"]["rows"] and all(r["total_mib"] for r in steps["isolation"]["rows"])
    for name in ("cudagraph", "compile"):
        if name in passed:
            assert "CPU rehearsal" in steps[name]["summary"] and steps[name]["rows"]
    seconds = json.loads((out / "step_seconds.json").read_text())
    assert seconds["kind"] == "cpu" and set(seconds["this_call"]) >= passed
    assert "overall:" in (out / "acceptance.txt").read_text()


@pytest.mark.xdist_group("gpu_acceptance")
def test_gpu_acceptance_end_to_end_cpu_call_b(
    call_a: tuple[subprocess.CompletedProcess[str], Path], tmp_path: Path
) -> None:
    """Call B reads call A's output (--after): the main run's records, the steps it did not run, and
    the measured step durations."""
    _, after = call_a
    a_doc = json.loads((after / "acceptance.json").read_text())
    out = tmp_path / "B"
    proc = run_script(
        "--cpu",
        "--call",
        "B",
        "--after",
        str(after),
        "--out",
        str(out),
        "--deadline",
        str(CALL_B_DEADLINE_S),
        timeout=CALL_B_DEADLINE_S + 60,
    )
    doc = json.loads((out / "acceptance.json").read_text())
    assert doc["call"] == "B" and doc["deadline_s"] == CALL_B_DEADLINE_S
    deferred = a_doc["not_run"]
    steps = check_end_to_end(proc, doc, load_script().call_steps("B", deferred))
    passed = {n for n, s in steps.items() if s["status"] == "PASS"}
    assert str(after / "step_seconds.json") in doc["expected_seconds_from"]
    plan = doc["plan"]
    subset = {(m, b) for m in plan["memory_models"] for b in plan["memory_batches"]}
    if "main" not in deferred:
        assert doc["main_records_from"].startswith("call A")
    if "rerun" in passed:
        assert {(r["model"], r["batch"]) for r in steps["rerun"]["rows"]} == subset
        assert "between runs:" in proc.stdout
    if "memory" in passed:
        assert {(r["model"], r["batch"]) for r in steps["memory"]["rows"]} == subset
        assert all(r["fresh_mib"] > 0 and r["record_from"] == "rerun" for r in steps["memory"]["rows"])
        assert "memory total: record (this machine) / fresh process" in proc.stdout
    if "order" in passed:
        row = steps["order"]["rows"][0]
        assert row["model"] == plan["order_model"] and row["ratio"] > 0
    if steps["tf32"]["status"] == "n/a":
        # CUDA-only; the CPU rehearses the same comparison, which must find IEEE fp32.
        assert "CPU rehearsal" in steps["tf32"]["summary"] and "IEEE fp32" in steps["tf32"]["summary"]


def test_gpu_acceptance_time_limit_still_prints_the_table(tmp_path: Path) -> None:
    """Steps that do not fit are "not run (time limit)"; env-end and the table still come; exit 2."""
    out = tmp_path / "acc"
    proc = run_script("--cpu", "--out", str(out), "--deadline", "3", timeout=60)
    doc = json.loads((out / "acceptance.json").read_text())
    status = {s["name"]: s["status"] for s in doc["steps"]}
    assert list(status) == ALL_STEPS
    assert status["env-start"] == "PASS" and status["env-end"] == "PASS", proc.stdout
    assert {status[n] for n in ALL_STEPS[1:-1]} == {"not run (time limit)"}, proc.stdout
    assert "overall: INCOMPLETE" in proc.stdout
    assert proc.returncode == 2


def test_gpu_acceptance_a_step_that_does_not_fit_is_not_run() -> None:
    """A step starts only when its expected duration (measured last, or the plan's default) fits in
    the time left; otherwise it is "not run", never started to be cut into a FAIL."""
    acc = load_script()
    assert acc.start_decision(10.0, 30.0) is None
    assert acc.start_decision(30.0, 30.0) is None
    assert acc.start_decision(45.0, 30.0) == "30 s left, expects 45 s"
    assert acc.start_decision(5.0, -2.0) == "0 s left, expects 5 s"
    # A started step may run to its cap, never less than 1.5x what it is expected to take, never
    # past the time left.
    assert acc.step_budget(10.0, 30.0, 100.0) == 30.0
    assert acc.step_budget(40.0, 30.0, 100.0) == 60.0
    assert acc.step_budget(40.0, 30.0, 50.0) == 50.0


def test_gpu_acceptance_run_all_skips_a_step_whose_measured_duration_exceeds_the_time_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    acc = load_script()
    called: list[str] = []

    def fine(name: str) -> Any:
        def step(ctx: Any, budget: float) -> Any:
            called.append(name)
            return acc.StepResult(name, acc.PASS, "always")

        return step

    monkeypatch.setattr(acc, "STEPS", {n: fine(n) for n in ("env-start", "quick", "slow", "after", "env-end")})
    ctx = acc.Ctx(plan=acc.cpu_plan(deadline_s=60), out=tmp_path, python=sys.executable, t0=acc.time.monotonic())
    # "slow" was measured at 500 s last time (step_seconds.json): it cannot finish in the 60 s left.
    ctx.expected = {"quick": 1.0, "slow": 500.0, "after": 1.0}
    results = acc.run_all(ctx, ["env-start", "quick", "slow", "after", "env-end"])
    assert [(r.name, r.status) for r in results] == [
        ("env-start", "PASS"),
        ("quick", "PASS"),
        ("slow", "not run (time limit)"),
        ("after", "PASS"),
        ("env-end", "PASS"),
    ]
    assert "slow" not in called and "expects 500 s" in results[2].summary
    assert acc.exit_status(results) == 2
    assert ctx.statuses["slow"] == acc.NOT_RUN
    # The measured seconds for the next run: those that ran replace the defaults; "slow" keeps 500.
    seconds = acc.measured_seconds(results, ctx.expected)
    assert seconds["slow"] == 500.0 and seconds["quick"] < 1.0
    # A step cut at its cap needed more than it ran: at least 1.5x that.
    cut = acc.StepResult("loop", acc.NOT_RUN, "", seconds=20.0, cut=True)
    assert acc.measured_seconds([cut], {"loop": 10.0})["loop"] == 30.0
    assert acc.measured_seconds([cut], {"loop": 45.0})["loop"] == 45.0


def test_gpu_acceptance_a_step_cut_at_its_cap_is_not_run_unless_it_failed_before() -> None:
    acc = load_script()
    cut = acc.settle(acc.StepResult("main", acc.PASS, "c", summary="3 records"), [], cut=True)
    assert cut.status == acc.NOT_RUN and cut.cut and "stopped at its time limit" in cut.summary
    failed = acc.settle(acc.StepResult("main", acc.PASS, "c"), ["resnet18 bs1: failed (boom)"], cut=True)
    assert failed.status == acc.FAIL and "boom" in failed.summary
    assert acc.settle(acc.StepResult("tf32", acc.NA, "c"), []).status == acc.NA
    # A run stopped at its limit lacks records: not a problem of its own; a failed record is.
    records = [{"model": "m", "batch_size": 1, "outcome": "failed", "reason": "x"}]
    assert acc.expect_records(records, ["m", "n"], [1], missing_ok=True) == ["m bs1: failed (x)"]
    assert acc.expect_records(records, ["m", "n"], [1]) == ["m bs1: failed (x)", "n bs1: no record"]
    proc = acc.Proc(rc=None, timed_out=True, seconds=30.0, log=Path("x.log"))
    assert acc.proc_problem(proc, "pytest") is None


def test_gpu_acceptance_calls_split_the_steps() -> None:
    acc = load_script()
    assert acc.call_steps("A") == CALL_A_STEPS
    assert acc.call_steps("B") == CALL_B_STEPS
    assert acc.call_steps("all") == ALL_STEPS
    # Call B runs what call A did not: the main run first (rerun compares with it), then its own
    # steps, then the rest of call A's.
    assert acc.call_steps("B", ["loop", "main", "records", "cudagraph"]) == [
        "env-start",
        "main",
        "records",
        "rerun",
        "memory",
        "order",
        "tf32",
        "cudagraph",
        "loop",
        "env-end",
    ]
    assert acc.call_steps("B", ["loop", "env-end"]) == CALL_B_STEPS[:-1] + ["loop", "env-end"]
    assert acc.call_steps("A", ["loop"]) == CALL_A_STEPS
    with pytest.raises(ValueError):
        acc.call_steps("C")
    assert set(acc.STEPS) == set(ALL_STEPS)


def test_gpu_acceptance_call_b_reads_call_a(tmp_path: Path) -> None:
    acc = load_script()
    after = tmp_path / "A"
    after.mkdir()
    steps = [{"name": "main", "status": "PASS"}, {"name": "loop", "status": "not run (time limit)"}]
    (after / "acceptance.json").write_text(json.dumps({"call": "A", "steps": steps, "environment": {"host": "h"}}))
    record = {"model": "resnet18", "batch_size": 64, "mode": "eager", "latency_ms": {"median": 5.0}}
    (after / "main.json").write_text(json.dumps({"environment": {"device_name": "H100"}, "records": [record]}))
    (after / "step_seconds.json").write_text(json.dumps({"kind": "cpu", "steps": {"loop": 33.0}}))
    ctx = acc.Ctx(plan=acc.cpu_plan(call="B"), out=tmp_path, python=sys.executable, t0=acc.time.monotonic())
    assert acc.load_after(ctx, after) == ["loop"]
    assert ctx.main_records[("resnet18", 64)]["latency_ms"]["median"] == 5.0
    assert ctx.main_origin.startswith("call A") and ctx.main_environment["device_name"] == "H100"
    assert ctx.expected_s("loop") == 33.0
    # Figures measured on another kind of machine are not used.
    assert acc.read_step_seconds(after / "step_seconds.json", "gpu") == {}
    (tmp_path / "flat.json").write_text(json.dumps({"main": 40, "bad": "x"}))
    assert acc.read_step_seconds(tmp_path / "flat.json", "gpu") == {"main": 40.0}


def test_gpu_acceptance_a_failing_step_does_not_stop_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    acc = load_script()

    def boom(ctx: Any, budget: float) -> Any:
        raise RuntimeError("injected")

    def fine(ctx: Any, budget: float) -> Any:
        return acc.StepResult("fine", acc.PASS, "always")

    ctx = acc.Ctx(plan=acc.cpu_plan(deadline_s=60), out=tmp_path, python=sys.executable, t0=acc.time.monotonic())
    monkeypatch.setattr(acc, "STEPS", {"first": boom, "second": fine, "env-end": fine})
    results = acc.run_all(ctx, ["first", "second", "env-end"])
    assert [r.status for r in results] == ["FAIL", "PASS", "PASS"]
    assert "RuntimeError: injected" in results[0].summary
    assert acc.exit_status(results) == 1
    table = "\n".join(acc.summary_table(results, ctx))
    assert "overall: FAIL" in table
    assert json.loads((tmp_path / "acceptance.json").read_text())["finished"] is False  # written after each step


def test_gpu_acceptance_gpu_plan_holds_the_issue_criteria() -> None:
    acc = load_script()
    plan = acc.gpu_plan(call="A")
    assert plan.deadline_s == 240 and acc.gpu_plan(call="B").deadline_s == 150 and plan.max_time == 1.0
    assert len(plan.models) == 6 and plan.batches == (1, 64)
    assert "--dnn-cudnn-benchmark=on" in plan.main_args
    assert {"squeezenet1_1", "resnet50", "vgg16", "densenet121"} <= set(plan.models)
    assert (plan.loop_ratio.lo, plan.loop_ratio.hi, plan.loop_min_ms) == (0.97, 1.03, 1.0)
    assert len(plan.memory_models) == 6 and plan.memory_batches == (1, 64)
    assert (plan.memory_ratio.lo, plan.memory_ratio.hi) == (0.95, 1.05)
    assert (plan.rerun_ratio.lo, plan.rerun_ratio.hi, plan.rerun_batch) == (0.95, 1.05, 64)
    assert plan.lowp_precision == "fp16" and plan.graph_mode == "cudagraph" and len(plan.graph_models) == 2
    assert plan.compile_mode == "reduce-overhead" and plan.compile_batches == (1, 8)
    assert len(plan.isolation_models) == 1
    assert (plan.order_first, plan.order_model) == ("vgg16", "resnet18")
    assert plan.pytest_device == "cuda" and "-n" in plan.xdist_args
    assert set(plan.caps) >= set(ALL_STEPS[1:-1]) and set(plan.expected) >= set(ALL_STEPS)
    # Each call's steps, at their expected durations, fit in its default deadline (call B with room for
    # what call A leaves over), on the GPU and on the CPU.
    for make in (acc.gpu_plan, acc.cpu_plan):
        for call in ("A", "B"):
            each = make(call=call)
            own = sum(each.expected[n] for n in acc.call_steps(call))
            assert own <= each.deadline_s - acc.RESERVE_S, (each.kind, call, own)
    assert acc.cpu_plan(call="A").deadline_s == 150 and acc.cpu_plan(call="B").deadline_s == 90
    assert acc.cpu_plan().deadline_s == acc.CPU_DEADLINE_S
    # The CPU caps guard against hangs and grow with the deadline a caller gives (the suite's
    # end-to-end tests give twice the default, so that a loaded machine cannot turn them red).
    assert acc.cpu_plan(deadline_s=60).caps == acc.cpu_plan().caps
    longer = acc.cpu_plan(call="A", deadline_s=300).caps
    assert longer == pytest.approx({name: cap * 2 for name, cap in acc.cpu_plan(call="A").caps.items()})
    assert acc.Range(0.97, 1.03).holds(1.0) and not acc.Range(0.97, 1.03).holds(1.031)
    assert not acc.Range(0.97, 1.03).holds(None)


@pytest.mark.parametrize(
    "card_bytes",
    [80 * 10**9, 80 * 2**30, 81_559 * 2**20, 141 * 10**9, 141 * 2**30, 143_771 * 2**20],
    ids=["80GB", "80GiB", "H100-NVML", "141GB", "141GiB", "H200-NVML"],
)
def test_gpu_acceptance_oom_batch_is_sized_from_the_card(card_bytes: int) -> None:
    """The input stays <= 2.5 GB while the first activation alone is larger than the card."""
    acc = load_script()
    batch = acc.oom_batch(card_bytes)
    assert batch * acc.OOM_INPUT_BYTES <= 2.5e9
    assert batch * acc.OOM_ACTIVATION_BYTES > card_bytes * 1.2
    assert acc.OOM_ACTIVATION_BYTES == 512 * 224 * 224 * 4 and acc.OOM_INPUT_BYTES == 3 * 224 * 224 * 4


def test_gpu_acceptance_oom_batch_refuses_what_vgg16_cannot_do() -> None:
    """VGG-16's first activation is only 21x its input: with the input <= 2.5 GB it reaches 53 GB, less
    than an 80 GB card, which is why the step uses a wider first convolution."""
    acc = load_script()
    assert acc.VGG16_ACTIVATION_BYTES == 64 * 224 * 224 * 4
    with pytest.raises(ValueError, match="exceeds 2.50 GB"):
        acc.oom_batch(80 * 10**9, activation_per_image=acc.VGG16_ACTIVATION_BYTES)
    assert acc.oom_batch(512_000_000) == 7  # the CPU plan's host-memory limit
    with pytest.raises(ValueError):
        acc.oom_batch(0)


def test_gpu_acceptance_tf32_verdict() -> None:
    """IEEE fp32 gives relative errors about 1e-7 to 1e-6 against fp64; TF32 about 1e-4 to 1e-3."""
    acc = load_script()
    ok, text = acc.judge_tf32({"conv": 3.1e-7, "matmul": 2.2e-7}, 3e-5)
    assert ok and "IEEE fp32" in text and "conv 3.1e-07" in text
    ok, text = acc.judge_tf32({"conv": 4.8e-4, "matmul": 2.2e-7}, 3e-5)
    assert not ok and "conv at TF32 level" in text and "matmul at" not in text
    ok, text = acc.judge_tf32({"conv": 4.8e-4, "matmul": 9.9e-4}, 3e-5)
    assert not ok and "conv, matmul at TF32 level" in text
    ok, text = acc.judge_tf32({"conv": None, "matmul": 1e-7}, 3e-5)
    assert not ok and "no figure for conv" in text


def test_gpu_acceptance_tf32_comparison_finds_ieee_fp32_on_the_cpu() -> None:
    acc = load_script()
    errors = acc.numeric_errors("cpu", batch=1, size=256)
    assert set(errors) == {"conv", "matmul"}
    assert all(0 < e < 1e-5 for e in errors.values()), errors
    assert acc.judge_tf32(errors, 3e-5)[0]


def gpu_record(**changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "model": "resnet50",
        "batch_size": 64,
        "memory_bytes": {
            "total": 3000 * 2**20,
            "allocator_peak": 2000 * 2**20,
            "reserved_peak": 2200 * 2**20,
            "context": 520 * 2**20,
        },
        "memory_method": "nvml-process: NVML's figure for this process after the timed calls (NVML PID 4242: new)",
        "gpu_state": {"samples": 12, "during_timed_calls": True, "throttled": False},
        "energy": {"joules_per_image": 0.41, "reason": None},
        "cudnn_benchmark": True,
        "tf32": False,
    }
    record.update(changes)
    return record


def test_gpu_acceptance_record_check_on_gpu_records() -> None:
    """The memory breakdown, gpu_state and energy of a GPU record, judged on stand-ins."""
    acc = load_script()
    row, problems = acc.record_check(gpu_record(), gpu=True, energy_needed=True)
    assert problems == [] and row["verdict"] == "PASS"
    assert row["reserved_minus_allocator_mib"] == 200 and row["context_mib"] == 520
    assert row["memory_method"] == "nvml-process" and row["gpu_state_samples"] == 12
    bad = gpu_record(
        memory_bytes={"total": 100 * 2**20, "allocator_peak": 300 * 2**20, "reserved_peak": 200 * 2**20},
        memory_method="context+reserved: CUDA context + allocator reserved peak",
        gpu_state={"samples": 1, "during_timed_calls": False},
        energy={"joules_per_image": None, "reason": "NVML is not available"},
        cudnn_benchmark=False,
        tf32=True,
    )
    row, problems = acc.record_check(bad, gpu=True, energy_needed=True)
    text = "; ".join(problems)
    for part in (
        "lacks context",
        "reserved_peak < allocator_peak",
        "total < reserved_peak",
        "memory_method context+reserved",
        "during_timed_calls False",
        "energy per image null (NVML is not available)",
        "cudnn_benchmark False",
        "tf32 True",
    ):
        assert part in text, (part, text)
    assert row["verdict"] == "FAIL"
    # Without the counter (energy_needed False) a null energy is not judged; on the CPU only the
    # total and its method are.
    assert acc.record_check(gpu_record(energy={"joules_per_image": None}), gpu=True, energy_needed=False)[1] == []
    cpu = {"model": "m", "batch_size": 1, "memory_bytes": {"total": 10, "delta": 1}, "memory_method": "peak RSS"}
    assert acc.record_check(cpu, gpu=False, energy_needed=False)[1] == []


def fake_pytest(acc: ModuleType, records: list[dict[str, Any]], seen: list[tuple[Any, ...]]) -> Any:
    """A stand-in for run_pytest: a process that exited 0 with ``records``; the calls land in ``seen``."""

    def run(ctx: Any, name: str, models: Any, batches: Any, timeout_s: float, *extra: str, **kw: Any) -> Any:
        seen.append((name, tuple(models), tuple(batches), extra, kw))
        log = ctx.out / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text("")
        return acc.Proc(rc=0, timed_out=False, seconds=1.0, log=log), records

    return run


def test_gpu_acceptance_compile_step_judges_gpu_records(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The GPU compile step on stand-in records: mode compile, the torch.compile mode asked for, each
    output checked against eager (the CPU only rehearses it in eager)."""
    acc = load_script()
    ctx = acc.Ctx(plan=acc.gpu_plan(call="A"), out=tmp_path, python=sys.executable, t0=acc.time.monotonic())
    ctx.help_text = "--dnn-models --dnn-modes --dnn-compile-mode --dnn-isolate"

    def record(batch: int, mode: str = "reduce-overhead", passed: bool = True) -> dict[str, Any]:
        return {
            "model": "squeezenet1_1",
            "batch_size": batch,
            "mode": "compile",
            "outcome": "passed",
            "latency_ms": {"median": 0.4},
            "prepare_s": 21.5,
            "runtime": {"name": "torch.compile", "options": {"backend": "inductor", "mode": mode}},
            "checks": [{"metric": "output", "passed": passed, "measured": 2e-7}],
        }

    seen: list[tuple[Any, ...]] = []
    monkeypatch.setattr(acc, "run_pytest", fake_pytest(acc, [record(1), record(8)], seen))
    res = acc.step_compile(ctx, 60.0)
    assert res.status == "PASS", res.summary
    assert seen[0][3] == ("--dnn-modes=compile", "--dnn-compile-mode=reduce-overhead") and seen[0][2] == (1, 8)
    assert "preparation 21.5-21.5 s" in res.summary
    ctx.main_records = {("squeezenet1_1", 1): {"latency_ms": {"median": 1.2}}}
    acc.fill_from_main([res], ctx)
    assert res.rows[0]["speedup"] == pytest.approx(3.0) and "3.00x" in res.summary
    monkeypatch.setattr(acc, "run_pytest", fake_pytest(acc, [record(1, "default"), record(8, passed=False)], seen))
    res = acc.step_compile(ctx, 60.0)
    assert res.status == "FAIL"
    assert "runtime mode default, expected reduce-overhead" in res.summary
    assert "output check against eager failed" in res.summary


def test_gpu_acceptance_oom_step_sizes_the_batch_from_the_card(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    acc = load_script()
    ctx = acc.Ctx(plan=acc.gpu_plan(call="A"), out=tmp_path, python=sys.executable, t0=acc.time.monotonic())
    card = 81_559 * 2**20
    ctx.environment["gpu_start"] = {"memory_total_bytes": card}
    batch = acc.oom_batch(card)
    skipped = {
        "model": acc.OOM_MODEL,
        "batch_size": batch,
        "outcome": "skipped",
        "reason": f"out of memory at batch {batch} on cuda:0 (OutOfMemoryError: CUDA out of memory.)",
    }
    seen: list[tuple[Any, ...]] = []
    monkeypatch.setattr(acc, "run_pytest", fake_pytest(acc, [skipped], seen))
    res = acc.step_oom(ctx, 30.0)
    assert res.status == "PASS", res.summary
    assert seen[0][1:3] == ((acc.OOM_MODEL,), (batch,)) and seen[0][4]["cwd"] == tmp_path / "work-oom"
    assert acc.OOM_MODEL in (tmp_path / "work-oom" / "conftest.py").read_text()
    assert "def wide_stem" in (tmp_path / "work-oom" / "oom_models.py").read_text()
    row = res.rows[0]
    assert row["input_gb"] < 2.5 and row["activation_gb"] > row["limit_gb"] == pytest.approx(card / 1e9)


def test_gpu_acceptance_versions_block_names_what_ran(tmp_path: Path) -> None:
    acc = load_script()
    ctx = acc.Ctx(plan=acc.gpu_plan(call="A"), out=tmp_path, python=sys.executable, t0=acc.time.monotonic())
    ctx.environment = {
        "torch_version": "2.11.0+cu130",
        "torch_cuda": "13.0",
        "cudnn": 91002,
        "gpu_start": {"driver": "580.95.05", "cuda_driver_version": 13000},
        "probe_versions": {"python": "3.12.3", "pytest": "8.4.2", "pytest-benchmark": "5.3.1", "timm": "1.0.20"},
    }
    ctx.main_environment = {"torch": "2.11.0+cu130", "cudnn": 91002, "driver": "580.95.05", "timm": "1.0.19"}
    text = "\n".join(acc.versions_block(ctx))
    for part in ("torch 2.11.0+cu130", "CUDA (torch) 13.0", "cuDNN 91002", "driver 580.95.05", "python 3.12.3"):
        assert part in text, (part, text)
    for name in ("pytest 8.4.2", "pytest-benchmark 5.3.1", "torchvision", "nvidia-ml-py", "thop"):
        assert name in text
    assert "timm 1.0.20 (results file: 1.0.19)" in text  # a difference between the probe and the run shows


def test_gpu_acceptance_throttle_reasons_are_decoded() -> None:
    acc = load_script()
    assert acc.decode_throttle(None) is None
    assert acc.decode_throttle(0) == ["none"]
    assert acc.decode_throttle(0x1 | 0x4) == ["GpuIdle", "SwPowerCap"]
    assert acc.decode_throttle(0x1000) == ["0x1000"]


def test_gpu_acceptance_reads_the_card_through_nvml(monkeypatch: pytest.MonkeyPatch) -> None:
    """The GPU branch of env-start/env-end, with a stand-in for pynvml (no driver here)."""
    acc = load_script()

    class Mem:
        total, used = 150 * 2**30, 2**30

    class FakeNvml(ModuleType):
        NVML_CLOCK_SM, NVML_CLOCK_MEM, NVML_TEMPERATURE_GPU = 1, 2, 0

        def nvmlInit(self) -> None:
            pass

        def nvmlDeviceGetHandleByIndex(self, index: int) -> str:
            return f"gpu{index}"

        def nvmlDeviceGetName(self, handle: str) -> bytes:
            return b"NVIDIA H200"

        def nvmlSystemGetDriverVersion(self) -> str:
            return "580.159.04"

        def nvmlSystemGetCudaDriverVersion_v2(self) -> int:
            return 13000

        def nvmlDeviceGetMemoryInfo(self, handle: str) -> Mem:
            return Mem()

        def nvmlDeviceGetCurrentClocksEventReasons(self, handle: str) -> int:
            return 0x1

        def nvmlDeviceGetClockInfo(self, handle: str, kind: int) -> int:
            return {1: 1980, 2: 3201}[kind]

        def nvmlDeviceGetMaxClockInfo(self, handle: str, kind: int) -> int:
            return 1980

        def nvmlDeviceGetEnforcedPowerLimit(self, handle: str) -> int:
            return 700_000

        def nvmlDeviceGetPowerUsage(self, handle: str) -> int:
            return 90_000

        def nvmlDeviceGetTemperature(self, handle: str, sensor: int) -> int:
            return 31

        def nvmlDeviceGetPersistenceMode(self, handle: str) -> int:
            raise RuntimeError("not supported")

        def nvmlDeviceGetTotalEnergyConsumption(self, handle: str) -> int:
            return 123_456_789

    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml("pynvml"))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    state = acc.nvml_state()
    assert state["name"] == "NVIDIA H200" and state["driver"] == "580.159.04"
    assert state["sm_clock_mhz"] == 1980 and state["mem_clock_mhz"] == 3201
    assert state["power_limit_w"] == 700.0 and state["throttle_reasons"] == ["GpuIdle"]
    assert state["persistence_mode"] is None and state["energy_counter_mj"] == 123_456_789
    line = acc.state_line(state)
    assert "SM 1980/1980 MHz" in line and "throttle: GpuIdle" in line


def test_gpu_acceptance_plans_name_registry_models() -> None:
    from pytest_dnnbench.registry import REGISTRY

    acc = load_script()
    for plan in (acc.gpu_plan(), acc.cpu_plan()):
        names = (
            set(plan.models)
            | set(plan.memory_models)
            | set(plan.lowp_models)
            | set(plan.graph_models)
            | set(plan.xdist_models)
            | set(plan.isolation_models)
            | set(plan.compile_models)
            | {plan.order_first, plan.order_model}
        )
        assert names <= set(REGISTRY.names()), names - set(REGISTRY.names())
        assert acc.OOM_MODEL not in REGISTRY.names()  # registered by the OOM step's own conftest.py
        assert set(plan.memory_models) <= set(plan.models) and set(plan.memory_batches) <= set(plan.batches)
        assert plan.rerun_batch in plan.memory_batches


def test_gpu_acceptance_a_slow_cold_start_is_not_taken_for_an_old_plugin(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The env-start probe times out and pytest --help is cut off: env-start says so instead of dying,
    and the steps that adapt to the plugin's options fail with the reason, not "n/a" (a pass)."""
    acc = load_script()

    real_run = subprocess.run

    def slow_probe(cmd: Any, *args: Any, **kwargs: Any) -> Any:
        if acc.PROBE in cmd:  # the probe importing torch and the plugin; anything else runs
            raise subprocess.TimeoutExpired(cmd, kwargs.get("timeout", 1))
        return real_run(cmd, *args, **kwargs)

    def cut_help(cmd: Any, log: Path, timeout_s: float, **kwargs: Any) -> Any:
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text("usage: pytest [options]\n")  # killed at its timeout before the plugin's options
        return acc.Proc(rc=None, timed_out=True, seconds=timeout_s, log=log)

    monkeypatch.setattr(acc.subprocess, "run", slow_probe)
    monkeypatch.setattr(acc, "run_logged", cut_help)
    ctx = acc.Ctx(plan=acc.cpu_plan(), out=tmp_path, python=sys.executable, t0=acc.time.monotonic())
    started = acc.step_env_start(ctx, 5.0)
    assert ctx.environment["plugin_file"].startswith("probe failed: importing torch and the plugin took over 5 s")
    assert started.status == acc.FAIL and "--dnn-models" in started.summary
    assert not ctx.help_read
    for step in (acc.step_cudagraph, acc.step_xdist, acc.step_compile, acc.step_isolation):
        res = step(ctx, 5.0)
        assert res.status == acc.FAIL and res.summary == acc.HELP_NOT_READ, res
