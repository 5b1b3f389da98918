"""Checks of the config that need more than a comparison: values converted to their setting's type, sizes, YAML
syntax errors, NearDup memory, overlapping paths, the ExactSubstr section, the output mode.

Pure Python (no pyspark), so config errors stay fast. `config.py` calls these.
"""

from __future__ import annotations

import re
import types
import typing
from typing import Any

from dedup_spark.errors import ConfigError

# The dedup stages `--stages` may name, in their default order: the names of `pipeline.STAGES` (a test checks),
# kept here so that validating a config imports no pyspark.
STAGE_NAMES: tuple[str, ...] = ("neardup", "exactsubstr")
# output.mode: remove duplicates from data/, or keep every document and mark them (see pipeline, annotate.py).
OUTPUT_MODES = ("remove", "annotate")
# Largest exactsubstr.chunk_size: a chunk's suffix array (int32 positions, pieces plus separators) must stay
# below 2^31 bytes.
MAX_CHUNK_SIZE = 1 << 30
# Largest memory the NearDup signatures of one batch may need in a Python worker (see `check_neardup_memory`).
NEARDUP_MEMORY_LIMIT = 4 * 1024**3


_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
}
SIZE_FIELDS = {"ingest.shard_size", "exactsubstr.chunk_size"}


def check_choice(key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{key}={value!r} is not one of {', '.join(choices)}")


def check_stages(stages: tuple[str, ...], stop_after: str | None, protect: bool) -> None:
    """--stages names known stages once each; --stop-after names a step of the run; --protect needs neardup."""
    for stage in stages:
        if stage not in STAGE_NAMES:
            raise ConfigError(f"--stages: unknown stage {stage!r}; available stages: {', '.join(STAGE_NAMES)}")
    if len(set(stages)) != len(stages):
        raise ConfigError(f"--stages lists a stage twice: {','.join(stages)}")
    if stop_after is not None and stop_after not in ("ingest", *stages):
        raise ConfigError(f"--stop-after={stop_after}: not a step of this run; steps: {', '.join(('ingest', *stages))}")
    if protect and "neardup" not in stages:
        raise ConfigError("--protect needs the neardup stage (it removes input documents that cluster with them)")


def human_size(value: int | None) -> str:
    """Bytes for people: 1.5 MiB."""
    if value is None:
        return "unknown"
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if value >= scale:
            return f"{value / scale:.1f} {unit}"
    return f"{value} bytes"


def parse_size(key: str, value: Any) -> int:
    """'128MB' / '1GiB' / 4096 -> bytes."""
    if isinstance(value, bool):
        raise ConfigError(f"{key}: expected a size like 128MB, got {value!r}")
    if isinstance(value, (int, float)):
        return int(value)
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", str(value))
    if not match or match.group(2).lower() not in _SIZE_UNITS:
        raise ConfigError(f"{key}: expected a size like 128MB or 1GiB, got {value!r}")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()])


def yaml_error_line(path: str, exc: Any) -> str:
    """One line: the file, the line and column, what the YAML parser found, and the usual fix."""
    mark = getattr(exc, "problem_mark", None)
    where = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
    fix = "indent with spaces, not tabs" if "\\t" in problem else "fix the YAML syntax there"
    return f"config file {path!r}{where} is not valid YAML: {problem}; {fix}"


def check_neardup_memory(bands: int, rows: int, batch_docs: int) -> None:
    """Refuse a bands x rows x batch_docs whose signatures could never fit a Python worker, before any work.

    A worker holds a batch's min-hashes and band hashes (8 bytes each) plus the permutation parameters.
    """
    hashes = bands * rows
    needed = 8 * hashes * (2 * batch_docs + 2)
    if needed > NEARDUP_MEMORY_LIMIT:
        raise ConfigError(
            f"neardup bands x rows = {hashes:,} min-hashes per document with neardup.batch_docs={batch_docs} "
            f"needs about {needed / 2**30:,.1f} GiB in each Python worker (limit "
            f"{NEARDUP_MEMORY_LIMIT / 2**30:.0f} GiB); lower neardup.bands, neardup.rows or neardup.batch_docs"
        )


def check_paths(input_path: str, output_path: str, protect: tuple[str, ...]) -> None:
    """The output must not overlap the input (either inside the other, after symlinks) nor a held-out set."""
    from dedup_spark.io.paths import location, overlap

    if overlap(output_path, input_path):
        raise ConfigError(
            f"--output {output_path!r} and --input {input_path!r} overlap (the same folder, or one inside the "
            "other, after resolving symlinks): pass an output folder outside the input"
        )
    for path in protect:
        if location(path) == location(input_path) or overlap(path, output_path):
            raise ConfigError(f"--protect={path}: a held-out set must not be the --input or overlap the --output")


def check_index(index: Any, input_path: str, output_path: str, output_mode: str) -> None:
    """index.mode and index.delta_writer are known; the index overlaps neither input nor output; annotate (nothing
    is kept or cut, so nothing could be added) may only read it."""
    from dedup_spark.io.paths import overlap

    check_choice("index.mode", index.mode, ("update", "read-only"))
    check_choice("index.delta_writer", index.delta_writer, ("auto", "spark", "deltalake"))
    if index.path is None:
        return
    if overlap(index.path, input_path) or overlap(index.path, output_path):
        raise ConfigError(f"--index={index.path}: the index must not overlap the --input or the --output folder")
    if index.mode == "update" and output_mode == "annotate":
        raise ConfigError(
            "output.mode=annotate removes and cuts nothing, so it has no survivors to add to the index: "
            "pass --index-mode=read-only, or drop output.mode=annotate"
        )


def check_column_name(key: str, name: str) -> None:
    """The text and id columns are named in stages' Spark expressions: no "." or "`" there (other columns may)."""
    if key.startswith("input.") and ("." in name or "`" in name):
        raise ConfigError(
            f"{key}={name!r}: the text and id columns' names must not hold '.' or '`' (other columns may); "
            "rename the column in the input"
        )


def coerce(key: str, hint: Any, value: Any) -> Any:
    """Convert a YAML or command-line value to the field's declared type, or raise ConfigError."""
    if key in SIZE_FIELDS:
        return parse_size(key, value)
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        if value is None or (isinstance(value, str) and value.strip().lower() in ("", "null", "none")):
            return None
        inner = next(a for a in args if a is not type(None))
        return coerce(key, inner, value)
    if origin is tuple:
        if isinstance(value, str) and value.strip().lower() == "none":
            return ()
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)):
            raise ConfigError(f"{key}: expected a list (comma-separated on the command line), got {value!r}")
        return tuple(str(i).strip() for i in items if str(i).strip())
    if hint is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "1", "yes", "on"):
            return True
        if text in ("false", "0", "no", "off"):
            return False
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if hint in (int, float):
        if isinstance(value, bool):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        try:
            number = hint(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}: expected a number, got {value!r}") from None
        if hint is int and isinstance(value, float) and not value.is_integer():
            raise ConfigError(f"{key}: expected a whole number, got {value!r}")
        return number
    if hint is str:
        if isinstance(value, (dict, list)):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return str(value)
    raise ConfigError(f"{key}: unsupported setting type {hint!r}")


def check_exactsubstr(ex: Any) -> None:
    """ex: the `exactsubstr` section (config.ExactsubstrConfig)."""
    check_choice("exactsubstr.policy", ex.policy, ("keep_first", "strike_all"))
    if ex.min_length < 1:
        raise ConfigError("exactsubstr.min_length must be at least 1 byte")
    if not 1 <= ex.width <= ex.min_length:
        raise ConfigError("exactsubstr.minimizer_width must be at least 1 and at most exactsubstr.min_length")
    if ex.chunk_size < 4 * ex.min_length:
        raise ConfigError("exactsubstr.chunk_size must be at least 4 x exactsubstr.min_length")
    if ex.chunk_size > MAX_CHUNK_SIZE:
        raise ConfigError(
            f"exactsubstr.chunk_size={ex.chunk_size} is above {MAX_CHUNK_SIZE} bytes (1GiB): a chunk's suffix array "
            "uses int32 positions and about 13 bytes of memory per byte; use a smaller chunk_size"
        )
    if ex.passes not in (1, 2):
        raise ConfigError("exactsubstr.passes must be 1 or 2")
    if ex.min_remaining_chars < 0 or ex.top_substrings < 0:
        raise ConfigError("exactsubstr.min_remaining_chars and exactsubstr.top_substrings must be >= 0")


def check_output_mode(mode: str, stages: tuple[str, ...], passes: int) -> None:
    """output.mode is remove or annotate; annotate takes one ExactSubstr pass (its spans are in the input's text,
    a second pass's would be in the text the first one cut)."""
    check_choice("output.mode", mode, OUTPUT_MODES)
    if mode == "annotate" and "exactsubstr" in stages and passes != 1:
        raise ConfigError(
            "output.mode=annotate needs exactsubstr.passes=1: the spans of a second pass are positions in the "
            "text the first pass cut, not in the input's text; set exactsubstr.passes=1 or output.mode=remove"
        )
