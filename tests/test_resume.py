"""Resume (issue 5 item 3): completed steps are reused, changes recompute what they affect, and partial output
of a dead run is never read. The truth each resumed run is held to is an uninterrupted run of the same command."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dedup_spark import resume
from dedup_spark.config import resolve_config
from tests.conftest import REPO
from tests.helpers import kill_when, read_output, report, write_jsonl

ARGS = ("--set", "input.id_column=id", "--stages=neardup,exactsubstr")
FOOTER = (
    "This page was assembled by the resume test corpus; it is boilerplate that repeats across many documents "
    "and must be cut from all of them but the first."
)
STEPS = ("ingest", "neardup", "exactsubstr")


def build_corpus(path: Path) -> Path:
    """150 random documents, 10 exact and 10 lightly edited copies, a 150-byte footer on 20 of them, 2 bad rows."""
    rng = random.Random(5)
    words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 9))) for _ in range(3000)]
    texts = [" ".join(rng.choice(words) for _ in range(rng.randint(120, 240))) for _ in range(150)]
    for i in range(0, 40, 2):
        texts[i] += " " + FOOTER
    for i in range(10):
        texts.append(texts[10 + i])  # exact copy
        edited = texts[30 + i].split(" ")
        edited[len(edited) // 2] = "edited"
        texts.append(" ".join(edited))  # one word changed: Jaccard of 5-grams > 0.9
    records: list = [{"id": i, "text": t} for i, t in enumerate(texts)]
    records += ['{"id": 900, "text": ', {"id": 901, "text": ""}]
    return write_jsonl(path, records)


def rows(path: Path) -> list[str]:
    """A table's rows in a canonical order (each row as sorted-key JSON)."""
    return sorted(json.dumps(r, sort_keys=True, default=str) for r in read_output(path))


def snapshot(out: Path) -> dict:
    """Everything a resumed run must reproduce: the tables and the report's accounting."""
    rep = report(out)
    tables = ("data", "removed", "quarantine", "neardup/clusters", "exact/spans")
    return {
        **{name: rows(out / name) for name in tables},
        **{key: rep[key] for key in ("status", "accounting", "removed_by_reason", "quarantine_by_reason")},
    }


def entries(out: Path) -> dict[str, dict]:
    return {stage["name"]: stage for stage in report(out)["stages"]}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return build_corpus(tmp_path_factory.mktemp("resume") / "corpus.jsonl")


@pytest.fixture(scope="module")
def reference(spark, corpus, tmp_path_factory) -> tuple[Path, dict]:
    """An uninterrupted run that keeps _work (its markers are the starting point of several tests)."""
    from dedup_spark.cli import main

    out = tmp_path_factory.mktemp("reference") / "out"
    assert main(["run", f"--input={corpus}", f"--output={out}", *ARGS, "--set", "output.keep_work=true"]) == 0
    truth = snapshot(out)
    # The corpus exercises every table: near-duplicate clusters, cut spans, quarantined rows.
    assert truth["removed_by_reason"]["near_duplicate"] == 20
    assert truth["quarantine_by_reason"] == {"malformed_json": 1, "empty_text": 1}
    assert len(truth["exact/spans"]) >= 19
    assert truth["accounting"]["balanced"]
    for step in STEPS:
        assert (out / "_work" / step / resume.MARKER).is_file()
    return out, truth


@pytest.fixture
def cli(run_cli, caplog):
    """Run the CLI in this process; returns (exit code, the dedup_spark log of that run)."""
    caplog.set_level(logging.INFO, logger="dedup_spark")

    def run(*args: str) -> tuple[int, str]:
        caplog.clear()
        code = run_cli(*args)
        return code, caplog.text

    return run


def copy_of(out: Path, target: Path) -> Path:
    shutil.copytree(out, target)
    return target


def assert_steps(log: str, reused: tuple[str, ...], computed: tuple[str, ...]) -> None:
    for step in reused:
        assert f"stage {step}: reused from an earlier run" in log and f"stage {step}: started" not in log
    for step in computed:
        assert f"stage {step}: started" in log and f"stage {step}: reused" not in log


@pytest.mark.slow  # two driver processes (about 15 s of JVM start each) on top of the shared reference run
def test_killed_run_resumes_and_matches_an_uninterrupted_run(corpus, reference, tmp_path):
    out = tmp_path / "out"
    command = [sys.executable, "-m", "dedup_spark", "run", f"--input={corpus}", f"--output={out}", *ARGS]
    env = {
        **os.environ,
        "PYSPARK_PYTHON": sys.executable,
        "SPARK_LOCAL_IP": "127.0.0.1",
        "PYSPARK_SUBMIT_ARGS": "--master local[2] --conf spark.sql.shuffle.partitions=4 "
        "--conf spark.ui.enabled=false pyspark-shell",
    }
    kill_when(command, "stage neardup: finished", env=env, cwd=REPO)
    # The dead run left completed ingest and neardup, and no finished exactsubstr or outputs.
    assert (out / "_work" / "neardup" / resume.MARKER).is_file()
    assert not (out / "_work" / "exactsubstr" / resume.MARKER).exists()
    assert not (out / "data").exists() and not (out / "report.json").exists()

    # Same command, no --overwrite: an unfinished run's folder may be resumed.
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert_steps(result.stderr, reused=("ingest", "neardup"), computed=("exactsubstr",))
    assert snapshot(out) == reference[1]
    flags = {name: entry["reused"] for name, entry in entries(out).items()}
    assert flags == {"ingest": True, "neardup": True, "exactsubstr": False}
    assert not (out / "_work").exists()  # a finished run cleans up, as before


def test_stop_after_each_step_then_finish_equals_an_uninterrupted_run(cli, corpus, reference, tmp_path, capsys):
    out = tmp_path / "out"
    base = ("run", f"--input={corpus}", f"--output={out}", *ARGS)
    code, log = cli(*base, "--stop-after=ingest")
    assert code == 0
    assert_steps(log, reused=(), computed=("ingest",))
    assert "stage neardup" not in log
    assert report(out)["status"] == "partial" and report(out)["stopped_after"] == "ingest"
    # no data/, removed/, quarantine/ yet
    assert sorted(p.name for p in out.iterdir()) == ["_work", "report.html", "report.json"]
    assert "stopped after ingest" in capsys.readouterr().out

    code, log = cli(*base, "--stop-after=neardup")
    assert code == 0
    assert_steps(log, reused=("ingest",), computed=("neardup",))
    assert "stage exactsubstr" not in log
    partial = entries(out)

    code, log = cli(*base)
    assert code == 0
    assert_steps(log, reused=("ingest", "neardup"), computed=("exactsubstr",))
    assert snapshot(out) == reference[1]
    # Reused steps report the entries of the run that computed them; counts equal the uninterrupted run's.
    ours, truth = entries(out), entries(reference[0])
    for step in ("ingest", "neardup"):
        assert {**ours[step], "reused": None} == {**partial[step], "reused": None}
    for step in STEPS:
        for key in ("rows_in", "rows_out", "rows_removed", "bytes_in", "bytes_out", "fingerprint"):
            assert ours[step].get(key) == truth[step].get(key), (step, key)


@pytest.mark.slow  # four runs of the CLI: about 30 s
def test_changes_recompute_what_they_affect(cli, corpus, reference, tmp_path):
    out = copy_of(reference[0], tmp_path / "out")
    base = ("run", f"--input={corpus}", f"--output={out}", *ARGS, "--overwrite", "--set", "output.keep_work=true")

    # A longer min_length than the 150-byte footer: exactsubstr is recomputed and now cuts nothing of it.
    code, log = cli(*base, "--set", "exactsubstr.min_length=400")
    assert code == 0
    assert_steps(log, reused=("ingest", "neardup"), computed=("exactsubstr",))
    assert rows(out / "exact/spans") == []
    assert sum(FOOTER in r["text"] for r in read_output(out / "data")) == 20
    assert rows(out / "neardup/clusters") == reference[1]["neardup/clusters"]

    # The input file touched (same bytes, new mtime): everything is recomputed, with the same result.
    stat = corpus.stat()
    os.utime(corpus, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    try:
        code, log = cli(*base)
    finally:
        os.utime(corpus, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert code == 0
    assert_steps(log, reused=(), computed=STEPS)
    assert snapshot(out) == reference[1]

    # An ingest setting (more, smaller shards): everything is recomputed; results do not depend on sharding.
    code, log = cli(*base, "--set", "ingest.shard_size=64KiB")
    assert code == 0
    assert_steps(log, reused=(), computed=STEPS)
    assert entries(out)["ingest"]["details"]["shards"] > entries(reference[0])["ingest"]["details"]["shards"]
    assert snapshot(out) == reference[1]

    # output.resume=false recomputes although nothing changed.
    code, log = cli(*base, "--set", "ingest.shard_size=64KiB", "--set", "output.resume=false")
    assert code == 0
    assert_steps(log, reused=(), computed=STEPS)


def plant_garbage(folder: Path) -> Path:
    """A Parquet file of documents that would be visible in the outputs if the folder were read."""
    folder.mkdir(parents=True, exist_ok=True)
    garbage = folder / "part-99999-garbage.parquet"
    pq.write_table(pa.table({"id": [424242], "text": ["garbage from a dead run"]}), garbage)
    return garbage


def test_mismatched_marker_and_folder_without_marker_are_never_read(cli, corpus, reference, tmp_path):
    base = ("run", f"--input={corpus}", *ARGS, "--overwrite")

    # A stage folder without a marker (a run killed inside exactsubstr), garbage planted in its docs.
    out = copy_of(reference[0], tmp_path / "dead")
    (out / "_work" / "exactsubstr" / resume.MARKER).unlink()
    garbage = plant_garbage(out / "_work" / "exactsubstr" / "docs")
    code, log = cli(*base, f"--output={out}")
    assert code == 0
    assert_steps(log, reused=("ingest", "neardup"), computed=("exactsubstr",))
    assert not garbage.exists()
    assert snapshot(out) == reference[1]

    # A marker whose fingerprint does not match (e.g. written by another config), garbage in its docs.
    out = copy_of(reference[0], tmp_path / "stale")
    marker_path = out / "_work" / "neardup" / resume.MARKER
    marker = json.loads(marker_path.read_text())
    marker["fingerprint"] = "0" * 64
    marker_path.write_text(json.dumps(marker))
    garbage = plant_garbage(out / "_work" / "neardup" / "docs")
    code, log = cli(*base, f"--output={out}")
    assert code == 0
    assert_steps(log, reused=("ingest",), computed=("neardup", "exactsubstr"))
    assert "fingerprint differs" in log
    assert not garbage.exists()
    assert snapshot(out) == reference[1]


# --- Fingerprints and folder states, without Spark -----------------------------------------------------------


def _prints(*settings: str, stages: str = "neardup,exactsubstr", files=(("/in/a.jsonl", 10, 1),)) -> dict[str, str]:
    config = resolve_config(None, {"input.path": "/in", "output.path": "/out", "stages": stages}, list(settings))
    identity = resume.InputIdentity("jsonl", "/in", len(files), 10, {"files": [list(f) for f in files]})
    return resume.fingerprints(config, identity, resume.steps_to_run(config))


@pytest.mark.parametrize(
    ("setting", "changed"),
    [
        ("exactsubstr.min_length=200", {"exactsubstr"}),
        ("neardup.preset=paper", {"neardup", "exactsubstr"}),
        ("ingest.shard_size=1MB", set(STEPS)),
        ("input.text_column=body", set(STEPS)),
        ("input.duplicate_ids=quarantine", set(STEPS)),
        ("output.keep_work=true", set()),
        ("output.overwrite=true", set()),
        ("output.format=delta", set()),
        ("output.resume=false", set()),
        ("output.mode=annotate", set()),  # the stages compute the same in both modes: only data/ differs
        ("dry_run=true", set()),
        ("stop_after=neardup", set()),
    ],
)
def test_a_setting_changes_the_fingerprints_of_the_steps_it_affects(setting, changed):
    before, after = _prints(), _prints(setting)
    assert {step for step in after if after[step] != before[step]} == changed
    assert len(set(before.values())) == len(STEPS)


def test_input_files_and_stage_order_are_in_the_fingerprints():
    before = _prints()
    touched = _prints(files=(("/in/a.jsonl", 10, 2),))
    assert all(touched[step] != before[step] for step in STEPS)
    swapped = _prints(stages="exactsubstr,neardup")
    assert swapped["ingest"] == before["ingest"]
    assert swapped["exactsubstr"] != before["exactsubstr"] and swapped["neardup"] != before["neardup"]


def test_unfinished_run_folder(tmp_path):
    out = tmp_path / "out"
    assert not resume.is_unfinished_run(str(out))
    (out / "_work" / "ingest").mkdir(parents=True)
    assert resume.is_unfinished_run(str(out))
    (out / "report.json").write_text("{}")
    assert resume.is_unfinished_run(str(out))
    (out / "data").mkdir()
    assert not resume.is_unfinished_run(str(out))  # a finished (or overwritten) output: needs --overwrite


def test_steps_to_run_stop_after():
    config = resolve_config(None, {"input.path": "/in", "output.path": "/out"}, ["stop_after=neardup"])
    assert resume.steps_to_run(config) == ["ingest", "neardup"]
    assert resume.steps_to_run(dataclasses.replace(config, stop_after=None)) == list(STEPS)
