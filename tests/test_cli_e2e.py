"""End to end as a user runs it: a separate process, `python -m dedup_spark run` on the bundled demo corpus."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter

import pytest

from tests.conftest import DEMO_CORPUS, REPO
from tests.helpers import read_output, write_jsonl


def run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "SPARK_LOCAL_IP": "127.0.0.1"}
    return subprocess.run(
        [sys.executable, "-m", "dedup_spark", *args], capture_output=True, text=True, env=env, cwd=REPO, timeout=600
    )


def test_demo_corpus_end_to_end(tmp_path):
    out = tmp_path / "demo"
    result = run(
        "run",
        f"--input={DEMO_CORPUS}",
        f"--output={out}",
        "--config=conf/default.yaml",
        "--set",
        "input.id_column=id",
        "--set",
        "ingest.shard_size=1MB",
        "--set",
        "exactsubstr.chunk_size=1MB",  # several suffix-array chunks, so the cross-chunk merge has work
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((out / "report.json").read_text())
    acc = report["accounting"]
    # The demo corpus: 1,189 chapters + 80 planted copies + 3 bad rows (see scripts/build_demo_data.py).
    assert acc["rows_read"] == 1272
    assert acc["rows_quarantined"] == 3
    assert acc["rows_read"] == acc["rows_written"] + acc["rows_removed"] + acc["rows_quarantined"]
    assert report["quarantine_by_reason"] == {"null_text": 1, "empty_text": 1, "malformed_json": 1}
    # About 4.6 MB of text in 1 MB shards, in whole rounds of the task slots (local[*]: this machine's cores).
    slots = os.cpu_count() or 1
    assert report["stages"][0]["details"]["shards"] == -(-5 // slots) * slots
    data = read_output(out / "data")
    assert len(data) == acc["rows_written"]
    assert {"id", "text", "source", "book", "chapter"} <= set(data[0])
    # NearDup: the 80 planted copies (40 exact, 40 with 1% of words edited) leave, each clustered with its original.
    assert report["removed_by_reason"] == {"near_duplicate": 80}
    clusters = read_output(out / "neardup" / "clusters")
    assert sum(not r["kept"] for r in clusters) == 80
    # Kept documents carry their cluster's size: 1 + the removed rows naming them as cluster_id; others 1.
    removed = read_output(out / "removed")
    expected = Counter(str(r["cluster_id"]) for r in removed)
    assert {str(r["id"]): r["cluster_size"] for r in data if r["cluster_size"] > 1} == {
        kept: 1 + n for kept, n in expected.items()
    }
    assert sum(r["cluster_size"] for r in data) == len(data) + 80
    # ExactSubstr (keep_first): the planted footer survives only in the first of the chapters that carry it.
    footer = "assembled from the public-domain King James Version of 1611 to show how repeated boilerplate"
    assert sum(footer in r["text"] for r in data) == 1
    exact = report["stages"][2]["details"]
    assert exact["bytes_removed"] >= 149 * 170 and exact["chunks"] >= 5 and exact["bytes_shipped"] > 0
    assert "rows read" in result.stdout and "balanced" in result.stdout
    assert "stage ingest: started" in result.stderr


def test_errors_are_one_line_with_exit_code(tmp_path):
    result = run("run", f"--input={tmp_path / 'nothing-here'}", f"--output={tmp_path / 'out'}")
    assert result.returncode == 3
    assert result.stderr.strip().splitlines()[-1].startswith("dedup-spark: error: input path")
    assert "Traceback" not in result.stderr
    assert run("run", "--input=x").returncode == 2  # argparse: --output missing


@pytest.mark.slow  # two runs of the CLI, each in a process of its own: about 35 s
def test_cluster_size_is_a_setting_and_never_overwrites_an_input_column(tmp_path):
    rows = [{"id": i, "text": f"document number {i} " * 20, "cluster_size": f"mine-{i}"} for i in range(4)]
    rows.append({"id": 9, "text": rows[0]["text"], "cluster_size": "copy"})  # an exact copy of document 0
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    args = (f"--input={src}", "--set", "input.id_column=id", "--stages=neardup")
    clash = run("run", *args, f"--output={tmp_path / 'a'}")
    assert clash.returncode == 3, clash.stderr[-2000:]
    assert "['cluster_size']" in clash.stderr and "--set output.cluster_size=false" in clash.stderr
    off = run("run", *args, f"--output={tmp_path / 'b'}", "--set", "output.cluster_size=false")
    assert off.returncode == 0, off.stderr[-2000:]
    data = {r["id"]: r["cluster_size"] for r in read_output(tmp_path / "b" / "data")}
    assert data == {0: "mine-0", 1: "mine-1", 2: "mine-2", 3: "mine-3"}  # the copy (id 9) removed
