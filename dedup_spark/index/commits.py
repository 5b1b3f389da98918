"""What the index's two Delta writers share (`delta_rs.py`, `spark_delta.py`): how a commit carries its metadata
and how it is pinned to one table version.

Metadata: the commit's metadata dict (string values) is stored as one JSON object in the commit's `userMetadata`,
the commitInfo field Spark's Delta writes from the writer option `userMetadata` and shows in `DESCRIBE HISTORY`
(delta-rs writes it as custom metadata of that name).

Pinning: every commit records the Delta app transaction (`txn` action) `APP_ID` with version = the table version
it must become. Spark's idempotent writes (writer options `txnAppId`, `txnVersion`) skip a write whose txnVersion
is not above the one recorded, and fail one that races another commit of the same app id; delta-rs records the
same action, so commits of both writers pin the same way.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Protocol

from pyspark.sql import DataFrame, SparkSession

APP_ID = "dedup-spark-index"
USER_METADATA = "userMetadata"
# A random token per commit: after a Spark write, the commit at the pinned version must carry it (else Delta
# skipped the write, or another writer took that version).
TOKEN_KEY = "dedup_spark.commit_token"


class CommitConflict(Exception):
    """The commit did not become the version it was pinned to. `landed_at`: the version it became anyway (only
    when a writer that does not pin its commits took the pinned version first), else None (nothing was added)."""

    def __init__(self, message: str, landed_at: int | None = None) -> None:
        super().__init__(message)
        self.landed_at = landed_at


class DeltaBackend(Protocol):
    """The few Delta operations the index needs; `table` is the docs table's folder or URI."""

    name: str

    def history(self, table: str, version: int | None) -> tuple[int, list[dict[str, Any]]]:
        """(the snapshot's version: `version`, or the newest), the metadata of every commit up to it, newest first,
        each with its "version"."""
        ...

    def docs(self, spark: SparkSession, table: str, version: int) -> DataFrame | None:
        """The rows of the snapshot at `version`, or None when it holds no file."""
        ...

    def append(self, frame: DataFrame, table: str, read_version: int, metadata: dict[str, str]) -> None:
        """Add `frame` in one commit that must become version read_version + 1; CommitConflict when it did not."""
        ...


def user_metadata(metadata: Mapping[str, str]) -> str:
    """The JSON string stored in a commit's `userMetadata`."""
    return json.dumps(dict(metadata), sort_keys=True)


def read_metadata(stored: str | None) -> dict[str, Any]:
    """A commit's metadata from its `userMetadata` value: the JSON object it holds; {} when it holds none (not our
    commit)."""
    try:
        parsed = json.loads(stored) if isinstance(stored, str) else None
    except ValueError:
        parsed = None
    return parsed if isinstance(parsed, dict) else {}
