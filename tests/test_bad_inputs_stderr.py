"""The bad-input battery on the real CLI in subprocesses: stderr as a user sees it, Spark's log4j output and Java
stacks included. Several cases share one process (`tests/battery.py`) to pay one JVM start."""

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

from tests.battery import ERROR_PREFIX, balanced, one_error_line, split
from tests.conftest import REPO
from tests.helpers import read_output, write_jsonl

DOCS = [{"id": i, "text": f"document {i} about topic {i % 7} with words"} for i in range(10)]

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


@pytest.mark.slow  # every error class through the CLI, in a process of its own: about 26 s
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
