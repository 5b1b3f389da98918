"""The persisted index of `run --index=INDEX`: every document earlier runs kept, as one Delta table.

Layout: `INDEX/docs`, a Delta table with one row per kept document (`DOCS_SCHEMA`):
  id         the document's `_dd_id` (input.id_column as a string, or the id derived from the text); unique
  batch      the table version whose commit added it (one commit per run: the batch number)
  text       the text as kept (after ExactSubstr's cuts): what later batches are compared with, verbatim
  bytes      UTF-8 size of the text
  text_hash  first 32 hex digits of the SHA-256 of the text (an exact-duplicate key)
  norm_hash, n_shingles, band_keys   NearDup's signature of the text (`neardup.signatures.SIGNATURE_SCHEMA`),
             so a later run joins its batch's LSH bands against the index's without hashing the index again
  minimizers the distinct ExactSubstr minimizers of the text's windows (`exactsubstr/against.py`), so a later
             run searches only the index documents that share one with its batch
Spark writes the Parquet files of a commit into the table folder (`batch-<n>-<token>/`) and delta-rs commits
them, so the table is a real Delta table that delta-spark and Databricks read (`deltalake`, offline).

Every commit carries custom metadata (the Delta commitInfo): `dedup_spark.index_format` (FORMAT_VERSION,
checked on open: an index of another format is refused, exit 2), `dedup_spark.input_fingerprint` (the batch's
input files, sizes and times, or its Delta version), `dedup_spark.signatures` (a hash of the NearDup settings and
dedup-spark version the signatures were computed with: a run reuses them only when every commit it reads has
its own, `Index.settings_match`), `dedup_spark.minimizers` (the same for min_length and minimizer width) and its
counts. A batch whose fingerprint is already in the
history is not added again (`Index.added_by`).

Why the index cannot be corrupted: a run reads the table at version v (`Index.open`), checks its batch against
that snapshot and adds its survivors with ONE commit, pinned to version v + 1 with no retry
(`max_commit_retries=0`). A run that dies before the commit leaves only unreferenced Parquet files (never read:
Delta readers follow the log). If another run committed v + 1 first, Delta's put-if-absent commit fails and this
run raises IndexConflictError (exit 2): its batch was not checked against the other run's documents, so it
must not be added; running the same command again checks it against both.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import DataFrame, SparkSession

from dedup_spark.errors import IndexConflictError, UsageError
from dedup_spark.io import storage
from dedup_spark.io.writers import delta_add_actions

FORMAT_VERSION = 1
FORMAT_KEY = "dedup_spark.index_format"
FINGERPRINT_KEY = "dedup_spark.input_fingerprint"
DOCS_TABLE = "docs"
SIGNATURES_KEY = "dedup_spark.signatures"
MINIMIZERS_KEY = "dedup_spark.minimizers"
DOCS_SCHEMA = (
    "id string, batch long, text string, bytes long, text_hash string, norm_hash string, n_shingles int, "
    "band_keys array<bigint>, minimizers array<bigint>"
)


def _uri(path: str) -> str:
    return path.removeprefix("file://")


@dataclass
class Index:
    """An index as one run sees it: the snapshot at `version` (-1: no table yet, an empty index)."""

    path: str
    version: int
    documents: int = 0
    text_bytes: int = 0
    # Commit metadata of every version, newest first (the Delta history's commitInfo).
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def table(self) -> str:
        return storage.join(self.path, DOCS_TABLE)

    @classmethod
    def open(cls, path: str, version: int | None = None) -> Index:
        """The index at `path` (its newest version, or `version`); an empty one (version -1) when there is none.

        Raises UsageError (exit 2) for a folder that is not an index, or an index of another format version.
        """
        from deltalake import DeltaTable

        table = storage.join(path, DOCS_TABLE)
        if version is not None and version < 0:  # the snapshot before the first commit: empty
            return cls(path, -1)
        if not storage.exists(storage.join(table, "_delta_log")):
            if _foreign_entries(path) and not storage.exists(table):
                raise UsageError(
                    f"--index={path} is a folder that holds no dedup-spark index (no {DOCS_TABLE}/_delta_log): "
                    "pass the index's folder, or an empty or new folder to start one"
                )
            return cls(path, -1)
        delta = DeltaTable(_uri(table), version=version)
        history = delta.history()
        formats = {str(entry.get(FORMAT_KEY)) for entry in history if entry["version"] <= delta.version()}
        if formats != {str(FORMAT_VERSION)}:
            raise UsageError(
                f"--index={path} has index format {sorted(formats)}, this dedup-spark reads format {FORMAT_VERSION}: "
                "use the dedup-spark version that wrote it, or seed a new index (dedup-spark index create)"
            )
        seen = [entry for entry in history if entry["version"] <= delta.version()]
        documents = sum(int(entry.get("documents_added", 0)) for entry in seen)
        return cls(path, delta.version(), documents, sum(int(entry.get("text_bytes_added", 0)) for entry in seen), seen)

    def key(self) -> dict[str, Any]:
        """What a run's resume fingerprint holds of the index: its path and the version read."""
        return {"path": self.path, "version": self.version}

    def added_by(self, fingerprint: str) -> int | None:
        """The version whose commit added a batch with this input fingerprint, or None."""
        for entry in self.history:
            if entry.get(FINGERPRINT_KEY) == fingerprint:
                return int(entry["version"])
        return None

    def settings_match(self, name: str, key: str) -> bool:
        """True when every commit of this snapshot stored `name` (SIGNATURES_KEY, MINIMIZERS_KEY) made with
        settings `key`."""
        return self.version >= 0 and all(entry.get(name) == key for entry in self.history)

    def docs(self, spark: SparkSession) -> DataFrame:
        """The documents of this snapshot (`DOCS_SCHEMA`), read by Spark from the files the snapshot lists."""
        if self.version < 0:
            return spark.createDataFrame([], DOCS_SCHEMA)
        from deltalake import DeltaTable

        uris = [_uri(u) for u in DeltaTable(_uri(self.table), version=self.version).file_uris()]
        if not uris:
            return spark.createDataFrame([], DOCS_SCHEMA)
        return spark.read.parquet(*[storage.to_spark_path(u) for u in uris])

    def size_on_disk(self) -> int:
        """Bytes of every file under the index folder (data of all versions and the log)."""
        return sum(size for _, size in storage.list_files_with_sizes(self.path)) if self.version >= 0 else 0

    def append(self, frame: DataFrame, fingerprint: str, counts: dict[str, Any]) -> int:
        """Add `frame` (DOCS_SCHEMA, `batch` = the new version) in one commit pinned to version + 1; returns it.

        Raises IndexConflictError when another run committed first (see the module docstring).
        """
        from deltalake import CommitProperties, DeltaTable, Schema
        from deltalake.exceptions import CommitFailedError
        from deltalake.transaction import create_table_with_add_actions

        new_version = self.version + 1
        folder = f"batch-{new_version}-{uuid.uuid4().hex[:12]}"  # not "_"-prefixed: VACUUM would skip it
        target = storage.join(self.table, folder)
        frame.write.mode("error").parquet(storage.to_spark_path(target))
        actions, schema = delta_add_actions(self.table, folder)
        metadata = {
            FORMAT_KEY: str(FORMAT_VERSION),
            FINGERPRINT_KEY: fingerprint,
            **{k: str(v) for k, v in counts.items()},
        }
        properties = CommitProperties(custom_metadata=metadata, max_commit_retries=0)
        try:
            if self.version < 0:
                create_table_with_add_actions(
                    _uri(self.table), Schema.from_arrow(schema), actions, mode="error", commit_properties=properties
                )
            else:
                DeltaTable(_uri(self.table), version=self.version).create_write_transaction(
                    actions, mode="append", schema=Schema.from_arrow(schema), commit_properties=properties
                )
        except Exception as exc:
            storage.delete(target)  # never referenced by the log: no reader sees these files
            if isinstance(exc, CommitFailedError) or (self.version < 0 and "exist" in str(exc).lower()):
                raise IndexConflictError(
                    f"--index={self.path} changed while this run worked (it read version {self.version}; another run "
                    "committed first): nothing was added; run the same command again (with --overwrite) to check "
                    "the batch against the new version"
                ) from exc
            raise
        return new_version


def _foreign_entries(path: str) -> list[str]:
    """Top-level entries of `path` other than `_work` (what a dead `index create` may leave)."""
    import pyarrow.fs as pafs

    if not storage.is_dir(path):
        return [path] if storage.exists(path) else []
    fs, inner = storage.filesystem(path)
    names = [info.path.rsplit("/", 1)[-1] for info in fs.get_file_info(pafs.FileSelector(inner, recursive=False))]
    return [name for name in names if name != "_work"]
