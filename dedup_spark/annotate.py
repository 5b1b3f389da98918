"""The columns data/ adds to the documents: remove mode's `cluster_size`, and output.mode=annotate's marks.

Remove mode (`with_cluster_size`): a kept document carries its NearDup cluster's size, so teams can upsample by it.

Annotate mode (`annotated_docs`): data/ keeps every document and marks what remove mode drops or cuts. The stages
run exactly as in remove mode (ExactSubstr on NearDup's survivors); only data/ differs. It holds every ingested
document with its text as read, the columns remove mode gives it, and (names in `columns`):

  cluster_size        with output.cluster_size, when NearDup ran: the size of its NearDup cluster for every member
                      (remove mode's kept documents carry the same value), 1 outside clusters
  dedup_cluster_id    the id of its cluster's kept document (`_dd_id`: the id column as a string); null outside
  dedup_cluster_kept  NearDup keeps it: its cluster's kept document, or in no cluster
  dedup_reason        why remove mode removes it (the reason of the stage that does: near_duplicate,
                      contamination, exact_substring); null when remove mode writes it to data/
  dedup_spans         the code point spans [start, end) of its text that ExactSubstr cuts (its `exact/spans` rows,
                      sorted); empty when none
  dedup_cut_bytes     UTF-8 bytes in those spans

Dropping the rows with a reason, cutting the spans out of the text and dropping the `dedup_*` columns gives
remove mode's data/ (the README's snippet; tests/test_annotate.py checks it). Spans are positions in the input's
text only with one ExactSubstr pass (a second pass's are in the text the first cut), so config_checks refuses
annotate with exactsubstr.passes=2.
"""

from __future__ import annotations

from typing import Any

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from dedup_spark.columns import (
    CLUSTER_ID_COLUMN,
    CLUSTER_KEPT_COLUMN,
    CLUSTER_SIZE,
    CUT_BYTES_COLUMN,
    ID,
    REASON_COLUMN,
    SIZE,
    SPANS_COLUMN,
)
from dedup_spark.exactsubstr.stage import SPANS_TABLE
from dedup_spark.exactsubstr.steps import SPAN_TYPE
from dedup_spark.neardup.stage import CLUSTERS_TABLE


def annotated_docs(
    docs: DataFrame, removed: DataFrame, tables: dict[str, DataFrame], text_column: str, cluster_size: bool
) -> DataFrame:
    """docs: every ingested document (`ingest.load_docs`); removed: the stages' removed rows (`_dd_id`, `reason`);
    tables: the stages' extra tables by name; cluster_size: output.cluster_size. Returns docs' columns plus the
    annotation columns of the module docstring (the cluster ones null or defaults when NearDup did not run)."""
    marked = docs.join(removed.select(ID, F.col("reason").alias(REASON_COLUMN)), ID, "left")
    size, kept, cluster_id = F.lit(None).cast("long"), F.lit(None).cast("boolean"), F.lit(None).cast("string")
    spans = F.lit(None).cast(SPAN_TYPE)
    if CLUSTERS_TABLE in tables:
        clusters = tables[CLUSTERS_TABLE].select(
            F.col("doc_id").alias(ID),
            F.col("cluster_id").alias(CLUSTER_ID_COLUMN),
            F.col("cluster_size").alias(SIZE),
            F.col("kept").alias(CLUSTER_KEPT_COLUMN),
        )
        marked = marked.join(clusters, ID, "left")
        size, kept, cluster_id = F.col(SIZE), F.col(CLUSTER_KEPT_COLUMN), F.col(CLUSTER_ID_COLUMN)
    if SPANS_TABLE in tables:
        ordered = F.array_sort(F.collect_list(F.struct("start", "end"))).alias(SPANS_COLUMN)
        marked = marked.join(tables[SPANS_TABLE].groupBy(F.col("doc_id").alias(ID)).agg(ordered), ID, "left")
        spans = F.col(SPANS_COLUMN)
    spans = F.coalesce(spans, F.array().cast(SPAN_TYPE))
    # Spark strings index code points, as the spans do: a span's bytes are those of its substring.
    text = F.col(text_column)
    cut_bytes = F.aggregate(
        spans, F.lit(0).cast("long"), lambda total, s: total + F.octet_length(text.substr(s.start + 1, s.end - s.start))
    )
    with_size = cluster_size and CLUSTERS_TABLE in tables
    added = [_cluster_size(size)] if with_size else []
    added += [
        cluster_id.alias(CLUSTER_ID_COLUMN),
        F.coalesce(kept, F.lit(True)).alias(CLUSTER_KEPT_COLUMN),
        F.col(REASON_COLUMN),
        spans.alias(SPANS_COLUMN),
        cut_bytes.alias(CUT_BYTES_COLUMN),
    ]
    return marked.select(*docs.columns, *added)


def with_cluster_size(docs: DataFrame, clusters: DataFrame) -> DataFrame:
    """`cluster_size` on every document: the size of its NearDup cluster for a cluster's kept document, else 1.

    clusters: the `neardup/clusters` table (doc_id = `_dd_id`). A removed member never reaches data/, so a document
    there is its cluster's kept one or in no cluster.
    """
    kept = clusters.filter(F.col("kept")).select(F.col("doc_id").alias(ID), F.col(CLUSTER_SIZE).alias(SIZE))
    return docs.join(kept, ID, "left").select(*docs.columns, _cluster_size(F.col(SIZE)))


def _cluster_size(size: Column) -> Column:
    """The `cluster_size` column: a cluster's size, 1 for a document in none (`size` null)."""
    return F.coalesce(size, F.lit(1)).cast("long").alias(CLUSTER_SIZE)


def annotation_counts(data: DataFrame) -> dict[str, Any]:
    """For the report: the rows data/'s annotations mark for removal (by reason), and the rows and UTF-8 bytes of
    their spans (as ExactSubstr's bytes_removed, the spans of rows it removes included)."""
    by_reason = {
        row[REASON_COLUMN]: int(row["count"])
        for row in data.filter(F.col(REASON_COLUMN).isNotNull()).groupBy(REASON_COLUMN).count().collect()
    }
    spans = data.agg(
        F.count(F.when(F.size(SPANS_COLUMN) > 0, 1)).alias("rows"), F.sum(CUT_BYTES_COLUMN).alias("bytes")
    ).first()
    return {
        "rows_marked_for_removal": sum(by_reason.values()),
        "marked_by_reason": by_reason,
        "rows_with_spans": int(spans["rows"]),
        "bytes_in_spans": int(spans["bytes"] or 0),
    }
