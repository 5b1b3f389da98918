"""The persisted index of `run --index=INDEX`: every document earlier runs kept, as one Delta table.

Layout: `INDEX/docs`, a Delta table with one row per kept document (`DOCS_SCHEMA`):
  id         the document's `_dd_id` (input.id_column as a string, or the id derived from the text); unique
  batch      the table version whose commit added it (one commit per run: the batch number)
  text       the text as kept (after ExactSubstr's cuts): what later batches are compared with, verbatim
  bytes      UTF-8 size of the text
  text_hash  first 32 hex digits of the SHA-256 of the text (an exact-duplicate key)
  norm_hash, n_shingles, band_keys   NearDup's signature of the text (`neardup.signatures.SIGNATURE_SCHEMA`),
             so a later run joins its batch's LSH bands against the index's without hashing the index again
  superkmers ExactSubstr's super-k-mers of the text (start, end, minimizer, a digest of their bytes, their
             context keys), each distinct one stored with the first document holding it in its commit
             (`exactsubstr/against.doc_superkmers`), so a later run reads only the index text that can share a
             window with its batch, settles long shared passages by digest, and reads a repeated header once
Which Delta writer (`index.delta_writer`, like `output.delta_writer`): `auto` uses Spark's own Delta when the
session has Delta (Databricks, clusters with the Delta jars: `spark_delta.py`), else delta-rs (`delta_rs.py`:
Spark writes the Parquet files into the table folder, `batch-<n>-<token>/`, and delta-rs commits them); `spark`
or `deltalake` force one. On Databricks the index lives on /Volumes/... or cloud URIs where delta-rs may not be
able to commit (no credentials in Python, FUSE without atomic rename), so auto picks Spark's Delta there. Either
way the table is a real Delta table that both read. The Spark-Delta path is untested against a real JVM Delta
here (our machines have no Delta jars): its tests run it on a fake session.

Every commit carries metadata, as one JSON object in the commit's `userMetadata` (`commits.py`):
`dedup_spark.index_format` (FORMAT_VERSION,
checked on open: an index of another format is refused, exit 2), `dedup_spark.input_fingerprint` (the batch's
input files, sizes and times, or its Delta version), `dedup_spark.signatures` (a hash of the NearDup settings and
dedup-spark version the signatures were computed with: a run reuses them only when every commit it reads has
its own, `Index.settings_match`), `dedup_spark.minimizers` (the same for min_length and minimizer width), a random
`dedup_spark.commit_token` and its counts. A batch whose fingerprint is already in the
history is not added again (`Index.added_by`).

Why the index cannot be corrupted: a run reads the table at version v (`Index.open`), checks its batch against
that snapshot and adds its survivors with ONE commit, pinned to version v + 1 with no retry. A run that dies
before the commit leaves at most unreferenced Parquet files (never read: Delta readers follow the log). If
another run committed v + 1 first, this run raises IndexConflictError (exit 2): its batch was not checked against
the other run's documents, so it must not be added; running the same command again checks it against both.
delta-rs pins by committing with `max_commit_retries=0` (Delta's put-if-absent of version v + 1 fails); Spark's
Delta pins with the app transaction `txnAppId`/`txnVersion` = v + 1, and the run checks afterwards that version
v + 1 carries its token (`spark_delta.py`). Both writers record that app transaction, so they pin alike.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import DataFrame, SparkSession

from dedup_spark.errors import IndexConflictError, UsageError
from dedup_spark.index.commits import TOKEN_KEY, CommitConflict, DeltaBackend
from dedup_spark.index.delta_rs import DeltaRs
from dedup_spark.index.spark_delta import SparkDelta
from dedup_spark.io import storage
from dedup_spark.session import session_has_delta

log = logging.getLogger("dedup_spark")

# 2: superkmers replaced the per-document minimizer sets of format 1; 3: each super-k-mer has a digest and keys.
FORMAT_VERSION = 3
FORMAT_KEY = "dedup_spark.index_format"
FINGERPRINT_KEY = "dedup_spark.input_fingerprint"
DOCS_TABLE = "docs"
SIGNATURES_KEY = "dedup_spark.signatures"
MINIMIZERS_KEY = "dedup_spark.minimizers"
DOCS_SCHEMA = (
    "id string, batch long, text string, bytes long, text_hash string, norm_hash string, n_shingles int, "
    "band_keys array<bigint>, "
    "superkmers array<struct<start:int,end:int,minimizer:bigint,digest:binary,keys:array<int>>>"
)


def choose_backend(spark: SparkSession, delta_writer: str = "auto") -> DeltaBackend:
    """index.delta_writer: "spark" (Spark's own Delta), "deltalake" (delta-rs), "auto" (Spark's when the session
    has Delta)."""
    if delta_writer == "spark" or (delta_writer == "auto" and session_has_delta(spark)):
        return SparkDelta(spark)
    return DeltaRs()


@dataclass
class Index:
    """An index as one run sees it: the snapshot at `version` (-1: no table yet, an empty index)."""

    path: str
    version: int
    documents: int = 0
    text_bytes: int = 0
    # Commit metadata of every version, newest first (the Delta history's commit metadata), each with "version".
    history: list[dict[str, Any]] = field(default_factory=list)
    backend: DeltaBackend = field(default_factory=DeltaRs, repr=False, compare=False)

    @property
    def table(self) -> str:
        return storage.join(self.path, DOCS_TABLE)

    @classmethod
    def open(cls, spark: SparkSession, path: str, version: int | None = None, delta_writer: str = "auto") -> Index:
        """The index at `path` (its newest version, or `version`); an empty one (version -1) when there is none.
        `delta_writer` picks how Delta is read and written (`choose_backend`).

        Raises UsageError (exit 2) for a folder that is not an index, or an index of another format version.
        """
        return cls._load(path, version, choose_backend(spark, delta_writer))

    def at(self, version: int | None = None) -> Index:
        """The same index at `version` (None: its newest), read through the same Delta writer."""
        return Index._load(self.path, version, self.backend)

    @classmethod
    def _load(cls, path: str, version: int | None, backend: DeltaBackend) -> Index:
        table = storage.join(path, DOCS_TABLE)
        if version is not None and version < 0:  # the snapshot before the first commit: empty
            return cls(path, -1, backend=backend)
        if not storage.exists(storage.join(table, "_delta_log")):
            if _foreign_entries(path) and not storage.exists(table):
                raise UsageError(
                    f"--index={path} is a folder that holds no dedup-spark index (no {DOCS_TABLE}/_delta_log): "
                    "pass the index's folder, or an empty or new folder to start one"
                )
            return cls(path, -1, backend=backend)
        snapshot, seen = backend.history(table, version)
        formats = {str(entry.get(FORMAT_KEY)) for entry in seen}
        if formats != {str(FORMAT_VERSION)}:
            raise UsageError(
                f"--index={path} has index format {sorted(formats)}, this dedup-spark reads format {FORMAT_VERSION}: "
                "use the dedup-spark version that wrote it, or seed a new index (dedup-spark index create)"
            )
        documents = sum(int(entry.get("documents_added", 0)) for entry in seen)
        text_bytes = sum(int(entry.get("text_bytes_added", 0)) for entry in seen)
        return cls(path, snapshot, documents, text_bytes, seen, backend)

    def key(self) -> dict[str, Any]:
        """What a run's resume fingerprint holds of the index: its path, the version read and that version's commit
        token, so another index made at the same path (deleted and seeded again) is not taken for this one."""
        token = self.history[0].get(TOKEN_KEY) if self.history else None
        return {"path": self.path, "version": self.version, "commit_token": token}

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
        """The documents of this snapshot (`DOCS_SCHEMA`)."""
        if self.version < 0:
            return spark.createDataFrame([], DOCS_SCHEMA)
        frame = self.backend.docs(spark, self.table, self.version)
        return spark.createDataFrame([], DOCS_SCHEMA) if frame is None else frame

    def size_on_disk(self) -> int | None:
        """Bytes of every file under the index folder (data of all versions and the log); None where this
        process cannot list the storage (a cloud URI whose credentials only the cluster holds)."""
        if self.version < 0:
            return 0
        try:
            return sum(size for _, size in storage.list_files_with_sizes(self.path))
        except OSError as exc:
            log.warning("index: cannot list %s to measure its size (%s): size_on_disk_bytes is null", self.path, exc)
            return None

    def append(self, frame: DataFrame, fingerprint: str, counts: dict[str, Any]) -> int:
        """Add `frame` (DOCS_SCHEMA, `batch` = the new version) in one commit pinned to version + 1; returns it.

        Raises IndexConflictError when another run committed first (see the module docstring).
        """
        metadata = {
            FORMAT_KEY: str(FORMAT_VERSION),
            FINGERPRINT_KEY: fingerprint,
            TOKEN_KEY: uuid.uuid4().hex,
            **{k: str(v) for k, v in counts.items()},
        }
        try:
            self.backend.append(frame, self.table, self.version, metadata)
        except CommitConflict as exc:
            if exc.landed_at is not None:
                raise IndexConflictError(
                    f"--index={self.path}: this run's documents were added as version {exc.landed_at}, but version "
                    f"{self.version + 1} was committed meanwhile by a writer that does not pin its commits (an older "
                    "dedup-spark?), so the batch was not checked against it: check that version's documents "
                    f"against this batch by hand ({exc})"
                ) from exc
            raise IndexConflictError(
                f"--index={self.path} changed while this run worked (it read version {self.version}; another run "
                "committed first): nothing was added; run the same command again (with --overwrite) to check "
                f"the batch against the new version ({self.backend.name}: {exc})"
            ) from exc
        return self.version + 1


def _foreign_entries(path: str) -> list[str]:
    """Top-level entries of `path` other than `_work` (what a dead `index create` may leave)."""
    import pyarrow.fs as pafs

    if not storage.is_dir(path):
        return [path] if storage.exists(path) else []
    fs, inner = storage.filesystem(path)
    names = [info.path.rsplit("/", 1)[-1] for info in fs.get_file_info(pafs.FileSelector(inner, recursive=False))]
    return [name for name in names if name != "_work"]
