"""Which store an option's value names, and how a store is shown: never with its password
(:mod:`pytest_dnnbench.store.urls`)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_dnnbench.store.urls import StoreError, mask_text, mask_url, password_of, resolve_url

PACKAGE = Path(__file__).resolve().parents[2] / "pytest_dnnbench"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "sqlite:////root/project/.dnnbench/history.sqlite"),
        ("", "sqlite:////root/project/.dnnbench/history.sqlite"),
        ("  ", "sqlite:////root/project/.dnnbench/history.sqlite"),
        ("sqlite:////data/h.sqlite", "sqlite:////data/h.sqlite"),
        ("sqlite:///rel/h.sqlite", "sqlite:////root/project/rel/h.sqlite"),
        ("rel/h.sqlite", "sqlite:////root/project/rel/h.sqlite"),
        ("/abs/h.sqlite", "sqlite:////abs/h.sqlite"),
        ("sqlite://", "sqlite://"),
        ("sqlite:///file:/data/h.sqlite?mode=ro&uri=true", "sqlite:///file:/data/h.sqlite?mode=ro&uri=true"),
        ("postgresql://u:pw@db.example:5432/bench", "postgresql+psycopg://u:pw@db.example:5432/bench"),
        ("postgres://u@db.example/bench", "postgresql+psycopg://u@db.example/bench"),
        ("postgresql+psycopg://u@h/b", "postgresql+psycopg://u@h/b"),
        ("mysql://u@h/b", "mysql://u@h/b"),
    ],
)
def test_resolve_url(value: str | None, expected: str) -> None:
    assert resolve_url(value, Path("/root/project")) == expected


def test_a_relative_path_follows_relative_to_where_given() -> None:
    assert resolve_url("h.sqlite", Path("/root/project"), relative_to=Path("/cwd")) == "sqlite:////cwd/h.sqlite"
    assert resolve_url(None, Path("/root/project"), relative_to=Path("/cwd")).startswith("sqlite:////root/project/")


@pytest.mark.parametrize(
    ("url", "shown", "password"),
    [
        ("postgresql+psycopg://ada:s3cret@db:5432/bench", "postgresql://ada:***@db:5432/bench", "s3cret"),
        ("postgresql://ada:p%40ss%2Fw@db/bench", "postgresql://ada:***@db/bench", "p@ss/w"),
        ("postgresql://ada:p@ss/w@db/bench", "postgresql://ada:***@db/bench", "p@ss/w"),  # unquoted: masked whole
        ("postgresql://ada@db/bench?password=s3cret&sslmode=require", None, "s3cret"),
        ("postgresql://ada@db/bench", "postgresql://ada@db/bench", None),
        ("postgresql://db/bench", "postgresql://db/bench", None),
        ("sqlite:////home/ada@work/h.sqlite", "sqlite:////home/ada@work/h.sqlite", None),
        ("sqlite:///h.sqlite", "sqlite:///h.sqlite", None),
        ("not a url", "not a url", None),
    ],
)
def test_mask_url(url: str, shown: str | None, password: str | None) -> None:
    masked = mask_url(url)
    if shown is not None:
        assert masked == shown
    assert password_of(url) == password
    if password:
        assert password not in masked and "***" in masked


def test_mask_text_masks_urls_and_the_password_in_a_drivers_message() -> None:
    text = 'failed for "postgresql://ada:s3cret@db/x" (password s3cret?) ?password=s3cret'
    out = mask_text(text, "s3cret")
    assert "s3cret" not in out and out.count("***") == 3
    assert mask_text("a banana", "a") == "a banana"  # too short to replace outside URLs


def test_a_store_error_names_the_masked_store_and_keeps_its_parts() -> None:
    error = StoreError("postgresql+psycopg://ada:s3cret@db/bench", "refused s3cret", "Fix it")
    assert str(error) == "results store postgresql://ada:***@db/bench: refused ***. Fix it"
    assert (error.url, error.why, error.fix) == ("postgresql://ada:***@db/bench", "refused ***", "Fix it")


# -- where SQLAlchemy may be imported --------------------------------------------------------------------------

DATABASE_LIBRARIES = ("sqlalchemy", "alembic", "psycopg")


def test_only_the_store_imports_the_database_libraries() -> None:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] == "store":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom) and not node.level
                else []
            )
            offenders += [f"{rel}: {n}" for n in names if n.split(".")[0] in DATABASE_LIBRARIES]
    assert offenders == []


@pytest.mark.parametrize(
    ("module", "forbidden"),
    [
        ("pytest_dnnbench.plugin", ("sqlalchemy", "alembic", "psycopg", "pytest_dnnbench.store")),
        ("pytest_dnnbench.store.urls", ("sqlalchemy", "torch", "pytest")),
        ("pytest_dnnbench.store.fingerprint", ("sqlalchemy", "torch", "pytest")),
        ("pytest_dnnbench.store.runmeta", ("sqlalchemy", "torch", "pytest")),
        ("pytest_dnnbench.store.db", ("torch", "pytest", "psycopg")),
    ],
)
def test_what_importing_a_module_does_not_import(module: str, forbidden: tuple[str, ...]) -> None:
    code = (
        f"import sys, {module}; bad = sorted(m for m in sys.modules if m.split('.')[0] in {forbidden!r} "
        f"or any(m == f or m.startswith(f + '.') for f in {forbidden!r})); assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
