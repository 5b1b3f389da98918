"""The JSON Lines reader: every line becomes one row, readable or quarantined with the reason why.

Lines are read as bytes (Spark's text source), checked in Python (`classify`), then the good ones are parsed
by Spark's `from_json` with the inferred schema. What a line can be, and its reason when it is not a document:
invalid UTF-8 `undecodable_text` (the raw record keeps the line decoded with U+FFFD replacement characters),
white space only `blank_line`, not JSON `malformed_json`, nested deeper than MAX_NESTING levels
`too_deeply_nested`, JSON but no object `not_a_json_object`, text missing or null `null_text`, text not a
string `non_string_text`. Strings of any length are read whole: Jackson's default 20,000,000-character string
limit is lifted (`maxStringLen`), so a 50 MB document is a document, not `null_text`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from dedup_spark.columns import FILE, RAW, REASON
from dedup_spark.config import InputConfig
from dedup_spark.errors import InputError
from dedup_spark.io.inputfiles import InputFiles, file_column, map_aliases

UNPARSED_REASONS = ("blank_line", "malformed_json", "not_a_json_object", "undecodable_text", "too_deeply_nested")
# Nesting Python's json module parses within its default recursion limit; Spark is allowed a little more.
MAX_NESTING = 900
# Jackson options for Spark's JSON parsing: no cap on string length, nesting as deep as `classify` allows.
JSON_OPTIONS = {"maxStringLen": str(2**31 - 1), "maxNestingDepth": "2000"}


def read_jsonl(spark: SparkSession, path: str, files: InputFiles | None, config: InputConfig) -> DataFrame:
    """JSON Lines (plain, .gz, .zst): the input's columns plus `_dd_file`, `_dd_reason`, `_dd_raw`."""
    paths = list(files.read_paths) if files else [path]
    lines = (
        spark.read.option("recursiveFileLookup", "true")
        .text(paths)
        .select(F.col("value").cast("binary").alias("value"), file_column(files).alias(FILE))
    )
    checked = lines.mapInArrow(classify(config.text_column), f"value string, {FILE} string, {REASON} string")
    checked = map_aliases(spark, checked, files)
    schema = infer_schema(spark, paths, config)
    parsed = F.from_json(F.col("value"), schema, JSON_OPTIONS)
    # Only lines that are JSON objects have columns; the others keep their raw line for the quarantine.
    unparsed = F.col(REASON).isin(*UNPARSED_REASONS)
    return checked.select(
        *[F.when(~unparsed | F.col(REASON).isNull(), parsed[f.name]).alias(f.name) for f in schema.fields],
        FILE,
        REASON,
        F.when(unparsed, F.col("value")).alias(RAW),
    )


def infer_schema(spark: SparkSession, paths: list[str], config: InputConfig) -> T.StructType:
    reader = (
        spark.read.option("mode", "DROPMALFORMED")
        .option("recursiveFileLookup", "true")
        .option("samplingRatio", config.json_schema_sampling_ratio)
        .options(**JSON_OPTIONS)
    )
    try:
        schema = reader.json(paths).schema
    except Exception as exc:
        from dedup_spark.failures import describe

        raise InputError(describe(exc, paths[0], None)[1]) from exc
    # Lines whose text is not a string are quarantined by the line check; read the column as a string.
    fields = [T.StructField(f.name, T.StringType()) if f.name == config.text_column else f for f in schema.fields]
    if config.text_column not in schema.fieldNames():
        if schema.fields:
            raise InputError(
                f"no line of {paths[0]!r} has the text column {config.text_column!r}; its columns are "
                f"{schema.fieldNames()}. Set it with --set input.text_column=NAME"
            )
        # Not one readable JSON object: every line is quarantined with its own reason.
        fields.append(T.StructField(config.text_column, T.StringType()))
    return T.StructType(fields)


def _depth(line: str) -> int:
    """Deepest bracket nesting outside strings (a cheap pre-check before json.loads recurses)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in line:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def reason_for(line: str, text_column: str) -> str | None:
    """None if the line is an object with a string text value, else its quarantine reason."""
    if not line.strip():
        return "blank_line"
    if (line.count("[") + line.count("{") > MAX_NESTING) and _depth(line) > MAX_NESTING:
        return "too_deeply_nested"
    try:
        record = json.loads(line)
    except RecursionError:
        return "too_deeply_nested"
    except ValueError:
        return "malformed_json"
    if not isinstance(record, dict):
        return "not_a_json_object"
    value = record.get(text_column)
    if value is None:
        return "null_text"
    if not isinstance(value, str):
        return "non_string_text"
    return None


def classify(text_column: str):
    """mapInArrow function: (value binary, _dd_file) -> (value string, _dd_file, _dd_reason)."""

    def lines_of(batch: pa.RecordBatch) -> tuple[list[str], list[str | None]]:
        values, reasons = [], []
        for raw in batch.column("value").to_pylist():
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                values.append(raw.decode("utf-8", errors="replace"))
                reasons.append("undecodable_text")
                continue
            values.append(line)
            reasons.append(reason_for(line, text_column))
        return values, reasons

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            values, reasons = lines_of(batch)
            large = pa.types.is_large_binary(batch.column("value").type)
            kind = pa.large_string() if large else pa.string()
            yield pa.RecordBatch.from_arrays(
                [pa.array(values, kind), batch.column(FILE), pa.array(reasons, pa.string())],
                names=["value", FILE, REASON],
            )

    return run
