"""ExactSubstr against a reference set that is never cut (`run --index`): the batch's windows that occur in it.

Contract: with the reference's texts first in corpus order (and never cut), keep_first over reference + batch
removes from a batch document exactly the windows whose bytes occur earlier: in the reference (anywhere), or
earlier in the batch; strike_all removes the windows that occur twice anywhere. So the batch's cut is the union
of (a) the stage's own runs over the batch alone and (b) the batch's windows shared with the reference, which
`contamination.shared_windows` finds exactly (reference as its train set, batch as its eval set). `cut` merges
overlapping runs, so the union needs no care. Only (b) is computed here; the stage adds it to its runs.

Cost: when the reference carries each document's distinct minimizers (`_dd_minimizers`, stored in the index by
`doc_minimizers` with the same min_length and width), only its documents holding a minimizer of the batch's are
searched: a window shared with the batch has one minimizer at both occurrences (it depends on the window's bytes
only), so a document holding none of the batch's minimizers shares no window with it, and leaving it out changes
nothing. The rest of the reference is neither laid out nor hashed.
"""

from __future__ import annotations

from typing import Any

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from dedup_spark.columns import BYTES, EVAL_PREFIX, ID, MINIMIZERS, TRAIN_PREFIX
from dedup_spark.config import RunConfig
from dedup_spark.exactsubstr.contamination import shared_windows
from dedup_spark.exactsubstr.steps import minimizer_pairs


def doc_minimizers(docs: DataFrame, text_column: str, k: int, w: int) -> DataFrame:
    """`_dd_id, _dd_minimizers`: the distinct minimizers of every k-byte window of each document (`_dd_id`, text,
    `_dd_bytes`); documents shorter than k have no window and no row. Each document is one piece keyed by a 64-bit
    hash of its id: two ids with one hash get the union of their sets, a superset, which only searches more."""
    as_pieces = docs.filter(F.col(BYTES) >= k).select(
        F.xxhash64(ID).alias("chunk"),
        ID,
        (F.col(BYTES) - k + 1).alias("owned"),
        F.encode(text_column, "UTF-8").alias("data"),
    )
    sets = minimizer_pairs(as_pieces, k, w).groupBy("chunk").agg(F.collect_set("minimizer").alias(MINIMIZERS))
    return as_pieces.select("chunk", ID).join(sets, "chunk").select(ID, MINIMIZERS)


def runs_shared_with(
    spark: SparkSession,
    docs: DataFrame,
    reference: DataFrame,
    config: RunConfig,
    work_dir: str,
    batch_minimizers: DataFrame | None = None,
) -> tuple[DataFrame, dict[str, Any]]:
    """Window-start runs `_dd_id, start, end` of `docs` whose windows occur in `reference`, and metrics.

    docs, reference: `_dd_id`, the text column and `_dd_bytes` (ids may repeat across the two); the reference may
    carry `_dd_minimizers` (see the module docstring), used with `batch_minimizers` (a `minimizer` column holding
    every minimizer of the batch's windows, as the stage's minimizer step gives it) to search fewer documents.
    """
    text, k = config.input.text_column, config.exactsubstr.min_length
    searched = None
    if batch_minimizers is not None and MINIMIZERS in reference.columns:
        wanted = batch_minimizers.select("minimizer").distinct()
        exploded = reference.select(ID, F.explode(MINIMIZERS).alias("minimizer"))
        hits = exploded.join(wanted, "minimizer", "left_semi").select(ID).distinct()
        reference = reference.join(hits, ID, "left_semi")
        searched = reference.count()

    def tagged(frame: DataFrame, prefix: str) -> DataFrame:
        return frame.select(F.concat(F.lit(prefix), F.col(ID)).alias(ID), text, BYTES)

    both = tagged(reference, TRAIN_PREFIX).unionByName(tagged(docs, EVAL_PREFIX))
    windows, metrics = shared_windows(spark, both, config, work_dir)
    runs = windows.filter(F.col(ID).startswith(EVAL_PREFIX)).select(
        F.expr(f"substring({ID}, {len(EVAL_PREFIX) + 1})").alias(ID), "start", "end"
    )
    # Bytes of the batch inside shared windows: the union of [start, end + k - 1) per document.
    ordered = Window.partitionBy(ID).orderBy("start", "stop").rowsBetween(Window.unboundedPreceding, -1)
    covered = runs.select(ID, "start", (F.col("end") + (k - 1)).alias("stop"))
    islands = covered.withColumn("reach", F.max("stop").over(ordered)).withColumn(
        "island",
        F.sum(F.when(F.col("reach").isNull() | (F.col("start") > F.col("reach")), 1).otherwise(0)).over(
            Window.partitionBy(ID).orderBy("start", "stop")
        ),
    )
    spans = islands.groupBy(ID, "island").agg((F.max("stop") - F.min("start")).alias("bytes"))
    totals = spans.agg(F.countDistinct(ID).alias("docs"), F.sum("bytes").alias("bytes")).first()
    metrics.update(documents_sharing_with_index=int(totals["docs"]), bytes_shared_with_index=int(totals["bytes"] or 0))
    metrics["index_documents_searched"] = searched  # None: every one (no stored minimizers of these settings)
    return runs, metrics
