"""ExactSubstr against a reference set that is never cut (`run --index`): the batch's windows that occur in it.

Contract: with the reference's texts first in corpus order (and never cut), keep_first over reference + batch
removes from a batch document exactly the windows whose bytes occur earlier: in the reference (anywhere), or
earlier in the batch; strike_all removes the windows that occur twice anywhere. So the batch's cut is the union
of (a) the stage's own runs over the batch alone and (b) the batch's windows shared with the reference. Only (b)
is computed here; the stage adds it to its runs (`cut` merges overlapping runs, so the union needs no care).

Two ways to find (b):
- stored super-k-mers (the index stores them with each document, `doc_superkmers`, made with the same
  min_length and width): only the reference's super-k-mers whose minimizer is one of the batch's are read, cut
  out of their documents' texts and merged with the batch's super-k-mers of the same minimizers
  (`contamination.search_shipped`). Exact: a window shared with the batch has one minimizer at both occurrences
  (it depends on the window's bytes only), every window lies in one super-k-mer of its document, and the stored
  super-k-mers hold every distinct super-k-mer of the reference (below). The cost follows the batch and the
  reference's text that shares minimizers with it, deduplicated: a licence header in 80,000 documents is read once.
- otherwise (no stored super-k-mers, or made with other settings): `contamination.shared_windows` over the whole
  reference as its train set and the batch as its eval set.

`doc_superkmers` keeps, of identical super-k-mers (same minimizer, same bytes: compared by a 128-bit BLAKE2b
digest of the bytes), the one of the first document in id order. Identical bytes hold identical windows, so no
distinct window is lost; two different super-k-mers with one minimizer and one digest (probability about 2^-128
per pair) would lose the second one's windows from the search.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from dedup_spark.columns import BYTES, EVAL_PREFIX, ID, SUPERKMERS, TRAIN_PREFIX
from dedup_spark.config import RunConfig
from dedup_spark.exactsubstr.contamination import SHIPPED_SCHEMA, ShipTask, search_shipped, shared_windows
from dedup_spark.exactsubstr.minimizers import superkmers_batch
from dedup_spark.sparkops import Steps

SUPERKMERS_TYPE = "array<struct<start:int,end:int,minimizer:bigint>>"
# The batch's distinct minimizers are broadcast to the scan of the stored super-k-mers up to this many.
BROADCAST_MINIMIZERS = 8_000_000
# The index documents' hits (their super-k-mers to read) are broadcast to the scan of the texts up to this size.
BROADCAST_HITS_BYTES = 128 * 1024 * 1024


@dataclass(frozen=True)
class DocSuperkmerRows:
    """mapInArrow function: documents (`_dd_id`, `data` = UTF-8 bytes) -> one row per super-k-mer: `_dd_id`,
    `minimizer`, `start`, `end` (window starts [start, end)) and `digest` (BLAKE2b-128 of its bytes)."""

    k: int
    w: int

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        k = self.k
        for batch in batches:
            ids = batch.column(ID).to_pylist()
            datas = batch.column("data").to_pylist()
            runs = superkmers_batch(datas, [len(d) - k + 1 for d in datas], k, self.w)
            pieces, starts, ends = runs.piece.tolist(), runs.start.tolist(), runs.end.tolist()
            digests = [
                hashlib.blake2b(datas[p][a : b + k - 1], digest_size=16).digest()
                for p, a, b in zip(pieces, starts, ends, strict=True)
            ]
            yield pa.RecordBatch.from_arrays(
                [
                    pa.array([ids[p] for p in pieces], pa.string()),
                    pa.array(runs.minimizer.view(np.int64)),
                    pa.array(runs.start.astype(np.int32)),
                    pa.array(runs.end.astype(np.int32)),
                    pa.array(digests, pa.binary()),
                ],
                names=[ID, "minimizer", "start", "end", "digest"],
            )


def doc_superkmers(docs: DataFrame, text_column: str, k: int, w: int) -> DataFrame:
    """`_dd_id, _dd_superkmers`: the super-k-mers (start, end, minimizer) each document holds first in id order
    among the identical ones of `docs` (see the module docstring); sorted by start. Documents shorter than k, and
    those all of whose super-k-mers an earlier document holds, have no row."""
    rows = docs.filter(F.col(BYTES) >= k).select(ID, F.encode(text_column, "UTF-8").alias("data"))
    schema = f"{ID} string, minimizer long, start int, end int, digest binary"
    found = rows.mapInArrow(DocSuperkmerRows(k, w), schema)
    first = found.groupBy("minimizer", "digest").agg(F.min(F.struct(ID, "start", "end")).alias("first"))
    held = first.select(F.col(f"first.{ID}").alias(ID), F.struct("first.start", "first.end", "minimizer").alias("s"))
    return held.groupBy(ID).agg(F.array_sort(F.collect_list("s")).alias(SUPERKMERS))


def runs_shared_with(
    spark: SparkSession,
    docs: DataFrame,
    reference: DataFrame,
    config: RunConfig,
    work_dir: str,
    batch_pieces: DataFrame | None = None,
    batch_pairs: DataFrame | None = None,
) -> tuple[DataFrame, dict[str, Any]]:
    """Window-start runs `_dd_id, start, end` of `docs` whose windows occur in `reference`, and metrics.

    docs, reference: `_dd_id`, the text column and `_dd_bytes` (ids may repeat across the two); the reference may
    carry `_dd_superkmers` (`doc_superkmers`), used with the batch's pieces and (chunk, minimizer) pairs as the
    stage laid them out (`steps.pieces`, `steps.minimizer_pairs`).
    """
    k = config.exactsubstr.min_length
    if SUPERKMERS in reference.columns and batch_pieces is not None and batch_pairs is not None:
        runs, metrics = _runs_from_stored(spark, reference, config, work_dir, batch_pieces, batch_pairs)
    else:
        text = config.input.text_column

        def tagged(frame: DataFrame, prefix: str) -> DataFrame:
            return frame.select(F.concat(F.lit(prefix), F.col(ID)).alias(ID), text, BYTES)

        both = tagged(reference, TRAIN_PREFIX).unionByName(tagged(docs, EVAL_PREFIX))
        windows, metrics = shared_windows(spark, both, config, work_dir)
        runs = windows.filter(F.col(ID).startswith(EVAL_PREFIX)).select(
            F.expr(f"substring({ID}, {len(EVAL_PREFIX) + 1})").alias(ID), "start", "end"
        )
        metrics["index_documents_searched"] = None  # every one: no stored super-k-mers of these settings
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


def _runs_from_stored(
    spark: SparkSession,
    reference: DataFrame,
    config: RunConfig,
    work_dir: str,
    batch_pieces: DataFrame,
    batch_pairs: DataFrame,
) -> tuple[DataFrame, dict[str, Any]]:
    """The stored-super-k-mer search of the module docstring."""
    ex = config.exactsubstr
    k, text_column = ex.min_length, config.input.text_column
    step = Steps(spark, work_dir)
    wanted = step("batch_minimizers", batch_pairs.select("minimizer").distinct())
    if step.figures["batch_minimizers"]["rows"] <= BROADCAST_MINIMIZERS:
        wanted = F.broadcast(wanted)
    stored = reference.select(ID, F.explode(SUPERKMERS).alias("s")).select(ID, "s.minimizer", "s.start", "s.end")
    hits = step("index_superkmers", stored.join(wanted, "minimizer", "left_semi"))
    # One row per index document with its hits, broadcast to the scan of the index texts when small: the texts
    # are read once and never shuffled.
    by_doc = hits.groupBy(ID).agg(F.collect_list(F.struct("minimizer", "start", "end")).alias("hits"))
    by_doc = step("index_hits", by_doc)
    if step.figures["index_hits"]["bytes"] <= BROADCAST_HITS_BYTES:
        by_doc = F.broadcast(by_doc)
    # Each text encoded once, before its hits are exploded (not once per hit).
    data = F.col("utf8").substr(F.col("h.start") + 1, F.col("h.end") - F.col("h.start") + (k - 1))
    from_index = (
        reference.select(ID, text_column)
        .join(by_doc, ID)
        .select(ID, F.encode(text_column, "UTF-8").alias("utf8"), "hits")
        .select(ID, "utf8", F.explode("hits").alias("h"))
        .select("h.minimizer", data.alias("data"), F.concat(F.lit(TRAIN_PREFIX), ID).alias(ID), "h.start", "h.end")
    )
    shared = hits.select("minimizer").distinct()
    pairs = batch_pairs.join(shared, "minimizer").select("chunk", "minimizer")
    from_batch = (
        batch_pieces.groupBy("chunk")
        .cogroup(pairs.groupBy("chunk"))
        .applyInPandas(ShipTask(k, ex.width).udf(), SHIPPED_SCHEMA)
        .withColumn(ID, F.concat(F.lit(EVAL_PREFIX), ID))
    )
    shipped = step("shipped", from_index.unionByName(from_batch))
    windows, totals = search_shipped(spark, step, shipped, k, ex.chunk_size)
    runs = windows.filter(F.col(ID).startswith(EVAL_PREFIX)).select(
        F.expr(f"substring({ID}, {len(EVAL_PREFIX) + 1})").alias(ID), "start", "end"
    )
    metrics = {
        "min_length": k,
        "index_superkmers_searched": step.figures["index_superkmers"]["rows"],
        "index_documents_searched": step.figures["index_hits"]["rows"],  # one row per document
        **totals,
        "steps": step.table(),
    }
    return runs, metrics
