"""The shape of the package, held by tests: who may import pytest, each hook once, no import cycle.

Read from the source (``ast``), so the tests see every import, also the ones inside functions.
"""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "pytest_dnnbench"

#: The pytest glue: every other module is plain code that knows nothing of pytest.
MAY_IMPORT_PYTEST = {"plugin", "session", "settings", "fixtures", "hookspecs", "compat"}


def modules() -> dict[str, ast.Module]:
    """Dotted name below the package (``measure.bench``) -> parsed source."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).with_suffix("")
        parts = [p for p in rel.parts if p != "__init__"]
        out[".".join(parts)] = ast.parse(path.read_text(encoding="utf-8"), str(path))
    return out


def _in_type_checking(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


def imports(name: str, tree: ast.Module, *, runtime_only: bool = True) -> set[str]:
    """Absolute module names ``tree`` imports (package modules as ``pytest_dnnbench.x.y``)."""
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    package = ["pytest_dnnbench", *name.split(".")]
    is_pkg = (PACKAGE / Path(*name.split(".")) / "__init__.py").exists() if name else True
    base = package if is_pkg else package[:-1]
    found: set[str] = set()
    for node in ast.walk(tree):
        if runtime_only and _in_type_checking(node, parents):
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                root = base[: len(base) - node.level + 1]
                mod = ".".join(root + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            found.add(mod)
            for a in node.names:  # "from . import hookspecs" imports a module
                candidate = f"{mod}.{a.name}"
                rel = candidate.removeprefix("pytest_dnnbench.").split(".")
                if (
                    PACKAGE.joinpath(*rel).with_suffix(".py").exists()
                    or (PACKAGE.joinpath(*rel) / "__init__.py").exists()
                ):
                    found.add(candidate)
    return found


def test_only_the_glue_imports_pytest() -> None:
    offenders = sorted(
        name
        for name, tree in modules().items()
        if name not in MAY_IMPORT_PYTEST
        and any(m == "pytest" or m.startswith(("pytest.", "_pytest")) for m in imports(name, tree, runtime_only=False))
    )
    assert offenders == [], f"modules outside the pytest glue import pytest: {offenders}"


#: What measures: the session calls the runner for all of it (``runner.py``), and never imports these itself.
MEASUREMENT = ("torch", "pytest_dnnbench.measure", "pytest_dnnbench.isolated", "pytest_dnnbench.oom")


def test_the_session_holds_no_measurement_code() -> None:
    """session.py is the pytest side: hooks, limits, verdict, files. Building, timing, memory, FLOPs, modes and
    fresh processes are the runner's (no measurement import, even for the type checker, except the types the
    fixtures hand over), and the session stays short enough to read."""
    session = modules()["session"]
    measured = sorted(m for m in imports("session", session) if m.startswith(MEASUREMENT))
    assert measured == [], f"session.py imports measurement code: {measured}"
    typed = sorted(m for m in imports("session", session, runtime_only=False) if m.startswith(MEASUREMENT))
    assert typed == ["torch"], typed  # the dnn_model fixture yields a torch module
    lines = (PACKAGE / "session.py").read_text(encoding="utf-8").count("\n")
    assert lines <= 700, f"session.py has {lines} lines"
    runner = modules()["runner"]
    assert not any(m == "pytest" or m.startswith("_pytest") for m in imports("runner", runner, runtime_only=False))


def test_the_session_check_sees_a_measurement_import() -> None:
    tree = ast.parse("def f():\n    from .measure.bench import measure\n")
    assert any(m.startswith(MEASUREMENT) for m in imports("session", tree))


def test_the_check_sees_an_import_of_pytest_inside_a_function() -> None:
    tree = ast.parse("def f():\n    import pytest\n")
    assert "pytest" in imports("gate", tree)


@pytest.mark.parametrize("runtime_only", [True, False], ids=["at-run-time", "type-only-too"])
def test_no_import_cycle_among_the_package_modules(runtime_only: bool) -> None:
    """No circle of imports, not even through imports for the type checker only (``TYPE_CHECKING``):
    such a circle ties modules together as much as a real one does."""
    mods = modules()
    graph = {
        f"pytest_dnnbench.{n}".rstrip("."): {
            m for m in imports(n, t, runtime_only=runtime_only) if m.startswith("pytest_dnnbench.")
        }
        for n, t in mods.items()
    }
    graph = {k.removesuffix("."): v for k, v in graph.items()}
    cycles: list[list[str]] = []
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if nxt not in graph:
                continue
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])
    # The package's __init__ re-exports the registry; importing a submodule runs it, which is no cycle
    # of our making: only count cycles that do not pass through the package root.
    real = [c for c in cycles if "pytest_dnnbench" not in c]
    assert real == [], f"import cycles: {real}"


def test_the_cycle_check_finds_a_cycle(tmp_path: Path) -> None:
    a = ast.parse("from . import b\n")
    assert "pytest_dnnbench.b" not in imports("a", a)  # b does not exist: not a module of ours
    assert "pytest_dnnbench.gate" in imports("units", ast.parse("from .gate import Tolerances\n"))


def _hook_names(tree: ast.Module) -> list[str]:
    names = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("pytest_"):
            names.append(node.name)
    return names


def test_every_pytest_hook_is_implemented_once() -> None:
    """Hook specs (hookspecs.py) aside, each pytest hook has one implementation in the package."""
    counts: Counter[str] = Counter()
    for name, tree in modules().items():
        if name == "hookspecs":
            continue
        counts.update(_hook_names(tree))
    twice = {hook: n for hook, n in counts.items() if n > 1}
    assert twice == {}, f"hooks implemented more than once: {twice}"
    assert counts["pytest_configure"] == 1 and counts["pytest_runtest_makereport"] == 1


def test_no_private_attribute_of_pytest_or_its_plugins_outside_compat() -> None:
    """``config._x``, ``terminalreporter._x``, ``xdist...._x``: only compat.py may reach for them."""
    suspicious = (
        "_do_configure",
        "_ensure_unconfigure",
        "_tw",
        "_benchmarksession",
        "_split_scope",
        "_store",
        "_inicache",
    )
    found = []
    for name, tree in modules().items():
        if name == "compat":
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in suspicious:
                found.append(f"{name}: .{node.attr}")
            if isinstance(node, ast.FunctionDef) and node.name in suspicious:
                found.append(f"{name}: def {node.name}")
    assert found == []


def test_importing_the_plugin_imports_no_torch() -> None:
    import subprocess
    import sys

    code = (
        "import sys, pytest_dnnbench.plugin; bad = {'torch', 'matplotlib', 'torchvision', 'timm'} & "
        "set(sys.modules); assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize(
    "module",
    [
        "gate",
        "baseline_store",
        "baseline_save",
        "upgrade",
        "constraints",
        "record",
        "results",
        "units",
        "nodeids",
        "paperdata",
        "registry",
        "report.progress",
        "accuracy.evaluate",
        "runner",
        "outputs",
        "run_results",
        "verdict",
        "parallel",
        "report.summary",
        "run_store",
        "store_baseline",
        "shards",
        "merge",
        "store.db",
        "store.fingerprint",
        "store.runmeta",
    ],
)
def test_pure_modules_do_not_import_pytest_at_run_time(module: str) -> None:
    import subprocess
    import sys

    code = (
        f"import sys, pytest_dnnbench.{module}; bad = {{'torch', 'pytest', '_pytest'}} & set(sys.modules); "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
