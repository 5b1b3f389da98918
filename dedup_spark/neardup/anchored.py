"""NearDup's `anchored` cluster rule: a document is removed only if it verifies against the document its cluster
keeps, never for a neighbour's neighbour.

Connected components join A and Z through a chain of verified pairs even when A and Z share little (templated
pages, a document edited step by step): one report found a "cluster" of 859,091 documents. The anchored rule
starts from the same components and splits them:

    repeat until no document is left undecided:
        for each connected part of the verified-pair graph among the undecided documents:
            its first document in keep order is kept (the part's keeper);
            each other document is removed if it verifies against the keeper (`verify.check_pair` with
            keeper=True: Jaccard above the threshold, then edit similarity if the preset checks it) and is not
            protected; otherwise it stays undecided for the next round.

Every round decides at least the keeper of each part, so it ends; the result depends only on the verified pairs,
the texts and the keep order (ties by id), never on partitioning. A document whose part shrinks to itself is
kept and in no cluster. Each component is anchored inside one Spark task (a cogroup of its documents and its
edges), so the rounds cost no Spark jobs and components are spread over the cluster's cores; the memory of a task
is about twice the text of its largest component plus the shingle-set cache of `verify.py`.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from dedup_spark.columns import EDGE_COMPONENT, ID, RANK
from dedup_spark.config import NeardupConfig
from dedup_spark.neardup.lsh import LshPreset
from dedup_spark.neardup.verify import ShingleSets, check_pair

ANCHOR_SCHEMA = f"{ID} string, anchor string, anchor_round int"


def anchor_component(
    members: list[str], protected: set[str], edges: list[tuple[str, str]], verifies: Callable[[str, str], bool]
) -> tuple[dict[str, str], int]:
    """The anchored rule on one component: members in keep order, protected members (never removed), its edges,
    and `verifies(keeper, member)`. Returns ({member: its keeper, itself when kept}, rounds run)."""
    neighbours: dict[str, list[str]] = {m: [] for m in members}
    for u, v in edges:
        neighbours[u].append(v)
        neighbours[v].append(u)
    anchor: dict[str, str] = {}
    undecided, rounds = set(members), 0
    while undecided:
        rounds += 1
        seen: set[str] = set()
        for keeper in members:  # in keep order, so each part's first unseen member is its keeper
            if keeper not in undecided or keeper in seen:
                continue
            part, stack = [], [keeper]
            seen.add(keeper)
            while stack:
                node = stack.pop()
                part.append(node)
                for other in neighbours[node]:
                    if other in undecided and other not in seen:
                        seen.add(other)
                        stack.append(other)
            anchor[keeper] = keeper
            for member in part[1:]:
                if member not in protected and verifies(keeper, member):
                    anchor[member] = keeper
        undecided -= anchor.keys()
    return anchor, rounds


def _anchor_groups(nd: NeardupConfig, lsh: LshPreset, text_column: str, protected_column: str):
    """cogroup function: one component's documents (_dd_id, rank, protected flag, text) and edges -> ANCHOR_SCHEMA."""

    def run(nodes: pd.DataFrame, edges: pd.DataFrame) -> pd.DataFrame:
        nodes = nodes.sort_values(RANK)
        ids = nodes[ID].tolist()
        texts = dict(zip(ids, nodes[text_column].tolist(), strict=True))
        protected = {i for i, p in zip(ids, nodes[protected_column].tolist(), strict=True) if p}
        cache = ShingleSets(nd)

        def verifies(keeper: str, member: str) -> bool:
            return check_pair(cache, keeper, texts[keeper], member, texts[member], lsh, keeper=True)[2]

        anchor, rounds = anchor_component(ids, protected, list(zip(edges["u"], edges["v"], strict=True)), verifies)
        return pd.DataFrame({ID: ids, "anchor": [anchor[i] for i in ids], "anchor_round": rounds})

    return run


def anchored_labels(
    labelled: DataFrame,
    edges: DataFrame,
    order: list,
    nd: NeardupConfig,
    lsh: LshPreset,
    text_column: str,
    protected_column: str,
) -> DataFrame:
    """Documents of the components -> (_dd_id, anchor, anchor_round) by the anchored rule.

    labelled: every document on an edge with `component`, the text column, `protected_column` and the columns
    `order` sorts by; edges: (u, v) verified and exact-copy pairs. `anchor` is the id of the document's keeper
    (itself when kept); `anchor_round` the rounds its component needed.
    """
    ranked = labelled.select(
        ID,
        "component",
        F.row_number().over(Window.partitionBy("component").orderBy(*order)).alias(RANK),
        protected_column,
        text_column,
    )
    # Renamed: both sides come from `labelled`, and cogroup matches its keys by position, not by name.
    components = labelled.select(F.col(ID).alias("u"), F.col("component").alias(EDGE_COMPONENT))
    with_component = edges.join(components, "u").select(EDGE_COMPONENT, "u", "v")
    return (
        ranked.groupBy("component")
        .cogroup(with_component.groupBy(EDGE_COMPONENT))
        .applyInPandas(_anchor_groups(nd, lsh, text_column, protected_column), ANCHOR_SCHEMA)
    )
