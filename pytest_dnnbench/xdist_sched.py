"""pytest-xdist scheduling by model: every test of one model runs on one worker.

xdist's own ``loadgroup`` groups by the ``xdist_group`` mark through an ``@group`` suffix its
workers add to node ids; under pytest 9 that suffix no longer reaches the node id (pytest-xdist
3.8 sets an attribute pytest stopped reading), so the plugin brings a scheduler of the same
family that also recognises the model in a benchmark test's id (``test_dnn[<model>-bs<N>]``).
Imported only at the controller of an xdist run.
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Optional

from xdist.scheduler import LoadScopeScheduling


def model_of(nodeid: str, names: Iterable[str]) -> Optional[str]:
    """The registry model in ``nodeid``'s parameter id, if any (longest name first)."""
    open_at = nodeid.find("[")
    if open_at < 0 or not nodeid.endswith("]"):
        return None
    params = nodeid[open_at + 1:-1]
    for name in sorted(names, key=len, reverse=True):
        if re.search(rf"(^|-){re.escape(name)}(-|$)", params):
            return name
    return None


def split_scope(nodeid: str, names: Iterable[str]) -> str:
    if nodeid.rfind("@") > nodeid.rfind("]"):
        return nodeid.split("@")[-1]  # an xdist_group suffix, where xdist still adds one
    model = model_of(nodeid, names)
    return f"dnn-model:{model}" if model is not None else nodeid


class ModelGroupScheduling(LoadScopeScheduling):
    """xdist's ``loadscope`` where the scope of a benchmark test is its model."""

    def __init__(self, config: Any, log: Any = None, names: Iterable[str] = ()) -> None:
        super().__init__(config, log)
        self._names = tuple(names)
        if log is not None:
            self.log = log.modelgroupsched

    def _split_scope(self, nodeid: str) -> str:
        return split_scope(nodeid, self._names)
