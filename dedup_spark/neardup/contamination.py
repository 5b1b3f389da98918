"""NearDup across two sets, for `dedup-spark contamination`: verified (train, eval) near-duplicate pairs.

The same signatures, preset and verification as the stage (signatures.py, verify.py). Documents with identical
normalised text are folded per set; every (train, eval) pair sharing an LSH bucket is a candidate (no train-train
or eval-eval pairs, no components: contamination is pairwise), verified as in the preset.
"""

from __future__ import annotations

from typing import Any

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from dedup_spark.columns import EVAL_PREFIX, ID, TRAIN_PREFIX
from dedup_spark.config import RunConfig
from dedup_spark.neardup.signatures import SIGNATURE_SCHEMA, band_rows, resolve_lsh, signature_batches
from dedup_spark.neardup.verify import verify_candidates
from dedup_spark.sparkops import Steps


def neardup_matches(
    spark: SparkSession, docs: DataFrame, config: RunConfig, work_dir: str
) -> tuple[DataFrame, dict[str, Any]]:
    """Verified (train, eval) near-duplicate document pairs.

    docs: both sets, `_dd_id` prefixed, and the text column. Returns (`train_id, eval_id` prefixed ids, one row
    per contaminating pair of documents; metrics).
    """
    nd, lsh, text_column = config.neardup, resolve_lsh(config.neardup), config.input.text_column
    step = Steps(spark, work_dir)
    signatures = step(
        "signatures",
        docs.select(ID, text_column).mapInArrow(signature_batches(nd, lsh, text_column), SIGNATURE_SCHEMA),
    )
    side = F.substring(ID, 1, 2)
    matchable = signatures.filter(F.col("n_shingles") > 0).withColumn("side", side)
    # Identical normalised texts of one set are folded into their lowest id: one candidate per text, not per copy.
    members = matchable.withColumn("rep", F.min(ID).over(Window.partitionBy("side", "norm_hash"))).select(ID, "rep")
    members = step("members", members)
    reps = matchable.join(members.filter(F.col(ID) == F.col("rep")).select(ID), ID)
    bands = band_rows(reps, "side")
    train_b = bands.filter(F.col("side") == TRAIN_PREFIX).select(F.col(ID).alias("u"), "band", "key")
    eval_b = bands.filter(F.col("side") == EVAL_PREFIX).select(F.col(ID).alias("v"), "band", "key")
    candidates = step("candidates", train_b.join(eval_b, ["band", "key"]).select("u", "v").distinct())
    texts = docs.select(ID, text_column)
    verified = verify_candidates(step, "verified", candidates, texts, nd, lsh)
    pairs = (
        verified.join(members.select(F.col("rep").alias("u"), F.col(ID).alias("train_id")), "u")
        .join(members.select(F.col("rep").alias("v"), F.col(ID).alias("eval_id")), "v")
        .select("train_id", "eval_id")
    )
    pairs = step("pairs", pairs)
    metrics = {
        "preset": lsh.name,
        "bands": lsh.bands,
        "rows": lsh.rows,
        "threshold": lsh.threshold,
        "verify_jaccard": lsh.verify_jaccard,
        "verify_edit": lsh.verify_edit,
        "edit_threshold": lsh.edit_threshold,
        "too_short": signatures.filter(F.col("n_shingles") == 0).count(),
        "candidate_pairs": candidates.count(),
        "verified_pairs": verified.count(),
        "document_pairs": pairs.count(),
        "steps": step.table(),
    }
    return pairs, metrics
