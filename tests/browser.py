"""Headless Chromium for the tests of what users open in a browser (the HTML report, the dashboard).

Under CI (``CI`` set) a missing Chromium fails these tests rather than skipping them: ``.ci/run`` installs
Debian's ``chromium``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


#: Skips a test where no Chromium is installed, except under CI, where it fails (``.ci/run`` installs it).
needs_chromium = pytest.mark.skipif(
    find_chromium() is None and not os.environ.get("CI"),
    reason="Chromium is not installed (Debian: apt-get install chromium)",
)


def chromium(args: list[str], tmp_path: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    exe = find_chromium()
    assert exe is not None, "Chromium is not installed (Debian: apt-get install chromium); .ci/run installs it"
    profile = tmp_path / "profile"
    profile.mkdir(exist_ok=True)
    cmd = [
        exe,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--enable-logging=stderr",
        "--v=0",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def console_lines(stderr: str) -> list[str]:
    """Chromium's log lines of the page's console messages and uncaught errors."""
    return [ln for ln in stderr.splitlines() if "CONSOLE" in ln or "Uncaught" in ln]


def probe_result(stdout: str) -> dict[str, Any]:
    """The JSON a probe script wrote between ``@@probe`` and ``@@end`` into the dumped DOM."""
    m = re.search(r"@@probe(.*?)@@end", stdout, re.S)
    assert m, stdout[-2000:]
    result: dict[str, Any] = json.loads(m.group(1))
    return result
