"""NearDup's clusters of a small graph in one Spark task: connected components, the anchored rule and each
cluster's kept document, the same as the distributed steps of `stage.py` compute them.

After verification a NearDup run of a few hundred MB has a graph of a few thousand edges; its distributed steps
(components, anchors, clusters: a union-find task, a cogroup of each component's documents and edges, a window
over the clusters) cost 3.0 s at 300 MB and 4.5 s at 1 GB of linux, much of it Spark's fixed cost per job, for a
graph Python labels in milliseconds (the anchored rule's keeper checks are the same work either way). Here one
task reads the edges and the documents on them (id, keep-order rank, held-out flag, text) and writes one row per
document on an edge:

    _dd_id, cluster_id, cluster_size, kept, _dd_with_protected, anchor_round

- components: `components.union_find` over the edges, labelled by their smallest id (as the distributed labels);
- clusters: the components, split by `anchored.anchor_component` under the `anchored` rule (components of fewer
  than `anchored_from` documents are not anchored: see clusters.py), each cluster's first document in keep order is
  `cluster_id` and kept, held-out documents are kept too, `_dd_with_protected` marks clusters holding one;
- anchor_round: the rounds the document's component took under the anchored rule (null when not anchored).
  Documents the anchored rule leaves alone are written with cluster_size 1 (so the rounds of every anchored
  component are counted) and are in no cluster.

Memory of the task: the texts of the documents on edges (the stage sends only a graph whose `involved` step wrote
at most `clusters.LOCAL_CLUSTERS_MAX_BYTES`), plus the shingle-set cache of `verify.py`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from dedup_spark.columns import ID, PROTECTED, RANK, TEXT, WITH_PROTECTED
from dedup_spark.config import NeardupConfig
from dedup_spark.neardup.anchored import anchor_component
from dedup_spark.neardup.components import union_find
from dedup_spark.neardup.lsh import LshPreset
from dedup_spark.neardup.verify import ShingleSets, check_pair

CLUSTER_ROWS_SCHEMA = (
    f"{ID} string, cluster_id string, cluster_size long, kept boolean, {WITH_PROTECTED} boolean, anchor_round int"
)


def clusters_in_one_task(
    edges: DataFrame, nodes: DataFrame, nd: NeardupConfig, lsh: LshPreset, anchored_from: int | None
) -> DataFrame:
    """Rows of CLUSTER_ROWS_SCHEMA (module docstring).

    edges: (u, v) without self loops; nodes: `_dd_id`, `_dd_rank` (keep order, unique), `_dd_protected` and
    `_dd_text` of at least every document on an edge. anchored_from: the smallest component the anchored rule
    splits (None: the `components` rule).
    """
    none = F.lit(None)
    rows = edges.select(
        "u", "v", none.cast("long").alias(RANK), none.cast("boolean").alias(PROTECTED), none.cast("string").alias(TEXT)
    ).unionByName(nodes.select(F.col(ID).alias("u"), none.cast("string").alias("v"), RANK, PROTECTED, TEXT))
    return rows.coalesce(1).mapInArrow(_batches(nd, lsh, anchored_from), CLUSTER_ROWS_SCHEMA)


def _batches(nd: NeardupConfig, lsh: LshPreset, anchored_from: int | None):
    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        batches = list(batches)  # none at all when the graph is empty
        if batches:
            yield from clusters_of_table(pa.Table.from_batches(batches), nd, lsh, anchored_from).to_batches()

    return run


def clusters_of_table(table: pa.Table, nd: NeardupConfig, lsh: LshPreset, anchored_from: int | None) -> pa.Table:
    """The rows of one table of edges (v set) and nodes (v null), as `clusters_in_one_task` describes them."""
    rows = table.to_pydict()
    edges, rank, protected, texts = [], {}, set(), {}
    for u, v, r, p, text in zip(rows["u"], rows["v"], rows[RANK], rows[PROTECTED], rows[TEXT], strict=True):
        if v is not None:
            edges.append((u, v))
        else:
            rank[u], texts[u] = r, text
            if p:
                protected.add(u)
    labels = union_find(edges)
    members: dict[str, list[str]] = {}
    for node, label in labels.items():
        members.setdefault(label, []).append(node)
    edges_of: dict[str, list[tuple[str, str]]] = {}
    for u, v in edges:
        edges_of.setdefault(labels[u], []).append((u, v))
    cache = ShingleSets(nd)

    def verifies(keeper: str, member: str) -> bool:
        return check_pair(cache, keeper, texts[keeper], member, texts[member], lsh, keeper=True)[2]

    out: dict[str, list] = {
        name: [] for name in (ID, "cluster_id", "cluster_size", "kept", WITH_PROTECTED, "anchor_round")
    }
    for label in sorted(members):
        nodes = sorted(members[label], key=rank.__getitem__)
        rounds = None
        if anchored_from is not None and len(nodes) >= anchored_from:
            anchor, rounds = anchor_component(nodes, protected, edges_of[label], verifies)
            clusters: dict[str, list[str]] = {}
            for node in nodes:  # in keep order, so each cluster's members are too
                clusters.setdefault(anchor[node], []).append(node)
        else:
            clusters = {nodes[0]: nodes}
        for cluster in clusters.values():
            with_protected = any(node in protected for node in cluster)
            for position, node in enumerate(cluster):
                out[ID].append(node)
                out["cluster_id"].append(cluster[0])
                out["cluster_size"].append(len(cluster))
                out["kept"].append(position == 0 or node in protected)
                out[WITH_PROTECTED].append(with_protected)
                out["anchor_round"].append(rounds)
    schema = pa.schema(
        [
            (ID, pa.string()),
            ("cluster_id", pa.string()),
            ("cluster_size", pa.int64()),
            ("kept", pa.bool_()),
            (WITH_PROTECTED, pa.bool_()),
            ("anchor_round", pa.int32()),
        ]
    )
    return pa.table(out, schema=schema)
