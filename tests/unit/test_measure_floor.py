"""The runtime floor and the model's own bytes (pytest_dnnbench.measure.floor).

Two children import the real torch (torch alone, and torch with a module that holds 50 MiB); the
others import a stand-in ``torch.py`` put in front of ``sys.path``, which starts in milliseconds.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn as nn

from pytest_dnnbench.measure.floor import (
    FLOOR_PREFIX,
    SOURCE_LIBRARIES,
    Floor,
    FloorCache,
    floor_command,
    floor_env,
    importable,
    is_test_module,
    library_of,
    measure_floor,
    model_bytes,
    parse_floor_output,
)
from pytest_dnnbench.models.spec import SOURCES
from pytest_dnnbench.registry import REGISTRY

MIB = 2**20

# -- model_bytes ----------------------------------------------------------------------------------------


def test_model_bytes_counts_parameters_and_buffers() -> None:
    assert model_bytes(nn.Linear(10, 20)) == (10 * 20 + 20) * 4
    # weight and bias (fp32), running mean and variance (fp32), num_batches_tracked (one int64)
    assert model_bytes(nn.BatchNorm2d(8)) == 2 * 8 * 4 + 2 * 8 * 4 + 8
    # a non-persistent buffer is memory the model holds too
    m = nn.Module()
    m.register_buffer("scratch", torch.zeros(16), persistent=False)
    assert model_bytes(m) == 64
    assert model_bytes(nn.ReLU()) == 0


def test_tied_weights_and_views_are_counted_once() -> None:
    tied = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 10, bias=False))
    tied[1].weight = tied[0].weight
    assert model_bytes(tied) == 10 * 4 * 4

    m = nn.Module()
    base = torch.zeros(100)
    m.a = nn.Parameter(base[:50])
    m.b = nn.Parameter(base[50:])
    m.register_buffer("c", base[10:20])
    assert model_bytes(m) == 100 * 4  # one storage, all of it held

    two = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4))  # separate storages
    assert model_bytes(two) == 2 * model_bytes(nn.Linear(4, 4))


def test_half_precision_halves_the_bytes() -> None:
    model = nn.Sequential(nn.Conv2d(3, 16, 3), nn.BatchNorm2d(16), nn.Linear(16, 8))
    full = model_bytes(model)
    # num_batches_tracked stays int64: 8 bytes that .half() does not halve
    assert model_bytes(model.half()) == (full - 8) // 2 + 8


def test_model_bytes_of_a_registry_model_is_its_parameter_count() -> None:
    from pytest_dnnbench.registry import build_model

    model = build_model(REGISTRY.get("squeezenet1_1"))
    params = sum(p.numel() for p in model.parameters())
    assert model_bytes(model) == params * 4  # squeezenet has no buffers


# -- library_of -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "module", "expected"),
    [
        ("torchvision", "torchvision.models.resnet", "torchvision"),
        ("torchvision", None, "torchvision"),
        ("timm", "timm.models.resnet", "timm"),
        ("pretrainedmodels", "pretrainedmodels.models.bninception", "pretrainedmodels"),
        ("dnnbench", "pytest_dnnbench.models.shufflenet", "pytest_dnnbench"),
        ("custom", "torchvision.models.resnet", "torchvision"),  # a user's factory building a torchvision class
        ("custom", "timm.layers", "timm"),
        ("custom", "torch.nn.modules.container", None),  # nn.Sequential: torch alone
        ("custom", "__main__", None),
        ("custom", "__mp_main__", None),
        ("custom", "test_models", None),
        ("custom", "tests.test_floor", None),
        ("custom", "pkg.conftest", None),
        ("custom", "tests.helpers", None),
        ("custom", "models_test", None),
        ("custom", "no_such_package_anywhere.models", None),
        ("custom", "<run_path>", None),
        ("custom", None, None),
        ("custom", "", None),
    ],
)
def test_library_of(source: str, module: str | None, expected: str | None) -> None:
    assert library_of(source, module) == expected


def test_a_users_package_is_its_library_where_a_fresh_interpreter_can_import_it(tmp_path: Path) -> None:
    pkg = tmp_path / "userpkg_floor" / "models"
    pkg.mkdir(parents=True)
    (tmp_path / "userpkg_floor" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    assert library_of("custom", "userpkg_floor.models.net", path=[str(tmp_path), *sys.path]) == "userpkg_floor"
    assert library_of("custom", "userpkg_floor.models.net") is None  # not on this sys.path
    assert importable("userpkg_floor", [str(tmp_path)])
    assert not importable("userpkg_floor", [])
    assert not importable("not a name")


def test_every_source_has_a_floor_library() -> None:
    assert set(SOURCE_LIBRARIES) <= set(SOURCES)
    for spec in REGISTRY:
        module = spec.builder.partition(":")[0] if ":" in spec.builder else None
        lib = library_of(spec.source, module)
        assert lib is not None, spec.name
        # registry.import_source imports the library (or the builder's module) that lib names
        assert (module or {"torchvision": "torchvision.models"}.get(spec.source, spec.source)).startswith(lib)


@pytest.mark.parametrize("name", ["test_x", "a.test_y", "conftest", "x_test", "tests", "tests.models"])
def test_test_modules(name: str) -> None:
    assert is_test_module(name)


@pytest.mark.parametrize("name", ["testing_tools", "attest", "mytests", "contest"])
def test_not_test_modules(name: str) -> None:
    assert not is_test_module(name)


# -- the child and its output ----------------------------------------------------------------------------


def _line(**data: Any) -> str:
    return FLOOR_PREFIX + json.dumps(data)


def test_parse_floor_output() -> None:
    out = "noise\n" + _line(torch_bytes=100, bytes=150, seconds=1.5, error=None) + "\n"
    assert parse_floor_output("lib", out, "", 0) == Floor("lib", 150, 1.5, None, 100)
    # a failed library: torch's figure, and the error
    failed = parse_floor_output("lib", _line(torch_bytes=100, bytes=None, seconds=2, error="lib: E: x"), "", 0)
    assert failed == Floor("lib", 100, 2.0, "lib: E: x", 100)
    # "torch" means torch alone
    assert parse_floor_output("torch", _line(torch_bytes=7, bytes=7, seconds=0.1, error=None), "", 0).library is None
    died = parse_floor_output("lib", "no line here", "Traceback\nSegfault-ish: boom\n", -11)
    assert died.bytes is None and died.error is not None
    assert "killed by signal 11" in died.error and "boom" in died.error
    assert "exited 3" in str(parse_floor_output("lib", "", "", 3).error)
    assert parse_floor_output("lib", FLOOR_PREFIX + "{not json", "", 0).bytes is None


def test_floor_env_puts_the_paths_first_and_starts_no_coverage() -> None:
    env = floor_env(
        {"PYTHONPATH": "/b:/c", "COV_CORE_SOURCE": "x", "COVERAGE_PROCESS_START": "y", "A": "1"}, ["/a", "/b"]
    )
    assert env == {"PYTHONPATH": "/a:/b:/c", "A": "1"}
    assert "PYTHONPATH" not in floor_env({}, [])


def test_floor_json() -> None:
    floor = Floor("timm", 5, 1.23456, None, 3)
    assert floor.to_json() == {"library": "timm", "bytes": 5, "torch_bytes": 3, "seconds": 1.235, "error": None}
    assert floor.key == "timm" and Floor(None, 1, 1.0).key == "torch"


@pytest.fixture(scope="module")
def fake_torch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with a stand-in ``torch`` and libraries that write down what the child had imported."""
    root = tmp_path_factory.mktemp("fake_torch")
    record = textwrap.dedent(
        """
        import os, sys
        with open(os.environ["FLOOR_MODULES_OUT"] + "." + __name__, "w") as fh:
            fh.write("\\n".join(sorted(sys.modules)))
        """
    )
    (root / "torch.py").write_text(record)
    (root / "fake_lib.py").write_text(record)
    (root / "broken_lib.py").write_text("raise RuntimeError('broken on purpose\\nsecond line')\n")
    (root / "exits_lib.py").write_text("import sys\nsys.exit(4)\n")
    return root


def test_the_child_imports_nothing_before_its_readings(fake_torch: Path, tmp_path: Path) -> None:
    out = tmp_path / "modules"
    floor = measure_floor("fake_lib", env={"FLOOR_MODULES_OUT": str(out)}, sys_path=[str(fake_torch)])
    assert floor.error is None and floor.bytes and floor.torch_bytes and floor.seconds is not None
    for name in ("torch", "fake_lib"):
        held = set((tmp_path / f"modules.{name}").read_text().split())
        assert not {m for m in held if m.startswith(("pytest_dnnbench", "numpy", "json", "pytest"))}, held


def test_a_comma_list_imports_every_module_before_the_reading(fake_torch: Path, tmp_path: Path) -> None:
    """A compiled model's floor: the model's library and torch's compiler, both imported."""
    out = tmp_path / "modules"
    env = {"FLOOR_MODULES_OUT": str(out)}
    floor = measure_floor("fake_lib,broken_lib", env=env, sys_path=[str(fake_torch)])
    assert floor.library == "fake_lib,broken_lib"
    assert floor.error == "fake_lib,broken_lib: RuntimeError: broken on purpose"  # the second was imported too
    both = measure_floor("fake_lib,exits_lib", env=env, sys_path=[str(fake_torch)])
    assert both.error == "fake_lib,exits_lib: SystemExit: 4"
    assert measure_floor("fake_lib,not a module", sys_path=[str(fake_torch)]).error is not None


def test_a_library_that_fails_to_import_is_an_error_not_a_crash(fake_torch: Path, tmp_path: Path) -> None:
    env = {"FLOOR_MODULES_OUT": str(tmp_path / "m")}
    broken = measure_floor("broken_lib", env=env, sys_path=[str(fake_torch)])
    assert broken.error == "broken_lib: RuntimeError: broken on purpose"
    assert broken.bytes is not None and broken.bytes == broken.torch_bytes
    exits = measure_floor("exits_lib", env=env, sys_path=[str(fake_torch)])
    assert exits.error == "exits_lib: SystemExit: 4" and exits.bytes == exits.torch_bytes
    missing = measure_floor("no_such_lib_here", env=env, sys_path=[str(fake_torch)])
    assert missing.error == "no_such_lib_here: ModuleNotFoundError: No module named 'no_such_lib_here'"
    assert measure_floor("not a module", sys_path=[str(fake_torch)]).error == "'not a module' is not a module name"


def test_a_child_that_cannot_start_dies_or_hangs_is_an_error(tmp_path: Path) -> None:
    assert "could not start" in str(measure_floor(None, python=str(tmp_path / "no-python")).error)
    dies = tmp_path / "dies"
    dies.write_text("#!/bin/sh\necho 'fatal: nothing works' >&2\nexit 3\n")
    dies.chmod(0o755)
    floor = measure_floor(None, python=str(dies))
    assert floor.bytes is None and floor.error == "the floor process exited 3 without its figures: fatal: nothing works"
    hangs = tmp_path / "hangs"
    hangs.write_text("#!/bin/sh\nexec sleep 60\n")
    hangs.chmod(0o755)
    floor = measure_floor(None, python=str(hangs), timeout=0.2)  # waited for at least a second
    assert floor.bytes is None and "timed out after 0.2 s" in str(floor.error)


# -- the real torch -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_floors(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Floor]:
    """torch alone, and torch with a module that holds 50 MiB: two children, run side by side."""
    root = tmp_path_factory.mktemp("fat")
    (root / "fat_floor_mod.py").write_text("BLOB = b'\\x01' * (50 * 2**20)  # written, so resident\n")
    with FloorCache(sys_path=[str(root)]) as cache:
        cache.start("fat_floor_mod")
        alone = measure_floor(None)
        return {"torch": alone, "fat": cache.get("fat_floor_mod")}


def test_the_floor_of_torch(real_floors: dict[str, Floor]) -> None:
    alone = real_floors["torch"]
    assert alone.error is None and alone.library is None
    assert alone.bytes is not None and 100 * MIB < alone.bytes < 4096 * MIB
    assert alone.bytes == alone.torch_bytes
    assert alone.seconds is not None and 0 < alone.seconds < 120


def test_a_library_holding_50_mib_raises_the_floor_by_50_mib(real_floors: dict[str, Floor]) -> None:
    alone, fat = real_floors["torch"], real_floors["fat"]
    assert fat.error is None and fat.library == "fat_floor_mod"
    assert fat.bytes is not None and fat.torch_bytes is not None and alone.bytes is not None
    assert 49 * MIB <= fat.bytes - fat.torch_bytes <= 52 * MIB  # the same child, before and after
    assert 40 * MIB <= fat.bytes - alone.bytes <= 60 * MIB  # against another child's torch


# -- FloorCache ---------------------------------------------------------------------------------------


class CountingLauncher:
    """Launches the real child, or ``command`` instead, and keeps every process it started."""

    def __init__(self, command: list[str] | None = None):
        self.command = command
        self.launched: list[tuple[str, subprocess.Popen[bytes]]] = []

    def __call__(self, args: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(self.command or args, **kwargs)
        self.launched.append((args[3], proc))
        return proc


def test_the_cache_measures_each_library_once(fake_torch: Path, tmp_path: Path) -> None:
    launcher = CountingLauncher()
    cache = FloorCache(env={"FLOOR_MODULES_OUT": str(tmp_path / "m")}, sys_path=[str(fake_torch)], launch=launcher)
    cache.start("fake_lib")
    cache.start("fake_lib")
    cache.start(None)
    assert [lib for lib, _ in launcher.launched] == ["fake_lib", ""]
    first = cache.get("fake_lib")
    assert first.error is None and first.bytes
    assert cache.get("fake_lib") is first
    assert cache.get("torch") is cache.get(None)
    cache.start("fake_lib")  # measured: nothing launched
    broken = cache.get("broken_lib")  # never started: launched now
    assert broken.error is not None and broken.error.startswith("broken_lib: RuntimeError")
    assert [lib for lib, _ in launcher.launched] == ["fake_lib", "", "broken_lib"]
    assert set(cache.as_json()) == {"fake_lib", "torch", "broken_lib"}
    assert cache.as_json()["torch"]["library"] is None
    assert cache.running() == []
    cache.close()


def test_wait_all_waits_for_every_started_floor(fake_torch: Path, tmp_path: Path) -> None:
    cache = FloorCache(env={"FLOOR_MODULES_OUT": str(tmp_path / "m")}, sys_path=[str(fake_torch)])
    cache.start("fake_lib")
    cache.start(None)
    assert set(cache.wait_all()) == {"fake_lib", "torch"}
    assert cache.running() == []
    cache.close()


def test_close_kills_what_still_runs(tmp_path: Path) -> None:
    launcher = CountingLauncher([sys.executable, "-c", "import time; time.sleep(60)"])
    cache = FloorCache(launch=launcher)
    cache.start("slow_lib")
    cache.start(None)
    assert sorted(cache.running()) == ["slow_lib", "torch"]
    cache.close()
    assert all(proc.poll() is not None for _, proc in launcher.launched)  # killed and reaped
    assert "stopped before it finished" in str(cache.get("slow_lib").error)
    assert cache.get("other").error == "the floor cache is closed"
    cache.start("more")
    assert len(launcher.launched) == 2  # nothing launched after close
    assert set(cache.as_json()) == {"slow_lib", "torch"}


def test_floor_command_runs_python_c() -> None:
    cmd = floor_command(None, "/py", launched=12.5)
    assert cmd[0] == "/py" and cmd[1] == "-c" and cmd[3:] == ["", "12.5"]
    assert floor_command("torch", "/py")[3] == "" and floor_command("timm", "/py")[3] == "timm"
