"""Size and FPS parsing, and constraint verdicts (pure logic)."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
from helpers import as_record
from hypothesis import given
from hypothesis import strategies as st

from pytest_dnnbench import constraints as C
from pytest_dnnbench.constraints import Constraints
from pytest_dnnbench.settings import parse_fps, parse_size
from pytest_dnnbench.units import format_bytes


def check_constraints(record, constraints):
    """The checks as the results file holds them (JSON form)."""
    return [c.to_json() for c in C.check_constraints(as_record(record), constraints)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0.7GB", 700_000_000),
        ("1.0GB", 1_000_000_000),
        ("1.4GB", 1_400_000_000),
        ("700MB", 700_000_000),
        ("1.4GiB", round(1.4 * 2**30)),
        ("0.7GiB", round(0.7 * 2**30)),
        ("1GiB", 2**30),
        ("512MiB", 512 * 2**20),
        ("943MiB", 943 * 2**20),
        ("123456", 123456),
        ("1e9", 10**9),
        ("1e9B", 10**9),
        (" 2 kb ", 2000),
        ("3KiB", 3072),
        ("1tb", 10**12),
        (700_000_000, 700_000_000),
    ],
)
def test_sizes_as_written(text, expected) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("bad", ["", "GB", "-1GB", "0", "0GB", "1.2XB", "1,5GB", "abc", "1 G B", "nan", True])
def test_bad_sizes(bad) -> None:
    with pytest.raises(ValueError):
        parse_size(bad)


_DEC = {"kB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}
_BIN = {"KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}


@given(st.integers(min_value=1, max_value=10**15))
def test_plain_bytes_round_trip(n: int) -> None:
    assert parse_size(str(n)) == n
    assert parse_size(n) == n


@given(st.integers(min_value=1, max_value=10**6), st.sampled_from(sorted({**_DEC, **_BIN})))
def test_whole_units_are_exact(n: int, unit: str) -> None:
    factor = {**_DEC, **_BIN}[unit]
    assert parse_size(f"{n}{unit}") == n * factor
    assert parse_size(f"{n}{unit.lower()}") == n * factor  # case does not matter; the i does


@given(st.decimals(min_value="0.001", max_value="5000", places=3), st.sampled_from(["GB", "GiB", "MB", "MiB"]))
def test_decimal_and_binary_units_differ_as_they_should(d, unit) -> None:
    v = parse_size(f"{d}{unit}")
    factor = {**_DEC, **_BIN}[unit]
    assert abs(v - float(d) * factor) <= 0.5 + 1e-9 * v
    if unit.endswith("iB"):
        assert v >= parse_size(f"{d}{unit.replace('i', '')}")  # 2^30 > 10^9


@given(st.floats(min_value=1e-3, max_value=1e6, allow_nan=False))
def test_fps_parses_its_own_rendering(x: float) -> None:
    assert parse_fps(repr(x)) == pytest.approx(x)
    assert parse_fps(f"{x}fps") == pytest.approx(x)
    assert parse_fps(x) == x


@pytest.mark.parametrize("bad", ["", "fast", "-30", "0", "inf", "30 frames", False])
def test_bad_fps(bad) -> None:
    with pytest.raises(ValueError):
        parse_fps(bad)


def _record(total=900 * 2**20, fps=40.0, bs=1):
    return {
        "model": "m",
        "batch_size": bs,
        "memory_bytes": {"total": total},
        "fps": fps,
        "latency_ms": {"median": 1000.0 * bs / fps},
    }


def test_constraint_verdicts_carry_figure_and_limit() -> None:
    cons = Constraints(
        max_memory=parse_size("0.7GiB"),
        min_fps=60,
        max_memory_source="--dnn-max-memory=0.7GiB",
        min_fps_source="--dnn-min-fps=60",
    )
    mem, fps = check_constraints(_record(), cons)
    assert mem["kind"] == fps["kind"] == "constraint"
    assert mem["metric"] == "memory" and not mem["passed"]
    assert mem["measured"] == 900 * 2**20 and mem["limit"] == round(0.7 * 2**30)
    assert "943,718,400 bytes > limit" in mem["message"] and "--dnn-max-memory=0.7GiB" in mem["message"]
    assert fps["metric"] == "fps" and not fps["passed"] and fps["limit"] == 60.0 and fps["measured"] == 40.0
    assert "40 images/s" in fps["message"] and "< minimum 60 FPS" in fps["message"]
    ok = check_constraints(_record(total=100, fps=100.0), cons)
    assert all(c["passed"] for c in ok)


def test_missing_figure_fails_the_constraint_rather_than_pass_silently() -> None:
    (mem,) = check_constraints({"model": "m", "batch_size": 1, "memory_bytes": {}}, Constraints(max_memory=10))
    assert not mem["passed"] and "cannot be verified" in mem["message"]


def test_no_constraints_no_checks() -> None:
    assert check_constraints(_record(), Constraints()) == []
    assert not Constraints()


def test_format_bytes_labels_both_units() -> None:
    assert format_bytes(1.2e9) == "1.2 GB (1.12 GiB)"
    assert "MiB" in format_bytes(700 * 2**20)
    assert format_bytes(None) == "unknown"


def test_pure_modules_import_neither_torch_nor_pytest() -> None:
    code = (
        "import sys, pytest_dnnbench.constraints, pytest_dnnbench.baseline_store, pytest_dnnbench.paperdata; "
        "bad = {'torch', 'pytest', '_pytest'} & set(sys.modules); assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert math.isfinite(parse_fps("29.97"))
