"""Writers: put the run's tables under the output folder as Parquet or Delta, never half-visible.

Parquet: each table is written under `DIR/_staging/<name>` and renamed into place once every table is complete;
a replaced table is moved to `DIR/_trash` first and deleted after.
Delta: Spark's `format("delta")` when the session has Delta (Databricks, clusters with the jars); otherwise
Spark writes Parquet files inside the table folder and delta-rs commits them in one transaction (mode overwrite),
so readers see the old version or the new one, nothing between. Files of replaced versions stay on disk
until `VACUUM`, as with any Delta overwrite.
"""

from __future__ import annotations

import json
import time
import uuid

import pyarrow.parquet as pq
from pyspark.sql import DataFrame, SparkSession

from dedup_spark import storage
from dedup_spark.errors import UsageError
from dedup_spark.readers import session_has_delta

# Everything dedup-spark writes at the top of an output folder; --overwrite replaces only these.
OWNED_ENTRIES = {
    "data",
    "removed",
    "quarantine",
    "neardup",
    "exact",
    "report.json",
    "report.html",
    "_work",
    "_staging",
    "_trash",
}


def check_output_folder(path: str, overwrite: bool) -> None:
    """A non-empty output needs --overwrite, and even then holds only what dedup-spark wrote."""
    if storage.is_empty_or_missing(path):
        return
    if not storage.is_dir(path):
        raise UsageError(f"--output {path!r} is a file; pass a folder")
    entries = {e.rsplit("/", 1)[-1] for e in _entries(path)}
    if not overwrite:
        raise UsageError(f"output folder {path!r} is not empty; pass --overwrite to replace it, or choose another")
    foreign = sorted(entries - OWNED_ENTRIES)
    if foreign:
        raise UsageError(
            f"output folder {path!r} holds files dedup-spark did not write ({', '.join(foreign[:5])}); "
            "refusing to overwrite it: empty it by hand or choose another folder"
        )


def _entries(path: str) -> list[str]:
    import pyarrow.fs as pafs

    fs, inner = storage.filesystem(path)
    return [i.path for i in fs.get_file_info(pafs.FileSelector(inner, recursive=False))]


class OutputWriter:
    """Writes the run's tables into `out_dir` in one format; call `commit()` once all are written."""

    def __init__(self, spark: SparkSession, out_dir: str, fmt: str, delta_writer: str = "auto") -> None:
        self.spark = spark
        self.out_dir = out_dir
        self.format = fmt
        self.run_tag = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]
        self.use_spark_delta = fmt == "delta" and (
            delta_writer == "spark" or (delta_writer == "auto" and session_has_delta(spark))
        )
        self._staged: list[str] = []
        self.written: list[str] = []
        storage.delete(storage.join(out_dir, "_staging"))
        storage.delete(storage.join(out_dir, "_trash"))

    def write(self, name: str, frame: DataFrame) -> None:
        """Write one table. Parquet tables are staged; Delta tables are committed now (atomic per table)."""
        target = storage.join(self.out_dir, name)
        self.written.append(name)
        if self.format == "parquet":
            frame.write.mode("errorifexists").parquet(
                storage.to_spark_path(storage.join(self.out_dir, "_staging", name))
            )
            self._staged.append(name)
        elif self.use_spark_delta:
            frame.write.format("delta").mode("overwrite").option("overwriteSchema", "true").save(
                storage.to_spark_path(target)
            )
        else:
            self._write_delta_with_delta_rs(target, frame)

    def _write_delta_with_delta_rs(self, target: str, frame: DataFrame) -> None:
        from deltalake import Schema
        from deltalake.transaction import AddAction, create_table_with_add_actions

        if storage.exists(target) and not storage.exists(storage.join(target, "_delta_log")):
            # An older Parquet output in the way: move it aside, it is deleted at commit.
            self._trash(target)
        # Not "_"-prefixed: VACUUM and readers skip such folders.
        folder = f"run-{self.run_tag}"
        frame.write.mode("errorifexists").parquet(storage.to_spark_path(storage.join(target, folder)))
        files = [f for f in storage.list_files(storage.join(target, folder)) if f.endswith(".parquet")]
        fs, _ = storage.filesystem(target)
        actions = []
        schema = None
        for file in files:
            _, inner = storage.filesystem(file)
            meta = pq.read_metadata(inner, filesystem=fs)
            schema = schema or meta.schema.to_arrow_schema()
            info = fs.get_file_info(inner)
            actions.append(
                AddAction(
                    path=f"{folder}/{file.rsplit('/', 1)[-1]}",
                    size=info.size,
                    partition_values={},
                    modification_time=int(info.mtime.timestamp() * 1000),
                    data_change=True,
                    stats=json.dumps({"numRecords": meta.num_rows}),
                )
            )
        if schema is None:  # Spark always writes at least one file, with the schema, even for no rows
            raise RuntimeError(f"Spark wrote no Parquet file for {target}")
        create_table_with_add_actions(target, Schema.from_arrow(schema), actions, mode="overwrite", configuration=None)

    def _trash(self, path: str) -> None:
        trash = storage.join(self.out_dir, "_trash")
        storage.make_dirs(trash)
        storage.move(path, storage.join(trash, path.rsplit("/", 1)[-1] + "-" + uuid.uuid4().hex[:6]))

    def commit(self, keep: set[str]) -> None:
        """Swap staged tables into place, then remove owned entries this run did not produce (`keep` names them)."""
        for name in self._staged:
            target = storage.join(self.out_dir, name)
            if storage.exists(target):
                self._trash(target)
            storage.make_dirs(target.rsplit("/", 1)[0])
            storage.move(storage.join(self.out_dir, "_staging", name), target)
        produced = keep | {name.split("/", 1)[0] for name in self.written}
        for entry in _entries(self.out_dir):
            name = entry.rsplit("/", 1)[-1]
            if name in OWNED_ENTRIES and name not in produced and name not in ("_staging", "_trash"):
                storage.delete(storage.join(self.out_dir, name))
        storage.delete(storage.join(self.out_dir, "_staging"))
        storage.delete(storage.join(self.out_dir, "_trash"))


def read_table(spark: SparkSession, path: str, fmt: str) -> DataFrame:
    """Read back a table this module wrote (used for the final counts and by tests)."""
    if fmt == "delta" and not session_has_delta(spark):
        from deltalake import DeltaTable

        uris = [u.removeprefix("file://") for u in DeltaTable(path).file_uris()]
        return spark.read.parquet(*uris)
    if fmt == "delta":
        return spark.read.format("delta").load(storage.to_spark_path(path))
    return spark.read.parquet(storage.to_spark_path(path))
