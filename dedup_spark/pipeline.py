"""The run: read -> ingest -> dedup stages -> write data/removed/quarantine -> check the accounting -> report."""

from __future__ import annotations

import logging

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from dedup_spark import storage
from dedup_spark.config import RunConfig
from dedup_spark.errors import AccountingError, InputError
from dedup_spark.ingest import ingest, load_docs, quarantine_rows, user_columns
from dedup_spark.readers import read_input, resolve_source
from dedup_spark.report import RunReport, utc_now
from dedup_spark.stages import STAGES
from dedup_spark.writers import OutputWriter, check_output_folder, read_table

log = logging.getLogger("dedup_spark")

# Columns the outputs add next to the input's own.
RESERVED_OUTPUT_COLUMNS = ("reason", "input_file", "raw_record", "cluster_id")


def run_pipeline(spark: SparkSession, config: RunConfig) -> RunReport:
    """Run every configured stage and write the outputs; returns the finished report (also written to disk)."""
    report = RunReport(config, spark.version, spark.conf.get("spark.master", "unknown"))
    out_dir = config.output.path
    source = resolve_source(spark, config.input)
    report.input_format = source.format
    raw = read_input(spark, source, config.input)
    _check_output_columns(raw, config)
    check_output_folder(out_dir, config.output.overwrite)
    if config.dry_run:
        report.status = "dry_run"
        log.info("dry run: input %s (%s) has columns %s", source.path, source.format, user_columns(raw))
        log.info(
            "dry run: would run ingest, %s and write %s to %s",
            ", ".join(config.stages) or "no dedup stage",
            config.output.format,
            out_dir,
        )
        return report

    work_dir = storage.join(out_dir, "_work")
    storage.delete(work_dir)  # stale intermediates from an earlier run are never read
    with report.stage("ingest") as entry:
        ingested = ingest(spark, raw, config, work_dir)
        entry.update(
            rows_in=ingested.rows_read,
            rows_out=ingested.docs,
            bytes_in=ingested.bytes_read,
            bytes_out=ingested.text_bytes,
            rows_quarantined=sum(ingested.quarantined_by_reason.values()),
            details={"shards": ingested.shards, "shard_size": config.ingest.shard_size},
        )
    docs = load_docs(spark, ingested)
    removed_frames: list[DataFrame] = []
    extra_tables: dict[str, DataFrame] = {}
    for name in config.stages:
        with report.stage(name) as entry:
            rows_in, bytes_in = _rows_and_bytes(docs)
            result = STAGES[name](spark, docs, config, storage.join(work_dir, name))
            docs = _materialize(spark, result.docs, storage.join(work_dir, name, "docs"))
            removed = _materialize(spark, result.removed, storage.join(work_dir, name, "removed"))
            removed_frames.append(removed)
            extra_tables.update(result.tables)
            rows_out, bytes_out = _rows_and_bytes(docs)
            entry.update(
                rows_in=rows_in,
                rows_out=rows_out,
                rows_removed=removed.count(),
                bytes_in=bytes_in,
                bytes_out=bytes_out,
                details=result.metrics,
            )

    writer = OutputWriter(spark, out_dir, config.output.format, config.output.delta_writer)
    writer.write("data", _user_view(docs, config))
    writer.write("removed", _user_view(_union(docs, removed_frames), config, extra=True))
    writer.write("quarantine", _user_view(quarantine_rows(spark, work_dir, ingested), config, extra=True))
    for name, table in extra_tables.items():
        writer.write(name, table)
    keep = {"report.json", "report.html"} | ({"_work"} if config.output.keep_work else set())
    writer.commit(keep)

    _account(spark, report, config, ingested.rows_read)
    if not config.output.keep_work:
        storage.delete(work_dir)
    report.status = "succeeded"
    report.outputs = {name: storage.join(out_dir, name) for name in writer.written}
    report.outputs["report"] = storage.join(out_dir, "report.json")
    report.finished_at = utc_now()
    report.write(out_dir)
    return report


def _check_output_columns(raw: DataFrame, config: RunConfig) -> None:
    columns = set(user_columns(raw))
    clashes = sorted(columns & set(RESERVED_OUTPUT_COLUMNS))
    if clashes:
        raise InputError(
            f"input columns {clashes} clash with columns dedup-spark adds to its outputs "
            f"({', '.join(RESERVED_OUTPUT_COLUMNS)}); rename them in the input"
        )
    if config.input.id_column is None and config.output.id_column in columns:
        raise InputError(
            f"the input already has a column {config.output.id_column!r}: pass --set input.id_column="
            f"{config.output.id_column} to use it as the id, or --set output.id_column=OTHER for derived ids"
        )


def _materialize(spark: SparkSession, frame: DataFrame, path: str) -> DataFrame:
    """Write a stage result to Parquet and read it back: cuts the lineage and makes counts cheap and exact."""
    frame.write.mode("overwrite").parquet(storage.to_spark_path(path))
    return spark.read.parquet(storage.to_spark_path(path))


def _rows_and_bytes(docs: DataFrame) -> tuple[int, int]:
    row = docs.agg(F.count(F.lit(1)).alias("rows"), F.sum("_dd_bytes").alias("bytes")).first()
    return int(row["rows"]), int(row["bytes"] or 0)


def _union(docs: DataFrame, removed_frames: list[DataFrame]) -> DataFrame:
    """All removed rows; with no dedup stage, an empty table with the documents' columns and a reason."""
    empty = docs.limit(0).withColumn("reason", F.lit(None).cast("string"))
    result = empty
    for frame in removed_frames:
        result = result.unionByName(frame, allowMissingColumns=True)
    return result


def _user_view(frame: DataFrame, config: RunConfig, extra: bool = False) -> DataFrame:
    """Drop internal columns; expose a derived id under output.id_column; keep reason/extra columns if asked."""
    columns = [F.col(c) for c in user_columns(frame) if c not in RESERVED_OUTPUT_COLUMNS]
    if config.input.id_column is None:
        columns.append(F.col("_dd_id").alias(config.output.id_column))
    if extra:
        columns += [F.col(c) for c in RESERVED_OUTPUT_COLUMNS if c in frame.columns]
    return frame.select(*columns)


def _account(spark: SparkSession, report: RunReport, config: RunConfig, rows_read: int) -> None:
    """Count the written tables and check rows read = written + removed + quarantined."""
    out_dir, fmt = config.output.path, config.output.format
    written = read_table(spark, storage.join(out_dir, "data"), fmt).count()
    removed = _count_by(read_table(spark, storage.join(out_dir, "removed"), fmt), "reason")
    quarantined = _count_by(read_table(spark, storage.join(out_dir, "quarantine"), fmt), "reason")
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
        report.write(out_dir)
        raise AccountingError(
            f"accounting does not add up: {rows_read} read != {written} written + {rows_removed} removed + "
            f"{rows_quarantined} quarantined; this is a bug, please report it with {out_dir}/report.json"
        )


def _count_by(frame: DataFrame, column: str) -> dict[str, int]:
    return {row[column]: int(row["count"]) for row in frame.groupBy(column).count().collect()}
