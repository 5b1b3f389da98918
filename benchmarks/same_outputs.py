"""Show that a change of code layout changes no output: run a fixed set of jobs, then compare two such sets.

    python benchmarks/same_outputs.py write DIR      # run every job below into DIR/<job>/
    python benchmarks/same_outputs.py resume DIR     # finish the --stop-after run in DIR/resume/ with this code
    python benchmarks/same_outputs.py compare A B    # every table of A equals B's (rows sorted); exit 1 if not

The jobs: the demo corpus, bbcnews and docs (built by ../shared/corpora/make_corpora.sh), each with both stages
and both exactsubstr policies; contamination of a bbcnews split (80% train, 20% eval); a demo run stopped after
neardup (its _work/ markers are then reused by `resume`). The demo corpus is copied next to the corpora, so every
checkout compared reads it at one path (input paths are in the ingest fingerprint and the quarantine rows).
Tables are Parquet folders; rows are compared after sorting on every column. report.json files are compared
without timings, times, the Spark version and the per-step figures (`steps`, added by the house move); paths
under DIR are written alike.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from deltalake import DeltaTable

REPO = Path(__file__).resolve().parents[1]
CORPORA = Path(os.environ.get("DEDUP_SPARK_CORPORA", Path.home() / ".cache/dedup-spark/corpora")) / "pq"
DEMO = REPO / "data/demo/corpus.jsonl.gz"
POLICIES = ("keep_first", "strike_all")


def jobs(root: Path) -> dict[str, list[str]]:
    """Job name -> dedup-spark arguments."""
    runs: dict[str, list[str]] = {}
    demo = CORPORA / DEMO.name  # one copy for every checkout compared: same input path, same fingerprints
    for name, path in (("demo", demo), ("bbcnews", CORPORA / "bbcnews.parquet"), ("docs", CORPORA / "docs.parquet")):
        for policy in POLICIES:
            runs[f"{name}-{policy}"] = [
                "run",
                f"--input={path}",
                f"--output={root / f'{name}-{policy}'}",
                f"--set=exactsubstr.policy={policy}",
            ]
    split = root / "split"
    runs["contamination"] = [
        "contamination",
        f"--train={split / 'train.parquet'}",
        f"--eval={split / 'eval.parquet'}",
        f"--output={root / 'contamination'}",
        "--clean-train",
    ]
    runs["resume"] = ["run", f"--input={demo}", f"--output={root / 'resume'}", "--stop-after=neardup"]
    return runs


def dedup_spark(args: list[str]) -> None:
    print("+ dedup-spark", " ".join(args), flush=True)
    subprocess.run([sys.executable, "-m", "dedup_spark", *args, "--overwrite"], check=True, cwd=REPO)


def write_split(folder: Path) -> None:
    """bbcnews rows in file order: the first 80% train, the rest eval (it shares the corpus's natural copies)."""
    table = pq.read_table(CORPORA / "bbcnews.parquet")
    cut = table.num_rows * 4 // 5
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(table.slice(0, cut), folder / "train.parquet")
    pq.write_table(table.slice(cut), folder / "eval.parquet")


def write(root: Path) -> None:
    if not (CORPORA / DEMO.name).exists():
        shutil.copy2(DEMO, CORPORA / DEMO.name)
    write_split(root / "split")
    for args in jobs(root).values():
        dedup_spark(args)


def resume(root: Path) -> None:
    """The same command without --stop-after (same input path) reuses the markers written by the other code."""
    partial = json.loads((root / "resume/report.json").read_text())
    args = ["run", f"--input={partial['config']['input']['path']}", f"--output={root / 'resume'}"]
    print("+ dedup-spark", " ".join(args), flush=True)
    subprocess.run([sys.executable, "-m", "dedup_spark", *args], cwd=REPO, check=True)
    report = json.loads((root / "resume/report.json").read_text())
    reused = [s["name"] for s in report["stages"] if s.get("reused")]
    print("reused:", reused)
    if reused != ["ingest", "neardup"]:
        sys.exit(f"expected ingest and neardup reused, got {reused}")


def tables(root: Path) -> list[Path]:
    """Every Parquet table folder (or file) and Delta table under root, relative; _work and the split inputs left
    out."""
    found = set()
    for file in root.rglob("*.parquet"):
        rel = file.relative_to(root)
        if rel.parts[0] == "split" or "_work" in rel.parts:
            continue
        delta = next((p for p in file.parents if (p / "_delta_log").is_dir()), None)
        found.add(delta.relative_to(root) if delta else rel.parent if file.parent != root else rel)
    return sorted(found)


def sorted_rows(path: Path) -> pa.Table:
    if (path / "_delta_log").is_dir():
        table = DeltaTable(str(path)).to_pyarrow_table()
    else:
        table = ds.dataset(path, format="parquet", exclude_invalid_files=True).to_table()
    table = table.select(sorted(table.column_names))
    keys = [(name, "ascending") for name in table.column_names if not pa.types.is_nested(table.schema.field(name).type)]
    return table.take(pc.sort_indices(table, sort_keys=keys)) if keys else table


VOLATILE = {"steps", "seconds", "started_at", "finished_at", "spark_version"}


def stable(value, root: Path):
    """report.json without what differs between two identical runs: timings, times, the Spark version and the
    per-step figures; paths under `root` are written alike."""
    if isinstance(value, dict):
        kept = {k: stable(v, root) for k, v in value.items() if k not in VOLATILE and not k.endswith("_seconds")}
        if isinstance(kept.get("spark"), dict):  # the run report's {"version", "master"}
            kept["spark"] = {k: v for k, v in kept["spark"].items() if k != "version"}
        return kept
    if isinstance(value, list):
        return [stable(v, root) for v in value]
    if isinstance(value, str):
        return value.replace(str(root), "ROOT")
    return value


def differences(a: Path, b: Path, reports: bool = True) -> list[str]:
    """What differs between the outputs under a and b: tables (rows sorted) and, if `reports`, report.json files
    (`stable`)."""
    problems, names = [], tables(a)
    if names != tables(b):
        problems.append(f"different tables: {sorted(set(names) ^ set(tables(b)))}")
    for rel in names:
        if not (b / rel).exists():
            continue
        left, right = sorted_rows(a / rel), sorted_rows(b / rel)
        if not left.equals(right):
            problems.append(f"{rel}: {left.num_rows} vs {right.num_rows} rows, or different values")
    for report in sorted(a.rglob("report.json")) if reports else []:
        rel = report.relative_to(a)
        if rel.parts[0] == "resume":
            continue
        other = b / rel
        if not other.exists() or stable(json.loads(report.read_text()), a) != stable(json.loads(other.read_text()), b):
            problems.append(f"{rel}: differs")
    return problems


def compare(a: Path, b: Path) -> None:
    problems = differences(a, b)
    print(f"{len(tables(a))} tables compared")
    if problems:
        sys.exit("\n".join(problems))
    print("identical")


if __name__ == "__main__":
    command, *paths = sys.argv[1:]
    {"write": write, "resume": resume, "compare": compare}[command](*map(Path, paths))
