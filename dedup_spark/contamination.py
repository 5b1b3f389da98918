"""`dedup-spark contamination`: which eval documents and eval text also occur in a train set (both tools of Lee et
al. 2022 across two datasets), and optionally the train set without them.

Both sets are ingested as `run` ingests its input (`io/ingest.py`; the same input settings apply to both), into
DIR/_work/train and DIR/_work/eval. Internally train ids get the prefix "0:" and eval ids "1:" (ids may collide
across the sets); outputs show the ids without it.

- neardup (`neardup/contamination.py`): verified (train, eval) near-duplicate pairs, with the signatures, preset
  and verification of `run`. An eval document is contaminated by every train document whose text (folded with
  its identical copies) forms a verified pair with its own.
- exactsubstr: the k-byte windows (k = exactsubstr.min_length) of eval documents that occur in a train document
  (`exactsubstr/contamination.py`), as code point spans, and the train documents holding the first window of
  each of the eval document's shared runs (`exactsubstr/sources.py`); documents are cut as ExactSubstr cuts.

Outputs under DIR: `eval/` (one row per eval document), `report.json`, `quarantine/train`, `quarantine/eval`;
with clean_train also `train_clean/` (train minus the train documents near-duplicate to an eval document, and
with the train windows that occur in eval cut out) and `train_removed/` (with `reason`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from dedup_spark.columns import (
    BYTES,
    CUT_BYTES,
    DROP,
    EVAL_PREFIX,
    ID,
    SPANS,
    TRAIN_PREFIX,
    user_columns,
    user_view,
)
from dedup_spark.config import RunConfig
from dedup_spark.errors import AccountingError
from dedup_spark.exactsubstr.contamination import WINDOWS_SCHEMA, shared_windows
from dedup_spark.exactsubstr.sources import exact_sources
from dedup_spark.exactsubstr.steps import SPAN_TYPE, cut
from dedup_spark.io import storage
from dedup_spark.io.ingest import IngestResult, ingest, load_docs, quarantine_rows
from dedup_spark.io.readers import read_input, resolve_source
from dedup_spark.io.writers import OutputWriter, check_output_folder, read_table
from dedup_spark.neardup.contamination import neardup_matches
from dedup_spark.report.contamination_examples import page_examples
from dedup_spark.report.contamination_html import write_contamination_html
from dedup_spark.report.run import utc_now
from dedup_spark.sparkops import checkpoint

log = logging.getLogger("dedup_spark")

#: Output entries of this command besides those `run` writes.
OWN_ENTRIES = {"eval", "train_clean", "train_removed"}
REASON_NEARDUP = "contamination_neardup"
REASON_EXACT = "contamination_exact"
#: Train ids listed per eval document (all of them are counted in `neardup_train_count`).
MAX_TRAIN_IDS = 20


def _strip(column: str = ID) -> Any:
    return F.expr(f"substring({column}, 3)")


def _train_ids(pairs: DataFrame, tool: str) -> DataFrame:
    """(`_dd_id` of an eval document, `train_id`) pairs -> per eval document `<tool>_train_ids` (unprefixed,
    sorted, the first MAX_TRAIN_IDS) and `<tool>_train_count` (all of them)."""
    return pairs.groupBy(ID).agg(
        F.slice(F.sort_array(F.collect_list(_strip("train_id"))), 1, MAX_TRAIN_IDS).alias(f"{tool}_train_ids"),
        F.count(F.lit(1)).alias(f"{tool}_train_count"),
    )


def _prefixed(docs: DataFrame, prefix: str) -> DataFrame:
    return docs.withColumn(ID, F.concat(F.lit(prefix), ID))


def _user_view(frame: DataFrame, config: RunConfig, extra: tuple[str, ...] = (), prefixed: bool = True) -> DataFrame:
    """`columns.user_view`, with the derived id (without its set prefix) when ids are derived."""
    derived_id = (_strip() if prefixed else F.col(ID)).alias(config.output.id_column)
    return user_view(frame, derived_id if config.input.id_column is None else None, extra)


def _cut(docs: DataFrame, runs: DataFrame, config: RunConfig) -> DataFrame:
    """Documents that have shared window runs, cut as ExactSubstr cuts (`exactsubstr.steps.cut`)."""
    ex = config.exactsubstr
    return cut(docs, runs, config.input.text_column, ex.min_length, ex.min_remaining_chars)


def run_contamination(spark: SparkSession, config: RunConfig, eval_path: str, clean_train: bool) -> dict[str, Any]:
    """Run the command (see the module docstring); returns the report (also written to DIR/report.json).

    config: the resolved config with input.path = the train set. Raises InputError for unreadable inputs,
    UsageError for a bad output folder, AccountingError if rows do not add up.
    """
    out_dir = config.output.path
    report: dict[str, Any] = {"command": "contamination", "status": "running", "started_at": utc_now()}
    configs = {"train": config, "eval": replace(config, input=replace(config.input, path=eval_path))}
    raws = {}
    sources = {name: resolve_source(spark, cfg.input) for name, cfg in configs.items()}
    for name, cfg in configs.items():
        raws[name] = read_input(spark, sources[name], cfg.input)
    check_output_folder(out_dir, config.output.overwrite)
    report["config"] = {**config.to_dict(), "stages": list(config.stages)}
    report["inputs"] = {"train": config.input.path, "eval": eval_path, "clean_train": clean_train}
    if config.dry_run:
        report["status"] = "dry_run"
        log.info("dry run: train columns %s, eval columns %s", user_columns(raws["train"]), user_columns(raws["eval"]))
        return report

    work_dir = storage.join(out_dir, "_work")
    storage.delete(work_dir)
    ingested: dict[str, IngestResult] = {}
    for name, cfg in configs.items():
        files = (sources[name].format, sources[name].files) if sources[name].files else None
        ingested[name] = ingest(spark, raws[name], cfg, storage.join(work_dir, name), source_files=files)
    train = _prefixed(load_docs(spark, ingested["train"]), TRAIN_PREFIX)
    evals = _prefixed(load_docs(spark, ingested["eval"]), EVAL_PREFIX)
    text_column = config.input.text_column
    narrow = [ID, text_column, BYTES]
    both = train.select(*narrow).unionByName(evals.select(*narrow))

    empty_pairs = spark.createDataFrame([], "train_id string, eval_id string")
    pairs, nd_metrics = empty_pairs, {}
    if "neardup" in config.stages:
        pairs, nd_metrics = neardup_matches(spark, both, config, storage.join(work_dir, "neardup"))
    windows, ex_metrics = spark.createDataFrame([], WINDOWS_SCHEMA), {}
    if "exactsubstr" in config.stages:
        windows, ex_metrics = shared_windows(spark, both, config, storage.join(work_dir, "exact"))

    per_eval = _train_ids(pairs.withColumnRenamed("eval_id", ID), "neardup")
    sources = exact_sources(
        evals.select(ID, text_column), train.select(ID, text_column), windows, text_column,
        config.exactsubstr.min_length,
    )  # fmt: skip
    per_eval_exact = checkpoint(spark, _train_ids(sources, "exact"), storage.join(work_dir, "exact_sources"))
    eval_cut = checkpoint(
        spark,
        _cut(evals.select(*narrow), windows.filter(F.col(ID).startswith(EVAL_PREFIX)), config).select(
            ID, SPANS, CUT_BYTES
        ),
        storage.join(work_dir, "eval_spans"),
    )
    id_columns = [config.input.id_column] if config.input.id_column else []
    id_out_name = config.input.id_column or config.output.id_column
    id_out = [F.col(config.input.id_column)] if config.input.id_column else [_strip().alias(config.output.id_column)]
    near = F.col("neardup_train_count").isNotNull()
    exact_bytes = F.coalesce(CUT_BYTES, F.lit(0)).cast("long")
    eval_table = checkpoint(
        spark,
        evals.select(ID, BYTES, *id_columns)
        .join(per_eval, ID, "left")
        .join(eval_cut, ID, "left")
        .join(per_eval_exact, ID, "left")
        .select(
            *id_out,
            (near | (exact_bytes > 0)).alias("contaminated"),
            near.alias("neardup"),
            F.coalesce("neardup_train_ids", F.array().cast("array<string>")).alias("neardup_train_ids"),
            F.coalesce("neardup_train_count", F.lit(0)).cast("long").alias("neardup_train_count"),
            F.coalesce(SPANS, F.array().cast(SPAN_TYPE)).alias("exact_spans"),
            exact_bytes.alias("exact_bytes"),
            F.coalesce("exact_train_ids", F.array().cast("array<string>")).alias("exact_train_ids"),
            F.coalesce("exact_train_count", F.lit(0)).cast("long").alias("exact_train_count"),
            F.col(BYTES).alias("bytes"),
            F.when(near, F.col(BYTES)).otherwise(exact_bytes).alias("contaminated_bytes"),
        ),
        storage.join(work_dir, "eval_table"),
    )

    writer = OutputWriter(spark, out_dir, config.output.format, config.output.delta_writer)
    writer.write("eval", eval_table)
    for name, cfg in configs.items():
        quarantine = quarantine_rows(spark, storage.join(work_dir, name), ingested[name])
        extra = ("reason", "input_file", "raw_record")
        writer.write(f"quarantine/{name}", _user_view(quarantine, cfg, extra, prefixed=False))
    train_figures: dict[str, Any] = {}
    if clean_train:
        train_figures = _write_clean_train(spark, writer, train, pairs, windows, config, work_dir)
    writer.commit({"report.json", "_work"})  # the figures below still read _work
    for name in OWN_ENTRIES - {n.split("/", 1)[0] for n in writer.written}:
        storage.delete(storage.join(out_dir, name))  # stale tables of an earlier run

    report.update(_figures(spark, config, ingested, pairs, windows, train_figures))
    report["neardup"], report["exactsubstr"] = nd_metrics, ex_metrics
    eval_written = read_table(spark, storage.join(out_dir, "eval"), config.output.format)
    report["examples"] = page_examples(eval_written, id_out_name, both, pairs, text_column)
    if not config.output.keep_work:
        storage.delete(work_dir)
    report["status"] = "succeeded"
    report["outputs"] = {name: storage.join(out_dir, name) for name in writer.written}
    report["finished_at"] = utc_now()
    storage.write_text(storage.join(out_dir, "report.json"), json.dumps(report, indent=2) + "\n")
    write_contamination_html(report, out_dir)
    return report


def _write_clean_train(
    spark: SparkSession,
    writer: OutputWriter,
    train: DataFrame,
    pairs: DataFrame,
    windows: DataFrame,
    config: RunConfig,
    work_dir: str,
) -> dict[str, int]:
    """train_clean/ and train_removed/: near-duplicates of eval documents removed, shared windows cut out."""
    involved = pairs.select(F.col("train_id").alias(ID)).distinct()
    near_removed = train.join(involved, ID, "left_semi").withColumn("reason", F.lit(REASON_NEARDUP))
    rest = train.join(involved, ID, "left_anti")
    train_windows = windows.filter(F.col(ID).startswith(TRAIN_PREFIX))
    touched = checkpoint(spark, _cut(rest, train_windows, config), storage.join(work_dir, "train_touched"))
    clean = rest.join(train_windows.select(ID).distinct(), ID, "left_anti").unionByName(
        touched.filter(~F.col(DROP)).select(*rest.columns)
    )
    exact_removed = rest.join(touched.filter(DROP).select(ID), ID, "left_semi").withColumn(
        "reason", F.lit(REASON_EXACT)
    )
    writer.write("train_clean", _user_view(clean, config))
    writer.write("train_removed", _user_view(near_removed.unionByName(exact_removed), config, ("reason",)))
    cut = touched.filter(~F.col(DROP)).agg(F.count(F.lit(1)).alias("docs"), F.sum(CUT_BYTES).alias("b"))
    row = cut.first()
    return {"train_documents_cut": int(row["docs"]), "train_bytes_cut": int(row["b"] or 0)}


def _figures(
    spark: SparkSession,
    config: RunConfig,
    ingested: dict[str, IngestResult],
    pairs: DataFrame,
    windows: DataFrame,
    train_figures: dict[str, int],
) -> dict[str, Any]:
    """The summary (from the written eval table) and the row accounting of every output."""
    out, fmt = config.output.path, config.output.format
    table = read_table(spark, storage.join(out, "eval"), fmt)
    row = table.agg(
        F.count(F.lit(1)).alias("docs"),
        F.sum(F.col("contaminated").cast("long")).alias("either"),
        F.sum(F.col("neardup").cast("long")).alias("near"),
        F.sum((F.col("exact_bytes") > 0).cast("long")).alias("exact"),
        F.sum("bytes").alias("bytes"),
        F.sum("exact_bytes").alias("exact_bytes"),
        F.sum("contaminated_bytes").alias("contaminated_bytes"),
    ).first()
    docs, total = int(row["docs"]), int(row["bytes"] or 0)

    def share(part: Any, whole: int) -> float:
        return round(int(part or 0) / whole, 6) if whole else 0.0

    summary = {
        "eval_documents": docs,
        "eval_bytes": total,
        "contaminated_documents": int(row["either"] or 0),
        "neardup_documents": int(row["near"] or 0),
        "exact_documents": int(row["exact"] or 0),
        "share_contaminated": share(row["either"], docs),
        "share_neardup": share(row["near"], docs),
        "share_exact": share(row["exact"], docs),
        "exact_bytes": int(row["exact_bytes"] or 0),
        "contaminated_bytes": int(row["contaminated_bytes"] or 0),
        "share_bytes_exact": share(row["exact_bytes"], total),
        "share_bytes_contaminated": share(row["contaminated_bytes"], total),
        "train_documents_neardup": pairs.select("train_id").distinct().count(),
        "train_documents_with_shared_text": windows.filter(F.col(ID).startswith(TRAIN_PREFIX))
        .select(ID)
        .distinct()
        .count(),
        **train_figures,
    }
    accounting: dict[str, Any] = {}
    for name in ("train", "eval"):
        quarantined = read_table(spark, storage.join(out, "quarantine", name), fmt).count()
        accounting[name] = {"rows_read": ingested[name].rows_read, "rows_quarantined": quarantined}
    accounting["eval"]["rows_reported"] = docs
    balanced = ingested["eval"].rows_read == docs + accounting["eval"]["rows_quarantined"]
    if train_figures:
        kept = read_table(spark, storage.join(out, "train_clean"), fmt).count()
        removed = read_table(spark, storage.join(out, "train_removed"), fmt)
        by_reason = {r["reason"]: int(r["count"]) for r in removed.groupBy("reason").count().collect()}
        accounting["train"].update(rows_written=kept, rows_removed=sum(by_reason.values()), removed_by_reason=by_reason)
        balanced &= (
            ingested["train"].rows_read == kept + sum(by_reason.values()) + accounting["train"]["rows_quarantined"]
        )
    accounting["balanced"] = balanced
    if not balanced:
        raise AccountingError(f"contamination: rows do not add up: {accounting}; this is a bug, please report it")
    return {"summary": summary, "accounting": accounting}


def summary_lines(report: dict[str, Any]) -> str:
    """A few lines for people: the contamination figures of a finished report."""
    s = report["summary"]
    lines = [
        f"dedup-spark contamination {report['status']}: {s['eval_documents']:,} eval documents, "
        f"{s['contaminated_documents']:,} contaminated ({s['share_contaminated']:.2%})",
        f"  near-duplicate of a train document: {s['neardup_documents']:,} ({s['share_neardup']:.2%})",
        f"  text shared with train:             {s['exact_documents']:,} ({s['share_exact']:.2%}), "
        f"{s['exact_bytes']:,} of {s['eval_bytes']:,} bytes ({s['share_bytes_exact']:.2%})",
        f"  contaminated bytes (whole near-duplicates + shared text): {s['share_bytes_contaminated']:.2%}",
    ]
    train = report["accounting"]["train"]
    if "rows_written" in train:
        lines.append(
            f"  train: {train['rows_read']:,} read -> {train['rows_written']:,} clean, {train['rows_removed']:,} "
            f"removed, {train['rows_quarantined']:,} quarantined"
        )
    return "\n".join(lines)
