"""Held-out sets (`run --protect=PATH`): ingested beside the input, matched by NearDup, never removed or written.

Each set is read with the input's settings (format, text and id columns) and ingested into
`_work/ingest/protect-<n>/shards` during the ingest step, so resume reuses it with the input's shards and its
files are part of the ingest fingerprint. Its documents get ids `protected-<n>:<id>` (input ids must not start
with `protected-`; NearDup checks), which say in `neardup/clusters` where a document came from. NearDup sorts
protected documents first in every cluster and removes the input documents of a cluster that holds one as
`contamination` (see `neardup/stage.py`). Protected documents are counted in the ingest entry of the report
(`details.protected`), not in the run's accounting, which covers the input only.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from dedup_spark.columns import BYTES, ID, PROTECTED_ID_PREFIX
from dedup_spark.config import RunConfig
from dedup_spark.errors import InputError
from dedup_spark.io import storage
from dedup_spark.io.ingest import IngestResult, ingest, load_docs, shards_path
from dedup_spark.io.readers import read_input, resolve_source
from dedup_spark.resume import input_identity


def _config_for(config: RunConfig, path: str) -> RunConfig:
    return dataclasses.replace(config, input=dataclasses.replace(config.input, path=path))


def _folder(ingest_dir: str, number: int) -> str:
    return storage.join(ingest_dir, f"protect-{number}")


def identity_keys(spark: SparkSession, config: RunConfig) -> list[dict[str, Any]]:
    """The fingerprint keys of the held-out sets (files with sizes and times, or Delta versions)."""
    keys = []
    for path in config.protect:
        try:
            identity = input_identity(spark, resolve_source(spark, _config_for(config, path).input))
        except InputError as exc:  # its message speaks of --input
            raise InputError(f"--protect={path}: {exc}") from exc
        keys.append({"format": identity.format, **identity.key})
    return keys


def ingest_protected(spark: SparkSession, config: RunConfig, ingest_dir: str) -> list[dict[str, Any]]:
    """Ingest every held-out set; returns per set its path and IngestResult fields (JSON-ready, no shards path)."""
    results = []
    for number, path in enumerate(config.protect, 1):
        settings = _config_for(config, path)
        try:
            raw = read_input(spark, resolve_source(spark, settings.input), settings.input)
            result = ingest(spark, raw, settings, _folder(ingest_dir, number))
        except InputError as exc:
            raise InputError(f"--protect={path}: {exc}") from exc
        fields = {k: v for k, v in dataclasses.asdict(result).items() if k != "shards_path"}
        results.append({"path": path, **fields})
    return results


def summary(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the report says of each held-out set."""
    return [
        {
            "path": r["path"],
            "rows_read": r["rows_read"],
            "documents": r["docs"],
            "quarantined_by_reason": r["quarantined_by_reason"],
        }
        for r in results
    ]


def protected_docs(
    spark: SparkSession, config: RunConfig, ingest_dir: str, results: list[dict[str, Any]]
) -> DataFrame | None:
    """The held-out documents as NearDup reads them: `_dd_id` (prefixed), text, `_dd_bytes`, the id column and
    the keep column when they have them. None without held-out sets."""
    frames = []
    for number, fields in enumerate(results, 1):
        values = {k: v for k, v in fields.items() if k != "path"}
        docs = load_docs(spark, IngestResult(shards_path=shards_path(_folder(ingest_dir, number)), **values))
        extra = [c for c in (config.input.id_column, config.neardup.keep_column) if c and c in docs.columns]
        frames.append(
            docs.select(
                F.concat(F.lit(f"{PROTECTED_ID_PREFIX}{number}:"), F.col(ID)).alias(ID),
                config.input.text_column,
                BYTES,
                *extra,
            )
        )
    if not frames:
        return None
    result = frames[0]
    for frame in frames[1:]:
        result = result.unionByName(frame, allowMissingColumns=True)
    return result
