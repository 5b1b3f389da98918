"""The run report: resolved config, timings, per-stage counts, the accounting identity; JSON and a summary."""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from dedup_spark import __version__
from dedup_spark.config import RunConfig
from dedup_spark.config_checks import human_size
from dedup_spark.io import storage

log = logging.getLogger("dedup_spark")


def utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


class RunReport:
    """Collects what the run did; `to_dict()` is the schema of report.json."""

    def __init__(self, config: RunConfig, spark_version: str, master: str) -> None:
        self.config = config
        self.started_at = utc_now()
        self.finished_at: str | None = None
        self.status = "running"
        self.spark = {"version": spark_version, "master": master}
        self.input_format: str | None = None
        self.stages: list[dict[str, Any]] = []
        self.accounting: dict[str, Any] = {}
        self.quarantine_by_reason: dict[str, int] = {}
        self.removed_by_reason: dict[str, int] = {}
        # Documents and removed share per value of report.source_column (report/data.py: removed_share_by_source).
        self.removed_by_source: list[dict[str, Any]] | None = None
        # output.mode=annotate: what data/'s annotations mark (annotate.annotation_counts); None in remove mode.
        self.annotations: dict[str, Any] | None = None
        # run --index: versions before and after, documents, size, matches (index/incremental.py); None without.
        self.index: dict[str, Any] | None = None
        self.outputs: dict[str, str] = {}
        # Set by --stop-after (status "partial") and --dry-run (status "dry_run", the plan's lines).
        self.stopped_after: str | None = None
        self.plan: list[str] = []

    @contextmanager
    def stage(self, name: str, on_done: Callable[[dict[str, Any]], None] | None = None) -> Iterator[dict[str, Any]]:
        """Time one stage and log its start and end; the caller fills the yielded dict with counts.

        `on_done(entry)` runs once the entry is complete (seconds included) and before "finished" is logged:
        the pipeline writes the step's completion marker there, so a logged "finished" is always on disk.
        """
        entry: dict[str, Any] = {"name": name}
        log.info("stage %s: started", name)
        start = time.monotonic()
        yield entry
        entry["seconds"] = round(time.monotonic() - start, 3)
        if on_done is not None:
            on_done(entry)
        self.stages.append(entry)
        log.info("stage %s: finished (%s)", name, _counts(entry))

    def reused(self, entry: dict[str, Any]) -> None:
        """Add the entry of a step an earlier run completed (from its marker), marked `reused: true`."""
        entry = {**entry, "reused": True}
        self.stages.append(entry)
        log.info(
            "stage %s: reused from an earlier run (fingerprint %s; %s)",
            entry["name"],
            str(entry.get("fingerprint", ""))[:16],
            _counts(entry),
        )

    def to_dict(self) -> dict[str, Any]:
        config = self.config.to_dict()
        config["stages"] = list(self.config.stages)
        return {
            "dedup_spark_version": __version__,
            "status": self.status,
            "stopped_after": self.stopped_after,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "spark": self.spark,
            "input_format": self.input_format,
            "config": config,
            "stages": self.stages,
            "accounting": self.accounting,
            "quarantine_by_reason": self.quarantine_by_reason,
            "removed_by_reason": self.removed_by_reason,
            "removed_by_source": self.removed_by_source,
            "annotations": self.annotations,
            "index": self.index,
            "outputs": self.outputs,
        }

    def write(self, out_dir: str) -> str:
        """Write report.json and, beside it, the same report as a self-contained page, report.html."""
        from dedup_spark.report.html import write_report_html

        report = self.to_dict()
        path = storage.join(out_dir, "report.json")
        storage.write_text(path, json.dumps(report, indent=2, sort_keys=False) + "\n")
        write_report_html(report, out_dir)
        return path

    def summary(self) -> str:
        """A few lines for people: what came in, what went out, what was removed and why (or the plan)."""
        if self.status == "dry_run":
            return "\n".join(self.plan)
        if self.status == "partial":
            lines = [
                f"dedup-spark partial: stopped after {self.stopped_after} (--stop-after); intermediate results are "
                "in _work/. Run the same command without --stop-after to finish."
            ]
            lines += [_stage_line(stage) for stage in self.stages]
            lines.append(f"  report: {self.outputs.get('report', '')}")
            return "\n".join(lines)
        acc = self.accounting
        lines = [
            f"dedup-spark {self.status}: {acc.get('rows_read', 0):,} rows read -> "
            f"{acc.get('rows_written', 0):,} written, {acc.get('rows_removed', 0):,} removed, "
            f"{acc.get('rows_quarantined', 0):,} quarantined "
            f"({'balanced' if acc.get('balanced') else 'NOT BALANCED'})",
        ]
        lines += [_stage_line(stage) for stage in self.stages]
        for reason, rows in sorted(self.removed_by_reason.items()):
            lines.append(f"  removed    {reason}: {rows:,}")
        for reason, rows in sorted(self.quarantine_by_reason.items()):
            lines.append(f"  quarantine {reason}: {rows:,}")
        if self.annotations is not None:
            marks = self.annotations
            lines.append(
                f"  output.mode=annotate: nothing removed or cut; data/ marks {marks['rows_marked_for_removal']:,} "
                f"rows for removal and {marks['bytes_in_spans']:,} bytes to cut in {marks['rows_with_spans']:,} rows"
            )
            for reason, rows in sorted(marks["marked_by_reason"].items()):
                lines.append(f"  marked     {reason}: {rows:,}")
        if self.index is not None:
            ix = self.index
            lines.append(
                f"  index      {ix['path']}: version {ix['version_before']} -> {ix.get('version_after')} "
                f"({ix.get('documents_added', 0):,} documents added; {ix['near_duplicates_of_index']:,} batch "
                f"documents removed as near-duplicates of {ix['index_documents_matched']:,} index documents)"
            )
        lines.append(f"  report: {self.outputs.get('report', '')}")
        if "report_html" in self.outputs:
            lines.append(f"  page:   {self.outputs['report_html']}")
        return "\n".join(lines)


def _counts(entry: dict[str, Any]) -> str:
    """The log form of a stage entry: counts and seconds, without details and bookkeeping."""
    return ", ".join(f"{k}={v}" for k, v in entry.items() if k not in ("name", "details", "fingerprint", "reused"))


def _stage_line(stage: dict[str, Any]) -> str:
    reused = "  (reused)" if stage.get("reused") else ""
    return (
        f"  {stage['name']:<12} {stage.get('rows_in', 0):>12,} in {stage.get('rows_out', 0):>12,} out"
        f"  {stage.get('seconds', 0):>8.1f} s{reused}"
    )


def plan_lines(
    config: RunConfig,
    identity: Any,
    columns: list[tuple[str, str]],
    columns_note: str,
    settings: dict[str, list[str]],
    reusable: dict[str, Any],
    output_state: str,
) -> list[str]:
    """The --dry-run plan: input, columns, output, and each step with its key settings and whether it is reused.

    identity: a `resume.InputIdentity`; columns: (name, type) of the input's columns; settings: the steps to run,
    in order, each with its lines of settings; reusable: step -> marker.
    """
    files = identity.files
    size = "size unknown"
    if files is not None:
        size = f"{files:,} file{'' if files == 1 else 's'}, {human_size(identity.bytes)}"
    lines = [
        "dedup-spark dry run (nothing was read in full, nothing was written)",
        f"  input   {identity.path} ({identity.format}; {size})",
        f"  columns {', '.join(f'{name}: {kind}' for name, kind in columns)}{columns_note}",
        f"          text column {config.input.text_column!r}, "
        + (f"id column {config.input.id_column!r}" if config.input.id_column else "ids derived from the text"),
        f"  output  {config.output.format} at {config.output.path} ({output_state})"
        + (
            "; output.mode=annotate: every document kept, duplicates marked" if config.output.mode == "annotate" else ""
        ),
        "  steps",
    ]
    for step, step_settings in settings.items():
        status = "reused from _work (same input and config)" if step in reusable else "would run"
        lines.append(f"    {step:<12} {status}")
        lines += [f"      {setting}" for setting in step_settings]
    skipped = ["ingest", *config.stages][len(settings) :]
    if skipped:
        lines.append(f"  --stop-after={config.stop_after}: not run now: {', '.join(skipped)}, writing the outputs")
    return lines
