"""The index's Delta table through Spark's own Delta (Databricks, clusters with the Delta jars), for storage that
delta-rs cannot commit to (UC volumes, cloud URIs whose credentials only the cluster holds). DataFrame API and
`spark.sql` only, so it runs over Spark Connect (Databricks serverless).

- history: `DESCRIBE HISTORY delta.`<table>`` (columns `version`, `userMetadata`);
- a snapshot's rows: `spark.read.format("delta").option("versionAsOf", v)`;
- a commit: `df.write.format("delta").mode("append")` with the options `userMetadata` (the metadata as JSON) and
  `txnAppId`/`txnVersion` = `commits.APP_ID`/read version + 1 (Delta's idempotent writes). A writer that raced
  another commit of the same app id loses Delta's conflict check (ConcurrentTransactionException or another
  Delta concurrency error); one that starts after another took version read + 1 is skipped by Delta without an
  error (txnVersion not above the recorded one). Both become CommitConflict: the first by its exception, the
  second because the commit at version read + 1 does not carry this commit's token.

Untested against a real JVM Delta here (no Delta jars on our machines): the tests check these calls on a fake
session (tests/index/test_delta_writers.py).
"""

from __future__ import annotations

from typing import Any

from pyspark.sql import DataFrame, SparkSession

from dedup_spark.index.commits import APP_ID, TOKEN_KEY, USER_METADATA, CommitConflict, read_metadata, user_metadata
from dedup_spark.io import storage

# Delta's concurrency failures, by exception class (io.delta.exceptions) and by Databricks error condition.
CONCURRENCY_MARKERS = (
    "ConcurrentTransactionException",
    "ConcurrentAppendException",
    "ConcurrentWriteException",
    "ConcurrentDeleteReadException",
    "ConcurrentDeleteDeleteException",
    "MetadataChangedException",
    "ProtocolChangedException",
    "DeltaConcurrentModificationException",
    "DELTA_CONCURRENT_",
    "DELTA_METADATA_CHANGED",
    "DELTA_PROTOCOL_CHANGED",
)


def is_concurrency_error(exc: BaseException) -> bool:
    """True for a Delta concurrency failure, as raised in the session (classic or Connect)."""
    condition = getattr(exc, "getCondition", None) or getattr(exc, "getErrorClass", None)
    text = " ".join([*(t.__name__ for t in type(exc).__mro__), str(exc), str(condition() if condition else "")])
    return any(marker in text for marker in CONCURRENCY_MARKERS)


class SparkDelta:
    """Spark's own Delta reads the history and snapshots and writes the commits."""

    name = "spark"

    def __init__(self, spark: SparkSession) -> None:
        self.spark = spark

    def _commits(self, table: str) -> list[dict[str, Any]]:
        """Every commit's metadata, newest first (from userMetadata; a commit without it gives {})."""
        quoted = storage.to_spark_path(table).replace("`", "``")
        rows = self.spark.sql(f"DESCRIBE HISTORY delta.`{quoted}`").select("version", USER_METADATA).collect()
        entries = [{**read_metadata(r[USER_METADATA]), "version": int(r["version"])} for r in rows]
        return sorted(entries, key=lambda e: -e["version"])

    def history(self, table: str, version: int | None) -> tuple[int, list[dict[str, Any]]]:
        entries = self._commits(table)
        newest = entries[0]["version"] if entries else -1
        if version is not None and version > newest:
            raise ValueError(f"{table} has no version {version} (newest: {newest})")
        snapshot = newest if version is None else version
        return snapshot, [e for e in entries if e["version"] <= snapshot]

    def docs(self, spark: SparkSession, table: str, version: int) -> DataFrame | None:
        return spark.read.format("delta").option("versionAsOf", version).load(storage.to_spark_path(table))

    def append(self, frame: DataFrame, table: str, read_version: int, metadata: dict[str, str]) -> None:
        new_version = read_version + 1
        writer = (
            frame.write.format("delta")
            .mode("append")
            .option("txnAppId", APP_ID)
            .option("txnVersion", str(new_version))
            .option(USER_METADATA, user_metadata(metadata))
        )
        try:
            writer.save(storage.to_spark_path(table))
        except Exception as exc:
            if is_concurrency_error(exc):
                raise CommitConflict(str(exc)) from exc
            raise
        # Not the newest commit: a later run may have committed after this one already.
        newer = [e for e in self._commits(table) if e["version"] > read_version]
        at_pinned = next((e for e in newer if e["version"] == new_version), {})
        if at_pinned.get(TOKEN_KEY) == metadata[TOKEN_KEY]:
            return
        landed = next((e["version"] for e in newer if e.get(TOKEN_KEY) == metadata[TOKEN_KEY]), None)
        raise CommitConflict(
            f"version {new_version} is another commit's; Delta skipped this write (app transaction {APP_ID} "
            f"already at or above {new_version})"
            if landed is None
            else f"this commit became version {landed}: version {new_version} was taken by a writer that does "
            "not pin its commits",
            landed,
        )
