"""pytest-xdist: records reach the controller with the reports; one worker per model; no parallel CPU unasked."""

from __future__ import annotations

import re

import pytest
from helpers import FAST, load_json

pytest.importorskip("xdist")

PARALLEL_CPU = "--dnn-allow-parallel-cpu"


#: One run that the next two tests both look at (its two workers' start-up is most of a run's time): whichever
#: of them comes first makes it, in its own pytester directory; the other reads the same result and file.
_SHARED: dict[str, tuple[pytest.RunResult, dict]] = {}
BATCHES = (1, 2, 3, 4)


def _two_models_on_two_workers(tiny_project: pytest.Pytester) -> tuple[pytest.RunResult, dict]:
    if "run" not in _SHARED:
        out = tiny_project.path / "r.json"
        result = tiny_project.runpytest(
            *FAST,
            "-n",
            "2",
            PARALLEL_CPU,
            "--dnn-models=tiny,tiny_wide",
            f"--dnn-batch-sizes={','.join(map(str, BATCHES))}",
            f"--dnn-json={out}",
            "-v",
            "-p",
            "no:cacheprovider",
        )
        _SHARED["run"] = (result, load_json(out))
    return _SHARED["run"]


def test_workers_records_are_merged_at_the_controller(tiny_project: pytest.Pytester) -> None:
    result, data = _two_models_on_two_workers(tiny_project)
    result.assert_outcomes(passed=8)
    got = sorted((r["model"], r["batch_size"]) for r in data["records"])
    assert got == [(m, b) for m in ("tiny", "tiny_wide") for b in BATCHES]  # each exactly once
    assert data["environment"]["torch"] and data["environment"]["device"] == "cpu"
    assert all(r["outcome"] == "passed" for r in data["records"])
    # The records name the test as pytest does without xdist (no loadgroup "@model" suffix).
    assert {r["test"] for r in data["records"]} == {
        f"pytest_dnnbench/suite/bench_models.py::test_dnn[{m}-bs{b}]" for m in ("tiny", "tiny_wide") for b in BATCHES
    }
    # The controller prints the table, built from the workers' records.
    result.stdout.fnmatch_lines(["*dnnbench: cpu*", "tiny_wide*3*"])


def test_all_tests_of_a_model_go_to_one_worker(tiny_project: pytest.Pytester) -> None:
    result, _ = _two_models_on_two_workers(tiny_project)
    result.assert_outcomes(passed=8)
    stdout = result.stdout.str()
    assert "scheduling tests via ModelGroupScheduling" in stdout
    workers: dict[str, set[str]] = {}
    for worker, model in re.findall(r"\[(gw\d+)\][^\n]*PASSED[^\n]*test_dnn\[(\w+)-bs\d+\]", stdout):
        workers.setdefault(model, set()).add(worker)
    assert set(workers) == {"tiny", "tiny_wide"}
    assert all(len(w) == 1 for w in workers.values()), workers


def test_a_dist_mode_the_user_chose_is_kept(tiny_project: pytest.Pytester) -> None:
    result = tiny_project.runpytest(
        *FAST,
        "-n",
        "2",
        "--dist",
        "load",
        PARALLEL_CPU,
        "--dnn-models=tiny",
        "--dnn-batch-sizes=1,2",
        "-v",
        "-p",
        "no:cacheprovider",
    )
    result.assert_outcomes(passed=2)
    assert "scheduling tests via LoadScheduling" in result.stdout.str()


def test_parallel_cpu_without_opt_in_fails_fast(tiny_project: pytest.Pytester, monkeypatch) -> None:
    marker = tiny_project.path / "built"
    monkeypatch.setenv("DNN_BUILD_MARKER", str(marker))
    result = tiny_project.runpytest(*FAST, "-n", "2", "--dnn-models=tiny", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*2 pytest-xdist workers would benchmark on the CPU at the same time*--dnn-allow-parallel-cpu*"]
    )
    assert not marker.exists()  # nothing was built


def test_ordinary_parallel_run_is_left_alone(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_plain="def test_a():\n    pass\n\ndef test_b():\n    pass\n")
    result = pytester.runpytest("-n", "2", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    ours = [line for line in result.stdout.lines if "dnn" in line.lower() and not line.startswith("plugins:")]
    assert not ours


def test_scopes_group_by_model() -> None:
    from pytest_dnnbench.nodeids import model_of
    from pytest_dnnbench.nodeids import scope_of as split_scope

    names = ["tiny", "tiny_wide", "resnet18", "resnet"]
    suite = "pytest_dnnbench/suite/bench_models.py::test_dnn"
    assert split_scope(f"{suite}[tiny-bs1]", names) == split_scope(f"{suite}[tiny-bs64]", names) == "dnn-model:tiny"
    assert split_scope(f"{suite}[tiny_wide-bs1]", names) == "dnn-model:tiny_wide"
    assert model_of("tests/test_x.py::test_mine[cpu-resnet18-bs8]", names) == "resnet18"
    assert model_of("tests/test_x.py::test_mine[resnet-bs8]", names) == "resnet"
    assert split_scope("tests/test_x.py::test_plain", names) == "tests/test_x.py::test_plain"
    assert split_scope("tests/test_x.py::test_y[a]@grp", names) == "grp"  # xdist's own groups still work


def test_each_worker_is_pinned_to_its_gpu_with_a_faked_device_list(monkeypatch) -> None:
    """No machine here has several GPUs: four workers on a faked two-GPU machine, round robin."""
    import importlib

    # The module object the state's lazy import will find (in-process pytester runs elsewhere can
    # leave a stale `pytest_dnnbench.device` attribute on the package).
    device_mod = importlib.import_module("pytest_dnnbench.device")
    from types import SimpleNamespace

    from pytest_dnnbench.registry import REGISTRY
    from pytest_dnnbench.session import DnnSession
    from pytest_dnnbench.settings import Settings

    fake = device_mod.TorchProbe(
        cuda_available=lambda: True, device_count=lambda: 2, torch_version=lambda: "fake", cpu_supports=lambda p: True
    )
    monkeypatch.setattr(device_mod.TorchProbe, "default", classmethod(lambda cls: fake))
    settings = Settings(models="tiny", device="cuda", batch_sizes=(1,))

    def config(worker: str | None) -> object:
        return SimpleNamespace(workerinput={"workerid": worker}) if worker else SimpleNamespace()

    pinned = []
    for worker in ("gw0", "gw1", "gw2", "gw3"):
        session = DnnSession(config(worker), settings, REGISTRY.copy())  # type: ignore[arg-type]
        pinned.append(session.ensure_device())
    assert pinned == ["cuda:0", "cuda:1", "cuda:0", "cuda:1"]
    controller = DnnSession(config(None), settings, REGISTRY.copy())  # type: ignore[arg-type]
    assert controller.ensure_device() == "cuda:0"
