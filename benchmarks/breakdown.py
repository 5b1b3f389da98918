"""Where a dedup-spark run's time goes: its steps from report.json, printed by the benchmarks.

Each stage's `details.steps` lists its checkpointed steps (sparkops.Steps): seconds since the step before, rows,
files written (one per task that wrote rows) and bytes written; ingest and writing the outputs are one line each.
"""

from __future__ import annotations

from typing import Any


def steps(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per step of the run, in order: {"step", "seconds", "rows", "files", "bytes"} (None where unknown)."""
    rows = []
    for stage in report["stages"]:
        inner = stage.get("details", {}).get("steps") or []
        if not inner:
            rows.append({"step": stage["name"], "seconds": stage["seconds"], "rows": stage.get("rows_out")})
        rows += [{**step, "step": f"{stage['name']}/{step['step']}"} for step in inner]
        searched = (stage.get("details", {}).get("index") or {}).get("steps") or []  # run --index: its search
        rows += [{**step, "step": f"{stage['name']}/index/{step['step']}"} for step in searched]
    return [{"files": None, "bytes": None, **row} for row in rows]


def print_steps(title: str, rows: list[dict[str, Any]]) -> None:
    print(f"{title}: steps")
    print("| step | seconds | rows | files | MB written |")
    print("|---|---|---|---|---|")
    for r in rows:
        mb = "" if r["bytes"] is None else f"{r['bytes'] / 1e6:.1f}"
        files = "" if r["files"] is None else r["files"]
        print(f"| {r['step']} | {r['seconds']} | {r['rows'] if r['rows'] is not None else ''} | {files} | {mb} |")
