"""Test helpers: outputs read without Spark (so checks do not share code paths with the job), and a run killed
mid-way."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
from pathlib import Path

import pyarrow.parquet as pq


def read_output(path: Path) -> list[dict]:
    """Rows of a Parquet folder or a Delta table (current version), via pyarrow/delta-rs."""
    if (path / "_delta_log").exists():
        from deltalake import DeltaTable

        return pq.read_table(DeltaTable(str(path)).file_uris()).to_pylist()
    return pq.read_table(path).to_pylist()


def report(out: Path) -> dict:
    return json.loads((out / "report.json").read_text())


def write_jsonl(path: Path, records: list) -> Path:
    """Records are dicts (dumped as JSON) or raw strings (written as they are)."""
    lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def kill_when(command: list[str], line: str, **popen) -> list[str]:
    """Run `command` in a process group of its own and SIGKILL the whole group (driver, JVM, Python workers, as a
    lost node) as soon as its stderr shows `line`; returns the stderr lines seen. Fails if it was not killed."""
    process = subprocess.Popen(
        command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, start_new_session=True, **popen
    )
    seen = []
    try:
        for text in process.stderr:
            seen.append(text)
            if line in text:
                os.killpg(process.pid, signal.SIGKILL)
                break
        process.wait(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == -signal.SIGKILL, "".join(seen)[-3000:]
    return seen


def random_doc(rng: random.Random, words: int) -> str:
    """`words` random words from a 5,000-word vocabulary: two such documents share few 5-word shingles."""
    return " ".join(f"w{rng.randrange(5000)}" for _ in range(words))


def changed_words(text: str, rng: random.Random, count: int) -> str:
    """`text` with `count` of its words replaced by new ones: a near copy when `count` is small."""
    words = text.split()
    for i in rng.sample(range(len(words)), count):
        words[i] = f"new{rng.randrange(10**6)}"
    return " ".join(words)
