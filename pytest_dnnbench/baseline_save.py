"""Writing baseline files: a run's rounds merged into them, under an inter-process lock, saved atomically.

Owns :func:`save_run` (what the session calls after a ``--dnn-save-baseline`` run) and its
:class:`SaveOutcome`; the rounds and entries a save writes (:func:`round_from_record`,
:func:`merge_records`); the documents (:func:`new_document`, :func:`set_document`,
:func:`document_text`, :func:`save_document`); and the lock of a file (:func:`file_lock`,
:func:`lock_path`, :class:`LockTimeout`), which the results file takes as well.

Reading is :mod:`.baseline_store` (the format, platform keys, loading and validation): nothing is
written that it cannot read back. Files of version 1 are upgraded as they are read
(:func:`~.upgrade.upgrade_document`), so a save to such a file writes it in version 2, every
round kept. Pure (no torch, no pytest).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import statistics
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from .baseline_store import (
    DEFAULT_MAX_ROUNDS,
    READ_SCHEMAS,
    SCHEMA,
    SET_SCHEMA,
    BaselineError,
    base_key,
    baselines_from_document,
    load_baselines,
    log_spread,
    platform_from_record,
    shown_path,
    split_key,
)
from .jsontypes import JsonMapping, JsonObject
from .measure.stats import percentile
from .results import atomic_write_text
from .upgrade import upgrade_accuracy, upgrade_document

if TYPE_CHECKING:
    from .record import Record

__all__ = [
    "LOCK_TIMEOUT_S",
    "LockTimeout",
    "SaveOutcome",
    "busy_rounds_note",
    "document_text",
    "file_lock",
    "lock_path",
    "merge_records",
    "new_document",
    "round_from_record",
    "save_document",
    "save_run",
    "set_document",
]

#: Quantiles kept per round (0 %, 5 %, ..., 100 %): the shape of each round's distribution, bounded in size.
ROUND_QUANTILES = tuple(range(0, 101, 5))

#: Seconds a saver waits for another run's save of the same file to finish.
LOCK_TIMEOUT_S = 120.0


# -- saving a run ----------------------------------------------------------------------------------


@dataclass
class SaveOutcome:
    """What saving a run's rounds did: the notes for the summary (in order), the files written, the
    notes among them that say what was saved (the summary lists those with the files written), whether
    it failed."""

    notes: list[str] = field(default_factory=list)
    saved: list[str] = field(default_factory=list)
    failed: bool = False
    saved_notes: list[str] = field(default_factory=list)


#: A run's records to save, by platform key: (the platform block, the records).
Groups = dict[str, tuple[JsonObject, list["Record"]]]


def save_run(
    typed: Sequence[Record],
    environment: JsonMapping | None,
    *,
    choice: str,
    root: Path,
    max_rounds: int,
    force: bool,
    regressions: int,
    interrupted: bool,
    lock_timeout_s: float = LOCK_TIMEOUT_S,
) -> SaveOutcome:
    """Add this run's records as one round each to the baseline file(s) ``choice`` names (a round is the
    record's JSON form, cut to what a baseline keeps).

    ``choice``: ``"auto"`` (one file per platform key, so per mode, under ``root/baselines``) or a
    path. A path holds one platform: the records of one mode make (or merge into) a
    ``pytest-dnnbench-baseline/2`` document as ever; those of several modes of one platform, or a
    mode added to a file of another, make a baseline set with one block per mode (an existing
    file's blocks and rounds kept). A file of version 1 is rewritten in version 2, every round
    kept. Records of several platforms (apart from the mode) are never saved to one path. A run
    that was interrupted, produced no record, or regressed (unless ``force``) saves nothing;
    neither does a file that cannot be read, or that belongs to another platform (unless
    ``force``): it is left untouched and the outcome says why.
    """
    out = SaveOutcome()
    usable = [r for r in typed if r.latency.median]
    too_few = [r for r in usable if r.latency.insufficient]
    if too_few:
        names = ", ".join(f"{r.model} at batch {r.batch_size} (n = {r.latency.n})" for r in too_few)
        out.notes.append(
            f"not saved as baseline rounds: {len(too_few)} result(s) with fewer samples than the minimum: {names} "
            "(raise --dnn-max-time)"
        )
        usable = [r for r in usable if r not in too_few]
    if not usable:
        out.notes.append(
            "baseline not saved: this run produced no benchmark records" + (" with enough samples" if too_few else "")
        )
        return out
    if interrupted:
        out.notes.append("baseline not saved: the run was interrupted")
        return out
    if regressions and not force:
        out.notes.append(
            f"baseline not saved: {regressions} regression(s) in this run; a regressed run never "
            "overwrites the baseline (add --dnn-baseline-force to accept it)"
        )
        return out
    groups: Groups = {}
    for rec in usable:
        plat = platform_from_record(rec, environment)
        groups.setdefault(plat["key"], (plat, []))[1].append(rec)
    targets: list[tuple[Path, Groups]]
    if choice == "auto":
        targets = [(root / "baselines" / f"{key}.json", {key: group}) for key, group in groups.items()]
    else:
        bases = {base_key(key, plat.get("mode")) for key, (plat, _) in groups.items()}
        if len(bases) > 1:
            out.notes.append(
                f"baseline not saved: the records come from {len(bases)} platforms "
                f"({', '.join(groups)}); one file holds the deployment modes of one platform: use "
                "--dnn-save-baseline without a path (one file per platform)"
            )
            out.failed = True
            return out
        targets = [(Path(choice), groups)]
    for path, file_groups in targets:
        shown = shown_path(path, root)
        try:
            with file_lock(path, lock_timeout_s):
                _save_file(
                    out, path, shown, file_groups, max_rounds, force, bool(regressions), by_mode=choice != "auto"
                )
        except LockTimeout as exc:
            out.notes.append(f"baseline not saved to {shown}: {exc}")
            out.failed = True
        except OSError as exc:  # no lock file can be made there (a read-only folder, ...)
            out.notes.append(f"baseline not saved to {shown}: cannot make the lock file {lock_path(path)} ({exc})")
            out.failed = True
    return out


def _save_file(
    out: SaveOutcome,
    path: Path,
    shown: str,
    groups: Groups,
    max_rounds: int,
    force: bool,
    forced: bool,
    *,
    by_mode: bool,
) -> None:
    """Merge ``groups`` (one platform's modes) into the file at ``path``; the caller holds its lock.

    ``by_mode`` (a path named by the user): a file of the same platform in other modes takes this
    run's modes as blocks of a baseline set. Otherwise (``auto``) the file must hold the key itself.
    A file of another platform is left untouched unless ``force``.
    """
    existing = None
    if path.exists() or path.is_symlink():  # a broken or looping link is an error, not replaced by a new file
        try:
            existing = load_baselines(path)
        except BaselineError as exc:
            out.notes.append(f"baseline not saved: {exc} (the file was left untouched)")
            out.failed = True
            return
    keys = list(groups)
    docs: dict[str, JsonObject] = {}
    was_set = False
    replaced = None
    if existing is not None:
        first_plat = groups[keys[0]][0]
        if by_mode:
            fits = existing.base_key == base_key(keys[0], first_plat.get("mode"))
        else:
            fits = all(k in existing for k in keys)
        if fits:
            docs = {k: b.document for k, b in existing.items()}
            was_set = not existing.single
        elif not force:
            out.notes.append(
                f"baseline not saved: {shown} is for {existing.describe()}, this run is {', '.join(keys)} "
                "(choose another path, or --dnn-baseline-force to replace its platform)"
            )
            out.failed = True
            return
        elif existing.single and len(keys) == 1:
            docs = {keys[0]: existing.document}  # as ever: its entries are kept under this run's platform
        else:
            replaced = f"{shown}: the baselines of {existing.describe()} were replaced (--dnn-baseline-force)"
    for key, (plat, recs) in groups.items():
        docs[key] = merge_records(docs.get(key), recs, plat, max_rounds=max_rounds)
    as_set = was_set or len(docs) > 1
    doc = set_document(docs.values()) if as_set else docs[keys[0]]
    try:
        save_document(path, doc)
    except (OSError, ValueError) as exc:
        out.notes.append(f"baseline not saved to {shown}: {exc}")
        out.failed = True
        return
    out.saved.append(shown)
    if replaced:
        out.notes.append(replaced)
    for key, (plat, recs) in groups.items():
        block = docs[key]
        where = f"{shown}, mode {plat.get('mode') or split_key(key)[1]}" if as_set else shown
        touched = {(r.model, int(r.batch_size)) for r in recs}
        rounds = sorted({len(e["rounds"]) for e in block["entries"] if (e["model"], e["batch_size"]) in touched})
        kept = len(block["entries"]) - len(touched)
        note = (
            f"baseline saved: {where} ({len(touched)} entr{'y' if len(touched) == 1 else 'ies'} "
            f"updated, {kept} kept; rounds per updated entry: {', '.join(map(str, rounds))} of at most "
            f"{block['max_rounds']}{'; forced despite regressions' if forced else ''})"
            + busy_rounds_note(recs, [e for e in block["entries"] if (e["model"], e["batch_size"]) in touched])
        )
        out.notes.append(note)
        out.saved_notes.append(note)
    if as_set and not was_set:
        modes = [str(d["platform"].get("mode") or split_key(k)[1]) for k, d in sorted(docs.items())]
        out.notes.append(
            f"{shown} now holds the modes {', '.join(modes)} of one platform, one block each "
            f"(a baseline set, {SET_SCHEMA!r}; docs/baselines.md)"
        )


def busy_rounds_note(records: Sequence[Record], entries: Sequence[JsonMapping]) -> str:
    """What the line of a saved file adds about the new rounds measured on a busy machine (``""`` where none
    was): the gate leaves busy rounds out of its comparisons, and judges an entry of busy rounds only
    inconclusive. ``entries``: the updated entries, after the save."""
    busy = sum(1 for r in records if (r.load or {}).get("busy"))
    if not busy:
        return ""
    text = (
        f"; {busy} of the {len(records)} new round(s) {'was' if busy == 1 else 'were'} measured on a busy "
        "machine and will not be compared against (re-record them on a quiet machine)"
    )
    only_busy = [e for e in entries if e.get("rounds") and all(r.get("busy") for r in e["rounds"])]
    if only_busy:
        names = ", ".join(f"{e['model']} at batch {e['batch_size']}" for e in only_busy[:3])
        text += (
            f"; {len(only_busy)} entr{'y holds' if len(only_busy) == 1 else 'ies hold'} busy rounds only "
            f"({names}{', ...' if len(only_busy) > 3 else ''}): {'its' if len(only_busy) == 1 else 'their'} "
            "latency comparisons will be inconclusive"
        )
    return text


# -- rounds, entries, merging, saving ----------------------------------------------------------


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def round_from_record(typed: Record, created: str | None = None) -> JsonObject:
    """One round: what a later comparison needs from this run, bounded in size (21 quantiles, not every sample).
    Read from the record's JSON form: a round is written into a file (the boundary where ``to_json`` belongs)."""
    record = typed.to_json()
    lat = record["latency_ms"]
    samples = sorted(float(s) for s in lat.get("samples") or [])
    quantiles = [_round6(percentile(samples, q)) for q in ROUND_QUANTILES] if samples else None
    ci = lat.get("ci_median")
    acc = upgrade_accuracy(record.get("accuracy") or {})
    measured, reference = acc.get("measured"), acc.get("reference")
    return {
        "created": created or _now(),
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "median_ms": float(lat["median"]),
        "ci_median_ms": [float(ci[0]), float(ci[1])] if ci else None,
        "n": int(lat.get("n") or len(samples)),
        "quantiles_ms": quantiles,
        "capped": bool(lat.get("capped", False)),
        **reference_of(lat),
        **({"busy": True} if (record.get("load") or {}).get("busy") else {}),
        "memory_bytes": dict(record.get("memory_bytes") or {}),
        "macs": record.get("macs"),
        "params": record.get("params"),
        "accuracy": {
            "measured": {k: measured.get(k) for k in ("top1", "top5", "n_images")} if measured else None,
            "reference": {k: reference.get(k) for k in ("top1", "top5", "source")} if reference else None,
        },
        **({"cudnn_benchmark": record["cudnn_benchmark"]} if "cudnn_benchmark" in record else {}),
        "seed": record.get("seed"),
    }


def reference_of(lat: JsonMapping) -> JsonObject:
    """The round's machine speed (``reference_ms``: the reference workload's median) and the model's latency in
    units of it (``relative``), where the record has them (docs/baselines.md, "The machine's speed")."""
    ref = lat.get("reference")
    if not isinstance(ref, Mapping) or not ref.get("median") or not ref.get("relative"):
        return {}
    return {
        "reference": {
            "workload": ref.get("workload"),
            "median_ms": _round6(float(ref["median"])),
            "relative": _round6(float(ref["relative"])),
        }
    }


def _round6(x: float) -> float:
    """Six significant digits: far below timing noise, and keeps the files readable."""
    return float(f"{x:.6g}")


def _median(values: Iterable[float | None]) -> float | None:
    vals = [float(v) for v in values if v is not None]
    return float(statistics.median(vals)) if vals else None


def summarize_entry(entry: JsonObject) -> JsonObject:
    """Recompute an entry's headline figures from its rounds (median over rounds; latest for counts)."""
    rounds = entry.get("rounds") or []
    if not rounds:
        return entry
    medians = [r["median_ms"] for r in rounds]
    med = _median(medians)
    bs = int(entry["batch_size"])
    last = rounds[-1]
    entry["latency_ms"] = {
        "median": med,
        "round_medians": medians,
        "rounds": len(rounds),
        "spread": log_spread(medians),
    }
    entry["per_image_ms"] = med / bs if med else None
    entry["fps"] = 1000.0 * bs / med if med else None
    mem_keys = sorted({k for r in rounds for k in (r.get("memory_bytes") or {})})
    entry["memory_bytes"] = {
        k: _int_or_none(_median((r.get("memory_bytes") or {}).get(k) for r in rounds)) for k in mem_keys
    } or {"total": None}
    entry.setdefault("memory_bytes", {}).setdefault("total", None)
    entry["macs"] = last.get("macs")
    entry["flops"] = 2 * last["macs"] if isinstance(last.get("macs"), (int, float)) else None
    entry["params"] = last.get("params")
    entry["accuracy"] = dict(last.get("accuracy") or {"measured": None, "reference": None})
    return entry


def _int_or_none(v: float | None) -> int | None:
    return None if v is None else int(round(v))


def new_document(platform: JsonObject, max_rounds: int = DEFAULT_MAX_ROUNDS) -> JsonObject:
    return {"schema": SCHEMA, "platform": dict(platform), "max_rounds": int(max_rounds), "entries": []}


def set_document(documents: Iterable[JsonObject]) -> JsonObject:
    """A baseline set of these single-platform documents (the modes of one platform), sorted by key.

    The documents are kept as they are (not copied): each block of the file is exactly one of them.
    """
    blocks = sorted(documents, key=lambda d: str((d.get("platform") or {}).get("key")))
    return {"schema": SET_SCHEMA, "baselines": blocks}


def merge_records(
    document: JsonObject | None,
    records: Iterable[Record],
    platform: JsonObject,
    max_rounds: int | None = None,
    created: str | None = None,
) -> JsonObject:
    """Add one round per record to ``document`` (a new one if None); other entries are kept.

    Rounds beyond ``max_rounds`` (the oldest) are dropped. An entry whose network changed
    (MACs, parameters or input size differ from its last round) restarts its rounds: the old
    ones timed another network. Returns a new document of this version (``document`` may be of an
    earlier one: :func:`~.upgrade.upgrade_document`, every round kept); ``document`` is not modified.
    """
    doc = (
        upgrade_document(json.loads(json.dumps(document)), schema=SCHEMA, read_schemas=READ_SCHEMAS)
        if document is not None
        else new_document(platform)
    )
    if max_rounds is not None:
        doc["max_rounds"] = int(max_rounds)
    limit = int(doc.get("max_rounds", DEFAULT_MAX_ROUNDS))
    env = dict((doc.get("platform") or {}).get("environment") or {})
    env.update(platform.get("environment") or {})
    doc["platform"] = {**(doc.get("platform") or {}), **platform, "environment": env}
    stamp = created or _now()
    doc["platform"]["updated"] = stamp
    doc["platform"].setdefault("created", stamp)
    index = {(e["model"], int(e["batch_size"])): e for e in doc["entries"]}
    for rec in records:
        k = (rec.model, int(rec.batch_size))
        new_round = round_from_record(rec, stamp)
        entry = index.get(k)
        if entry is None:
            entry = {"model": rec.model, "batch_size": int(rec.batch_size), "rounds": []}
            index[k] = entry
            doc["entries"].append(entry)
        rounds = entry.get("rounds") or []
        if rounds and _changed_network(rounds[-1], rec, entry):
            rounds = []
        entry["paper_name"] = rec.paper_name
        entry["input_size"] = list(rec.input_size)
        entry["rounds"] = (rounds + [new_round])[-limit:]
        summarize_entry(entry)
    doc["entries"].sort(key=lambda e: (e["model"], int(e["batch_size"])))
    return doc


def _changed_network(last_round: JsonObject, rec: Record, entry: JsonObject) -> bool:
    for a, b in ((last_round.get("macs"), rec.macs), (last_round.get("params"), rec.params)):
        if a is not None and b is not None and a != b:
            return True
    size = entry.get("input_size")
    return bool(size) and list(rec.input_size or size or ()) != list(size or ())


def document_text(document: JsonObject) -> str:
    return json.dumps(document, indent=1, allow_nan=False, sort_keys=False) + "\n"


def save_document(path: Path | str, document: JsonObject) -> None:
    """Write atomically: readers (and a crash or Ctrl-C) see the old file or the new one, never half of one."""
    baselines_from_document(document, path)  # never write what we could not read back
    atomic_write_text(Path(path), document_text(document))


# -- the lock of a file ------------------------------------------------------------------------------


class LockTimeout(Exception):
    """Another process held a file's lock for longer than the bounded wait."""


#: Seconds between two tries of a lock another process holds.
LOCK_POLL_S = 0.05


@contextlib.contextmanager
def file_lock(path: Path, timeout_s: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """Hold the inter-process lock of ``path`` (a hidden ``.NAME.lock`` file beside it, :func:`lock_path`)
    while reading, merging and writing it, so that concurrent savers on one host all keep their rounds.

    The lock file exists only while a process holds it: its holder removes it before it lets go, so that
    no lock file is left in a ``baselines/`` folder that ``git add`` takes whole. A waiter that then gets
    the lock of the removed file sees that the path no longer names the file it locked, and locks the file
    at the path instead (``flock``; the lock beside the file, not in a temporary folder, so that every
    process that reaches the file, under any user, ``TMPDIR`` or container, agrees on it). Only a run
    killed while it held the lock leaves the file behind (empty, or with its PID: safe to delete once no
    run is saving). Advisory and per host: several hosts writing one file on a network volume are not
    covered (each host saves its own file; docs/baselines.md).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = lock_path(path)
    try:
        import fcntl  # noqa: F401
    except ImportError:  # Windows: filelock's lock there removes its file on release
        fd = None
    else:
        fd = _acquire_flock(lock, timeout_s)
    if fd is None:  # no fcntl, or a filesystem without flock
        with _filelock(lock, timeout_s):
            yield
        return
    try:
        yield
    finally:
        _release_flock(lock, fd)


def _timeout(lock: Path, timeout_s: float) -> LockTimeout:
    return LockTimeout(
        f"another run has held the lock {lock} for over {timeout_s:g} s "
        "(a save still running, or a process stuck on that file); the file was left untouched"
    )


def _acquire_flock(lock: Path, timeout_s: float) -> int | None:
    """The descriptor of ``lock``, locked (``flock``) and still the file at that path; None where the
    filesystem has no ``flock`` (the caller falls back to :mod:`filelock`). :class:`LockTimeout` after
    ``timeout_s``; an OSError where the lock file cannot be made."""
    import fcntl

    deadline = time.monotonic() + timeout_s
    extra = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | extra, 0o644)
        except PermissionError as denied:  # another user's lock file? flock needs no write access
            try:
                fd = os.open(lock, os.O_RDONLY | extra)
            except FileNotFoundError:
                if os.access(lock.parent, os.W_OK):
                    continue  # removed by its holder meanwhile: make it
                raise denied from None
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if exc.errno in (errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOLCK):
                        os.close(fd)
                        return None
                    if exc.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
                        raise
                if time.monotonic() >= deadline:
                    raise _timeout(lock, timeout_s)
                time.sleep(LOCK_POLL_S)
            if _names(lock, fd):
                return fd
        except BaseException:
            os.close(fd)
            raise
        # The holder removed this file as it let go (and another process may have made a new one since):
        # this lock guards nothing. Lock the file at the path now.
        os.close(fd)


def _names(lock: Path, fd: int) -> bool:
    """Does the path ``lock`` still name the open file ``fd``?"""
    try:
        return os.path.samestat(os.lstat(lock), os.fstat(fd))
    except FileNotFoundError:
        return False


def _release_flock(lock: Path, fd: int) -> None:
    """Remove the lock file while still holding its lock (a waiter that gets it then tries again), then let go."""
    import fcntl

    try:
        if _names(lock, fd):
            os.unlink(lock)
    except OSError:
        pass  # left behind: still a working lock file
    finally:
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


@contextlib.contextmanager
def _filelock(lock: Path, timeout_s: float) -> Iterator[None]:
    """The lock by :mod:`filelock`, where ``flock`` is missing (Windows, some network filesystems)."""
    import filelock

    held = filelock.FileLock(str(lock), timeout=timeout_s)
    try:
        held.acquire()
    except filelock.Timeout:
        raise _timeout(lock, timeout_s) from None
    try:
        yield
    finally:
        held.release()


def lock_path(path: Path) -> Path:
    """The lock file of ``path`` (:func:`file_lock`): ``.NAME.lock`` beside it, there only while a process holds
    the lock (or one killed while holding it left it)."""
    return path.parent / f".{path.name}.lock"
