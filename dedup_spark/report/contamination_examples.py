"""The examples on contamination's report page: the most contaminated eval documents, near-duplicate pairs side by
side, and the longest text shared with train. Each is a small top-N query; only those rows reach the driver."""

from __future__ import annotations

from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from dedup_spark.columns import EVAL_PREFIX, ID
from dedup_spark.excerpts import EXCERPT_CHARS, collect_heads, side_by_side

MOST_CONTAMINATED = 20
NEARDUP_PAIRS = 3
LONGEST_SPANS = 10
PREFIX_CHARS = len(EVAL_PREFIX)  # the set prefix before every id inside the command


def _plain(column: str) -> Any:
    return F.expr(f"substring({column}, {PREFIX_CHARS + 1})")


def page_examples(
    eval_table: DataFrame, id_column: str, texts: DataFrame, pairs: DataFrame, text_column: str
) -> dict[str, Any]:
    """eval_table: the written `eval/` table (its ids in `id_column`); texts: `_dd_id` (prefixed) and the text of
    both sets; pairs: (`train_id`, `eval_id`) prefixed near-duplicate pairs."""
    most = (
        eval_table.filter("contaminated")
        .orderBy(F.desc("contaminated_bytes"), id_column)
        .limit(MOST_CONTAMINATED)
        .select(
            F.col(id_column).cast("string").alias("id"),
            "bytes",
            "contaminated_bytes",
            "neardup",
            "exact_bytes",
            "neardup_train_ids",
            "exact_train_ids",
        )  # fmt: skip
        .collect()
    )
    chosen = pairs.orderBy("eval_id", "train_id").limit(NEARDUP_PAIRS).collect()
    heads = collect_heads(texts, sorted({r[c] for r in chosen for c in ("eval_id", "train_id")}), ID, text_column)
    neardup_pairs = []
    for r in chosen:
        shown = side_by_side([(r["eval_id"], heads[r["eval_id"]]), (r["train_id"], heads[r["train_id"]])])
        for excerpt, label in zip(shown, ("eval", "train"), strict=True):
            excerpt.update(id=excerpt["id"][PREFIX_CHARS:], label=label, kept=label == "eval")
        neardup_pairs.append(shown)
    spans = (
        eval_table.select(F.col(id_column).cast("string").alias("id"), F.explode("exact_spans").alias("span"))
        .select("id", F.col("span.start").alias("start"), F.col("span.end").alias("end"))
        .orderBy(F.desc(F.col("end") - F.col("start")), "id", "start")
        .limit(LONGEST_SPANS)
    )
    eval_texts = texts.filter(F.col(ID).startswith(EVAL_PREFIX))
    plain_texts = eval_texts.select(_plain(ID).alias("id"), text_column)
    longest = (
        spans.join(plain_texts, "id")
        .select(
            "id",
            "start",
            "end",
            F.expr(f"substring(`{text_column}`, start + 1, least(end - start, {EXCERPT_CHARS}))").alias("text"),
        )  # fmt: skip
        .orderBy(F.desc(F.col("end") - F.col("start")), "id", "start")
        .collect()
    )
    return {
        "most_contaminated": [r.asDict() for r in most],
        "neardup_pairs": neardup_pairs,
        "longest_spans": [r.asDict() for r in longest],
    }
