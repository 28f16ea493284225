"""Run a child process on one JSON request and read its one JSON answer (no torch, no pytest).

The child is ``python -m <module>``: it reads the request from stdin and writes its answer as one
line of stdout after a prefix of its own, so that nothing else the child prints (a library's
message) is taken for it. :mod:`pytest_dnnbench.isolated` (a whole measurement in a fresh process)
and :mod:`.runtime_memory` (a deployed runtime's memory) start their children here; each says what
a timeout, a crash or a missing answer means for it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["ChildRun", "ChildTimeout", "last_line", "read_answer", "run_json_child", "stderr_tail"]


class ChildTimeout(Exception):
    """The child ran past its time and was killed; ``stderr``: what it had written."""

    def __init__(self, stderr: str) -> None:
        super().__init__("the child process timed out")
        self.stderr = stderr


@dataclass(frozen=True)
class ChildRun:
    """How a child ended: its exit status, its stderr and its answer (None where it wrote none)."""

    returncode: int
    stderr: str
    answer: dict[str, Any] | None

    @property
    def how(self) -> str:
        """``was killed by signal 9`` or ``exited with status 1``."""
        status = self.returncode
        return f"was killed by signal {-status}" if status < 0 else f"exited with status {status}"


def run_json_child(
    module: str,
    request: Mapping[str, Any],
    *,
    prefix: str,
    timeout_s: float,
    env: Mapping[str, str],
    python: str | None = None,
) -> ChildRun:
    """``python -m module`` with ``request`` as JSON on stdin; raises :class:`ChildTimeout` past
    ``timeout_s`` (the child is killed) and ``OSError`` where it cannot start."""
    try:
        proc = subprocess.run(
            [python or sys.executable, "-m", module],
            input=json.dumps(request),
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env=dict(env),
        )
    except subprocess.TimeoutExpired as exc:
        raise ChildTimeout(_text(exc.stderr)) from None
    return ChildRun(proc.returncode, proc.stderr or "", read_answer(proc.stdout, prefix))


def read_answer(stdout: str | None, prefix: str) -> dict[str, Any] | None:
    """The JSON object on the last line of ``stdout`` that starts with ``prefix``; None where there is
    none or it is not a JSON object (a child cut off while writing it)."""
    for line in reversed((stdout or "").splitlines()):
        if line.startswith(prefix):
            try:
                answer = json.loads(line[len(prefix) :])
            except ValueError:
                return None
            return answer if isinstance(answer, dict) else None
    return None


def last_line(text: str | bytes | None, limit: int = 300) -> str:
    """The last non-blank line of a child's stderr (at most ``limit`` characters): usually its error."""
    lines = [line.strip() for line in _text(text).splitlines() if line.strip()]
    return lines[-1][:limit] if lines else ""


def stderr_tail(text: str | bytes | None, lines: int = 15) -> str:
    """``; stderr (last lines):`` and the last ``lines`` lines of a child's stderr; empty where it has none."""
    text = _text(text)
    if not text:
        return ""
    return "; stderr (last lines):\n" + "\n".join(text.rstrip().splitlines()[-lines:])


def _text(text: str | bytes | None) -> str:
    if isinstance(text, bytes):
        return text.decode(errors="replace")
    return text or ""
