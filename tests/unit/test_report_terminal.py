"""Tests of the end-of-session table (:mod:`pytest_dnnbench.report.terminal`)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_dnnbench.report.terminal import COLUMNS, LEGEND, format_table, record_row
from pytest_dnnbench.units import PREFIXES, format_count
from pytest_dnnbench.units import format_mib as format_bytes

MiB = 2**20
GiB = 2**30
CELL = re.compile(r"\S+(?: \S+)*")  # cells are separated by two spaces or more


def full(**kw) -> dict:
    rec = {
        "model": "resnet18",
        "batch_size": 8,
        "per_image_ms": 2.34567,
        "fps": 426.3,
        "memory_bytes": {"total": 812 * MiB, "delta": 40 * MiB},
        "flops": 3_628_000_000,
        "params": 11_689_512,
        "latency_ms": {"n": 57, "capped": False},
        "counters_disagree": False,
        "outcome": "passed",
    }
    rec.update(kw)
    return rec


def cells(line: str) -> list[re.Match]:
    return list(CELL.finditer(line))


# -- format_bytes ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (None, "-"),
        (0, "0 MiB"),
        (700 * MiB, "700 MiB"),
        (int(1.4 * GiB), "1434 MiB"),
        (10 * GiB - MiB, "10239 MiB"),
        (10 * GiB, "10.0 GiB"),
        (int(79.6 * GiB), "79.6 GiB"),
        (3 * MiB // 2, "2 MiB"),
    ],
)
def test_format_bytes(n: int | None, text: str) -> None:
    assert format_bytes(n) == text


@given(st.integers(min_value=0, max_value=2**44))
def test_format_bytes_always_has_a_unit(n: int) -> None:
    text = format_bytes(n)
    assert text.endswith(" MiB") or text.endswith(" GiB")
    value, unit = text.split(" ")
    assert float(value) * (MiB if unit == "MiB" else GiB) == pytest.approx(n, abs=0.05 * GiB + MiB)


# -- format_count ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (None, "-"),
        (0, "0"),
        (7, "7"),
        (314, "314"),
        (999, "999"),
        (1000, "1.00 k"),
        (5_514, "5.51 k"),
        (11_000, "11.0 k"),
        (403_376, "403 k"),
        (999_499, "999 k"),
        (999_500, "1.00 M"),  # the prefix follows the rounding: never "1000 k"
        (3_504_872, "3.50 M"),
        (11_689_512, "11.7 M"),
        (138_357_544, "138 M"),
        (3_648_067_584, "3.65 G"),
        (30_940_528_992, "30.9 G"),
        (2_500_000_000_000, "2.50 T"),
        (1_234_000_000_000_000, "1234 T"),
        (12.34, "12.3"),
        (0.00412, "0.00412"),
        (-5_514, "-5.51 k"),
        (float("nan"), "-"),
    ],
)
def test_format_count(n: float | None, text: str) -> None:
    assert format_count(n) == text


def _read_count(text: str) -> float:
    value, _, prefix = text.partition(" ")
    return float(value) * 1000 ** PREFIXES.index(prefix)


@given(
    st.one_of(
        st.integers(min_value=0, max_value=10**18),
        st.floats(min_value=1e-9, max_value=1e18, allow_nan=False, allow_infinity=False),
    )
)
def test_format_count_round_trips_and_shows_size(n: float) -> None:
    text = format_count(n)
    assert _read_count(text) == pytest.approx(n, rel=0.005, abs=0)
    if n > 0:
        assert float(text.split(" ")[0]) > 0  # never 0.00 for a positive count
    value, _, prefix = text.partition(" ")
    assert prefix in PREFIXES
    if prefix and prefix != PREFIXES[-1]:
        assert 1 <= float(value) < 1000  # the prefix that suits the value
        assert len(value.replace(".", "")) == 3  # 3 significant digits


# -- rows ------------------------------------------------------------------------------------


def test_row_of_a_full_record() -> None:
    assert record_row(full()) == ("resnet18", "8", "2.346", "426.3", "812 MiB", "3.63 G", "11.7 M", "57", "")


def test_small_models_show_their_size() -> None:
    # A 5.5 k-parameter network read 0.01 (GFLOPs) and 0.01 (M params) when the columns had one scale.
    row = record_row(full(model="tiny", flops=11_000, params=5_514))
    assert (row[5], row[6]) == ("11.0 k", "5.51 k")


def test_missing_values_are_dashes_never_zero() -> None:
    row = record_row({"model": "tiny", "batch_size": 1})
    assert row[0] == "tiny" and row[1] == "1"
    assert row[2:8] == ("-",) * 6
    assert row[8] == ""
    row = record_row(full(fps=None, per_image_ms=None, flops=None, memory_bytes={"total": None}))
    assert (row[2], row[3], row[4], row[5]) == ("-", "-", "-", "-")
    assert row[6] == "11.7 M"  # what is present is still shown


def test_real_zeros_are_not_dashes() -> None:
    row = record_row(full(flops=0, params=0))
    assert row[5] == "0" and row[6] == "0"


@pytest.mark.parametrize(
    ("changes", "note"),
    [
        ({"latency_ms": {"n": 10, "capped": True}}, "capped"),
        ({"counters_disagree": True}, "flops?"),
        ({"outcome": "failed"}, "failed"),
        ({"outcome": None}, ""),
        (
            {"latency_ms": {"n": 10, "capped": True}, "counters_disagree": True, "outcome": "failed"},
            "capped, flops?, failed",
        ),
    ],
)
def test_notes(changes: dict, note: str) -> None:
    assert record_row(full(**changes))[-1] == note


# -- the table -------------------------------------------------------------------------------


def test_table_header_and_rule() -> None:
    lines = format_table([full()])
    assert [c.group() for c in cells(lines[0])] == list(COLUMNS)
    assert set(lines[1]) == {"-"} and len(lines[1]) == len(lines[0])
    assert len(lines) == 3


def test_empty_table_is_the_header() -> None:
    lines = format_table([])
    assert len(lines) == 2 and lines[0].startswith("model")


def test_table_columns_are_aligned() -> None:
    recs = [
        full(),
        full(
            model="nasnetalarge",
            batch_size=64,
            per_image_ms=123.456789,
            fps=8.1,
            memory_bytes={"total": 12 * GiB},
            flops=47_700_000_000,
            params=88_753_150,
            latency_ms={"n": 5000, "capped": True},
        ),
        {"model": "m", "batch_size": 1},
        full(model="vgg16", counters_disagree=True, outcome="failed"),
    ]
    lines = format_table(recs)
    table = [lines[0]] + lines[2 : lines.index("")]
    rows = [cells(line) for line in table]
    assert all(len(r) >= len(COLUMNS) - 1 for r in rows)
    # A legend follows the table for the notes that appear in it, and only for those.
    legend = lines[lines.index("") + 1 :]
    assert [line.split(":")[0] for line in legend] == ["capped", "flops?"]
    # The model column is left-aligned, the numbers right-aligned, the notes left-aligned.
    assert all(r[0].start() == 0 for r in rows)
    for i in range(1, len(COLUMNS) - 1):
        ends = {r[i].end() for r in rows}
        assert len(ends) == 1, (COLUMNS[i], [line for line in table])
    note_starts = {r[len(COLUMNS) - 1].start() for r in rows if len(r) == len(COLUMNS)}
    assert len(note_starts) == 1
    text = "\n".join(lines)
    assert "812 MiB" in text and "12.0 GiB" in text
    assert "47.7 G" in text and "88.8 M" in text
    assert "capped" in lines[3] and "flops?, failed" in lines[5]
    assert lines[4].split()[2:8] == ["-"] * 6


def test_no_trailing_spaces() -> None:
    assert all(line == line.rstrip() for line in format_table([full(), {"model": "m", "batch_size": 1}]))


def _compared(ratio: float, resolution: float, **latency_check: object) -> dict[str, object]:
    check = {"kind": "baseline", "metric": "latency", "passed": True, "ratio": ratio, "resolution": resolution}
    return full(checks=[{**check, **latency_check}])


def test_compared_records_show_their_ratio_and_resolution_with_a_legend() -> None:
    recs = [
        _compared(1.034, 0.14),
        _compared(1.8, 0.6, inconclusive=True, noisy=True),
        full(model="vgg16"),
    ]
    recs[1]["load"] = {"busy": True}
    recs[1]["latency_ms"] = {**recs[1]["latency_ms"], "insufficient": True}
    lines = format_table(recs)
    assert "vs baseline" in lines[0]
    assert "1.03x res 14%" in lines[2]
    row = lines[3]
    assert "1.80x res 60%" in row
    for note in ("insufficient", "busy", "inconclusive", "noisy"):
        assert note in row.split("  ")[-1]
    assert lines[4].split()[-1] == "-"  # not compared
    legend = [line.split(":")[0] for line in lines[lines.index("") + 1 :]]
    assert legend == ["insufficient", "busy", "inconclusive", "noisy", "vs baseline"]


def test_no_baseline_column_without_a_comparison() -> None:
    lines = format_table([full()])
    assert "vs baseline" not in lines[0]
    assert "" not in lines  # no legend: no note appears


def test_flops_note_is_explained_by_what_the_flag_now_means() -> None:
    lines = format_table([full(counters_disagree=True), full(model="vgg16")])
    legend = lines[lines.index("") + 1 :]
    assert legend == [LEGEND["flops?"]]
    text = legend[0]
    assert text.startswith("flops?: ")
    # the comparison is on the operators both counters count, with the threshold, and what a flag means
    for words in ("operators both count", "convolutions", "linear layers", "attention", "more than 1 %", "macs_check"):
        assert words in text, words
    assert "5 %" not in text


def test_flops_note_without_a_disagreement_has_no_legend() -> None:
    lines = format_table([full(), full(model="vgg16", counters_disagree=False)])
    assert "flops?" not in "\n".join(lines)
