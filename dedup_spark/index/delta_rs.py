"""The index's Delta table through delta-rs (`deltalake`, no JVM Delta needed): Spark writes the Parquet files of a
commit into the table folder (`batch-<n>-<token>/`) and delta-rs commits them with no retry, so the commit becomes
version read + 1 or fails (put-if-absent). Used where the Spark session has no Delta (index.delta_writer)."""

from __future__ import annotations

import uuid
from typing import Any

from pyspark.sql import DataFrame, SparkSession

from dedup_spark.index.commits import APP_ID, USER_METADATA, CommitConflict, read_metadata, user_metadata
from dedup_spark.io import storage
from dedup_spark.io.writers import delta_add_actions


def _uri(path: str) -> str:
    return path.removeprefix("file://")


class DeltaRs:
    """delta-rs reads the history and lists a snapshot's files; Spark reads and writes the Parquet files."""

    name = "deltalake"

    def history(self, table: str, version: int | None) -> tuple[int, list[dict[str, Any]]]:
        from deltalake import DeltaTable

        delta = DeltaTable(_uri(table), version=version)
        newest = delta.version()
        entries = [
            {**read_metadata(entry.get(USER_METADATA)), "version": int(entry["version"])}
            for entry in delta.history()
            if entry["version"] <= newest
        ]
        return newest, sorted(entries, key=lambda e: -e["version"])

    def docs(self, spark: SparkSession, table: str, version: int) -> DataFrame | None:
        from deltalake import DeltaTable

        uris = [_uri(u) for u in DeltaTable(_uri(table), version=version).file_uris()]
        return spark.read.parquet(*[storage.to_spark_path(u) for u in uris]) if uris else None

    def append(self, frame: DataFrame, table: str, read_version: int, metadata: dict[str, str]) -> None:
        from deltalake import CommitProperties, DeltaTable, Schema, Transaction
        from deltalake.exceptions import CommitFailedError
        from deltalake.transaction import create_table_with_add_actions

        new_version = read_version + 1
        folder = f"batch-{new_version}-{uuid.uuid4().hex[:12]}"  # not "_"-prefixed: VACUUM would skip it
        target = storage.join(table, folder)
        frame.write.mode("error").parquet(storage.to_spark_path(target))
        actions, schema = delta_add_actions(table, folder)
        properties = CommitProperties(
            custom_metadata={USER_METADATA: user_metadata(metadata)},
            max_commit_retries=0,
            app_transactions=[Transaction(APP_ID, new_version)],
        )
        try:
            if read_version < 0:
                create_table_with_add_actions(
                    _uri(table), Schema.from_arrow(schema), actions, mode="error", commit_properties=properties
                )
            else:
                DeltaTable(_uri(table), version=read_version).create_write_transaction(
                    actions, mode="append", schema=Schema.from_arrow(schema), commit_properties=properties
                )
        except Exception as exc:
            storage.delete(target)  # never referenced by the log: no reader sees these files
            if isinstance(exc, CommitFailedError) or (read_version < 0 and "exist" in str(exc).lower()):
                raise CommitConflict(str(exc)) from exc
            raise
