"""NearDup's verification and clusters: the candidate and exact-copy pairs -> one row per clustered document
(`_dd_id`, `cluster_id`, `cluster_size`, `kept`, `_dd_with_protected`), as steps `verified` and `clusters` of the
stage (see stage.py, steps 5 and 6).

Two ways, the same rows: the distributed steps (verify.py's joins, components.py's rounds or union-find,
anchored.py's cogroup per component, a window per cluster), or, for a graph of at most
`neardup.local_components_max_edges` edges whose documents' texts are small, one task (clusters_in_one_task.py):
at 300 MB of linux the distributed clusters took 3.0 s for a graph of 1,323 edges, the one task 1.85 s.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from dedup_spark.columns import CHECK, ID, PROTECTED, RANK, SIZE, TEXT, WITH_PROTECTED
from dedup_spark.config import NeardupConfig
from dedup_spark.neardup.anchored import anchored_labels
from dedup_spark.neardup.clusters_in_one_task import clusters_in_one_task
from dedup_spark.neardup.components import connected_components
from dedup_spark.neardup.lsh import LshPreset
from dedup_spark.neardup.verify import checks_candidates, verify_candidates
from dedup_spark.sparkops import Steps

# The `involved` step's Parquet bytes up to which the clusters are computed in one task (clusters_in_one_task.py): the
# texts of the documents on edges, about 3-4x that in memory (linux at 1 GB: 22 MB).
LOCAL_CLUSTERS_MAX_BYTES = 64 * 1024 * 1024


def cluster_documents(
    step: Steps,
    involved: DataFrame,
    candidates: DataFrame,
    exact_edges: DataFrame,
    max_edges: int,
    order: list,
    nd: NeardupConfig,
    lsh: LshPreset,
    text_column: str,
) -> tuple[DataFrame, DataFrame, int, int]:
    """(the clusters' rows, the candidate pairs that passed verification, component rounds run, anchor rounds run)
    of the graph of the verified `candidates` and the `exact_edges` (u, v), at most `max_edges` edges, over the
    `involved` step's rows (ids, texts, keep-order columns, `_dd_protected`), the first in keep `order` kept. In one
    task when the graph and the texts are small, else in the distributed steps.
    """
    anchored_from = (3 if lsh.verify_jaccard else 2) if lsh.cluster_rule == "anchored" else None
    small = max_edges <= nd.local_components_max_edges and step.figures["involved"]["bytes"] <= LOCAL_CLUSTERS_MAX_BYTES
    if small:
        return _in_one_task(step, involved, candidates, exact_edges, order, nd, lsh, text_column, anchored_from)
    verified = verify_candidates(step, "verified", candidates, involved.select(ID, text_column), nd, lsh)
    edges = verified.unionByName(exact_edges)
    clusters, rounds, anchor_rounds = _distributed(step, involved, edges, order, nd, lsh, text_column, anchored_from)
    return clusters, verified, rounds, anchor_rounds


def _distributed(
    step: Steps,
    involved: DataFrame,
    edges: DataFrame,
    order: list,
    nd: NeardupConfig,
    lsh: LshPreset,
    text_column: str,
    anchored_from: int | None,
) -> tuple[DataFrame, int, int]:
    """Steps components (components.py), anchors (anchored.py: components of at least `anchored_from` documents;
    None: the components rule) and clusters: (the `clusters` rows, component rounds, anchor rounds)."""
    labels, rounds = connected_components(step, edges, nd.max_component_rounds, nd.local_components_max_edges)
    in_clusters = involved.join(labels.withColumnRenamed("node", ID), ID)
    anchor_rounds = 0
    if anchored_from is not None:
        # When candidates are verified by Jaccard, a component of two documents is one pair that passed the
        # keeper's test already: only larger components go through the anchored rule (and ship their texts).
        sizes = labels.groupBy("component").agg(F.count(F.lit(1)).alias(SIZE))
        larger = in_clusters.join(sizes.filter(F.col(SIZE) >= anchored_from), "component", "left_semi")
        anchors = step("anchors", anchored_labels(larger, edges, order, nd, lsh, text_column, PROTECTED))
        anchor_rounds = anchors.agg(F.max("anchor_round")).first()[0] or 0
        in_clusters = in_clusters.join(anchors, ID, "left").withColumn(
            "component",
            F.coalesce("anchor", "component"),  # anchors and pair labels are ids of their members
        )
    cluster = Window.partitionBy("component").orderBy(*order)
    whole = Window.partitionBy("component")
    clusters = in_clusters.select(
        ID,
        F.first(ID).over(cluster).alias("cluster_id"),
        F.count(F.lit(1)).over(whole).alias("cluster_size"),
        ((F.row_number().over(cluster) == 1) | F.col(PROTECTED)).alias("kept"),  # protected: never removed
        F.max(PROTECTED).over(whole).alias(WITH_PROTECTED),
    ).filter(F.col("cluster_size") > 1)  # anchored: a document left alone is in no cluster
    return step("clusters", clusters), rounds, anchor_rounds


def _in_one_task(
    step: Steps,
    involved: DataFrame,
    candidates: DataFrame,
    exact_edges: DataFrame,
    order: list,
    nd: NeardupConfig,
    lsh: LshPreset,
    text_column: str,
    anchored_from: int | None,
) -> tuple[DataFrame, DataFrame, int, int]:
    """The same as the verification and `_distributed`, in one task (clusters_in_one_task.py): step clusters, its
    rows partitioned by kind (member, pair)."""
    check = checks_candidates(lsh)
    edges = (
        candidates.select("u", "v", F.lit(check).alias(CHECK))
        .unionByName(exact_edges.select("u", "v", F.lit(False).alias(CHECK)))
        .filter(F.col("u") != F.col("v"))
    )
    on_edges = edges.select(F.col("u").alias(ID)).union(edges.select("v"))
    nodes = involved.join(on_edges, ID, "left_semi").select(
        ID,
        F.row_number().over(Window.orderBy(*order)).alias(RANK),  # a few thousand rows: one partition is fine
        PROTECTED,
        F.col(text_column).alias(TEXT),
    )
    rows = step("clusters", clusters_in_one_task(edges, nodes, nd, lsh, anchored_from), partition_by=("kind",))
    members = rows.filter(F.col("kind") == "member")
    verified = rows.filter((F.col("kind") == "pair") & F.col("passed")).select("u", "v") if check else candidates
    anchor_rounds = 0
    if anchored_from is not None:
        anchor_rounds = members.agg(F.max("anchor_round")).first()[0] or 0
    # Documents the anchored rule left alone were written for their component's rounds; they are in no cluster.
    clusters = members.filter(F.col("cluster_size") > 1).select(
        ID, "cluster_id", "cluster_size", "kept", WITH_PROTECTED
    )
    return clusters, verified, 0, anchor_rounds
