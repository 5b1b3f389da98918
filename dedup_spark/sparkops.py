"""Spark helpers the steps share: checkpoints that cut the lineage (timed, with row counts), and session settings
changed for a few steps and then restored.

Settings changed here only make steps faster: no result depends on them, and a session that refuses them runs
without them.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from pyspark.sql import DataFrame, SparkSession

from dedup_spark.io import storage
from dedup_spark.session import task_slots

log = logging.getLogger("dedup_spark")


def checkpoint(spark: SparkSession, frame: DataFrame, path: str, partition_by: tuple[str, ...] = ()) -> DataFrame:
    """Write a stage's intermediate result as Parquet under its work folder and read it back (cuts the lineage).

    The schema is given on read because an empty partitioned result has no file to infer it from.
    """
    frame.write.mode("overwrite").partitionBy(*partition_by).parquet(storage.to_spark_path(path))
    return spark.read.schema(frame.schema).parquet(storage.to_spark_path(path))


def whole_rounds(tasks: int, spark: SparkSession) -> int:
    """`tasks` rounded up to a multiple of the cluster's task slots (unchanged if 0 or 1): N tasks of equal work on
    S slots take ceil(N / S) rounds, so 3 tasks on 2 slots leave a slot idle for a whole round, and 4 do not."""
    slots = task_slots(spark)
    return tasks if tasks <= 1 else math.ceil(tasks / slots) * slots


def own_partitions(values: list[int]) -> list[tuple[int, int]]:
    """(value, route) for each of the n `values`: route keys such that `repartition(n, route)` puts the rows of the
    i-th value, and only those, in partition i.

    Hash partitioning sends a row to pmod(hash(key), n): n keys in n partitions collide almost always (4 keys share
    a partition in 9 cases of 10), and adaptive execution then merges small partitions by bytes, which put six
    ExactSubstr chunks of 50 MB into tasks of 2, 1 and 3 chunks on two cores. The route key of partition i is the
    smallest integer that Spark's partitioning hash (`F.hash`, which `repartition` uses) sends to i, computed here
    (`spark_hash`), without a Spark job. A repartition to a given number of partitions is never merged by adaptive
    execution. Only the split into tasks depends on it, never a result (tests check the routes and the hash
    against Spark's own).
    """
    n = len(values)
    route: dict[int, int] = {}
    key = 0
    while len(route) < n:
        route.setdefault(spark_hash(key) % n, key)  # Python's % of a negative number is pmod's
        key += 1
    return [(value, route[i]) for i, value in enumerate(values)]


_MASK = 0xFFFFFFFF


def spark_hash(value: int) -> int:
    """Spark's `hash` of a long (`F.hash`, which `repartition(n, column)` takes modulo n): Murmur3 x86 32-bit with
    seed 42 over the value's low and high 32 bits, as a signed 32-bit integer."""

    def mix(h: int, k: int) -> int:
        k = (k * 0xCC9E2D51) & _MASK
        k = ((k << 15) | (k >> 17)) & _MASK
        h ^= (k * 0x1B873593) & _MASK
        h = ((h << 13) | (h >> 19)) & _MASK
        return (h * 5 + 0xE6546B64) & _MASK

    h = mix(mix(42, value & _MASK), (value >> 32) & _MASK) ^ 8
    h = ((h ^ (h >> 16)) * 0x85EBCA6B) & _MASK
    h = ((h ^ (h >> 13)) * 0xC2B2AE35) & _MASK
    h ^= h >> 16
    return h - (1 << 32) if h >> 31 else h


class Steps:
    """`steps(name, frame)` checkpoints `frame` to `work_dir/name` and records the step's seconds (since the
    previous step, or since creation), its rows (from the written files' footers), and the files (one per task
    that wrote rows) and bytes written: the figures both stages report, as `table()` under their metrics'
    `steps`, and the benchmarks print."""

    def __init__(self, spark: SparkSession, work_dir: str) -> None:
        self.spark, self.work_dir = spark, work_dir
        self.figures: dict[str, dict[str, Any]] = {}
        self._clock = time.perf_counter()

    def __call__(self, name: str, frame: DataFrame, partition_by: tuple[str, ...] = ()) -> DataFrame:
        path = storage.join(self.work_dir, name)
        result = checkpoint(self.spark, frame, path, partition_by)
        seconds = round(time.perf_counter() - self._clock, 3)
        sizes = [size for file, size in storage.list_files_with_sizes(path) if file.endswith(".parquet")]
        rows = storage.parquet_rows(path)
        self.figures[name] = {"step": name, "seconds": seconds, "rows": rows, "files": len(sizes), "bytes": sum(sizes)}
        self._clock = time.perf_counter()
        return result

    def table(self) -> list[dict[str, Any]]:
        """[{"step", "seconds", "rows", "files", "bytes"}] in the order the steps ran."""
        return list(self.figures.values())


# Settings a session refused, each logged once per process.
_refused: set[str] = set()


@contextmanager
def _setting(spark: SparkSession, key: str, value: Callable[[], str]) -> Iterator[None]:
    """Set the session setting `key` to `value()` for the steps run inside, then restore it (or unset it again).

    A hint, never a need: a session that refuses to read or set it (Databricks serverless answers most keys with
    CONFIG_NOT_AVAILABLE) runs the steps without it, with the same results; the refusal is logged once per key.
    """
    restore = _try_set(spark, key, value)
    try:
        yield
    finally:
        if restore is not None:
            restore()


def _try_set(spark: SparkSession, key: str, value: Callable[[], str]) -> Callable[[], None] | None:
    """Set `key`; returns how to put it back, or None when the session refused (logged once)."""
    try:
        current = spark.conf.get(key, None)
        spark.conf.set(key, value())
    except Exception as exc:  # a refused hint changes speed, not results
        _log_refused(key, exc)
        return None

    def restore() -> None:
        try:
            if current is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, current)
        except Exception as exc:
            _log_refused(key, exc)

    return restore


def _log_refused(key: str, exc: Exception) -> None:
    if key not in _refused:
        _refused.add(key)
        first_line = (str(exc).strip().splitlines() or [""])[0][:200]
        log.info("session setting %s refused, running without it (%s: %s)", key, type(exc).__name__, first_line)


def small_shuffles(spark: SparkSession, rows: int, rows_per_partition: int = 250_000):
    """Lower `spark.sql.shuffle.partitions` to about one partition per `rows_per_partition` rows (at least 1, in
    whole rounds of the task slots) for the steps run inside, then restore it; never raises it above the
    session's setting. (Adaptive execution still merges partitions a step's data is too small for.)

    Every shuffle writes one bucket per partition from every map task: on small data (candidate pairs, graph
    rounds) 200 buckets cost more than the work (measured: connected components of 1,772 edges took 11-13 s with
    200 partitions, 6-7 s with 4).
    """
    key = "spark.sql.shuffle.partitions"
    wanted = whole_rounds(max(1, math.ceil(rows / rows_per_partition)), spark)
    return _setting(spark, key, lambda: str(min(int(spark.conf.get(key)), wanted)))


def file_per_task(spark: SparkSession):
    """Scans run inside read each file in a task of its own (files above `spark.sql.files.maxPartitionBytes` are
    still split), then the setting is restored.

    For CPU-heavy steps over ingest shards: Spark packs small files into tasks of up to maxPartitionBytes, which
    turned the 8 shards of the linux corpus into 4 uneven tasks (13, 13, 13, 5 s) that left a core idle. A file's
    open cost equal to maxPartitionBytes makes every file fill a task by itself.
    """
    return _setting(
        spark, "spark.sql.files.openCostInBytes", lambda: spark.conf.get("spark.sql.files.maxPartitionBytes")
    )


def many_splits(spark: SparkSession, per_slot: int = 4):
    """Scans run inside split their files into about `per_slot` tasks per task slot (row groups permitting), then
    the setting is restored.

    For CPU-heavy steps over compressed work files: Spark sizes splits by bytes on disk, so the 1 GB of ExactSubstr
    pieces of the linux corpus (about 360 MB compressed) became 3 tasks of 10-23 s on 2 cores.
    """
    return _setting(spark, "spark.sql.files.minPartitionNum", lambda: str(per_slot * task_slots(spark)))
