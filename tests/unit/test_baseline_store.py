"""Deployment modes in baseline files: one block per mode of a platform, each mode compared with its own rounds.

A file named by path holds one platform; a run of several modes (``--dnn-modes=eager,compile``) saves
each mode's rounds in a block of a baseline set (``pytest-dnnbench-baseline-set/2``), and a file of one
mode stays a ``pytest-dnnbench-baseline/2`` document as before. Pure logic (``save_run``,
``load_baselines``, ``baseline_checks``) on files in ``tmp_path``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from helpers import as_record
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_dnnbench import baseline_save
from pytest_dnnbench import baseline_store as bl
from pytest_dnnbench.baseline_save import save_run
from pytest_dnnbench.baseline_store import (
    SCHEMA,
    SET_SCHEMA,
    BaselineError,
    base_key,
    load_baseline,
    load_baselines,
    platform_key,
    split_key,
)
from pytest_dnnbench.gate import NO_BASELINE, BaselineSource, Tolerances, baseline_checks
from pytest_dnnbench.measure.stats import summarize
from pytest_dnnbench.record import Record

MODES = ("eager", "compile", "cudagraph", "onnxruntime", "openvino")
STAMP = "2026-12-01T00:00:00+00:00"


def record(
    mode: str = "eager",
    model: str = "resnet18",
    bs: int = 1,
    median: float = 10.0,
    device_name: str = "AMD EPYC 7B13",
    threads: int = 2,
) -> dict[str, Any]:
    """A CPU record of ``mode`` whose calls take about ``median`` ms."""
    samples = [median * (1 + 0.002 * ((i % 5) - 2)) for i in range(20)]
    lat: dict[str, Any] = summarize(samples).as_dict()
    lat.update({"samples": samples, "warmup": 3, "capped": False})
    return {
        "model": model,
        "batch_size": bs,
        "device": "cpu",
        "device_name": device_name,
        "threads": threads,
        "precision": "fp32",
        "mode": mode,
        "channels_last": False,
        "seed": 0,
        "input_size": [3, 224, 224],
        "latency_ms": lat,
        "memory_bytes": {"total": 900 * 2**20, "delta": 1000},
        "macs": 1000,
        "params": 10,
        "accuracy": {"measured": None, "reference": None, "reason": "not evaluated"},
    }


def key_of(mode: str, device_name: str = "AMD EPYC 7B13") -> str:
    return platform_key("cpu", device_name, 2, "fp32", mode)


def save(
    path: Path, records: list[dict[str, Any]], force: bool = False, max_rounds: int = 10
) -> baseline_save.SaveOutcome:
    return save_run(
        [Record.from_json(r) for r in records],
        None,
        choice=str(path),
        root=path.parent,
        max_rounds=max_rounds,
        force=force,
        regressions=0,
        interrupted=False,
    )


def rounds_by_key(path: Path) -> dict[str, list[float]]:
    """Each block's round medians of resnet18 at batch 1."""
    out: dict[str, list[float]] = {}
    for key, b in load_baselines(path).items():
        entry = b.entry("resnet18", 1)
        assert entry is not None
        out[key] = [r["median_ms"] for r in entry["rounds"]]
    return out


@pytest.fixture
def fixed_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(baseline_save, "_now", lambda: STAMP)


# -- keys ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "base"),
    [
        ({"device": "cpu", "device_name": "AMD EPYC", "threads": 2, "precision": "fp32"}, "cpu-amd-epyc-2t-fp32-*"),
        (
            {"device": "cpu", "device_name": "AMD EPYC", "threads": 2, "precision": "bf16", "channels_last": True},
            "cpu-amd-epyc-2t-bf16-*-cl",
        ),
        (
            {"device": "cuda:0", "device_name": "NVIDIA H200", "threads": None, "precision": "fp32", "tf32": True},
            "cuda-nvidia-h200-fp32-*-tf32",
        ),
        (
            {"device": "cuda:0", "device_name": "NVIDIA H200", "threads": None, "precision": "fp32", "tf32": True}
            | {"channels_last": True},
            "cuda-nvidia-h200-fp32-*-tf32-cl",
        ),
        # A device name ending like a suffix is not taken for one: the suffixes come after the mode.
        ({"device": "cpu", "device_name": "Chip CL", "threads": 4, "precision": "fp16"}, "cpu-chip-cl-4t-fp16-*"),
        ({"device": "cuda", "device_name": "GPU TF32", "threads": None, "precision": "fp16"}, "cuda-gpu-tf32-fp16-*"),
    ],
)
@pytest.mark.parametrize("mode", MODES)
def test_every_mode_of_a_platform_has_one_base_key(kwargs: dict[str, Any], base: str, mode: str) -> None:
    key = platform_key(mode=mode, **kwargs)
    assert split_key(key) == (base, mode)
    assert split_key(key, mode) == (base, mode)
    assert base_key(key) == base


def test_a_mode_with_a_dash_is_split_where_the_platform_block_says() -> None:
    key = platform_key("cuda:0", "NVIDIA H200", None, "fp32", "max-autotune", channels_last=True)
    assert split_key(key, "max-autotune") == ("cuda-nvidia-h200-fp32-*-cl", "max-autotune")
    assert base_key(key, "max-autotune") == base_key(platform_key("cuda:0", "NVIDIA H200", None, "fp32", "eager", True))
    assert split_key("k") == ("k", "")  # not a platform key: its own base


def test_other_platforms_have_other_base_keys() -> None:
    eager = base_key(key_of("eager"))
    assert base_key(key_of("compile", device_name="Intel Xeon")) != eager
    assert base_key(platform_key("cpu", "AMD EPYC 7B13", 4, "fp32", "eager")) != eager
    assert base_key(platform_key("cpu", "AMD EPYC 7B13", 2, "bf16", "eager")) != eager
    assert base_key(platform_key("cpu", "AMD EPYC 7B13", 2, "fp32", "eager", channels_last=True)) != eager
    gpu = platform_key("cuda:0", "X", None, "fp32", "eager")
    assert base_key(platform_key("cuda:0", "X", None, "fp32", "eager", tf32=True)) != base_key(gpu)


# -- saving ----------------------------------------------------------------------------------------


def test_one_mode_to_a_path_writes_the_same_file_as_before(tmp_path: Path, fixed_clock: None) -> None:
    path = tmp_path / "base.json"
    recs = [record(), record(model="mobilenet_v2", bs=8)]
    out = save(path, recs)
    assert not out.failed and out.saved == ["base.json"]
    expected = baseline_save.merge_records(
        None, [as_record(r) for r in recs], bl.platform_from_record(as_record(recs[0])), max_rounds=10, created=STAMP
    )
    assert path.read_text(encoding="utf-8") == baseline_save.document_text(expected)
    assert json.loads(path.read_text(encoding="utf-8"))["schema"] == SCHEMA
    assert out.notes == [
        "baseline saved: base.json (2 entries updated, 0 kept; rounds per updated entry: 1 of at most 10)"
    ]
    # A second run merges into it, still one platform's document.
    save(path, [record(median=11.0)])
    assert rounds_by_key(path) == {key_of("eager"): [10.0, 11.0]}
    assert load_baseline(path).key == key_of("eager")


def test_three_modes_to_one_path_make_a_set_with_each_modes_rounds(tmp_path: Path) -> None:
    path = tmp_path / "base.json"
    out = save(path, [record("eager", median=10.0), record("compile", median=7.0), record("onnxruntime", median=5.0)])
    assert not out.failed and out.saved == ["base.json"]
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert doc["schema"] == SET_SCHEMA and sorted(doc) == ["baselines", "schema"]
    keys = [block["platform"]["key"] for block in doc["baselines"]]
    assert keys == sorted(keys) == sorted(key_of(m) for m in ("eager", "compile", "onnxruntime"))
    assert all(block["schema"] == SCHEMA for block in doc["baselines"])
    assert all(bl.baseline_from_document(block).key == k for block, k in zip(doc["baselines"], keys, strict=True))
    assert rounds_by_key(path) == {key_of("compile"): [7.0], key_of("eager"): [10.0], key_of("onnxruntime"): [5.0]}
    found = load_baselines(path)
    assert not found.single and found.modes == ["compile", "eager", "onnxruntime"]
    assert found.base_key == "cpu-amd-epyc-7b13-2t-fp32-*"
    assert "baseline saved: base.json, mode compile (1 entry updated, 0 kept" in "\n".join(out.notes)
    assert "now holds the modes compile, eager, onnxruntime" in out.notes[-1]
    # load_baseline reads one platform: a set of several says where to go.
    with pytest.raises(BaselineError, match="load_baselines") as exc:
        load_baseline(path)
    assert str(path) in str(exc.value)


def test_a_second_save_merges_each_mode_into_its_own_block(tmp_path: Path) -> None:
    path = tmp_path / "base.json"
    save(path, [record("eager", median=10.0), record("compile", median=7.0)])
    save(path, [record("compile", median=7.5), record("eager", median=10.5)])
    save(path, [record("compile", median=7.2), record("compile", model="vgg16", median=70.0)])
    assert rounds_by_key(path) == {key_of("compile"): [7.0, 7.5, 7.2], key_of("eager"): [10.0, 10.5]}
    assert sorted(load_baselines(path)[key_of("compile")].entries) == [("resnet18", 1), ("vgg16", 1)]
    assert sorted(load_baselines(path)[key_of("eager")].entries) == [("resnet18", 1)]


def test_a_second_mode_upgrades_a_single_file_and_keeps_its_rounds(tmp_path: Path) -> None:
    path = tmp_path / "base.json"
    for m in (10.0, 10.2, 9.9):
        save(path, [record("eager", median=m)])
    old = json.loads(path.read_text(encoding="utf-8"))
    assert old["schema"] == SCHEMA
    out = save(path, [record("compile", median=7.0)])
    assert not out.failed
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert doc["schema"] == SET_SCHEMA
    (eager,) = [b for b in doc["baselines"] if b["platform"]["key"] == key_of("eager")]
    assert eager == old  # every value of the old file, unchanged
    assert rounds_by_key(path) == {key_of("compile"): [7.0], key_of("eager"): [10.0, 10.2, 9.9]}
    assert "now holds the modes compile, eager" in out.notes[-1]
    # The set stays a set; the old mode goes on merging into its block.
    save(path, [record("eager", median=10.1)])
    assert rounds_by_key(path)[key_of("eager")] == [10.0, 10.2, 9.9, 10.1]


def test_auto_still_writes_one_single_platform_file_per_mode(tmp_path: Path) -> None:
    out = save_run(
        [Record.from_json(record(m)) for m in ("eager", "compile", "openvino")],
        None,
        choice="auto",
        root=tmp_path,
        max_rounds=10,
        force=False,
        regressions=0,
        interrupted=False,
    )
    assert not out.failed
    files = sorted((tmp_path / "baselines").glob("*.json"))
    assert [p.stem for p in files] == sorted(key_of(m) for m in ("eager", "compile", "openvino"))
    for p in files:
        assert json.loads(p.read_text(encoding="utf-8"))["schema"] == SCHEMA
        assert load_baseline(p).key == p.stem


@pytest.mark.parametrize("first", [["eager"], ["eager", "compile"]])
def test_another_cpu_is_refused_and_the_file_left_untouched(tmp_path: Path, first: list[str]) -> None:
    path = tmp_path / "base.json"
    save(path, [record(m) for m in first])
    before = path.read_bytes()
    out = save(path, [record("eager", device_name="Intel Xeon"), record("compile", device_name="Intel Xeon")])
    assert out.failed and not out.saved
    (note,) = out.notes
    held = ", ".join(sorted(key_of(m) for m in first))
    assert note.startswith(f"baseline not saved: base.json is for platform{'s' if len(first) > 1 else ''} {held}, ")
    assert key_of("compile", "Intel Xeon") in note and "--dnn-baseline-force" in note
    assert path.read_bytes() == before


def test_one_mode_of_another_cpu_is_refused_as_before(tmp_path: Path) -> None:
    path = tmp_path / "base.json"
    save(path, [record("eager")])
    before = path.read_bytes()
    out = save(path, [record("eager", device_name="Intel Xeon")])
    assert out.failed and path.read_bytes() == before
    assert out.notes == [
        f"baseline not saved: base.json is for platform {key_of('eager')}, this run is {key_of('eager', 'Intel Xeon')} "
        "(choose another path, or --dnn-baseline-force to replace its platform)"
    ]


def test_force_replaces_another_platforms_set(tmp_path: Path) -> None:
    path = tmp_path / "base.json"
    save(path, [record("eager"), record("compile")])
    out = save(
        path,
        [record("eager", device_name="Intel Xeon", median=20.0), record("cudagraph", device_name="Intel Xeon")],
        force=True,
    )
    assert not out.failed and "were replaced (--dnn-baseline-force)" in out.notes[0]
    assert rounds_by_key(path) == {key_of("cudagraph", "Intel Xeon"): [10.0], key_of("eager", "Intel Xeon"): [20.0]}


def test_force_over_one_platform_with_one_mode_takes_the_file_over_as_before(tmp_path: Path) -> None:
    path = tmp_path / "base.json"
    save(path, [record("eager", model="vgg16")])
    out = save(path, [record("eager", device_name="Intel Xeon")], force=True)
    assert not out.failed
    b = load_baseline(path)
    assert b.key == key_of("eager", "Intel Xeon")
    assert sorted(b.entries) == [("resnet18", 1), ("vgg16", 1)]  # its entries kept, as --dnn-baseline-force did


def test_records_of_two_cpus_are_never_saved_to_one_path(tmp_path: Path) -> None:
    path = tmp_path / "base.json"
    for force in (False, True):
        out = save(path, [record("eager"), record("compile", device_name="Intel Xeon")], force=force)
        assert out.failed and not path.exists()
        assert out.notes[0].startswith("baseline not saved: the records come from 2 platforms (")
        assert "without a path" in out.notes[0]


def test_several_processes_saving_modes_to_one_file_keep_every_round(tmp_path: Path) -> None:
    saver = tmp_path / "saver.py"
    saver.write_text(
        "import json, sys, time\n"
        "from pathlib import Path\n"
        "sys.path[:0] = [sys.argv[4], str(Path(sys.argv[4]).parent)]  # this file, and tests/ (helpers)\n"
        "from test_baseline_store import record, save\n"
        "import pytest_dnnbench.baseline_save as store\n"
        "write = store.save_document\n"
        "store.save_document = lambda *a, **k: (time.sleep(0.2), write(*a, **k))[1]  # widen the race window\n"
        "path, mode, start_at = Path(sys.argv[1]), sys.argv[2], float(sys.argv[3])\n"
        "while time.time() < start_at:\n"
        "    time.sleep(0.005)\n"
        "out = save(path, [record(mode)], max_rounds=20)\n"
        "print(json.dumps({'failed': out.failed, 'notes': out.notes}))\n"
    )
    path = tmp_path / "base.json"
    modes = ["eager", "compile", "onnxruntime"] * 2
    start_at = time.time() + 3.0
    procs = [
        subprocess.Popen(
            [sys.executable, str(saver), str(path), m, str(start_at), str(Path(__file__).parent)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for m in modes
    ]
    for p in procs:
        stdout, stderr = p.communicate(timeout=120)
        assert p.returncode == 0, stderr
        assert not json.loads(stdout.strip().splitlines()[-1])["failed"]
    assert {k: len(v) for k, v in rounds_by_key(path).items()} == {key_of(m): 2 for m in set(modes)}


@settings(max_examples=25, deadline=None)
@given(
    runs=st.lists(st.lists(st.sampled_from(MODES[:3]), min_size=1, max_size=3, unique=True), min_size=1, max_size=6),
    max_rounds=st.integers(1, 4),
)
def test_each_mode_keeps_one_round_per_run_that_saved_it(runs: list[list[str]], max_rounds: int) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "base.json"
        for i, modes in enumerate(runs):
            out = save(path, [record(m, median=10.0 + i) for m in modes], max_rounds=max_rounds)
            assert not out.failed, out.notes
        saved = {m for modes in runs for m in modes}
        found = load_baselines(path)
        assert found.single == (len(saved) == 1)
        assert sorted(found) == sorted(key_of(m) for m in saved)
        for m in saved:
            expected = [10.0 + i for i, modes in enumerate(runs) if m in modes][-max_rounds:]
            assert rounds_by_key(path)[key_of(m)] == expected


# -- comparing -------------------------------------------------------------------------------------


def _latency(checks: list[Any]) -> Any:
    return next(c for c in checks if c.metric == "latency")


def test_each_mode_is_compared_with_its_own_rounds(tmp_path: Path) -> None:
    path = tmp_path / "base.json"
    for _ in range(3):
        save(path, [record("eager", median=10.0), record("compile", median=5.0)])
    source = BaselineSource(str(path), tmp_path)
    checks, info = baseline_checks(source, as_record(record("compile", median=5.0)), Tolerances())
    assert info["status"] == "compared" and info["key"] == key_of("compile") and info["rounds"] == 3
    assert _latency(checks).get("baseline") == pytest.approx(5.0) and all(c.passed for c in checks)
    # eager's 10 ms would pass against eager and fails against compile's 5 ms: each against its own.
    checks, info = baseline_checks(source, as_record(record("eager", median=10.0)), Tolerances())
    assert info["status"] == "compared" and _latency(checks).get("baseline") == pytest.approx(10.0)
    assert all(c.passed for c in checks)
    checks, _ = baseline_checks(source, as_record(record("compile", median=10.0)), Tolerances())
    assert not _latency(checks).passed


def test_a_mode_the_file_lacks_says_so(tmp_path: Path) -> None:
    path = tmp_path / "base.json"
    save(path, [record("eager"), record("compile")])
    checks, info = baseline_checks(BaselineSource(str(path), tmp_path), as_record(record("onnxruntime")), Tolerances())
    assert checks == [] and info["status"] == "no-mode" and "no-mode" in NO_BASELINE
    assert info["reason"] == (
        "base.json has no rounds for mode onnxruntime (it holds modes compile, eager); "
        "save some with --dnn-save-baseline"
    )
    required, _ = baseline_checks(
        BaselineSource(str(path), tmp_path, require=True), as_record(record("openvino")), Tolerances()
    )
    (presence,) = required
    assert presence.metric == "presence" and not presence.passed and "no rounds for mode openvino" in presence.message


def test_a_single_file_of_another_mode_is_a_missing_mode_not_another_platform(tmp_path: Path) -> None:
    path = tmp_path / "base.json"
    save(path, [record("eager")])
    _, info = baseline_checks(BaselineSource(str(path), tmp_path), as_record(record("compile")), Tolerances())
    assert info["status"] == "no-mode"
    assert info["reason"].startswith("base.json has no rounds for mode compile (it holds mode eager);")


def test_another_cpu_is_still_a_platform_mismatch(tmp_path: Path) -> None:
    path = tmp_path / "base.json"
    save(path, [record("eager"), record("compile")])
    rec = record("compile", device_name="Intel Xeon")
    _, info = baseline_checks(BaselineSource(str(path), tmp_path), as_record(rec), Tolerances())
    assert info["status"] == "platform-mismatch"
    assert info["reason"] == (
        f"base.json is for platforms {key_of('compile')}, {key_of('eager')}, "
        f"this run is {key_of('compile', 'Intel Xeon')}"
    )
    single = tmp_path / "one.json"
    save(single, [record("eager")])
    _, info = baseline_checks(BaselineSource(str(single), tmp_path), as_record(rec), Tolerances())
    assert (
        info["reason"] == f"one.json is for platform {key_of('eager')}, this run is {key_of('compile', 'Intel Xeon')}"
    )


def test_auto_files_are_found_per_mode(tmp_path: Path) -> None:
    save_run(
        [Record.from_json(record("eager", median=10.0)), Record.from_json(record("compile", median=5.0))],
        None,
        choice="auto",
        root=tmp_path,
        max_rounds=10,
        force=False,
        regressions=0,
        interrupted=False,
    )
    source = BaselineSource("auto", tmp_path)
    checks, info = baseline_checks(source, as_record(record("compile", median=5.0)), Tolerances())
    assert info["path"] == f"baselines/{key_of('compile')}.json" and _latency(checks).get("baseline") == 5.0
    _, info = baseline_checks(source, as_record(record("openvino")), Tolerances())
    assert info["status"] == "no-file"


# -- bad sets ----------------------------------------------------------------------------------------


def _set_text(tmp_path: Path) -> dict[str, Any]:
    path = tmp_path / "good.json"
    save(path, [record("eager"), record("compile")])
    doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return doc


@pytest.mark.parametrize(
    ("spoil", "message"),
    [
        (lambda d: d["baselines"][1]["entries"][0].update(batch_size=0), "block 1 \\(KEY1\\): entry 0 .*'batch_size'"),
        (lambda d: d["baselines"][0]["entries"][0].pop("model"), "block 0 \\(KEY0\\): entry 0 has no 'model' name"),
        (lambda d: d["baselines"][1].update(schema="other"), "block 1 \\(KEY1\\): schema 'other' is not"),
        (lambda d: d["baselines"].__setitem__(1, []), "block 1: must be a JSON object"),
        (lambda d: d["baselines"][1].update(platform={}), "block 1: 'platform' must be an object"),
        (lambda d: d["baselines"].append(d["baselines"][0]), "block 2 \\(KEY0\\): repeats platform KEY0"),
        (lambda d: d.update(baselines=[]), "'baselines' must be a non-empty list"),
        (
            lambda d: d["baselines"][1]["platform"].update(key=key_of("onnxruntime", "Intel Xeon")),
            "block 1 .*: is another platform than KEY0",
        ),
    ],
)
def test_a_bad_block_names_the_file_and_the_block(tmp_path: Path, spoil: Any, message: str) -> None:
    doc = _set_text(tmp_path)
    spoil(doc)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    before = path.read_bytes()
    pattern = message.replace("KEY0", key_of("compile")).replace("KEY1", key_of("eager"))
    for load in (load_baselines, load_baseline):
        with pytest.raises(BaselineError, match=pattern) as exc:
            load(path)
        assert f"baseline file {path}" in str(exc.value)
    checks, info = baseline_checks(BaselineSource(str(path), tmp_path), as_record(record("eager")), Tolerances())
    assert info["status"] == "error" and checks[0].metric == "file"
    out = save(path, [record("eager")])
    assert out.failed and "left untouched" in out.notes[0]
    assert path.read_bytes() == before
