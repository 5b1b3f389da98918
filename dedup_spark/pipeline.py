"""The run: read -> ingest -> dedup stages -> write data/removed/quarantine -> check the accounting -> report."""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from dedup_spark import protect, resume
from dedup_spark.accounting import check_accounting
from dedup_spark.annotate import annotated_docs, annotation_counts, with_cluster_size
from dedup_spark.columns import (
    ANNOTATION_COLUMNS,
    BYTES,
    CLUSTER_SIZE,
    ID,
    original_name,
    safe_name,
    user_columns,
    user_view,
)
from dedup_spark.config import RunConfig
from dedup_spark.config_checks import human_size
from dedup_spark.errors import InputError
from dedup_spark.exactsubstr.stage import ExactSubstr
from dedup_spark.index import incremental
from dedup_spark.io import storage
from dedup_spark.io.ingest import IngestResult, ingest, load_docs, quarantine_rows, shards_path
from dedup_spark.io.readers import InputSource, read_input, resolve_source, sample_columns
from dedup_spark.io.writers import (
    OWNED_ENTRIES,
    check_output,
    open_output_writer,
    output_files_dir,
)
from dedup_spark.neardup.stage import CLUSTERS_TABLE, NearDup
from dedup_spark.report.data import removed_share_by_source
from dedup_spark.report.run import RunReport, plan_lines, utc_now
from dedup_spark.session import master, tag_jobs
from dedup_spark.sparkops import checkpoint, file_per_task
from dedup_spark.stage import Stage, StageContext, check_columns

log = logging.getLogger("dedup_spark")

# The stages `--stages` may name, in their default order: a new stage is one more line here.
STAGES: dict[str, Stage] = {stage.name: stage for stage in (NearDup(), ExactSubstr())}

# Columns removed/ and quarantine/ add next to the input's own (those they have); data/ adds CLUSTER_SIZE (with
# output.cluster_size) and ANNOTATION_COLUMNS (with output.mode=annotate).
REMOVED_COLUMNS = ("reason", "input_file", "raw_record", "cluster_id")


def run_pipeline(spark: SparkSession, config: RunConfig) -> RunReport:
    """Run ingest and the configured stages, write the outputs; returns the finished report (also on disk).

    Each step (ingest, then each stage) keeps its results under DIR/_work/<step>/ and writes a completion marker
    last (see `resume`); steps an earlier run completed with the same input and config are reused.
    `--stop-after=STEP` ends after STEP with a report of status "partial"; `--dry-run` only prints the plan.
    """
    report = RunReport(config, spark.version, master(spark))
    # report.json and _work: the output folder, or output.work_path when --output names catalog tables
    files_dir = output_files_dir(config.output)
    work_dir = storage.join(files_dir, "_work")
    source = resolve_source(spark, config.input)
    report.input_format = source.format
    steps = resume.steps_to_run(config)
    identity = resume.input_identity(spark, source)
    index = incremental.open_index(spark, config, identity)  # --index: the version read is part of the fingerprint
    if index is not None:
        identity = dataclasses.replace(identity, key={**identity.key, "index": index.key()})
    if config.protect:  # held-out sets are read in the ingest step: their files are part of its fingerprint
        identity = dataclasses.replace(identity, key={**identity.key, "protect": protect.identity_keys(spark, config)})
    prints = resume.fingerprints(config, identity, steps)
    unfinished = resume.is_unfinished_run(files_dir)
    if config.dry_run:
        columns, note = sample_columns(spark, source, config.input)  # before the output check: input errors first
        _check_output_columns([name for name, _ in columns], config)
    check_output(spark, config, unfinished)
    reusable = resume.reusable_steps(work_dir, steps, prints) if config.output.resume else {}
    if config.dry_run:
        state = _output_state(files_dir, unfinished)
        report.status = "dry_run"
        report.plan = plan_lines(config, identity, columns, note, _settings(config, steps), reusable, state)
        report.plan += [incremental.plan_line(index)] if index is not None else []
        return report

    resume.clear_work(work_dir, keep=list(reusable))  # partial or stale results are never read
    ingested: IngestResult | None = None
    protected: DataFrame | None = None
    references: tuple[DataFrame | None, ...] = (None, None, None)  # protected, index docs, index signatures
    docs: DataFrame | None = None
    counts = (0, 0)  # rows and text bytes of `docs`, as the step that made them counted them
    removed_frames: list[DataFrame] = []
    tables: dict[str, DataFrame] = {}
    try:
        for step in steps:
            tag_jobs(spark, f"dedup-spark-{step}")
            marker = reusable.get(step)
            if step == "ingest":
                ingested, held_out = _ingest(spark, source, config, work_dir, prints[step], marker, report)
                protected = protect.protected_docs(spark, config, storage.join(work_dir, "ingest"), held_out)
                docs = load_docs(spark, ingested)
                references = incremental.reference_docs(spark, config, index, protected, docs)
                counts = (ingested.docs, ingested.text_bytes)
                continue
            step_dir = storage.join(work_dir, step)
            if marker is None:
                marker = _run_stage(spark, step, docs, references, counts, config, work_dir, prints[step], report)
            else:
                report.reused(marker["entry"])
            removed = spark.read.parquet(storage.to_spark_path(storage.join(step_dir, "removed")))
            removed_frames.append(removed)
            docs = _stage_docs(spark, step_dir, docs, removed, marker)
            counts = (marker["entry"]["rows_out"], marker["entry"]["bytes_out"])
            for name in marker.get("tables", []):
                tables[name] = spark.read.parquet(storage.to_spark_path(storage.join(step_dir, "tables", name)))
        if config.stop_after:
            return _stop(report, config, files_dir)
        tag_jobs(spark, "dedup-spark-write-outputs")
        _write_outputs(spark, config, report, work_dir, ingested, docs, removed_frames, tables)
        incremental.finish(spark, config, index, report, files_dir)  # after success: add the survivors
    finally:
        tag_jobs(spark, None)
    return report


def _ingest(
    spark: SparkSession,
    source: InputSource,
    config: RunConfig,
    work_dir: str,
    fingerprint: str,
    marker: dict[str, Any] | None,
    report: RunReport,
) -> tuple[IngestResult, list[dict[str, Any]]]:
    """Ingest the input and the held-out sets into _work/ingest, or reload the counts of an earlier run's ingest.

    Returns the input's result and the held-out sets' (`protect.ingest_protected`).
    """
    ingest_dir = storage.join(work_dir, "ingest")
    if marker is not None:
        report.reused(marker["entry"])
        return IngestResult(shards_path=shards_path(ingest_dir), **marker["ingested"]), marker["protected"]
    # Read only now: a reused ingest needs no look at the input (JSON schema inference scans it).
    raw = read_input(spark, source, config.input)
    _check_output_columns(user_columns(raw), config)
    saved: dict[str, Any] = {}

    def done(entry: dict[str, Any]) -> None:
        resume.write_marker(work_dir, "ingest", fingerprint, entry, saved)

    with report.stage("ingest", on_done=done) as entry:
        files = (source.format, source.files) if source.files else None
        result = ingest(spark, raw, config, ingest_dir, source_files=files)
        held_out = protect.ingest_protected(spark, config, ingest_dir)
        details = {"shards": result.shards, "shard_size": config.ingest.shard_size}
        if result.files:
            details["files"] = result.files
        if held_out:
            details["protected"] = protect.summary(held_out)
        entry.update(
            rows_in=result.rows_read,
            rows_out=result.docs,
            bytes_in=result.bytes_read,
            bytes_out=result.text_bytes,
            rows_quarantined=sum(result.quarantined_by_reason.values()),
            details=details,
            fingerprint=fingerprint,
            reused=False,
        )
        saved["ingested"] = {k: v for k, v in dataclasses.asdict(result).items() if k != "shards_path"}
        saved["protected"] = held_out
    return result, held_out


def _run_stage(
    spark: SparkSession,
    name: str,
    docs: DataFrame,
    references: tuple[DataFrame | None, ...],
    counts: tuple[int, int],
    config: RunConfig,
    work_dir: str,
    fingerprint: str,
    report: RunReport,
) -> dict[str, Any]:
    """Run one dedup stage; its removed rows, extra tables and (if it rewrote them) docs go under _work/<name>.

    references: the held-out documents (`protect.protected_docs`, with the index's), the index's documents for
    ExactSubstr and its stored signatures, each or None (`incremental.reference_docs`).
    counts: rows and text bytes of `docs`.
    A stage that only drops rows (`StageOutput.docs` None) writes no copy of the survivors: they are `docs` minus
    the removed ids, derived again when read (`_stage_docs`). Returns its marker.
    """
    step_dir = storage.join(work_dir, name)
    saved: dict[str, Any] = {}

    def done(entry: dict[str, Any]) -> None:
        resume.write_marker(work_dir, name, fingerprint, entry, saved)
        saved["entry"] = entry

    with report.stage(name, on_done=done) as entry:
        rows_in, bytes_in = counts
        stage = STAGES[name]
        check_columns(stage, docs, config)
        result = stage.run(StageContext(spark, config, step_dir, *references), docs)
        removed = checkpoint(spark, result.removed, storage.join(step_dir, "removed"))
        for table, frame in result.tables.items():
            checkpoint(spark, frame, storage.join(step_dir, "tables", table))
        saved["tables"] = sorted(result.tables)
        saved["docs_written"] = result.docs is not None
        rows_removed, bytes_removed = _rows_and_bytes(removed)
        if result.docs is None:
            rows_out, bytes_out = rows_in - rows_removed, bytes_in - bytes_removed
        else:
            rows_out, bytes_out = _rows_and_bytes(checkpoint(spark, result.docs, storage.join(step_dir, "docs")))
        entry.update(
            rows_in=rows_in,
            rows_out=rows_out,
            rows_removed=rows_removed,
            bytes_in=bytes_in,
            bytes_out=bytes_out,
            details=result.metrics,
            fingerprint=fingerprint,
            reused=False,
        )
    return saved


def _stage_docs(
    spark: SparkSession, step_dir: str, docs: DataFrame, removed: DataFrame, marker: dict[str, Any]
) -> DataFrame:
    """The documents after a stage: its written docs, or its input minus its removed ids."""
    if marker["docs_written"]:
        return spark.read.parquet(storage.to_spark_path(storage.join(step_dir, "docs")))
    return docs.join(removed.select(ID), ID, "left_anti")


def _stop(report: RunReport, config: RunConfig, out_dir: str) -> RunReport:
    """--stop-after: keep _work, drop tables of an older finished run (--overwrite), write a partial report."""
    for name in OWNED_ENTRIES - resume.UNFINISHED_ENTRIES:
        storage.delete(storage.join(out_dir, name))
    report.status = "partial"
    report.stopped_after = config.stop_after
    report.outputs = {"report": storage.join(out_dir, "report.json")}
    report.finished_at = utc_now()
    report.write(out_dir)
    log.info("stopped after %s (--stop-after); run again without it to finish", config.stop_after)
    return report


def _write_outputs(
    spark: SparkSession,
    config: RunConfig,
    report: RunReport,
    work_dir: str,
    ingested: IngestResult,
    docs: DataFrame,
    removed_frames: list[DataFrame],
    tables: dict[str, DataFrame],
) -> None:
    """Write data/, removed/, quarantine/ and the stages' tables, check the accounting, write report.json.

    output.mode=annotate: data/ holds every ingested document with the annotation columns (`annotate.py`) and
    removed/ is empty (same columns), as nothing is removed.
    """
    out_dir = config.output.path
    log.info("writing outputs to %s: started", out_dir)
    start = time.monotonic()
    writer = open_output_writer(spark, config.output)
    files_dir = output_files_dir(config.output)
    annotate = config.output.mode == "annotate"
    all_removed = _union(docs, removed_frames)
    data = docs
    if annotate:
        text_column, size = config.input.text_column, config.output.cluster_size
        data = annotated_docs(load_docs(spark, ingested), all_removed, tables, text_column, size)
    elif config.output.cluster_size and CLUSTERS_TABLE in tables:
        data = with_cluster_size(docs, tables[CLUSTERS_TABLE])
    with file_per_task(spark):  # the largest write: one input file per task keeps the tasks even
        writer.write("data", _user_view(data, config, extra=(CLUSTER_SIZE, *ANNOTATION_COLUMNS)))
    removed = all_removed.limit(0) if annotate else all_removed
    writer.write("removed", _user_view(removed, config, extra=REMOVED_COLUMNS))
    quarantine = quarantine_rows(spark, storage.join(work_dir, "ingest"), ingested)
    writer.write("quarantine", _user_view(quarantine, config, extra=REMOVED_COLUMNS))
    for name, table in tables.items():
        writer.write(name, table)
    # Before the commit, which may delete _work, where these frames are read from.
    source_column = config.report.source_column and safe_name(config.report.source_column)
    report.removed_by_source = removed_share_by_source(
        load_docs(spark, ingested), all_removed, source_column, survivors=docs
    )
    keep = {"report.json", "report.html"} | ({"_work"} if config.output.keep_work else set())
    writer.commit(keep)
    log.info("writing outputs: finished (%s tables, seconds=%.3f)", len(writer.written), time.monotonic() - start)

    check_accounting(report, writer, files_dir, ingested.rows_read)
    if annotate:
        report.annotations = annotation_counts(writer.read("data"))
    if not config.output.keep_work:
        storage.delete(work_dir)
    report.status = "succeeded"
    report.outputs = {name: writer.location(name) for name in writer.written}
    report.outputs["report"] = storage.join(files_dir, "report.json")
    report.outputs["report_html"] = storage.join(files_dir, "report.html")
    report.finished_at = utc_now()
    report.write(files_dir)


def _settings(config: RunConfig, steps: list[str]) -> dict[str, list[str]]:
    """Each step to run with its key settings, for the --dry-run plan."""
    ingest = f"shard_size {human_size(config.ingest.shard_size)}, duplicate_ids {config.input.duplicate_ids}"
    return {step: [ingest] if step == "ingest" else STAGES[step].plan(config) for step in steps}


def _output_state(out_dir: str, unfinished: bool) -> str:
    if storage.is_empty_or_missing(out_dir):
        return "new"
    if unfinished:
        return "an unfinished run: its completed steps can be reused"
    return "not empty: --overwrite replaces it"


def _check_output_columns(names: list[str], config: RunConfig) -> None:
    columns = {original_name(name) for name in names}
    source = config.report.source_column
    if source is not None and source not in columns:
        raise InputError(f"report.source_column={source!r} is not an input column; columns are {sorted(columns)}")
    reserved = list(REMOVED_COLUMNS)
    if config.output.cluster_size:
        reserved.append(CLUSTER_SIZE)
    if config.output.mode == "annotate":
        reserved += ANNOTATION_COLUMNS
    clashes = sorted(columns & set(reserved))
    if clashes:
        also = " (or --set output.cluster_size=false)" if CLUSTER_SIZE in clashes else ""
        also += " (or --set output.mode=remove)" if set(clashes) & set(ANNOTATION_COLUMNS) else ""
        raise InputError(
            f"input columns {clashes} clash with columns dedup-spark adds to its outputs "
            f"({', '.join(reserved)}); rename them in the input{also}"
        )
    if config.input.id_column is None and config.output.id_column in columns:
        raise InputError(
            f"the input already has a column {config.output.id_column!r}: pass --set input.id_column="
            f"{config.output.id_column} to use it as the id, or --set output.id_column=OTHER for derived ids"
        )


def _rows_and_bytes(docs: DataFrame) -> tuple[int, int]:
    row = docs.agg(F.count(F.lit(1)).alias("rows"), F.sum(BYTES).alias("bytes")).first()
    return int(row["rows"]), int(row["bytes"] or 0)


def _union(docs: DataFrame, removed_frames: list[DataFrame]) -> DataFrame:
    """All removed rows; with no dedup stage, an empty table with the documents' columns and a reason."""
    empty = docs.limit(0).withColumn("reason", F.lit(None).cast("string"))
    result = empty
    for frame in removed_frames:
        result = result.unionByName(frame, allowMissingColumns=True)
    return result


def _user_view(frame: DataFrame, config: RunConfig, extra: tuple[str, ...] = ()) -> DataFrame:
    """`columns.user_view`, with the derived id under output.id_column when ids are derived."""
    derived_id = F.col(ID).alias(config.output.id_column) if config.input.id_column is None else None
    return user_view(frame, derived_id, extra)
