"""Ingest: checked reader output -> sharded Parquet documents with stable unique ids, plus quarantine rows.

One scan of the input, one shuffle, one write (`_work/.../rows`, two folders):
- `rows/_dd_readable=true` (`shards_path`): readable rows hash-partitioned by id into shards of about
  `ingest.shard_size` bytes of text (as many as that takes, rounded up to whole rounds of the task slots),
  sorted by id inside each shard. Columns: the input's columns, `_dd_id` (string, unique), `_dd_copy` (0 for the
  first row with an id, 1.. for later ones), `_dd_shard`, `_dd_bytes`, `_dd_file`.
- `rows/_dd_readable=false`: unreadable rows with their quarantine reason and raw record.
The shard count is decided before the scan from the input's own description of its size (`inputfiles.text_bytes`:
Parquet footers, file sizes); only inputs with neither (tables) are scanned once more to size it. Every count
(rows and bytes per file and reason, duplicate ids) is then one aggregation over the narrow columns of what was
written. The quarantine: unreadable rows, plus duplicate-id copies when `input.duplicate_ids=quarantine`.

Ids: `input.id_column` cast to string, or, without one, the first 32 hex digits of the SHA-256 of the text.
Rows with identical text get `-1`, `-2`, ... appended in the order of a hash of the whole row, so the same
input gives the same ids however it is split into files or partitions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from dedup_spark.columns import BYTES, COPY, FILE, ID, ORDER, RAW, REASON, SHARD, col, user_columns
from dedup_spark.config import RunConfig
from dedup_spark.errors import AccountingError, InputError
from dedup_spark.io import storage
from dedup_spark.io.inputfiles import InputFiles, expected_rows, file_key, parquet_footers, text_bytes
from dedup_spark.session import task_slots
from dedup_spark.sparkops import whole_rounds


@dataclass
class IngestResult:
    shards_path: str
    rows_read: int
    bytes_read: int
    docs: int
    text_bytes: int
    shards: int
    quarantined_by_reason: dict[str, int] = field(default_factory=dict)
    # The input's files: {"read": n, "bytes": b, "skipped": [[path, bytes], ...], "rows": [[path, rows], ...]}.
    files: dict = field(default_factory=dict)


def add_reasons_and_ids(raw: DataFrame, config: RunConfig) -> DataFrame:
    """Reader output -> the same rows with a final `_dd_reason`, `_dd_id`, `_dd_bytes` and `_dd_order`."""
    text = col(config.input.text_column)
    checks = [F.col(REASON), F.when(text.isNull(), "null_text"), F.when(text == "", "empty_text")]
    if config.input.id_column:
        row_id = col(config.input.id_column).cast("string")
        checks.append(F.when(row_id.isNull(), "null_id"))
    else:
        row_id = F.substring(F.sha2(text, 256), 1, 32)
    columns = user_columns(raw)
    return raw.select(
        *[col(c) for c in columns],
        FILE,
        F.coalesce(*checks).alias(REASON),
        RAW,
        row_id.alias(ID),
        F.octet_length(text).cast("long").alias(BYTES),
        # Orders rows that share an id; equal only for rows identical in every column.
        _row_hash(raw, columns).alias(ORDER),
    )


def _row_hash(frame: DataFrame, columns: list[str]):
    """64-bit hash of a whole row. Spark cannot hash maps, so rows with map columns are hashed as JSON."""
    if any(isinstance(frame.schema[c].dataType, T.MapType) for c in columns):
        return F.xxhash64(F.to_json(F.struct(*[col(c) for c in columns])))
    return F.xxhash64(*[col(c) for c in columns])


# Text size from which an input smaller than one shard is still split into one shard per task slot.
SPLIT_BYTES = 16 * 1024 * 1024
READABLE = "_dd_readable"  # the partition column of `rows`: which folder a row is written to


def shards_path(folder: str) -> str:
    """Where `ingest(..., folder)` writes the readable rows."""
    return storage.join(folder, "rows", f"{READABLE}=true")


def _unreadable_path(folder: str) -> str:
    return storage.join(folder, "rows", f"{READABLE}=false")


def ingest(
    spark: SparkSession,
    raw: DataFrame,
    config: RunConfig,
    work_dir: str,
    source_files: tuple[str, InputFiles] | None = None,
) -> IngestResult:
    """Write `rows` under `work_dir` (see the module docstring); return the counts.

    source_files: (format, files) of a file input; the shard count is then sized from the files, and rows read
    are counted per file and checked against the files themselves (`check_files`).
    """
    rows_path = storage.join(work_dir, "rows")
    parsed = add_reasons_and_ids(raw, config).withColumn(READABLE, F.col(REASON).isNull())
    fmt, files = source_files if source_files and source_files[1] else (None, None)
    footers = parquet_footers(fmt, files) if files else {}
    if files:
        estimate = text_bytes(fmt, files, footers, config.input.text_column)
    else:  # a table: no files to size it from
        estimate = parsed.agg(F.sum(BYTES)).first()[0] or 0
    # Whole rounds of the task slots: the dedup stages' heaviest steps run one shard per task. An input smaller
    # than one shard still fills every slot once it is worth splitting (100 MB of linux: signatures 6 s in one
    # task while the other core idled).
    shard_count = whole_rounds(max(1, math.ceil(estimate / config.ingest.shard_size)), spark)
    if shard_count == 1 and estimate >= SPLIT_BYTES:
        shard_count = task_slots(spark)

    # Hash-partitioned by id: the copies of an id meet in one shard, and shards are even without a sampling pass
    # (range shards cost the linux NearDup benchmark 13 s; ExactSubstr lays out its chunks in id order itself).
    # One sort serves the window that numbers the copies in `_dd_order` and the write's split into the two
    # folders (both are satisfied by it).
    copy = F.row_number().over(Window.partitionBy(READABLE, ID).orderBy(ORDER)) - 1
    numbered = (
        parsed.repartition(shard_count, ID)
        .sortWithinPartitions(READABLE, ID, ORDER)
        .withColumn(COPY, F.when(F.col(READABLE), copy).otherwise(0).cast("int"))
    )
    if config.input.id_column is None:
        # Identical texts share a derived id; the suffix makes the id unique and the row a document.
        suffixed = F.when(F.col(COPY) > 0, F.concat(ID, F.lit("-"), COPY)).otherwise(F.col(ID))
        numbered = numbered.withColumn(ID, suffixed).withColumn(COPY, F.lit(0))
    numbered = numbered.withColumn(SHARD, F.spark_partition_id())
    numbered.write.mode("overwrite").partitionBy(READABLE).parquet(rows_path)
    written = spark.read.schema(numbered.schema).parquet(rows_path)
    if not storage.exists(shards_path(work_dir)):  # nothing readable: the stages still read an (empty) table
        empty = spark.createDataFrame([], numbered.schema).drop(READABLE)
        empty.write.mode("overwrite").parquet(shards_path(work_dir))

    is_copy = F.col(COPY) > 0
    counts = written.groupBy(FILE, REASON).agg(
        F.count(F.lit(1)).alias("rows"),
        F.sum(BYTES).alias("bytes"),
        F.count(F.when(is_copy, 1)).alias("copies"),
        F.sum(F.when(~is_copy, F.col(BYTES))).alias("docs_bytes"),
    )
    by_reason: dict[str | None, tuple[int, int]] = {}
    by_file: dict[str, int] = {}
    duplicate_rows = docs_bytes = 0
    for row in counts.collect():
        rows, size = by_reason.get(row[REASON], (0, 0))
        by_reason[row[REASON]] = (rows + row["rows"], size + (row["bytes"] or 0))
        key = file_key(row[FILE] or "")
        by_file[key] = by_file.get(key, 0) + row["rows"]
        if row[REASON] is None:
            duplicate_rows += row["copies"]
            docs_bytes += row["docs_bytes"] or 0
    rows_read = sum(rows for rows, _ in by_reason.values())
    file_summary = check_files(fmt, files, footers, by_file) if files else {}
    bytes_read = sum(size for _, size in by_reason.values())
    valid_rows, _ = by_reason.pop(None, (0, 0))
    quarantined = {reason: rows for reason, (rows, _) in by_reason.items()}
    if duplicate_rows:
        if config.input.duplicate_ids == "error":
            copies = spark.read.parquet(shards_path(work_dir)).filter(is_copy)
            examples = [r[ID] for r in copies.select(ID).distinct().orderBy(ID).limit(5).collect()]
            raise InputError(
                f"{duplicate_rows} rows repeat an id already used in column {config.input.id_column!r} "
                f"(e.g. {examples}); fix the input, or set input.duplicate_ids=quarantine to keep one row per id"
            )
        quarantined["duplicate_id"] = duplicate_rows
    return IngestResult(
        shards_path=shards_path(work_dir),
        rows_read=rows_read,
        bytes_read=int(bytes_read),
        docs=valid_rows - duplicate_rows,
        text_bytes=int(docs_bytes),
        shards=shard_count,
        quarantined_by_reason=quarantined,
        files=file_summary,
    )


# Files named one by one in the report (the totals always cover all of them).
REPORT_FILES = 1000


def check_files(fmt: str, files: InputFiles, footers: dict, by_file: dict[str, int]) -> dict:
    """Rows per listed file from the reader, checked against the files themselves; the report's file summary.

    Parquet footers and text files (one document each) give exact counts; a JSON Lines file that is not
    compressed and not empty holds at least one line. A file the reader dropped rows of is an AccountingError.
    """
    expected = expected_rows(fmt, files, footers)
    for path, size in files.data:
        read = by_file.get(path, 0)
        want = expected.get(path)
        compressed = path.lower().endswith((".gz", ".zst", ".bz2"))
        if (want is not None and want != read) or (want is None and size > 0 and not compressed and read == 0):
            raise AccountingError(
                f"input file {path!r} holds {want if want is not None else 'some'} rows but the reader produced "
                f"{read}; rows would be lost: this is a bug, please report it"
            )
    return {
        "read": len(files.data),
        "bytes": sum(size for _, size in files.data),
        "skipped": [[path, size] for path, size in files.skipped],
        "skipped_bytes": sum(size for _, size in files.skipped),
        "rows": [[path, by_file.get(path, 0)] for path, _ in files.data[:REPORT_FILES]],
    }


def load_docs(spark: SparkSession, result: IngestResult) -> DataFrame:
    """The documents the dedup stages work on: one row per id."""
    return spark.read.parquet(result.shards_path).filter(F.col(COPY) == 0).drop(REASON, RAW)


def quarantine_rows(spark: SparkSession, folder: str, result: IngestResult) -> DataFrame:
    """Unreadable rows and duplicate-id copies, with the input's columns plus reason, input_file, raw_record.

    folder: the `work_dir` `ingest` wrote to.
    """
    shards = spark.read.parquet(result.shards_path)
    columns = user_columns(shards)
    copies = shards.filter(F.col(COPY) > 0).withColumn(REASON, F.lit("duplicate_id"))
    if any(rows for reason, rows in result.quarantined_by_reason.items() if reason != "duplicate_id"):
        copies = copies.unionByName(spark.read.parquet(_unreadable_path(folder)))
    return copies.select(
        *[col(c) for c in columns],
        ID,
        F.col(REASON).alias("reason"),
        F.col(FILE).alias("input_file"),
        F.col(RAW).alias("raw_record"),
    )
