"""Which store a run writes to (``run_store.store_choice``): the option, the environment variable, the ini."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_dnnbench.run_store import ENV_VAR, StoreChoice, store_choice

HERE, INI = Path("/work/here"), Path("/work/project")
URL = "postgresql://ci:pw@db/dnnbench"


@pytest.mark.parametrize(
    ("option", "ini", "environ", "expected"),
    [
        (None, None, {}, None),  # nothing asked: no store
        ("default", None, {}, StoreChoice(None, HERE, "--dnn-store")),  # bare flag: the embedded file
        ("", None, {}, StoreChoice(None, HERE, "--dnn-store")),
        ("default", None, {ENV_VAR: URL}, StoreChoice(URL, HERE, ENV_VAR)),  # bare flag, URL from the variable
        ("sqlite:///x.db", None, {ENV_VAR: URL}, StoreChoice("sqlite:///x.db", HERE, "--dnn-store")),  # flag wins
        (None, None, {ENV_VAR: URL}, StoreChoice(URL, HERE, ENV_VAR)),  # the variable alone turns it on
        (None, None, {ENV_VAR: "  "}, None),  # a blank variable does not
        (None, "default", {}, StoreChoice(None, INI, "dnn_store")),  # ini: relative to the ini's folder
        (None, "runs.sqlite", {ENV_VAR: URL}, StoreChoice(URL, HERE, ENV_VAR)),  # the variable before the ini
        (None, "runs.sqlite", {}, StoreChoice("runs.sqlite", INI, "dnn_store")),
    ],
)
def test_which_store_a_run_writes_to(
    option: str | None, ini: str | None, environ: dict[str, str], expected: StoreChoice | None
) -> None:
    assert store_choice(option, HERE, ini, INI, environ) == expected
