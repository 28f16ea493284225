"""The one reader of every JSON file the plugin reads (pure: no torch, no pytest).

Baseline files, results files, the report command's inputs and the shared runtime-floor cache are
read by :func:`load_json`: the file is read **once** (so that a FIFO or a shell's process
substitution, ``report <(cat results.json)``, works), as bytes, at most :data:`MAX_BYTES` of them,
and whatever is wrong with it is one :class:`JsonFileError` (a ``ValueError``) whose message names
the file, what is wrong and how to fix it, never another exception:

- a path that cannot be opened: missing, a loop of symbolic links, a directory, no permission;
- text that is not UTF-8, empty, or not JSON (a truncated file is said to be truncated);
- nesting deeper than :data:`MAX_DEPTH` (checked by a linear scan before the parser recurses);
- an integer of more than :data:`MAX_INT_DIGITS` digits or one too large for a float, and a float
  literal too large for one (``1e400``): no figure this large is a measurement, and each would
  break arithmetic later;
- ``NaN``, ``Infinity`` and ``-Infinity``: not JSON, and never written by this plugin
  (``allow_nan=False`` everywhere), so a file holding them was edited or made elsewhere.

:func:`loads_json` parses text the same way (a child process's line of output).
:func:`check_bytes` and :func:`check_seconds` validate single figures; :func:`finite_or_null`
replaces non-finite floats before a document is written.
"""

from __future__ import annotations

import errno
import math
import os
import re
import stat
import sys
from pathlib import Path

__all__ = [
    "MAX_BYTES",
    "MAX_DEPTH",
    "MAX_FIGURE_BYTES",
    "MAX_INT_DIGITS",
    "JsonFileError",
    "check_bytes",
    "check_seconds",
    "finite_or_null",
    "load_json",
    "loads_json",
    "nesting_depth",
    "resolved",
]

#: Deepest nesting of objects and lists accepted (this plugin's files nest fewer than ten levels).
MAX_DEPTH = 200
#: Longest integer literal accepted, in digits (a float holds about 309 digits; the interpreter converts 4300).
MAX_INT_DIGITS = 400
#: Largest file read, in bytes (a results file of the paper's whole matrix is a few MB).
MAX_BYTES = 512 * 2**20
#: Largest size in bytes :func:`check_bytes` accepts by default (an exbibyte: no memory figure comes near).
MAX_FIGURE_BYTES = 2**60


class JsonFileError(ValueError):
    """A JSON file that cannot be used; the message names the file, what is wrong and the fix."""

    def __init__(self, message: str, path: Path | str | None = None):
        super().__init__(message)
        self.path = path


class _Refused(ValueError):
    """Raised from inside the parser's hooks: a literal the loader does not accept."""

    def __init__(self, what: str, why: str, literal: str):
        super().__init__(what + why)
        self.what, self.why, self.literal = what, why, literal


def resolved(path: Path | str) -> Path:
    """``path`` made absolute with its symbolic links resolved, where that can be done; a path that
    cannot be resolved (a loop of links: ``RuntimeError`` or ``OSError``) comes back absolute but
    unresolved, for the reader to report."""
    p = Path(path)
    try:
        return p.resolve()
    except (OSError, RuntimeError, ValueError):
        return Path(os.path.abspath(p))


def _open_problem(exc: OSError) -> str:
    """Why a file could not be opened, and the fix, in words."""
    code = exc.errno
    if isinstance(exc, FileNotFoundError) or code == errno.ENOENT:
        return "it does not exist (or is a symbolic link to nothing); check the path"
    if code == errno.ELOOP:
        return "it is a loop of symbolic links; point the path at a real file"
    if isinstance(exc, IsADirectoryError) or code == errno.EISDIR:
        return "it is a directory, not a file; name the JSON file inside it"
    if isinstance(exc, NotADirectoryError) or code == errno.ENOTDIR:
        return "a part of the path is a file, not a directory; check the path"
    if isinstance(exc, PermissionError) or code in (errno.EACCES, errno.EPERM):
        return "permission denied; make it readable"
    return f"{exc.strerror or exc} (errno {code}); check the path"


def _read_once(path: Path, what: str, max_bytes: int, regular_only: bool = False) -> bytes:
    if regular_only:  # checked before opening: opening a FIFO that no one writes would wait forever
        try:
            mode = os.stat(path).st_mode
        except (OSError, RuntimeError, ValueError):
            mode = None  # the open below names the problem
        if mode is not None and not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):
            raise JsonFileError(
                f"cannot read {what} {path}: it is not a regular file (a FIFO, socket or device); name a JSON file",
                path,
            )
    try:
        with open(path, "rb") as fh:
            mode = os.fstat(fh.fileno()).st_mode
            if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):  # /dev/zero, /dev/urandom, a terminal: no file's text
                raise JsonFileError(f"cannot read {what} {path}: it is a device, not a file; name a JSON file", path)
            raw = fh.read(max_bytes + 1)
    except JsonFileError:
        raise
    except OSError as exc:
        raise JsonFileError(f"cannot read {what} {path}: {_open_problem(exc)}", path) from None
    except (RuntimeError, ValueError) as exc:  # a path the system refuses (a NUL byte), a link loop on some systems
        raise JsonFileError(f"cannot read {what} {path}: {exc}; check the path", path) from None
    if len(raw) > max_bytes:
        raise JsonFileError(
            f"{what} {path} is larger than {max_bytes:,} bytes: no file this plugin writes is; "
            "check that it is the file you meant",
            path,
        )
    return raw


def load_json(
    path: Path | str, what: str = "JSON file", *, max_bytes: int = MAX_BYTES, regular_only: bool = False
) -> object:
    """The JSON document in ``path``, read once; :class:`JsonFileError` names the file and what is wrong.

    ``what`` names the kind of file in messages (``"baseline file"``, ``"results file"``). ``regular_only``:
    refuse a FIFO, socket or device before opening it (files the plugin also writes, such as baselines);
    otherwise a FIFO is read once (``report <(cat results.json)``).
    """
    p = Path(path)
    return loads_json(_read_once(p, what, max_bytes, regular_only), f"{what} {p}", path=p)


def loads_json(data: bytes | str, where: str = "JSON text", *, path: Path | str | None = None) -> object:
    """Parse ``data`` (bytes: UTF-8) under the rules of :func:`load_json`; ``where`` starts each message
    (``"baseline file x.json"``)."""
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JsonFileError(
                f"{where} is not valid JSON: it is not UTF-8 text (byte {exc.start} cannot be decoded); "
                "give a JSON file written by pytest-dnnbench",
                path,
            ) from None
    else:
        text = data
    if text.startswith("\ufeff"):
        text = text[1:]  # a byte-order mark some editors write
    if not text.strip():
        raise JsonFileError(f"{where} is empty; give a JSON file written by pytest-dnnbench, or remove it", path)
    if text.count("[") + text.count("{") > MAX_DEPTH and nesting_depth(text, MAX_DEPTH) > MAX_DEPTH:
        raise JsonFileError(
            f"{where} nests its objects and lists deeper than {MAX_DEPTH} levels; "
            "it is not a file this plugin writes (those nest a few levels): replace it",
            path,
        )
    import json

    try:
        return json.loads(text, parse_int=_int, parse_float=_float, parse_constant=_constant)
    except _Refused as exc:
        raise JsonFileError(
            f"{where} holds {exc.what}{_position(text, exc.literal)}{exc.why}; pytest-dnnbench never writes such "
            "a value: "
            "correct or remove it",
            path,
        ) from None
    except json.JSONDecodeError as exc:
        what = "not valid JSON"
        if _unbalanced(text):
            what = "truncated (it ends inside an unfinished object, list or string), so not valid JSON"
        raise JsonFileError(f"{where} is {what}: {exc.msg} (line {exc.lineno}, column {exc.colno})", path) from None
    except (RecursionError, MemoryError):  # not reached after the depth scan; kept so that nothing else escapes
        raise JsonFileError(f"{where} is too deeply nested or too large to read", path) from None


def _int(literal: str) -> int:
    digits = len(literal.lstrip("-"))
    if digits > MAX_INT_DIGITS:
        raise _Refused(f"an integer of {digits:,} digits", f" (at most {MAX_INT_DIGITS} are read)", literal)
    try:
        value = int(literal)
    except ValueError:  # the interpreter's own limit (sys.set_int_max_str_digits) set lower
        raise _Refused(f"an integer of {digits:,} digits", ", more than this interpreter converts", literal) from None
    if abs(value) > sys.float_info.max:
        raise _Refused(f"an integer of {digits:,} digits", ", too large to be a figure", literal)
    return value


def _float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise _Refused(f"the number {literal[:40]}", ", too large to be a figure (it would be infinite)", literal)
    return value


def _constant(literal: str) -> float:
    raise _Refused(literal, ", which is not a number JSON allows (use null for a missing figure)", literal)


#: A string (closed, or running to the end of the text) or one bracket. Linear: each part of a string
#: can be matched one way only, and a string that is never closed matches to the end.
_STRING = r'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z)'
_TOKENS = re.compile(_STRING + r"|[\[\]{}]", re.DOTALL)


def _position(text: str, literal: str) -> str:
    """`` at line L, column C`` of the first ``literal`` outside a string in ``text`` (where the parser refused
    it: it parses in document order), or nothing where it cannot be found."""
    pattern = re.compile(_STRING + r"|(?<![\w.+-])" + re.escape(literal) + r"(?![\w.])", re.DOTALL)
    for match in pattern.finditer(text):
        if not match.group().startswith('"'):
            line = text.count("\n", 0, match.start()) + 1
            column = match.start() - (text.rfind("\n", 0, match.start()) + 1) + 1
            return f" at line {line}, column {column}"
    return ""


def nesting_depth(text: str, stop_above: int | None = None) -> int:
    """The deepest nesting of objects and lists in ``text`` (brackets inside strings not counted),
    found in one pass without recursion; it stops early once deeper than ``stop_above``."""
    depth = deepest = 0
    for match in _TOKENS.finditer(text):
        first = match.group()[0]
        if first == "[" or first == "{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if stop_above is not None and deepest > stop_above:
                    break
        elif first == "]" or first == "}":
            depth -= 1
    return deepest


def _unbalanced(text: str) -> bool:
    """True when ``text`` ends inside a string, object or list: the mark of a truncated file."""
    depth, in_string, escaped = 0, False, False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
    return in_string or depth > 0


# -- figures ----------------------------------------------------------------------------------------


def check_bytes(value: object, what: str, *, maximum: int = MAX_FIGURE_BYTES, minimum: int = 0) -> int:
    """``value`` as a size in bytes: a whole number (an int, or a float without a fraction) from
    ``minimum`` up to below ``maximum``; else ``ValueError`` saying what ``what`` holds."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{what} must be a whole number of bytes, not {type(value).__name__} {value!r:.40}")
    if isinstance(value, float) and (not math.isfinite(value) or not value.is_integer()):
        raise ValueError(f"{what} must be a whole number of bytes, not {value!r:.40}")
    if not minimum <= value < maximum:
        raise ValueError(f"{what} of {value!r:.40} bytes is implausible (expected {minimum:,} to {maximum:,})")
    return int(value)


def check_seconds(value: object, what: str, *, maximum: float = 1e9) -> float:
    """``value`` as a duration in seconds: a finite, non-negative number below ``maximum``; else ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{what} must be a number of seconds, not {type(value).__name__} {value!r:.40}")
    try:
        seconds = float(value)
    except OverflowError:
        raise ValueError(f"{what} of {value!r:.40} seconds is implausible") from None
    if not math.isfinite(seconds) or not 0 <= seconds < maximum:
        raise ValueError(f"{what} of {value!r:.40} seconds is implausible (expected 0 to {maximum:g})")
    return seconds


def finite_or_null(data: object, where: str = "") -> tuple[object, list[str]]:
    """``data`` (JSON data) with every non-finite float replaced by None, and the places replaced,
    each as ``where.key[3].name: nan``. ``data`` is not changed; it comes back as it is where
    nothing was replaced."""
    notes: list[str] = []

    def clean(v: object, at: str) -> object:
        if isinstance(v, float) and not math.isfinite(v):
            notes.append(f"{at or '(the value)'}: {v}")
            return None
        if isinstance(v, dict):
            return {k: clean(item, f"{at}.{k}" if at else str(k)) for k, item in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(item, f"{at}[{i}]") for i, item in enumerate(v)]
        return v

    cleaned = clean(data, where)
    return (cleaned, notes) if notes else (data, notes)
