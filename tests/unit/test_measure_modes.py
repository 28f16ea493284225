"""Deployment modes, the pure parts: the output check, the deadline, preparation errors, mode problems."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_dnnbench.measure import modes
from pytest_dnnbench.measure.bench import BenchSettings
from pytest_dnnbench.measure.modes import (
    OUTPUT_TOLERANCE,
    PrepareFailed,
    PrepareTimedOut,
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
    assert check.measured is None
    assert check.message == "the openvino output has non-finite values where eager's is finite (NaN)"
    assert check.get("top1_agreement") is None and check.get("non_finite") == "openvino"


def test_numpy_outputs_and_tuples_are_compared_like_tensors() -> None:
    ref = _logits()
    figures = output_figures((ref,), ref.numpy().copy())
    assert figures["relative"] == 0.0 and figures["top1_agreement"] == 1.0


def test_an_output_of_another_shape_fails_the_check_with_both_shapes() -> None:
    check = output_check("compile", "fp32", output_figures(_logits(), torch.zeros(4, 5)))
    assert not check.passed and check.measured is None
    assert check.message == "compile output does not match eager's: output has shape (4, 5), eager's (4, 10)"


@given(st.floats(min_value=0.0, max_value=10.0), st.sampled_from(["fp32", "fp16", "bf16"]))
def test_the_verdict_is_the_relative_difference_against_the_limit(factor: float, precision: str) -> None:
    ref = torch.tensor([[2.0, -4.0, 1.0]])
    limit = OUTPUT_TOLERANCE[precision]
    out = ref.clone()
    out[0, 2] += factor * limit * 4.0
    check = output_check("compile", precision, output_figures(ref, out))
    relative = float((out - ref).abs().max()) / 4.0
    assert check.passed is (relative <= limit)


# -- every output compared (tuples, lists, dicts, nested; a runtime's flat list) ----------------------------


def test_a_second_output_a_runtime_froze_fails_naming_it() -> None:
    y = _logits()
    # eager's counter moved on (2000), the exported graph kept the value it was exported with (1000)
    figures = output_figures((y, torch.tensor([2000.0])), [y.numpy().copy(), torch.tensor([1000.0]).numpy()])
    check = output_check("onnxruntime", "fp32", figures)
    assert not check.passed and check.measured == pytest.approx(0.5)
    assert check.get("worst_output") == "output[1]" and check.get("outputs") == 2
    assert check.message.startswith(
        "onnxruntime output[1] differs from eager by 0.5 of the largest eager output[1] (max |diff| 1e+03, "
        "max |eager| 2e+03; limit 0.001 in fp32; the worst of 2 outputs); Top-1 agrees on 100 %"
    )


def test_a_nan_in_eagers_own_output_fails_and_says_it_is_eagers() -> None:
    y = _logits()
    figures = output_figures((y, y * float("nan")), [y.numpy().copy(), (y * float("nan")).numpy()])
    check = output_check("onnxruntime", "fp32", figures)
    assert not check.passed and check.measured is None
    assert check.message == (
        "eager's own output[1] is not finite (NaN): the onnxruntime output cannot be checked against it"
    )
    assert "Top-1" not in check.message and check.get("top1_agreement") is None
    assert check.get("non_finite") == "eager" and check.get("worst_output") == "output[1]"


def test_a_nan_in_the_modes_second_output_fails_and_says_it_is_the_modes() -> None:
    y = _logits()
    out = y.clone()
    out[2, 2] = float("inf")
    check = output_check("openvino", "fp32", output_figures((y, y), (y, out)))
    assert not check.passed and check.measured is None and "Top-1" not in check.message
    assert check.message == "the openvino output[1] has non-finite values where eager's is finite (inf)"


def test_dicts_are_compared_by_key_whatever_their_order() -> None:
    y = _logits()
    moved = y + 1
    moved[0, 0] += 0.5
    figures = output_figures({"a": y, "b": y + 1}, {"b": moved, "a": y.clone()})
    assert figures["worst_output"] == "output['b']" and figures["outputs"] == 2
    assert figures["relative"] == pytest.approx(0.5 / float((y + 1).abs().max()))


@pytest.mark.parametrize(
    ("reference", "output", "what"),
    [
        ({"a": 1.0, "b": 2.0}, {"a": 1.0}, "output's keys differ: eager has 'a', 'b', compile has 'a'"),
        ((1.0, 2.0), (1.0, 2.0, 3.0), "output has 3 items, eager's 2"),
        ((1.0, torch.ones(2)), (1.0, None), "output[1] is None, eager's a tensor"),
        ((1.0, {"x": torch.ones(2)}), (1.0, torch.ones(2)), "output[1] is a tensor, eager's a dict of 1 item"),
        ([torch.ones(2, 3), {"x": torch.ones(2, 5)}], [torch.ones(2, 3), {"x": torch.ones(2, 3)}], None),
    ],
)
def test_a_structure_that_differs_fails_saying_what_differs(reference: object, output: object, what: str) -> None:
    check = output_check("compile", "fp32", output_figures(reference, output, mode="compile"))
    expected = what or "output[1]['x'] has shape (2, 3), eager's (2, 5)"
    assert not check.passed and check.measured is None
    assert check.message == f"compile output does not match eager's: {expected}"


def test_a_runtimes_flat_list_is_compared_with_eagers_tensors_in_flattening_order() -> None:
    y = _logits()
    reference = {"z": y * 2, "a": y, "n": None, "b": {"q": y + 1}}  # ONNX Runtime: z, a, q (None left out)
    flat = [(y * 2).numpy(), y.numpy(), (y + 1).numpy()]
    figures = output_figures(reference, flat)
    assert figures["relative"] == 0.0 and figures["outputs"] == 3 and figures["top1_agreement"] == 1.0
    flat[2] = flat[2] + 1.0
    figures = output_figures(reference, flat)
    assert figures["worst_output"] == "output['b']['q']" and figures["relative"] > 0
    check = output_check("openvino", "fp32", output_figures(reference, flat[:2], mode="openvino"))
    assert check.message == (
        "openvino output does not match eager's: openvino gave 2 tensors, eager 3 (output['z'], output['a'], "
        "output['b']['q'])"
    )


@pytest.mark.parametrize("wrap", [lambda a: [a], lambda a: a], ids=["one-element list", "bare array"])
def test_a_runtimes_single_output_matches_a_single_tensor_or_a_one_tuple(wrap: object) -> None:
    y = _logits()
    for reference in (y, (y,)):
        figures = output_figures(reference, wrap(y.numpy().copy()))  # type: ignore[operator]
        assert figures["relative"] == 0.0 and figures["outputs"] == 1 and figures["mismatch"] is None
        check = output_check("onnxruntime", "fp32", figures)
        assert check.passed and "worst of" not in check.message


def test_python_numbers_and_numpy_arrays_are_tensors_too() -> None:
    y = _logits()
    assert output_figures((y, 3, 2.5), (y.numpy(), 3, 2.5))["relative"] == 0.0
    figures = output_figures((y, 3), (y, 4))
    assert figures["worst_output"] == "output[1]" and figures["relative"] == pytest.approx(1 / 3)


@pytest.mark.parametrize("value", [None, "a label", {"a": "x", "b": None}, ("x", None)])
def test_an_output_without_a_tensor_skips_the_check(value: object) -> None:
    check = output_check("compile", "fp32", output_figures(value, value))
    assert check.passed and check.measured is None and check.get("skipped") is True
    assert check.message == "output check skipped: no tensor output to compare"


def test_the_worst_of_several_comparisons() -> None:
    y = _logits()
    same, off = output_figures(y, y), output_figures(y, y * 1.5)
    nan = output_figures(y, y * float("nan"))
    bad = output_figures(y, (y, y))
    skipped = output_figures(None, None)
    assert modes.worst_figures(same, off) is off and modes.worst_figures(off, same) is off
    assert modes.worst_figures(skipped, same) is same
    assert modes.worst_figures(off, nan) is nan and modes.worst_figures(nan, bad, off) is bad


def test_copy_tensors_copies_through_containers() -> None:
    counter = torch.zeros(1)
    copied = modes.copy_tensors({"c": (counter, [counter]), "s": "x"})
    counter += 1
    assert isinstance(copied, dict) and copied["s"] == "x"
    assert float(copied["c"][0]) == 0.0 and float(copied["c"][1][0]) == 0.0
    assert isinstance(copied["c"], tuple) and isinstance(copied["c"][1], list)


_leaf_tensors = st.lists(st.floats(-100, 100, allow_nan=False, width=32), min_size=1, max_size=6).map(
    lambda v: torch.tensor(v).reshape(1, -1) if len(v) % 2 else torch.tensor(v)
)
_structures = st.recursive(
    _leaf_tensors,
    lambda inner: st.one_of(
        st.lists(inner, min_size=1, max_size=3),
        st.lists(inner, min_size=1, max_size=3).map(tuple),
        st.dictionaries(st.text("abc", min_size=1, max_size=2), inner, min_size=1, max_size=3),
    ),
    max_leaves=6,
)


def _map_leaves(value: object, fn: Callable[[int, torch.Tensor], torch.Tensor], counter: list[int]) -> object:
    if isinstance(value, dict):
        return {k: _map_leaves(v, fn, counter) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return type(value)(_map_leaves(v, fn, counter) for v in value)
    counter[0] += 1
    return fn(counter[0] - 1, value)  # type: ignore[arg-type]


def _paths(value: object) -> list[str]:
    return [path for path, _ in modes._leaves(value, "output")]


@given(_structures)
def test_equal_structures_pass_with_nothing_between_them(structure: object) -> None:
    copy = _map_leaves(structure, lambda i, t: t.clone(), [0])
    figures = output_figures(structure, copy)
    assert figures["relative"] == 0.0 and figures["outputs"] == len(_paths(structure)), figures
    assert output_check("compile", "fp32", figures).passed
    flat = [leaf.numpy() for _, leaf in modes._leaves(structure, "output")]  # type: ignore[attr-defined]
    assert output_figures(structure, flat)["relative"] == 0.0  # a runtime's flat list, in the same order


@given(_structures, st.data())
def test_the_one_leaf_perturbed_is_the_worst_named(structure: object, data: st.DataObject) -> None:
    paths = _paths(structure)
    target = data.draw(st.integers(0, len(paths) - 1))
    delta = data.draw(st.floats(1e-2, 10.0))

    def perturb(i: int, t: torch.Tensor) -> torch.Tensor:
        t = t.clone()
        if i == target:
            t.view(-1)[0] += delta
        return t

    figures = output_figures(structure, _map_leaves(structure, perturb, [0]))
    assert figures["worst_output"] == paths[target], (figures, paths)
    check = output_check("compile", "fp32", figures)
    assert check.get("worst_output") == paths[target]
    assert f"compile {paths[target]} differs from eager" in check.message


@given(_structures, st.data())
def test_a_nan_on_either_side_fails_naming_the_side_and_the_output(structure: object, data: st.DataObject) -> None:
    paths = _paths(structure)
    target = data.draw(st.integers(0, len(paths) - 1))
    eager_side = data.draw(st.booleans())

    def poison(i: int, t: torch.Tensor) -> torch.Tensor:
        t = t.clone()
        if i == target:
            t.view(-1)[-1] = float("nan")
        return t

    poisoned = _map_leaves(structure, poison, [0])
    reference, output = (poisoned, structure) if eager_side else (structure, poisoned)
    check = output_check("onnxruntime", "fp32", output_figures(reference, output))
    assert not check.passed and check.measured is None and "Top-1" not in check.message
    if eager_side:
        assert check.message.startswith(f"eager's own {paths[target]} is not finite (NaN)")
    else:
        assert check.message.startswith(f"the onnxruntime {paths[target]} has non-finite values where eager's is")


def test_first_line_names_the_type_and_the_deepest_cause() -> None:
    try:
        try:
            raise ValueError("unsupported operator aten::foo\nmore detail")
        except ValueError as inner:
            raise RuntimeError("export failed") from inner
    except RuntimeError as exc:
        text = first_line(exc)
    assert text == "RuntimeError: export failed (caused by ValueError: unsupported operator aten::foo)"


def test_a_preparation_past_its_deadline_is_abandoned_and_its_result_freed() -> None:
    import threading

    release, closed = threading.Event(), threading.Event()

    def slow() -> modes.Prepared:
        release.wait(10)
        prepared = modes.Prepared("compile", lambda x: x, 0.0)
        prepared._closers.append(closed.set)
        return prepared

    started = time.monotonic()
    with pytest.raises(PrepareTimedOut, match=r"preparing compile took longer than 0.05 s \(--dnn-prepare-timeout\)"):
        modes._run_with_deadline("compile", slow, 0.05)
    assert time.monotonic() - started < 2  # the caller did not wait for the preparation to end
    assert modes.abandoned_running() == ["compile"]
    release.set()
    assert modes.wait_for_abandoned(10) == []
    assert closed.is_set()  # what the abandoned preparation made was freed when it ended


def test_a_preparation_raises_nothing_into_the_waiting_thread() -> None:
    """No signal, no alarm: a deadline cannot land in a garbage-collector callback or a finally block."""
    import gc
    import signal

    seen: list[str] = []

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            time.sleep(0.01)
            seen.append(phase)

    gc.callbacks.append(on_gc)
    try:
        with pytest.raises(PrepareTimedOut):
            modes._run_with_deadline("compile", lambda: (time.sleep(0.3), modes.Prepared("compile", id, 0.0))[1], 0.02)
        for _ in range(5):
            gc.collect()  # would raise (or swallow) a stray PrepareTimedOut if one were pending
    finally:
        gc.callbacks.remove(on_gc)
    assert seen and modes.wait_for_abandoned(5) == []
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_a_failing_preparation_raises_its_own_error_in_the_caller() -> None:
    def broken() -> modes.Prepared:
        raise ValueError("unsupported operator aten::foo")

    with pytest.raises(ValueError, match="aten::foo"):
        modes._run_with_deadline("onnxruntime", broken, 5)
    assert modes.abandoned_running() == []


def _tiny() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 5)).eval()


def test_an_error_of_the_preparation_is_a_prepare_failure_with_its_first_line(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise RuntimeError("Failed to export the model\nlong traceback")

    monkeypatch.setattr(modes, "_onnxruntime", refuse)
    with pytest.raises(PrepareFailed, match=r"^onnxruntime: RuntimeError: Failed to export the model$"):
        prepare("onnxruntime", _tiny(), torch.zeros(1, 3, 8, 8), BenchSettings())


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
