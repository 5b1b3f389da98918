"""ExactSubstr's Spark steps, shared by the stage and by `contamination`: the corpus laid out in id order, cut into
chunks of pieces, the minimizers of every chunk, and the documents cut at the removed windows.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import pyarrow as pa
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from dedup_spark.columns import BYTES, CUT_BYTES, DROP, GROUP, ID, RANGE, ROUTE, SPANS, WINDOWS
from dedup_spark.exactsubstr.minimizers import minimizer_counts
from dedup_spark.exactsubstr.spans import ApplyTask
from dedup_spark.exactsubstr.tasks import MinimizerPairs
from dedup_spark.session import task_slots
from dedup_spark.sparkops import Steps, own_partitions, whole_rounds

# Smallest shipped bytes worth a merge task of their own: merge tasks stream and search about chunk_size bytes at
# a time whatever their size, so fewer, larger tasks only save fixed costs (tiny chunk sizes in tests).
MERGE_TASK_MIN_BYTES = 8 * 1024 * 1024
# Chunk ids are layout group * 2^32 + chunk number within the group.
CHUNK_BITS = 32
# What `MinimizerPairs` writes: one row per chunk and minimizer of an Arrow batch of pieces.
PAIRS_SCHEMA = "chunk long, minimizer long, copies long"
# Corpus bytes per task of `minimizer_table`: about 4 M (chunk, minimizer) rows, 100 MB of numpy arrays to sort.
MINIMIZER_TASK_BYTES = 256 * 1024 * 1024
# Narrow rows (id, size) per task of the layout's running sum.
LAYOUT_ROWS_PER_TASK = 2_000_000


class Layout(NamedTuple):
    """What `layout` returns: the placed documents and the bytes of the largest group (0 without documents)."""

    placed: DataFrame
    largest_group_bytes: int


def layout(docs: DataFrame, k: int, step: Steps, group: Column | None = None) -> Layout:
    """placed = `_dd_id, _dd_group, _dd_bytes, base`: base = bytes of the documents before this one in `_dd_id`
    order, over the whole corpus, or within each value of `group` (an integer column; chunks never mix groups).

    Chunks cut from this layout follow id order whatever the ingest shards are, and ids that sort together are
    often similar documents (paths, URLs), so more repeats stay inside one chunk and fewer bytes are shipped.
    A distributed running sum over narrow rows: ranges of ids in tasks, a running sum inside each range, and the
    ranges' totals (one number per range and group) turned into offsets on the driver. The ranged rows are
    checkpointed (step `layout_ranges`) before both sums read them: range bounds come from a sample, which can
    differ between two evaluations of the same rows, and then offsets and running sums would not fit together.
    Documents shorter than k have no window and no place in the layout.
    """
    narrow = docs.select(ID, (group if group is not None else F.lit(0)).cast("long").alias(GROUP), BYTES).filter(
        F.col(BYTES) >= k
    )
    ranges = max(task_slots(docs.sparkSession), math.ceil(narrow.count() / LAYOUT_ROWS_PER_TASK))
    ranged = step(
        "layout_ranges",
        narrow.repartitionByRange(ranges, GROUP, ID).withColumn(RANGE, F.spark_partition_id()),
    )
    in_range = Window.partitionBy(GROUP, RANGE).orderBy(ID)
    local = ranged.withColumn("before", F.sum(BYTES).over(in_range) - F.col(BYTES))
    totals = ranged.groupBy(GROUP, RANGE).agg(F.sum(BYTES).alias("bytes")).collect()
    offsets, running = [], {}
    for row in sorted(totals, key=lambda r: (r[GROUP], r[RANGE])):
        offsets.append((row[GROUP], row[RANGE], running.get(row[GROUP], 0)))
        running[row[GROUP]] = running.get(row[GROUP], 0) + row["bytes"]
    offset_rows = docs.sparkSession.createDataFrame(offsets, "_dd_group long, _dd_range int, offset long")
    placed = step(
        "layout",
        local.join(F.broadcast(offset_rows), [GROUP, RANGE]).select(
            ID, GROUP, BYTES, (F.col("offset") + F.col("before")).alias("base")
        ),
    )
    return Layout(placed, max(running.values(), default=0))


def even_chunk_size(largest_group_bytes: int, size: int, spark: SparkSession) -> int:
    """`size`, lowered so that a layout group cut into more than one chunk is cut into a multiple of the
    cluster's task slots, in chunks of equal size: on 2 cores, 185 MB in 64 MB chunks is 3 tasks taking 2 rounds
    of 64 MB each; in 4 chunks it takes 2 rounds of 46 MB."""
    chunks = math.ceil(largest_group_bytes / size)
    if chunks <= 1:
        return size
    return math.ceil(largest_group_bytes / whole_rounds(chunks, spark))


def merge_partitions(shipped_bytes: int, size: int, spark: SparkSession) -> int:
    """Merge tasks for `shipped_bytes`: one per chunk `size` (at least MERGE_TASK_MIN_BYTES each), in whole rounds
    of the task slots; 0 when nothing is shipped."""
    return whole_rounds(math.ceil(shipped_bytes / max(size, MERGE_TASK_MIN_BYTES)), spark)


def pieces(docs: DataFrame, placed: DataFrame, text_column: str, k: int, chunk_size: int) -> DataFrame:
    """`chunk, _dd_id, start, owned, data`: the window starts [start, start + owned) of a document whose byte
    position (base + start) falls in one chunk, with data = their bytes plus k-1 bytes of context."""
    windows = F.col(BYTES) - k + 1
    first = F.floor(F.col("base") / chunk_size)
    last = F.floor((F.col("base") + windows - 1) / chunk_size)
    exploded = docs.select(ID, text_column).join(placed, ID).withColumn("number", F.explode(F.sequence(first, last)))
    lo = F.greatest(F.col("number") * chunk_size - F.col("base"), F.lit(0))
    hi = F.least((F.col("number") + 1) * chunk_size - F.col("base"), windows)
    return exploded.select(
        (F.col(GROUP) * (1 << CHUNK_BITS) + F.col("number")).alias("chunk"),
        ID,
        lo.cast("long").alias("start"),
        (hi - lo).cast("long").alias("owned"),
        F.encode(text_column, "UTF-8").substr(lo + 1, hi - lo + k - 1).alias("data"),
    )


def minimizer_pairs(chunk_pieces: DataFrame, k: int, w: int) -> DataFrame:
    """(`chunk`, `minimizer`, `copies`) of every window of the pieces, one row per chunk and minimizer, partitioned by
    minimizer: a window over `minimizer` on the result (how many chunks, or which sets, have it; the copies in the
    corpus) needs no shuffle of its own. Grouping the written pairs by minimizer instead shuffled them a second time
    (300 MB of linux: 3.8 s). copies: `minimizers.superkmers_with_copies`, summed over the chunk, capped at 2."""
    copies = F.least(F.lit(2), F.sum("copies")).alias("copies")
    return _batch_pairs(chunk_pieces, k, w).repartition("minimizer").groupBy("chunk", "minimizer").agg(copies)


def minimizer_table(chunk_pieces: DataFrame, k: int, w: int, corpus_bytes: int) -> DataFrame:
    """`minimizer_pairs` with, per row, its minimizer's `chunks` (how many chunks hold it) and `corpus_copies` (the
    sum of its copies): (chunk, minimizer, copies, chunks, corpus_copies). Each task gets every row of its
    minimizers (about MINIMIZER_TASK_BYTES of the corpus' `corpus_bytes` per task) and counts them in numpy
    (`minimizers.minimizer_counts`): Spark's aggregation, then a sort for a window over minimizer, took 15 s of
    the 29 s this step took on 1 GB of linux."""
    tasks = whole_rounds(max(1, math.ceil(corpus_bytes / MINIMIZER_TASK_BYTES)), chunk_pieces.sparkSession)
    return (
        _batch_pairs(chunk_pieces, k, w)
        .repartition(tasks, "minimizer")
        .mapInArrow(_count_minimizers, f"{PAIRS_SCHEMA}, chunks long, corpus_copies long")
    )


def _batch_pairs(chunk_pieces: DataFrame, k: int, w: int) -> DataFrame:
    """`MinimizerPairs` of the pieces (PAIRS_SCHEMA)."""
    return chunk_pieces.select("chunk", "owned", "data").mapInArrow(MinimizerPairs(k, w), PAIRS_SCHEMA)


def _count_minimizers(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    batches = list(batches)  # none at all for an empty partition
    if batches:
        table = pa.Table.from_batches(batches)
        columns = [table.column(name).to_numpy() for name in ("chunk", "minimizer", "copies")]
        names = ["chunk", "minimizer", "copies", "chunks", "corpus_copies"]
        yield from pa.table(dict(zip(names, minimizer_counts(*columns), strict=True))).to_batches(1 << 20)


def per_chunk(
    chunk_pieces: DataFrame, minimizers: DataFrame, function: Callable[..., Any], schema: str | T.StructType
) -> DataFrame:
    """`chunk_pieces.groupBy("chunk").cogroup(minimizers.groupBy("chunk")).applyInPandas(function, schema)`, with
    every chunk in a task of its own (`own_partitions`), in chunk order: chunks are cut to fill whole rounds of
    the task slots, and tasks of one chunk each keep them whole."""
    spark = chunk_pieces.sparkSession
    chunks = sorted(row["chunk"] for row in chunk_pieces.select("chunk").distinct().collect())
    routes = own_partitions(chunks)

    def routed(frame: DataFrame) -> DataFrame:  # a frame of routes per side: one frame on both is a self-join
        side = F.broadcast(spark.createDataFrame(routes, f"chunk long, {ROUTE} long"))
        return frame.join(side, "chunk").repartition(max(len(chunks), 1), ROUTE)

    grouped = routed(chunk_pieces).groupBy(ROUTE).cogroup(routed(minimizers).groupBy(ROUTE))
    return grouped.applyInPandas(function, schema)


SPAN_TYPE = T.ArrayType(T.StructType([T.StructField("start", T.IntegerType()), T.StructField("end", T.IntegerType())]))


def cut(
    docs: DataFrame, runs: DataFrame, text_column: str, k: int, min_remaining_chars: int, few_runs: bool = False
) -> DataFrame:
    """The documents that have window-start runs (`_dd_id, start, end`), cut (`spans.ApplyTask`): their columns
    (text cut, `_dd_bytes` updated) plus `_dd_spans` (code point spans removed), `_dd_cut_bytes` and `_dd_drop`
    (fewer than `min_remaining_chars` non-space characters left).

    few_runs: the runs are sent whole to every task (a broadcast, about 30 bytes a run), so the documents are cut
    where they are read instead of all being shuffled to meet them: on a cluster, the corpus does not cross the
    network. Locally (300 MB of linux, 1.1 M runs, the cut alone, alternating in one session) it measured 5.9
    against 7.8-8.4 s in one run, and 9.1 / 10.0, 7.1 / 6.4, 6.5 / 6.4 s (broadcast / shuffled) in another."""
    windows = runs.groupBy(ID).agg(F.collect_list(F.struct("start", "end")).alias(WINDOWS))
    windows = F.broadcast(windows) if few_runs else windows
    columns = tuple(docs.columns)
    task = ApplyTask(columns, text_column, k, min_remaining_chars)
    schema = T.StructType(
        [
            *docs.schema.fields,
            T.StructField(SPANS, SPAN_TYPE),
            T.StructField(CUT_BYTES, T.LongType()),
            T.StructField(DROP, T.BooleanType()),
        ]
    )
    return docs.join(windows, ID).select(*columns, WINDOWS).mapInArrow(task, schema)
