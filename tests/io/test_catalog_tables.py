"""Catalog tables as input and output (--output=catalog.schema.prefix, report.json and _work in output.work_path).

On Databricks these are Unity Catalog Delta tables. Here there are no Delta jars, so the same code is run against
Spark's built-in catalog (`spark_catalog.<database>.<table>`, Parquet tables in a database under tmp_path);
the name rules and errors need no Spark at all.
"""

from __future__ import annotations

import json
import uuid

import pytest

from dedup_spark.config import build_config
from dedup_spark.errors import ConfigError, InputError, UsageError
from dedup_spark.io.writers import (
    OWNER_PROPERTY,
    TableOutputWriter,
    TablePrefix,
    check_output,
    is_table_prefix,
    output_files_dir,
    parse_table_prefix,
)


def _pipeline_writes_tables() -> bool:
    import inspect

    import dedup_spark.pipeline

    return "open_output_writer" in inspect.getsource(dedup_spark.pipeline)


# The CLI tests need pipeline.py to send outputs through writers.open_output_writer and output_files_dir;
# before that it would take the table prefix for a relative folder.
needs_pipeline_wiring = pytest.mark.skipif(
    not _pipeline_writes_tables(), reason="pipeline.py does not use writers.open_output_writer yet"
)


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("main.dedup.corpus", True),
        ("out.v1.final", True),  # a folder with two dots in its name is written ./out.v1.final
        ("./out.v1.final", False),
        ("out", False),
        ("clean.v2", False),
        ("/Volumes/main/dedup/vol", False),
        ("s3://bucket/a.b.c", False),
        ("C:\\data\\a.b.c", False),
    ],
)
def test_which_outputs_name_tables(output, expected):
    assert is_table_prefix(output) is expected


def test_table_names_follow_the_prefix():
    prefix = parse_table_prefix("main.dedup.corpus")
    assert prefix == TablePrefix("main", "dedup", "corpus")
    assert prefix.table("data") == "main.dedup.corpus_data"
    assert prefix.table("neardup/clusters") == "main.dedup.corpus_neardup_clusters"
    assert prefix.quoted("exact/spans") == "`main`.`dedup`.`corpus_exact_spans`"


@pytest.mark.parametrize(
    "output", ["main.dedup.corpus.extra", "main..corpus", "main.de-dup.corpus", "main.dedup.1st", "main.dedup.a b"]
)
def test_bad_table_names_are_usage_errors(output):
    with pytest.raises(UsageError, match=r"catalog\.schema\.prefix.*for a folder write \./") as error:
        parse_table_prefix(output)
    assert error.value.exit_code == 2


def test_a_table_prefix_too_long_for_the_catalog_is_refused():
    parse_table_prefix("main.dedup." + "p" * (255 - len("_neardup_clusters")))
    with pytest.raises(UsageError, match="too long"):
        parse_table_prefix("main.dedup." + "p" * (256 - len("_neardup_clusters")))


def _config(output: str, **settings: str):
    return build_config({"input.path": "in.jsonl", "output.path": output, **settings})


def test_work_path_is_required_for_tables_and_refused_for_folders():
    with pytest.raises(ConfigError, match=r"set output\.work_path") as error:
        output_files_dir(_config("main.dedup.corpus").output)
    assert error.value.exit_code == 2
    work = "/Volumes/main/dedup/work/corpus"
    assert output_files_dir(_config("main.dedup.corpus", **{"output.work_path": work}).output) == work
    assert output_files_dir(_config("out").output) == "out"
    with pytest.raises(ConfigError, match="only for table outputs"):
        output_files_dir(_config("out", **{"output.work_path": work}).output)
    with pytest.raises(ConfigError, match="must be a folder"):
        output_files_dir(_config("main.dedup.corpus", **{"output.work_path": "main.dedup.work"}).output)


def test_missing_work_path_is_refused_before_spark_is_needed():
    with pytest.raises(ConfigError, match="output.work_path"):
        check_output(None, _config("main.dedup.corpus"))  # the name checks never touch Spark


# --- with Spark's built-in catalog -----------------------------------------------------------------------------


@pytest.fixture
def database(spark, tmp_path):
    """A database of the built-in catalog whose tables live under tmp_path (not in ./spark-warehouse)."""
    name = f"dd_test_{uuid.uuid4().hex[:8]}"
    spark.sql(f"CREATE DATABASE {name} LOCATION '{tmp_path / 'warehouse'}'")
    yield name
    spark.sql(f"DROP DATABASE {name} CASCADE")


def _properties(spark, table: str) -> dict[str, str]:
    return {row[0]: row[1] for row in spark.sql(f"SHOW TBLPROPERTIES {table}").collect()}


def test_writer_replaces_tables_and_marks_them_as_ours(spark, database, tmp_path):
    prefix = TablePrefix("spark_catalog", database, "corpus")
    first = TableOutputWriter(spark, prefix, "parquet")
    first.write("data", spark.createDataFrame([(1, "a"), (2, "b")], "id int, text string"))
    clusters = spark.createDataFrame([("1", "1", 2, True)], "doc_id string, cluster_id string, size int, kept boolean")
    first.write("neardup/clusters", clusters)
    table = f"spark_catalog.{database}.corpus_data"
    assert sorted(spark.sql(f"SELECT id, text FROM {table}").collect()) == [(1, "a"), (2, "b")]
    assert _properties(spark, table)[OWNER_PROPERTY] == "data"
    assert _properties(spark, f"{database}.corpus_neardup_clusters")[OWNER_PROPERTY] == "neardup/clusters"
    location = spark.sql(f"DESCRIBE TABLE EXTENDED {table}").where("col_name = 'Location'").first()["data_type"]
    assert str(tmp_path / "warehouse") in location
    assert first.location("neardup/clusters") == f"spark_catalog.{database}.corpus_neardup_clusters"

    # A second run without the neardup stage: data replaced (not appended), the stale clusters table dropped.
    second = TableOutputWriter(spark, prefix, "parquet")
    second.write("data", spark.createDataFrame([(3, "c")], "id int, text string"))
    second.commit(keep=set())
    assert [tuple(r) for r in second.read("data").collect()] == [(3, "c")]
    assert _properties(spark, table)[OWNER_PROPERTY] == "data"
    assert not spark.catalog.tableExists(f"spark_catalog.{database}.corpus_neardup_clusters")
    with pytest.raises(ValueError, match="TABLE_OUTPUTS"):
        second.write("other", spark.createDataFrame([(1,)], "x int"))


def test_commit_leaves_tables_it_did_not_write(spark, database):
    spark.sql(f"CREATE TABLE {database}.corpus_exact_spans USING parquet AS SELECT 1 AS precious")
    writer = TableOutputWriter(spark, TablePrefix("spark_catalog", database, "corpus"), "parquet")
    writer.write("data", spark.createDataFrame([(1, "a")], "id int, text string"))
    writer.commit(keep=set())
    assert spark.sql(f"SELECT precious FROM {database}.corpus_exact_spans").collect()[0][0] == 1


def _table_config(database: str, tmp_path, **settings: str):
    base = {
        "input.path": "in.jsonl",
        "output.path": f"spark_catalog.{database}.corpus",
        "output.format": "parquet",
        "output.work_path": str(tmp_path / "work"),
    }
    return build_config({**base, **settings})


def test_check_output_needs_overwrite_and_refuses_foreign_tables(spark, database, tmp_path):
    config = _table_config(database, tmp_path)
    check_output(spark, config)  # nothing there yet
    TableOutputWriter(spark, parse_table_prefix(config.output.path), "parquet").write(
        "data", spark.createDataFrame([(1, "a")], "id int, text string")
    )
    with pytest.raises(UsageError, match="already exist; pass --overwrite") as error:
        check_output(spark, config)
    assert error.value.exit_code == 2
    overwrite = _table_config(database, tmp_path, **{"output.overwrite": "true"})
    check_output(spark, overwrite)

    spark.sql(f"CREATE TABLE {database}.corpus_removed USING parquet AS SELECT 1 AS precious")
    with pytest.raises(UsageError, match="dedup-spark did not write them"):
        check_output(spark, overwrite)
    assert spark.sql(f"SELECT precious FROM {database}.corpus_removed").collect()[0][0] == 1


def test_check_output_names_the_problem(spark, database, tmp_path):
    with pytest.raises(UsageError, match="schema 'spark_catalog.no_such_db' does not exist"):
        check_output(spark, _table_config(database, tmp_path, **{"output.path": "spark_catalog.no_such_db.corpus"}))
    source = f"spark_catalog.{database}.corpus_data"
    with pytest.raises(UsageError, match="would overwrite the input table"):
        check_output(spark, _table_config(database, tmp_path, **{"input.path": source}))
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "notes.txt").write_text("not ours")
    with pytest.raises(UsageError, match="holds files dedup-spark did not write"):
        check_output(spark, _table_config(database, tmp_path))
    with pytest.raises(UsageError, match="no Delta Lake"):  # no Delta jars in this session
        check_output(spark, _table_config(database, tmp_path, **{"output.format": "delta"}))


def test_catalog_table_input_is_read_by_name(spark, database):
    from dedup_spark.io.readers import read_input, resolve_source

    spark.sql(f"CREATE TABLE {database}.src USING parquet AS SELECT 1 AS id, 'some text' AS text")
    spark.sql(f"CREATE VIEW {database}.src_view AS SELECT * FROM {database}.src")
    config = build_config({"input.path": f"spark_catalog.{database}.src", "output.path": "out"}).input
    source = resolve_source(spark, config)
    assert (source.format, source.is_table_name) == ("table", True)
    (row,) = read_input(spark, source, config).collect()
    assert (row["id"], row["text"], row["_dd_reason"]) == (1, "some text", None)
    assert row["_dd_file"].endswith(".parquet")  # the data file, as for file inputs

    view = build_config({"input.path": f"{database}.src_view", "output.path": "out"}).input
    (row,) = read_input(spark, resolve_source(spark, view), view).collect()
    assert row["_dd_file"] == f"{database}.src_view"  # a view has no files: the view's name

    missing = build_config({"input.path": f"{database}.nothing_here", "output.path": "out"}).input
    with pytest.raises(InputError, match="does not exist"):
        resolve_source(spark, missing)


# --- the CLI end to end, as the Databricks job runs it ----------------------------------------------------------

ROWS = [(i, f"document {i} about a subject of its own, with words that differ: {'x' * i}") for i in range(1, 6)]


@pytest.fixture
def source_table(spark, database):
    rows = [*ROWS, (6, ROWS[0][1]), (7, None)]  # 6 copies 1 (removed by neardup); 7 has no text (quarantined)
    spark.createDataFrame(rows, "id int, text string").write.saveAsTable(f"{database}.src")
    return f"spark_catalog.{database}.src"


@needs_pipeline_wiring
def test_cli_writes_catalog_tables_and_resumes_like_the_job(
    spark, run_cli, database, source_table, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)  # had the output been taken for a relative folder, it lands here
    work = tmp_path / "work"
    output = f"spark_catalog.{database}.corpus"
    args = [
        "run",
        f"--input={source_table}",
        f"--output={output}",
        "--output-format=parquet",
        f"--set=output.work_path={work}",
        "--set=input.id_column=id",
        "--stages=neardup",
        "--overwrite",
    ]
    # The job's first task stops after ingest; the last runs the same command to the end, reusing ingest.
    assert run_cli(*args, "--stop-after=ingest") == 0
    assert not spark.catalog.tableExists(f"{output}_data")
    assert run_cli(*args) == 0

    report = json.loads((work / "report.json").read_text())
    assert report["status"] == "succeeded"
    assert [s.get("reused", False) for s in report["stages"]] == [True, False]
    assert report["accounting"] | {"identity": None} == {
        "rows_read": 7,
        "rows_written": 5,
        "rows_removed": 1,
        "rows_quarantined": 1,
        "identity": None,
        "balanced": True,
    }
    assert report["outputs"]["data"] == f"{output}_data" and report["outputs"]["report"] == str(work / "report.json")
    assert sorted(r.id for r in spark.table(f"{output}_data").collect()) == [1, 2, 3, 4, 5]
    assert [(r.id, r.reason) for r in spark.table(f"{output}_removed").collect()] == [(6, "near_duplicate")]
    assert [r.reason for r in spark.table(f"{output}_quarantine").collect()] == ["null_text"]
    assert spark.catalog.tableExists(f"{output}_neardup_clusters")
    assert not (work / "_work").exists()

    # Again without --overwrite: refused before any work, the tables untouched.
    assert run_cli(*args[:-1]) == 2
    assert spark.table(f"{output}_data").count() == 5


@needs_pipeline_wiring
def test_cli_table_output_without_work_path_is_a_config_error(
    run_cli, source_table, database, capsys, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    output = f"spark_catalog.{database}.corpus"
    assert run_cli("run", f"--input={source_table}", f"--output={output}", "--set=input.id_column=id") == 2
    assert "output.work_path" in capsys.readouterr().err
    assert not (tmp_path / output).exists()
