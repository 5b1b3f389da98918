"""Typed run configuration: defaults, then a YAML file, then command-line overrides, validated once.

Every setting has a dotted key (`section.key`) that works the same in YAML and in `--set section.key=value`.
`resolve_config` is the only entry point; it returns a frozen `RunConfig` or raises `ConfigError` naming the key.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dedup_spark.columns import INTERNAL_PREFIX
from dedup_spark.config_checks import (
    STAGE_NAMES,
    check_choice,
    check_column_name,
    check_exactsubstr,
    check_index,
    check_neardup_memory,
    check_output_mode,
    check_paths,
    check_stages,
    coerce,
    yaml_error_line,
)
from dedup_spark.errors import ConfigError

INPUT_FORMATS = ("auto", "parquet", "jsonl", "text", "delta")
OUTPUT_FORMATS = ("parquet", "delta")
# Longest minimizer w-gram chosen by default (exactsubstr.minimizer_width: null); see ExactsubstrConfig.
DEFAULT_MINIMIZER_WIDTH = 32
# How NearDup turns verified pairs into clusters (neardup.cluster_rule; see anchored.py).
CLUSTER_RULES = ("components", "anchored")


@dataclass(frozen=True)
class InputConfig:
    path: str = ""
    format: str = "auto"
    text_column: str = "text"
    # None: derive a stable id from the content (see ingest.derive_ids).
    id_column: str | None = None
    # What to do when two rows share an id: "error" (exit 3) or "quarantine" (all but one copy).
    duplicate_ids: str = "error"
    # Fraction of JSONL lines read to infer the schema (1.0 = all lines; exact but one more pass).
    json_schema_sampling_ratio: float = 1.0


@dataclass(frozen=True)
class OutputConfig:
    path: str = ""
    format: str = "parquet"
    overwrite: bool = False
    # Name of the id column added to the outputs when ids are derived (input.id_column unset).
    id_column: str = "doc_id"
    # Keep the intermediate shards and stage outputs under DIR/_work after a successful run.
    keep_work: bool = False
    # Reuse the steps an earlier, unfinished run completed with the same input and config (markers in _work);
    # false recomputes everything.
    resume: bool = True
    # Kept documents carry their NearDup cluster's size in data/ (column `cluster_size`; 1 outside clusters), so
    # a team can upsample ("rehydrate") by it later.
    cluster_size: bool = True
    # remove: data/ holds the cleaned corpus; annotate: every document, with `dedup_*` columns marking what remove
    # would drop or cut (README "Annotate instead of remove").
    mode: str = "remove"
    # How to write Delta: "auto" uses Spark's format("delta") when the session has Delta, else delta-rs.
    delta_writer: str = "auto"
    # Folder for report.json and _work when --output is a table prefix catalog.schema.prefix (a UC volume path
    # like /Volumes/cat/schema/vol/dedup); required in that mode, unused for folder outputs.
    work_path: str | None = None


@dataclass(frozen=True)
class IngestConfig:
    # Target bytes of text per shard (accepts "128MB", "1GiB", or a number of bytes); shards come in whole rounds of
    # the task slots, and an input under one shard but over 16 MiB is split into one shard per slot.
    shard_size: int = 128 * 1024 * 1024


@dataclass(frozen=True)
class NeardupConfig:
    """MinHash-LSH near-duplicate documents. Unset (null) values come from the preset."""

    # paper (450 bands x 20 rows, Jaccard then edit similarity), default (20 x 8, Jaccard), text-dedup, datatrove
    preset: str = "default"
    # "bands" = number of LSH bands, "rows" = min-hashes per band (the paper swaps the two letters).
    bands: int | None = None
    rows: int | None = None
    threshold: float | None = None
    verify_jaccard: bool | None = None
    verify_edit: bool | None = None
    edit_threshold: float | None = None
    ngram: int = 5
    shingle_unit: str = "word"
    lowercase: bool = True
    nfkc: bool = True
    # true: a word is a run of letters, digits and combining marks, every other character separates words;
    # false: only white space separates words (see normalize.py).
    strip_punctuation: bool = True
    # NFKD and drop combining marks (Mn): "café" = "cafe". Off: it also drops vowel signs of Indic scripts.
    fold_accents: bool = False
    # components: every verified pair joins a cluster (the paper); anchored: a document is removed only if it
    # verifies against the document its cluster keeps. null: the preset's rule.
    cluster_rule: str | None = None
    seed: int = 1
    # Which document of a cluster stays: lowest_id, longest, or column (with keep_column, keep_descending).
    keep: str = "lowest_id"
    keep_column: str | None = None
    keep_descending: bool = False
    # Documents per signature batch inside a task: memory is about batch_docs * bands * rows * 8 bytes.
    batch_docs: int = 1000
    max_component_rounds: int = 100
    # Graphs of at most this many edges are labelled by a union-find inside one Spark task (a few MB of memory
    # per 10,000 edges); larger ones by the distributed large-star/small-star rounds. 0: always distributed.
    local_components_max_edges: int = 1_000_000
    # Exact-copy groups and candidate pairs of at most this many band keys (documents x bands, after the
    # signatures) are computed in one Spark task (about 100 bytes each); more: in Spark's shuffles. 0: distributed.
    local_candidates_max_band_keys: int = 4_000_000


@dataclass(frozen=True)
class ExactsubstrConfig:
    """Suffix-array removal of repeated substrings (byte windows of min_length inside one document)."""

    min_length: int = 100
    # strike_all: remove every copy (the reference tool); keep_first: keep the first copy in corpus order.
    policy: str = "keep_first"
    # Bytes of text per suffix-array chunk: bounds the memory of one task (about 13 bytes per text byte).
    chunk_size: int = 64 * 1024 * 1024
    # Minimizer w-gram length in bytes for routing windows to the cross-chunk merge; null: min(32, min_length // 3).
    # Only moves work, never changes what is removed. Shipped bytes per input byte with min_length 100:
    # w=16 1.12 (linux) / 1.42 (docs), w=32 0.55 / 1.28, w=40 0.50 / 1.35.
    minimizer_width: int | None = None
    # A document that loses bytes and keeps fewer than this many non-space characters is removed.
    min_remaining_chars: int = 20
    # 2 runs the removal again on its own output: cutting creates new repeats (the paper's second pass).
    passes: int = 1
    top_substrings: int = 20

    @property
    def width(self) -> int:
        """The minimizer w-gram length in use: `minimizer_width`, or its default for `min_length`."""
        if self.minimizer_width is not None:
            return self.minimizer_width
        return max(1, min(DEFAULT_MINIMIZER_WIDTH, self.min_length // 3))


@dataclass(frozen=True)
class IndexConfig:
    """`run --index=INDEX`: the persisted index of everything earlier runs kept (README "Daily batches")."""

    # Folder of the index (Delta tables); null: no index. Created on first use when mode is update.
    path: str | None = None
    # update: check the batch against the index, then add its survivors in one commit; read-only: check only.
    mode: str = "update"
    # How to read and commit the index's Delta table: "auto" uses Spark's own Delta when the session has Delta
    # (Databricks: /Volumes and cloud URIs delta-rs may not commit to), else delta-rs; "spark" or "deltalake" force one.
    delta_writer: str = "auto"


@dataclass(frozen=True)
class ReportConfig:
    # Column for "removed share by source" in report.html; null: `source` if the input has one.
    source_column: str | None = None


@dataclass(frozen=True)
class SparkConfig:
    # Tasks the cluster runs at once (cores of all executors), for sessions whose settings do not tell it (Spark
    # Connect, Databricks serverless); null: read from the session's settings (see session.task_slots). It only
    # decides how work is split into tasks, never an output.
    task_slots: int | None = None


@dataclass(frozen=True)
class RunConfig:
    input: InputConfig = field(default_factory=InputConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    neardup: NeardupConfig = field(default_factory=NeardupConfig)
    exactsubstr: ExactsubstrConfig = field(default_factory=ExactsubstrConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    index: IndexConfig = field(default_factory=IndexConfig)
    spark: SparkConfig = field(default_factory=SparkConfig)
    # Dedup stages to run after ingest, in order (--stages=none runs ingest only).
    stages: tuple[str, ...] = STAGE_NAMES
    # Held-out sets (--protect=PATH, repeatable), read with the input settings: never removed and never written;
    # documents of the input in a near-duplicate cluster with one of theirs are removed as `contamination`.
    protect: tuple[str, ...] = ()
    dry_run: bool = False
    # Run ingest and the stages up to and including this one, keep _work and stop (report status "partial").
    stop_after: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _section_fields(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _all_keys() -> list[str]:
    keys = []
    for name, hint in _section_fields(RunConfig).items():
        if dataclasses.is_dataclass(hint):
            keys += [f"{name}.{sub}" for sub in _section_fields(hint)]
        else:
            keys.append(name)
    return keys


def _unknown_key(key: str) -> ConfigError:
    close = difflib.get_close_matches(key, _all_keys(), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return ConfigError(f"unknown setting {key!r}.{hint} Valid settings: {', '.join(_all_keys())}")


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


def load_yaml(path: str) -> dict[str, Any]:
    """Read a YAML config file into dotted keys."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"config file {path!r} does not exist")
    try:
        tree = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(yaml_error_line(path, exc)) from None
    if not isinstance(tree, dict):
        raise ConfigError(f"config file {path!r} must hold a mapping of sections, got {type(tree).__name__}")
    return _flatten(tree)


def parse_set_options(options: list[str]) -> dict[str, str]:
    """['a.b=1', ...] -> {'a.b': '1'}."""
    parsed = {}
    for option in options:
        key, sep, value = option.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set takes section.key=value, got {option!r}")
        parsed[key.strip()] = value
    return parsed


def build_config(settings: dict[str, Any]) -> RunConfig:
    """Apply dotted settings (already merged, later wins) to the defaults and validate."""
    sections: dict[str, dict[str, Any]] = {}
    top: dict[str, Any] = {}
    hints = _section_fields(RunConfig)
    for key, value in settings.items():
        section, _, sub = key.partition(".")
        if section not in hints:
            raise _unknown_key(key)
        hint = hints[section]
        if dataclasses.is_dataclass(hint):
            sub_hints = _section_fields(hint)
            if sub not in sub_hints:
                raise _unknown_key(key)
            sections.setdefault(section, {})[sub] = coerce(key, sub_hints[sub], value)
        else:
            if sub:
                raise _unknown_key(key)
            top[section] = coerce(key, hint, value)
    built = {name: hint(**sections.get(name, {})) for name, hint in hints.items() if dataclasses.is_dataclass(hint)}
    config = RunConfig(**built, **top)
    validate(config)
    return config


def resolve_config(yaml_path: str | None, cli_settings: dict[str, Any], set_options: list[str]) -> RunConfig:
    """Defaults <- YAML file <- dedicated CLI flags <- --set overrides."""
    merged: dict[str, Any] = {}
    if yaml_path:
        merged.update(load_yaml(yaml_path))
    merged.update({k: v for k, v in cli_settings.items() if v is not None})
    merged.update(parse_set_options(set_options))
    return build_config(merged)


def validate(config: RunConfig) -> None:
    """Reject settings that cannot work, naming the key and the fix."""

    if not config.input.path:
        raise ConfigError("no input: pass --input=PATH (a file, folder, glob or Delta table)")
    if not config.output.path:
        raise ConfigError("no output: pass --output=DIR")
    check_choice("input.format", config.input.format, INPUT_FORMATS)
    check_choice("output.format", config.output.format, OUTPUT_FORMATS)
    check_choice("input.duplicate_ids", config.input.duplicate_ids, ("error", "quarantine"))
    check_choice("output.delta_writer", config.output.delta_writer, ("auto", "spark", "deltalake"))
    if not config.input.text_column:
        raise ConfigError("input.text_column must name the column that holds the text")
    for key, name in (
        ("input.text_column", config.input.text_column),
        ("input.id_column", config.input.id_column or ""),
        ("output.id_column", config.output.id_column),
    ):
        if name.startswith(INTERNAL_PREFIX):
            raise ConfigError(f"{key}={name!r}: names starting with {INTERNAL_PREFIX!r} are reserved")
        check_column_name(key, name)
    if config.input.id_column == config.input.text_column:
        raise ConfigError("input.id_column and input.text_column must be different columns")
    if not 0.0 < config.input.json_schema_sampling_ratio <= 1.0:
        raise ConfigError("input.json_schema_sampling_ratio must be in (0, 1]")
    if config.spark.task_slots is not None and config.spark.task_slots < 1:
        raise ConfigError("spark.task_slots must be at least 1 (or null: read from the session)")
    if config.ingest.shard_size < 1024:
        raise ConfigError(f"ingest.shard_size={config.ingest.shard_size} bytes is too small (minimum 1KiB)")
    _validate_neardup(config.neardup)
    check_exactsubstr(config.exactsubstr)
    check_output_mode(config.output.mode, config.stages, config.exactsubstr.passes)
    check_stages(config.stages, config.stop_after, bool(config.protect))
    check_paths(config.input.path, config.output.path, config.protect)
    check_index(config.index, config.input.path, config.output.path, config.output.mode)


def _validate_neardup(nd: NeardupConfig) -> None:
    from dedup_spark.neardup.lsh import PRESETS

    check_choice("neardup.preset", nd.preset, tuple(PRESETS))
    check_choice("neardup.shingle_unit", nd.shingle_unit, ("word", "char"))
    if nd.cluster_rule is not None:
        check_choice("neardup.cluster_rule", nd.cluster_rule, CLUSTER_RULES)
    check_choice("neardup.keep", nd.keep, ("lowest_id", "longest", "column"))
    if nd.keep == "column" and not nd.keep_column:
        raise ConfigError("neardup.keep=column needs neardup.keep_column=NAME")
    for key, value in (("bands", nd.bands), ("rows", nd.rows)):
        if value is not None and value < 1:
            raise ConfigError(f"neardup.{key} must be at least 1")
    for key, value in (("threshold", nd.threshold), ("edit_threshold", nd.edit_threshold)):
        if value is not None and not 0.0 <= value < 1.0:
            raise ConfigError(f"neardup.{key} must be in [0, 1)")
    if nd.ngram < 1 or nd.batch_docs < 1 or nd.max_component_rounds < 1:
        raise ConfigError("neardup.ngram, neardup.batch_docs and neardup.max_component_rounds must be at least 1")
    if nd.local_components_max_edges < 0:
        raise ConfigError("neardup.local_components_max_edges must be at least 0")
    if nd.local_candidates_max_band_keys < 0:
        raise ConfigError("neardup.local_candidates_max_band_keys must be at least 0")
    check_neardup_memory(nd.bands or PRESETS[nd.preset].bands, nd.rows or PRESETS[nd.preset].rows, nd.batch_docs)


def dump_yaml(config: RunConfig) -> str:
    """The resolved config as YAML, printed at the start of every run."""
    tree = config.to_dict()
    tree["stages"] = list(config.stages)
    return yaml.safe_dump(tree, sort_keys=False)
