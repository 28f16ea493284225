"""JSON as Python data: the two aliases every module that reads or writes JSON uses.

A leaf module (it imports nothing of the package), so that a module that only needs the aliases
does not depend on :mod:`.record` and no import circle, not even a type-only one, runs through it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["JsonMapping", "JsonObject"]

#: A JSON object as Python data (a record, a results file, an environment): its values are arbitrary
#: JSON, hence ``Any`` -- the one place where the package says so; JSON is checked where it is read.
JsonObject = dict[str, Any]
#: The same, read-only (a record handed to a check or a report).
JsonMapping = Mapping[str, Any]
