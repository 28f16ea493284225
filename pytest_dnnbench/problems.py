"""What the user gave cannot work: one exception, one message shape, and the check that a path can be written
(no pytest here: the session raises these as pytest's usage errors)."""

from __future__ import annotations

import os
from pathlib import Path

from .results import not_a_regular_file

__all__ = ["MAX_SHOWN", "UsageProblem", "bad_value", "check_writable", "shown"]

#: Most characters of a value echoed in a message.
MAX_SHOWN = 200


class UsageProblem(Exception):
    """What the user gave cannot work: ``str()`` says what was wrong and how to fix it (the session raises it
    as pytest's usage error)."""


def shown(value: object) -> str:
    """A value as echoed in a message: cut to :data:`MAX_SHOWN` characters."""
    text = str(value)
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 3] + "..."


def bad_value(option: str, value: object, why: str, fix: str) -> UsageProblem:
    """The one shape of a bad-value error: ``OPTION=VALUE: why. Fix``; a marker's keyword is closed again:
    ``dnn_constraints(max_memory=[1, 2]): why. Fix``."""
    close = ")" * (option.count("(") - option.count(")"))
    return UsageProblem(f"{option}={shown(value)}{close}: {why}. {fix}")


def check_writable(path: Path, option: str, *, directory: bool = False) -> None:
    """A usage problem now, before any model is built, where ``path`` could not be written later.

    ``path`` may not exist yet (its folders are made when it is written): the nearest existing
    folder above it must be a writable folder, and ``path`` itself, where it exists, a file
    (``directory=False``) or a folder (``directory=True``) that can be written.
    """
    what = "a directory" if directory else "a file"
    try:
        exists = path.exists()
    except OSError as exc:  # e.g. a file name longer than the file system allows
        raise bad_value(
            option, path, f"the system refuses this path ({exc.strerror})", f"Give the path of {what}"
        ) from None
    if exists:
        if path.is_dir() != directory:
            raise bad_value(option, path, f"{path} exists and is not {what}", f"Give the path of {what}")
        if not directory:
            other = not_a_regular_file(path)  # a device, a FIFO, a socket: an atomic save would replace it
            if other is not None:
                raise bad_value(option, path, f"{path} is {other}, not a regular file", f"Give the path of {what}")
        if not os.access(path, os.W_OK):
            raise bad_value(option, path, f"{path} is not writable", "Give a path this user may write")
        return
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise bad_value(option, path, f"{parent} is a file, so {path} cannot be made", f"Give the path of {what}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise bad_value(option, path, f"{parent} is not writable", "Give a path this user may write")
