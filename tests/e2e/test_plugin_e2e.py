"""End-to-end tests through pytester: what a user types, what they get."""

from __future__ import annotations

import importlib
import re
import sys

import pytest
from helpers import FAST, TINY_CONFTEST, load_json

from pytest_dnnbench.results import LATENCY_KEYS, RECORD_KEYS, SCHEMA

pytest.importorskip("torch")


def _table_rows(stdout: str) -> dict[tuple[str, str], list[str]]:
    """Rows of the end-of-session table, keyed by (model, batch)."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(r"=+ dnnbench: ", line))
    header = lines[start + 1].split()
    assert header[:7] == ["model", "batch", "ms/image", "FPS", "memory", "FLOPs", "params"]
    rows = {}
    for line in lines[start + 3 :]:
        if not line.strip() or line.startswith(("memory:", "results written", "=", "-")):
            break
        cells = line.split()
        rows[(cells[0], cells[1])] = cells
    return rows


def test_paper_models_ids_and_table(pytester: pytest.Pytester) -> None:
    """The issue's command: four tests with the right ids, then one table row per test."""
    result = pytester.runpytest(
        "--dnn-device=cpu",
        "--dnn-models=resnet18,mobilenet_v2",
        "--dnn-batch-sizes=1,4",
        "--dnn-max-time=0.3",
        "--dnn-min-samples=3",
        "-v",
    )
    result.assert_outcomes(passed=4)
    ids = re.findall(r"::test_dnn\[([^\]]+)\] PASSED", result.stdout.str())
    assert ids == ["resnet18-bs1", "resnet18-bs4", "mobilenet_v2-bs1", "mobilenet_v2-bs4"]
    rows = _table_rows(result.stdout.str())
    assert set(rows) == {("resnet18", "1"), ("resnet18", "4"), ("mobilenet_v2", "1"), ("mobilenet_v2", "4")}
    r18 = rows[("resnet18", "1")]
    assert float(r18[2]) > 0 and float(r18[3]) > 0  # ms/image, FPS
    assert r18[4].isdigit() and r18[5] == "MiB"  # memory, with its unit
    assert r18[6:8] == ["3.65", "G"]  # FLOPs = 2 x 1.82 GMACs (thop)
    assert r18[8:10] == ["11.7", "M"]  # parameters
    assert "flops?" not in " ".join(r for row in rows.values() for r in row)  # the counters agree


def test_quiet_without_models(pytester: pytest.Pytester) -> None:
    """An ordinary project's run: the plugin is loaded but imports no torch and prints nothing."""
    pytester.makepyfile(
        test_plain="""
        import sys

        def test_no_torch():
            assert "torch" not in sys.modules

        def test_plugin_loaded(pytestconfig):
            assert pytestconfig.pluginmanager.hasplugin("dnnbench")
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    out = result.stdout.str() + result.stderr.str()
    ours = [line for line in out.splitlines() if not line.startswith("plugins:")]
    assert not [line for line in ours if "dnn" in line.lower()], ours


def test_plugin_import_does_not_import_torch() -> None:
    import subprocess

    code = "import pytest_dnnbench.plugin, sys; assert 'torch' not in sys.modules, sorted(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_results_file_follows_the_schema(tiny_project: pytest.Pytester) -> None:
    out = tiny_project.path / "out" / "results.json"
    result = tiny_project.runpytest(*FAST, "--dnn-models=tiny", "--dnn-batch-sizes=1,2", f"--dnn-json={out}")
    result.assert_outcomes(passed=2)
    data = load_json(out)
    assert data["schema"] == SCHEMA
    env = data["environment"]
    for key in (
        "torch",
        "torchvision",
        "timm",
        "torch_cuda_build",
        "cpu",
        "threads",
        "precision",
        "mode",
        "seed",
        "plugin_version",
        "device_name",
    ):
        assert key in env, key
    # A CPU run: no CUDA, cuDNN or TF32 entries (torch_cuda_build is torch's build, not a device).
    assert not {"cuda", "cudnn", "cudnn_benchmark", "tf32_matmul", "tf32_cudnn", "tf32_requested"} & set(env)
    assert [r["batch_size"] for r in data["records"]] == [1, 2]
    for rec in data["records"]:
        assert set(RECORD_KEYS) <= set(rec), set(RECORD_KEYS) - set(rec)
        assert set(LATENCY_KEYS) <= set(rec["latency_ms"])
        lat = rec["latency_ms"]
        assert lat["n"] == len(lat["samples"]) >= 1
        assert lat["min"] <= lat["median"] <= lat["max"]
        assert lat["ci_median"][0] <= lat["median"] <= lat["ci_median"][1]
        assert rec["per_image_ms"] == pytest.approx(lat["median"] / rec["batch_size"])
        assert rec["fps"] == pytest.approx(1000 * rec["batch_size"] / lat["median"])
        assert rec["flops"] == 2 * rec["macs"]
        assert rec["params"] == 3 * 8 * 9 + 8 + 8 * 10 + 10
        assert rec["memory_bytes"]["total"] > rec["memory_bytes"]["delta"] >= 0
        assert rec["outcome"] == "passed"
        assert rec["model"] == "tiny" and rec["source"] == "custom"
        assert rec["input_size"] == [3, 32, 32]
        assert rec["accuracy"]["measured"] is None and rec["accuracy"]["reference"] is None
        assert rec["accuracy"]["reason"] and "param_file_mib" in rec and "cudnn_benchmark" not in rec


def test_every_option_reaches_the_record(tiny_project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    # bf16 runs on a CPU with native bf16 only (refused where it is emulated): this CPU is said to have it.
    device = importlib.import_module("pytest_dnnbench.device")
    monkeypatch.setattr(device, "read_cpu_flags", lambda *a: frozenset({"avx512_bf16", "amx_bf16", "bf16"}))
    out = tiny_project.path / "r.json"
    result = tiny_project.runpytest(
        "--dnn-device=cpu",
        "--dnn-models=tiny",
        "--dnn-batch-sizes=3",
        "--dnn-precision=bf16",
        "--dnn-channels-last",
        "--dnn-threads=1",
        "--dnn-cudnn-benchmark=off",
        "--dnn-seed=7",
        "--dnn-min-samples=12",
        "--dnn-max-samples=12",
        "--dnn-ci-target=0.5%",
        "--dnn-max-time=30",
        "--dnn-warmup=4",
        f"--dnn-json={out}",
    )
    result.assert_outcomes(passed=1)
    rec = load_json(out)["records"][0]
    assert rec["precision"] == "bf16"
    assert rec["channels_last"] is True
    assert rec["threads"] == 1
    assert "cudnn_benchmark" not in rec  # --dnn-cudnn-benchmark applies to CUDA runs only
    assert rec["seed"] == 7
    assert rec["batch_size"] == 3
    lat = rec["latency_ms"]
    assert lat["n"] == 12  # min = max = 12 samples
    assert lat["warmup"] >= 4
    assert lat["ci_target"] == pytest.approx(0.005)


def test_budget_caps_sampling(tiny_project: pytest.Pytester) -> None:
    out = tiny_project.path / "r.json"
    tiny_project.runpytest(
        "--dnn-device=cpu",
        "--dnn-models=tiny",
        "--dnn-batch-sizes=1",
        "--dnn-max-time=0.05",
        "--dnn-min-samples=100000",
        "--dnn-max-samples=100000",
        f"--dnn-json={out}",
    ).assert_outcomes(passed=1)
    lat = load_json(out)["records"][0]["latency_ms"]
    # An unreachable minimum: sampling goes on past the budget up to the hard ceiling (3x), and says so.
    assert lat["capped"] is True and lat["stop_reason"] == "ceiling" and lat["insufficient"] is True
    assert 1 <= lat["n"] < 100000


def test_ini_settings_are_defaults_and_options_win(tiny_project: pytest.Pytester) -> None:
    tiny_project.makeini(
        """
        [pytest]
        dnn_models = tiny
        dnn_batch_sizes = 2,5
        dnn_max_time = 0.2
        dnn_min_samples = 3
        dnn_device = cpu
        """
    )
    result = tiny_project.runpytest("-v")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*test_dnn?tiny-bs2? PASSED*", "*test_dnn?tiny-bs5? PASSED*"])
    result = tiny_project.runpytest("-v", "--dnn-batch-sizes=1", "--dnn-models=tiny_wide")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*test_dnn?tiny_wide-bs1? PASSED*"])


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--dnn-batch-sizes=0"], ["*--dnn-batch-sizes=0*not positive*"]),
        (["--dnn-batch-sizes=-1"], ["*--dnn-batch-sizes=-1*"]),
        (["--dnn-batch-sizes=abc"], ["*--dnn-batch-sizes=abc*'abc' is not a whole number*1,8,64*"]),
        (["--dnn-models=resnet5"], ["*unknown model 'resnet5'*did you mean resnet50*"]),
        (["--dnn-models=nomatch*"], ["*'nomatch*' matches no registered model*"]),
        (["--dnn-device=tpu"], ["*--dnn-device=tpu*Use auto, cpu, cuda or cuda:N*"]),
        (["--dnn-precision=fp8"], ["*--dnn-precision=fp8*fp32, fp16, bf16*"]),
        (["--dnn-precision=fp16", "--dnn-device=cpu"], ["*fp16 on the CPU*--dnn-precision=fp32*"]),
        (["--dnn-max-time=soon"], ["*--dnn-max-time=soon*not a duration*"]),
        (["--dnn-ci-target=200%"], ["*--dnn-ci-target=200%*between 0 and 100 %*"]),
        (["--dnn-cudnn-benchmark=maybe"], ["*expected on or off*"]),
        (["--dnn-threads=0"], ["*--dnn-threads=0*at least 1*"]),
        (["--dnn-min-samples=20", "--dnn-max-samples=10"], ["*--dnn-max-samples=10 is below*"]),
    ],
)
def test_bad_values_stop_before_any_model_is_built(
    tiny_project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, args: list[str], expected: list[str]
) -> None:
    marker = tiny_project.path / "built.txt"
    monkeypatch.setenv("DNN_BUILD_MARKER", str(marker))
    base = ["--dnn-models=tiny"] if not any(a.startswith("--dnn-models") for a in args) else []
    result = tiny_project.runpytest(*base, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(expected)
    assert not marker.exists(), "a model was built despite the bad option"


def test_cuda_on_a_machine_without_gpu_is_a_usage_error(tiny_project: pytest.Pytester) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the error cannot happen here")
    result = tiny_project.runpytest("--dnn-models=tiny", "--dnn-device=cuda")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--dnn-device=cuda: no CUDA device is available here*--dnn-device=cpu*"])


def test_list_models(tiny_project: pytest.Pytester) -> None:
    result = tiny_project.runpytest("--dnn-list-models")
    assert result.ret == 0
    out = result.stdout.str()
    assert re.search(r"^resnet50\s+ResNet-50\s+torchvision\.resnet50\s+3x224x224$", out, re.M)
    assert re.search(r"^xception\s+Xception\s+timm\.legacy_xception\s+3x299x299$", out, re.M)
    assert re.search(r"^tiny\s+custom \(tinymodels:tiny\)\s+3x32x32$", out, re.M)
    assert "44 from the paper" in out
    assert "test session starts" not in out  # nothing was run


def test_users_own_tests_take_the_fixtures(tiny_project: pytest.Pytester) -> None:
    tiny_project.makepyfile(
        test_mine="""
        import torch.nn as nn

        def test_registered(dnn_bench, dnn_model, dnn_batch_size, dnn_device):
            rec = dnn_bench(dnn_model)
            assert rec["model"] in ("tiny", "tiny_wide")
            assert rec["batch_size"] == dnn_batch_size
            assert dnn_device == "cpu"
            assert next(dnn_model.parameters()).device.type == "cpu"

        def test_any_module(dnn_bench):
            net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.LazyLinear(3))
            net(__import__("torch").zeros(1, 1, 12, 12))
            rec = dnn_bench(net, input_size=(1, 12, 12), batch_size=5, name="mine")
            assert rec["model"] == "mine" and rec["batch_size"] == 5 and rec["input_size"] == [1, 12, 12]
        """
    )
    out = tiny_project.path / "r.json"
    result = tiny_project.runpytest(
        *FAST, "--dnn-models=tiny,tiny_wide", "--dnn-batch-sizes=1,2", "test_mine.py", "-v", f"--dnn-json={out}"
    )
    result.assert_outcomes(passed=5)
    result.stdout.fnmatch_lines(["*test_registered?tiny-bs1? PASSED*", "*test_registered?tiny_wide-bs2? PASSED*"])
    assert "bench_models.py" not in result.stdout.str()  # explicit paths: the suite is not added
    models = sorted(r["model"] for r in load_json(out)["records"])
    assert models == ["mine", "tiny", "tiny", "tiny_wide", "tiny_wide"]


def test_dnn_bench_needs_input_size_for_foreign_modules(tiny_project: pytest.Pytester) -> None:
    tiny_project.makepyfile(
        test_mine="""
        import pytest
        import torch.nn as nn

        def test_missing_size(dnn_bench):
            with pytest.raises(TypeError, match="needs input_size"):
                dnn_bench(nn.Linear(2, 2))
        """
    )
    tiny_project.runpytest(*FAST, "test_mine.py").assert_outcomes(passed=1)


def test_a_model_that_raises_fails_only_its_tests(tiny_project: pytest.Pytester) -> None:
    result = tiny_project.runpytest(*FAST, "--dnn-models=broken,tiny", "--dnn-batch-sizes=1,2")
    result.assert_outcomes(passed=2, errors=2)
    result.stdout.fnmatch_lines(["*RuntimeError: this model cannot be built*"])


def test_missing_optional_library_skips_with_reason(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        import builtins

        real_import = builtins.__import__

        def fake_import(name, *args, **kwargs):
            if name == "pretrainedmodels":
                raise ImportError("No module named 'pretrainedmodels'")
            return real_import(name, *args, **kwargs)

        builtins.__import__ = fake_import

        def pytest_unconfigure(config):
            builtins.__import__ = real_import
        """
    )
    result = pytester.runpytest(*FAST, "--dnn-models=bninception", "--dnn-batch-sizes=1", "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*bninception comes from Cadene's pretrainedmodels*pip install pretrainedmodels six*"])


def test_pytest_benchmark_json_carries_extra_info(tiny_project: pytest.Pytester) -> None:
    bench_json = tiny_project.path / "bench.json"
    ours = tiny_project.path / "ours.json"
    result = tiny_project.runpytest(
        *FAST, "--dnn-models=tiny", "--dnn-batch-sizes=1,2", f"--benchmark-json={bench_json}", f"--dnn-json={ours}"
    )
    result.assert_outcomes(passed=2)
    data = load_json(bench_json)
    records = {r["batch_size"]: r for r in load_json(ours)["records"]}
    assert len(data["benchmarks"]) == 2
    for bench in data["benchmarks"]:
        extra = bench["extra_info"]
        rec = records[extra["batch_size"]]
        assert bench["fullname"] == f"pytest_dnnbench/suite/bench_models.py::test_dnn[tiny-bs{extra['batch_size']}]"
        assert bench["group"] == "tiny"
        for key in ("model", "memory_bytes", "flops", "macs", "params", "per_image_ms", "fps", "device_name"):
            assert extra[key] == rec[key], key
        # pytest-benchmark's statistics come from our samples (seconds there, ms here)
        assert bench["stats"]["median"] * 1000 == pytest.approx(rec["latency_ms"]["median"])
        assert bench["stats"]["rounds"] == rec["latency_ms"]["n"]
        assert bench["stats"]["data"] == pytest.approx([s / 1000 for s in rec["latency_ms"]["samples"]])
    info = data["machine_info"]["dnnbench"]
    assert info["torch"] and info["requested_device"] == "cpu" and info["precision"] == "fp32"


def test_benchmark_disable_still_writes_our_results(tiny_project: pytest.Pytester) -> None:
    ours = tiny_project.path / "ours.json"
    bench_json = tiny_project.path / "bench.json"
    result = tiny_project.runpytest(
        *FAST,
        "--dnn-models=tiny",
        "--dnn-batch-sizes=1",
        "--benchmark-disable",
        f"--benchmark-json={bench_json}",
        f"--dnn-json={ours}",
    )
    result.assert_outcomes(passed=1)
    assert len(load_json(ours)["records"]) == 1
    assert not bench_json.exists() or load_json(bench_json)["benchmarks"] == []


def test_saved_runs_compare_across_rootdirs(tiny_project: pytest.Pytester) -> None:
    """Names stored by pytest-benchmark do not depend on the rootdir: a run saved under one
    rootdir compares test by test with a run made under another."""
    first = tiny_project.mkdir("machine_a")
    second = tiny_project.mkdir("machine_b")
    # The models come from a plugin module here: a conftest above the rootdir would not be loaded.
    tiny_project.makepyfile(tinyplugin=TINY_CONFTEST)
    common = [*FAST, "-p", "tinyplugin", "--dnn-models=tiny", "--dnn-batch-sizes=1", "--benchmark-storage=storage"]
    tiny_project.runpytest(*common, f"--rootdir={first}", "--benchmark-save=a").assert_outcomes(passed=1)
    result = tiny_project.runpytest(*common, f"--rootdir={second}", "--benchmark-compare=0001", "-v")
    result.assert_outcomes(passed=1)
    out = result.stdout.str()
    assert "rootdir: " + str(second) in out
    # Both the saved row and this run's row appear for the same test.
    assert re.search(r"test_dnn\[tiny-bs1\] \(0001_a\)", out), out
    assert re.search(r"test_dnn\[tiny-bs1\] \(NOW\)", out), out
    saved = load_json(next((tiny_project.path / "storage").rglob("0001_a.json")))
    assert [b["fullname"] for b in saved["benchmarks"]] == ["pytest_dnnbench/suite/bench_models.py::test_dnn[tiny-bs1]"]


def test_benchmark_histogram(tiny_project: pytest.Pytester) -> None:
    pytest.importorskip("pygal")
    result = tiny_project.runpytest(
        *FAST, "--dnn-models=tiny", "--dnn-batch-sizes=1", f"--benchmark-histogram={tiny_project.path / 'hist'}"
    )
    result.assert_outcomes(passed=1)
    assert list(tiny_project.path.glob("hist*.svg")), "no histogram written"


def test_suite_runs_from_any_directory(tiny_project: pytest.Pytester) -> None:
    """pytester runs in a temporary directory outside this repository: the installed suite is found."""
    sub = tiny_project.mkdir("deep")
    tiny_project.makepyfile(tinyplugin=TINY_CONFTEST)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(sub)
        result = tiny_project.runpytest(
            *FAST, "-p", "tinyplugin", "--dnn-models=tiny", "--dnn-batch-sizes=1", "-v", f"--rootdir={sub}"
        )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["pytest_dnnbench/suite/bench_models.py::test_dnn[[]tiny-bs1[]] PASSED*"])


def test_help_lists_every_option(pytester: pytest.Pytester) -> None:
    """argparse formats help texts with %: a stray '%' in one crashes `pytest --help`."""
    result = pytester.runpytest("--help")
    assert result.ret == 0, result.stderr.str()
    out = result.stdout.str()
    for option in (
        "--dnn-models",
        "--dnn-device",
        "--dnn-batch-sizes",
        "--dnn-ci-target",
        "--dnn-max-time",
        "--dnn-json",
        "--dnn-list-models",
        "--dnn-imagenet",
        "--dnn-weights",
        "--dnn-report",
        "--dnn-baseline",
        "--dnn-save-baseline",
        "--dnn-max-memory",
        "--dnn-min-fps",
        "--dnn-max-host-memory",
        "--dnn-isolate",
        "--dnn-allow-parallel-cpu",
    ):
        assert option in out, option
