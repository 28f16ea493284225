"""``python -m pytest_dnnbench merge FILES... --out FILE``: the results files of one run's shards as one file.

Pure: no pytest, no torch. Each input is read as :func:`~.results.load_results` reads it (schema
``pytest-dnnbench/2``, or ``/1`` upgraded). A test is known by its id (a record's or a missing entry's
``test``), else by its cell (model, batch size, mode, precision, device: files of earlier versions).

- A test found in two files is an error unless both hold the same for it (the same JSON): shards that
  overlapped, or a shard and its rerun, cannot be merged silently. Identical copies are kept once.
- The tests that left no record (each file's ``missing``) are listed; so are the shards that are not among the
  inputs, where the files say which shard they are (``environment.shard``, ``"2/3"``: ``--dnn-shard``).
- Files of different run groups (``environment.run_group``: ``--dnn-run-group`` or the CI's run id), or of
  different numbers of shards, are an error unless ``--force`` (then a warning).
- The merged file keeps the first shard's environment (without ``shard``) and every input's under ``shards``;
  it is written atomically, and only once every check has passed: a failed merge writes and overwrites
  nothing. ``--out`` may not be one of the inputs.

Exit status: 0 merged; 1 merged, but shards are missing (the file is written all the same); 2 nothing
written (an input that cannot be read, a conflict, ``--out`` unusable).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .jsontypes import JsonMapping, JsonObject
from .problems import UsageProblem, check_writable
from .results import SCHEMA, atomic_write_text, jsonable, load_results

__all__ = ["MergeError", "MergedResults", "add_arguments", "main", "merge", "run", "entry_key", "write"]

_SHARD_RE = re.compile(r"^([0-9]{1,9})/([0-9]{1,9})$")
#: What a test is known by: ``("test", id)`` or ``("cell", model, batch size, mode, precision, device)``.
Key = tuple[object, ...]


class MergeError(ValueError):
    """The inputs cannot be merged: the message names the file(s), what is wrong and what to do."""


@dataclass
class _Input:
    path: Path
    environment: JsonObject
    records: list[JsonObject]
    missing: list[JsonObject]
    shard: tuple[int, int] | None
    run_group: str | None
    #: Position among the inputs as given (the order of files that say no shard).
    position: int = 0


@dataclass
class MergedResults:
    """What :func:`merge` made: the document to write and what the summary says of it."""

    document: JsonObject
    files: list[Path]
    #: The inputs' shards in the merged order (None: a file that says none).
    shards: list[str | None]
    run_group: str | None
    #: Tests with no record in any input, from the inputs' ``missing`` entries.
    missing: list[JsonObject]
    #: Shards of N not among the inputs (``"2/3"``).
    missing_shards: list[str]
    warnings: list[str] = field(default_factory=list)

    @property
    def records(self) -> list[JsonObject]:
        records = self.document.get("records")
        return list(records) if isinstance(records, list) else []

    def lines(self, out: Path | None = None) -> list[str]:
        """The summary: what was merged (into ``out``), the missing tests and the missing shards."""
        shards = ", ".join(s for s in self.shards if s) or "no shard information"
        group = f"; run group {self.run_group}" if self.run_group else ""
        tests = {entry_key(r) for r in self.records}
        where = f" -> {out}" if out is not None else ""
        lines = [
            f"merged {len(self.files)} file(s) ({shards}{group}): {len(self.records)} record(s) of "
            f"{len(tests)} test(s){where}"
        ]
        if self.missing:
            lines.append(f"missing: {len(self.missing)} test(s) left no record:")
            lines += [f"  {_describe_missing(m)}" for m in self.missing]
        if self.missing_shards:
            lines.append(
                f"missing shard(s): {', '.join(self.missing_shards)}: not among the files, their tests are not in "
                "the merged file"
            )
        return lines


def entry_key(entry: JsonMapping) -> Key:
    """What a record or a missing entry is known by: its test id, else its cell."""
    test = entry.get("test")
    if isinstance(test, str) and test:
        return ("test", test)
    return (
        "cell",
        entry.get("model"),
        entry.get("batch_size"),
        entry.get("mode") or "eager",
        entry.get("precision"),
        entry.get("device"),
    )


def _shown(key: Key) -> str:
    if key[0] == "test":
        return str(key[1])
    _, model, batch, mode, precision, device = key
    return f"{model} batch {batch} ({mode}, {precision}, {device})"


def _describe_missing(entry: JsonMapping) -> str:
    mode = entry.get("mode")
    cell = f"{entry.get('model')} bs{entry.get('batch_size')}" + (f" {mode}" if mode else "")
    why = str(entry.get("reason") or "").strip().splitlines()
    first = why[0][:160] if why else ""
    return f"{cell}: {entry.get('outcome', 'missing')} at {entry.get('when', '?')}: {first}"


def _canonical(data: object) -> str:
    return json.dumps(data, sort_keys=True, allow_nan=False, default=jsonable)


def _read(path: Path, position: int) -> _Input:
    try:
        doc = load_results(path)
    except ValueError as exc:  # JsonFileError included: the message names the file
        text = str(exc)
        raise MergeError(text if str(path) in text else f"{path}: {text}") from None
    env = doc.get("environment")
    env = {} if env is None else env
    records = doc.get("records")
    missing = doc.get("missing")
    missing = [] if missing is None else missing
    if not isinstance(env, dict):
        raise MergeError(f"{path}: 'environment' must be an object; give a file written by --dnn-json")
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise MergeError(f"{path}: 'records' must be a list of objects; give a file written by --dnn-json")
    if not isinstance(missing, list) or not all(isinstance(m, dict) for m in missing):
        raise MergeError(f"{path}: 'missing' must be a list of objects; give a file written by --dnn-json")
    shard = None
    said = env.get("shard")
    if said is not None:
        m = _SHARD_RE.match(str(said).strip())
        if m is None or not 1 <= int(m.group(1)) <= int(m.group(2)):
            raise MergeError(
                f"{path}: environment.shard {str(said)[:40]!r} is not K/N; give a file written by --dnn-json"
            )
        shard = (int(m.group(1)), int(m.group(2)))
    group = env.get("run_group")
    return _Input(path, env, records, missing, shard, str(group) if group else None, position)


def merge(paths: Sequence[Path | str], *, force: bool = False) -> MergedResults:
    """The results files ``paths`` as one document (nothing is written: :func:`write` does). Raises
    :class:`MergeError` for an input that cannot be read, a test in two files that differ there, and (unless
    ``force``) files of different run groups or numbers of shards."""
    if not paths:
        raise MergeError("no results file given; give the shards' --dnn-json files")
    inputs = [_read(Path(p), i) for i, p in enumerate(paths)]
    warnings: list[str] = []
    group = _check_groups(inputs, force, warnings)
    count = _check_counts(inputs, force, warnings)
    # The shards in order (1/N, 2/N, ...), then the files that say none, as given: the same merge whatever the
    # order of the arguments.
    inputs.sort(key=lambda f: (f.shard is None, f.shard or (0, 0), f.position))
    seen_shards: dict[tuple[int, int], Path] = {}
    for f in inputs:
        if f.shard is not None and f.shard in seen_shards:
            warnings.append(f"shard {f.shard[0]}/{f.shard[1]} is given twice: {seen_shards[f.shard]} and {f.path}")
        elif f.shard is not None:
            seen_shards[f.shard] = f.path
    records, missing = _combine(inputs)
    missing_shards = (
        [f"{k}/{count}" for k in range(1, count + 1) if (k, count) not in seen_shards] if count is not None else []
    )
    first = next((f for f in inputs if f.environment), inputs[0])
    environment: JsonObject = {k: v for k, v in first.environment.items() if k != "shard"}
    document: JsonObject = {"schema": SCHEMA, "environment": environment, "records": records}
    if missing:
        document["missing"] = missing
    document["shards"] = [
        {
            "file": str(f.path),
            "shard": f"{f.shard[0]}/{f.shard[1]}" if f.shard else None,
            "run_group": f.run_group,
            "records": len(f.records),
            "missing": len(f.missing),
            "environment": f.environment,
        }
        for f in inputs
    ]
    return MergedResults(
        document=document,
        files=[f.path for f in inputs],
        shards=[f"{f.shard[0]}/{f.shard[1]}" if f.shard else None for f in inputs],
        run_group=group,
        missing=missing,
        missing_shards=missing_shards,
        warnings=warnings,
    )


def _check_groups(inputs: Sequence[_Input], force: bool, warnings: list[str]) -> str | None:
    groups: dict[str, list[str]] = {}
    for f in inputs:
        if f.run_group is not None:
            groups.setdefault(f.run_group, []).append(str(f.path))
    if len(groups) > 1:
        listed = "; ".join(f"{g}: {', '.join(files)}" for g, files in groups.items())
        message = f"the files belong to different run groups ({listed})"
        if not force:
            raise MergeError(f"{message}. Merge the shards of one run, or give --force to merge them all the same")
        warnings.append(message + ": merged all the same (--force)")
    unknown = [str(f.path) for f in inputs if f.run_group is None]
    if groups and unknown:
        warnings.append(f"no run group in {', '.join(unknown)}: cannot tell whether it belongs to this run")
    return next(iter(groups)) if len(groups) == 1 else None


def _check_counts(inputs: Sequence[_Input], force: bool, warnings: list[str]) -> int | None:
    counts = sorted({f.shard[1] for f in inputs if f.shard is not None})
    if len(counts) > 1:
        listed = ", ".join(f"{f.path} ({f.shard[0]}/{f.shard[1]})" for f in inputs if f.shard is not None)
        message = f"the files come from splits into different numbers of shards ({listed})"
        if not force:
            raise MergeError(
                f"{message}: their models may overlap or be lost. Merge the shards of one split, or give --force"
            )
        warnings.append(message + ": merged all the same (--force); missing shards are not listed")
        return None
    return counts[0] if counts else None


def _combine(inputs: Sequence[_Input]) -> tuple[list[JsonObject], list[JsonObject]]:
    """Every record and missing entry once; a test in two files that differ there is a :class:`MergeError`."""
    # key -> (the file, its entries for that key: records and missing entries, as canonical JSON)
    owner: dict[Key, tuple[Path, list[str]]] = {}
    per_file: list[dict[Key, list[str]]] = []
    for f in inputs:
        mine: dict[Key, list[str]] = {}
        for entry in f.records:
            mine.setdefault(entry_key(entry), []).append("record " + _canonical(entry))
        for entry in f.missing:
            mine.setdefault(entry_key(entry), []).append("missing " + _canonical(entry))
        per_file.append(mine)
    conflicts: list[str] = []
    duplicated: set[tuple[int, Key]] = set()
    for i, (f, mine) in enumerate(zip(inputs, per_file, strict=True)):
        for key, entries in mine.items():
            if key not in owner:
                owner[key] = (f.path, entries)
            elif owner[key][1] == entries:
                duplicated.add((i, key))  # the same test, identical: kept once
            else:
                conflicts.append(f"{_shown(key)} (in {owner[key][0]} and {f.path})")
    if conflicts:
        shown = "; ".join(conflicts[:5]) + (f"; and {len(conflicts) - 5} more" if len(conflicts) > 5 else "")
        raise MergeError(
            f"{len(conflicts)} test(s) are in two files with different results: {shown}. The files overlap (shards "
            "of different splits, or a shard and its rerun): merge each test's results from one file only; to put "
            "runs side by side use python -m pytest_dnnbench report"
        )
    records: list[JsonObject] = []
    missing: list[JsonObject] = []
    for i, f in enumerate(inputs):
        records += [r for r in f.records if (i, entry_key(r)) not in duplicated]
        missing += [m for m in f.missing if (i, entry_key(m)) not in duplicated]
    return records, missing


def write(merged: MergedResults, out: Path) -> None:
    """Write the merged document to ``out`` atomically (readers see the old file or the new one)."""
    text = json.dumps(merged.document, indent=1, allow_nan=False, default=jsonable) + "\n"
    atomic_write_text(out, text)


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return os.path.realpath(a) == os.path.realpath(b)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The merge command's arguments (``python -m pytest_dnnbench merge``)."""
    parser.add_argument(
        "inputs",
        nargs="+",
        metavar="RESULTS.json",
        help="the shards' results files (--dnn-json; schema pytest-dnnbench/2, or /1 of earlier versions)",
    )
    parser.add_argument("--out", required=True, metavar="FILE", help="the merged results file to write")
    parser.add_argument(
        "--force",
        action="store_true",
        help="merge files of different run groups, or of splits into different numbers of shards (a warning "
        "instead of an error); a test in two files with different results is an error all the same",
    )


def run(args: argparse.Namespace, print_line: Callable[[str], None] | None = None) -> int:
    """The merge command on parsed arguments: 0 merged, 1 merged with shards missing, 2 nothing written."""
    say = print_line or print

    def error(message: str) -> int:
        print(f"error: {message}", file=sys.stderr)
        return 2

    out = Path(args.out)
    for given in args.inputs:
        if _same_file(Path(given), out):
            return error(f"--out {args.out} is one of the inputs ({given}); give another file to write")
    try:
        check_writable(out, "--out")
    except UsageProblem as exc:
        return error(str(exc))
    try:
        merged = merge([Path(p) for p in args.inputs], force=bool(args.force))
    except MergeError as exc:
        return error(str(exc))
    for warning in merged.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    try:
        write(merged, out)
    except OSError as exc:
        return error(f"--out {args.out}: cannot write it ({exc.strerror or exc})")
    for line in merged.lines(out):
        say(line)
    return 1 if merged.missing_shards else 0


def main(argv: Sequence[str] | None = None) -> int:
    """``merge FILES... --out FILE [--force]`` (the arguments after ``merge``)."""
    parser = argparse.ArgumentParser(
        prog="python -m pytest_dnnbench merge",
        description="Merge the results files of one run's shards (--dnn-shard) into one results file.",
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
