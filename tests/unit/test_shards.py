"""Shards (:mod:`pytest_dnnbench.shards`): the option's values, the assignment, a collection split."""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_dnnbench.paperdata import PAPER_TO_NAME
from pytest_dnnbench.problems import UsageProblem
from pytest_dnnbench.registry import REGISTRY
from pytest_dnnbench.shards import (
    DEFAULT_WEIGHT,
    Shard,
    assign,
    collected_line,
    model_weight,
    parse_run_group,
    parse_shard,
    stamp,
    take,
)

# -- the option ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1/3", (1, 3)), (" 2/3 ", (2, 3)), ("3/3", (3, 3)), ("1/1", (1, 1)), ("07/10", (7, 10)), ("2 / 4", (2, 4))],
)
def test_k_of_n(text: str, expected: tuple[int, int]) -> None:
    shard = parse_shard(text, {})
    assert shard is not None and (shard.index, shard.count) == expected
    assert str(shard) == f"{expected[0]}/{expected[1]}"


def test_no_option_no_shard() -> None:
    assert parse_shard(None, {"SLURM_ARRAY_TASK_ID": "1"}) is None


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("0/3", "shard 0 is not between 1 and 3"),
        ("4/3", "shard 4 is not between 1 and 3"),
        ("x/y", "not K/N, auto or auto/N"),
        ("1/0", "the number of shards must be from 1"),
        ("", "no shard given"),
        ("  ", "no shard given"),
        ("1/2/3", "not K/N"),
        ("-1/3", "not K/N"),
        ("1.5/3", "not K/N"),
        ("\uff11/3", "not K/N"),  # a full-width digit is no shard number
        ("3", "not K/N"),
        ("1/99999", "from 1 to 10,000"),
        ("auto/0", "the number of shards must be from 1"),
        ("auto/x", "not a whole number"),
    ],
)
def test_bad_values_name_the_option_the_value_and_the_fix(text: str, why: str) -> None:
    with pytest.raises(UsageProblem) as exc:
        parse_shard(text, {})
    message = str(exc.value)
    assert message.startswith(f"--dnn-shard={text}:"), message
    assert why in message and "Give" in message, message


def test_auto_without_the_variables_says_which_are_read() -> None:
    with pytest.raises(UsageProblem, match="neither SLURM_ARRAY_TASK_ID .* nor JOB_COMPLETION_INDEX .* is set"):
        parse_shard("auto", {"HOME": "/root"})


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_MIN": "4", "SLURM_ARRAY_TASK_MAX": "6"}, (2, 3)),
        ({"SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_COUNT": "8"}, (1, 8)),
        ({"SLURM_ARRAY_TASK_ID": "8", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_MAX": "8"}, (8, 8)),
        (
            {
                "SLURM_ARRAY_TASK_ID": "5",
                "SLURM_ARRAY_TASK_MIN": "1",
                "SLURM_ARRAY_TASK_MAX": "7",
                "SLURM_ARRAY_TASK_STEP": "2",
            },
            (3, 4),
        ),
        ({"JOB_COMPLETION_INDEX": "0"}, None),  # Kubernetes needs auto/N: see below
    ],
)
def test_auto_in_a_slurm_array(environ: dict[str, str], expected: tuple[int, int] | None) -> None:
    if expected is None:
        with pytest.raises(UsageProblem, match="Give auto/N"):
            parse_shard("auto", environ)
        return
    shard = parse_shard("auto", environ)
    assert shard is not None and (shard.index, shard.count) == expected
    assert shard.source == f"SLURM_ARRAY_TASK_ID={environ['SLURM_ARRAY_TASK_ID']}"


def test_auto_n_in_a_kubernetes_indexed_job_counts_from_zero() -> None:
    for index in range(4):
        shard = parse_shard("auto/4", {"JOB_COMPLETION_INDEX": str(index)})
        assert shard == Shard(index + 1, 4)
    with pytest.raises(UsageProblem, match="JOB_COMPLETION_INDEX=4 is not below the 4 shards"):
        parse_shard("AUTO/4", {"JOB_COMPLETION_INDEX": "4"})


def test_auto_n_in_a_slurm_array_must_match_its_count() -> None:
    env = {"SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_MAX": "3"}
    assert parse_shard("auto/3", env) == Shard(2, 3)
    with pytest.raises(UsageProblem, match="the Slurm array has 3 tasks, not 4. Give auto, or auto/3"):
        parse_shard("auto/4", env)
    # A count that Slurm does not give comes from the option.
    assert parse_shard("auto/5", {"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_MIN": "0"}) == Shard(4, 5)


@pytest.mark.parametrize(
    ("environ", "why"),
    [
        ({"SLURM_ARRAY_TASK_ID": "x"}, "SLURM_ARRAY_TASK_ID='x' is not a whole number"),
        ({"SLURM_ARRAY_TASK_ID": "3"}, "without SLURM_ARRAY_TASK_MIN"),
        ({"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_MIN": "1"}, "neither SLURM_ARRAY_TASK_COUNT nor"),
        (
            {
                "SLURM_ARRAY_TASK_ID": "4",
                "SLURM_ARRAY_TASK_MIN": "1",
                "SLURM_ARRAY_TASK_MAX": "7",
                "SLURM_ARRAY_TASK_STEP": "2",
            },
            "is not one of 4 tasks from 1 in steps of 2",
        ),
        ({"JOB_COMPLETION_INDEX": "-1"}, "JOB_COMPLETION_INDEX='-1' is not a whole number"),
    ],
)
def test_auto_with_variables_it_cannot_read(environ: dict[str, str], why: str) -> None:
    with pytest.raises(UsageProblem) as exc:
        parse_shard("auto", environ)
    assert str(exc.value).startswith("--dnn-shard=auto: ") and why in str(exc.value), str(exc.value)


def test_run_groups() -> None:
    assert parse_run_group(" nightly-42 ") == "nightly-42"
    for bad, why in [("", "no run group given"), ("x" * 201, "longer than 200"), ("a\nb", "control characters")]:
        with pytest.raises(UsageProblem, match=why) as exc:
            parse_run_group(bad)
        assert str(exc.value).startswith("--dnn-run-group=")


# -- the assignment ----------------------------------------------------------------------------------------

costs_st = st.dictionaries(
    st.text("abcdefghij_0123456789", min_size=1, max_size=12), st.integers(0, 10**6), min_size=0, max_size=30
)


@given(costs_st, st.integers(1, 8))
def test_every_model_is_in_exactly_one_shard(costs: dict[str, int], n: int) -> None:
    where = assign(costs, n)
    assert set(where) == set(costs)
    assert all(1 <= k <= n for k in where.values())


@given(costs_st, st.integers(1, 8), st.randoms(use_true_random=False))
def test_the_assignment_does_not_depend_on_the_order(costs: dict[str, int], n: int, rnd: random.Random) -> None:
    pairs = list(costs.items())
    rnd.shuffle(pairs)
    assert assign(dict(pairs), n) == assign(costs, n) == assign(pairs, n)


def _loads(costs: dict[str, int], where: dict[str, int], n: int) -> list[int]:
    loads = [0] * n
    for name, k in where.items():
        loads[k - 1] += costs[name]
    return loads


@given(
    st.dictionaries(st.text("abcdef", min_size=1, max_size=4), st.integers(0, 1000), max_size=7),
    st.integers(1, 3),
)
def test_the_largest_shard_holds_at_most_the_best_split_plus_the_largest_model(costs: dict[str, int], n: int) -> None:
    where = assign(costs, n)
    names = list(costs)
    best = min(
        (
            max(_loads(costs, dict(zip(names, ks, strict=True)), n))
            for ks in itertools.product(range(1, n + 1), repeat=len(names))
        ),
        default=0,
    )
    largest = max(costs.values(), default=0)
    assert max(_loads(costs, where, n)) <= best + largest


@given(costs_st, st.integers(1, 8))
def test_the_balance_bound_against_the_average(costs: dict[str, int], n: int) -> None:
    where = assign(costs, n)
    total, largest = sum(costs.values()), max(costs.values(), default=0)
    assert max(_loads(costs, where, n)) <= total / n + largest


def test_ties_go_by_name_and_to_the_lowest_shard() -> None:
    assert assign({"b": 1, "a": 1, "c": 1}, 2) == {"a": 1, "b": 2, "c": 1}
    assert assign({"big": 10, "x": 4, "y": 3, "z": 3}, 2) == {"big": 1, "x": 2, "y": 2, "z": 2}


def test_bad_costs_and_counts() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        assign({"a": 1}, 0)
    with pytest.raises(ValueError, match="zero or more"):
        assign({"a": float("nan")}, 2)


def test_the_paper_models_have_the_papers_weight_and_others_a_scaled_default() -> None:
    assert model_weight("resnet18") == 1790  # Table 1(a): 1.79 ms per image at batch 1
    assert model_weight("senet154") == 53800
    assert {name for name in PAPER_TO_NAME.values()} <= {s.name for s in REGISTRY if model_weight(s.name)}
    assert model_weight("my_model") == DEFAULT_WEIGHT
    assert model_weight("my_model", (3, 224, 224)) == DEFAULT_WEIGHT
    assert model_weight("tiny", (3, 32, 32)) == round(DEFAULT_WEIGHT * 32 * 32 / 224 / 224)
    assert model_weight("speck", (3, 1, 1)) == 1


def test_the_paper_split_in_three_is_balanced() -> None:
    names = REGISTRY.paper_names()
    where = assign({m: model_weight(m) for m in names}, 3)
    loads = _loads({m: model_weight(m) for m in names}, where, 3)
    assert max(loads) - min(loads) < max(model_weight(m) for m in names)
    assert sorted(sum(1 for k in where.values() if k == s) for s in (1, 2, 3)) == [14, 15, 15]


# -- a collection split --------------------------------------------------------------------------------------


@dataclass
class _CallSpec:
    params: dict[str, object] = field(default_factory=dict)


@dataclass
class _Item:
    nodeid: str
    callspec: _CallSpec | None = None


def _suite(models: list[str], batches: list[int], modes: list[str]) -> list[_Item]:
    return [
        _Item(
            f"s.py::test_dnn[{m}-bs{b}{'' if mode == 'eager' else '-' + mode}]",
            _CallSpec({"dnn_model": m, "dnn_batch_size": b, "dnn_mode": mode}),
        )
        for m in models
        for b in batches
        for mode in modes
    ]


def test_the_shards_cover_every_test_once_and_deselect_the_rest() -> None:
    items = _suite(["alexnet", "resnet18", "vgg16", "tiny", "senet154"], [1, 8], ["eager", "compile"])
    items.append(_Item("test_plain.py::test_unit"))  # benchmarks no model: every shard runs it
    seen: list[str] = []
    for k in (1, 2, 3):
        deselected: list[list[_Item]] = []
        kept, line = take(items, Shard(k, 3), REGISTRY, lambda items, out=deselected: out.append(items))
        assert "test_plain.py::test_unit" in [i.nodeid for i in kept]
        assert [i.nodeid for i in deselected[0]] == [i.nodeid for i in items if i not in kept]
        seen += [i.nodeid for i in kept if "test_dnn" in i.nodeid]
        models = {i.callspec.params["dnn_model"] for i in kept if i.callspec}
        assert line.startswith(f"dnnbench: shard {k}/3: {len(kept) - 1} test(s) of {len(models)} model(s)"), line
        assert "1 test(s) that benchmark no model run in every shard" in line
    assert sorted(seen) == sorted(i.nodeid for i in items if "test_dnn" in i.nodeid)


def test_a_model_stays_whole_and_the_order_of_the_tests_does_not_matter() -> None:
    items = _suite(REGISTRY.paper_names(), [1, 2, 4], ["eager"])
    shuffled = list(items)
    random.Random(7).shuffle(shuffled)
    for k in (1, 2, 3, 4):
        kept, _ = take(items, Shard(k, 4), None)
        again, _ = take(shuffled, Shard(k, 4), None)
        assert sorted(i.nodeid for i in kept) == sorted(i.nodeid for i in again)
        per_model: dict[object, int] = {}
        for i in kept:
            assert i.callspec is not None
            per_model[i.callspec.params["dnn_model"]] = per_model.get(i.callspec.params["dnn_model"], 0) + 1
        assert set(per_model.values()) <= {3}  # every batch size of a model, or none


def test_the_line_at_an_xdist_controller() -> None:
    ids = ["s.py::test_dnn[alexnet-bs1]", "s.py::test_dnn[alexnet-bs2]", "s.py::test_dnn[vgg16-bs1]"]
    assert collected_line(None, ids, ["alexnet", "vgg16"]) is None
    assert collected_line(Shard(2, 3), ids, ["alexnet", "vgg16", "resnet18"]) == (
        "dnnbench: shard 2/3: 3 test(s) of 2 model(s) (alexnet, vgg16)"
    )


def test_stamp_writes_the_shard_and_the_run_group() -> None:
    env: dict[str, object] = {"device": "cpu"}
    assert stamp(env, Shard(2, 3), "g-1") is env and env == {"device": "cpu", "shard": "2/3", "run_group": "g-1"}
    assert stamp(None, None, None) is None
    assert stamp(None, Shard(1, 2), None) == {"shard": "1/2"}  # a shard that ran no test still says which
    assert stamp({"a": 1}, None, None) == {"a": 1}
