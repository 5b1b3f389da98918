"""Cost of a daily batch against a persisted index (`run --index`): does it follow the batch, not the index?

    python benchmarks/bench_index.py --corpus ~/.cache/dedup-spark/corpora/pq/codemix.parquet \
        --work /tmp/index-bench --batch-mb 100 --repeat 3 --out benchmarks/results/index_cost.json

The corpus (Parquet, columns id and text) is split by a hash of each id into a batch of about --batch-mb MB and
two halves A and B of the rest; two indexes are seeded with `dedup-spark index create`: "small" from A, "large"
from A and B (twice the text). Then, round-robin, --repeat times: the batch alone (`run`), the batch against the
small index and against the large one (`run --index=...`, as a daily run: checked, then its survivors added, into a
hard-linked copy of the index made before the clock starts, so every repeat starts from the same index; Delta never
rewrites a file); default stages (neardup, exactsubstr), local mode, all cores. Each configuration's fastest run
is kept, and the ratios within each round (its three runs back to back) with their medians: on a host whose
speed drifts, those are the figures to compare. Targets (issue 17): batch + index <= 1.5x the batch alone; large
index <= 1.2x small index; the index's size on disk per GB of text is reported. The split and the indexes are
kept in --work and reused by later runs (indexes of the current index format only).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from breakdown import print_steps, steps  # benchmarks/ is on sys.path when a script of it runs

from dedup_spark.index.store import FORMAT_VERSION

CORES = os.cpu_count() or 1
ENV = {
    **os.environ,
    "SPARK_LOCAL_IP": "127.0.0.1",
    "PYSPARK_PYTHON": sys.executable,
    "PYSPARK_SUBMIT_ARGS": os.environ.get("PYSPARK_SUBMIT_ARGS", "--driver-memory 8g pyspark-shell"),
}


def text_mb(table: pa.Table) -> float:
    return pc.sum(pc.binary_length(pc.cast(table["text"], pa.binary()))).as_py() / 1e6


def split(corpus: Path, work: Path, batch_mb: float) -> None:
    """work/batch.parquet, work/small/a.parquet, work/large/{a,b}.parquet (b: the other half of the rest)."""
    if (work / "large" / "b.parquet").exists():
        return
    table = pq.read_table(corpus, columns=["id", "text"])
    share = batch_mb / text_mb(table)
    ids = table["id"].to_pylist()
    # A uniform number in [0, 1) per id, independent of the row order.
    draws = [int.from_bytes(hashlib.sha256(i.encode()).digest()[:8], "big") / 2**64 for i in ids]
    part = ["batch" if u < share else "a" if u < share + (1 - share) / 2 else "b" for u in draws]
    names = pa.array(part)
    for folder in ("small", "large"):
        (work / folder).mkdir(parents=True, exist_ok=True)
    pq.write_table(table.filter(pc.equal(names, "batch")), work / "batch.parquet")
    a = table.filter(pc.equal(names, "a"))
    pq.write_table(a, work / "small" / "a.parquet")
    os.link(work / "small" / "a.parquet", work / "large" / "a.parquet")
    pq.write_table(table.filter(pc.equal(names, "b")), work / "large" / "b.parquet")


def dedup_spark(*args: str) -> float:
    """Runs `python -m dedup_spark ARGS` as a user would; returns its wall seconds."""
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "dedup_spark", *args], env=ENV, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"dedup-spark {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return time.monotonic() - start


def create_indexes(work: Path) -> dict[str, dict]:
    created = {}
    for name in ("small", "large"):
        index = work / f"index-{name}"
        info = work / f"index-{name}.json"
        if not info.exists() or json.loads(info.read_text()).get("format") != FORMAT_VERSION:
            shutil.rmtree(index, ignore_errors=True)
            seconds = dedup_spark("index", "create", f"--input={work / name}", f"--index={index}",
                                  "--set", "input.id_column=id")  # fmt: skip
            text = sum(text_mb(pq.read_table(f, columns=["text"])) for f in (work / name).glob("*.parquet"))
            disk = sum(f.stat().st_size for f in index.rglob("*") if f.is_file())
            info.write_text(json.dumps({"format": FORMAT_VERSION, "seconds": round(seconds, 1),
                                        "text_mb": round(text, 1), "disk_mb": round(disk / 1e6, 1),
                                        "disk_per_gb_text_gb": round(disk / (text * 1e6), 3)}))  # fmt: skip
        created[name] = json.loads(info.read_text())
        print(f"index {name}: {created[name]}", file=sys.stderr, flush=True)
    return created


def run_batch(work: Path, index: str | None) -> dict:
    out = work / "out"
    args = [f"--input={work / 'batch.parquet'}", f"--output={out}", "--overwrite", "--set", "input.id_column=id"]
    copy = work / "index-copy"
    if index:
        shutil.rmtree(copy, ignore_errors=True)
        subprocess.run(["cp", "-al", str(work / f"index-{index}"), str(copy)], check=True)
        args.append(f"--index={copy}")
    seconds = dedup_spark("run", *args)
    report = json.loads((out / "report.json").read_text())
    entry = report.get("index") or {}
    return {"seconds": round(seconds, 1), "removed": sum(report["removed_by_reason"].values()), "steps": steps(report),
            "near_duplicates_of_index": entry.get("near_duplicates_of_index"),
            "bytes_shared_with_index": entry.get("bytes_shared_with_index"),
            "documents_added_to_index": entry.get("documents_added")}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--batch-mb", type=float, default=100)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    split(args.corpus.expanduser(), args.work, args.batch_mb)
    indexes = create_indexes(args.work)
    configs = {"batch alone": None, "against small index": "small", "against large index": "large"}
    runs: dict[str, list[dict]] = {label: [] for label in configs}
    for _ in range(args.repeat):
        for label, index in configs.items():
            runs[label].append(run_batch(args.work, index))
            print(f"{label}: {runs[label][-1]['seconds']} s", file=sys.stderr, flush=True)
    best = {label: min(results, key=lambda r: r["seconds"]) for label, results in runs.items()}
    alone = best["batch alone"]["seconds"]
    batch = round(text_mb(pq.read_table(args.work / "batch.parquet", columns=["text"])), 1)
    print(f"batch: {batch} MB of text; indexes: small {indexes['small']['text_mb']} MB, "
          f"large {indexes['large']['text_mb']} MB")  # fmt: skip
    print("| run | seconds (best) | all | vs batch alone | removed | near-dups of index | bytes shared with index |")
    print("|---|---|---|---|---|---|---|")
    for label, row in best.items():
        row["all_seconds"] = [r["seconds"] for r in runs[label]]
        row["vs_batch_alone"] = round(row["seconds"] / alone, 2)
        print(f"| {label} | {row['seconds']} | {row['all_seconds']} | {row['vs_batch_alone']} | {row['removed']} "
              f"| {row['near_duplicates_of_index']} | {row['bytes_shared_with_index']} |")  # fmt: skip
    growth = round(best["against large index"]["seconds"] / best["against small index"]["seconds"], 2)
    print(f"large index / small index: {growth}")
    # The host's speed drifts between rounds: the ratios within each round (its three runs back to back) and their
    # median say more than ratios of best times taken from different rounds.
    pairs = {
        "small_over_alone": ("against small index", "batch alone"),
        "large_over_alone": ("against large index", "batch alone"),
        "large_over_small": ("against large index", "against small index"),
    }
    per_round = [
        {name: round(runs[a][i]["seconds"] / runs[b][i]["seconds"], 2) for name, (a, b) in pairs.items()}
        for i in range(args.repeat)
    ]
    medians = {key: statistics.median(r[key] for r in per_round) for key in per_round[0]}
    print(f"ratios per round: {per_round}; medians: {medians}")
    for label, row in best.items():
        print_steps(label, row["steps"])
    result = {"cores": CORES, "date": time.strftime("%Y-%m-%d"), "corpus": str(args.corpus), "batch_text_mb": batch,
              "indexes": indexes, "runs": best, "large_over_small": growth,
              "ratios_per_round": per_round, "median_ratios": medians}  # fmt: skip
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
