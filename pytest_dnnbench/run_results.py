"""What the controller (or the only process) keeps of a run (no pytest here).

Every record, the tests that left none (and why), and the results file (``--dnn-json``), rewritten after
each record and locked for the whole run. A write that fails does not stop the run: the records stay in
memory, each later record tries again, and the end of the run writes them all, to the file or to a
fallback file (:func:`.outputs.fallback_folders`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .jsontypes import JsonMapping, JsonObject
from .outputs import fallback_folders, lock_results, os_error, results_lines
from .record import Record
from .results import ResultsFile
from .run_store import RunStore, StoreChoice

if TYPE_CHECKING:
    from .baseline_save import SaveOutcome
    from .settings import Settings

__all__ = ["RunResults"]


class RunResults:
    """The run's records and its results file (None: no ``--dnn-json``)."""

    def __init__(self, path: Path | None, rootpath: Path, store: StoreChoice | None = None):
        self.records: list[Record] = []
        #: The same records as plain JSON, as the tests' reports carried them (what the files and tables read).
        self.plain: list[JsonObject] = []
        #: The tests that left no record, by (model, batch size, mode): why (skipped, failed, out of memory).
        self.missing: dict[tuple[object, object, object], JsonObject] = {}
        self.file: ResultsFile | None = None
        #: Where the results file was written at the end (the file, a fallback file, or None: nowhere).
        self.written_at: Path | None = None
        self._rootpath = rootpath
        self._lock: contextlib.ExitStack | None = None
        if path is not None:
            self.file = ResultsFile(path, target=Path(os.path.realpath(path)))
            self._lock = lock_results(self.file)  # (raises outputs.UsageProblem: held by another run)
            self.plain = self.file.records  # one list: what the file writes is what the tables read
        #: The results store (``--dnn-store``), its run begun now (raises UsageProblem: it cannot be used).
        self.store: RunStore | None = None
        if store is not None:
            try:
                self.store = RunStore.open(store, rootpath, os.environ)
            except BaseException:
                self.release()
                raise
        #: Where the records the store lacks were written at the end (see :meth:`RunStore.write_unstored`).
        self.unstored_at: Path | None = None

    def keep(self, records: Sequence[JsonObject], environment: JsonMapping) -> str | None:
        """Add a test's records (plain JSON, as its report carried them) and rewrite the results file. The first
        write that fails: what to say at once (None: nothing to say)."""
        self.records.extend(Record.from_json(r) for r in records)
        self.plain.extend(records)
        said = self.store.keep(records, environment) if self.store is not None else None
        results = self.file
        if results is None:
            return said
        results.set_environment(dict(environment))
        first = results.error is None
        if results.save() or not first or results.error is None:
            return said
        return (
            f"dnnbench: cannot write the results file {results.path} ({os_error(results.error)}); the run goes "
            "on, its records are kept and written at the end (the summary says where)"
        ) + (f"\n{said}" if said else "")

    def add_missing(self, entry: JsonObject) -> None:
        self.missing[(entry["model"], entry["batch_size"], entry.get("mode"))] = entry

    def finish(self, environment: JsonMapping, *, interrupted: bool = False) -> bool:
        """Write the results file at the end (also with no record: the reasons are in ``missing``) and end the run
        in the results store (``interrupted`` or complete); False where some records could be written nowhere."""
        written = True
        results = self.file
        if results is not None:
            results.set_environment(dict(environment))
            results.missing = list(self.missing.values())
            self.written_at = results.save_final(fallback_folders(results, self._rootpath))
            written = self.written_at is not None
        if self.store is not None:
            self.store.finish(interrupted=interrupted)
            self.unstored_at = self.store.write_unstored(self.written_at, self._rootpath, environment)
            written = written and (self.unstored_at is not None or not self.store.unstored)
        return written

    def lines(self) -> list[str]:
        """Where the results file is, for the summary (nothing when no file was asked for or nothing ran)."""
        store = self.store.lines(self.unstored_at) if self.store is not None else []
        results = self.file
        if results is None or not (self.records or self.missing or results.error is not None):
            return store
        return results_lines(results, self.written_at, self._rootpath) + store

    def save_baseline(self, s: Settings, environment: JsonMapping | None, *, interrupted: bool) -> SaveOutcome:
        """Add the run's records as baseline rounds (``--dnn-save-baseline``); the outcome says what was saved."""
        from .baseline_save import save_run
        from .gate import regressions

        assert s.save_baseline is not None
        return save_run(
            self.records,
            environment,
            choice=s.save_baseline,
            root=s.rootpath,
            max_rounds=s.baseline_rounds,
            force=s.baseline_force,
            regressions=len(regressions(self.records)),
            interrupted=interrupted,
        )

    def write_report(self, out: Path, environment: JsonMapping | None, command: str) -> list[Path]:
        """The report of this run (``--dnn-report``): its files. Raises what building it raised."""
        if not self.records and not self.missing:
            raise ValueError("no benchmark ran: nothing to report")
        from .report.build import write_report
        from .report.tables import Platform, platform_label

        env = dict(environment or {})
        label = platform_label(env, self.plain, "this run")
        platform = Platform(label, self.plain, env, list(self.missing.values()), "this run", "results")
        return write_report([platform], out, command=command)

    def release(self) -> None:
        """Release the results file's lock (at the end of the run)."""
        if self._lock is not None:
            self._lock.close()
            self._lock = None
        if self.store is not None:
            self.store.close()
