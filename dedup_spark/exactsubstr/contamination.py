"""Exact contamination: the k-byte windows of one set (eval) that occur in the other (train), with suffix arrays.

Contract: a window is k = `exactsubstr.min_length` consecutive UTF-8 bytes inside one document. A window of an
eval document is *shared* iff the same k bytes are a window of some train document; symmetrically for train
windows (used to clean the train set). Shared windows form maximal byte runs, widened to whole characters and
reported as code point spans, exactly as ExactSubstr's removal spans (`spans.py`).

Documents of both sets come in one DataFrame whose `_dd_id` starts with "0:" (train) or "1:" (eval); the set is
the layout's group, so every chunk of the ExactSubstr layout holds one set only.
Steps (each written under the work folder and read back):
1. layout, pieces  as ExactSubstr (`steps.layout`, `steps.pieces`).
2. minimizers      distinct (chunk, minimizer) of every window, with the OR of the set bits of the minimizer's
                   chunks; a minimizer is *shared* if it occurs in a train chunk and in an eval chunk.
3. ship            per chunk, in a task of its own, the super-k-mers whose minimizer is shared (`ShipTask`).
4. merge           the shipped super-k-mers hash-partitioned by minimizer and sorted; identical ones are folded
                   into one representative carrying the OR of their sets' bits and the list of its copies; the
                   representatives are searched with `find_repeats(piece_sets=...)` (`SharedMergeTask`).

Why it is exact: a shared window has the same minimizer at its train and its eval occurrence, so that minimizer
is shared and both occurrences are shipped into the same merge task, which searches all super-k-mers of a
minimizer at once. Chunks are single-set, so a chunk's own suffix array could never find a shared window: unlike
ExactSubstr there is no chunk pass, and windows whose minimizer occurs in one set only are never shipped. A folded
representative holding copies from both sets is shared as a whole (every window occurs in both sets); otherwise
its copies are identical bytes, so each copy gets the representative's verdict, mapped to its own offsets; a
both-set representative also counts for both sets in the search, so other super-k-mers sharing windows with it
are found. Windows are compared as bytes, never by fingerprint.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from dedup_spark.columns import EVAL_PREFIX, ID, TRAIN_PREFIX
from dedup_spark.config import RunConfig
from dedup_spark.exactsubstr.steps import CHUNK_BITS, layout, merge_partitions, minimizer_pairs, per_chunk, pieces
from dedup_spark.exactsubstr.suffix_array import PieceColumns, find_repeats
from dedup_spark.exactsubstr.tasks import limit_openmp_threads, piece_columns, superkmers_to_ship
from dedup_spark.sparkops import Steps

TRAIN_BIT, EVAL_BIT = 1, 2
SHIPPED_SCHEMA = f"minimizer long, data binary, {ID} string, start long, end long"
WINDOWS_SCHEMA = f"{ID} string, start long, end long"


def set_bits(ids: list[str]) -> np.ndarray:
    """Set bit of each prefixed id: TRAIN_BIT for "0:...", EVAL_BIT for "1:..."."""
    return np.fromiter((TRAIN_BIT if i.startswith(TRAIN_PREFIX) else EVAL_BIT for i in ids), np.int64, len(ids))


@dataclass(frozen=True)
class ShipTask:
    """cogroup(...).applyInPandas function: one chunk's pieces + its shared minimizers -> SHIPPED_SCHEMA rows."""

    k: int
    w: int

    def udf(self) -> Callable[[pd.DataFrame, pd.DataFrame], pd.DataFrame]:
        """The function for applyInPandas (a partial: Spark reads the argument count from its signature)."""
        return partial(_ship_udf, self)

    def run(
        self, ids: list[str], starts: np.ndarray, datas: list[bytes], owned: np.ndarray, shared: np.ndarray
    ) -> pd.DataFrame:
        """Super-k-mers (minimizer, data, _dd_id, start, end) of the pieces whose minimizer is in `shared`."""
        found: tuple = ([], [], [], np.empty(0, np.uint64), [])
        if ids and len(shared):
            found = superkmers_to_ship(ids, starts, datas, owned, shared, self.k, self.w)
        found_ids, start, end, minimizer, data = found
        return pd.DataFrame(
            {
                "minimizer": pd.Series(np.asarray(minimizer, np.uint64).view(np.int64), dtype=np.int64),
                "data": pd.Series(data, dtype=object),
                ID: pd.Series(found_ids, dtype=object),
                "start": pd.Series(start, dtype=np.int64),
                "end": pd.Series(end, dtype=np.int64),
            }
        )


def _ship_udf(task: ShipTask, pieces: pd.DataFrame, shared: pd.DataFrame) -> pd.DataFrame:
    return task.run(*piece_columns(pieces, shared))


class _Reps:
    """Representatives of identical super-k-mers: bytes, minimizer, OR of set bits, and every copy (id, start)."""

    def __init__(self) -> None:
        self.minimizer: list[int] = []
        self.data: list[bytes] = []
        self.mask: list[int] = []
        self.members: list[list[tuple[str, int]]] = []
        self.bytes = 0

    def add(self, minimizer: int, data: bytes, bit: int, doc_id: str, start: int) -> None:
        self.minimizer.append(minimizer)
        self.data.append(data)
        self.mask.append(bit)
        self.members.append([(doc_id, start)])
        self.bytes += len(data)


@dataclass(frozen=True)
class SharedMergeTask:
    """mapInArrow function over shipped super-k-mers sorted by (minimizer, data, _dd_id, start) -> WINDOWS_SCHEMA.

    Emits the window-start runs [start, end) of documents (prefixed ids, both sets) whose windows are shared
    (see the module docstring). Complete minimizer groups are searched about `flush_bytes` at a time.
    """

    k: int
    flush_bytes: int

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        limit_openmp_threads()
        reps = _Reps()
        for batch in batches:
            mins = batch.column("minimizer").to_pylist()
            datas = batch.column("data").to_pylist()
            ids = batch.column(ID).to_pylist()
            starts = batch.column("start").to_pylist()
            bits = set_bits(ids).tolist()
            for minimizer, data, doc_id, start, bit in zip(mins, datas, ids, starts, bits, strict=True):
                if reps.data and reps.minimizer[-1] == minimizer and reps.data[-1] == data:
                    reps.members[-1].append((doc_id, start))
                    reps.mask[-1] |= bit
                    continue
                if reps.bytes >= self.flush_bytes and reps.minimizer[-1] != minimizer:
                    yield self.search(reps)  # every group seen so far is complete
                    reps = _Reps()
                reps.add(minimizer, data, bit, doc_id, start)
        if reps.data:
            yield self.search(reps)

    def search(self, reps: _Reps) -> pa.RecordBatch:
        """Shared window runs of every copy of these representatives (document-relative starts)."""
        out_ids: list[str] = []
        out_starts: list[int] = []
        out_ends: list[int] = []
        owned = [len(d) - self.k + 1 for d in reps.data]
        for i in np.flatnonzero(np.asarray(reps.mask) == TRAIN_BIT | EVAL_BIT).tolist():
            for doc_id, start in reps.members[i]:  # copies in both sets: every window is shared
                out_ids.append(doc_id)
                out_starts.append(start)
                out_ends.append(start + owned[i])
        first_ids = [m[0][0] for m in reps.members]
        uniq, rank = np.unique(np.asarray(first_ids, dtype=object), return_inverse=True)
        first_starts = [m[0][1] for m in reps.members]
        result = find_repeats(PieceColumns(rank, first_starts, reps.data, owned), self.k, top_n=0, piece_sets=reps.mask)
        shared = result.shared
        assert shared is not None
        for piece, lo, hi in zip(shared.piece.tolist(), shared.start.tolist(), shared.end.tolist(), strict=True):
            if reps.mask[piece] == TRAIN_BIT | EVAL_BIT:
                continue  # reported whole above
            for doc_id, start in reps.members[piece]:
                out_ids.append(doc_id)
                out_starts.append(start + lo)
                out_ends.append(start + hi)
        del uniq
        return pa.RecordBatch.from_arrays(
            [pa.array(out_ids, pa.string()), pa.array(out_starts, pa.int64()), pa.array(out_ends, pa.int64())],
            names=[ID, "start", "end"],
        )


def shared_windows(
    spark: SparkSession, docs: DataFrame, config: RunConfig, work_dir: str
) -> tuple[DataFrame, dict[str, Any]]:
    """Window-start runs shared between the sets, and metrics.

    docs: both sets, columns text, `_dd_id` (prefixed "0:"/"1:") and `_dd_bytes`.
    Returns (`_dd_id, start, end` runs, possibly overlapping; metrics).
    """
    ex = config.exactsubstr
    k, size, text_column = ex.min_length, ex.chunk_size, config.input.text_column
    step = Steps(spark, work_dir)

    placed = layout(docs, k, step, group=F.col(ID).startswith(EVAL_PREFIX)).placed
    chunk_pieces = step("pieces", pieces(docs, placed, text_column, k, size))
    eval_chunk = F.col("chunk") >= F.lit(1 << CHUNK_BITS)  # group 1: the eval set
    bits = F.bit_or(F.when(eval_chunk, EVAL_BIT).otherwise(TRAIN_BIT)).over(Window.partitionBy("minimizer"))
    pairs = step("minimizers", minimizer_pairs(chunk_pieces, k, ex.width).withColumn("bits", bits))
    shared_pairs = pairs.filter(F.col("bits") == TRAIN_BIT | EVAL_BIT).select("chunk", "minimizer")
    ship = ShipTask(k, ex.width)
    shipped = step(
        "shipped",
        per_chunk(chunk_pieces, shared_pairs, ship.udf(), SHIPPED_SCHEMA),
    )
    windows, totals = search_shipped(spark, step, shipped, k, size)
    metrics = {
        "min_length": k,
        "chunks": chunk_pieces.select("chunk").distinct().count(),
        "shared_minimizers": shared_pairs.select("minimizer").distinct().count(),
        **totals,
        "steps": step.table(),
    }
    return windows, metrics


def search_shipped(
    spark: SparkSession, step: Steps, shipped: DataFrame, k: int, size: int
) -> tuple[DataFrame, dict[str, int]]:
    """Step 4 (merge) over shipped super-k-mers of both sets (SHIPPED_SCHEMA, prefixed ids): the window-start runs
    shared between the sets, and the counts of what was shipped."""
    totals = shipped.agg(
        F.count(F.lit(1)).alias("superkmers"), F.sum(F.col("end") - F.col("start") + (k - 1)).alias("bytes")
    ).first()
    shipped_bytes = int(totals["bytes"] or 0)
    partitions = merge_partitions(shipped_bytes, size, spark)
    if partitions:
        windows = step(
            "windows",
            shipped.repartition(partitions, "minimizer")
            .sortWithinPartitions("minimizer", "data", ID, "start")
            .mapInArrow(SharedMergeTask(k, size), WINDOWS_SCHEMA),
        )
    else:
        windows = spark.createDataFrame([], WINDOWS_SCHEMA)
    counts = {
        "superkmers_shipped": int(totals["superkmers"]),
        "bytes_shipped": shipped_bytes,
        "merge_partitions": partitions,
    }
    return windows, counts
