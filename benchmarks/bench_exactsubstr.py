"""ExactSubstr benchmark: dedup-spark end to end next to a bare suffix-array build of the same bytes, one run.

    python benchmarks/bench_exactsubstr.py CORPUS.parquet --out benchmarks/results/exactsubstr_linux.json

CORPUS is a Parquet table with columns id, text (../shared/corpora/make_corpora.sh builds linux, docs,
bbcnews). dedup-spark runs as a user runs it (`dedup-spark run --stages=exactsubstr`, local mode, all cores,
default settings: min_length 100, keep_first, 64 MB chunks). The baseline is what the reference tool
(google-research/deduplicate-text-datasets) does at its core, in one process on one core: concatenate the
documents' UTF-8 bytes and build one suffix array with libdivsufsort (pydivsufsort), then the LCP array
(kasai) that finding repeats needs. Nothing of the baseline finds, cuts or writes anything, so it is a lower
bound on any suffix-array tool. The reference tool itself is Rust from GitHub and cannot be built here.
Peak memory is the largest sum of RSS over the process and its children, sampled every 0.2 s.
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

import numpy as np
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_neardup import PeakMemory  # noqa: E402
from breakdown import print_steps, steps  # noqa: E402

CORES = os.cpu_count() or 1


def run_dedup_spark(corpus: Path, work: Path, settings: list[str]) -> dict:
    out = work / "dedup_spark_out"
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": sys.executable}
    # Local mode gives the driver (the only executor) 1 GB of heap by default: too little for 185 MB row groups.
    env.setdefault("PYSPARK_SUBMIT_ARGS", "--driver-memory 8g pyspark-shell")
    cmd = [
        sys.executable, "-m", "dedup_spark", "run", f"--input={corpus}", f"--output={out}", "--overwrite",
        "--stages=exactsubstr", "--set", "input.id_column=id",
    ]  # fmt: skip
    for setting in settings:
        cmd += ["--set", setting]
    start = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with PeakMemory(proc.pid) as memory:
        stdout, stderr = proc.communicate()
    seconds = time.monotonic() - start
    if proc.returncode != 0:
        raise RuntimeError(f"dedup-spark failed:\n{stderr[-3000:]}")
    report = json.loads((out / "report.json").read_text())
    stages = {s["name"]: s for s in report["stages"]}
    details = stages["exactsubstr"]["details"]
    keys = ("bytes_removed", "share_removed", "spans", "documents_touched", "documents_removed", "chunks")
    keys += ("bytes_shipped", "shipped_ratio", "merge_partitions", "bytes_folded")
    return {
        "tool": f"dedup-spark (local[{CORES}], exactsubstr, {' '.join(settings) or 'defaults'})",
        "cores": CORES,
        "seconds": round(seconds, 1),
        "stage_seconds": {name: s["seconds"] for name, s in stages.items()},
        "steps": steps(report),
        "peak_rss_mb": round(memory.peak / 2**20),
        **{key: details[key] for key in keys},
        "top_substring": details["top_substrings"][:1],
        "stdout": stdout.strip().splitlines()[:3],
    }


def run_bare_suffix_array(texts: list[str]) -> dict:
    """One process, one core: libdivsufsort over all the bytes, then kasai's LCP."""
    os.environ["OMP_NUM_THREADS"] = "1"  # before the import: libgomp reads it once
    from pydivsufsort import divsufsort, kasai

    data = np.frombuffer(bytearray(b"".join(t.encode() for t in texts)), dtype=np.uint8)
    with PeakMemory(os.getpid()) as memory:
        start = time.monotonic()
        suffixes = divsufsort(data)
        sa_seconds = time.monotonic() - start
        kasai(data, suffixes)
        seconds = time.monotonic() - start
    return {
        "tool": "bare suffix array + LCP (pydivsufsort, 1 process, 1 thread)",
        "cores": 1,
        "seconds": round(seconds, 1),
        "suffix_array_seconds": round(sa_seconds, 1),
        "peak_rss_mb": round(memory.peak / 2**20),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--set", action="append", default=[], help="extra setting, e.g. exactsubstr.passes=2")
    args = parser.parse_args()
    texts = pq.read_table(args.corpus, columns=["text"]).column("text").to_pylist()
    size = sum(len(t.encode()) for t in texts)
    results = {"corpus": args.corpus.name, "documents": len(texts), "text_mb": round(size / 1e6, 1), "runs": []}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.out.parent) as work:
        runs = [run_dedup_spark(args.corpus, Path(work), args.set)]
    runs.append(run_bare_suffix_array(texts))
    for run in runs:
        run["mb_per_second_per_core"] = round(size / 1e6 / run["seconds"] / run["cores"], 2)
        results["runs"].append(run)
    results["end_to_end_over_bare"] = round(runs[0]["seconds"] / runs[1]["seconds"], 2)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"{results['corpus']}: {results['documents']:,} documents, {results['text_mb']} MB")
    print("| tool | cores | seconds | MB/s per core | peak RSS MB |")
    print("|---|---|---|---|---|")
    for run in results["runs"]:
        print(
            f"| {run['tool']} | {run['cores']} | {run['seconds']} | {run['mb_per_second_per_core']} "
            f"| {run['peak_rss_mb']} |"
        )
    print(f"end to end / bare suffix array + LCP: {results['end_to_end_over_bare']}x")
    print_steps(runs[0]["tool"], runs[0]["steps"])


if __name__ == "__main__":
    main()
