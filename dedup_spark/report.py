"""The run report: resolved config, timings, per-stage counts, the accounting identity; JSON and a summary."""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from dedup_spark import __version__, storage
from dedup_spark.config import RunConfig

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
        self.outputs: dict[str, str] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[dict[str, Any]]:
        """Time one stage and log its start and end; the caller fills the yielded dict with counts."""
        entry: dict[str, Any] = {"name": name}
        log.info("stage %s: started", name)
        start = time.monotonic()
        yield entry
        entry["seconds"] = round(time.monotonic() - start, 3)
        self.stages.append(entry)
        counts = ", ".join(f"{k}={v}" for k, v in entry.items() if k not in ("name", "details"))
        log.info("stage %s: finished (%s)", name, counts)

    def to_dict(self) -> dict[str, Any]:
        config = self.config.to_dict()
        config["stages"] = list(self.config.stages)
        return {
            "dedup_spark_version": __version__,
            "status": self.status,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "spark": self.spark,
            "input_format": self.input_format,
            "config": config,
            "stages": self.stages,
            "accounting": self.accounting,
            "quarantine_by_reason": self.quarantine_by_reason,
            "removed_by_reason": self.removed_by_reason,
            "outputs": self.outputs,
        }

    def write(self, out_dir: str) -> str:
        path = storage.join(out_dir, "report.json")
        storage.write_text(path, json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n")
        return path

    def summary(self) -> str:
        """A few lines for people: what came in, what went out, what was removed and why."""
        acc = self.accounting
        lines = [
            f"dedup-spark {self.status}: {acc.get('rows_read', 0):,} rows read -> "
            f"{acc.get('rows_written', 0):,} written, {acc.get('rows_removed', 0):,} removed, "
            f"{acc.get('rows_quarantined', 0):,} quarantined "
            f"({'balanced' if acc.get('balanced') else 'NOT BALANCED'})",
        ]
        for stage in self.stages:
            lines.append(
                f"  {stage['name']:<12} {stage.get('rows_in', 0):>12,} in {stage.get('rows_out', 0):>12,} out"
                f"  {stage['seconds']:>8.1f} s"
            )
        for reason, rows in sorted(self.removed_by_reason.items()):
            lines.append(f"  removed    {reason}: {rows:,}")
        for reason, rows in sorted(self.quarantine_by_reason.items()):
            lines.append(f"  quarantine {reason}: {rows:,}")
        lines.append(f"  report: {self.outputs.get('report', '')}")
        return "\n".join(lines)
