"""Hostile JSON files: every file the plugin reads goes through one loader (``pytest_dnnbench.jsonfile``),
which reads it once and refuses what it cannot use with one clean error naming the file.

A property test feeds random documents (deep nesting, integers of thousands of digits, NaN and Infinity,
wrong types at every key of real files, random bytes, truncations) to every file loader; pytester runs
show the errors a user sees (a usage error, exit status 4, never an INTERNALERROR), that a junk runtime
floor cache is never trusted, and that the report command fails cleanly (exit status 2, no empty folder)
or writes a non-finite figure as null with a note, and reads a FIFO.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import FAST, load_json
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_dnnbench.baseline_store import BaselineError, load_baseline, load_baselines, platform_key
from pytest_dnnbench.measure.floor import FLOOR_CACHE_ENV, shared_floors
from pytest_dnnbench.report.inputs import InputError, by_mode, load_baseline_platform, load_platform
from pytest_dnnbench.results import load_results

DATA = Path(__file__).parents[1] / "data"
#: Real files of earlier versions (read as this version writes them): the seeds of the mutations.
SEEDS = {
    "results": DATA / "legacy-0.1.0" / "results.json",
    "results-modes": DATA / "legacy-0.1.0-70cccd0" / "results.json",
    "baseline": DATA / "legacy-0.1.0" / "baseline.json",
    "baseline-set": DATA / "legacy-0.1.0-70cccd0" / "baseline-set.json",
}
DEEP = "[" * 100_000 + "]" * 100_000
#: ``jsonfile.MAX_DEPTH`` (spelled out: the pytester tests import nothing new, so that they run, and fail,
#: on the code before the loader).
MAX_DEPTH = 200
LONG_INT = '{"schema": "pytest-dnnbench-baseline/2", "max_rounds": ' + "7" * 5000 + "}"

#: Each file loader and the one exception type it documents.
LOADERS: dict[str, tuple[Callable[[Path], object], type[Exception]]] = {
    "load_baseline": (load_baseline, BaselineError),
    "load_baselines": (load_baselines, BaselineError),
    "load_results": (load_results, ValueError),
    "load_platform": (load_platform, InputError),
    "load_baseline_platform": (load_baseline_platform, InputError),
}


def floors_read_from(folder: Path) -> dict[str, Any]:
    """What the runtime-floor cache reader trusts in ``folder`` (it never raises)."""
    before = os.environ.get(FLOOR_CACHE_ENV)
    os.environ[FLOOR_CACHE_ENV] = str(folder)
    try:
        return shared_floors()
    finally:
        if before is None:
            del os.environ[FLOOR_CACHE_ENV]
        else:
            os.environ[FLOOR_CACHE_ENV] = before


def check_every_loader(path: Path) -> None:
    """Every loader returns, or raises its documented error naming ``path``; nothing else escapes.
    The report command's loading goes on to split the modes, as the command does."""
    for name, (load, error) in LOADERS.items():
        try:
            loaded = load(path)
        except error as exc:
            assert str(path) in str(exc), (name, str(exc))
            assert "\n" not in str(exc).strip(), (name, str(exc))
        else:
            if name == "load_platform":
                by_mode(loaded)  # type: ignore[arg-type]
    # the runtime-floor cache: a file named for a library, read with the others of its folder
    folder = path.parent / "floors"
    folder.mkdir(exist_ok=True)
    (folder / "tinymodels.json").write_bytes(path.read_bytes())
    for key, floor in floors_read_from(folder).items():
        assert key == "tinymodels" and floor.error is None
        assert isinstance(floor.bytes, int) and 2**20 <= floor.bytes < 2**40  # the floor module's bounds
        assert floor.seconds is None or (math.isfinite(floor.seconds) and floor.seconds >= 0)


# -- random documents -------------------------------------------------------------------------------------

KEYS = [
    "schema", "platform", "key", "device", "device_name", "precision", "mode", "entries", "model", "batch_size",
    "rounds", "median_ms", "ci_median_ms", "latency_ms", "median", "memory_bytes", "total", "fps", "per_image_ms",
    "macs", "params", "accuracy", "measured", "reference", "top1", "top5", "records", "environment", "missing",
    "baselines", "max_rounds", "library", "bytes", "torch_bytes", "seconds", "error", "samples", "outcome",
]  # fmt: skip
SCHEMAS = [
    "pytest-dnnbench/1",
    "pytest-dnnbench/2",
    "pytest-dnnbench/3",
    "pytest-dnnbench-baseline/1",
    "pytest-dnnbench-baseline/2",
    "pytest-dnnbench-baseline-set/1",
    "pytest-dnnbench-baseline-set/2",
]
LITERALS = ["null", "true", "false", "NaN", "Infinity", "-Infinity", "1e400", "-1e999", "0", "-5", "1e300", '""']

leaf_text = st.one_of(
    st.sampled_from(LITERALS),
    st.integers().map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.integers(300, 6000).map(lambda n: "9" * n),  # integers far too long for a figure, or for int()
    st.sampled_from(SCHEMAS + KEYS).map(json.dumps),
    st.text(max_size=8).map(json.dumps),
)
json_text = st.recursive(
    leaf_text,
    lambda kids: st.one_of(
        st.lists(kids, max_size=4).map(lambda xs: "[" + ",".join(xs) + "]"),
        st.lists(st.tuples(st.sampled_from(KEYS), kids), max_size=5).map(
            lambda kv: "{" + ",".join(f"{json.dumps(k)}: {v}" for k, v in kv) + "}"
        ),
        st.tuples(st.integers(1, 3000), kids).map(lambda t: "[" * t[0] + t[1] + "]" * t[0]),  # deep
    ),
    max_leaves=25,
)
schema_documents = st.tuples(st.sampled_from(SCHEMAS), st.lists(st.tuples(st.sampled_from(KEYS), json_text))).map(
    lambda t: "{" + ", ".join([f'"schema": "{t[0]}"', *(f"{json.dumps(k)}: {v}" for k, v in t[1])]) + "}"
)
#: Python values json.dumps writes (NaN and Infinity as the non-JSON literals, huge integers in full).
values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(),
        st.sampled_from([10**400, -(10**30), 2**70, -5, 0, float("nan"), float("inf"), -1e300]),
        st.text(max_size=6),
        st.sampled_from(SCHEMAS),
    ),
    lambda kids: st.one_of(st.lists(kids, max_size=3), st.dictionaries(st.sampled_from(KEYS), kids, max_size=3)),
    max_leaves=8,
)


def paths(doc: object, prefix: tuple[object, ...] = ()) -> Iterator[tuple[object, ...]]:
    """Every place in ``doc`` (keys and indices from the top), the top itself first."""
    yield prefix
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from paths(v, (*prefix, i))


@st.composite
def mutated_seeds(draw: st.DrawFn) -> str:
    """A real file with one value anywhere replaced by another of any type (or a key removed)."""
    doc = json.loads(SEEDS[draw(st.sampled_from(sorted(SEEDS)))].read_text(encoding="utf-8"))
    doc = copy.deepcopy(doc)
    places = [p for p in paths(doc) if p]
    for place in draw(st.lists(st.sampled_from(places), min_size=1, max_size=3)):
        parent: Any = doc
        for step in place[:-1]:  # (an earlier change may have replaced the way there: then it is skipped)
            ok = (isinstance(parent, dict) and step in parent) or (
                isinstance(parent, list) and isinstance(step, int) and step < len(parent)
            )
            parent = parent[step] if ok else None
        last = place[-1]
        if isinstance(parent, dict) and last in parent:
            if draw(st.integers(0, 3)) == 0:
                del parent[last]
            else:
                parent[last] = draw(values)
        elif isinstance(parent, list) and isinstance(last, int) and last < len(parent):
            parent[last] = draw(values)
    text = json.dumps(doc)
    if draw(st.integers(0, 9)) == 0:
        text = text[: draw(st.integers(0, len(text)))]  # truncated
    return text


documents = st.one_of(
    json_text,
    schema_documents,
    mutated_seeds(),
    st.binary(max_size=300),
    st.sampled_from([DEEP, LONG_INT, "", "   ", "\ufeff{}", '{"schema": "pytest-dnnbench/2", "records": NaN}']),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(documents)
def test_every_loader_gives_a_result_or_its_documented_error(
    tmp_path_factory: pytest.TempPathFactory, doc: Any
) -> None:
    folder = tmp_path_factory.mktemp("doc")
    path = folder / "input.json"
    path.write_bytes(doc if isinstance(doc, bytes) else doc.encode("utf-8", "surrogatepass"))
    check_every_loader(path)


def test_the_seeds_load() -> None:
    """The property test's seeds are usable files: their mutations reach every check of the loaders."""
    assert load_results(SEEDS["results"])["records"]
    assert len(load_baselines(SEEDS["baseline-set"])) > 1
    assert load_baseline(SEEDS["baseline"]).entries


# -- the loader itself -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (DEEP, f"nests its objects and lists deeper than {MAX_DEPTH} levels"),
        ('{"a": ' + "[" * 300 + "]" * 300 + "}", f"deeper than {MAX_DEPTH} levels"),
        (LONG_INT, "an integer of 5,000 digits"),
        ("[" + "9" * 320 + "]", "an integer of 320 digits at line 1, column 2, too large to be a figure"),
        ('{"fps": NaN}', "holds NaN at line 1, column 9, which is not a number JSON allows"),
        ('{\n "n": "NaN",\n "fps": -Infinity}', "holds -Infinity at line 3, column 9"),
        ('{"fps": 1e400}', "the number 1e400 at line 1, column 9, too large"),
        ("", "is empty"),
        ('{"a": [1, 2', "is truncated"),
        ("{oops}", "is not valid JSON"),
    ],
)
def test_the_loader_refuses_with_the_file_and_the_problem(tmp_path: Path, content: str, problem: str) -> None:
    from pytest_dnnbench.jsonfile import JsonFileError
    from pytest_dnnbench.jsonfile import load_json as load_any

    path = tmp_path / "f.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(JsonFileError) as exc:
        load_any(path, "baseline file")
    assert str(exc.value).startswith(f"baseline file {path} ") and problem in str(exc.value)


def test_the_loader_names_a_path_it_cannot_open(tmp_path: Path) -> None:
    from pytest_dnnbench.jsonfile import JsonFileError
    from pytest_dnnbench.jsonfile import load_json as load_any

    loop = tmp_path / "loop.json"
    loop.symlink_to(loop)
    with pytest.raises(JsonFileError, match=f"cannot read baseline file {loop}: it is a loop of symbolic links"):
        load_any(loop, "baseline file")
    with pytest.raises(JsonFileError, match="it is a directory"):
        load_any(tmp_path, "baseline file")
    with pytest.raises(JsonFileError, match="it does not exist"):
        load_any(tmp_path / "nowhere.json", "baseline file")
    with pytest.raises(JsonFileError, match="it is a device, not a file"):
        load_any("/dev/zero", "baseline file")  # never read to the end of its bytes


def test_brackets_inside_strings_do_not_count() -> None:
    from pytest_dnnbench.jsonfile import MAX_DEPTH as LIMIT
    from pytest_dnnbench.jsonfile import loads_json, nesting_depth

    assert LIMIT == MAX_DEPTH
    text = json.dumps({"a": "[" * 1000, "b": [[["]]]]"]]]})
    assert nesting_depth(text) == 4
    assert loads_json(text) == {"a": "[" * 1000, "b": [[["]]]]"]]]}


def test_an_unclosed_string_full_of_escapes_is_scanned_in_linear_time() -> None:
    from pytest_dnnbench.jsonfile import JsonFileError, loads_json

    text = "[" * 150 + '"' + '\\"' * 300_000
    started = time.perf_counter()
    with pytest.raises(JsonFileError, match="truncated"):
        loads_json(text)
    assert time.perf_counter() - started < 5


def test_non_finite_floats_become_null_with_their_places() -> None:
    from pytest_dnnbench.jsonfile import finite_or_null

    doc = {"a": [1.0, float("nan")], "b": {"c": float("-inf")}, "d": "nan"}
    clean, notes = finite_or_null(doc, "records[0]")
    assert clean == {"a": [1.0, None], "b": {"c": None}, "d": "nan"}
    assert notes == ["records[0].a[1]: nan", "records[0].b.c: -inf"]
    assert finite_or_null({"a": 1.0}) == ({"a": 1.0}, [])


# -- pytest: --dnn-baseline and the automatic baseline ------------------------------------------------------


def hostile(kind: str, path: Path) -> Path:
    if kind == "symlink-loop":
        path.symlink_to(path)
    elif kind == "deep":
        path.write_text(DEEP, encoding="utf-8")
    else:
        path.write_text(LONG_INT, encoding="utf-8")
    return path


PROBLEMS = {
    "symlink-loop": "it is a loop of symbolic links",
    "deep": f"nests its objects and lists deeper than {MAX_DEPTH} levels",
    "long-int": "an integer of 5,000 digits",
}


@pytest.mark.parametrize("kind", sorted(PROBLEMS))
def test_a_hostile_baseline_file_is_a_usage_error(tiny_project: pytest.Pytester, kind: str) -> None:
    path = hostile(kind, tiny_project.path / "base.json")
    result = tiny_project.runpytest(*FAST, "--dnn-models=tiny", "--dnn-batch-sizes=1", f"--dnn-baseline={path}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert "INTERNALERROR" not in err + result.stdout.str()
    assert "--dnn-baseline: " in err and str(path) in err and PROBLEMS[kind] in err
    if kind != "symlink-loop":
        assert path.read_text(encoding="utf-8") in (DEEP, LONG_INT)  # left untouched


def test_a_baseline_at_a_fifo_no_one_writes_is_refused_without_waiting(tiny_project: pytest.Pytester) -> None:
    """Opening a FIFO waits for a writer: a baseline path is checked for a regular file before it is opened."""
    import os
    import stat

    fifo = tiny_project.path / "base.json"
    os.mkfifo(fifo)
    result = tiny_project.runpytest(*FAST, "--dnn-models=tiny", "--dnn-batch-sizes=1", f"--dnn-baseline={fifo}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--dnn-baseline: cannot read baseline file *base.json: it is not a regular file*"])
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


@pytest.mark.parametrize("kind", sorted(PROBLEMS))
def test_a_hostile_automatic_baseline_is_a_usage_error(tiny_project: pytest.Pytester, kind: str) -> None:
    from pytest_dnnbench.measure.backends import cpu_model_name

    key = platform_key("cpu", cpu_model_name(), 1, "fp32", "eager")
    (tiny_project.path / "baselines").mkdir()
    path = hostile(kind, tiny_project.path / "baselines" / f"{key}.json")
    result = tiny_project.runpytest(*FAST, "--dnn-models=tiny", "--dnn-batch-sizes=1", "--dnn-threads=1")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert "INTERNALERROR" not in err + result.stdout.str()
    assert "automatic baseline of this platform is unusable" in err
    assert str(path) in err and PROBLEMS[kind] in err


# -- pytest: the runtime-floor cache -----------------------------------------------------------------------


@pytest.mark.parametrize("junk", ["-5", "1e300", '"lots"', str(2**50)])
def test_a_junk_floor_cache_is_not_trusted(
    tiny_project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, junk: str
) -> None:
    cache = tmp_path / "floors"
    cache.mkdir()
    (cache / "tinymodels.json").write_text(
        f'{{"library": "tinymodels", "bytes": {junk}, "torch_bytes": {junk}, "seconds": 2.5, "error": null}}',
        encoding="utf-8",
    )
    monkeypatch.setenv(FLOOR_CACHE_ENV, str(cache))
    result = tiny_project.runpytest(
        *FAST, "--dnn-models=tiny", "--dnn-batch-sizes=1", "--dnn-json=r.json", "--dnn-max-memory=100MB"
    )
    (record,) = load_json(tiny_project.path / "r.json")["records"]
    memory = record["memory_bytes"]
    # A process holding torch is hundreds of MB: its total is plausible, and the limit of 100MB is honestly broken.
    assert 100e6 < memory["runtime_floor"] < 2**40 and 100e6 < memory["total"] < 2**40
    assert record["outcome"] == "failed"
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert "1e+300" not in result.stdout.str()


def test_only_plausible_cached_floors_are_read(tmp_path: Path) -> None:
    good = {"library": "tinymodels", "bytes": 700_000_000, "torch_bytes": 690_000_000, "seconds": 2.5, "error": None}
    (tmp_path / "tinymodels.json").write_text(json.dumps(good))
    (tmp_path / "timm.json").write_text(json.dumps({**good, "library": "timm", "bytes": -5}))
    (tmp_path / "torch.json").write_text(json.dumps({**good, "library": "timm"}))  # named for another library
    (tmp_path / "torchvision.json").write_text("[" * 10_000)
    found = floors_read_from(tmp_path)
    assert list(found) == ["tinymodels"] and found["tinymodels"].bytes == 700_000_000


# -- the report command ------------------------------------------------------------------------------------

LEGACY_RESULTS = SEEDS["results"]


def report(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    from pytest_dnnbench.__main__ import main

    rc = main(["report", *args])
    return rc, capsys.readouterr().err


def with_figure(value: str) -> str:
    """The legacy results file with its first record's fps replaced by ``value`` (as written by hand)."""
    doc = json.loads(LEGACY_RESULTS.read_text(encoding="utf-8"))
    doc["records"][0]["fps"] = "@@"
    return json.dumps(doc, indent=1).replace('"@@"', value)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (with_figure("NaN"), "holds NaN"),
        (with_figure("Infinity"), "holds Infinity"),
        (with_figure("-Infinity"), "holds -Infinity"),
        (with_figure("1e999"), "the number 1e999 at line"),
        (with_figure("9" * 5000), "an integer of 5,000 digits"),
        (DEEP, f"deeper than {MAX_DEPTH} levels"),
    ],
)
def test_the_report_command_refuses_a_hostile_input_cleanly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, problem: str
) -> None:
    path = tmp_path / "res.json"
    path.write_text(content, encoding="utf-8")
    out = tmp_path / "out"
    rc, err = report(capsys, str(path), "--out", str(out))
    assert rc == 2
    (line,) = err.strip().splitlines()
    assert line.startswith(f"error: report input {path} ") and problem in line
    assert not out.exists()


def test_the_report_writes_a_non_finite_figure_as_null_with_a_note(tmp_path: Path) -> None:
    """A figure a computation made infinite (the loader refuses them in files) is null, with a note."""
    pytest.importorskip("matplotlib")
    from pytest_dnnbench.report.build import write_report

    platform = load_platform(LEGACY_RESULTS)
    platform.records[0]["fps"] = float("inf")
    platform.records[1]["memory_bytes"] = {**platform.records[1]["memory_bytes"], "total": float("nan")}
    write_report([platform], tmp_path / "out")
    written = load_json(tmp_path / "out" / "results.json")
    assert written["records"][0]["fps"] is None and written["records"][1]["memory_bytes"]["total"] is None
    first, second = platform.records[0], platform.records[1]
    assert written["notes"] == [
        f"record 0 ({first['model']} at batch {first['batch_size']}): not finite, written as null: fps: inf",
        f"record 1 ({second['model']} at batch {second['batch_size']}): not finite, written as null: "
        "memory_bytes.total: nan",
    ]


def serve_like_a_pipe(fifo: Path, data: bytes, stop: threading.Event) -> None:
    """Write ``data`` once to the first reader of ``fifo``; a later reader gets an empty stream at once,
    as a shell's process substitution (``<(cat file)``) gives."""
    with open(fifo, "wb") as fh:  # blocks until a reader opens it
        fh.write(data)
    while not stop.is_set():
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:  # no reader now
            time.sleep(0.01)
            continue
        os.close(fd)


def test_the_report_command_reads_a_fifo_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    fifo = tmp_path / "results.fifo"
    os.mkfifo(fifo)
    stop = threading.Event()
    writer = threading.Thread(target=serve_like_a_pipe, args=(fifo, LEGACY_RESULTS.read_bytes(), stop), daemon=True)
    writer.start()
    try:
        rc, err = report(capsys, str(fifo), "--out", str(tmp_path / "out"))
    finally:
        stop.set()
        if writer.is_alive():  # the command never opened it: release the writer
            with contextlib.suppress(OSError):
                os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))
        writer.join(5)
    assert rc == 0, err
    written = load_json(tmp_path / "out" / "results.json")
    assert len(written["records"]) == len(load_results(LEGACY_RESULTS)["records"])
