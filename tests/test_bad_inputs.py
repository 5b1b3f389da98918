"""A battery of bad inputs and faults: each case checks the exit code, the one stderr line, and that every row
read is written, removed or quarantined (rows counted by the test from the files it wrote)."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from tests.battery import split
from tests.conftest import REPO
from tests.helpers import read_output, report, write_jsonl

DOCS = [{"id": i, "text": f"document {i} about topic {i % 7} with words"} for i in range(10)]
ERROR_PREFIX = "dedup-spark: error: "


def balanced(out, rows_in: int, quarantined: int | None = None) -> dict:
    """The accounting of a finished run: rows read as the test counted them, and the identity holds."""
    acc = report(out)["accounting"]
    assert acc["rows_read"] == rows_in
    assert acc["rows_read"] == acc["rows_written"] + acc["rows_removed"] + acc["rows_quarantined"]
    assert acc["balanced"]
    assert len(read_output(out / "data")) == acc["rows_written"]
    if quarantined is not None:
        assert acc["rows_quarantined"] == quarantined
    return acc


def error_line(capsys) -> str:
    """The run's stderr holds exactly one error line (besides our own INFO/WARNING log records)."""
    return one_error_line(capsys.readouterr().err.splitlines())


_LOG_RECORD = r"dedup-spark \d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ (INFO|WARNING) "


def one_error_line(lines: list[str]) -> str:
    import re

    rest, in_config = [], False
    for line in lines:
        if re.match(_LOG_RECORD, line):
            in_config = line.endswith("resolved config:")
        elif in_config and not line.startswith(ERROR_PREFIX) and re.match(r"^( *[\w.-]+:| *- )", line):
            continue  # the YAML of the resolved config, part of that log record
        else:
            in_config = False
            rest.append(line)
    assert len(rest) == 1, rest[:20]
    assert rest[0].startswith(ERROR_PREFIX), rest
    return rest[0]


# --- pure helpers: overlap of paths, staleness of locks, the metadata list ----------------------------------------


def test_config_errors_import_no_pyspark(tmp_path):
    code = (
        "import sys\n"
        "from dedup_spark.cli import main\n"
        f"assert main(['run', '--input={tmp_path}', '--output={tmp_path}/out']) == 2\n"
        f"assert main(['run', '--input={tmp_path}', '--output=/elsewhere', '--stages=nope']) == 2\n"
        "assert 'pyspark' not in sys.modules\n"
        "from dedup_spark.config_checks import STAGE_NAMES\n"
        "from dedup_spark.stages import STAGE_NAMES as REAL\n"
        "assert STAGE_NAMES == REAL\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]


def test_overlap_resolves_symlinks_globs_and_uris(tmp_path):
    from dedup_spark.paths import overlap

    (tmp_path / "in").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "in")
    assert overlap(str(tmp_path / "in"), str(tmp_path / "alias" / "out"))
    assert overlap(str(tmp_path / "in" / "data"), str(tmp_path / "in"))
    assert overlap(str(tmp_path / "in" / "*.jsonl"), str(tmp_path / "in" / "out"))
    assert not overlap(str(tmp_path / "in"), str(tmp_path / "in2"))
    assert overlap("s3://bucket/corpus", "s3://bucket/corpus/clean") and not overlap("s3://b/a", "s3://b/ab")


def test_lock_staleness_rules():
    from dedup_spark.outputlock import STALE_SECONDS, stale_reason

    here, now = socket.gethostname(), time.time()
    assert stale_reason({"host": here, "pid": os.getpid(), "heartbeat": now}) is None
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    assert "gone" in stale_reason({"host": here, "pid": dead.pid, "heartbeat": now})
    assert stale_reason({"host": "elsewhere", "pid": 1, "heartbeat": now - 60}) is None
    assert "heartbeat" in stale_reason({"host": "elsewhere", "pid": 1, "heartbeat": now - STALE_SECONDS - 1})


def test_only_spark_and_delta_metadata_is_skipped():
    from dedup_spark.storage import is_metadata

    skipped = [
        "_SUCCESS",
        "part-0.parquet.crc",
        ".part-0.crc",
        "_committed_42",
        "_delta_log/0000.json",
        "x/_temporary/a",
    ]
    read = ["_b.jsonl", ".c.jsonl", "_part/d.jsonl", "year=2020/_x.parquet", "a:b.txt", "_metadata_notes.jsonl"]
    assert all(is_metadata(name) for name in skipped)
    assert not any(is_metadata(name) for name in read)


def test_names_spark_cannot_read_are_linked_locally_and_refused_on_a_cluster(tmp_path):
    from dedup_spark.errors import InputError
    from dedup_spark.inputfiles import list_input_files

    write_jsonl(tmp_path / "_a.jsonl", DOCS)
    write_jsonl(tmp_path / "b.jsonl", DOCS)
    local = list_input_files(str(tmp_path))
    assert sorted(os.path.basename(real) for _, real in local.aliases) == ["_a.jsonl", "b.jsonl"]
    assert all(os.path.realpath(link) == real for link, real in local.aliases)
    with pytest.raises(InputError, match="_a.jsonl"):
        list_input_files(str(tmp_path), local_spark=False)
    os.remove(tmp_path / "_a.jsonl")
    assert list_input_files(str(tmp_path), local_spark=False).aliases == ()


# --- files Spark hides or cannot open -------------------------------------------------------------------------


def test_hidden_named_files_are_read_and_metadata_is_skipped_by_name(tmp_path, run_cli, caplog):
    src = tmp_path / "in"
    (src / "sub" / "_part").mkdir(parents=True)
    write_jsonl(src / "a.jsonl", DOCS)
    write_jsonl(src / "_b.jsonl", [{"text": f"b {i}"} for i in range(10)])
    write_jsonl(src / ".c.jsonl", [{"text": f"c {i}"} for i in range(5)])
    write_jsonl(src / "sub" / "_part" / "d.jsonl", [{"text": f"d {i}"} for i in range(3)])
    (src / "_SUCCESS").write_bytes(b"")
    (src / ".a.jsonl.crc").write_bytes(b"crc\x00\x01")
    (src / "_committed_123").write_text('{"added": ["a.jsonl"]}\n')
    out = tmp_path / "out"
    assert run_cli("run", f"--input={src}", f"--output={out}") == 0
    balanced(out, rows_in=28, quarantined=0)
    files = report(out)["stages"][0]["details"]["files"]
    assert files["read"] == 4
    assert sorted(p.rsplit("/", 1)[-1] for p, _ in files["skipped"]) == [".a.jsonl.crc", "_SUCCESS", "_committed_123"]
    assert sorted(rows for _, rows in files["rows"]) == [3, 5, 10, 10]
    assert any("skipped 3 Spark/Delta metadata files" in r.message for r in caplog.records)
    texts = {r["text"] for r in read_output(out / "data")}
    assert {"b 0", "c 4", "d 2"} <= texts


def test_text_files_with_colons_spaces_and_hidden_names(tmp_path, run_cli):
    src = tmp_path / "txt"
    src.mkdir()
    names = ["a:b.txt", "c d.txt", "é+ü.txt", "_e.txt", "plain.txt"]
    for name in names:
        (src / name).write_text(f"the text of {name}", encoding="utf-8")
    out = tmp_path / "out"
    assert run_cli("run", f"--input={src}", f"--output={out}", "--set", "input.id_column=path") == 0
    balanced(out, rows_in=5, quarantined=0)
    data = {r["path"].rsplit("/", 1)[-1]: r["text"] for r in read_output(out / "data")}
    assert data == {name: f"the text of {name}" for name in names}


def test_symlinks_in_the_input_are_followed(tmp_path, run_cli):
    elsewhere = write_jsonl(tmp_path / "elsewhere.jsonl", DOCS[:4])
    src = tmp_path / "in"
    src.mkdir()
    write_jsonl(src / "a.jsonl", DOCS[4:])
    (src / "link.jsonl").symlink_to(elsewhere)
    linked_dir = tmp_path / "linked"
    linked_dir.symlink_to(src)
    out = tmp_path / "out"
    assert run_cli("run", f"--input={linked_dir}", f"--output={out}", "--set", "input.id_column=id") == 0
    balanced(out, rows_in=10, quarantined=0)
    assert sorted(r["id"] for r in read_output(out / "data")) == list(range(10))


def test_a_broken_symlink_in_the_input_is_named_not_skipped(tmp_path, run_cli, capsys):
    src = tmp_path / "in"
    src.mkdir()
    write_jsonl(src / "a.jsonl", DOCS)
    (src / "gone.jsonl").symlink_to(tmp_path / "deleted.jsonl")
    assert run_cli("run", f"--input={src}", f"--output={tmp_path / 'out'}") == 3
    assert "gone.jsonl" in error_line(capsys) and not (tmp_path / "out").exists()


# --- Parquet schemas ----------------------------------------------------------------------------------------


def test_parquet_files_with_different_columns_are_merged(tmp_path, run_cli):
    src = tmp_path / "pq"
    src.mkdir()
    pq.write_table(pa.table({"text": ["a one", "a two"], "lang": ["en", "de"]}), src / "a.parquet")
    pq.write_table(pa.table({"text": ["b one"], "score": [0.5]}), src / "b.parquet")
    pq.write_table(pa.table({"text": pa.array([], pa.string())}), src / "c_empty.parquet")  # zero rows
    out = tmp_path / "out"
    assert run_cli("run", f"--input={src}", f"--output={out}") == 0
    balanced(out, rows_in=3, quarantined=0)
    rows = {r["text"]: r for r in read_output(out / "data")}
    assert rows["a one"]["lang"] == "en" and rows["a one"]["score"] is None
    assert rows["b one"]["score"] == 0.5 and rows["b one"]["lang"] is None


def test_parquet_type_conflict_names_column_types_and_files(tmp_path, run_cli, capsys):
    src = tmp_path / "pq"
    src.mkdir()
    pq.write_table(pa.table({"text": ["x"], "n": pa.array([1], pa.int64())}), src / "a.parquet")
    pq.write_table(pa.table({"text": ["y"], "n": ["one"]}), src / "b.parquet")
    assert run_cli("run", f"--input={src}", f"--output={tmp_path / 'out'}") == 3
    line = error_line(capsys)
    assert "'n'" in line and "int64" in line and "string" in line and "a.parquet" in line and "b.parquet" in line
    assert not (tmp_path / "out").exists()


# --- JSON lines Spark's parser used to lose or crash on -------------------------------------------------------


def test_awkward_json_lines_are_read_or_quarantined_with_the_true_reason(tmp_path, run_cli):
    big = "word " * 4_200_000  # 21 MB: over Jackson's default 20,000,000-character string limit
    deep = '{"text": "deep", "a": ' + "[" * 5000 + "]" * 5000 + "}"
    lines = [
        json.dumps({"text": "plain one", "a.b": 1, "with space": "x", "ünï": "u"}).encode(),
        b'{"text": "caf\xe9 is latin-1, not UTF-8", "a.b": 2}',
        deep.encode(),
        json.dumps({"text": big, "a.b": 3}).encode(),
        json.dumps({"text": "plain two", "a.b": 4, "with space": "y"}).encode(),
    ]
    src = tmp_path / "in.jsonl"
    src.write_bytes(b"\n".join(lines) + b"\n")
    out = tmp_path / "out"
    assert run_cli("run", f"--input={src}", f"--output={out}") == 0
    balanced(out, rows_in=5, quarantined=2)
    assert report(out)["quarantine_by_reason"] == {"undecodable_text": 1, "too_deeply_nested": 1}
    data = {r["a.b"]: r for r in read_output(out / "data")}
    assert sorted(data) == [1, 3, 4]
    assert len(data[3]["text"]) == len(big)
    assert data[1]["with space"] == "x" and data[1]["ünï"] == "u"
    bad = {r["reason"]: r for r in read_output(out / "quarantine")}
    assert "caf\ufffd is latin-1" in bad["undecodable_text"]["raw_record"]


def test_columns_with_dots_spaces_and_unicode_pass_every_stage(tmp_path, run_cli):
    records = [{"text": f"{d['text']} " * 8, "a.b": d["id"], "c d": "x", "ü": "y"} for d in DOCS]
    records.append(dict(records[0]))  # an exact copy for neardup to remove
    src = write_jsonl(tmp_path / "in.jsonl", records)
    out = tmp_path / "out"
    assert run_cli("run", f"--input={src}", f"--output={out}", "--stages=neardup,exactsubstr") == 0
    acc = balanced(out, rows_in=11)
    assert acc["rows_removed"] >= 1
    assert {"a.b", "c d", "ü"} <= set(read_output(out / "data")[0])


# --- empty, compressed and mixed inputs -----------------------------------------------------------------------


def test_zero_byte_and_empty_compressed_files_add_no_rows(tmp_path, run_cli):
    src = tmp_path / "in"
    src.mkdir()
    write_jsonl(src / "a.jsonl", DOCS[:3])
    (src / "empty.jsonl").write_bytes(b"")
    (src / "empty.jsonl.gz").write_bytes(gzip.compress(b""))
    (src / "b.jsonl.gz").write_bytes(gzip.compress(b"\n".join(json.dumps(d).encode() for d in DOCS[3:6])))
    out = tmp_path / "out"
    assert run_cli("run", f"--input={src}", f"--output={out}") == 0
    balanced(out, rows_in=6, quarantined=0)
    assert report(out)["stages"][0]["details"]["files"]["read"] == 4


def test_mixed_formats_in_one_folder_are_refused_with_the_names(tmp_path, run_cli, capsys):
    src = tmp_path / "in"
    src.mkdir()
    write_jsonl(src / "a.jsonl", DOCS)
    pq.write_table(pa.table({"text": ["x"]}), src / "b.parquet")
    assert run_cli("run", f"--input={src}", f"--output={tmp_path / 'out'}") == 3
    assert "--input-format" in error_line(capsys)


def test_text_files_in_other_encodings_are_quarantined(tmp_path, run_cli):
    src = tmp_path / "txt"
    src.mkdir()
    (src / "utf16.txt").write_bytes("hello".encode("utf-16"))
    (src / "latin1.txt").write_bytes("café".encode("latin-1"))
    (src / "bom.txt").write_bytes("\ufeffwith a byte order mark".encode())
    out = tmp_path / "out"
    assert run_cli("run", f"--input={src}", f"--output={out}") == 0
    balanced(out, rows_in=3, quarantined=2)
    assert report(out)["quarantine_by_reason"] == {"undecodable_text": 2}


def test_a_text_file_over_2_gib_is_quarantined_as_too_large_without_being_read(tmp_path, run_cli):
    src = tmp_path / "txt"
    src.mkdir()
    (src / "small.txt").write_text("a small document")
    with open(src / "huge.txt", "wb") as stream:
        stream.truncate(3 * 1024**3)  # sparse: 3 GiB by size, no disk used, never read
    (src / "_hidden.txt").write_text("hidden but read")
    out = tmp_path / "out"
    assert run_cli("run", f"--input={src}", f"--output={out}") == 0
    balanced(out, rows_in=3, quarantined=1)
    assert [r["path"].rsplit("/", 1)[-1] for r in read_output(out / "quarantine") if r["reason"] == "too_large"] == [
        "huge.txt"
    ]


@pytest.mark.skipif(os.geteuid() == 0, reason="as root, chmod 000 does not stop reads: no unreadable file to test")
def test_unreadable_input_file_is_an_input_error(tmp_path, run_cli, capsys):
    src = write_jsonl(tmp_path / "in.jsonl", DOCS)
    src.chmod(0)
    assert run_cli("run", f"--input={src}", f"--output={tmp_path / 'out'}") == 3
    assert "in.jsonl" in error_line(capsys)


# --- outputs that overlap the input, and two runs on one output -------------------------------------------------


@pytest.mark.parametrize("where", ["inside_input", "input_inside_output", "symlink_into_input"])
def test_output_overlapping_the_input_is_refused_before_any_work(tmp_path, run_cli, capsys, where):
    base = tmp_path / "dir"
    (base / "data").mkdir(parents=True)
    write_jsonl(base / "data" / "a.jsonl", DOCS)
    if where == "inside_input":
        src, out = base / "data", base / "data" / "out"
    elif where == "input_inside_output":
        src, out = base / "data", base
    else:
        (tmp_path / "link").symlink_to(base / "data")
        src, out = base / "data", tmp_path / "link" / "out"
    assert run_cli("run", f"--input={src}", f"--output={out}", "--overwrite") == 2
    assert "overlap" in error_line(capsys)
    assert sorted(p.name for p in (base / "data").iterdir()) == ["a.jsonl"]


def test_a_live_lock_refuses_a_second_run_and_a_dead_one_is_taken_over(tmp_path, run_cli, capsys):
    src = write_jsonl(tmp_path / "in.jsonl", DOCS)
    out = tmp_path / "out"
    out.mkdir()
    lock = out / "_dedup_spark.lock"
    live = {"host": socket.gethostname(), "pid": os.getpid(), "started": "2026-01-02 03:04:05 UTC"}
    lock.write_text(json.dumps({**live, "heartbeat": time.time(), "token": "t"}))
    assert run_cli("run", f"--input={src}", f"--output={out}") == 2
    line = error_line(capsys)
    assert "2026-01-02 03:04:05 UTC" in line and socket.gethostname() in line and f"pid {os.getpid()}" in line
    assert lock.exists()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock.write_text(json.dumps({**live, "pid": dead.pid, "heartbeat": time.time(), "token": "t"}))
    assert run_cli("run", f"--input={src}", f"--output={out}") == 0
    balanced(out, rows_in=10, quarantined=0)
    assert not lock.exists()
    other = {**live, "host": "another-host", "heartbeat": time.time() - 3600, "token": "t"}
    lock.write_text(json.dumps(other))  # another host, no heartbeat for an hour: stale
    assert run_cli("run", f"--input={src}", f"--output={out}", "--overwrite") == 0


# --- settings -----------------------------------------------------------------------------------------------


def test_absurd_bands_and_rows_are_refused_with_the_memory_needed(tmp_path, run_cli, capsys):
    src = write_jsonl(tmp_path / "in.jsonl", DOCS)
    args = ["--set", "neardup.bands=100000", "--set", "neardup.rows=1000", "--stages=neardup"]
    assert run_cli("run", f"--input={src}", f"--output={tmp_path / 'out'}", *args) == 2
    line = error_line(capsys)
    assert "GiB" in line and "neardup.batch_docs" in line


@pytest.mark.parametrize("text", ["input:\n\ttext_column: body\n", "input: [text_column\n", "input:\n  a: b\n c: d\n"])
def test_broken_yaml_is_one_line_with_file_and_line(tmp_path, run_cli, capsys, text):
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    src = write_jsonl(tmp_path / "in.jsonl", DOCS)
    assert run_cli("run", f"--input={src}", f"--output={tmp_path / 'out'}", f"--config={config}") == 2
    line = error_line(capsys)
    assert "bad.yaml" in line and ", line " in line


# --- the real CLI in a subprocess: stderr as a user sees it (Spark's log4j and Java stacks included) -----------


def _battery(tmp_path, cases: list[dict], env: dict | None = None) -> dict[str, tuple[int, list[str]]]:
    spec = tmp_path / "cases.json"
    spec.write_text(json.dumps(cases))
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "SPARK_LOCAL_IP": "127.0.0.1", **(env or {})}
    command = [sys.executable, "-m", "tests.battery", str(spec)]
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return split(done.stderr)


def _error_inputs(tmp_path) -> list[dict]:
    good = write_jsonl(tmp_path / "good.jsonl", DOCS)
    truncated = tmp_path / "trunc" / "a.jsonl.gz"
    truncated.parent.mkdir()
    packed = gzip.compress("\n".join(json.dumps({"text": f"line {i} " * 20}) for i in range(3000)).encode())
    truncated.write_bytes(packed[: len(packed) // 2])
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    for i in range(3):
        pq.write_table(pa.table({"text": [f"doc {i}"]}), corrupt / f"part-{i}.parquet")
    (corrupt / "part-9.parquet").write_bytes(b"PAR1 this is not really parquet")
    conflict = tmp_path / "conflict"
    conflict.mkdir()
    pq.write_table(pa.table({"text": ["x"], "n": [1]}), conflict / "a.parquet")
    pq.write_table(pa.table({"text": ["y"], "n": ["one"]}), conflict / "b.parquet")
    not_gzip = tmp_path / "notgz" / "a.jsonl.gz"
    not_gzip.parent.mkdir()
    not_gzip.write_bytes(b"plain text, not gzip\n" * 20)
    truncated_zst = tmp_path / "zst" / "a.jsonl.zst"
    truncated_zst.parent.mkdir()
    packed = zstandard.ZstdCompressor().compress(
        "\n".join(json.dumps({"text": f"zst line {i}"}) for i in range(5000)).encode()
    )
    truncated_zst.write_bytes(packed[: len(packed) // 2])
    empty = tmp_path / "empty"
    empty.mkdir()
    pq.write_table(pa.table({"text": pa.array([], pa.string())}), empty / "zero-rows.parquet")
    cased = write_jsonl(tmp_path / "cased.jsonl", [{"text": "a doc", "Text": "b"}, {"text": "c", "TEXT": 1}])
    tabs = tmp_path / "tabs.yaml"
    tabs.write_text("input:\n\ttext_column: body\n")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "_dedup_spark.lock").write_text(
        json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "started": "today", "heartbeat": time.time()})
    )

    def case(name, *args):
        return {"name": name, "argv": ["run", *args, f"--output={tmp_path / ('out-' + name)}", "--stages=none"]}

    return [
        case("truncated_gz", f"--input={truncated}"),
        case("corrupt_parquet", f"--input={corrupt}"),
        case("json_as_parquet", f"--input={good}", "--input-format=parquet"),
        case("type_conflict", f"--input={conflict}"),
        case("missing", f"--input={tmp_path / 'nothing'}"),
        case("not_gzip", f"--input={not_gzip}"),
        case("truncated_zst", f"--input={truncated_zst}"),
        case("case_only_columns", f"--input={cased}"),
        case("yaml_tabs", f"--input={good}", f"--config={tabs}"),
        case("absurd_bands", f"--input={good}", "--set", "neardup.bands=100000", "--set", "neardup.rows=1000"),
        {"name": "busy", "argv": ["run", f"--input={good}", f"--output={busy}", "--stages=none"]},
        {"name": "overlap", "argv": ["run", f"--input={tmp_path}", f"--output={tmp_path / 'o'}", "--stages=none"]},
        {**case("spark_sql_error", f"--input={good}"), "fault": "spark_sql_error"},
        {**case("python_worker_crash", f"--input={good}"), "fault": "python_worker_crash"},
        case("good", f"--input={good}"),
        {"name": "empty_all_stages", "argv": ["run", f"--input={empty}", f"--output={tmp_path / 'out-empty'}"]},
    ]


EXPECTED = {
    "truncated_gz": (3, ["a.jsonl.gz", "truncated"]),
    "corrupt_parquet": (3, ["part-9.parquet", "Parquet"]),
    "json_as_parquet": (3, ["good.jsonl", "--input-format"]),
    "type_conflict": (3, ["'n'", "a.parquet", "b.parquet"]),
    "missing": (3, ["does not exist"]),
    "not_gzip": (3, ["a.jsonl.gz", "not valid gzip"]),
    "truncated_zst": (3, ["a.jsonl.zst", "truncated"]),
    "case_only_columns": (3, ["'text'", "upper/lower case", "cased.jsonl"]),
    "yaml_tabs": (2, ["tabs.yaml", "line 2", "tabs"]),
    "absurd_bands": (2, ["GiB"]),
    "busy": (2, ["in use by another dedup-spark run", f"pid {os.getpid()}"]),
    "overlap": (2, ["overlap"]),
    "spark_sql_error": (1, ["unexpected error", "injected fault in a Spark job", "Spark's log"]),
    "python_worker_crash": (1, ["unexpected error", "ZeroDivisionError: injected fault", "Spark's log"]),
}


def test_each_error_class_is_one_line_on_real_stderr(tmp_path):
    results = _battery(tmp_path, _error_inputs(tmp_path))
    for name, (code, words) in EXPECTED.items():
        got, lines = results[name]
        assert got == code, (name, lines[-5:])
        line = one_error_line(lines)
        print(f"{name}: exit {got}: {line}")  # the battery's lines, for a reader of `pytest -s`
        assert all(w in line for w in words), (name, line)
        assert "file:" not in line and "'//" not in line, line  # files named as the user wrote them
        if code == 1:  # Spark's side of the story is kept, in the log file the line names
            log = line.rsplit("Spark's log: ", 1)[1].rstrip(")")
            assert "injected fault" in Path(log).read_text(encoding="utf-8", errors="replace")
        assert not (tmp_path / f"out-{name}" / "data").exists()
    code, lines = results["good"]
    assert code == 0 and not any(line.startswith(ERROR_PREFIX) for line in lines)
    assert not any("Exception" in line or "\tat " in line for line in lines)
    balanced(tmp_path / "out-good", rows_in=10, quarantined=0)
    code, lines = results["empty_all_stages"]  # zero rows through every stage
    assert code == 0, lines[-5:]
    balanced(tmp_path / "out-empty", rows_in=0, quarantined=0)


def _can_mount() -> bool:
    if shutil.which("unshare") is None or os.geteuid() != 0:
        return False
    probe = subprocess.run(["unshare", "-m", "mount", "-t", "tmpfs", "tmpfs", "/mnt"], capture_output=True)
    return probe.returncode == 0


@pytest.mark.skipif(not _can_mount(), reason="needs root with CAP_SYS_ADMIN for a private mount namespace")
def test_read_only_and_full_output_folders_are_one_line_exit_2(tmp_path):
    # About 2 MB of random hex: it does not compress into the 256 KiB disk.
    src = write_jsonl(tmp_path / "in.jsonl", [{"text": os.urandom(1000).hex()} for _ in range(1000)])
    readonly, full = tmp_path / "ro", tmp_path / "full"
    readonly.mkdir()
    full.mkdir()
    cases = [
        {"name": "readonly", "argv": ["run", f"--input={src}", f"--output={readonly / 'out'}", "--stages=none"]},
        {"name": "full", "argv": ["run", f"--input={src}", f"--output={full / 'out'}", "--stages=none"]},
    ]
    spec = tmp_path / "cases.json"
    spec.write_text(json.dumps(cases))
    # A private mount namespace: a read-only bind and a 256 KiB tmpfs, seen by this command only.
    script = (
        f"mount --bind -o ro {readonly} {readonly} && mount -t tmpfs -o size=256k tmpfs {full} && "
        f"exec {sys.executable} -m tests.battery {spec}"
    )
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "SPARK_LOCAL_IP": "127.0.0.1"}
    done = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, env=env, cwd=REPO)
    results = split(done.stderr)
    code, lines = results["readonly"]
    assert code == 2 and "cannot write to the output folder" in one_error_line(lines)
    code, lines = results["full"]
    assert code == 2 and "no space left" in one_error_line(lines)


# --- heavy cases (slow suite) -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_50mb_documents_in_a_json_line_and_a_parquet_cell_are_read_whole(tmp_path):
    big = "0123456789 abcdefghij " * (50 * 1024 * 1024 // 22)
    src = tmp_path / "in"
    src.mkdir()
    write_jsonl(
        src / "a.jsonl", [{"id": "json-big", "text": big}, *({"id": f"j{i}", "text": f"t {i}"} for i in range(3))]
    )
    pq_src = tmp_path / "pq"
    pq_src.mkdir()
    pq.write_table(pa.table({"id": ["pq-big", "p1"], "text": [big, "small"]}), pq_src / "a.parquet")
    cases = [
        {
            "name": name,
            "argv": [
                "run",
                f"--input={folder}",
                f"--output={tmp_path / name}",
                "--set=input.id_column=id",
                "--stages=none",
            ],
        }
        for name, folder in (("json", src), ("parquet", pq_src))
    ]
    # "Any size the memory settings allow": Spark's default 1 GiB driver heap is too small for a 50 MB row
    # copied through JSON parsing and the Parquet writer; 4 GiB is a setting a user would give.
    results = _battery(tmp_path, cases, env={"PYSPARK_SUBMIT_ARGS": "--driver-memory 4g pyspark-shell"})
    for name, rows in (("json", 4), ("parquet", 2)):
        assert results[name][0] == 0, results[name][1][-5:]
        balanced(tmp_path / name, rows_in=rows, quarantined=0)
        lengths = {r["id"]: len(r["text"]) for r in read_output(tmp_path / name / "data")}
        assert lengths[f"{'json' if name == 'json' else 'pq'}-big"] == len(big)


@pytest.mark.slow
def test_a_second_run_is_refused_and_a_killed_run_leaves_a_lock_the_rerun_takes_over(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", [{"text": f"document {i} " * 30} for i in range(3000)])
    out = tmp_path / "out"
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "SPARK_LOCAL_IP": "127.0.0.1"}
    command = [sys.executable, "-m", "dedup_spark", "run", f"--input={src}", f"--output={out}"]
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=REPO)
    deadline = time.time() + 300
    while time.time() < deadline and not (out / "_work" / "ingest").exists():
        time.sleep(0.5)
    # A second run while the first is alive: refused by the lock, before it starts a JVM.
    second = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert second.returncode == 2
    line = one_error_line(second.stderr.splitlines())
    assert f"pid {first.pid}" in line and socket.gethostname() in line
    first.kill()
    first.wait()
    assert (out / "_dedup_spark.lock").exists()
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "taking over the lock" in done.stderr
    balanced(out, rows_in=3000, quarantined=0)
    assert not (out / "_dedup_spark.lock").exists()
