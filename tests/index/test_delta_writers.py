"""The index's two Delta writers (index/delta_rs.py, index/spark_delta.py) and how one is chosen (index/store.py).

delta-rs: the commit metadata and the app transaction are checked in the _delta_log JSON itself. Spark's Delta
cannot run here (no Delta jars), so its writer runs against `FakeDeltaSession`: the few calls it makes
(`sql("DESCRIBE HISTORY ...")`, the delta writer with its options, the `versionAsOf` read), with Delta's documented
idempotent-write rule (a write whose txnVersion is not above the one recorded for its txnAppId is skipped).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dedup_spark.errors import IndexConflictError, UsageError
from dedup_spark.index.commits import APP_ID, TOKEN_KEY, read_metadata
from dedup_spark.index.delta_rs import DeltaRs
from dedup_spark.index.spark_delta import SparkDelta, is_concurrency_error
from dedup_spark.index.store import DOCS_SCHEMA, FINGERPRINT_KEY, FORMAT_KEY, FORMAT_VERSION, Index, choose_backend

FORMAT = str(FORMAT_VERSION)


def _log(table: Path) -> dict[int, list[dict[str, Any]]]:
    """version -> the actions of its commit file, as written."""
    return {
        int(f.stem): [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
        for f in sorted((table / "_delta_log").glob("*.json"))
    }


def _append(spark, index: Index, ids: list[str], fingerprint: str) -> int:
    rows = [(i, index.version + 1, i * 3, 3 * len(i), i, i, 1, [1, 2], [(0, 1, 3, b"d" * 16, [7])]) for i in ids]
    return index.append(spark.createDataFrame(rows, DOCS_SCHEMA), fingerprint, {"documents_added": len(ids)})


# --- delta-rs ---------------------------------------------------------------------------------------------------


def test_delta_rs_commits_carry_user_metadata_and_the_app_transaction(spark, tmp_path):
    path = str(tmp_path / "index")
    assert _append(spark, Index.open(spark, path, delta_writer="deltalake"), ["a"], "fp-a") == 0
    assert _append(spark, Index.open(spark, path, delta_writer="deltalake"), ["b", "c"], "fp-b") == 1
    log = _log(tmp_path / "index" / "docs")
    tokens = set()
    for version, fingerprint, added in ((0, "fp-a", "1"), (1, "fp-b", "2")):
        info = next(a["commitInfo"] for a in log[version] if "commitInfo" in a)
        stored = json.loads(info["userMetadata"])
        assert stored[FORMAT_KEY] == FORMAT and stored[FINGERPRINT_KEY] == fingerprint
        assert stored["documents_added"] == added and len(stored[TOKEN_KEY]) == 32
        tokens.add(stored[TOKEN_KEY])
        assert [a["txn"] for a in log[version] if "txn" in a] == [{"appId": APP_ID, "version": version}]
    assert len(tokens) == 2
    index = Index.open(spark, path, delta_writer="deltalake")
    assert (index.version, index.documents, index.added_by("fp-a"), index.added_by("fp-b")) == (1, 3, 0, 1)


def test_history_reads_user_metadata_and_refuses_format_1_commits(spark, tmp_path):
    import pyarrow as pa
    from deltalake import CommitProperties, Schema
    from deltalake.transaction import create_table_with_add_actions

    schema = Schema.from_arrow(pa.schema([("id", pa.string())]))
    both = {
        FORMAT_KEY: FORMAT,
        FINGERPRINT_KEY: "fp-top",
        "userMetadata": json.dumps({FORMAT_KEY: FORMAT, FINGERPRINT_KEY: "fp-json"}),
    }
    create_table_with_add_actions(str(tmp_path / "new" / "docs"), schema, [], commit_properties=CommitProperties(both))
    new = Index.open(spark, str(tmp_path / "new"), delta_writer="deltalake")
    assert new.added_by("fp-json") == 0 and new.added_by("fp-top") is None
    older = {FORMAT_KEY: "1", FINGERPRINT_KEY: "fp-old"}  # format 1 kept its keys at the top level only
    create_table_with_add_actions(str(tmp_path / "old" / "docs"), schema, [], commit_properties=CommitProperties(older))
    with pytest.raises(UsageError, match="index format \\['None'\\]"):
        Index.open(spark, str(tmp_path / "old"), delta_writer="deltalake")


def test_read_metadata_reads_user_metadata_only():
    assert read_metadata(json.dumps({FINGERPRINT_KEY: "y"})) == {FINGERPRINT_KEY: "y"}
    assert read_metadata("a note someone typed") == {}  # not ours: no keys
    assert read_metadata(None) == {}


# --- Spark's Delta, on a fake session ------------------------------------------------------------------------------


class ConcurrentTransactionException(Exception):
    """Named as Delta's (io.delta.exceptions): what a lost race raises."""


class FakeDeltaSession:
    """A Delta table as Spark's Delta shows it: commits (version, userMetadata) and app transactions. Records every
    write's options and every versionAsOf read."""

    def __init__(self, table_dir: Path | None = None, extensions: str = "") -> None:
        self.commits: list[dict[str, Any]] = []
        self.txn: dict[str, int] = {}
        self.writes: list[dict[str, Any]] = []
        self.reads: list[tuple[str, Any, str]] = []
        self.queries: list[str] = []
        self.fail_with: Exception | None = None
        self.before_write = None  # called at the start of a write (another writer commits meanwhile)
        self.table_dir = table_dir
        self.conf = _Conf({"spark.sql.extensions": extensions})
        self.read = _Reader(self)

    def commit(self, user_metadata: str | None, txn_version: int | None = None) -> None:
        self.commits.append({"version": len(self.commits), "userMetadata": user_metadata})
        if txn_version is not None:
            self.txn[APP_ID] = txn_version
        if self.table_dir is not None:
            (self.table_dir / "_delta_log").mkdir(parents=True, exist_ok=True)

    def sql(self, query: str) -> _Rows:
        self.queries.append(query)
        assert query.startswith("DESCRIBE HISTORY delta.`") and query.endswith("`"), query
        return _Rows(list(reversed(self.commits)))

    def save(self, options: dict[str, str], fmt: str, mode: str, path: str) -> None:
        self.writes.append({"options": dict(options), "format": fmt, "mode": mode, "path": path})
        if self.before_write is not None:
            self.before_write()
        if self.fail_with is not None:
            raise self.fail_with
        app, version = options.get("txnAppId"), int(options["txnVersion"])
        if app in self.txn and version <= self.txn[app]:
            return  # Delta's idempotent writes: skipped, no error
        self.commit(options.get("userMetadata"), version)


class _Conf:
    def __init__(self, values: dict[str, str]) -> None:
        self.values = values

    def get(self, key: str, default: str | None = None) -> str | None:
        return self.values.get(key, default)


class _Rows:
    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows

    def select(self, *columns: str) -> _Rows:
        return _Rows([{c: r[c] for c in columns} for r in self.rows])

    def collect(self) -> list[dict[str, Any]]:
        return self.rows


class _Reader:
    def __init__(self, session: FakeDeltaSession) -> None:
        self.session, self.fmt, self.options = session, None, {}

    def format(self, fmt: str) -> _Reader:
        self.fmt = fmt
        return self

    def option(self, key: str, value: Any) -> _Reader:
        self.options[key] = value
        return self

    def load(self, path: str) -> str:
        self.session.reads.append((self.fmt, self.options.get("versionAsOf"), path))
        return f"frame of {path} at {self.options.get('versionAsOf')}"


class _Writer:
    def __init__(self, session: FakeDeltaSession) -> None:
        self.session, self.fmt, self.how, self.options = session, None, None, {}

    def format(self, fmt: str) -> _Writer:
        self.fmt = fmt
        return self

    def mode(self, how: str) -> _Writer:
        self.how = how
        return self

    def option(self, key: str, value: str) -> _Writer:
        self.options[key] = value
        return self

    def save(self, path: str) -> None:
        self.session.save(self.options, self.fmt, self.how, path)


class FakeFrame:
    def __init__(self, session: FakeDeltaSession) -> None:
        self.session = session

    @property
    def write(self) -> _Writer:
        return _Writer(self.session)


def _spark_index(tmp_path: Path) -> tuple[FakeDeltaSession, str]:
    path = str(tmp_path / "index")
    return FakeDeltaSession(tmp_path / "index" / "docs"), path


def test_auto_picks_spark_delta_when_the_session_has_delta(tmp_path):
    with_delta = FakeDeltaSession(extensions="io.delta.sql.DeltaSparkSessionExtension")
    assert isinstance(choose_backend(with_delta, "auto"), SparkDelta)
    assert isinstance(choose_backend(FakeDeltaSession(), "auto"), DeltaRs)
    assert isinstance(choose_backend(FakeDeltaSession(), "spark"), SparkDelta)
    assert isinstance(choose_backend(with_delta, "deltalake"), DeltaRs)
    # Index.open reads the history through Spark then (a delta-rs read of this empty folder would fail).
    with_delta.table_dir = tmp_path / "index" / "docs"
    with_delta.commit(json.dumps({FORMAT_KEY: FORMAT, FINGERPRINT_KEY: "fp", "documents_added": "4"}), 0)
    index = Index.open(with_delta, str(tmp_path / "index"))
    assert (index.version, index.documents, index.added_by("fp")) == (0, 4, 0)
    assert with_delta.queries == [f"DESCRIBE HISTORY delta.`{tmp_path / 'index' / 'docs'}`"]


def test_spark_commit_passes_the_pinning_options_and_reads_back(tmp_path):
    fake, path = _spark_index(tmp_path)
    index = Index.open(fake, path, delta_writer="spark")
    assert index.version == -1 and fake.queries == []  # no table: nothing asked of Delta
    assert index.append(FakeFrame(fake), "fp-a", {"documents_added": 2}) == 0
    assert Index.open(fake, path, delta_writer="spark").append(FakeFrame(fake), "fp-b", {"documents_added": 1}) == 1
    first, second = fake.writes
    assert (first["format"], first["mode"], first["path"]) == ("delta", "append", str(tmp_path / "index" / "docs"))
    assert first["options"]["txnAppId"] == APP_ID == second["options"]["txnAppId"]
    assert (first["options"]["txnVersion"], second["options"]["txnVersion"]) == ("0", "1")
    stored = json.loads(second["options"]["userMetadata"])
    assert stored[FORMAT_KEY] == FORMAT and stored[FINGERPRINT_KEY] == "fp-b" and stored["documents_added"] == "1"
    assert stored[TOKEN_KEY] != json.loads(first["options"]["userMetadata"])[TOKEN_KEY]

    latest = Index.open(fake, path, delta_writer="spark")
    assert (latest.version, latest.documents, latest.added_by("fp-a"), latest.added_by("fp-b")) == (1, 3, 0, 1)
    at_zero = latest.at(0)
    assert (at_zero.version, at_zero.documents, at_zero.added_by("fp-b")) == (0, 2, None)
    assert at_zero.docs(fake) == f"frame of {tmp_path / 'index' / 'docs'} at 0"
    assert fake.reads == [("delta", 0, str(tmp_path / "index" / "docs"))]


def test_spark_commit_skipped_by_delta_is_a_conflict(tmp_path):
    """Another run took version 1 (and its app transaction) before this run's write started: Delta skips the write
    without an error; version 1 does not carry this run's token, so the run fails with exit 2."""
    fake, path = _spark_index(tmp_path)
    Index.open(fake, path, delta_writer="spark").append(FakeFrame(fake), "fp-a", {})
    one = Index.open(fake, path, delta_writer="spark")
    Index.open(fake, path, delta_writer="spark").append(FakeFrame(fake), "fp-other", {})
    with pytest.raises(IndexConflictError, match="changed while this run worked .it read version 0.*skipped"):
        one.append(FakeFrame(fake), "fp-mine", {})
    assert len(fake.commits) == 2 and Index.open(fake, path, delta_writer="spark").added_by("fp-mine") is None


def test_spark_commit_after_a_later_run_still_succeeds(tmp_path):
    """This run's commit became version 1 and another run committed version 2 before the check: not a conflict."""
    fake, path = _spark_index(tmp_path)
    Index.open(fake, path, delta_writer="spark").append(FakeFrame(fake), "fp-a", {})
    mine = Index.open(fake, path, delta_writer="spark")
    original = fake.save

    def save_then_another_run_commits(options, fmt, mode, target):
        original(options, fmt, mode, target)
        fake.commit(json.dumps({FORMAT_KEY: FORMAT, TOKEN_KEY: "theirs"}), 2)

    fake.save = save_then_another_run_commits
    assert mine.append(FakeFrame(fake), "fp-mine", {}) == 1


def test_spark_commit_after_an_unpinned_writer_says_where_it_landed(tmp_path):
    fake, path = _spark_index(tmp_path)
    Index.open(fake, path, delta_writer="spark").append(FakeFrame(fake), "fp-a", {})
    mine = Index.open(fake, path, delta_writer="spark")
    fake.before_write = lambda: fake.commit(json.dumps({FORMAT_KEY: FORMAT}))  # no app transaction
    with pytest.raises(IndexConflictError, match="added as version 2, but version 1 was committed meanwhile"):
        mine.append(FakeFrame(fake), "fp-mine", {})


@pytest.mark.parametrize(
    "error",
    [
        ConcurrentTransactionException("concurrent transaction both attempt to update the same idempotent txn"),
        RuntimeError("[DELTA_CONCURRENT_APPEND] Files were added to the root of the table by a concurrent update"),
        RuntimeError("io.delta.exceptions.ProtocolChangedException: The protocol version ... concurrent update"),
    ],
)
def test_a_delta_concurrency_error_is_a_conflict(tmp_path, error):
    fake, path = _spark_index(tmp_path)
    fake.fail_with = error
    with pytest.raises(IndexConflictError, match="run the same command again") as raised:
        Index.open(fake, path, delta_writer="spark").append(FakeFrame(fake), "fp-a", {})
    assert raised.value.__cause__.__cause__ is error


def test_other_spark_errors_are_not_conflicts(tmp_path):
    fake, path = _spark_index(tmp_path)
    fake.fail_with = PermissionError("no write access to /Volumes/x")
    assert not is_concurrency_error(fake.fail_with)
    with pytest.raises(PermissionError):
        Index.open(fake, path, delta_writer="spark").append(FakeFrame(fake), "fp-a", {})


def test_spark_history_without_user_metadata_is_another_format(tmp_path):
    """A commit without our userMetadata (format 1, or not ours): DESCRIBE HISTORY shows no format."""
    fake, path = _spark_index(tmp_path)
    fake.commit(None)
    with pytest.raises(UsageError, match="index format \\['None'\\].*seed a new index"):
        Index.open(fake, path, delta_writer="spark")


def test_index_delta_writer_setting_is_checked():
    from dedup_spark.config import resolve_config
    from dedup_spark.errors import ConfigError

    paths = {"input.path": "in", "output.path": "out"}
    assert resolve_config(None, paths, ["index.delta_writer=spark"]).index.delta_writer == "spark"
    assert resolve_config(None, paths, []).index.delta_writer == "auto"
    with pytest.raises(ConfigError, match="index.delta_writer='jvm' is not one of auto, spark, deltalake"):
        resolve_config(None, paths, ["index.delta_writer=jvm"])
