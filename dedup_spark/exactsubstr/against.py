"""ExactSubstr against a reference set that is never cut (`run --index`): the batch's windows that occur in it.

Contract: with the reference's texts first in corpus order (and never cut), keep_first over reference + batch
removes from a batch document exactly the windows whose bytes occur earlier: in the reference (anywhere), or
earlier in the batch; strike_all removes the windows that occur twice anywhere. So the batch's cut is the union
of (a) the stage's own runs over the batch alone and (b) the batch's windows shared with the reference, which
`contamination.shared_windows` finds exactly (reference as its train set, batch as its eval set). `cut` merges
overlapping runs, so the union needs no care. Only (b) is computed here; the stage adds it to its runs.
"""

from __future__ import annotations

from typing import Any

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from dedup_spark.columns import BYTES, EVAL_PREFIX, ID, TRAIN_PREFIX
from dedup_spark.config import RunConfig
from dedup_spark.exactsubstr.contamination import shared_windows


def runs_shared_with(
    spark: SparkSession, docs: DataFrame, reference: DataFrame, config: RunConfig, work_dir: str
) -> tuple[DataFrame, dict[str, Any]]:
    """Window-start runs `_dd_id, start, end` of `docs` whose windows occur in `reference`, and metrics.

    docs, reference: `_dd_id`, the text column and `_dd_bytes` (ids may repeat across the two).
    """
    text, k = config.input.text_column, config.exactsubstr.min_length

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
    return runs, metrics
