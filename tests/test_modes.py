"""Deployment modes, the pure parts: the output check, the deadline, preparation errors, mode problems."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_dnnbench.measure import modes
from pytest_dnnbench.measure.bench import BenchSettings
from pytest_dnnbench.measure.modes import (
    OUTPUT_TOLERANCE,
    PrepareFailed,
    PrepareTimedOut,
    deadline,
    first_line,
    mode_problem,
    output_check,
    output_figures,
    prepare,
)

torch = pytest.importorskip("torch")


def _logits() -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    return torch.randn((4, 10), generator=gen)


@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16"])
@pytest.mark.parametrize(("factor", "passes"), [(0.5, True), (2.0, False)])
def test_a_perturbation_of_twice_the_tolerance_fails_and_of_half_passes(
    precision: str, factor: float, passes: bool
) -> None:
    ref = _logits()
    limit = OUTPUT_TOLERANCE[precision]
    scale = float(ref.abs().max())
    out = ref.clone()
    out[1, 3] += factor * limit * scale  # one logit moved by factor x the tolerance
    check = output_check("onnxruntime", precision, output_figures(ref, out))
    assert check.passed is passes
    assert check.metric == "output" and check.limit == limit
    assert check.measured == pytest.approx(factor * limit, rel=1e-4)
    assert check.get("max_abs_diff") == pytest.approx(factor * limit * scale, rel=1e-4)
    assert check.get("max_eager_logit") == pytest.approx(scale)
    assert ("differs from eager by" in check.message) and f"limit {limit:g} in {precision}" in check.message


def test_top1_agreement_is_recorded_not_gated() -> None:
    ref = torch.tensor([[1.0, 0.99999], [0.0, 5.0]])
    out = torch.tensor([[0.99999, 1.0], [0.0, 5.0]])  # the first row's arg-max flips on a near tie
    check = output_check("compile", "fp32", output_figures(ref, out))
    assert check.passed
    assert check.get("top1_agreement") == pytest.approx(0.5)
    assert "Top-1 agrees on 50 % of the batch (recorded, not gated)" in check.message


def test_outputs_that_are_not_finite_fail() -> None:
    ref = _logits()
    out = ref.clone()
    out[0, 0] = float("nan")
    check = output_check("openvino", "fp32", output_figures(ref, out))
    assert not check.passed
    assert check.measured is None and "not finite" in check.message


def test_numpy_outputs_and_tuples_are_compared_like_tensors() -> None:
    ref = _logits()
    figures = output_figures((ref,), ref.numpy().copy())
    assert figures["relative"] == 0.0 and figures["top1_agreement"] == 1.0


def test_an_output_of_another_shape_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"shape \(4, 5\), eager's \(4, 10\)"):
        output_figures(_logits(), torch.zeros(4, 5))


@given(st.floats(min_value=0.0, max_value=10.0), st.sampled_from(["fp32", "fp16", "bf16"]))
def test_the_verdict_is_the_relative_difference_against_the_limit(factor: float, precision: str) -> None:
    ref = torch.tensor([[2.0, -4.0, 1.0]])
    limit = OUTPUT_TOLERANCE[precision]
    out = ref.clone()
    out[0, 2] += factor * limit * 4.0
    check = output_check("compile", precision, output_figures(ref, out))
    relative = float((out - ref).abs().max()) / 4.0
    assert check.passed is (relative <= limit)


def test_first_line_names_the_type_and_the_deepest_cause() -> None:
    try:
        try:
            raise ValueError("unsupported operator aten::foo\nmore detail")
        except ValueError as inner:
            raise RuntimeError("export failed") from inner
    except RuntimeError as exc:
        text = first_line(exc)
    assert text == "RuntimeError: export failed (caused by ValueError: unsupported operator aten::foo)"


def test_the_deadline_interrupts_a_block_past_its_time() -> None:
    state = {"fired": False}
    started = time.monotonic()
    with pytest.raises(PrepareTimedOut, match=r"compiling took longer than 0.05 s \(--dnn-prepare-timeout\)"):
        with deadline(0.05, "compiling", state):
            time.sleep(5)
    assert state["fired"] and time.monotonic() - started < 2


def test_the_deadline_leaves_no_alarm_behind() -> None:
    import signal

    before = signal.getsignal(signal.SIGALRM)
    with deadline(10, "x", {"fired": False}):
        pass
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    assert signal.getsignal(signal.SIGALRM) == before


def _tiny() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 5)).eval()


def test_an_error_of_the_preparation_is_a_prepare_failure_with_its_first_line(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise RuntimeError("Failed to export the model\nlong traceback")

    monkeypatch.setattr(modes, "_onnxruntime", refuse)
    with pytest.raises(PrepareFailed, match=r"^onnxruntime: RuntimeError: Failed to export the model$"):
        prepare("onnxruntime", _tiny(), torch.zeros(1, 3, 8, 8), BenchSettings())


def test_a_preparation_past_its_timeout_is_a_timeout_even_when_the_exporter_wraps_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def slow(*args: object, **kwargs: object) -> None:
        try:
            time.sleep(5)
        except PrepareTimedOut as exc:
            raise RuntimeError("the exporter wrapped it") from exc  # as torch's exporters do

    monkeypatch.setattr(modes, "_openvino", slow)
    with pytest.raises(PrepareTimedOut, match=r"preparing openvino took longer than 0.05 s"):
        prepare("openvino", _tiny(), torch.zeros(1, 3, 8, 8), BenchSettings(), timeout_s=0.05)


def test_out_of_memory_during_preparation_propagates_for_the_guard(monkeypatch: pytest.MonkeyPatch) -> None:
    def oom(*args: object, **kwargs: object) -> None:
        raise MemoryError("out of memory")

    monkeypatch.setattr(modes, "_onnxruntime", oom)
    with pytest.raises(MemoryError):
        prepare(
            "onnxruntime",
            _tiny(),
            torch.zeros(1, 3, 8, 8),
            BenchSettings(),
            is_out_of_memory=lambda exc: isinstance(exc, MemoryError),
        )


def test_eager_needs_no_preparation() -> None:
    model = _tiny()
    prepared = prepare("eager", model, torch.zeros(1, 3, 8, 8), BenchSettings())
    assert prepared.forward is model and prepared.prepare_s == 0.0 and prepared.runtime is None


def test_mode_problems() -> None:
    assert mode_problem("eager", "cpu") is None
    assert mode_problem("compile", "cpu") is None
    problem = mode_problem("cudagraph", "cpu")
    assert problem is not None and "needs a CUDA device" in problem and "--dnn-device=cuda" in problem
    problem = mode_problem("openvino", "cuda:0")
    assert problem is not None and "CPU device only" in problem
    assert "unknown mode" in str(mode_problem("tensorrt", "cpu"))


def test_a_missing_runtime_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name.split(".")[0] == "openvino" else real(name, *a)
    )
    problem = mode_problem("openvino", "cpu")
    assert problem is not None and "pytest-dnnbench[openvino]" in problem


ONNX = pytest.importorskip("onnxruntime")


def test_onnxruntime_and_openvino_match_eager_and_free_their_files() -> None:
    pytest.importorskip("openvino")
    torch.manual_seed(0)
    model = _tiny()
    x = torch.randn(2, 3, 8, 8)
    with torch.inference_mode():
        reference = model(x)
    for mode in ("onnxruntime", "openvino"):
        prepared = prepare(mode, model, x, BenchSettings(), threads=1)
        assert prepared.artifact is not None and prepared.artifact.exists()
        assert prepared.prepare_s > 0 and prepared.runtime is not None and prepared.runtime["name"] == mode
        with torch.inference_mode():
            check = output_check(mode, "fp32", output_figures(reference, prepared.forward(x)))
        assert check.passed, check.message
        workdir = prepared.workdir
        prepared.close()
        assert workdir is not None and not workdir.exists()
        with pytest.raises(RuntimeError, match="was closed"):
            prepared.forward(x)


def test_an_unexportable_model_fails_its_preparation_with_the_exporters_reason() -> None:
    class Unexportable(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.linalg.eigvals(x[0, 0]).real.reshape(1, -1)  # no ONNX function for aten.linalg_eig

    with pytest.raises(PrepareFailed) as info:
        prepare("onnxruntime", Unexportable().eval(), torch.ones(1, 3, 4, 4), BenchSettings(), threads=1)
    message = str(info.value)
    assert message.startswith("onnxruntime: ") and "linalg_eig" in message
    assert "\x1b" not in message  # the exporter's colours are left out
