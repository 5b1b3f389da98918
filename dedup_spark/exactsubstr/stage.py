"""ExactSubstr stage: remove every substring of >= min_length bytes that occurs twice (Lee et al. 2022, tool 2).

The contract is issue 4's: a window is k = `min_length` consecutive UTF-8 bytes inside one document; `strike_all`
removes every byte covered by a repeated window, `keep_first` every occurrence but the first in corpus order
(`_dd_id`, then offset); removed bytes form maximal spans, widened to whole characters, reported as code points.

Steps of one pass, each written under the work folder as Parquet and read back:
1. layout     a running byte sum over all documents in `_dd_id` order (narrow columns only; `layout`).
2. pieces     every document cut at multiples of the chunk size of that sum (`chunk_size`, or a little less so
              the chunks fill whole rounds of the cluster's task slots: `even_chunk_size`): a piece owns the
              window starts that fall in one chunk and carries k-1 bytes of context, so a chunk holds
              <= chunk_size + k - 1 bytes and a document larger than a chunk spans several.
3. minimizers (chunk, minimizer, copies) of every window (`minimizers.py`; copies: how many of the minimizer's
              w-grams the chunk's runs hold, capped at 2), the number of chunks with that minimizer (present in
              two or more, it is *cross*) and its copies in the corpus (two or more: a *candidate*).
4. chunks     one task per chunk, in chunk order (`per_chunk`: a cogroup of its pieces and its candidate and cross
              minimizers): a suffix array of the stretches holding the runs of its candidate minimizers that are
              not cross (`find_repeats`) gives the policy's window starts; the super-k-mers whose minimizer is
              cross are emitted for shipping.
5. merge      the shipped super-k-mers, hash-partitioned by minimizer into P = ceil(shipped bytes / chunk_size)
              tasks (at least MERGE_TASK_MIN_BYTES each; whole rounds of task slots) and sorted: identical ones
              are folded, the rest searched with a suffix array, complete minimizer groups about chunk_size bytes
              at a time (`MergeTask`).
6. apply      window-start runs grouped per document, joined to the documents, cut (`spans.py`).

Why it is exact: the minimizer of a window depends only on its bytes, so all occurrences of a window share it.
A window occurring twice holds its minimum w-gram at two places, so its minimizer has two copies in the corpus
(`minimizers.superkmers_with_copies`): a window of a minimizer with fewer occurs once and is never removed.
If a window's minimizer is in one chunk only, all its occurrences are in that chunk and the chunk's suffix array
decides it exactly (keep_first included: a local rank of `_dd_id` keeps corpus order). If the minimizer is
cross, every occurrence lies in a shipped super-k-mer of that minimizer, and all of those meet in one merge
task, which decides it exactly. A chunk never reports a wrong window either (repeated or non-first within a
chunk is so in the corpus), so the union of both passes is the exact answer. Windows are compared as bytes by
the suffix array, never by fingerprint: hash collisions of minimizers only move work between tasks.
(The merge pass alone would also be exact; the chunk pass is the per-shard suffix array the issue asks for and
keeps the shipped bytes low when few repeats cross chunks: the report says how many bytes were shipped.)

Memory per task: the suffix-array kernel peaks at about 13 bytes per input byte, so a chunk task needs about
13 x chunk_size; its input and output as Arrow, pandas and Python bytes add a few times chunk_size (measured on
the docs corpus with 64 MB chunks: 818 MB inside the task function, 1.6 GB peak RSS of the Python worker).
A merge task searches about chunk_size bytes at a time, more only if one minimizer's distinct bytes are more.

passes=2 runs the same steps again on the output of pass 1 (cutting creates new repeats). The spans table
`exact/spans` (doc_id, start, end, pass) gives pass-1 spans in code points of the input text, and pass-2 spans in
code points of the pass-1 output text. Removed documents keep the text they had when they entered the stage.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from dedup_spark.columns import BYTES, CUT_BYTES, DROP, ID, SPANS
from dedup_spark.config import RunConfig
from dedup_spark.config_checks import human_size
from dedup_spark.exactsubstr.against import runs_shared_with
from dedup_spark.exactsubstr.steps import (
    cut,
    even_chunk_size,
    layout,
    merge_partitions,
    minimizer_table,
    per_chunk,
    pieces,
)
from dedup_spark.exactsubstr.tasks import FINDINGS_SCHEMA, ChunkTask, MergeTask
from dedup_spark.exactsubstr.top import collapse_repeats, snippet
from dedup_spark.io import storage
from dedup_spark.sparkops import Steps, many_splits
from dedup_spark.stage import StageContext, StageOutput

REASON = "exact_substring"
# Window-start runs up to which the cut sends them to every task (steps.cut's few_runs): about 60 MB in a broadcast.
BROADCAST_RUNS = 2_000_000
SPANS_TABLE = "exact/spans"


@dataclass
class PassResult:
    docs: DataFrame  # surviving documents, text cut
    dropped: DataFrame  # _dd_id of documents removed by this pass
    spans: DataFrame  # doc_id, start, end, pass
    metrics: dict[str, Any]


class ExactSubstr:
    """The stage (see the module docstring): survivors with the repeated spans cut out, removed documents, the
    `exact/spans` table. Held-out documents of `run --protect` never enter it, so it never cuts them."""

    name: ClassVar[str] = "exactsubstr"
    required_columns: ClassVar[tuple[str, ...]] = (ID, BYTES)

    def plan(self, config: RunConfig) -> list[str]:
        ex = config.exactsubstr
        return [
            f"min_length {ex.min_length} bytes, policy {ex.policy}, chunk_size {human_size(ex.chunk_size)}, "
            f"passes {ex.passes}, min_remaining_chars {ex.min_remaining_chars}"
        ]

    def run(self, ctx: StageContext, docs: DataFrame) -> StageOutput:
        """docs: the input's columns plus `_dd_id` and `_dd_bytes`. Returns survivors (same columns, text cut,
        `_dd_bytes` updated), removed documents (same columns as they came in, plus `reason`), the `exact/spans`
        table and the report metrics."""
        return _run(ctx.spark, docs, ctx.config, ctx.work_dir, ctx.index)


def _run(
    spark: SparkSession, docs: DataFrame, config: RunConfig, work_dir: str, index: DataFrame | None = None
) -> StageOutput:
    """index: the documents of `run --index`, first in corpus order and never cut (`against.py`), or None."""
    results: list[PassResult] = []
    current = docs
    for number in range(1, config.exactsubstr.passes + 1):
        last = number == config.exactsubstr.passes
        result = _run_pass(spark, current, config, storage.join(work_dir, f"pass{number}"), number, last, index)
        results.append(result)
        current = result.docs
    dropped = results[0].dropped
    spans = results[0].spans
    for result in results[1:]:
        dropped = dropped.unionByName(result.dropped)
        spans = spans.unionByName(result.spans)
    removed = docs.join(dropped, ID, "left_semi").withColumn("reason", F.lit(REASON))
    return StageOutput(
        docs=current, removed=removed, tables={SPANS_TABLE: spans}, metrics=_stage_metrics(results, spans)
    )


def _run_pass(
    spark: SparkSession,
    docs: DataFrame,
    config: RunConfig,
    work_dir: str,
    number: int,
    last: bool,
    index: DataFrame | None = None,
) -> PassResult:
    ex = config.exactsubstr
    k, size, text_column = ex.min_length, ex.chunk_size, config.input.text_column
    step = Steps(spark, work_dir)

    placed, largest_group_bytes = layout(docs, k, step)
    size = even_chunk_size(largest_group_bytes, size, spark)
    chunk_pieces = step("pieces", pieces(docs, placed, text_column, k, size))
    with many_splits(spark):
        pairs = step("minimizers", minimizer_table(chunk_pieces, k, ex.width, largest_group_bytes))
    cross = F.col("chunks") >= 2
    candidates = pairs.filter(cross | (F.col("corpus_copies") >= 2)).select("chunk", "minimizer", cross.alias("cross"))
    chunk_task = ChunkTask(k, ex.width, ex.policy, ex.top_substrings)
    found = step(
        "chunk_findings",
        per_chunk(chunk_pieces, candidates, chunk_task.udf(), FINDINGS_SCHEMA),
        partition_by=("kind",),
    )
    shipped_rows = found.filter(F.col("kind") == "skm")
    # A super-k-mer owning [start, end) holds end - start + k - 1 bytes: no need to read the bytes to count them.
    shipped_size = F.col("end") - F.col("start") + (k - 1)
    shipped = shipped_rows.agg(F.count(F.lit(1)).alias("superkmers"), F.sum(shipped_size).alias("bytes")).first()
    shipped_bytes = int(shipped["bytes"] or 0)
    partitions = merge_partitions(shipped_bytes, size, spark)
    findings = found.filter(F.col("kind") != "skm")
    if partitions:
        merge_task = MergeTask(k, ex.policy, ex.top_substrings, size)
        merged = step(
            "merge_findings",
            shipped_rows.select("minimizer", "data", ID, "start", "end")
            .repartition(partitions, "minimizer")
            .sortWithinPartitions("minimizer", "data", ID, "start")
            .mapInArrow(merge_task, FINDINGS_SCHEMA),
            partition_by=("kind",),
        )
        findings = findings.unionByName(merged)

    runs = findings.filter(F.col("kind") == "span").select(ID, "start", "end")
    index_metrics = None
    if index is not None:  # run --index: the windows the index's texts hold are cut too
        folder = storage.join(work_dir, "index")
        shared, index_metrics = runs_shared_with(spark, docs, index, config, folder)
        runs = runs.unionByName(shared)
    few_runs = index is None and _span_rows(step, ("chunk_findings", "merge_findings")) <= BROADCAST_RUNS
    touched = step("touched", cut(docs, runs, text_column, k, ex.min_remaining_chars, few_runs))
    columns = docs.columns
    survivors = docs.join(runs.select(ID).distinct(), ID, "left_anti").unionByName(
        touched.filter(~F.col(DROP)).select(*columns)
    )
    if not last:
        survivors = step("survivors", survivors)
    spans = touched.select(F.col(ID).alias("doc_id"), F.explode(SPANS).alias("span")).select(
        "doc_id", "span.start", "span.end", F.lit(number).alias("pass")
    )
    metrics = _pass_metrics(docs, chunk_pieces, pairs, shipped, partitions, touched, findings, config)
    metrics["steps"] = step.table()
    if index_metrics is not None:
        metrics["index"] = index_metrics
    return PassResult(survivors, touched.filter(DROP).select(ID), spans, metrics)


def _span_rows(step: Steps, names: tuple[str, ...]) -> int:
    """The rows of kind "span" the steps `names` wrote, from their footers (no Spark job)."""
    folders = [storage.join(step.work_dir, name, "kind=span") for name in names]
    return sum(storage.parquet_rows(folder) for folder in folders if storage.exists(folder))


def _pass_metrics(
    docs: DataFrame,
    chunk_pieces: DataFrame,
    pairs: DataFrame,
    shipped: Any,
    partitions: int,
    touched: DataFrame,
    findings: DataFrame,
    config: RunConfig,
) -> dict[str, Any]:
    inputs = docs.agg(F.count(F.lit(1)).alias("docs"), F.sum(BYTES).alias("bytes")).first()
    chunks = chunk_pieces.agg(
        F.countDistinct("chunk").alias("chunks"),
        F.count(F.lit(1)).alias("pieces"),
        F.sum(F.col("owned") + (config.exactsubstr.min_length - 1)).alias("bytes"),  # = length(data)
        F.sum("owned").alias("windows"),
    ).first()
    cut = touched.agg(
        F.count(F.lit(1)).alias("touched"),
        F.sum(F.size(SPANS)).alias("spans"),
        F.sum(CUT_BYTES).alias("cut"),
        F.sum(F.when(F.col(DROP), 1).otherwise(0)).alias("dropped"),
        F.sum(F.when(F.col(DROP), F.col(BYTES)).otherwise(0)).alias("dropped_bytes"),
    ).first()
    fold, searched = F.col("kind") == "fold", F.col("kind") == "searched"
    folds = (
        findings.filter(fold | searched)
        .agg(
            F.sum(F.when(fold, F.col("count"))).alias("copies"),
            F.sum(F.when(fold, F.col("start"))).alias("copy_bytes"),
            F.sum(F.when(fold, F.col("end"))).alias("searched"),
            F.sum(F.when(searched, F.col("end"))).alias("chunk_searched"),
        )
        .first()
    )
    # pairs are distinct (chunk, minimizer): a cross minimizer in c chunks is c of them, any other one is one.
    counts = pairs.agg(
        F.count(F.lit(1)).alias("pairs"),
        F.count(F.when(F.col("chunks") >= 2, 1)).alias("cross_pairs"),
        F.count_distinct(F.when(F.col("chunks") >= 2, F.col("minimizer"))).alias("cross_minimizers"),
    ).first()
    cross_minimizers = counts["cross_minimizers"]
    minimizers = counts["pairs"] - counts["cross_pairs"] + cross_minimizers
    bytes_in = int(inputs["bytes"] or 0)
    shipped_bytes = int(shipped["bytes"] or 0)
    bytes_removed = int(cut["cut"] or 0)
    top_n = config.exactsubstr.top_substrings
    candidates = (
        findings.filter(F.col("kind") == "top")
        .orderBy(F.desc("count"), "data")
        .limit(max(1, top_n) * 20)
        .select("data", "count")
        .collect()
    )
    found = [(bytes(r["data"]), r["count"]) for r in candidates]  # Spark 3.5 gives bytearray
    tops = collapse_repeats(found, config.exactsubstr.min_length, top_n)
    return {
        "documents_in": int(inputs["docs"]),
        "bytes_in": bytes_in,
        "bytes_removed": bytes_removed,
        "share_removed": round(bytes_removed / bytes_in, 6) if bytes_in else 0.0,
        "spans": int(cut["spans"] or 0),
        "documents_touched": int(cut["touched"]),
        "documents_removed": int(cut["dropped"] or 0),
        "documents_removed_bytes_left": int(cut["dropped_bytes"] or 0),
        "chunks": int(chunks["chunks"]),
        "pieces": int(chunks["pieces"]),
        "chunk_bytes": int(chunks["bytes"] or 0),
        "windows": int(chunks["windows"] or 0),
        "minimizers": minimizers,
        "cross_minimizers": cross_minimizers,
        "superkmers_shipped": int(shipped["superkmers"]),
        "bytes_shipped": shipped_bytes,
        "shipped_ratio": round(shipped_bytes / bytes_in, 6) if bytes_in else 0.0,
        "merge_partitions": partitions,
        "superkmers_folded": int(folds["copies"] or 0),
        "bytes_folded": int(folds["copy_bytes"] or 0),
        "bytes_searched_in_merge": int(folds["searched"] or 0),
        "bytes_searched_in_chunks": int(folds["chunk_searched"] or 0),
        "top_substrings": [{"snippet": snippet(data), "count": count, "bytes": len(data)} for data, count in tops],
    }


def _stage_metrics(results: list[PassResult], spans: DataFrame) -> dict[str, Any]:
    """Pass 1's metrics, with removal totals over all passes; each pass's own numbers under `passes`."""
    if len(results) == 1:
        return {**results[0].metrics, "passes": 1}
    first = results[0].metrics
    totals = {key: sum(r.metrics[key] for r in results) for key in ("bytes_removed", "spans", "documents_removed")}
    totals["documents_touched"] = spans.select("doc_id").distinct().count()
    totals["share_removed"] = round(totals["bytes_removed"] / first["bytes_in"], 6) if first["bytes_in"] else 0.0
    return {
        "documents_in": first["documents_in"],
        "bytes_in": first["bytes_in"],
        **totals,
        "top_substrings": first["top_substrings"],
        "passes": [{"pass": i + 1, **r.metrics} for i, r in enumerate(results)],
    }
