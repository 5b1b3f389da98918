"""The run's accounting identity: every row read is written, removed or quarantined; checked on the written tables."""

from __future__ import annotations

import functools

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from dedup_spark.errors import AccountingError
from dedup_spark.io.writers import OutputWriter, TableOutputWriter
from dedup_spark.report.run import RunReport


def check_accounting(
    report: RunReport, writer: OutputWriter | TableOutputWriter, files_dir: str, rows_read: int
) -> None:
    """Count the written tables and check rows read = written + removed + quarantined."""
    written, removed, quarantined = _counts(writer)
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


def _counts(writer: OutputWriter | TableOutputWriter) -> tuple[int, dict[str, int], dict[str, int]]:
    """(rows of data/, rows of removed/ by reason, rows of quarantine/ by reason), read back in one query."""
    tables = []
    for name in ("data", "removed", "quarantine"):
        reason = F.lit(None).cast("string") if name == "data" else F.col("reason")
        tables.append(writer.read(name).select(F.lit(name).alias("table"), reason.alias("reason")))
    rows = functools.reduce(DataFrame.unionByName, tables).groupBy("table", "reason").count().collect()
    by_table: dict[str, dict[str | None, int]] = {"data": {}, "removed": {}, "quarantine": {}}
    for row in rows:
        by_table[row["table"]][row["reason"]] = int(row["count"])
    return sum(by_table["data"].values()), by_table["removed"], by_table["quarantine"]
