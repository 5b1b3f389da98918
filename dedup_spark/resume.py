"""Resume: each step of a run (ingest, then each dedup stage) leaves a completion marker under `DIR/_work`.

A step writes its results under `DIR/_work/<step>/`, then, LAST, `DIR/_work/<step>/_COMPLETE.json`:

    {"marker_version": 3, "step": ..., "fingerprint": <sha256 hex>, "entry": <the step's report entry>,
     "ingested": <IngestResult fields, ingest only>, "tables": [<extra table names, stages only>],
     "docs_written": <stages only: false when the stage only drops rows and its docs are derived>}

The fingerprint of a step covers everything its result depends on: the input (resolved format; for files the
sorted (path, size, mtime) of every file, for Delta the table version), the config sections of the step
(ingest: `input.*` and `ingest.*`; a stage: its own section), the previous step's fingerprint (so a step depends
on every earlier step's settings), the list of steps up to it and the package version. Settings that do not
change results (`output.*`, `dry_run`, `stop_after`) are left out.

A new run reuses the longest prefix of steps whose markers match and deletes everything else under `_work`
before computing, so partial output of a killed run is never read.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from typing import Any

import pyarrow.fs as pafs
from pyspark.sql import SparkSession

from dedup_spark import __version__
from dedup_spark.config import RunConfig
from dedup_spark.io import storage
from dedup_spark.io.readers import InputSource
from dedup_spark.session import session_has_delta

log = logging.getLogger("dedup_spark")

MARKER = "_COMPLETE.json"
MARKER_VERSION = 3
# What an unfinished run (killed, or stopped with --stop-after) leaves at the top of its output folder.
UNFINISHED_ENTRIES = {"_work", "_staging", "_trash", "report.json", "report.html", storage.LOCK_NAME}


@dataclasses.dataclass(frozen=True)
class InputIdentity:
    """What the input fingerprint covers, plus sizes for the dry-run plan (None when unknown)."""

    format: str
    path: str
    files: int | None
    bytes: int | None
    key: dict[str, Any]  # JSON-ready: the file list with sizes and mtimes, or the Delta version


def steps_to_run(config: RunConfig) -> list[str]:
    """ingest, then the configured stages, cut after `stop_after` when it is set."""
    steps = ["ingest", *config.stages]
    if config.stop_after:
        steps = steps[: steps.index(config.stop_after) + 1]
    return steps


def input_identity(spark: SparkSession, source: InputSource) -> InputIdentity:
    """List the input cheaply (no Spark job for files): the files' paths, sizes and modification times."""
    if source.format == "delta":
        version, files, size = _delta_version(spark, source)
        return InputIdentity(source.format, source.path, files, size, {"path": source.path, "version": version})
    listed = _files_with_mtimes(source.path)
    return InputIdentity(
        source.format,
        source.path,
        len(listed),
        sum(size for _, size, _ in listed),
        {"files": [list(item) for item in listed]},
    )


def _files_with_mtimes(path: str) -> list[tuple[str, int, int]]:
    """(path, size, mtime in ns) of every input file, in `storage.list_files` order and selection.

    One recursive listing of the folder (or the glob's fixed prefix) gives the times: no per-file request.
    """
    files = storage.list_files_with_sizes(path)
    if not files:
        return []
    fs, inner = storage.filesystem(path)
    prefix = path[: len(path) - len(inner)] if "://" in path else ""
    if storage.has_glob(inner):
        root = inner[: min(inner.index(c) for c in "*?[{" if c in inner)].rsplit("/", 1)[0] or "/"
        infos = fs.get_file_info(pafs.FileSelector(root, recursive=True))
    elif fs.get_file_info(inner).type == pafs.FileType.Directory:
        infos = fs.get_file_info(pafs.FileSelector(inner, recursive=True))
    else:
        infos = [fs.get_file_info(inner)]
    mtimes = {prefix + i.path: i.mtime_ns for i in infos if i.type == pafs.FileType.File}
    return [(name, size, int(mtimes.get(name) or 0)) for name, size in files]


def _delta_version(spark: SparkSession, source: InputSource) -> tuple[int, int | None, int | None]:
    """(current version, data files, bytes) of a Delta table, from its log: no data is read."""
    if source.is_table_name or session_has_delta(spark):
        name = source.path if source.is_table_name else f"delta.`{storage.to_spark_path(source.path)}`"
        detail = spark.sql(f"DESCRIBE DETAIL {name}").first()
        version = spark.sql(f"DESCRIBE HISTORY {name} LIMIT 1").first()["version"]
        return int(version), int(detail["numFiles"]), int(detail["sizeInBytes"])
    from deltalake import DeltaTable

    table = DeltaTable(source.path)
    sizes = table.get_add_actions(flatten=True).column("size_bytes").to_pylist()
    return int(table.version()), len(sizes), int(sum(sizes))


def _config_sections(config: RunConfig, step: str) -> dict[str, Any]:
    """The resolved settings a step's result depends on (earlier steps' come in through the chain)."""
    tree = config.to_dict()
    if step == "ingest":
        # input.path and input.format are covered by the input key (absolute file paths, resolved format).
        inputs = {k: v for k, v in tree["input"].items() if k not in ("path", "format")}
        return {"input": inputs, "ingest": tree["ingest"]}
    return {step: tree[step]} if step in tree and isinstance(tree[step], dict) else {}


def fingerprints(config: RunConfig, identity: InputIdentity, steps: list[str]) -> dict[str, str]:
    """step -> sha256 hex of everything its result depends on (see the module docstring)."""
    result: dict[str, str] = {}
    previous = ""
    input_key = {"format": identity.format, **identity.key}
    for index, step in enumerate(steps):
        payload = {
            "dedup_spark_version": __version__,
            "marker_version": MARKER_VERSION,
            "steps": steps[: index + 1],
            "previous": previous,
            "input": input_key,
            "config": _config_sections(config, step),
        }
        digest = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode("utf-8")).hexdigest()
        result[step] = previous = digest
    return result


def read_marker(work_dir: str, step: str) -> dict[str, Any] | None:
    """The step's marker, or None when it is missing or unreadable (a run killed mid-step has none)."""
    path = storage.join(work_dir, step, MARKER)
    if not storage.exists(path):
        return None
    try:
        marker = json.loads(storage.read_text(path))
    except (ValueError, OSError) as exc:
        log.warning("stage %s: ignoring unreadable completion marker %s (%s)", step, path, exc)
        return None
    return marker if isinstance(marker, dict) else None


def reusable_steps(work_dir: str, steps: list[str], prints: dict[str, str]) -> dict[str, dict[str, Any]]:
    """The longest prefix of `steps` completed by an earlier run with the same fingerprints: step -> marker."""
    reusable: dict[str, dict[str, Any]] = {}
    for step in steps:
        marker = read_marker(work_dir, step)
        why = _invalid_reason(work_dir, step, marker, prints[step])
        if why:
            if marker is not None or storage.exists(storage.join(work_dir, step)):
                log.info("stage %s: earlier result in %s not reused: %s", step, storage.join(work_dir, step), why)
            break
        reusable[step] = marker
    return reusable


def _invalid_reason(work_dir: str, step: str, marker: dict[str, Any] | None, fingerprint: str) -> str | None:
    if marker is None:
        return "no completion marker (the earlier run stopped inside this step)"
    if marker.get("marker_version") != MARKER_VERSION or marker.get("step") != step or "entry" not in marker:
        return "the completion marker is from another version"
    if marker.get("fingerprint") != fingerprint:
        return "the input, the config or an earlier step changed (fingerprint differs)"
    if step == "ingest":
        if "ingested" not in marker:
            return "the completion marker lacks the ingest counts"
        folders = ["rows"]
    else:
        written = ["removed", *(["docs"] if marker["docs_written"] else [])]
        folders = [*written, *(f"tables/{name}" for name in marker.get("tables", []))]
    missing = [f for f in folders if not storage.exists(storage.join(work_dir, step, f))]
    return f"its files are gone ({', '.join(missing)})" if missing else None


def write_marker(work_dir: str, step: str, fingerprint: str, entry: dict[str, Any], extra: dict[str, Any]) -> None:
    """Record a completed step; call it after every file of the step is written (the marker comes last)."""
    marker = {"marker_version": MARKER_VERSION, "step": step, "fingerprint": fingerprint, "entry": entry, **extra}
    storage.write_text(storage.join(work_dir, step, MARKER), json.dumps(marker, indent=2, default=str) + "\n")


def clear_work(work_dir: str, keep: list[str]) -> None:
    """Delete everything under `_work` except the folders of reused steps: stale or partial data is never read."""
    if not storage.is_dir(work_dir):
        return
    for entry in _entries(work_dir):
        if entry.rsplit("/", 1)[-1] not in keep:
            storage.delete(entry)


def is_unfinished_run(out_dir: str) -> bool:
    """True when the folder holds only what a killed or --stop-after run leaves: `_work`, maybe a report."""
    if not storage.is_dir(out_dir):
        return False
    names = {entry.rsplit("/", 1)[-1] for entry in _entries(out_dir)}
    return "_work" in names and names <= UNFINISHED_ENTRIES


def _entries(path: str) -> list[str]:
    """Top-level entries of a folder, as paths in the folder's own style."""
    fs, inner = storage.filesystem(path)
    prefix = path[: len(path) - len(inner)] if "://" in path else ""
    return [prefix + info.path for info in fs.get_file_info(pafs.FileSelector(inner, recursive=False))]
