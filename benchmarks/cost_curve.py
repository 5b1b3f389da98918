"""Cost curve: seconds per MB of one stage at several input sizes, in one run, so the sizes share the host's mood.

    python benchmarks/cost_curve.py --stage neardup --out benchmarks/results/cost_neardup.json \
        100MB=/tmp/s/linux100.parquet 300MB=/tmp/s/linux300.parquet 300MBx64=/tmp/s/linux300_64 \
        1GB=~/.cache/dedup-spark/corpora/pq/linux.parquet 2GB=~/.cache/dedup-spark/corpora/pq/codemix.parquet

Each LABEL=PATH is a Parquet input with columns id, text (`benchmarks/sample.py` cuts samples of a corpus);
dedup-spark runs as a user runs it (`run --stages=STAGE`, local mode, all cores, defaults). With --repeat N the
inputs are run N times round-robin and each input's fastest run is kept (noise only ever adds time). Prints one
table (MB, seconds, s/MB and s/MB relative to the input labelled --reference) and each input's step breakdown.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from breakdown import print_steps, steps  # benchmarks/ is on sys.path when a script of it runs

CORES = os.cpu_count() or 1


def run_dedup_spark(corpus: Path, work: Path, stage: str) -> dict:
    """One `dedup-spark run --stages=STAGE` of `corpus` as a subprocess: seconds, text MB, step breakdown."""
    out = work / "out"
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": sys.executable}
    env.setdefault("PYSPARK_SUBMIT_ARGS", "--driver-memory 8g pyspark-shell")  # local mode's 1 GB heap is too little
    cmd = [sys.executable, "-m", "dedup_spark", "run", f"--input={corpus}", f"--output={out}", "--overwrite",
           f"--stages={stage}", "--set", "input.id_column=id"]  # fmt: skip
    start = time.monotonic()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    seconds = time.monotonic() - start
    if proc.returncode != 0:
        raise RuntimeError(f"dedup-spark failed on {corpus}:\n{proc.stderr[-3000:]}")
    report = json.loads((out / "report.json").read_text())
    return {"seconds": round(seconds, 1), "text_mb": round(report["stages"][0]["bytes_in"] / 1e6, 1),
            "steps": steps(report)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("inputs", nargs="+", help="LABEL=PATH")
    parser.add_argument("--stage", choices=("neardup", "exactsubstr"), required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--reference", default="1GB", help="the label s/MB is compared with")
    args = parser.parse_args()
    inputs = dict(item.split("=", 1) for item in args.inputs)
    runs: dict[str, list[dict]] = {label: [] for label in inputs}
    with tempfile.TemporaryDirectory(prefix="dedup-cost-") as work:
        for _ in range(args.repeat):
            for label, path in inputs.items():
                result = run_dedup_spark(Path(path).expanduser(), Path(work), args.stage)
                runs[label].append(result)
                print(f"{label}: {result['seconds']} s", file=sys.stderr, flush=True)
    rows = []
    for label, results in runs.items():
        best = min(results, key=lambda r: r["seconds"])
        mb = best["text_mb"]
        rows.append({"label": label, "path": inputs[label], "text_mb": mb, "seconds": best["seconds"],
                     "seconds_per_mb": round(best["seconds"] / mb, 4), "all_seconds": [r["seconds"] for r in results],
                     "steps": best["steps"]})  # fmt: skip
    reference = next((r["seconds_per_mb"] for r in rows if r["label"] == args.reference), None)
    print(f"| input | MB | seconds | s/MB | vs {args.reference} |")
    print("|---|---|---|---|---|")
    for row in rows:
        row["relative"] = round(row["seconds_per_mb"] / reference, 2) if reference else None
        print(f"| {row['label']} | {row['text_mb']} | {row['seconds']} | {row['seconds_per_mb']} | {row['relative']} |")
    for row in rows:
        print_steps(row["label"], row["steps"])
    result = {"stage": args.stage, "cores": CORES, "date": time.strftime("%Y-%m-%d"), "inputs": rows}
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
