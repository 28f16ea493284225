"""Deployment modes end to end: what a user types (``--dnn-modes`` and its companions) and what comes out."""

from __future__ import annotations

import gc
import importlib.util

import pytest
from helpers import FAST, TINY_CONFTEST, TINY_MODULE, load_json

pytest.importorskip("torch")

RUN = [*FAST, "--dnn-threads=1", "--benchmark-disable", "-p", "no:cacheprovider"]
HAS_ORT = importlib.util.find_spec("onnxruntime") is not None and importlib.util.find_spec("onnxscript") is not None
HAS_OV = importlib.util.find_spec("openvino") is not None
needs_ort = pytest.mark.skipif(not HAS_ORT, reason="the [onnx] extra is not installed")
needs_ov = pytest.mark.skipif(not HAS_OV, reason="the [openvino] extra is not installed")

#: A model torch's ONNX exporter cannot translate (no ONNX function for aten.linalg_eig); eager runs it.
EIG_MODULE = """
import torch


class Eig(torch.nn.Module):
    def forward(self, x):
        return torch.linalg.eigvals(x[:, 0, :4, :4]).real.reshape(x.shape[0], -1)


def eig():
    return Eig()
"""

#: Moves one output of every mode other than eager by FACTOR x the tolerance of the largest output.
PERTURB_HOOK = """
import importlib
import os

import pytest


@pytest.fixture(autouse=True)
def _perturb(monkeypatch):
    factor = float(os.environ.get("DNN_PERTURB", "0"))
    if not factor:
        return
    modes = importlib.import_module("pytest_dnnbench.measure.modes")
    real = modes.prepare

    def prepare(mode, *args, **kwargs):
        prepared = real(mode, *args, **kwargs)
        forward = prepared.forward

        def perturbed(x):
            import torch

            (first,) = forward(x)  # a runtime gives every output: here one
            out = torch.as_tensor(first).clone()
            out.view(-1)[0] += factor * modes.OUTPUT_TOLERANCE["fp32"] * float(out.abs().max())
            return out

        prepared.forward = perturbed
        return prepared

    monkeypatch.setattr(modes, "prepare", prepare)
"""


@pytest.fixture(scope="module", autouse=True)
def _import_the_compilers() -> None:
    """Prepare a tiny model in every CPU mode once, in this process, before any pytester run.

    In-process pytester runs restore ``sys.modules`` afterwards: a module of torch's compiler or
    exporter first imported inside one of them would be imported again by the next, and torch refuses
    to register some of their parts twice ("... already registered").
    """
    import torch

    from pytest_dnnbench.measure.bench import BenchSettings
    from pytest_dnnbench.measure.modes import prepare

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3), torch.nn.Flatten()).eval()
    x = torch.zeros(1, 3, 5, 5)
    for mode in ("compile", *(["onnxruntime"] if HAS_ORT else []), *(["openvino"] if HAS_OV else [])):
        prepare(mode, model, x, BenchSettings(), threads=1).close()
    gc.freeze()  # what they imported lives as long as the process: kept out of every later full collection


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(tinymodels=TINY_MODULE, eigmodels=EIG_MODULE)
    pytester.makeconftest(
        TINY_CONFTEST.rstrip()
        + '\n    registry.register("eig", "eigmodels:eig", input_size=(3, 8, 8))\n'
        + PERTURB_HOOK
    )
    pytester.syspathinsert()
    return pytester


def run(p: pytest.Pytester, *args: str, modes: str, batches: str = "1", models: str = "tiny") -> pytest.RunResult:
    return p.runpytest(
        *RUN, f"--dnn-models={models}", f"--dnn-batch-sizes={batches}", f"--dnn-modes={modes}", "-rs", *args
    )


@needs_ort
@needs_ov
def test_every_cpu_mode_side_by_side_with_its_output_checked(project: pytest.Pytester) -> None:
    result = run(project, "--dnn-json=out.json", "-v", modes="eager,compile,onnxruntime,openvino", batches="1,2")
    result.assert_outcomes(passed=8)
    for cell in ("tiny-bs1", "tiny-bs1-compile", "tiny-bs1-onnxruntime", "tiny-bs2-openvino", "tiny-bs2"):
        result.stdout.fnmatch_lines([f"*test_dnn?{cell}? PASSED*"])
    # the modes side by side in the table, and a legend line for every column and note that appears
    result.stdout.fnmatch_lines(
        [
            "model *batch *mode *ms/image *vs eager *prepare(s)*",
            "tiny *1 *eager *",
            "tiny *1 *compile * out *",
            "tiny *1 *onnxruntime * out *",
            "tiny *1 *openvino * out *",
            "out: max |output - eager's| / max |eager's| on the same batch (fails above 0.001)*",
            "vs eager: *",
            "prepare(s): *",
        ],
        consecutive=False,
    )
    records = load_json(project.path / "out.json")["records"]
    by_cell = {(r["mode"], r["batch_size"]): r for r in records}
    assert sorted(by_cell) == sorted((m, b) for m in ("eager", "compile", "onnxruntime", "openvino") for b in (1, 2))
    for (mode, _), rec in by_cell.items():
        outputs = [c for c in rec["checks"] if c["metric"] == "output"]
        assert "energy" in rec and set(rec["energy"]) >= {"joules_per_image", "watts", "source", "reason"}
        if mode == "eager":
            assert outputs == [] and rec.get("prepare_s") is None
            continue
        assert len(outputs) == 1 and outputs[0]["passed"] and outputs[0]["measured"] <= 1e-3, outputs
        assert outputs[0]["reference"] == "eager"
        assert rec["prepare_s"] > 0
        assert rec["runtime"]["name"] == {"compile": "torch.compile"}.get(mode, mode)
        assert rec["memory_bytes"]["total"] > 0
        if mode in ("onnxruntime", "openvino"):
            # a deployed runtime process, measured directly: no torch in it
            assert rec["memory_method"].startswith("direct:"), rec["memory_method"]
            assert rec["memory_bytes"]["total"] < rec["memory_bytes"]["process_total"]
        if mode == "openvino":
            assert "f32" in str(rec["runtime"]["options"]).lower()


@needs_ort
def test_each_mode_is_saved_and_compared_against_its_own_rounds(project: pytest.Pytester) -> None:
    # One sample makes a round (a round below the minimum is not saved; a loaded machine can leave fewer than three).
    run(project, "--dnn-save-baseline", "--dnn-min-samples=1", modes="eager,onnxruntime").assert_outcomes(passed=2)
    files = sorted(p.name for p in (project.path / "baselines").glob("*.json"))
    assert len(files) == 2 and files[0].endswith("-fp32-eager.json") and files[1].endswith("-fp32-onnxruntime.json")
    # What is tested is which rounds each mode is compared with, not the verdict: a 0.05 ms model's latency
    # against a single round moves by more than the gate's resolution between two processes (and a
    # borderline one would be measured again in fresh processes: --dnn-confirm=0).
    result = run(project, "--dnn-baseline=auto", "--dnn-json=out.json", "--dnn-confirm=0", modes="eager,onnxruntime")
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) + outcomes.get("failed", 0) == 2 and not outcomes.get("errors")
    for rec in load_json(project.path / "out.json")["records"]:
        assert rec["baseline"]["status"] == "compared", rec["baseline"]
        assert all(c["passed"] for c in rec["checks"] if c["metric"] != "latency"), rec["checks"]
        assert rec["baseline"]["key"].endswith(f"-fp32-{rec['mode']}")
        assert rec["baseline"]["path"].endswith(f"-fp32-{rec['mode']}.json")


@needs_ort
@pytest.mark.parametrize(("factor", "passes"), [(0.5, True), (2.0, False)])
def test_a_runtime_output_perturbed_beyond_the_tolerance_fails_the_test(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, factor: float, passes: bool
) -> None:
    monkeypatch.setenv("DNN_PERTURB", str(factor))
    result = run(project, "--dnn-json=out.json", modes="eager,onnxruntime")
    result.assert_outcomes(passed=2 if passes else 1, failed=0 if passes else 1)
    (check,) = [
        c for r in load_json(project.path / "out.json")["records"] for c in r["checks"] if c["metric"] == "output"
    ]
    assert check["passed"] is passes
    assert check["measured"] == pytest.approx(factor * 1e-3, rel=0.05)
    if not passes:
        result.stdout.fnmatch_lines(
            ["*output check failed: onnxruntime output differs from eager by 0.002 of the largest eager output*"]
        )


@needs_ort
def test_an_unexportable_model_is_skipped_with_the_exporters_reason(project: pytest.Pytester) -> None:
    result = run(project, modes="eager,onnxruntime", models="eig")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["SKIPPED*onnxruntime could not be prepared: onnxruntime: *linalg_eig*"])


@needs_ort
def test_a_mode_is_prepared_once_per_model_and_batch_and_freed_with_the_model(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pytest_dnnbench.measure import modes

    made: list[modes.Prepared] = []
    real = modes.prepare

    def counting(mode: str, *args: object, **kwargs: object) -> modes.Prepared:
        prepared = real(mode, *args, **kwargs)  # type: ignore[arg-type]
        made.append(prepared)
        return prepared

    monkeypatch.setattr(modes, "prepare", counting)
    project.makepyfile(
        test_twice="""
        def test_twice(dnn_bench, dnn_model, dnn_batch_size, dnn_mode):
            first = dnn_bench(dnn_model)
            second = dnn_bench(dnn_model)
            assert first["mode"] == second["mode"] == dnn_mode
            assert first["prepare_s"] == second["prepare_s"]  # the same preparation, not a second one
        """
    )
    result = project.runpytest(
        *RUN, "--dnn-models=tiny,tiny_wide", "--dnn-batch-sizes=1,2", "--dnn-modes=onnxruntime", "test_twice.py"
    )
    result.assert_outcomes(passed=4)
    assert len(made) == 4  # (tiny, tiny_wide) x (1, 2), each once although measured twice
    assert all(p.workdir is None for p in made)  # every exported file deleted when its model was replaced


def test_a_preparation_past_its_timeout_is_skipped(project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """The deadline never raises into running code: a preparation that spends its time in garbage-collector
    callbacks (where an exception raised by a signal handler was swallowed as "Exception ignored in
    gc_callback") is skipped cleanly, leaves no unraisable exception behind, and the next test runs."""
    import time

    from pytest_dnnbench.measure import modes

    def slow_compile(model: object, example: object, compile_mode: str) -> modes.Prepared:
        def on_gc(phase: str, info: dict[str, int]) -> None:
            if phase == "start":
                time.sleep(0.05)

        gc.callbacks.append(on_gc)
        try:
            end = time.monotonic() + 1.5
            while time.monotonic() < end:
                gc.collect()
        finally:
            gc.callbacks.remove(on_gc)
        return modes.Prepared("compile", model, 0.0)  # type: ignore[arg-type]

    monkeypatch.setattr(modes, "_compile", slow_compile)
    result = run(
        project,
        "--dnn-prepare-timeout=0.3",
        "-W",
        "error::pytest.PytestUnraisableExceptionWarning",
        modes="eager,compile",
        batches="1,2",
    )
    result.assert_outcomes(passed=2, skipped=2)
    result.stdout.fnmatch_lines(["SKIPPED*preparing compile took longer than 0.3 s (--dnn-prepare-timeout)*"])
    assert "Exception ignored" not in result.stdout.str() + result.stderr.str()
    # the last one was waited for as long as the timeout again, and is still running: the summary says so
    result.stdout.fnmatch_lines(["the preparation of compile abandoned at --dnn-prepare-timeout was still running*"])
    assert modes.wait_for_abandoned(30) == []


def test_a_mode_whose_extra_is_missing_is_a_usage_error(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name.split(".")[0] == "openvino" else real(name, *a)
    )
    result = run(project, modes="eager,openvino")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*--dnn-modes=eager,openvino: mode openvino cannot run here*pytest-dnnbench?openvino?*"]
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dnn-modes=cudagraph"], "*--dnn-modes=cudagraph: mode cudagraph needs a CUDA device (this run is on cpu)*"),
        (["--dnn-modes=eager,tensorrt"], "*--dnn-modes=eager,tensorrt: unknown mode 'tensorrt'. Use eager, compile*"),
        (["--dnn-modes=compile", "--dnn-isolate=process"], "*isolated measurements run eager only*"),
        (
            ["--dnn-modes=eager,onnxruntime", "--dnn-max-host-memory=2GB"],
            "*--dnn-modes=eager,onnxruntime with --dnn-max-host-memory: *runs eager only*",
        ),
        (["--dnn-compile-mode=fastest"], "*--dnn-compile-mode=fastest: unknown torch.compile mode*"),
        (["--dnn-prepare-timeout=soon"], "*--dnn-prepare-timeout=soon: not a duration*"),
    ],
)
def test_bad_mode_options_are_usage_errors(pytester: pytest.Pytester, args: list[str], message: str) -> None:
    result = pytester.runpytest(*FAST, "--dnn-models=resnet18", "--dnn-batch-sizes=1", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_the_ini_twin_selects_modes(project: pytest.Pytester) -> None:
    project.makeini("[pytest]\ndnn_modes = eager,compile\n")
    result = project.runpytest(*RUN, "--dnn-models=tiny", "--dnn-batch-sizes=1", "--collect-only", "-q")
    result.stdout.fnmatch_lines(["*test_dnn?tiny-bs1?", "*test_dnn?tiny-bs1-compile?"])


def test_eager_alone_keeps_todays_ids(project: pytest.Pytester) -> None:
    result = project.runpytest(*RUN, "--dnn-models=tiny", "--dnn-batch-sizes=1,2", "--collect-only", "-q")
    result.stdout.fnmatch_lines(["*test_dnn?tiny-bs1?", "*test_dnn?tiny-bs2?"])
    assert "eager" not in result.stdout.str()


# -- the output check compares every output ------------------------------------------------------------------

#: Models whose output is more than one tensor, or none: (y, y * nan), (y, a counter the export freezes),
#: a dict of tensors, a dict of a str and None, None.
OUTPUT_MODULE = """
import torch


class Outputs(torch.nn.Module):
    def __init__(self, kind):
        super().__init__()
        self.kind = kind
        self.body = torch.nn.Sequential(
            torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 10)
        )
        self.register_buffer("counter", torch.zeros(1))

    def forward(self, x):
        y = self.body(x)
        if self.kind == "nan":
            return y, y * float("nan")
        if self.kind == "counter":
            self.counter += 1000  # eager: 1000, 2000, ...; an exported graph keeps the value it was exported with
            return y, self.counter
        if self.kind == "dict":
            return {"logits": y, "probs": y.softmax(dim=1)}
        if self.kind == "strings":
            return {"label": "cat", "note": None}
        return None


def make(kind):
    return Outputs(kind)
"""

#: DNN_PERTURB_KEY=k: the mode's output[k] is moved by 1.
OUTPUTS_HOOK = """
import importlib
import os

import pytest


@pytest.fixture(autouse=True)
def _outputs(monkeypatch):
    key = os.environ.get("DNN_PERTURB_KEY")
    if not key:
        return
    modes = importlib.import_module("pytest_dnnbench.measure.modes")
    real = modes.prepare

    def prepare(mode, *args, **kwargs):
        prepared = real(mode, *args, **kwargs)
        inner = prepared.forward

        def forward(x):
            out = dict(inner(x))
            out[key] = out[key] + 1.0
            return out

        prepared.forward = forward
        return prepared

    monkeypatch.setattr(modes, "prepare", prepare)
"""


@pytest.fixture
def outputs_project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(outmodels=OUTPUT_MODULE)
    registrations = "".join(
        f'    registry.register("{kind}_out", "outmodels:make", input_size=(3, 8, 8), kwargs={{"kind": "{kind}"}})\n'
        for kind in ("nan", "counter", "dict", "strings", "none")
    )
    pytester.makeconftest("def pytest_dnnbench_register_models(registry, config):\n" + registrations + OUTPUTS_HOOK)
    pytester.syspathinsert()
    return pytester


def _output_checks(p: pytest.Pytester) -> dict[tuple[str, str], dict]:
    return {
        (r["model"], r["mode"]): c
        for r in load_json(p.path / "out.json")["records"]
        for c in r["checks"]
        if c["metric"] == "output"
    }


@needs_ort
def test_a_second_output_of_nan_fails_the_output_check_saying_it_is_eagers(outputs_project: pytest.Pytester) -> None:
    modes = "onnxruntime,openvino" if HAS_OV else "onnxruntime"
    result = run(outputs_project, "--dnn-json=out.json", modes=modes, models="nan_out")
    result.assert_outcomes(failed=len(modes.split(",")))
    out = result.stdout.str()
    for mode in modes.split(","):
        check = _output_checks(outputs_project)[("nan_out", mode)]
        assert not check["passed"] and check["measured"] is None, check
        assert "eager's own output[1] is not finite (NaN)" in check["message"], check["message"]
        assert "Top-1" not in check["message"]
    assert "output check failed: " in out and "eager's own output[1] is not finite (NaN)" in out


@needs_ort
def test_a_second_output_the_export_froze_fails_the_output_check(outputs_project: pytest.Pytester) -> None:
    result = run(outputs_project, "--dnn-json=out.json", modes="onnxruntime", models="counter_out")
    result.assert_outcomes(failed=1)
    check = _output_checks(outputs_project)[("counter_out", "onnxruntime")]
    assert not check["passed"] and "output[1]" in check["message"], check["message"]
    assert "output check failed: onnxruntime output" in result.stdout.str()
    # matched eager on the first call (1000 each), not on the second (2000 against the frozen 1000)
    assert check["message"].startswith(
        "onnxruntime output[1] differs from eager by 0.5 of the largest eager output[1] (max |diff| 1e+03, "
        "max |eager| 2e+03; limit 0.001 in fp32; the worst of 2 outputs)"
    )


@pytest.mark.parametrize(
    ("modes", "env", "passes"),
    [
        ("compile", {}, True),
        ("compile", {"DNN_PERTURB_KEY": "probs"}, False),
        pytest.param("onnxruntime", {}, True, marks=needs_ort),
        pytest.param("openvino", {}, True, marks=needs_ov),
    ],
    ids=["compile", "compile-probs-moved", "onnxruntime", "openvino"],
)
def test_a_dict_output_is_compared_key_by_key(
    outputs_project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, modes: str, env: dict[str, str], passes: bool
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result = run(outputs_project, "--dnn-json=out.json", modes=modes, models="dict_out")
    result.assert_outcomes(passed=1 if passes else 0, failed=0 if passes else 1)
    check = _output_checks(outputs_project)[("dict_out", modes)]
    assert check["passed"] is passes and check["outputs"] == 2, check
    if passes:
        assert check["measured"] <= 1e-3
    else:
        assert check["worst_output"] == "output['probs']"
        assert check["message"].startswith(f"{modes} output['probs'] differs from eager by ")
    assert "Could not infer dtype" not in result.stdout.str()


def test_an_output_without_a_tensor_skips_the_output_check(outputs_project: pytest.Pytester) -> None:
    result = run(outputs_project, "--dnn-json=out.json", modes="compile", models="strings_out,none_out")
    result.assert_outcomes(passed=2)
    checks = _output_checks(outputs_project)
    for model in ("strings_out", "none_out"):
        check = checks[(model, "compile")]
        assert check["passed"] and check["skipped"] is True and check["measured"] is None, check
        assert check["message"] == "output check skipped: no tensor output to compare"
    out = result.stdout.str()
    assert "compile: output check skipped: no tensor output to compare (Outputs at batch 1)" in out
    assert "Traceback" not in out and "Could not infer dtype" not in out
