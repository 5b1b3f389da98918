"""Writers: put the run's tables under the output folder as Parquet or Delta, never half-visible.

Parquet: each table is written under `DIR/_staging/<name>` and renamed into place once every table is complete;
a replaced table is moved to `DIR/_trash` first and deleted after.
Delta: Spark's `format("delta")` when the session has Delta (Databricks, clusters with the jars); otherwise
Spark writes Parquet files inside the table folder and delta-rs commits them in one transaction (mode overwrite),
so readers see the old version or the new one, nothing between. Files of replaced versions stay on disk
until `VACUUM`, as with any Delta overwrite.

Catalog tables: when --output is a table prefix `catalog.schema.prefix` (Unity Catalog on Databricks), each table
is written with `saveAsTable` as `catalog.schema.prefix_data`, `..._removed`, `..._quarantine`,
`..._neardup_clusters`, `..._exact_spans` (overwrite: one atomic new version per table in Delta), and report.json
and `_work` go to the folder `output.work_path`. Every table gets the property `dedup_spark.output`, and
--overwrite replaces only tables that carry it.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

import pyarrow.parquet as pq
from pyspark.sql import DataFrame, SparkSession

from dedup_spark.config import OutputConfig, RunConfig
from dedup_spark.errors import ConfigError, UsageError
from dedup_spark.io import storage
from dedup_spark.session import session_has_delta

# Everything dedup-spark writes at the top of an output folder; --overwrite replaces only these.
OWNED_ENTRIES = {
    "data",
    "removed",
    "quarantine",
    "neardup",
    "exact",
    "eval",  # the contamination command's outputs
    "train_clean",
    "train_removed",
    "report.json",
    "report.html",
    "_work",
    "_staging",
    "_trash",
    storage.LOCK_NAME,  # held by the running job (outputlock.py); never deleted by the writer
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
            frame.write.mode("error").parquet(storage.to_spark_path(storage.join(self.out_dir, "_staging", name)))
            self._staged.append(name)
        elif self.use_spark_delta:
            frame.write.format("delta").mode("overwrite").option("overwriteSchema", "true").save(
                storage.to_spark_path(target)
            )
        else:
            self._write_delta_with_delta_rs(target, frame)

    def _write_delta_with_delta_rs(self, target: str, frame: DataFrame) -> None:
        from deltalake import Schema
        from deltalake.transaction import create_table_with_add_actions

        if storage.exists(target) and not storage.exists(storage.join(target, "_delta_log")):
            # An older Parquet output in the way: move it aside, it is deleted at commit.
            self._trash(target)
        # Not "_"-prefixed: VACUUM and readers skip such folders.
        folder = f"run-{self.run_tag}"
        frame.write.mode("error").parquet(storage.to_spark_path(storage.join(target, folder)))
        actions, schema = delta_add_actions(target, folder)
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
            if name in OWNED_ENTRIES and name not in produced and name not in ("_staging", "_trash", storage.LOCK_NAME):
                storage.delete(storage.join(self.out_dir, name))
        storage.delete(storage.join(self.out_dir, "_staging"))
        storage.delete(storage.join(self.out_dir, "_trash"))

    def read(self, name: str) -> DataFrame:
        """Read back a table this writer wrote (after `commit()`)."""
        return read_table(self.spark, storage.join(self.out_dir, name), self.format)

    def location(self, name: str) -> str:
        """Where table `name` lives, for the report."""
        return storage.join(self.out_dir, name)


def read_table(spark: SparkSession, path: str, fmt: str) -> DataFrame:
    """Read back a table this module wrote (used for the final counts and by tests)."""
    if fmt == "delta" and not session_has_delta(spark):
        from deltalake import DeltaTable

        uris = [u.removeprefix("file://") for u in DeltaTable(path).file_uris()]
        return spark.read.parquet(*uris)
    if fmt == "delta":
        return spark.read.format("delta").load(storage.to_spark_path(path))
    return spark.read.parquet(storage.to_spark_path(path))


# --- Catalog tables: --output=catalog.schema.prefix --------------------------------------------------------------

# Every table a run can write, by relative name; in table mode each is `<prefix>_<name with "/" as "_">`.
# A stage that adds an output table must add its name here.
TABLE_OUTPUTS = ("data", "removed", "quarantine", "neardup/clusters", "exact/spans")
# Table property set on every table dedup-spark writes (value: the relative name); --overwrite needs it.
OWNER_PROPERTY = "dedup_spark.output"
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MAX_NAME = 255  # Unity Catalog's limit on a table name


@dataclass(frozen=True)
class TablePrefix:
    """`catalog.schema.prefix`: the run's tables are `catalog.schema.prefix_data`, `..._removed`, ..."""

    catalog: str
    schema: str
    prefix: str

    def table(self, name: str) -> str:
        """Full name of output table `name` (e.g. "neardup/clusters" -> cat.sch.prefix_neardup_clusters)."""
        return f"{self.catalog}.{self.schema}.{self.prefix}_{name.replace('/', '_')}"

    def quoted(self, name: str) -> str:
        """The same name quoted for SQL (parts are plain identifiers, so back-quotes are safe)."""
        return ".".join(f"`{part}`" for part in self.table(name).split("."))


def is_table_prefix(output: str) -> bool:
    """True when --output names catalog tables, not a folder: no '/', ':' or '\\' and at least two dots.

    A relative folder whose name has two dots is written `./name`.
    """
    return bool(output) and not any(c in output for c in "/:\\") and output.count(".") >= 2


def parse_table_prefix(output: str) -> TablePrefix:
    """`catalog.schema.prefix` -> TablePrefix, or UsageError (exit 2) saying what a valid name looks like."""
    parts = output.split(".")
    if len(parts) != 3 or not all(_IDENTIFIER.match(part) for part in parts):
        raise UsageError(
            f"--output {output!r} looks like a table name but is not catalog.schema.prefix made of plain names "
            f"(letters, digits and underscores, not starting with a digit), e.g. main.dedup.corpus; "
            f"for a folder write ./{output}"
        )
    longest = max(len(TablePrefix(*parts).table(name).rsplit(".", 1)[1]) for name in TABLE_OUTPUTS)
    if longest > _MAX_NAME:
        raise UsageError(f"--output {output!r}: the table prefix is too long (table names are at most {_MAX_NAME})")
    return TablePrefix(*parts)


def output_files_dir(output: OutputConfig) -> str:
    """The folder for report.json and `_work`: the output folder, or output.work_path in table mode."""
    if not is_table_prefix(output.path):
        if output.work_path:
            raise ConfigError(
                "output.work_path is only for table outputs (--output=catalog.schema.prefix); a folder output "
                "keeps report.json and _work inside it: drop the setting"
            )
        return output.path
    if not output.work_path:
        raise ConfigError(
            f"--output {output.path!r} names catalog tables, so report.json and the work files need a folder: "
            "set output.work_path, e.g. --set output.work_path=/Volumes/<catalog>/<schema>/<volume>/dedup"
        )
    if is_table_prefix(output.work_path):
        raise ConfigError(f"output.work_path={output.work_path!r} must be a folder path, not a table name")
    return output.work_path


def check_output(spark: SparkSession, config: RunConfig, unfinished: bool = False) -> None:
    """Before any work: the output (folder or tables) can be written, and --overwrite is given where needed.

    `unfinished`: the folder for report.json and _work holds only an unfinished run (resume.is_unfinished_run),
    which a folder output may continue without --overwrite. Tables are checked either way: a finished run's
    tables stay readable until this run replaces them.
    """
    output = config.output
    if not is_table_prefix(output.path):
        output_files_dir(output)
        if not unfinished:
            check_output_folder(output.path, output.overwrite)
        return
    prefix = parse_table_prefix(output.path)
    work_path = output_files_dir(output)
    if output.format == "delta" and not session_has_delta(spark):
        raise UsageError(
            f"--output {output.path!r} names Delta tables, but this Spark session has no Delta Lake "
            "(Databricks, or the Delta extension and jars): write to a folder instead"
        )
    targets = {name: prefix.table(name) for name in TABLE_OUTPUTS}
    if config.input.path.lower() in {t.lower() for t in targets.values()}:
        raise UsageError(f"--output {output.path!r} would overwrite the input table {config.input.path!r}")
    schema = f"{prefix.catalog}.{prefix.schema}"
    if not spark.catalog.databaseExists(schema):
        raise UsageError(f"schema {schema!r} does not exist: create it (CREATE SCHEMA {schema}) or pick another")
    existing = {name: table for name, table in targets.items() if spark.catalog.tableExists(table)}
    if existing and not output.overwrite:
        raise UsageError(
            f"tables {', '.join(existing.values())} already exist; pass --overwrite to replace them, "
            "or choose another prefix"
        )
    foreign = [table for name, table in existing.items() if _owner(spark, prefix.quoted(name)) is None]
    if foreign:
        raise UsageError(
            f"tables {', '.join(foreign)} exist but dedup-spark did not write them (no table property "
            f"{OWNER_PROPERTY!r}); refusing to overwrite them: drop them or choose another prefix"
        )
    _check_work_folder(work_path)


def _check_work_folder(path: str) -> None:
    if storage.is_empty_or_missing(path):
        return
    if not storage.is_dir(path):
        raise UsageError(f"output.work_path {path!r} is a file; pass a folder")
    foreign = sorted({e.rsplit("/", 1)[-1] for e in _entries(path)} - OWNED_ENTRIES)
    if foreign:
        raise UsageError(
            f"output.work_path {path!r} holds files dedup-spark did not write ({', '.join(foreign[:5])}); "
            "give each output its own empty work folder"
        )


def _owner(spark: SparkSession, quoted_table: str) -> str | None:
    """The table's `dedup_spark.output` property, or None when dedup-spark did not write it."""
    rows = spark.sql(f"SHOW TBLPROPERTIES {quoted_table}").collect()
    return {row[0]: row[1] for row in rows}.get(OWNER_PROPERTY)


class TableOutputWriter:
    """Writes the run's tables as catalog tables `<prefix>_<name>`; the same interface as `OutputWriter`."""

    def __init__(self, spark: SparkSession, prefix: TablePrefix, fmt: str) -> None:
        self.spark = spark
        self.prefix = prefix
        self.format = fmt
        self.written: list[str] = []

    def write(self, name: str, frame: DataFrame) -> None:
        """Replace table `name` (atomic in Delta: readers see the old or the new version) and mark it as ours."""
        if name not in TABLE_OUTPUTS:
            raise ValueError(f"output table {name!r} is not in writers.TABLE_OUTPUTS; add it there")
        writer = frame.write.format(self.format).mode("overwrite")
        if self.format == "delta":
            writer = writer.option("overwriteSchema", "true")
        writer.saveAsTable(self.prefix.table(name))
        quoted = self.prefix.quoted(name)
        # Delta keeps table properties across overwrites; set it only when missing so a re-run adds no version.
        if _owner(self.spark, quoted) != name:
            self.spark.sql(f"ALTER TABLE {quoted} SET TBLPROPERTIES ('{OWNER_PROPERTY}' = '{name}')")
        self.written.append(name)

    def commit(self, keep: set[str]) -> None:
        """Drop our tables of this prefix that this run did not produce (a stage an earlier run had).

        `keep` names files in the work folder and does not apply to tables; accepted for the common interface.
        """
        for name in TABLE_OUTPUTS:
            if name in self.written or not self.spark.catalog.tableExists(self.prefix.table(name)):
                continue
            if _owner(self.spark, self.prefix.quoted(name)) is not None:
                self.spark.sql(f"DROP TABLE {self.prefix.quoted(name)}")

    def read(self, name: str) -> DataFrame:
        """Read back a table this writer wrote."""
        return self.spark.read.table(self.prefix.table(name))

    def location(self, name: str) -> str:
        """The table's full name, for the report."""
        return self.prefix.table(name)


def open_output_writer(spark: SparkSession, output: OutputConfig) -> OutputWriter | TableOutputWriter:
    """The writer for --output: catalog tables for a table prefix, else the output folder."""
    if is_table_prefix(output.path):
        return TableOutputWriter(spark, parse_table_prefix(output.path), output.format)
    return OutputWriter(spark, output.path, output.format, output.delta_writer)


def delta_add_actions(table: str, folder: str) -> tuple[list[Any], Any]:
    """Delta add actions for the Parquet files Spark wrote into `table/folder`, and their Arrow schema (for
    delta-rs to commit them: the output writer and the index)."""
    from deltalake.transaction import AddAction

    fs, _ = storage.filesystem(table)
    actions, schema = [], None
    for file in sorted(f for f in storage.list_files(storage.join(table, folder)) if f.endswith(".parquet")):
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
    if schema is None:  # Spark writes at least one file, with the schema, even for no rows
        raise RuntimeError(f"Spark wrote no Parquet file under {table}/{folder}")
    return actions, schema
