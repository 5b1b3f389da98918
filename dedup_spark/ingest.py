"""Ingest: checked reader output -> sharded Parquet documents with stable unique ids, plus quarantine rows.

Three steps, each reading the previous one's files, so every later count comes from written data:
1. `_work/parsed`: every row read, with its quarantine reason (or null), its id and its text size in bytes.
2. `_work/shards`: readable rows range-partitioned by id into shards of about `ingest.shard_size` bytes of text,
   sorted by id inside each shard. Columns: the input's columns, `_dd_id` (string, unique), `_dd_copy`
   (0 for the first row with an id, 1.. for later ones), `_dd_shard`, `_dd_bytes`, `_dd_file`.
3. The quarantine DataFrame: unreadable rows, plus duplicate-id copies when `input.duplicate_ids=quarantine`.

Ids: `input.id_column` cast to string, or, without one, the first 32 hex digits of the SHA-256 of the text.
Rows with identical text get `-1`, `-2`, ... appended in the order of a hash of the whole row, so the same
input gives the same ids however it is split into files or partitions.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from dedup_spark import storage
from dedup_spark.config import RunConfig
from dedup_spark.errors import InputError

INTERNAL_COLUMNS = ("_dd_file", "_dd_reason", "_dd_raw", "_dd_id", "_dd_bytes", "_dd_order", "_dd_copy", "_dd_shard")


@dataclass
class IngestResult:
    shards_path: str
    rows_read: int
    bytes_read: int
    docs: int
    text_bytes: int
    shards: int
    quarantined_by_reason: dict[str, int] = field(default_factory=dict)


def user_columns(frame: DataFrame) -> list[str]:
    return [c for c in frame.columns if c not in INTERNAL_COLUMNS]


def add_reasons_and_ids(raw: DataFrame, config: RunConfig) -> DataFrame:
    """Reader output -> the same rows with a final `_dd_reason`, `_dd_id`, `_dd_bytes` and `_dd_order`."""
    text = F.col(config.input.text_column)
    checks = [F.col("_dd_reason"), F.when(text.isNull(), "null_text"), F.when(text == "", "empty_text")]
    if config.input.id_column:
        row_id = F.col(config.input.id_column).cast("string")
        checks.append(F.when(row_id.isNull(), "null_id"))
    else:
        row_id = F.substring(F.sha2(text, 256), 1, 32)
    columns = user_columns(raw)
    return raw.select(
        *columns,
        "_dd_file",
        F.coalesce(*checks).alias("_dd_reason"),
        "_dd_raw",
        row_id.alias("_dd_id"),
        F.octet_length(text).cast("long").alias("_dd_bytes"),
        # Orders rows that share an id; equal only for rows identical in every column.
        _row_hash(raw, columns).alias("_dd_order"),
    )


def _row_hash(frame: DataFrame, columns: list[str]):
    """64-bit hash of a whole row. Spark cannot hash maps, so rows with map columns are hashed as JSON."""
    if any(isinstance(frame.schema[c].dataType, T.MapType) for c in columns):
        return F.xxhash64(F.to_json(F.struct(*columns)))
    return F.xxhash64(*columns)


def ingest(spark: SparkSession, raw: DataFrame, config: RunConfig, work_dir: str) -> IngestResult:
    """Write `_work/parsed` and `_work/shards` (see the module docstring) and return their counts."""
    parsed_path = storage.join(work_dir, "parsed")
    shards_path = storage.join(work_dir, "shards")
    add_reasons_and_ids(raw, config).write.mode("overwrite").parquet(parsed_path)
    parsed = spark.read.parquet(parsed_path)

    counts = parsed.groupBy("_dd_reason").agg(F.count(F.lit(1)).alias("rows"), F.sum("_dd_bytes").alias("bytes"))
    by_reason = {row["_dd_reason"]: (row["rows"], row["bytes"] or 0) for row in counts.collect()}
    rows_read = sum(rows for rows, _ in by_reason.values())
    bytes_read = sum(size for _, size in by_reason.values())
    valid_rows, valid_bytes = by_reason.pop(None, (0, 0))
    shard_count = max(1, math.ceil(valid_bytes / config.ingest.shard_size))

    valid = parsed.filter(F.col("_dd_reason").isNull()).drop("_dd_reason", "_dd_raw")
    numbered = (
        valid.repartitionByRange(shard_count, "_dd_id")
        .sortWithinPartitions("_dd_id", "_dd_order")
        .mapInArrow(_number_copies(derived=config.input.id_column is None), _with_copy_column(valid.schema))
        .withColumn("_dd_shard", F.spark_partition_id())
    )
    numbered.write.mode("overwrite").parquet(shards_path)
    shards = spark.read.parquet(shards_path)

    written = shards.count()
    if written != valid_rows:
        raise InputError(f"internal: {valid_rows} readable rows but {written} written to shards")
    quarantined = {reason: rows for reason, (rows, _) in by_reason.items()}
    copies = shards.filter(F.col("_dd_copy") > 0)
    duplicate_rows = copies.count()
    if duplicate_rows:
        if config.input.duplicate_ids == "error":
            examples = [r["_dd_id"] for r in copies.select("_dd_id").distinct().orderBy("_dd_id").limit(5).collect()]
            raise InputError(
                f"{duplicate_rows} rows repeat an id already used in column {config.input.id_column!r} "
                f"(e.g. {examples}); fix the input, or set input.duplicate_ids=quarantine to keep one row per id"
            )
        quarantined["duplicate_id"] = duplicate_rows
    docs_bytes = shards.filter(F.col("_dd_copy") == 0).agg(F.sum("_dd_bytes")).first()[0] or 0
    return IngestResult(
        shards_path=shards_path,
        rows_read=rows_read,
        bytes_read=int(bytes_read),
        docs=valid_rows - duplicate_rows,
        text_bytes=int(docs_bytes),
        shards=shard_count,
        quarantined_by_reason=quarantined,
    )


def load_docs(spark: SparkSession, result: IngestResult) -> DataFrame:
    """The documents the dedup stages work on: one row per id."""
    return spark.read.parquet(result.shards_path).filter(F.col("_dd_copy") == 0)


def quarantine_rows(spark: SparkSession, work_dir: str, result: IngestResult) -> DataFrame:
    """Unreadable rows and duplicate-id copies, with the input's columns plus reason, input_file, raw_record."""
    parsed = spark.read.parquet(storage.join(work_dir, "parsed"))
    columns = user_columns(parsed)
    unreadable = parsed.filter(F.col("_dd_reason").isNotNull()).select(
        *columns, "_dd_id", F.col("_dd_reason").alias("reason"), "_dd_file", "_dd_raw"
    )
    copies = (
        spark.read.parquet(result.shards_path)
        .filter(F.col("_dd_copy") > 0)
        .select(
            *columns,
            "_dd_id",
            F.lit("duplicate_id").alias("reason"),
            "_dd_file",
            F.lit(None).cast("string").alias("_dd_raw"),
        )
    )
    return unreadable.unionByName(copies).select(
        *columns,
        "_dd_id",
        "reason",
        F.col("_dd_file").alias("input_file"),
        F.col("_dd_raw").alias("raw_record"),
    )


def _with_copy_column(schema: T.StructType) -> T.StructType:
    return T.StructType([*schema.fields, T.StructField("_dd_copy", T.IntegerType(), False)])


def _number_copies(derived: bool):
    """Number the rows of each id 0, 1, 2, ... (input sorted by id, order); derived ids get a '-N' suffix.

    Runs inside one partition, so the count carries over from one Arrow batch to the next.
    """

    def number(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        previous_id, previous_copy = None, -1
        for batch in batches:
            ids = batch.column("_dd_id").to_pylist()
            copies = []
            for row_id in ids:
                previous_copy = previous_copy + 1 if row_id == previous_id else 0
                previous_id = row_id
                copies.append(previous_copy)
            columns = list(batch.columns)
            if derived:
                # Identical texts share a hash; the suffix makes the id unique and the row a document.
                index = batch.schema.get_field_index("_dd_id")
                columns[index] = pa.array(
                    [f"{i}-{c}" if c else i for i, c in zip(ids, copies, strict=True)], pa.string()
                )
                copies = [0] * len(copies)
            columns.append(pa.array(copies, pa.int32()))
            yield pa.RecordBatch.from_arrays(columns, names=[*batch.schema.names, "_dd_copy"])

    return number
