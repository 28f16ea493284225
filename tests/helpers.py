"""Constants and helpers shared by the plugin's own tests."""

from __future__ import annotations

import json
from pathlib import Path

#: Options that keep a benchmark test to a fraction of a second.
FAST = ["--dnn-device=cpu", "--dnn-max-time=0.3", "--dnn-min-samples=3", "--dnn-warmup=1"]

TINY_MODULE = """
import os
import pathlib

import torch.nn as nn


def tiny(width=8):
    marker = os.environ.get("DNN_BUILD_MARKER")
    if marker:
        pathlib.Path(marker).write_text("built")
    return nn.Sequential(
        nn.Conv2d(3, width, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 10)
    )


def broken():
    raise RuntimeError("this model cannot be built")
"""

TINY_CONFTEST = """
def pytest_dnnbench_register_models(registry, config):
    registry.register("tiny", "tinymodels:tiny", input_size=(3, 32, 32))
    registry.register("tiny_wide", "tinymodels:tiny", input_size=(3, 24, 24), kwargs={"width": 16})
    registry.register("broken", "tinymodels:broken", input_size=(3, 32, 32))
"""


def load_json(path: Path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def as_record(data: dict):  # -> pytest_dnnbench.record.Record
    """A record from a test's JSON dict (a latency of 1 ms where the dict has none: the checks need one)."""
    from pytest_dnnbench.record import Record

    return Record.from_json({"latency_ms": {"median": 1.0}, **data})
