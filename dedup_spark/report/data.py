"""Numbers for report.html that report.json does not hold yet: removed share by source.

Counts come from DataFrame aggregates over the ingested documents and the removed rows; only one row per
source (at most `max_sources` + 1 of them) reaches the driver, so a column with millions of distinct values
costs no more than one with ten.
"""

from __future__ import annotations

import logging
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from dedup_spark.columns import BYTES, SOURCE

log = logging.getLogger("dedup_spark")

#: The column used when the config names none and the input has it.
DEFAULT_SOURCE_COLUMN = "source"
#: Sources listed by name; the rest are summed into one OTHER row.
MAX_SOURCES = 50
#: Label of the rows whose source is null, and of the sum of the sources beyond the first `max_sources`.
NULL_SOURCE = "(null)"
OTHER_SOURCES = "(other)"


def resolve_source_column(docs: DataFrame, column: str | None) -> str | None:
    """The column to group by: `column` if given and present, else "source" if present, else None.

    A named column the input lacks is logged (the report says so) rather than failing a finished run.
    """
    if column is None:
        return DEFAULT_SOURCE_COLUMN if DEFAULT_SOURCE_COLUMN in docs.columns else None
    if column not in docs.columns:
        log.warning(
            "report.source_column=%r is not an input column (%s): no removed share by source", column, docs.columns
        )
        return None
    return column


def removed_share_by_source(
    docs: DataFrame,
    removed: DataFrame,
    column: str | None = None,
    survivors: DataFrame | None = None,
    max_sources: int = MAX_SOURCES,
) -> list[dict[str, Any]] | None:
    """Per value of a source column: documents ingested, documents removed (by reason) and the removed share.

    docs:      the ingested documents (one row per document entering the first dedup stage), with `column`
               and, for byte figures, `_dd_bytes`.
    removed:   every removed document, with `column` and `reason` (the union of the stages' removed rows).
    column:    the source column; None means "source" when the input has one (see `resolve_source_column`).
    survivors: optional, the documents left after the last stage with `_dd_bytes`: adds `bytes_in`, `bytes_out`
               and `bytes_removed_share` (counts the bytes exactsubstr cuts out of documents it keeps).
    Returns None when there is no such column, else
    `[{source, documents, removed, removed_share, by_reason: {reason: n}, [bytes_in, bytes_out,
    bytes_removed_share]}]`, largest `documents` first (ties by name), at most `max_sources` named sources then
    one `(other)` row with a `sources` count. Null values are the source `(null)`.
    """
    name = resolve_source_column(docs, column)
    if name is None:
        return None
    if max_sources < 1:
        raise ValueError(f"max_sources must be at least 1, got {max_sources}")

    def key(frame: DataFrame) -> DataFrame:
        return frame.withColumn(
            SOURCE, F.coalesce(F.col("`" + name.replace("`", "``") + "`").cast("string"), F.lit(NULL_SOURCE))
        )

    with_bytes = BYTES in docs.columns and survivors is not None and BYTES in survivors.columns
    sums = [F.count(F.lit(1)).alias("documents")]
    if with_bytes:
        sums.append(F.sum(BYTES).alias("bytes_in"))
    per_source = key(docs).groupBy(SOURCE).agg(*sums)
    # One more than shown tells whether an (other) row is needed without collecting every source.
    top = per_source.orderBy(F.desc("documents"), SOURCE).limit(max_sources + 1).collect()
    named = [r[SOURCE] for r in top[:max_sources]]
    capped = len(top) > max_sources

    def bucket(frame: DataFrame) -> DataFrame:
        source = F.col(SOURCE)
        return key(frame).withColumn(
            SOURCE, F.when(source.isin(named), source).otherwise(F.lit(OTHER_SOURCES)) if capped else source
        )

    # The documents in come from the per-source counts: uncapped, `top` holds every source; capped, the sources
    # not named are summed into one (other) row, with their number, in one more pass.
    ins, folded = top, 0
    if capped:
        totals = [F.count(F.lit(1)).alias("sources"), *(F.sum(c).alias(c) for c in per_source.columns[1:])]
        other = per_source.filter(~F.col(SOURCE).isin(named)).agg(*totals).first().asDict()
        ins, folded = [*top[:max_sources], {**other, SOURCE: OTHER_SOURCES}], other["sources"]
    rows: dict[str, dict[str, Any]] = {}

    def row(source: str) -> dict[str, Any]:
        blank = {"source": source, "documents": 0, "removed": 0, "by_reason": {}}
        return rows.setdefault(source, blank | ({"bytes_in": 0, "bytes_out": 0} if with_bytes else {}))

    for r in ins:
        row(r[SOURCE])["documents"] = int(r["documents"])
        if with_bytes:
            row(r[SOURCE])["bytes_in"] = int(r["bytes_in"] or 0)
    # Removed documents by source and reason, and the survivors' bytes by source, in one query.
    figures = bucket(removed).groupBy(SOURCE, "reason").agg(F.count(F.lit(1)).alias("n"))
    figures = figures.select(F.lit(True).alias("is_removed"), SOURCE, "reason", "n")
    if with_bytes:
        out = bucket(survivors).groupBy(SOURCE).agg(F.sum(BYTES).alias("n"))
        out = out.select(F.lit(False).alias("is_removed"), SOURCE, F.lit(None).cast("string").alias("reason"), "n")
        figures = figures.unionByName(out)
    for r in figures.collect():
        if r["is_removed"]:
            row(r[SOURCE])["removed"] += int(r["n"])
            row(r[SOURCE])["by_reason"][r["reason"]] = int(r["n"])
        else:
            row(r[SOURCE])["bytes_out"] = int(r["n"] or 0)

    result = []
    for entry in rows.values():
        entry["removed_share"] = round(entry["removed"] / entry["documents"], 6) if entry["documents"] else 0.0
        entry["by_reason"] = dict(sorted(entry["by_reason"].items()))
        if with_bytes:
            bytes_in = entry["bytes_in"]
            entry["bytes_removed_share"] = round(1 - entry["bytes_out"] / bytes_in, 6) if bytes_in else 0.0
        if entry["source"] == OTHER_SOURCES and capped:
            entry["sources"] = folded
        result.append(entry)
    order = {source: i for i, source in enumerate(named)}
    result.sort(key=lambda e: (order.get(e["source"], len(order)), e["source"]))
    return result
