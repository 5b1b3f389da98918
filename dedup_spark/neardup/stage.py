"""NearDup stage: MinHash-LSH near-duplicate documents (Lee et al. 2022, section 3), distributed end to end.

Steps, each a Spark stage whose result is written under the stage's work folder:
1. signatures   per document (Arrow batches in Python): normalised text hash, shingle count, LSH band keys.
   near_input   (only with held-out documents: --protect, --index) the input documents and the held-out ones
                sharing a band bucket with one of them; the rest decide nothing (`_near_input`).
2. exact        documents with identical normalised text form a group; its lowest id is the representative,
                and only representatives go on to banding (identical copies still end up in one cluster).
3. candidates   per (band, key) bucket, sorted by id, each member is paired with the bucket's first member and
                with its predecessor: at most 2 pairs per member, so a bucket of 100,000 copies costs 200,000
                pairs, not 5 billion.
   involved_ids the ids on those pairs.
   pairs        instead of exact, candidates and involved_ids, up to `neardup.local_candidates_max_band_keys`
                (documents x bands): the same three results computed in one task (pairs_in_one_task.py).
4. involved     the rows of every document on a candidate or exact-copy pair (a semi join, one scan of the
                corpus); the later steps read texts and columns from this subset only.
5. verified     candidate pairs whose exact Jaccard on the shingle sets is above the threshold (and whose token
                edit similarity is above edit_threshold when that check is on); both texts are re-shingled
                (verify.py). A small graph is verified inside the one task of its clusters (below).
6. clusters     connected components of verified pairs plus exact-copy pairs (components.py), split by the
                anchored rule when the setting's `cluster_rule` is `anchored` (anchored.py: a document is removed
                only if it verifies against its cluster's kept document); one kept per cluster by the keep
                policy; `cluster_id` is the id of the kept document. Under `components` every removed document is
                checked against its keeper for the report (`removed_not_verified_with_keeper`). The stage writes
                the removed rows only: the survivors are its input minus those (see `stage.StageOutput`).
                A graph of at most `neardup.local_components_max_edges` edges whose texts are small is verified
                and clustered in one task instead, with the same result (clusters.py, clusters_in_one_task.py).

Documents with no words after normalisation (`too_short`) never match anything and are always kept.
"""

from __future__ import annotations

from typing import Any, ClassVar, NamedTuple

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from dedup_spark.columns import (
    BYTES,
    HELD_OUT_PREFIXES,
    ID,
    INDEX_ID_PREFIX,
    INDEXED,
    PROTECTED,
    PROTECTED_ID_PREFIX,
    WITH_PROTECTED,
)
from dedup_spark.config import NeardupConfig, RunConfig
from dedup_spark.errors import ConfigError, InputError
from dedup_spark.excerpts import collect_heads, side_by_side
from dedup_spark.neardup.clusters import cluster_documents
from dedup_spark.neardup.lsh import LshPreset, candidate_probability, s_curve, similarity_at_probability
from dedup_spark.neardup.pairs_in_one_task import CANDIDATE, EXACT, NODE, pairs_in_one_task
from dedup_spark.neardup.signatures import SIGNATURE_SCHEMA, band_rows, candidate_pairs, resolve_lsh, signature_batches
from dedup_spark.neardup.verify import check_pairs
from dedup_spark.sparkops import Steps, file_per_task, small_shuffles
from dedup_spark.stage import StageContext, StageOutput

# The input's band keys, (band, key) rows of about 40 bytes in a broadcast, sent whole to every task up to this
# many when picking the held-out documents near the input (`_near_input`): 50,000 documents of the default preset.
BROADCAST_INPUT_KEYS = 1_000_000
CLUSTERS_TABLE = "neardup/clusters"
CLUSTER_COLUMNS = ("cluster_id", "cluster_size", "kept")
LARGEST_CLUSTERS = 10


def _keep_order(docs: DataFrame, nd: NeardupConfig, config: RunConfig) -> list:
    """Sort keys for choosing the kept document of a cluster (first in this order wins; ties by id)."""
    by_id = [F.col(config.input.id_column).asc(), F.col(ID).asc()] if config.input.id_column else [F.col(ID).asc()]
    if nd.keep == "longest":
        return [F.col(BYTES).desc(), *by_id]
    if nd.keep == "column":
        if nd.keep_column not in docs.columns:
            raise ConfigError(f"neardup.keep_column={nd.keep_column!r} is not an input column: {docs.columns}")
        column = F.col(nd.keep_column)
        return [column.desc_nulls_last() if nd.keep_descending else column.asc_nulls_last(), *by_id]
    return by_id


class NearDup:
    """The stage (see the module docstring): removed rows and the `neardup/clusters` table."""

    name: ClassVar[str] = "neardup"
    required_columns: ClassVar[tuple[str, ...]] = (ID, BYTES)

    def plan(self, config: RunConfig) -> list[str]:
        nd, lsh = config.neardup, resolve_lsh(config.neardup)
        checks = [f"Jaccard > {lsh.threshold}"] if lsh.verify_jaccard else []
        checks += [f"edit similarity > {lsh.edit_threshold}"] if lsh.verify_edit else []
        curve = ", ".join(f"J={s}: {candidate_probability(s, lsh.bands, lsh.rows):.3f}" for s in (0.5, 0.7, 0.8, 0.9))
        return [
            f"preset {nd.preset}: {lsh.bands} bands x {lsh.rows} rows ({lsh.num_perm} min-hashes), "
            f"verification: {' then '.join(checks) or 'none'}",
            f"P(candidate): {curve}; 50% at J={similarity_at_probability(0.5, lsh.bands, lsh.rows):.2f}",
            f"{nd.ngram}-{nd.shingle_unit} shingles, keep {nd.keep}, cluster rule {lsh.cluster_rule}",
        ]

    def run(self, ctx: StageContext, docs: DataFrame) -> StageOutput:
        """Held-out documents (`ctx.protected`) are clustered with the input, come first in every cluster's keep
        order and are never removed; input documents of a cluster that holds one are removed with reason
        `contamination` (others with `near_duplicate`). Pairs of two held-out documents are neither verified nor
        edges: clusters join held-out documents only through input documents."""
        return _run(ctx, docs)


def _run(ctx: StageContext, docs: DataFrame) -> StageOutput:
    spark, config, protected = ctx.spark, ctx.config, ctx.protected
    step = Steps(spark, ctx.work_dir)
    nd = config.neardup
    lsh = resolve_lsh(nd)
    text_column = config.input.text_column
    order = [F.col(PROTECTED).desc(), *_keep_order(docs, nd, config)]
    docs = _with_protected(docs, protected)
    # run --index: the index's signatures as stored (same settings and version), so the index is not re-hashed.
    known = ctx.protected_signatures
    to_sign = docs if known is None else docs.filter(F.col(INDEXED).isNull())  # the index's texts are not read

    with file_per_task(spark):  # signatures cost CPU per byte: one ingest shard per task keeps the cores busy
        computed = to_sign.select(ID, text_column).mapInArrow(signature_batches(nd, lsh, text_column), SIGNATURE_SCHEMA)
        signatures = step("signatures", computed)  # the index's stored signatures are not copied
    if known is not None:
        signatures = signatures.unionByName(known)
    keys = step.figures["signatures"]["rows"] * lsh.bands  # the input's band keys (and --protect's documents')
    # After the signatures the stage works on ids, pairs and a subset of the corpus: size its shuffles to that.
    with small_shuffles(spark, keys):
        matchable = signatures.filter(F.col("n_shingles") > 0)
        if protected is not None:
            matchable = step("near_input", _near_input(matchable, keys))
            keys = step.figures["near_input"]["rows"] * lsh.bands
        # Bucket pairs of a few hundred thousand documents cost Spark's shuffles more than their work: one task.
        in_one_task = keys <= nd.local_candidates_max_band_keys
        pairs = (_pairs_in_one_task if in_one_task else _distributed_pairs)(step, matchable)
        candidates, exact_edges = pairs.candidates, pairs.exact_edges
        # Every document that can end in a cluster is on a candidate pair or an exact-copy pair: read those rows
        # from the corpus once; verification, clusters, removed rows and excerpts all work on this subset.
        involved = step("involved", docs.join(pairs.involved_ids, ID, "left_semi"))
        texts = involved.select(ID, text_column)
        max_edges = pairs.candidate_pairs + pairs.exact_copies  # verified pairs are candidates
        clusters, verified, rounds, anchor_rounds = cluster_documents(
            step, involved, candidates, exact_edges, max_edges, order, nd, lsh, text_column
        )

        # A cluster kept by a document of `run --index` (held out, id `index:...`) removes its batch documents as such.
        by_index = F.col(WITH_PROTECTED) & F.col("cluster_id").startswith(INDEX_ID_PREFIX)
        reason = F.when(by_index, "near_duplicate_of_index")
        reason = reason.when(F.col(WITH_PROTECTED), "contamination").otherwise("near_duplicate")
        removed_ids = clusters.filter(~F.col("kept")).select(ID, "cluster_id", reason.alias("reason"))
        removed = involved.join(removed_ids, ID).drop(PROTECTED, INDEXED)
        metrics = _metrics(signatures, pairs, verified, clusters, lsh, rounds)
        metrics["cluster_rule"] = lsh.cluster_rule
        if lsh.cluster_rule == "anchored":  # removed only after passing the keeper check: none fails it
            metrics["removed_not_verified_with_keeper"] = 0
            metrics["anchor_rounds"] = anchor_rounds
        else:
            keeper_pairs = removed_ids.select(F.col("cluster_id").alias("u"), F.col(ID).alias("v"))
            checked = check_pairs(step, "keeper_check", keeper_pairs, texts, nd, lsh, keeper=True)
            metrics["removed_not_verified_with_keeper"] = checked.filter(~F.col("passed")).count()
        metrics["largest_clusters"] = _with_excerpts(metrics["largest_clusters"], texts, text_column)
        metrics["steps"] = step.table()
        if protected is not None:
            metrics["protected_documents"] = protected.count()
            metrics["index_signatures_reused"] = known.count() if known is not None else 0
            metrics["contamination_removed"] = removed_ids.filter(F.col("reason") == "contamination").count()
    return StageOutput(
        docs=None,  # the survivors are the input minus `removed`
        removed=removed,
        tables={CLUSTERS_TABLE: clusters.select(F.col(ID).alias("doc_id"), *CLUSTER_COLUMNS)},
        metrics=metrics,
    )


def _near_input(matchable: DataFrame, input_keys: int) -> DataFrame:
    """The input documents' signatures, and those of the held-out documents sharing a band bucket with one of them.

    A held-out document in no bucket of an input document is on no pair that decides anything: pairs of two
    held-out documents are dropped, and its exact copies (same normalised text, so same band keys) are in no such
    bucket either. Every bucket holding an input document keeps all its members, so the candidate pairs are those
    of the whole set; the steps after this one cost what the input's neighbourhood costs, not what the held-out
    set (a large --index) does.

    input_keys: at least the input's band keys. Up to BROADCAST_INPUT_KEYS they are broadcast to the scan of the
    held-out ones: the planner cannot tell that the filter leaves only the input's rows of the union, and would
    shuffle both sides (measured on the 1.8 GB index of the benchmark: 5.0-6.3 s warm, 3.9 s broadcast).
    """
    held_out = _held_out(ID)
    inputs = matchable.filter(~held_out)
    keys = band_rows(inputs).drop(ID)
    keys = F.broadcast(keys) if input_keys <= BROADCAST_INPUT_KEYS else keys
    near = band_rows(matchable.filter(held_out)).join(keys, ["band", "key"], "left_semi")
    return inputs.unionByName(matchable.join(near.select(ID), ID, "left_semi"))


class _Pairs(NamedTuple):
    """What the stage needs of exact copies and band buckets, however computed."""

    exact_edges: DataFrame  # (u, v): v's normalised text equals that of u, its group's lowest id
    candidates: DataFrame  # (u, v), u < v: candidate pairs of the representatives
    involved_ids: DataFrame  # _dd_id of every document on one of those pairs
    exact_groups: int  # groups of documents with identical normalised text (held-out ones included)
    exact_copies: int  # documents in them but their representatives
    candidate_pairs: int


def _distributed_pairs(step: Steps, matchable: DataFrame) -> _Pairs:
    """Exact groups, candidate pairs and the ids on them in Spark's shuffles: steps exact, candidates and
    involved_ids."""
    groups = matchable.groupBy("norm_hash").agg(F.min(ID).alias("rep"), F.count(F.lit(1)).alias("copies"))
    groups = step("exact", groups.filter(F.col("copies") > 1))  # written: few rows, read by several steps
    exact_edges = (
        matchable.join(groups, "norm_hash")
        .filter(F.col(ID) != F.col("rep"))
        .select(F.col("rep").alias("u"), F.col(ID).alias("v"))
    )
    representatives = matchable.join(exact_edges.select(F.col("v").alias(ID)), ID, "left_anti")
    # A pair of two held-out documents decides nothing (neither is ever removed): not verified, no edge. With
    # --index these are most pairs, and their number grows with the index, not with the batch.
    exact_edges = exact_edges.filter(~_both_held_out())
    candidates = step("candidates", candidate_pairs(representatives).filter(~_both_held_out()))
    endpoints = candidates.unionByName(exact_edges)
    # Written first: from its files' size the planner knows the ids are few and broadcasts them, so the corpus
    # is scanned once and not shuffled (planned blind, both sides of the join were shuffled: 12 s of 1 GB).
    involved_ids = step("involved_ids", endpoints.select(F.col("u").alias(ID)).union(endpoints.select("v")).distinct())
    exact = groups.agg(F.count(F.lit(1)).alias("groups"), F.sum(F.col("copies") - 1).alias("copies")).first()
    return _Pairs(
        exact_edges,
        candidates,
        involved_ids,
        int(exact["groups"]),
        int(exact["copies"] or 0),
        step.figures["candidates"]["rows"],
    )


def _pairs_in_one_task(step: Steps, matchable: DataFrame) -> _Pairs:
    """The same as `_distributed_pairs`, computed in one task (`pairs_in_one_task`): step pairs."""
    pairs = step("pairs", pairs_in_one_task(matchable))
    kind = F.col("kind")
    counts = pairs.agg(
        F.count(F.when(kind == EXACT, 1)).alias("copies"),
        F.count_distinct(F.when(kind == EXACT, F.col("u"))).alias("groups"),
        F.count(F.when(kind == CANDIDATE, 1)).alias("candidates"),
    ).first()
    return _Pairs(
        pairs.filter(kind == EXACT).select("u", "v").filter(~_both_held_out()),
        pairs.filter(kind == CANDIDATE).select("u", "v"),
        pairs.filter(kind == NODE).select(F.col("u").alias(ID)),
        counts["groups"],
        counts["copies"],
        counts["candidates"],
    )


def _held_out(column: str) -> Column:
    """True for the id of a held-out document (`--protect`, `--index`)."""
    held_out = F.lit(False)
    for prefix in HELD_OUT_PREFIXES:
        held_out = held_out | F.col(column).startswith(prefix)
    return held_out


def _both_held_out() -> Column:
    """True for a pair (u, v) of two held-out documents."""
    return _held_out("u") & _held_out("v")


def _with_protected(docs: DataFrame, protected: DataFrame | None) -> DataFrame:
    """The input documents with `_dd_protected` false, plus the held-out documents (true) if any."""
    docs = docs.withColumn(PROTECTED, F.lit(False))
    if protected is None:
        return docs
    clashing = docs.filter(F.col(ID).startswith(PROTECTED_ID_PREFIX)).select(ID).limit(3).collect()
    if clashing:
        raise InputError(
            f"input ids {[r[ID] for r in clashing]} start with {PROTECTED_ID_PREFIX!r}, which names held-out "
            "documents of --protect; rename them or let dedup-spark derive ids"
        )
    return docs.unionByName(protected.withColumn(PROTECTED, F.lit(True)), allowMissingColumns=True)


def _metrics(
    signatures: DataFrame,
    pairs: _Pairs,
    verified: DataFrame,
    clusters: DataFrame,
    lsh: LshPreset,
    rounds: int,
) -> dict[str, Any]:
    # One row per cluster, no shuffle: its kept document's (`cluster_id` is the id of the first in keep order).
    sizes = clusters.filter(F.col(ID) == F.col("cluster_id")).select("cluster_id", F.col("cluster_size").alias("size"))
    # Both results are small: sorted here, not by Spark (a sort is one more job each).
    histogram = sizes.groupBy("size").agg(F.count(F.lit(1)).alias("clusters")).collect()
    histogram.sort(key=lambda r: r["size"])
    largest = (
        clusters.join(sizes.orderBy(F.desc("size"), "cluster_id").limit(LARGEST_CLUSTERS), "cluster_id")
        .groupBy("cluster_id", "size")
        .agg(
            F.slice(F.sort_array(F.collect_list(ID)), 1, 5).alias("example_ids"),
            F.min(F.when(~F.col("kept"), F.col(ID))).alias("removed_example"),
        )
        .collect()
    )
    largest.sort(key=lambda r: (-r["size"], r["cluster_id"].encode()))  # Spark orders strings by their UTF-8 bytes
    return {
        "preset": lsh.name,
        "bands": lsh.bands,
        "rows": lsh.rows,
        "num_perm": lsh.num_perm,
        "threshold": lsh.threshold,
        "verify_jaccard": lsh.verify_jaccard,
        "verify_edit": lsh.verify_edit,
        "edit_threshold": lsh.edit_threshold,
        "s_curve": s_curve(lsh.bands, lsh.rows),
        "too_short": signatures.filter((F.col("n_shingles") == 0) & ~_held_out(ID)).count(),
        "exact_duplicate_groups": pairs.exact_groups,
        "exact_duplicate_copies": pairs.exact_copies,
        "candidate_pairs": pairs.candidate_pairs,
        "verified_pairs": verified.count(),
        "clusters": sum(r["clusters"] for r in histogram),
        "documents_in_clusters": sum(r["size"] * r["clusters"] for r in histogram),
        "component_rounds": rounds,
        "cluster_size_histogram": [{"size": r["size"], "clusters": r["clusters"]} for r in histogram],
        "largest_clusters": [
            {
                "cluster_id": r["cluster_id"],
                "size": r["size"],
                "example_ids": list(r["example_ids"]),
                "removed_example": r["removed_example"],
            }
            for r in largest
        ],
    }


def _with_excerpts(largest: list[dict[str, Any]], texts: DataFrame, text_column: str) -> list[dict[str, Any]]:
    """Add `excerpts` to each listed cluster: the kept document and its lowest-id removed member side by side
    (`excerpts.side_by_side`, each with `kept`).

    texts: `_dd_id` and the text of (at least) every clustered document. Only the 2 x LARGEST_CLUSTERS documents
    named are collected. `removed_example` is dropped from the entries (it is the second excerpt's id).
    """
    ids = sorted({i for c in largest for i in (c["cluster_id"], c["removed_example"]) if i is not None})
    found = collect_heads(texts, ids, ID, text_column)
    result = []
    for entry in largest:
        entry = dict(entry)
        pair = ((entry["cluster_id"], True), (entry.pop("removed_example", None), False))
        members = [(i, kept) for i, kept in pair if i in found]
        shown = side_by_side([(i, found[i]) for i, _ in members])
        entry["excerpts"] = [{**excerpt, "kept": kept} for excerpt, (_, kept) in zip(shown, members, strict=True)]
        result.append(entry)
    return result
