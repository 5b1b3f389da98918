"""Test helpers that read outputs without Spark, so checks do not share code paths with the job."""

from __future__ import annotations

import json
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
