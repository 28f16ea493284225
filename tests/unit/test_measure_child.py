"""A child process on one JSON request (:mod:`pytest_dnnbench.measure.child`): the runner that
``--dnn-isolate=process``, ``--dnn-confirm`` and the deployed-memory step start their children with."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_dnnbench.measure.child import (
    ChildRun,
    ChildTimeout,
    last_line,
    read_answer,
    run_json_child,
    stderr_tail,
)

PREFIX = "@@test-child@@ "

CHILD = f"""
import json, sys, time
request = json.load(sys.stdin)
print("a library talks on stdout first")
print({PREFIX!r} + "{{\\"not\\": \\"this one\\"}}")
print("then sleeps", request.get("sleep", 0), file=sys.stderr, flush=True)
time.sleep(request.get("sleep", 0))
if request.get("crash"):
    print("Traceback: something broke", file=sys.stderr)
    sys.exit(3)
print({PREFIX!r} + json.dumps({{"echo": request}}))
"""


@pytest.fixture
def child_env(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "echo_child.py").write_text(CHILD)
    return {**os.environ, "PYTHONPATH": str(tmp_path)}


def test_the_answer_is_the_last_prefixed_line_and_the_request_reaches_the_child(child_env: dict[str, str]) -> None:
    run = run_json_child("echo_child", {"x": [1, 2]}, prefix=PREFIX, timeout_s=60, env=child_env)
    assert run == ChildRun(0, "then sleeps 0\n", {"echo": {"x": [1, 2]}})


def test_a_crashed_child_keeps_its_status_and_its_error(child_env: dict[str, str]) -> None:
    run = run_json_child("echo_child", {"crash": True}, prefix=PREFIX, timeout_s=60, env=child_env)
    assert run.returncode == 3 and run.how == "exited with status 3"
    assert run.answer == {"not": "this one"}  # what it wrote before it died: the caller sees the status
    assert last_line(run.stderr) == "Traceback: something broke"


def test_a_child_past_its_time_is_killed_with_what_it_wrote(child_env: dict[str, str]) -> None:
    with pytest.raises(ChildTimeout) as info:
        run_json_child("echo_child", {"sleep": 30}, prefix=PREFIX, timeout_s=2, env=child_env)
    assert "then sleeps 30" in info.value.stderr


def test_a_killed_child_says_by_which_signal() -> None:
    assert ChildRun(-9, "", None).how == "was killed by signal 9"


def test_an_answer_cut_off_or_not_an_object_is_no_answer() -> None:
    assert read_answer(PREFIX + '{"a": 1', PREFIX) is None
    assert read_answer(PREFIX + "[1, 2]", PREFIX) is None
    assert read_answer("no answer here\n", PREFIX) is None
    assert read_answer(None, PREFIX) is None


@given(st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40), max_size=30))
def test_the_tail_is_the_last_lines_of_stderr(lines: list[str]) -> None:
    text = "\n".join(lines)
    tail = stderr_tail(text, 5)
    if not text:
        assert tail == ""
    else:
        assert tail.startswith("; stderr (last lines):\n")
        assert tail.splitlines()[1:] == text.rstrip().splitlines()[-5:]
    assert stderr_tail(text.encode(), 5) == tail
    assert len(last_line(text, 10)) <= 10


def test_bytes_from_a_timeout_are_decoded() -> None:
    assert last_line(b"first\nlast \xff\n") == "last \ufffd"
