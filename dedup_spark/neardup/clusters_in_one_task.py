"""NearDup's verification and clusters of a small graph in one Spark task: the candidate pairs' checks, connected
components, the anchored rule and each cluster's kept document, the same as the distributed steps of `stage.py`
compute them.

After the candidate pairs a NearDup run of a few hundred MB has a graph of a few thousand edges; its distributed
steps (verified: two joins of the pairs with the texts and a task per partition; components, anchors, clusters: a
union-find task, a cogroup of each component's documents and edges, a window over the clusters) cost 3.0 s at 300
MB and 4.5 s at 1 GB of linux for the clusters alone, much of it Spark's fixed cost per job, for a graph Python
labels in milliseconds (the checks are the same work either way, and each text is normalised once for both the
pairs and the anchored rule's keeper checks). Here one task reads the edges and the documents on them (id,
keep-order rank, held-out flag, text) and writes two kinds of rows:

    kind "member": _dd_id, cluster_id, cluster_size, kept, _dd_with_protected, anchor_round
    kind "pair":   u, v, jaccard, edit_similarity, passed (`verify.VERIFIED_SCHEMA`): each candidate pair checked

- pairs: the edges marked `_dd_check` are checked (`verify.check_pair`); those that pass are edges, as are the others;
- components: `components.union_find` over the edges, labelled by their smallest id (as the distributed labels);
- clusters: the components, split by `anchored.anchor_component` under the `anchored` rule (components of fewer
  than `anchored_from` documents are not anchored: see clusters.py), each cluster's first document in keep order is
  `cluster_id` and kept, held-out documents are kept too, `_dd_with_protected` marks clusters holding one;
- anchor_round: the rounds the document's component took under the anchored rule (null when not anchored).
  Documents the anchored rule leaves alone are written with cluster_size 1 (so the rounds of every anchored
  component are counted) and are in no cluster, as are documents on edges that all failed their check.

Memory of the task: the texts of the documents on edges (the stage sends only a graph whose `involved` step wrote
at most `clusters.LOCAL_CLUSTERS_MAX_BYTES`), plus the shingle-set cache of `verify.py`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_schema

from dedup_spark.columns import CHECK, ID, PROTECTED, RANK, TEXT, WITH_PROTECTED
from dedup_spark.config import NeardupConfig
from dedup_spark.neardup.anchored import anchor_component
from dedup_spark.neardup.components import union_find
from dedup_spark.neardup.lsh import LshPreset
from dedup_spark.neardup.verify import ShingleSets, check_pair

ROWS_SCHEMA = pa.schema(
    [
        ("kind", pa.string()),
        (ID, pa.string()),
        ("cluster_id", pa.string()),
        ("cluster_size", pa.int64()),
        ("kept", pa.bool_()),
        (WITH_PROTECTED, pa.bool_()),
        ("anchor_round", pa.int32()),
        ("u", pa.string()),
        ("v", pa.string()),
        ("jaccard", pa.float64()),
        ("edit_similarity", pa.float64()),
        ("passed", pa.bool_()),
    ]
)


def clusters_in_one_task(
    edges: DataFrame, nodes: DataFrame, nd: NeardupConfig, lsh: LshPreset, anchored_from: int | None
) -> DataFrame:
    """Rows of ROWS_SCHEMA (module docstring).

    edges: (u, v, `_dd_check`) without self loops, `_dd_check` true for a candidate pair to check before it is an
    edge; nodes: `_dd_id`, `_dd_rank` (keep order, unique), `_dd_protected` and `_dd_text` of at least every
    document on an edge. anchored_from: the smallest component the anchored rule splits (None: the `components`
    rule).
    """
    none = F.lit(None)
    rows = edges.select(
        "u",
        "v",
        CHECK,
        none.cast("long").alias(RANK),
        none.cast("boolean").alias(PROTECTED),
        none.cast("string").alias(TEXT),
    ).unionByName(
        nodes.select(
            F.col(ID).alias("u"),
            none.cast("string").alias("v"),
            none.cast("boolean").alias(CHECK),
            RANK,
            PROTECTED,
            TEXT,
        )
    )
    return rows.coalesce(1).mapInArrow(_batches(nd, lsh, anchored_from), from_arrow_schema(ROWS_SCHEMA))


def _batches(nd: NeardupConfig, lsh: LshPreset, anchored_from: int | None):
    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        batches = list(batches)  # none at all when the graph is empty
        if batches:
            yield from clusters_of_table(pa.Table.from_batches(batches), nd, lsh, anchored_from).to_batches()

    return run


def clusters_of_table(table: pa.Table, nd: NeardupConfig, lsh: LshPreset, anchored_from: int | None) -> pa.Table:
    """The rows of one table of edges (v set) and nodes (v null), as `clusters_in_one_task` describes them."""
    rows = table.to_pydict()
    to_check, edges, rank, protected, texts = [], [], {}, set(), {}
    for u, v, check, r, p, text in zip(
        rows["u"], rows["v"], rows[CHECK], rows[RANK], rows[PROTECTED], rows[TEXT], strict=True
    ):
        if v is None:
            rank[u], texts[u] = r, text
            if p:
                protected.add(u)
        else:
            (to_check if check else edges).append((u, v))
    cache = ShingleSets(nd)
    out: dict[str, list] = {field.name: [] for field in ROWS_SCHEMA}

    def put(values: dict) -> None:
        for name, column in out.items():
            column.append(values.get(name))

    for u, v in sorted(to_check):  # by u: a bucket's first member, on many pairs, stays in the cache
        jaccard, edit, passed = check_pair(cache, u, texts[u], v, texts[v], lsh)
        put({"kind": "pair", "u": u, "v": v, "jaccard": jaccard, "edit_similarity": edit, "passed": passed})
        if passed:
            edges.append((u, v))
    labels = union_find(edges)
    members: dict[str, list[str]] = {}
    for node, label in labels.items():
        members.setdefault(label, []).append(node)
    edges_of: dict[str, list[tuple[str, str]]] = {}
    for u, v in edges:
        edges_of.setdefault(labels[u], []).append((u, v))

    def verifies(keeper: str, member: str) -> bool:
        return check_pair(cache, keeper, texts[keeper], member, texts[member], lsh, keeper=True)[2]

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
                kept = position == 0 or node in protected
                member = {ID: node, "cluster_id": cluster[0], "cluster_size": len(cluster), "kept": kept}
                put({"kind": "member", **member, WITH_PROTECTED: with_protected, "anchor_round": rounds})
    return pa.table(out, schema=ROWS_SCHEMA)
