"""The paper's 44 networks build, run, and are counted right (random weights, CPU, batch 1).

Each model is built once, run once at batch 1 and its own input size, counted (thop on a deep
copy, FlopCounterMode, parameters, state_dict size) and freed; the tests then assert on the
recorded figures, so a failure names the model. torchvision's published ``num_params`` and
``_ops`` (GMACs) of the ``IMAGENET1K_V1`` weights the paper used are the references.
"""

from __future__ import annotations

import gc
import importlib.util
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
import torch

from pytest_dnnbench.measure.flops import (
    DISAGREEMENT,
    Complexity,
    count_params,
    counters_disagree,
    flop_counter_macs,
    measure_complexity,
    thop_counts,
    thop_macs,
)
from pytest_dnnbench.registry import REGISTRY, ModelUnavailable, build_model


@pytest.fixture(autouse=True, scope="module")
def _flush_denormals() -> Iterator[None]:
    """Random weights make denormals; flush them while this module's models run (as the plugin does), and
    only then: set at import, the flag leaked into every later test (Hypothesis cannot draw subnormal floats)."""
    torch.set_flush_denormal(True)
    yield
    torch.set_flush_denormal(False)


PAPER = REGISTRY.paper_names()
TORCHVISION = [n for n in PAPER if REGISTRY.get(n).source == "torchvision"]
OTHERS = [n for n in PAPER if REGISTRY.get(n).source != "torchvision"]
THOP_BUFFERS = ("total_ops", "total_params")


@dataclass(frozen=True)
class Measured:
    output_shape: tuple[int, ...]
    output_finite: bool
    complexity: Complexity
    state_keys_before: tuple[str, ...]
    state_keys_after: tuple[str, ...]
    thop_leftovers: tuple[str, ...]
    hooks_before: int
    hooks_after: int
    training_after: bool
    state_tensor_bytes: int  # bytes of every tensor in the state_dict (parameters and buffers)
    state_entries: int


def _hooks(model: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def _build(name: str) -> tuple[torch.nn.Module, torch.Tensor]:
    spec = REGISTRY.get(name)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = build_model(spec).eval()
        example = torch.randn(1, *spec.input_size)
    return model, example


def _measure(name: str) -> Measured:
    model, example = _build(name)
    try:
        with torch.inference_mode():
            out = model(example)
        shape, finite = tuple(out.shape), bool(torch.isfinite(out).all())
        del out
        keys_before = tuple(model.state_dict())
        hooks_before = _hooks(model)
        complexity = measure_complexity(model, example)  # thop on a deep copy, then FlopCounterMode
        state = model.state_dict()
        return Measured(
            output_shape=shape,
            output_finite=finite,
            complexity=complexity,
            state_keys_before=keys_before,
            state_keys_after=tuple(state),
            thop_leftovers=tuple(n for n, _ in model.named_buffers() if n.rsplit(".", 1)[-1] in THOP_BUFFERS),
            hooks_before=hooks_before,
            hooks_after=_hooks(model),
            training_after=model.training,
            state_tensor_bytes=sum(t.numel() * t.element_size() for t in state.values()),
            state_entries=len(state),
        )
    finally:
        del model, example
        gc.collect()


@pytest.fixture(scope="module")
def measured() -> Callable[[str], Measured]:
    """name -> figures of that model, each model built and run once per module, then freed."""
    cache: dict[str, object] = {}

    def get(name: str) -> Measured:
        spec = REGISTRY.get(name)
        if spec.source == "pretrainedmodels" and importlib.util.find_spec("pretrainedmodels") is None:
            pytest.skip(
                f"{name} comes from Cadene's pretrainedmodels, not installed here (pip install pretrainedmodels six)"
            )
        if name not in cache:
            try:
                cache[name] = _measure(name)
            except Exception as exc:  # every test of this model fails with the same error
                cache[name] = exc
        result = cache[name]
        if isinstance(result, Exception):
            raise result
        return result

    yield get
    cache.clear()


def _meta(name: str) -> dict:
    from torchvision.models import get_model_weights

    return get_model_weights(REGISTRY.get(name).builder).IMAGENET1K_V1.meta


def test_model_lists() -> None:
    assert len(PAPER) == 44
    assert len(TORCHVISION) == 23 and len(OTHERS) == 21


# -- every paper model runs --------------------------------------------------------------------------
@pytest.mark.parametrize("name", PAPER)
def test_paper_model_forward(name: str, measured) -> None:
    m = measured(name)
    assert m.output_shape == (1, 1000)
    assert m.output_finite
    assert not m.training_after


@pytest.mark.parametrize("name", PAPER)
def test_complexity_record(name: str, measured) -> None:
    c = measured(name).complexity
    assert c.error is None
    assert c.macs is not None and c.macs > 0
    assert c.macs_check is not None and c.macs_check > 0
    assert c.flops == 2 * c.macs
    # thop counts every convolution and matrix product FlopCounterMode sees, plus batch-norm,
    # pooling and activations: at least as many, at most ~15 % more (ShuffleNet) on these CNNs.
    assert 1.0 <= c.macs / c.macs_check <= 1.2, (c.macs, c.macs_check)
    # On the operators both count (convolutions and linear layers here) the two agree exactly.
    assert c.macs_same_ops == c.macs_check, (c.macs_same_ops, c.macs_check)
    assert not c.counters_disagree
    record = c.as_record()
    assert record["counters_disagree"] == c.counters_disagree
    assert record["params"] == c.params and record["macs_check"] == c.macs_check
    assert record["param_file_mib"] == pytest.approx(c.param_file_bytes / 2**20)


# -- torchvision's published figures --------------------------------------------------------------
def _aux_logits_params() -> int:
    import torchvision

    with torch.random.fork_rng(devices=[]):
        full = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=False)
    return count_params(full.AuxLogits)


@pytest.mark.parametrize("name", TORCHVISION)
def test_torchvision_params_match_meta(name: str, measured) -> None:
    params = measured(name).complexity.params
    expected = _meta(name)["num_params"]
    if name == "inception_v3":
        # Named exception: torchvision's num_params for Inception-v3 counts the auxiliary
        # classifier (AuxLogits), which does not run in eval; the registry builds the network
        # without it (``_AUX_OFF`` in catalog.py). GoogLeNet's meta does not count its aux heads,
        # so it has no exception.
        assert params + _aux_logits_params() == expected
        assert params < expected
    else:
        assert params == expected


@pytest.mark.parametrize("name", TORCHVISION)
def test_torchvision_flop_counter_matches_ops(name: str, measured) -> None:
    ops = _meta(name)["_ops"] * 1e9  # GMACs of convolutions and matrix products
    macs = measured(name).complexity.macs_check
    assert abs(macs - ops) <= 0.005 * ops, f"FlopCounterMode {macs / 1e9:.4f} GMACs vs _ops {ops / 1e9:.3f}"


@pytest.mark.parametrize("name", TORCHVISION)
def test_torchvision_thop_within_10_percent_above_ops(name: str, measured) -> None:
    ops_g = _meta(name)["_ops"]
    macs = measured(name).complexity.macs
    # _ops is published to 3 decimals: allow half a unit of that rounding below 1.00 x.
    assert (ops_g - 0.0005) * 1e9 <= macs <= 1.10 * ops_g * 1e9, f"thop {macs / 1e9:.4f} GMACs vs _ops {ops_g}"


# -- the other sources: both counters, and the disagreement flag ---------------------------------
@pytest.mark.parametrize("name", OTHERS)
def test_other_models_have_both_counters(name: str, measured) -> None:
    c = measured(name).complexity
    assert c.macs is not None and c.macs_check is not None
    assert c.macs_same_ops is not None
    differ = abs(c.macs_same_ops - c.macs_check) / max(c.macs_same_ops, c.macs_check) > 0.01
    assert DISAGREEMENT == 0.01
    assert c.counters_disagree is differ
    assert c.as_record()["counters_disagree"] is differ


def test_shufflenet_counters_agree_on_the_same_operators(measured) -> None:
    # thop also counts ShuffleNet's batch-norm and pooling layers, which FlopCounterMode does not
    # count: 158.3M against 138.4M MACs (14 % apart), which flagged it while the whole of thop's count
    # was compared. On the convolutions and the linear layer alone the two agree.
    c = measured("shufflenet").complexity
    assert c.macs == pytest.approx(158.3e6, rel=0.002)
    assert c.macs_check == pytest.approx(138.4e6, rel=0.002)
    assert c.macs_same_ops == c.macs_check
    assert not c.counters_disagree
    assert c.as_record()["counters_disagree"] is False


def test_counters_disagree_threshold() -> None:
    assert not counters_disagree(1000, 1010)  # 0.99 % of the larger
    assert counters_disagree(1000, 1011)  # 1.09 %
    assert counters_disagree(1011, 1000)
    assert not counters_disagree(0, 0)
    assert counters_disagree(None, 100) and counters_disagree(100, None)
    assert not counters_disagree(None, None)


def test_flag_compares_thops_count_on_the_same_operators() -> None:
    # macs (the headline) may be far above macs_check: only the shared part is compared.
    both = {"macs": 200, "macs_check": 150, "params": 1, "param_file_bytes": 1}
    assert not Complexity(**both, macs_same_ops=150).counters_disagree
    assert Complexity(**both, macs_same_ops=170).counters_disagree
    assert not Complexity(**both).counters_disagree  # built without the shared count: nothing to compare
    failed = {"params": 1, "param_file_bytes": 1, "error": "x"}
    assert Complexity(macs=None, macs_check=150, **failed).counters_disagree  # thop failed
    assert Complexity(macs=200, macs_check=None, macs_same_ops=150, **failed).counters_disagree
    assert not Complexity(macs=None, macs_check=None, **failed).counters_disagree


# -- the cross-check on models the paper does not name -----------------------------------------------
def _tiny() -> torch.nn.Module:
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(8, 10),
    )


def test_tiny_custom_model_counters_agree() -> None:
    # conv 8 x 30 x 30 outputs x 27 = 194,400, linear 80: 194,480 MACs by both counters; thop adds
    # the pooling's 7,200 additions and 8 divisions to its headline count.
    c = measure_complexity(_tiny().eval(), torch.zeros(1, 3, 32, 32))
    assert c.error is None
    assert (c.macs, c.macs_same_ops, c.macs_check) == (201_688, 194_480, 194_480)
    assert not c.counters_disagree
    assert c.params == 8 * 27 + 8 + 8 * 10 + 10 == 314


class _OwnConv(torch.nn.Module):
    """Holds its own weight and convolves with ``F.conv2d``: no thop rule sees it, FlopCounterMode does."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(8, 3, 3, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.conv2d(x, self.weight)


def test_a_layer_thop_does_not_see_sets_the_flag() -> None:
    model = torch.nn.Sequential(_OwnConv(), torch.nn.ReLU(), torch.nn.Conv2d(8, 8, 3)).eval()
    c = measure_complexity(model, torch.zeros(1, 3, 32, 32))
    assert c.error is None
    assert c.macs_same_ops == c.macs == 8 * 28 * 28 * 72  # the nn.Conv2d only
    assert c.macs_check == c.macs + 8 * 30 * 30 * 27  # and the functional convolution
    assert c.counters_disagree
    assert c.as_record()["counters_disagree"] is True


@pytest.mark.parametrize(
    "layer",
    [
        pytest.param(torch.nn.BatchNorm2d(8), id="batchnorm"),
        pytest.param(torch.nn.AvgPool2d(2), id="avgpool"),
        pytest.param(torch.nn.Upsample(scale_factor=2, mode="bilinear"), id="upsample"),
        pytest.param(torch.nn.Softmax(dim=1), id="softmax"),
    ],
)
def test_operators_flopcountermode_does_not_count_are_left_out_of_the_comparison(layer: torch.nn.Module) -> None:
    model = torch.nn.Sequential(torch.nn.ConvTranspose2d(3, 8, 3, stride=2), layer, torch.nn.Conv2d(8, 4, 1)).eval()
    c = measure_complexity(model, torch.zeros(1, 3, 16, 16))
    assert c.macs is not None and c.macs_same_ops is not None
    assert c.macs > c.macs_same_ops == c.macs_check
    assert not c.counters_disagree


class _Attention(torch.nn.Module):
    def __init__(self, need_weights: bool) -> None:
        super().__init__()
        self.attention = torch.nn.MultiheadAttention(64, 8, batch_first=True)
        self.need_weights = need_weights

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attention(x, x, x, need_weights=self.need_weights)[0]


def test_attention_counted_by_both_agrees_without_thops_softmax() -> None:
    # In training mode with weights returned, MultiheadAttention runs its projections and attention
    # as addmm / bmm, which FlopCounterMode counts; thop's rule adds the softmax (8 heads x 50 rows x
    # (50 exponentials + 49 additions + 50 divisions)), left out of the comparison.
    model = _Attention(need_weights=True).train()
    macs, same_ops = thop_counts(model, torch.zeros(1, 50, 64))
    assert model.training and model.attention.num_heads == 8  # the model is left alone
    check = flop_counter_macs(model, torch.zeros(1, 50, 64))
    assert macs - same_ops == 8 * 50 * 149
    assert same_ops == check == 64 * (2 * 50 * 64 + 50 * 128) + 2 * 50 * 50 * 64


def test_attention_flopcountermode_misses_is_flagged() -> None:
    # In eval, MultiheadAttention takes torch's fused fast path, which FlopCounterMode does not count.
    c = measure_complexity(_Attention(need_weights=False).eval(), torch.zeros(1, 50, 64))
    assert c.macs_check == 0 and c.macs_same_ops is not None and c.macs_same_ops > 0
    assert c.counters_disagree


def test_vit_b_16_counters_disagree() -> None:
    # Under inference_mode torchvision's ViT takes the fused attention fast path, whose matrix
    # products FlopCounterMode does not see: a real disagreement on the operators both count.
    # Measured here (torch 2.14.1, torchvision 0.29.1): FlopCounterMode 11.271 GMACs, thop 17.596
    # GMACs in all, 17.564 on the operators both count, like torchvision's _ops (17.564).
    model, example = _build("vit_b_16")
    try:
        c = measure_complexity(model, example)
    finally:
        del model
        gc.collect()
    ops = _meta("vit_b_16")["_ops"] * 1e9
    assert c.error is None
    assert c.macs == pytest.approx(ops, rel=0.01)
    assert c.macs_check == pytest.approx(11.271e9, rel=0.01)
    assert c.macs_same_ops == pytest.approx(ops, rel=0.001) and c.macs_same_ops < c.macs
    assert c.counters_disagree
    assert c.as_record()["counters_disagree"] is True


# -- thop leaves the benchmarked model alone -------------------------------------------------------
@pytest.mark.parametrize("name", PAPER)
def test_thop_does_not_alter_model(name: str, measured) -> None:
    m = measured(name)
    assert m.thop_leftovers == ()
    assert m.state_keys_after == m.state_keys_before
    assert m.hooks_after == m.hooks_before


def test_thop_macs_leaves_model_untouched() -> None:
    model, example = _build("squeezenet1_1")
    model.train()  # thop's copy is put in eval; the original must keep its mode
    keys = list(model.state_dict())
    values = {k: v.clone() for k, v in model.state_dict().items()}
    buffers = [n for n, _ in model.named_buffers()]
    macs = thop_macs(model, example)
    assert macs == pytest.approx(_meta("squeezenet1_1")["_ops"] * 1e9, rel=0.01)
    assert model.training
    assert list(model.state_dict()) == keys
    assert [n for n, _ in model.named_buffers()] == buffers
    assert not any(hasattr(mod, b) for mod in model.modules() for b in THOP_BUFFERS)
    assert _hooks(model) == 0
    assert all(torch.equal(values[k], v) for k, v in model.state_dict().items())
    # and FlopCounterMode neither
    assert flop_counter_macs(model, example) > 0
    assert list(model.state_dict()) == keys and _hooks(model) == 0


# -- parameter file --------------------------------------------------------------------------------
@pytest.mark.parametrize("name", PAPER)
def test_param_file_bytes(name: str, measured) -> None:
    m = measured(name)
    c = m.complexity
    assert c.param_file_bytes >= m.state_tensor_bytes >= 4 * c.params  # fp32 parameters, plus buffers
    # serialization overhead: a few hundred bytes per state_dict entry (zip record + pickle)
    assert c.param_file_bytes <= m.state_tensor_bytes + 1024 * m.state_entries + 4096
    assert c.param_file_bytes <= 1.05 * 4 * c.params


# -- a missing optional library --------------------------------------------------------------------
def test_missing_pretrainedmodels_raises_model_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pretrainedmodels", None)  # makes `import pretrainedmodels` fail
    with pytest.raises(ModelUnavailable, match="pip install pretrainedmodels"):
        build_model(REGISTRY.get("bninception"))


class _AllocFails(torch.nn.Module):
    """Fails as the CPU allocator does when the host-memory limit refuses an allocation."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory: you tried")


class _CounterBreaks(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise ValueError("a counter cannot follow this model")


def test_out_of_memory_while_counting_is_the_tests_not_a_counting_error() -> None:
    """The host-memory guard skips a test whose FLOP count runs out of memory: the counters never swallow it."""
    with pytest.raises(RuntimeError, match="can't allocate memory"):
        measure_complexity(_AllocFails(), torch.zeros(1, 3, 4, 4))
    other = measure_complexity(_CounterBreaks(), torch.zeros(1, 3, 4, 4))  # any other failure is the record's
    assert other.macs is None and other.error is not None and "cannot follow" in other.error
