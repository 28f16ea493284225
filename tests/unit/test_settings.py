"""Tests of the option parsers (:mod:`pytest_dnnbench.settings`): good values, bad values, messages."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_dnnbench.settings import (
    OPTIONS,
    Option,
    Settings,
    item_limits,
    parse_batch_sizes,
    parse_device,
    parse_duration,
    parse_fraction,
    parse_int,
    parse_on_off,
    parse_precision,
    shown,
)

BAD_COMMON = ["0", "-1", "abc", "", "1,,x", "1.5"]


def assert_usage_error(parse, value: str, option: str, fix_words: tuple[str, ...]) -> str:
    with pytest.raises(pytest.UsageError) as exc:
        parse(value)
    msg = str(exc.value)
    assert f"{option}={shown(value)}" in msg, msg  # the option and the value as given (cut when long)
    assert len(msg) < 400, msg
    assert any(w in msg for w in fix_words), msg  # and a way out
    return msg


# -- batch sizes -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1", (1,)),
        ("1,2,4,8,16,32,64", (1, 2, 4, 8, 16, 32, 64)),
        (" 8 , 1 ", (8, 1)),
        ("4,4,2,4", (4, 2)),
        ("+3", (3,)),
        ("1,", (1,)),
    ],
)
def test_batch_sizes_good(value: str, expected: tuple[int, ...]) -> None:
    assert parse_batch_sizes(value) == expected


@pytest.mark.parametrize("value", BAD_COMMON + [",", " ", "1;2", "1 2", "0x10", "1e3"])
def test_batch_sizes_bad(value: str) -> None:
    assert_usage_error(parse_batch_sizes, value, "--dnn-batch-sizes", ("such as 1,8,64", "e.g. 1,8,64"))


def test_batch_sizes_message_names_the_bad_part() -> None:
    msg = assert_usage_error(parse_batch_sizes, "1,8,x", "--dnn-batch-sizes", ("1,8,64",))
    assert "'x'" in msg


@given(st.lists(st.integers(min_value=1, max_value=10**6), min_size=1, max_size=20), st.sampled_from([",", ", ", " ,"]))
def test_batch_sizes_round_trip(sizes: list[int], sep: str) -> None:
    assert parse_batch_sizes(sep.join(map(str, sizes))) == tuple(dict.fromkeys(sizes))


# -- device and precision --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("auto", "auto"),
        ("cpu", "cpu"),
        ("cuda", "cuda"),
        ("cuda:0", "cuda:0"),
        ("cuda:12", "cuda:12"),
        (" CUDA:1 ", "cuda:1"),
        ("CPU", "cpu"),
    ],
)
def test_device_good(value: str, expected: str) -> None:
    assert parse_device(value) == expected


@pytest.mark.parametrize("value", BAD_COMMON + ["gpu", "cuda:", "cuda:-1", "cuda:a", "mps", "cpu:0"])
def test_device_bad(value: str) -> None:
    assert_usage_error(parse_device, value, "--dnn-device", ("Use auto, cpu, cuda or cuda:N",))


@pytest.mark.parametrize(("value", "expected"), [("fp32", "fp32"), ("FP16", "fp16"), (" bf16", "bf16")])
def test_precision_good(value: str, expected: str) -> None:
    assert parse_precision(value) == expected


@pytest.mark.parametrize("value", BAD_COMMON + ["float32", "fp64", "int8"])
def test_precision_bad(value: str) -> None:
    assert_usage_error(parse_precision, value, "--dnn-precision", ("fp32, fp16, bf16",))


# -- on/off ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("on", True),
        ("ON", True),
        ("true", True),
        ("1", True),
        ("yes", True),
        (True, True),
        ("off", False),
        ("false", False),
        ("0", False),
        ("no", False),
        (False, False),
    ],
)
def test_on_off_good(value: object, expected: bool) -> None:
    assert parse_on_off(value, "--dnn-cudnn-benchmark") is expected


@pytest.mark.parametrize("value", ["-1", "abc", "", "1,,x", "1.5", "2", "onn"])
def test_on_off_bad(value: str) -> None:
    assert_usage_error(
        lambda v: parse_on_off(v, "--dnn-cudnn-benchmark"),
        value,
        "--dnn-cudnn-benchmark",
        ("--dnn-cudnn-benchmark=on or --dnn-cudnn-benchmark=off",),
    )


# -- integers --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "minimum", "expected"), [("0", 0, 0), ("1", 1, 1), (" 42 ", 1, 42), ("+7", 0, 7), (5, 1, 5)]
)
def test_int_good(value: object, minimum: int, expected: int) -> None:
    assert parse_int(value, "--dnn-seed", minimum) == expected


@pytest.mark.parametrize("value", ["0", "-1", "abc", "", "1,,x", "1.5", "1e3"])
def test_int_bad(value: str) -> None:
    msg = assert_usage_error(
        lambda v: parse_int(v, "--dnn-min-samples", 1), value, "--dnn-min-samples", ("integer of at least 1",)
    )
    assert "at least 1" in msg


def test_int_minimum_zero_accepts_zero_rejects_negative() -> None:
    assert parse_int("0", "--dnn-warmup", 0) == 0
    assert_usage_error(lambda v: parse_int(v, "--dnn-warmup", 0), "-1", "--dnn-warmup", ("at least 0",))


# -- durations -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("20", 20.0),
        ("20s", 20.0),
        ("500ms", 0.5),
        ("2m", 120.0),
        ("1.5", 1.5),
        (" 3 sec ", 3.0),
        ("1min", 60.0),
        ("1h", 3600.0),
        (".25s", 0.25),
        ("10MS", 0.01),
        (7, 7.0),
    ],
)
def test_duration_good(value: object, seconds: float) -> None:
    assert parse_duration(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", ["0", "-1", "abc", "", "1,,x", "0s", "0ms", "5 days", "inf", "nan", "1e3", "9" * 400])
def test_duration_bad(value: str) -> None:
    assert_usage_error(parse_duration, value, "--dnn-max-time", ("such as 20, 20s, 500ms or 2m",))


@given(
    st.integers(min_value=1, max_value=10**6),
    st.sampled_from([("", 1.0), ("s", 1.0), ("ms", 1e-3), ("m", 60.0), ("min", 60.0), ("h", 3600.0)]),
)
def test_duration_units(n: int, unit: tuple[str, float]) -> None:
    suffix, factor = unit
    if n * factor > 7 * 24 * 3600:  # longer than a week: refused at parse time
        with pytest.raises(pytest.UsageError, match="longer than a week"):
            parse_duration(f"{n}{suffix}")
    else:
        assert parse_duration(f"{n}{suffix}") == pytest.approx(n * factor)


# -- fractions -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"), [("1%", 0.01), ("0.01", 0.01), ("2.5%", 0.025), (" 5 %", 0.05), ("0.5", 0.5), ("99%", 0.99)]
)
def test_fraction_good(value: str, expected: float) -> None:
    assert parse_fraction(value) == pytest.approx(expected)


@pytest.mark.parametrize("value", BAD_COMMON + ["1", "100%", "0%", "%", "nan", "inf", "-5%", "150%"])
def test_fraction_bad(value: str) -> None:
    assert_usage_error(parse_fraction, value, "--dnn-ci-target", ("such as 1% or 0.01",))


# -- one home per option: the table's rows say where each value goes, the markers reuse them --------------

_LIMIT_ROWS = [o for o in OPTIONS if o.field is not None]


@pytest.mark.parametrize("option", _LIMIT_ROWS, ids=lambda o: o.flag)
def test_each_limit_option_sets_its_field_from_the_command_line_and_from_its_marker(
    option: object, pytester: pytest.Pytester
) -> None:
    """The row alone wires an option: its value lands in the field it names (a tolerance or a constraint),
    and its marker keyword, where it has one, overrides that field for one test."""
    import dataclasses

    assert isinstance(option, Option) and option.field is not None and option.parse is not None
    group, key = option.field.split(".", 1)
    value = {"tolerances": "0.3", "constraints": "123"}[group] if key != "max_slowdown" else "3x"
    config = pytester.parseconfig(f"{option.flag}={value}")
    settings = Settings.from_config(config)
    parsed = option.parse(value, option.flag)
    assert getattr(getattr(settings, group), key) == parsed
    assert {f.name for f in dataclasses.fields(getattr(settings, group))} >= {key}
    if option.marker is None:
        return
    marker_name, keyword = option.marker
    other = "2.5x" if key == "max_slowdown" else "0.45" if group == "tolerances" else "77"
    mark = getattr(pytest.mark, marker_name)(**{keyword: other}).mark
    tol, cons = item_limits(
        settings,
        "t.py::x",
        mark if marker_name == "dnn_tolerance" else None,
        mark if marker_name == "dnn_constraints" else None,
    )
    assert getattr(tol if group == "tolerances" else cons, key) == option.parse(other, "marker")
    if group == "constraints":
        assert getattr(cons, f"{key}_source") == f"marker dnn_constraints({keyword}={other!r})"
