"""Top-k with crafted logits: ties (pessimistic rule), k beyond the number of classes, NaN."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

from pytest_dnnbench.accuracy.topk import target_ranks, topk_accuracy, topk_hits  # noqa: E402


def test_plain_top1_and_top5() -> None:
    logits = torch.tensor([[0.1, 0.9, 0.0, 0.3, 0.2, 0.05, 0.01], [5.0, 4.0, 3.0, 2.0, 1.0, 0.0, -1.0]])
    assert topk_hits(logits, [1, 0], (1, 5)) == {1: 2, 5: 2}
    assert topk_hits(logits, [3, 4], (1, 5)) == {1: 0, 5: 2}
    assert topk_hits(logits, [5, 6], (1, 5)) == {1: 0, 5: 1}  # 0.05 is 5th in row 0; -1 is 7th in row 1
    assert topk_accuracy(logits, [1, 6], (1, 5)) == {1: 50.0, 5: 50.0}


def test_ties_count_against_the_true_class() -> None:
    # All classes equal: the true class never wins a tie, whatever its index.
    flat = torch.zeros(3, 4)
    assert topk_hits(flat, [0, 1, 3], (1, 3, 4)) == {1: 0, 3: 0, 4: 3}
    # One tie partner: the true class ranks second (rank 1).
    tie = torch.tensor([[2.0, 2.0, 1.0]])
    assert target_ranks(tie, [0]).tolist() == [1]
    assert target_ranks(tie, [1]).tolist() == [1]
    assert topk_hits(tie, [0], (1, 2)) == {1: 0, 2: 1}
    # A tie below the true class does not matter.
    assert topk_hits(torch.tensor([[3.0, 1.0, 1.0]]), [0], (1,)) == {1: 1}


def test_k_larger_than_the_number_of_classes() -> None:
    logits = torch.tensor([[0.3, 0.2, 0.1], [float("nan"), 0.0, 1.0]])
    assert topk_hits(logits, [2, 0], (1, 3, 5, 1000)) == {1: 0, 3: 1, 5: 2, 1000: 2}
    assert topk_accuracy(logits, [2, 0], (5,)) == {5: 100.0}


def test_nan_is_never_rewarded() -> None:
    logits = torch.tensor([[float("nan"), 1.0, 0.0], [1.0, float("nan"), 0.5]])
    # Row 0: the true score is NaN: a miss at every k up to the number of classes.
    assert topk_hits(logits[:1], [0], (1, 3)) == {1: 0, 3: 0}
    # Row 1: another class's NaN ranks above the true class.
    assert target_ranks(logits[1:], [0]).tolist() == [1]


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        topk_hits(torch.zeros(1, 3), [0], (0,))
    with pytest.raises(ValueError, match="outside"):
        topk_hits(torch.zeros(1, 3), [3], (1,))
    with pytest.raises(ValueError, match="targets"):
        topk_hits(torch.zeros(2, 3), [0], (1,))
    with pytest.raises(ValueError, match="no predictions"):
        topk_accuracy(torch.zeros(0, 3), [], (1,))


def _reference_hit(row: list[float], target: int, k: int) -> bool:
    """The documented rule, written out: fewer than k other classes score at least as high."""
    t = row[target]
    if k > len(row):
        return True
    if math.isnan(t):
        return False
    above = sum(1 for j, v in enumerate(row) if j != target and (math.isnan(v) or v >= t))
    return above < k


scores = st.one_of(
    st.sampled_from([0.0, 1.0, -1.0, 0.5]),  # small pool: many ties
    st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, width=32),
    st.just(float("nan")),
    st.just(float("inf")),
    st.just(float("-inf")),
)


@st.composite
def batches(draw):
    classes = draw(st.integers(1, 8))
    rows = draw(st.integers(1, 6))
    logits = [[draw(scores) for _ in range(classes)] for _ in range(rows)]
    targets = [draw(st.integers(0, classes - 1)) for _ in range(rows)]
    ks = draw(st.lists(st.integers(1, 12), min_size=1, max_size=4, unique=True))
    return logits, targets, ks


@settings(max_examples=300, deadline=None)
@given(batches())
def test_matches_the_written_rule(batch) -> None:
    logits, targets, ks = batch
    hits = topk_hits(torch.tensor(logits, dtype=torch.float32), targets, ks)
    for k in ks:
        assert hits[k] == sum(
            _reference_hit([float(torch.tensor(v, dtype=torch.float32)) for v in row], t, k)
            for row, t in zip(logits, targets, strict=True)
        )


@settings(max_examples=200, deadline=None)
@given(batches())
def test_top_k_grows_with_k_and_agrees_with_sorting_without_ties(batch) -> None:
    logits, targets, _ = batch
    x = torch.tensor(logits, dtype=torch.float32)
    classes = x.shape[1]
    hits = topk_hits(x, targets, range(1, classes + 2))
    assert all(hits[k] <= hits[k + 1] for k in range(1, classes + 1))
    assert hits[classes + 1] == len(targets)
    # Without ties or NaN, the rule is plain torch.topk membership.
    distinct = torch.arange(classes, dtype=torch.float32).repeat(len(targets), 1)
    perm = torch.stack(
        [torch.randperm(classes, generator=torch.Generator().manual_seed(i)) for i in range(len(targets))]
    )
    distinct = distinct.gather(1, perm)
    for k in range(1, classes + 1):
        top = distinct.topk(k, dim=1).indices
        expected = sum(int(t in row.tolist()) for t, row in zip(targets, top, strict=True))
        assert topk_hits(distinct, targets, (k,))[k] == expected
