"""ExactSubstr against a reference set that is never cut (`run --index`): the batch's windows that occur in it.

Contract: with the reference's texts first in corpus order (and never cut), keep_first over reference + batch
removes from a batch document exactly the windows whose bytes occur earlier: in the reference (anywhere), or
earlier in the batch; strike_all removes the windows that occur twice anywhere. So the batch's cut is the union
of (a) the stage's own runs over the batch alone and (b) the batch's windows shared with the reference. Only (b)
is computed here; the stage adds it to its runs (`cut` merges overlapping runs, so the union needs no care).

Two ways to find (b):
- stored super-k-mers (the index stores them with each document, `doc_superkmers`, made with the same
  min_length and width, each with a digest of its bytes and its context keys, `context_keys.py`):
  1. the batch's super-k-mers, with digests and keys (`DocSuperkmerRows`);
  2. the stored super-k-mers holding one of the batch's keys: the only ones that can share a window with it;
  3. a batch super-k-mer whose bytes one of them holds (same minimizer, same digest) is shared whole;
  4. the other batch super-k-mers with a key among those, and the stored ones holding one of their keys, are cut
     out of their texts and merged (`contamination.search_shipped`), which compares their windows byte by byte.
  Exact: a window shared with the batch lies in one batch super-k-mer and one stored super-k-mer (the stored ones
  hold every distinct super-k-mer of the reference, below) that share the window's key; if the batch one is not
  shared whole, both are merged, and the merge finds the window (it depends on the window's bytes only, so it has
  one minimizer at both places). The cost follows the text the batch shares with the reference, deduplicated: a
  licence header in 80,000 documents is read once, and the inside of a long shared passage is settled by digests
  without being read at all; only the super-k-mers at its edges are merged.
- otherwise (no stored super-k-mers, or made with other settings): `contamination.shared_windows` over the whole
  reference as its train set and the batch as its eval set.

`doc_superkmers` keeps, of identical super-k-mers (same minimizer, same bytes: compared by a 128-bit BLAKE2b
digest of the bytes), the one of the first document in id order. Identical bytes hold identical windows, so no
distinct window is lost. Two different super-k-mers with one minimizer and one digest (probability about 2^-128
per pair) would lose the second one's windows from the search, or (step 3) cut a batch super-k-mer whose bytes
the reference does not hold.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from dedup_spark.columns import BYTES, EVAL_PREFIX, ID, SUPERKMERS, TRAIN_PREFIX
from dedup_spark.config import RunConfig
from dedup_spark.exactsubstr.contamination import search_shipped, shared_windows
from dedup_spark.exactsubstr.context_keys import superkmers_with_keys
from dedup_spark.sparkops import Steps, small_shuffles

SUPERKMERS_TYPE = "array<struct<start:int,end:int,minimizer:bigint,digest:binary,keys:array<int>>>"
ROWS_SCHEMA = f"{ID} string, minimizer long, start int, end int, digest binary, keys array<int>"
# The batch's distinct keys are broadcast to the scan of the stored super-k-mers up to this many.
BROADCAST_KEYS = 16_000_000
# The documents' super-k-mers to cut out are broadcast to the scan of their texts up to this size.
BROADCAST_HITS_BYTES = 128 * 1024 * 1024


@dataclass(frozen=True)
class DocSuperkmerRows:
    """mapInArrow function: documents (`_dd_id`, `data` = UTF-8 bytes) -> one row per super-k-mer (ROWS_SCHEMA):
    `minimizer`, `start`, `end` (window starts [start, end)), `digest` (BLAKE2b-128 of its bytes) and `keys`
    (`context_keys.superkmers_with_keys`)."""

    k: int
    w: int

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        k = self.k
        for batch in batches:
            ids = batch.column(ID).to_pylist()
            datas = batch.column("data").to_pylist()
            runs, key_run, keys = superkmers_with_keys(datas, k, self.w)
            pieces, starts, ends = runs.piece.tolist(), runs.start.tolist(), runs.end.tolist()
            digests = [
                hashlib.blake2b(datas[p][a : b + k - 1], digest_size=16).digest()
                for p, a, b in zip(pieces, starts, ends, strict=True)
            ]
            offsets = np.searchsorted(key_run, np.arange(len(pieces) + 1)).astype(np.int32)
            yield pa.RecordBatch.from_arrays(
                [
                    pa.array([ids[p] for p in pieces], pa.string()),
                    pa.array(runs.minimizer.view(np.int64)),
                    pa.array(runs.start.astype(np.int32)),
                    pa.array(runs.end.astype(np.int32)),
                    pa.array(digests, pa.binary()),
                    pa.ListArray.from_arrays(pa.array(offsets), pa.array(keys)),
                ],
                names=[ID, "minimizer", "start", "end", "digest", "keys"],
            )


def superkmer_rows(docs: DataFrame, text_column: str, k: int, w: int) -> DataFrame:
    """ROWS_SCHEMA rows of every super-k-mer of `docs` (`_dd_id`, the text column, `_dd_bytes`)."""
    rows = docs.filter(F.col(BYTES) >= k).select(ID, F.encode(text_column, "UTF-8").alias("data"))
    return rows.mapInArrow(DocSuperkmerRows(k, w), ROWS_SCHEMA)


def doc_superkmers(docs: DataFrame, text_column: str, k: int, w: int) -> DataFrame:
    """`_dd_id, _dd_superkmers`: the super-k-mers (start, end, minimizer, digest, keys) each document holds first
    in id order among the identical ones of `docs` (see the module docstring); sorted by start. Documents shorter
    than k, and those all of whose super-k-mers an earlier document holds, have no row."""
    found = superkmer_rows(docs, text_column, k, w)
    first = found.groupBy("minimizer", "digest").agg(F.min(F.struct(ID, "start", "end", "keys")).alias("first"))
    stored = F.struct("first.start", "first.end", "minimizer", "digest", "first.keys").alias("s")
    held = first.select(F.col(f"first.{ID}").alias(ID), stored)
    return held.groupBy(ID).agg(F.array_sort(F.collect_list("s")).alias(SUPERKMERS))


def runs_shared_with(
    spark: SparkSession, docs: DataFrame, reference: DataFrame, config: RunConfig, work_dir: str
) -> tuple[DataFrame, dict[str, Any]]:
    """Window-start runs `_dd_id, start, end` of `docs` whose windows occur in `reference`, and metrics.

    docs, reference: `_dd_id`, the text column and `_dd_bytes` (ids may repeat across the two); the reference may
    carry `_dd_superkmers` (`doc_superkmers`), used when it does.
    """
    k = config.exactsubstr.min_length
    if SUPERKMERS in reference.columns:
        runs, metrics = _runs_from_stored(spark, docs, reference, config, work_dir)
    else:
        text = config.input.text_column

        def tagged(frame: DataFrame, prefix: str) -> DataFrame:
            return frame.select(F.concat(F.lit(prefix), F.col(ID)).alias(ID), text, BYTES)

        both = tagged(reference, TRAIN_PREFIX).unionByName(tagged(docs, EVAL_PREFIX))
        windows, metrics = shared_windows(spark, both, config, work_dir)
        runs = windows.filter(F.col(ID).startswith(EVAL_PREFIX)).select(_unprefixed(EVAL_PREFIX), "start", "end")
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
    spark: SparkSession, docs: DataFrame, reference: DataFrame, config: RunConfig, work_dir: str
) -> tuple[DataFrame, dict[str, Any]]:
    """The stored-super-k-mer search of the module docstring."""
    ex = config.exactsubstr
    k, text_column = ex.min_length, config.input.text_column
    step = Steps(spark, work_dir)
    batch = step("batch_superkmers", superkmer_rows(docs, text_column, k, ex.width))  # 1.
    # The joins below handle about one row per batch super-k-mer: shuffles sized to that, not to the session's.
    with small_shuffles(spark, step.figures["batch_superkmers"]["rows"]):
        keys = step("batch_keys", batch.select(F.explode("keys").alias("key")).distinct())
        if step.figures["batch_keys"]["rows"] <= BROADCAST_KEYS:
            keys = F.broadcast(keys)
        stored = reference.select(ID, F.explode(SUPERKMERS).alias("s")).select(
            ID, "s.minimizer", "s.start", "s.end", "s.digest", F.explode("s.keys").alias("key")
        )
        candidates = step("index_candidates", stored.join(keys, "key", "left_semi"))  # 2.
        matched = candidates.select("minimizer", "digest").distinct()
        whole = step(  # 3.
            "shared_whole", batch.join(matched, ["minimizer", "digest"], "left_semi").select(ID, "start", "end")
        )
        rest = batch.join(whole, [ID, "start"], "left_anti").select(
            ID, "minimizer", "start", "end", F.explode("keys").alias("key")
        )
        common = step("shared_keys", rest.select("key").intersect(candidates.select("key")))  # 4.
        superkmer = [ID, "minimizer", "start", "end"]
        from_index = candidates.join(common, "key", "left_semi").select(*superkmer).distinct()
        from_index = step("index_superkmers", from_index)
        from_batch = step("batch_merged", rest.join(common, "key", "left_semi").select(*superkmer).distinct())
        shipped = step(
            "shipped",
            _cut_out(step, "index", reference, text_column, from_index, k, TRAIN_PREFIX).unionByName(
                _cut_out(step, "batch", docs, text_column, from_batch, k, EVAL_PREFIX)
            ),
        )
    windows, totals = search_shipped(spark, step, shipped, k, ex.chunk_size)
    runs = windows.filter(F.col(ID).startswith(EVAL_PREFIX)).select(_unprefixed(EVAL_PREFIX), "start", "end")
    metrics = {
        "min_length": k,
        "batch_superkmers_shared_whole": step.figures["shared_whole"]["rows"],
        "index_superkmers_searched": step.figures["index_superkmers"]["rows"],
        "index_documents_searched": step.figures["index_hits"]["rows"],  # one row per document
        **totals,
        "steps": step.table(),
    }
    whole_runs = whole.select(ID, F.col("start").cast("long"), F.col("end").cast("long"))
    return runs.unionByName(whole_runs), metrics


def _cut_out(
    step: Steps, name: str, frame: DataFrame, text_column: str, superkmers: DataFrame, k: int, prefix: str
) -> DataFrame:
    """SHIPPED_SCHEMA rows of `superkmers` (`_dd_id, minimizer, start, end` of documents of `frame`), their bytes
    cut out of the texts. One row per document with its super-k-mers, broadcast to the scan of the texts when
    small: the texts are read once and never shuffled, each encoded once (not once per super-k-mer)."""
    by_doc = superkmers.groupBy(ID).agg(F.collect_list(F.struct("minimizer", "start", "end")).alias("hits"))
    by_doc = step(f"{name}_hits", by_doc)
    if step.figures[f"{name}_hits"]["bytes"] <= BROADCAST_HITS_BYTES:
        by_doc = F.broadcast(by_doc)
    data = F.col("utf8").substr(F.col("h.start") + 1, F.col("h.end") - F.col("h.start") + (k - 1))
    return (
        frame.select(ID, text_column)
        .join(by_doc, ID)
        .select(ID, F.encode(text_column, "UTF-8").alias("utf8"), "hits")
        .select(ID, "utf8", F.explode("hits").alias("h"))
        .select("h.minimizer", data.alias("data"), F.concat(F.lit(prefix), ID).alias(ID), "h.start", "h.end")
    )


def _unprefixed(prefix: str) -> Column:
    return F.expr(f"substring({ID}, {len(prefix) + 1})").alias(ID)
