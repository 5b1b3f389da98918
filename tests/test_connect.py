"""Every command over Spark Connect gives what it gives on a classic session (issue 14).

A real Connect server (tests/connect_server.py) runs on local[2]; each command runs twice as a user runs it, as a
separate `python -m dedup_spark` process: once on a classic local[2] session, once as a Connect client (`--remote
sc://...`, or SPARK_REMOTE). Their outputs are compared table by table (rows sorted) and report by report
(benchmarks/same_outputs.py: timings and the Spark version aside).
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks.same_outputs import differences, tables
from tests.cluster import started
from tests.conftest import DEMO_CORPUS, REPO
from tests.connect_server import ConnectServer
from tests.helpers import kill_when, write_jsonl

pytestmark = pytest.mark.connect

CLASSIC = "--master local[2] --conf spark.sql.shuffle.partitions=4 --conf spark.ui.enabled=false pyspark-shell"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with started(ConnectServer(tmp_path_factory.mktemp("connect-server"))) as connect:
        yield connect


def env(remote: str | None = None) -> dict[str, str]:
    """A classic local[2] session, or (remote) a Connect client through SPARK_REMOTE."""
    base = {k: v for k, v in os.environ.items() if k not in ("SPARK_REMOTE", "PYSPARK_SUBMIT_ARGS")}
    base.update(PYSPARK_PYTHON=sys.executable, SPARK_LOCAL_IP="127.0.0.1")
    return {**base, "SPARK_REMOTE": remote} if remote else {**base, "PYSPARK_SUBMIT_ARGS": CLASSIC}


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "dedup_spark", *args]


def dedup(*args: str, remote: str | None = None, via_env: bool = False) -> subprocess.CompletedProcess:
    """Run the CLI on a classic session (remote None) or on the Connect server at `remote`, named by --remote or,
    via_env, by SPARK_REMOTE."""
    flags = [f"--remote={remote}"] if remote and not via_env else []
    result = subprocess.run(
        command(*args, *flags),
        capture_output=True,
        text=True,
        env=env(remote if via_env else None),
        cwd=REPO,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    """A held-out set for --protect (30 demo chapters) and an eval set for contamination (30 demo chapters, 10 of
    them with their first half only, and 5 texts of its own)."""
    folder = tmp_path_factory.mktemp("connect-inputs")
    with gzip.open(DEMO_CORPUS, "rt") as lines:
        rows = [json.loads(line) for line in list(lines)[:200]]
    texts = [r["text"] for r in rows if isinstance(r.get("text"), str) and len(r["text"]) > 500]
    held_out = [{"id": f"h{i}", "text": t} for i, t in enumerate(texts[100:130])]
    evals = [{"id": f"e{i}", "text": t if i % 3 else t[: len(t) // 2]} for i, t in enumerate(texts[40:70])]
    evals += [{"id": f"own{i}", "text": f"an eval question of its own, number {i}, " * 12} for i in range(5)]
    return {
        "held_out": write_jsonl(folder / "held_out.jsonl", held_out),
        "eval": write_jsonl(folder / "eval.jsonl", evals),
    }


def assert_same(a: Path, b: Path, reports: bool = True) -> None:
    """The outputs under a and b are equal table by table (and report by report), and there are some."""
    assert tables(a), f"no tables under {a}"
    assert differences(a, b, reports) == []


def demo_run(out: Path) -> list[str]:
    return ["run", f"--input={DEMO_CORPUS}", f"--output={out}", "--set=input.id_column=id"]


@pytest.fixture(scope="module")
def classic_demo(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("classic-demo")
    dedup(*demo_run(root / "out"))
    return root


def test_run_with_both_stages(server, classic_demo, tmp_path):
    dedup(*demo_run(tmp_path / "out"), remote=server.url)
    assert_same(classic_demo, tmp_path)
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert [s["name"] for s in report["stages"]] == ["ingest", "neardup", "exactsubstr"]
    assert report["removed_by_reason"] == {"near_duplicate": 80}


def test_protect_with_delta_output(server, inputs, tmp_path):
    args = (f"--protect={inputs['held_out']}", "--output-format=delta")
    dedup(*demo_run(tmp_path / "classic" / "out"), *args)
    dedup(*demo_run(tmp_path / "connect" / "out"), *args, remote=server.url)
    assert_same(tmp_path / "classic", tmp_path / "connect")
    out = tmp_path / "connect" / "out"
    assert (out / "data" / "_delta_log").is_dir()
    report = json.loads((out / "report.json").read_text())
    # The held-out chapters are demo chapters: each removes its copy in the corpus.
    assert report["accounting"]["rows_removed"] >= 80 + 30


def test_contamination_with_clean_train_through_spark_remote(server, inputs, tmp_path):
    args = ["contamination", f"--train={DEMO_CORPUS}", f"--eval={inputs['eval']}", "--clean-train"]
    dedup(*args, f"--output={tmp_path / 'classic' / 'out'}")
    dedup(*args, f"--output={tmp_path / 'connect' / 'out'}", remote=server.url, via_env=True)
    assert_same(tmp_path / "classic", tmp_path / "connect")
    report = json.loads((tmp_path / "connect" / "out" / "report.json").read_text())
    assert (tmp_path / "connect" / "out" / "train_clean").is_dir()
    assert report["status"] == "succeeded"


def test_dry_run_prints_the_same_plan(server, tmp_path):
    args = ("--dry-run", "--stages=neardup,exactsubstr")
    classic = dedup(*demo_run(tmp_path / "out"), *args)
    connect = dedup(*demo_run(tmp_path / "out"), *args, remote=server.url)
    assert classic.stdout == connect.stdout and "neardup" in connect.stdout
    assert not (tmp_path / "out").exists()


def test_killed_client_resumes_and_matches_classic(server, classic_demo, tmp_path):
    out = tmp_path / "out"
    kill_when(command(*demo_run(out), f"--remote={server.url}"), "stage neardup: finished", env=env(), cwd=REPO)
    # A Connect server finishes the operation a killed client had sent (README: wait for it before resuming).
    deadline = time.monotonic() + 300
    while server.running_jobs() and time.monotonic() < deadline:
        time.sleep(1)
    result = dedup(*demo_run(out), remote=server.url)
    assert "stage neardup: reused from an earlier run" in result.stderr
    assert "stage exactsubstr: started" in result.stderr
    assert_same(classic_demo, tmp_path, reports=False)  # its report says which steps were reused
