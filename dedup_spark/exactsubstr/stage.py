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
3. minimizers distinct (chunk, minimizer) of every window, each with the number of *minimizer positions* of the
              chunk attaining it: w-gram positions whose hash is the minimizer of a window containing them
              (`minimizers.minimizer_positions`).
4. candidates the (chunk, minimizer) pairs whose value is attained at two or more minimizer positions in the whole
              corpus; a candidate present in two or more chunks is *cross*.
5. chunks     one task per chunk (cogroup of its pieces and its candidates): a suffix array over the chunk's
              *candidate stretches* (its super-k-mers with a candidate minimizer, joined where their bytes overlap;
              `find_repeats`) gives the policy's window starts; the super-k-mers whose minimizer is cross are
              emitted for shipping.
6. merge      the shipped super-k-mers, hash-partitioned by minimizer into P = ceil(shipped bytes / chunk_size)
              tasks (at least MERGE_TASK_MIN_BYTES each; whole rounds of task slots) and sorted: identical ones
              are folded, the rest searched with a suffix array, complete minimizer groups about chunk_size bytes
              at a time (`MergeTask`).
7. apply      window-start runs grouped per document, joined to the documents, cut (`spans.py`).

Why it is exact: the minimizer of a window depends only on its bytes, so all occurrences of a window share it.
The prefilter: if a window occurs at p and q (p != q, same or different documents), its minimizer value v is the
hash of a w-gram at some offset o inside it, so v is attained at the two distinct positions p + o and q + o, each
the minimum of a window containing it (the windows at p and q): v counts at least 2 minimizer positions and is a
candidate. Hence a window whose minimizer is not a candidate occurs once, and leaving it out of every search
changes nothing. Ties do not break this, because positions are counted, not super-k-mers: one super-k-mer (a run
of windows with one minimizer value) can hold many occurrences of one window when the minimizing w-gram repeats
within k bytes (periodic text such as "0x00000000,\n\t" again and again); counting super-k-mers per value would
call such a value unique and miss those repeats (on the 300 MB linux sample at w = 32: 6,939 super-k-mers with
628,553 windows). Both occurrences of a repeated window then lie in candidate super-k-mers, hence in candidate
stretches. If its minimizer is in one chunk only, all its occurrences are in that chunk's stretches and the
chunk's suffix array decides it exactly (keep_first included: a local rank of `_dd_id` keeps corpus order, and
stretches are searched in corpus order). If the minimizer is cross, every occurrence lies in a shipped super-k-mer
of that minimizer, and all of those meet in one merge task, which decides it exactly. A chunk never reports a
wrong window either (repeated or non-first within a chunk is so in the corpus), so the union of both passes is the
exact answer. Windows are compared as bytes by the suffix array, never by fingerprint: hash collisions of
minimizers only add candidates or move work between tasks. The report's top substrings are unchanged too: a
chunk's repeated windows and their counts are the same over its stretches as over the whole chunk, and stretches
keep their order, so the same top groups come out.

Why not only the merge: shipping every candidate super-k-mer (the merge pass alone is also exact) costs more
than it saves, because each super-k-mer carries k - 1 bytes of context: on the 300 MB linux sample (k = 100) the
candidate super-k-mers hold 1.98x the corpus at w = 32 (2.32x at w = 64), 1.24x (1.08x) after folding identical
ones, more bytes for suffix arrays than the corpus itself; joined into stretches within a document they hold 0.70x
(0.53x at w = 64). Measured (CPU seconds, one process, linux, w = 32): a 48 MB chunk costs 4.4-4.6 s instead
of 7.5-7.8 s (suffix array over stretches 2.5 s instead of 5.5 s over the chunk), the minimizer step 1.45-1.55x
what counting chunks per value cost; together about 23% less (`benchmarks/results/exactsubstr_prefilter_linux300.json`).

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
from dedup_spark.exactsubstr.chunk_task import ChunkTask
from dedup_spark.exactsubstr.steps import (
    candidates,
    cut,
    even_chunk_size,
    layout,
    merge_partitions,
    minimizer_positions,
    pieces,
)
from dedup_spark.exactsubstr.tasks import FINDINGS_SCHEMA, MergeTask
from dedup_spark.exactsubstr.top import collapse_repeats, snippet
from dedup_spark.io import storage
from dedup_spark.sparkops import Steps, many_splits
from dedup_spark.stage import StageContext, StageOutput

REASON = "exact_substring"
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
        return _run(ctx.spark, docs, ctx.config, ctx.work_dir)


def _run(spark: SparkSession, docs: DataFrame, config: RunConfig, work_dir: str) -> StageOutput:
    results: list[PassResult] = []
    current = docs
    for number in range(1, config.exactsubstr.passes + 1):
        last = number == config.exactsubstr.passes
        result = _run_pass(spark, current, config, storage.join(work_dir, f"pass{number}"), number, last)
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
    spark: SparkSession, docs: DataFrame, config: RunConfig, work_dir: str, number: int, last: bool
) -> PassResult:
    ex = config.exactsubstr
    k, size, text_column = ex.min_length, ex.chunk_size, config.input.text_column
    step = Steps(spark, work_dir)

    placed, largest_group_bytes = layout(docs, k, step)
    size = even_chunk_size(largest_group_bytes, size, spark)
    chunk_pieces = step("pieces", pieces(docs, placed, text_column, k, size))
    with many_splits(spark):
        pairs = step("minimizers", minimizer_positions(chunk_pieces, k, ex.width))
    candidate_pairs = step("candidates", candidates(pairs))
    chunk_task = ChunkTask(k, ex.width, ex.policy, ex.top_substrings)
    found = step(
        "chunk_findings",
        chunk_pieces.groupBy("chunk")
        .cogroup(candidate_pairs.groupBy("chunk"))
        .applyInPandas(chunk_task.udf(), FINDINGS_SCHEMA),
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
    touched = step("touched", cut(docs, runs, text_column, k, ex.min_remaining_chars))
    columns = docs.columns
    survivors = docs.join(runs.select(ID).distinct(), ID, "left_anti").unionByName(
        touched.filter(~F.col(DROP)).select(*columns)
    )
    if not last:
        survivors = step("survivors", survivors)
    spans = touched.select(F.col(ID).alias("doc_id"), F.explode(SPANS).alias("span")).select(
        "doc_id", "span.start", "span.end", F.lit(number).alias("pass")
    )
    metrics = _pass_metrics(docs, chunk_pieces, pairs, candidate_pairs, shipped, partitions, touched, findings, config)
    metrics["steps"] = step.table()
    return PassResult(survivors, touched.filter(DROP).select(ID), spans, metrics)


def _pass_metrics(
    docs: DataFrame,
    chunk_pieces: DataFrame,
    pairs: DataFrame,
    candidate_pairs: DataFrame,
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
    folds = (
        findings.filter(F.col("kind") == "fold")
        .agg(F.sum("count").alias("copies"), F.sum("start").alias("copy_bytes"), F.sum("end").alias("searched"))
        .first()
    )
    searched = findings.filter(F.col("kind") == "chunk").agg(F.sum("end").alias("bytes")).first()
    # pairs are distinct (chunk, minimizer): a cross minimizer in c chunks is c of them, any other one is one.
    cross = candidate_pairs.filter("cross")
    cross_pairs = cross.count()
    cross_minimizers = cross.select("minimizer").distinct().count()
    minimizers = pairs.count() - cross_pairs + cross_minimizers
    candidate_minimizers = candidate_pairs.select("minimizer").distinct().count()
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
        "candidate_minimizers": candidate_minimizers,
        "bytes_searched_in_chunks": int(searched["bytes"] or 0),
        "superkmers_shipped": int(shipped["superkmers"]),
        "bytes_shipped": shipped_bytes,
        "shipped_ratio": round(shipped_bytes / bytes_in, 6) if bytes_in else 0.0,
        "merge_partitions": partitions,
        "superkmers_folded": int(folds["copies"] or 0),
        "bytes_folded": int(folds["copy_bytes"] or 0),
        "bytes_searched_in_merge": int(folds["searched"] or 0),
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
