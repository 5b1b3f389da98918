"""A battery of bad inputs and faults, run in this process (`run_cli`): each case checks the exit code, the one
stderr line, and that every row read is written, removed or quarantined (rows counted by the test from the files
it wrote). `test_bad_inputs_stderr.py` runs the error classes as real subprocesses."""

from __future__ import annotations

import gzip
import json
import os
import socket
import subprocess
import sys
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.battery import balanced, one_error_line
from tests.conftest import REPO
from tests.helpers import read_output, report, write_jsonl

DOCS = [{"id": i, "text": f"document {i} about topic {i % 7} with words"} for i in range(10)]


def error_line(capsys) -> str:
    """The run's stderr holds exactly one error line (besides our own INFO/WARNING log records)."""
    return one_error_line(capsys.readouterr().err.splitlines())


# --- pure helpers: overlap of paths, staleness of locks, the metadata list ----------------------------------------


def test_config_errors_import_no_pyspark(tmp_path):
    code = (
        "import sys\n"
        "from dedup_spark.cli import main\n"
        f"assert main(['run', '--input={tmp_path}', '--output={tmp_path}/out']) == 2\n"
        f"assert main(['run', '--input={tmp_path}', '--output=/elsewhere', '--stages=nope']) == 2\n"
        "assert 'pyspark' not in sys.modules\n"
        "from dedup_spark.config_checks import STAGE_NAMES\n"
        "from dedup_spark.pipeline import STAGES\n"
        "assert STAGE_NAMES == tuple(STAGES)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]


def test_overlap_resolves_symlinks_globs_and_uris(tmp_path):
    from dedup_spark.io.paths import overlap

    (tmp_path / "in").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "in")
    assert overlap(str(tmp_path / "in"), str(tmp_path / "alias" / "out"))
    assert overlap(str(tmp_path / "in" / "data"), str(tmp_path / "in"))
    assert overlap(str(tmp_path / "in" / "*.jsonl"), str(tmp_path / "in" / "out"))
    assert not overlap(str(tmp_path / "in"), str(tmp_path / "in2"))
    assert overlap("s3://bucket/corpus", "s3://bucket/corpus/clean") and not overlap("s3://b/a", "s3://b/ab")


def test_lock_staleness_rules():
    from dedup_spark.io.outputlock import STALE_SECONDS, stale_reason

    here, now = socket.gethostname(), time.time()
    assert stale_reason({"host": here, "pid": os.getpid(), "heartbeat": now}) is None
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    assert "gone" in stale_reason({"host": here, "pid": dead.pid, "heartbeat": now})
    assert stale_reason({"host": "elsewhere", "pid": 1, "heartbeat": now - 60}) is None
    assert "heartbeat" in stale_reason({"host": "elsewhere", "pid": 1, "heartbeat": now - STALE_SECONDS - 1})


def test_only_spark_and_delta_metadata_is_skipped():
    from dedup_spark.io.storage import is_metadata

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
    from dedup_spark.io.inputfiles import list_input_files

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
