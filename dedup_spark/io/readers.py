"""Readers: turn an input path into one DataFrame of candidate documents, without dropping anything.

Output schema of `read_input`: the input's own columns (typed as read), plus
  `_dd_file`   string  the file the row came from,
  `_dd_reason` string  null for a readable row, else why it cannot be processed (see `REASONS`),
  `_dd_raw`    string  the raw record when no columns could be parsed from it (malformed JSON line), else null.
Rows with a reason go to quarantine later; the reader never filters.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from dedup_spark.columns import FILE, INTERNAL_PREFIX, RAW, REASON, original_name, safe_name
from dedup_spark.config import InputConfig
from dedup_spark.errors import InputError
from dedup_spark.io import storage
from dedup_spark.io.inputfiles import InputFiles, file_column, list_input_files, map_aliases, parquet_conflict
from dedup_spark.io.read_jsonl import read_jsonl
from dedup_spark.session import is_local_mode, session_has_delta

REASONS = {
    "blank_line": "the line holds only white space (JSON Lines)",
    "malformed_json": "the line is not valid JSON",
    "too_deeply_nested": "the JSON line nests objects or arrays deeper than 900 levels",
    "not_a_json_object": "the line is valid JSON but not an object",
    "null_text": "the text column is missing or null",
    "non_string_text": "the text value is not a string",
    "empty_text": "the text is the empty string",
    "undecodable_text": "the file (text input) or the line (JSON Lines) is not valid UTF-8",
    "too_large": "the text file is larger than a Spark value can hold (2 GiB); it is not read",
    "null_id": "the id column is null",
    "duplicate_id": "another row has the same id (input.duplicate_ids=quarantine)",
}

# Largest text file read as one document: Spark's binaryFile source and a row value stop at 2 GiB - 1.
MAX_TEXT_FILE_BYTES = 2**31 - 1
_JSON_SUFFIXES = (".jsonl", ".json", ".ndjson")
_COMPRESSION_SUFFIXES = (".gz", ".zst", ".bz2")
_TEXT_SUFFIXES = (".txt", ".text", ".md")
_TABLE_NAME = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_`][\w`]*){1,2}$")


@dataclass(frozen=True)
class InputSource:
    """What to read: resolved format and location (a path, or a catalog table name)."""

    format: str
    path: str
    is_table_name: bool = False
    # The files read and skipped (`inputfiles.list_input_files`); None for Delta tables and catalog tables.
    files: InputFiles | None = None


def _format_of_file(name: str) -> str | None:
    lower = name.lower()
    for suffix in _COMPRESSION_SUFFIXES:
        if lower.endswith(suffix):
            lower = lower[: -len(suffix)]
    if lower.endswith(".parquet"):
        return "parquet"
    if lower.endswith(_JSON_SUFFIXES):
        return "jsonl"
    if lower.endswith(_TEXT_SUFFIXES):
        return "text"
    return None


def resolve_source(spark: SparkSession, config: InputConfig) -> InputSource:
    """Check the input exists and settle its format ("auto" looks at _delta_log and file suffixes)."""
    path = config.path
    if not storage.has_glob(path) and not storage.exists(path):
        if _TABLE_NAME.match(path) and session_has_delta(spark):
            return InputSource("delta", path, is_table_name=True)
        if _TABLE_NAME.match(path) and _catalog_has_table(spark, path):
            # A table of a catalog without Delta (Hive metastore, spark_catalog): read it like any table.
            return InputSource("table", path, is_table_name=True)
        raise InputError(f"input path {path!r} does not exist; pass an existing file, folder or glob to --input")
    is_delta = not storage.has_glob(path) and storage.exists(storage.join(path, "_delta_log"))
    if config.format == "delta" or (config.format == "auto" and is_delta):
        if not is_delta:
            raise InputError(f"--input-format=delta but {path!r} has no _delta_log folder; is it a Delta table?")
        return InputSource("delta", path)
    listed = list_input_files(path, local_spark=is_local_mode(spark))
    files = [name for name, _ in listed.data]
    if not files:
        skipped = f" (only Spark/Delta metadata: {len(listed.skipped)} files)" if listed.skipped else ""
        raise InputError(f"no input files at {path!r}{skipped}; pass a file, folder or glob holding data")
    if config.format != "auto":
        return InputSource(config.format, path, files=listed)
    formats = {_format_of_file(f) for f in files}
    if len(formats) == 1 and None not in formats:
        return InputSource(formats.pop(), path, files=listed)
    unknown = [f for f in files if _format_of_file(f) is None][:3]
    detail = f"unrecognised files such as {unknown}" if unknown else f"a mix of {sorted(formats)}"
    raise InputError(f"cannot tell the format of {path!r}: {detail}. Pass --input-format=parquet|jsonl|text|delta")


def _catalog_has_table(spark: SparkSession, name: str) -> bool:
    try:
        return spark.catalog.tableExists(name)
    except Exception:  # e.g. a catalog name the session does not know: then it is no table of ours to read
        return False


def read_input(spark: SparkSession, source: InputSource, config: InputConfig) -> DataFrame:
    """Read the source into the schema described in the module docstring and check its columns."""
    readers = {
        "jsonl": lambda spark, source, config: read_jsonl(spark, source.path, source.files, config),
        "parquet": _read_parquet,
        "delta": _read_delta,
        "text": _read_text,
        "table": _read_catalog_table,
    }
    frame = readers[source.format](spark, source, config)
    _check_columns(frame, source, config)
    # Dots and backticks in column names are Spark syntax where stages select columns by name: escape them here,
    # the writers restore the names (ingest.safe_name / original_name).
    renamed = {c: safe_name(c) for c in frame.columns if safe_name(c) != c}
    return frame.withColumnsRenamed(renamed) if renamed else frame


# Columns every reader adds next to the input's own.
_READER_COLUMNS = {FILE, REASON, RAW}
# Lines of a JSON Lines input a dry run reads to show and check its columns.
DRY_RUN_SAMPLE_LINES = 1000


def sample_columns(spark: SparkSession, source: InputSource, config: InputConfig) -> tuple[list[tuple[str, str]], str]:
    """(name, type) of the input's columns for the dry-run plan, checked as the run checks them, no full scan.

    Parquet, Delta and text inputs: the reader's schema, from metadata. JSON Lines: the keys of the first
    DRY_RUN_SAMPLE_LINES lines (the run infers the schema from every line, which reads the whole input).
    """
    if source.format != "jsonl":
        raw = read_input(spark, source, config)
        names = set(raw.columns) - _READER_COLUMNS
        return [(original_name(f.name), f.dataType.simpleString()) for f in raw.schema.fields if f.name in names], ""
    paths = list(source.files.read_paths) if source.files else [storage.to_spark_path(source.path)]
    lines = spark.read.option("recursiveFileLookup", "true").text(paths).limit(DRY_RUN_SAMPLE_LINES).collect()
    types: dict[str, set[str]] = {}
    for row in lines:
        try:
            record = json.loads(row[0])
        except ValueError:
            continue  # the run quarantines it
        if isinstance(record, dict):
            for key, value in record.items():
                types.setdefault(key, set()).add(_json_type(value))
    sample = f"the first {len(lines):,} lines of {source.path!r}"
    text_column, id_column = config.text_column, config.id_column
    for role, name in (("text", text_column), ("id", id_column)):
        if types and name and name not in types:
            raise InputError(
                f"no line among {sample} has the {role} column {name!r}; their columns are {list(types)}. "
                f"Set it with --set input.{role}_column=NAME"
            )
    reserved = [name for name in types if name.startswith(INTERNAL_PREFIX)]
    if reserved:
        raise InputError(f"input columns {reserved} use the reserved prefix {INTERNAL_PREFIX!r}; rename them")
    if id_column and types.get(id_column, set()) & {"object", "array"}:
        raise InputError(f"id column {id_column!r} holds JSON objects or arrays; ids must be strings or numbers")
    columns = [(name, "|".join(sorted(kinds - {"null"})) or "null") for name, kinds in types.items()]
    return columns, f" (JSON types in {sample})"


def _json_type(value: Any) -> str:
    kinds = ((bool, "boolean"), (int, "integer"), (float, "number"), (str, "string"), (dict, "object"), (list, "array"))
    return next((name for kind, name in kinds if isinstance(value, kind)), "null")


def _check_columns(frame: DataFrame, source: InputSource, config: InputConfig) -> None:
    user_columns = [c for c in frame.columns if c not in _READER_COLUMNS]
    reserved = [c for c in user_columns if c.startswith(INTERNAL_PREFIX)]
    if reserved:
        raise InputError(f"input columns {reserved} use the reserved prefix {INTERNAL_PREFIX!r}; rename them")
    for role, name in (("text", config.text_column), ("id", config.id_column)):
        if name is None:
            continue
        if name not in user_columns:
            raise InputError(
                f"{source.path!r} has no {role} column {name!r}; its columns are {user_columns}. "
                f"Set it with --set input.{role}_column=NAME"
            )
    text_type = frame.schema[config.text_column].dataType
    if not isinstance(text_type, T.StringType):
        raise InputError(
            f"text column {config.text_column!r} in {source.path!r} has type {text_type.simpleString()}, "
            "expected string; point input.text_column at a string column"
        )
    if config.id_column:
        id_type = frame.schema[config.id_column].dataType
        if isinstance(id_type, (T.StructType, T.ArrayType, T.MapType, T.BinaryType)):
            raise InputError(
                f"id column {config.id_column!r} has type {id_type.simpleString()}; ids must be strings or numbers"
            )


def _with_file_and_no_reason(frame: DataFrame, file: Column | None = None) -> DataFrame:
    return (
        frame.withColumn(FILE, file_column(None) if file is None else file)
        .withColumn(REASON, F.lit(None).cast("string"))
        .withColumn(RAW, F.lit(None).cast("string"))
    )


def _read_parquet(spark: SparkSession, source: InputSource, config: InputConfig) -> DataFrame:
    """Every file's columns (mergeSchema): a column missing from some files is null there; a type conflict
    between files is an input error naming the column, both types and two files."""
    paths = list(source.files.read_paths) if source.files else [storage.to_spark_path(source.path)]
    try:
        frame = spark.read.option("mergeSchema", "true").parquet(*paths)
    except Exception as exc:  # Spark raises AnalysisException or a Java error for unreadable footers, conflicts
        conflict = parquet_conflict(source.files) if source.files else None
        if conflict is None:
            from dedup_spark.failures import describe

            conflict = describe(exc, source.path, None)[1]
        raise InputError(conflict) from exc
    return map_aliases(spark, _with_file_and_no_reason(frame), source.files)


def _read_catalog_table(spark: SparkSession, source: InputSource, config: InputConfig) -> DataFrame:
    """A catalog table by name (Unity Catalog, Hive metastore). `_dd_file` is the data file of each row."""
    try:
        frame = spark.read.table(source.path)
    except Exception as exc:  # AnalysisException: TABLE_OR_VIEW_NOT_FOUND, missing privileges, ...
        raise InputError(f"cannot read table {source.path!r}: {_first_line(exc)}") from exc
    try:
        frame.select(F.col("_metadata.file_path")).schema  # noqa: B018 (forces analysis, also over Spark Connect)
    except Exception:  # views have no _metadata column: name the table instead of a file
        return _with_file_and_no_reason(frame, F.lit(source.path))
    return _with_file_and_no_reason(frame)


def _read_delta(spark: SparkSession, source: InputSource, config: InputConfig) -> DataFrame:
    if source.is_table_name:
        return _read_catalog_table(spark, source, config)
    if session_has_delta(spark):
        return _with_file_and_no_reason(spark.read.format("delta").load(storage.to_spark_path(source.path)))
    # No Delta jars: read the files of the current table version listed by delta-rs. Reading the folder
    # directly would also pick up files that earlier versions removed.
    from deltalake import DeltaTable

    try:
        table = DeltaTable(source.path)
    except Exception as exc:
        raise InputError(f"cannot open Delta table {source.path!r}: {_first_line(exc)}") from exc
    uris = [u.removeprefix("file://") for u in table.file_uris()]
    if not uris:
        raise InputError(f"Delta table {source.path!r} has no data files")
    reader = spark.read
    if table.metadata().partition_columns:
        reader = reader.option("basePath", storage.to_spark_path(source.path))
    return _with_file_and_no_reason(reader.parquet(*uris))


def _read_text(spark: SparkSession, source: InputSource, config: InputConfig) -> DataFrame:
    """One document per file: columns `path` and the text column. Files over MAX_TEXT_FILE_BYTES are quarantined
    as `too_large` without being read (Spark's binaryFile source fails on them)."""
    paths = list(source.files.read_paths) if source.files else [storage.to_spark_path(source.path)]
    listed = source.files.data if source.files else storage.list_files_with_sizes(source.path)
    too_large = [name for name, size in listed if size > MAX_TEXT_FILE_BYTES]
    if too_large:  # name the others one by one (through their links, if any), so Spark never opens the big ones
        link_of = {real: link for link, real in source.files.aliases} if source.files else {}
        paths = [link_of.get(n, storage.to_spark_path(n)) for n, size in listed if size <= MAX_TEXT_FILE_BYTES]
    schema = T.StructType(
        [
            T.StructField("path", T.StringType()),
            T.StructField(config.text_column, T.StringType()),
            T.StructField(FILE, T.StringType()),
            T.StructField(REASON, T.StringType()),
            T.StructField(RAW, T.StringType()),
        ]
    )
    if paths:
        files = spark.read.format("binaryFile").option("recursiveFileLookup", "true").load(paths)
        decoded = files.select("path", "content").mapInArrow(_decode_files(config.text_column), schema)
    else:
        decoded = spark.createDataFrame([], schema)
    if source.files and source.files.aliases:
        decoded = map_aliases(spark, decoded, source.files).withColumn("path", F.col(FILE))
    # Spark skips zero-length files when it splits the input; add them back so they are counted and quarantined.
    rows = [(_spark_uri(name), None, _spark_uri(name), "empty_text", None) for name, size in listed if size == 0]
    rows += [(_spark_uri(name), None, _spark_uri(name), "too_large", None) for name in too_large]
    return decoded.unionByName(spark.createDataFrame(rows, schema)) if rows else decoded


def _spark_uri(path: str) -> str:
    """The form Spark gives file paths in: local files as file:/abs/path."""
    return path if "://" in path else "file:" + path


def _decode_files(text_column: str):
    def decode(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            paths = batch.column("path").to_pylist()
            texts, reasons = [], []
            for content in batch.column("content").to_pylist():
                try:
                    texts.append(content.decode("utf-8"))
                    reasons.append(None)
                except UnicodeDecodeError:
                    texts.append(None)
                    reasons.append("undecodable_text")
            yield pa.RecordBatch.from_arrays(
                [
                    pa.array(paths),
                    pa.array(texts, pa.string()),
                    pa.array(paths),
                    pa.array(reasons, pa.string()),
                    pa.nulls(len(paths), pa.string()),
                ],
                names=["path", text_column, FILE, REASON, RAW],
            )

    return decode


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:500] if text else type(exc).__name__
