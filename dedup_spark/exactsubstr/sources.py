"""Which train documents hold an eval document's exact contamination (`dedup-spark contamination`).

An eval document's shared window starts (`contamination.shared_windows`) form maximal runs; each run's
first window (its k = exactsubstr.min_length bytes) occurs in train. The train documents named for the eval
document are those that contain the first window of one of its runs, found by an Aho-Corasick scan
(`ahocorasick_rs`, bytes patterns, overlapping matches) of the train documents that have shared windows at all
(every train document holding such a window is one of them). Every contaminated eval document gets at least one
train document; a train document that shares only text in the middle of a run is not named. Matches are exact
byte comparisons, never fingerprints.

The run-start windows are collected on the driver and shipped to the scanning tasks: k bytes per run of the eval
set, which is small next to train (an eval set with 1 million contaminated runs ships 100 MB at k = 100).
"""

from __future__ import annotations

from collections.abc import Iterator

import ahocorasick_rs
import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from dedup_spark.columns import ID

RUN_STARTS_SCHEMA = f"{ID} string, window binary"
FOUND_SCHEMA = "train_id string, window binary"


def run_start_windows(text_column: str, k: int):
    """mapInArrow function: (_dd_id, text, runs: [(start, end)] of window starts) -> one row per maximal run with
    the k bytes that start it."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            ids, windows = [], []
            columns = (batch.column(name).to_pylist() for name in (ID, text_column, "runs"))
            for doc_id, text, runs in zip(*columns, strict=True):
                data = text.encode("utf-8")
                end = -1
                for r in sorted(runs, key=lambda r: (r["start"], r["end"])):
                    if r["start"] > end:  # not touching the run before: a new maximal run starts here
                        ids.append(doc_id)
                        windows.append(data[r["start"] : r["start"] + k])
                    end = max(end, r["end"])
            yield pa.RecordBatch.from_arrays([pa.array(ids, pa.string()), pa.array(windows, pa.binary())],
                                             names=[ID, "window"])  # fmt: skip

    return run


def find_windows(patterns: list[bytes], text_column: str):
    """mapInArrow function: (_dd_id, text) -> (train_id, window) for every pattern a document contains."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        searcher = ahocorasick_rs.BytesAhoCorasick(patterns)
        for batch in batches:
            ids, found = [], []
            columns = (batch.column(name).to_pylist() for name in (ID, text_column))
            for doc_id, text in zip(*columns, strict=True):
                hits = {index for index, _, _ in searcher.find_matches_as_indexes(text.encode(), overlapping=True)}
                ids += [doc_id] * len(hits)
                found += [patterns[i] for i in sorted(hits)]
            yield pa.RecordBatch.from_arrays([pa.array(ids, pa.string()), pa.array(found, pa.binary())],
                                             names=["train_id", "window"])  # fmt: skip

    return run


def exact_sources(
    eval_docs: DataFrame, train_docs: DataFrame, windows: DataFrame, text_column: str, k: int
) -> DataFrame:
    """(_dd_id of an eval document, train_id) pairs, distinct (see the module docstring).

    eval_docs/train_docs: `_dd_id` and the text column of each set; windows: the shared window-start runs
    (`_dd_id, start, end`) of both sets, from `shared_windows`.
    """
    runs = windows.groupBy(ID).agg(F.collect_list(F.struct("start", "end")).alias("runs"))
    starts = (
        eval_docs.join(runs, ID)
        .select(ID, text_column, "runs")
        .mapInArrow(run_start_windows(text_column, k), RUN_STARTS_SCHEMA)
    )
    # bytes(): Spark 3.5 returns binary values as bytearray, which a set cannot hold
    patterns = sorted({bytes(row["window"]) for row in starts.select("window").distinct().collect()})
    spark = eval_docs.sparkSession
    if not patterns:
        return spark.createDataFrame([], f"{ID} string, train_id string")
    touched = train_docs.join(runs.select(ID), ID, "left_semi").select(ID, text_column)
    found = touched.mapInArrow(find_windows(patterns, text_column), FOUND_SCHEMA)
    return starts.join(found, "window").select(ID, "train_id").distinct()
