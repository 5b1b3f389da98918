"""The contract every dedup stage keeps, and what it hands back to the pipeline.

A stage is a class with a `name` (the `--stages` name, its config section and its `_work/<name>` folder), the
internal columns it needs besides the text column, a `run` and a `plan`. The pipeline holds the registry
(`pipeline.STAGES`), checks the columns before any work and records rows, bytes and seconds around `run`.

`docs` holds one row per document: the input's columns plus `_dd_id` (string, unique) and `_dd_bytes` (UTF-8
size of the text); see columns.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from pyspark.sql import DataFrame, SparkSession

from dedup_spark.config import RunConfig
from dedup_spark.errors import InputError


@dataclass(frozen=True)
class StageContext:
    """What a stage may use besides its documents."""

    spark: SparkSession
    config: RunConfig  # a stage reads its own section plus the text and id columns
    work_dir: str  # DIR/_work/<name>: the stage's intermediate results
    protected: DataFrame | None  # held-out documents of `run --protect` (protect.py), or None
    # `run --index`: the index's documents (`_dd_id` unprefixed, text column, `_dd_bytes`), which ExactSubstr
    # reads first and never cuts (index/incremental.py); None without an index. NearDup gets them in `protected`.
    index: DataFrame | None = None
    # `run --index`: NearDup signatures (`neardup.signatures.SIGNATURE_SCHEMA`) of the index's documents in
    # `protected`, stored by earlier runs with the same settings; None: NearDup computes them.
    protected_signatures: DataFrame | None = None


@dataclass
class StageOutput:
    """What a stage hands back to the pipeline.

    docs:    surviving documents, same columns as the stage's input (a stage may rewrite the text column and
             `_dd_bytes`); None when the stage only drops rows: the survivors are then the input minus `removed`,
             which the pipeline derives instead of writing a copy of the corpus.
    removed: removed documents, same columns plus `reason` (string) and any stage columns (e.g. `cluster_id`).
    tables:  extra output tables by relative name (e.g. "neardup/clusters"), written in the output format.
    metrics: JSON-ready numbers for the report; `steps` lists each step's seconds and rows (`sparkops.Steps`).
    """

    docs: DataFrame | None
    removed: DataFrame
    tables: dict[str, DataFrame] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)


class Stage(Protocol):
    name: ClassVar[str]
    required_columns: ClassVar[tuple[str, ...]]  # internal columns needed besides the text column

    def run(self, ctx: StageContext, docs: DataFrame) -> StageOutput: ...

    def plan(self, config: RunConfig) -> list[str]:
        """Lines for --dry-run: the stage's key settings, for people."""
        ...


def check_columns(stage: Stage, docs: DataFrame, config: RunConfig) -> None:
    """Raise InputError naming the missing columns before the stage does any work."""
    missing = [c for c in (config.input.text_column, *stage.required_columns) if c not in docs.columns]
    if missing:
        raise InputError(f"{stage.name}: the documents have no column(s) {missing}; columns are {docs.columns}")
