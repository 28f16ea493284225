"""The run's results store (``--dnn-store``): opened when the run starts, one record written as each test ends,
the run's status written at the end (no pytest here).

The controller (or the only process) writes; pytest-xdist workers never open it. A store that cannot be used at
the start is a usage error naming it (its password masked); one that fails during the run fails no test: the
run goes on, says so once, and at the end says which records the store lacks -- they are in the results file
(``--dnn-json``), or, where none was asked for, in one written beside the embedded store for the purpose
(``.dnnbench/unstored-<time>.json``). A run killed before its end stays ``incomplete`` in the store, with every
record it finished.

SQLAlchemy and the store's code are imported only here, and only when a store is asked for: importing the plugin
stays free of them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from .jsontypes import JsonMapping, JsonObject
from .problems import UsageProblem, bad_value

if TYPE_CHECKING:
    from .store.db import Store

__all__ = ["ENV_VAR", "RunStore", "StoreChoice", "store_choice"]

#: The environment variable that names the store (a password need not be on a command line or in a file).
ENV_VAR = "DNNBENCH_STORE"
#: The value that names the embedded store (the bare ``--dnn-store``, or ``dnn_store = default`` in the ini).
DEFAULT = "default"


@dataclass(frozen=True)
class StoreChoice:
    """Which store a run writes to, as it was given: ``value`` (None: the embedded SQLite file under the rootdir),
    where a relative path is relative to (``base``), and how it was given (for messages: the flag, the ini key or
    the environment variable)."""

    value: str | None
    base: Path
    given_as: str
    #: The run's shard ``(k, N)`` and run group (``--dnn-shard``, ``--dnn-run-group``), for the run's row.
    shard: tuple[int, int] | None = None
    run_group: str | None = None


def store_choice(
    option: str | None, option_base: Path, ini: str | None, ini_base: Path, environ: Mapping[str, str]
) -> StoreChoice | None:
    """The store asked for, or None: ``--dnn-store[=URL]`` first, then ``DNNBENCH_STORE``, then the ini's
    ``dnn_store``. A bare ``--dnn-store`` (or ``default``) takes its URL from ``DNNBENCH_STORE`` where that is set
    (so that a password stays in the environment), else the embedded store; ``DNNBENCH_STORE`` alone turns the
    store on."""
    env = (environ.get(ENV_VAR) or "").strip()
    if option is not None:
        text = option.strip()
        if text in ("", DEFAULT):
            if env:
                return StoreChoice(env, option_base, ENV_VAR)
            return StoreChoice(None, option_base, "--dnn-store")
        return StoreChoice(text, option_base, "--dnn-store")
    if env:
        return StoreChoice(env, option_base, ENV_VAR)
    if ini is not None and ini.strip():
        text = ini.strip()
        return StoreChoice(None if text == DEFAULT else text, ini_base, "dnn_store")
    return None


class RunStore:
    """One run in the results store: :meth:`open` at the start, :meth:`keep` per test, :meth:`finish` at the end."""

    def __init__(self, store: Store, run_id: int, url: str):
        self._db: Store | None = store
        self.run_id = run_id
        #: The store's URL, its password masked (safe to print and to write into files).
        self.url = url
        self.kept = 0
        #: Why the store stopped taking records (None: it took every one).
        self.error: str | None = None
        #: The records it did not take (plain JSON), to be written elsewhere at the end.
        self.unstored: list[JsonObject] = []
        self._environment_set = False
        self.finished_as: str | None = None

    @classmethod
    def open(cls, choice: StoreChoice, rootdir: Path, environ: Mapping[str, str]) -> RunStore:
        """Open the store and begin a run in it (status ``incomplete`` until :meth:`finish`). Raises
        :class:`.problems.UsageProblem` naming the store (its password masked) where it cannot be used."""
        from . import __version__
        from .store.db import open_store
        from .store.runmeta import collect_run_meta
        from .store.urls import StoreError, mask_url, resolve_url

        url = resolve_url(choice.value, rootdir, relative_to=choice.base)
        shown = choice.given_as if choice.given_as == ENV_VAR else f"{choice.given_as}={mask_url(url)}"
        try:
            store = open_store(url)
            run_id = store.begin_run(
                collect_run_meta(
                    rootdir, environ, plugin_version=__version__, shard=choice.shard, run_group=choice.run_group
                )
            )
        except StoreError as exc:
            where = f"{ENV_VAR} ({exc.url})" if choice.given_as == ENV_VAR else exc.url
            raise bad_value("--dnn-store", where, exc.why, exc.fix or "Give another store") from None
        except OSError as exc:  # a folder for the embedded file that cannot be made, say
            raise UsageProblem(f"{shown}: {exc}") from None
        return cls(store, run_id, mask_url(url))

    def keep(self, records: Sequence[JsonObject], environment: JsonMapping) -> str | None:
        """Write a test's records, each in its own transaction. The first failure: what to say at once (the run
        goes on; later records are kept for the end instead); None otherwise."""
        from .store.urls import StoreError

        store = self._db
        if store is None:
            self.unstored.extend(records)
            return None
        try:
            if not self._environment_set and environment:
                store.set_environment(self.run_id, environment, _platform_key(records))
                self._environment_set = True
            for i, record in enumerate(records):
                try:
                    store.add_record(self.run_id, record)
                except StoreError:
                    self.unstored.extend(records[i:])
                    raise
                self.kept += 1
        except StoreError as exc:
            self.error = str(exc)
            self._close()
            return (
                f"dnnbench: the results store failed ({exc}); the run goes on, no test fails for it, and the records "
                "the store lacks are listed at the end"
            )
        return None

    def finish(self, *, interrupted: bool) -> None:
        """End the run in the store: ``interrupted`` (Ctrl-C, SIGTERM) or ``complete``."""
        from .store.urls import StoreError

        store = self._db
        if store is None:
            return
        status = "interrupted" if interrupted else "complete"
        try:
            store.finish_run(self.run_id, status)
            self.finished_as = status
        except StoreError as exc:
            self.error = str(exc)
        self._close()

    def write_unstored(self, results_written: Path | None, rootdir: Path, environment: JsonMapping) -> Path | None:
        """Where the records the store lacks are: the results file where the run wrote one (it holds every
        record), else a file written now under ``<rootdir>/.dnnbench/`` (None where nothing is missing, or that
        file could not be written either)."""
        if not self.unstored:
            return None
        if results_written is not None:
            return results_written
        from .results import ResultsFile

        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        path = rootdir / ".dnnbench" / f"unstored-{stamp}-{os.getpid()}.json"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError:
            return None
        file = ResultsFile(path)
        file.records.extend(self.unstored)
        file.set_environment(dict(environment))
        return file.save_final([])

    def lines(self, unstored_at: Path | None) -> list[str]:
        """What the summary says of the store: where the run went, or what the store lacks and where it is."""
        if self.error is None:
            ended = f", {self.finished_as}" if self.finished_as else ""
            return [f"results store: {self.url}, run {self.run_id}: {self.kept} record(s){ended}"]
        lines = [f"results store: {self.url}, run {self.run_id}: FAILED after {self.kept} record(s): {self.error}"]
        if self.unstored:
            where = f"kept in {unstored_at}" if unstored_at is not None else "could be written nowhere"
            lines.append(f"  {len(self.unstored)} record(s) not in the store are {where}")
        return lines

    def _close(self) -> None:
        store, self._db = self._db, None
        if store is not None:
            try:
                store.close()
            except Exception:  # noqa: BLE001, S110 - closing a store that failed: nothing more to say
                pass

    def close(self) -> None:
        """Release the store's connections (at the end of the run, or when the session ends early)."""
        self._close()


def _platform_key(records: Sequence[JsonObject]) -> str | None:
    """The baseline files' platform key of the run's first record (None where it cannot be told)."""
    from .baseline_store import record_key
    from .record import Record

    for record in records:
        try:
            return record_key(Record.from_json(record))
        except (KeyError, TypeError, ValueError):
            continue
    return None
