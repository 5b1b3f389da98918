"""The run's accounting identity: every row read is written, removed or quarantined; checked on the written tables."""

from __future__ import annotations

from pyspark.sql import DataFrame

from dedup_spark.errors import AccountingError
from dedup_spark.io.writers import OutputWriter, TableOutputWriter
from dedup_spark.report.run import RunReport


def check_accounting(
    report: RunReport, writer: OutputWriter | TableOutputWriter, files_dir: str, rows_read: int
) -> None:
    """Count the written tables and check rows read = written + removed + quarantined."""
    written = writer.read("data").count()
    removed = _count_by(writer.read("removed"), "reason")
    quarantined = _count_by(writer.read("quarantine"), "reason")
    report.removed_by_reason = removed
    report.quarantine_by_reason = quarantined
    rows_removed, rows_quarantined = sum(removed.values()), sum(quarantined.values())
    balanced = rows_read == written + rows_removed + rows_quarantined
    report.accounting = {
        "rows_read": rows_read,
        "rows_written": written,
        "rows_removed": rows_removed,
        "rows_quarantined": rows_quarantined,
        "identity": "rows_read = rows_written + rows_removed + rows_quarantined",
        "balanced": balanced,
    }
    if not balanced:
        report.status = "failed"
        report.write(files_dir)
        raise AccountingError(
            f"accounting does not add up: {rows_read} read != {written} written + {rows_removed} removed + "
            f"{rows_quarantined} quarantined; this is a bug, please report it with {files_dir}/report.json"
        )


def _count_by(frame: DataFrame, column: str) -> dict[str, int]:
    return {row[column]: int(row["count"]) for row in frame.groupBy(column).count().collect()}
