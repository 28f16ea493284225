"""The end-of-run summary on the terminal, as lines (pure: records in, lines out; the session writes them).

In this order: a line that says the run's figures cannot be trusted (when most rows were busy, capped or
short of samples), the results table (with the legend of its notes and what memory means), the paper's
tables, baselines, regressions and constraints, and last the paths of the files written.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..jsontypes import JsonMapping

if TYPE_CHECKING:
    from ..record import Record
    from ..settings import Settings

__all__ = [
    "SummaryLine",
    "default_models_line",
    "files_lines",
    "header_line",
    "memory_note",
    "run_summary",
    "trust_line",
]


@dataclass(frozen=True)
class SummaryLine:
    """One line of the summary: text, or a separator (``sep``: its character) titled with the text."""

    text: str
    sep: str | None = None
    red: bool = False
    bold: bool = False


def run_summary(
    typed: Sequence[Record],
    records: Sequence[JsonMapping],
    environment: JsonMapping,
    missing: Sequence[JsonMapping],
    notes: Sequence[str],
    written: Sequence[str],
    *,
    max_time_s: float,
    paper_tables: bool,
    width: int,
    saving_baseline: bool,
    failures_shown: bool,
) -> list[SummaryLine]:
    """The whole summary of the run's records (``typed``; ``records``: the same as the results file holds them,
    which the tables read). ``paper_tables``: show the paper's tables (benchmark mode or a report, not
    ``-qq``); ``failures_shown``: pytest shows the failures in full (the baseline lines then stay short)."""
    from ..gate import summary_lines

    env = environment
    out: list[SummaryLine] = []
    trust = trust_line(records, max_time_s)
    if trust is not None:  # first: the table below is not to be read as if it could be trusted
        out.append(SummaryLine(trust, red=True, bold=True))
    if records:
        from .terminal import format_table

        tf32 = ", TF32 on" if env.get("tf32_requested") and str(env.get("device", "")).startswith("cuda") else ""
        title = f"dnnbench: {env.get('device', '?')} ({env.get('device_name', '?')}), {env.get('precision', '?')}{tf32}"
        out.append(SummaryLine(title, sep="="))
        out += [SummaryLine(line) for line in format_table(records)]
        out.append(SummaryLine("memory: " + memory_note(env, records)))
    if records and paper_tables:
        from .build import memory_note as paper_memory_note
        from .terminal import format_paper_tables

        out.append(SummaryLine("dnnbench: the paper's tables for this run", sep="-"))
        tables = format_paper_tables(records, list(missing), width, paper_memory_note(env, records))
        out += [SummaryLine(line) for line in tables]
    gated = [r for r in typed if r.baseline is not None]
    if gated or notes:
        out.append(SummaryLine("dnnbench: baselines and deployment constraints", sep="-"))
        out += [SummaryLine(line) for line in summary_lines(gated, list(notes), saving_baseline, failures_shown)]
    if written:
        out.append(SummaryLine("dnnbench: files written", sep="-"))
        out += [SummaryLine(line, red=line.startswith(("no report", "results NOT"))) for line in written]
    return out


def files_lines(
    results: Sequence[str],
    saved_notes: Sequence[str],
    report_dir: Path | None,
    report_error: str | None,
    report_files: int,
) -> list[str]:
    """The last lines of the summary: where this run's results (``results``: their lines), baselines and
    report are."""
    lines = [*results, *saved_notes]
    if report_dir is not None:
        if report_error:
            lines.append(f"no report written to {report_dir}: {report_error}")
        elif report_files:
            lines.append(f"report: {report_dir} ({report_files} files; open {report_dir / 'report.html'})")
    return lines


def trust_line(records: Sequence[JsonMapping], max_time_s: float) -> str | None:
    """The run's figures cannot be trusted when most of its rows (more than half) were measured on a busy
    machine, capped by the time budget or left with fewer samples than the minimum: the line that says so,
    with the counts and the fix; None otherwise."""
    rows = [
        (bool((r.get("load") or {}).get("busy")), bool(lat.get("capped")), bool(lat.get("insufficient")))
        for r in records
        for lat in [r.get("latency_ms") or {}]
    ]
    if not rows or 2 * sum(any(row) for row in rows) <= len(rows):
        return None
    busy, capped, insufficient = (sum(row[k] for row in rows) for k in range(3))
    counts = [
        (busy, "measured on a busy machine"),
        (capped, "capped by the time budget"),
        (insufficient, "with fewer samples than the minimum"),
    ]
    parts = [f"{n} {what}" for n, what in counts if n]
    parts[0] = parts[0].replace(" ", f" of {len(records)} ", 1)
    fixes = (["run on a quiet machine"] if busy else []) + (
        [f"raise --dnn-max-time (now {max_time_s:g} s)"] if capped or insufficient else []
    )
    return f"dnnbench: these figures cannot be trusted: {', '.join(parts)}; {', '.join(fixes)}"


def memory_note(env: JsonMapping, records: Sequence[JsonMapping]) -> str:
    """What the table's memory column means on this run's device."""
    if str(env.get("device", "")).startswith("cuda"):
        return "process GPU memory (NVML, CUDA context included) at steady state, MiB = 2^20 bytes"
    from ..measure.floor import cpu_total_meaning

    method = next((r.get("memory_method") for r in records if r.get("memory_method")), None)
    return f"{cpu_total_meaning(method)}; the whole pytest process's peak is process_total; MiB = 2^20 bytes"


def header_line(s: Settings, n_models: int, device: str) -> str:
    """The run's header in benchmark mode: what is measured, where, how (CUDA settings on a GPU only)."""
    cuda = (
        f", cudnn.benchmark {'on' if s.cudnn_benchmark else 'off'}, TF32 {'on' if s.tf32 else 'off'}"
        if device != "cpu"
        else ""
    )
    return (
        f"dnnbench: {n_models} models x {len(s.batch_sizes)} batch sizes, "
        f"device {device}, {s.precision}{cuda}, seed {s.seed}, budget {s.policy.max_time_s:g} s/test"
    )


def default_models_line(models: Sequence[str], batch_sizes: Sequence[int] | None) -> str:
    """Without --dnn-models, a project's own tests that use ``dnn_model`` still get models: which, and why
    (``batch_sizes``: those of ``dnn_batch_size`` where a test uses it)."""
    line = f"dnnbench: dnn_model runs the default models ({', '.join(models)})"
    if batch_sizes is not None:
        line += f" at batch sizes {','.join(str(b) for b in batch_sizes)}"
    return (
        line + ": no --dnn-models was given. Choose with --dnn-models=NAMES and --dnn-batch-sizes=N,M "
        "(or the dnn_models and dnn_batch_sizes ini settings)"
    )
