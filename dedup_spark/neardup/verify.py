"""NearDup's verification of candidate pairs: exact Jaccard on shingle byte strings (`jaccard.py`), edit similarity
if asked.

Used by the `neardup` stage and by the `contamination` command, with the same presets.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator

import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from dedup_spark.config import NeardupConfig
from dedup_spark.neardup.jaccard import DistinctShingles, distinct_shingles, exact_jaccard
from dedup_spark.neardup.lsh import LshPreset, edit_similarity
from dedup_spark.neardup.normalize import normalize_utf8
from dedup_spark.neardup.shingles import words
from dedup_spark.sparkops import Steps

VERIFIED_SCHEMA = "u string, v string, jaccard double, edit_similarity double, passed boolean"
# Normalised text bytes whose shingles a verification task keeps. In memory: the text twice plus 24 bytes per
# distinct shingle (`DistinctShingles`), about 6x the text for word 5-grams and 26x for character 3-grams.
VERIFY_CACHE_BYTES = 16 * 1024 * 1024


def normalize_doc(text: str | bytes, nd: NeardupConfig) -> bytes:
    """The normalised UTF-8 bytes of one document (text, or its UTF-8 bytes) under the configured flags."""
    return normalize_utf8(
        text,
        lowercase=nd.lowercase,
        nfkc=nd.nfkc,
        strip_punctuation=nd.strip_punctuation,
        fold_accents=nd.fold_accents,
    )


class ShingleSets:
    """The distinct shingles (with their normalised texts) of the documents seen last, by id, holding at most
    VERIFY_CACHE_BYTES of normalised text."""

    def __init__(self, nd: NeardupConfig) -> None:
        self.nd = nd
        self.entries: OrderedDict[str, DistinctShingles] = OrderedDict()
        self.bytes = 0

    def get(self, doc_id: str, text: str | bytes) -> DistinctShingles:
        if doc_id in self.entries:
            self.entries.move_to_end(doc_id)
            return self.entries[doc_id]
        normalized = normalize_doc(text, self.nd)
        entry = self.entries[doc_id] = distinct_shingles(normalized, self.nd.ngram, self.nd.shingle_unit)
        self.bytes += len(normalized)
        while self.bytes > VERIFY_CACHE_BYTES and len(self.entries) > 1:
            _, evicted = self.entries.popitem(last=False)
            self.bytes -= len(evicted.normalized)
        return entry


def check_pair(
    cache: ShingleSets, id_u: str, text_u: str | bytes, id_v: str, text_v: str | bytes, lsh: LshPreset, *, keeper=False
) -> tuple[float, float, bool]:
    """(exact Jaccard, edit similarity or NaN, passed) of two documents under the setting's verification.

    keeper: the test a document must pass against its cluster's kept document (`anchored.py` and the report's
    count of removed documents that do not pass it): Jaccard above the threshold is checked even when the preset
    does not verify its candidate pairs.
    """
    shingles_u, shingles_v = cache.get(id_u, text_u), cache.get(id_v, text_v)
    similarity = exact_jaccard(shingles_u, shingles_v, cache.nd.ngram, cache.nd.shingle_unit)
    passed = similarity > lsh.threshold or not (lsh.verify_jaccard or keeper)
    edit = float("nan")
    if passed and lsh.verify_edit:
        plain_u, plain_v = shingles_u.normalized.decode("utf-8"), shingles_v.normalized.decode("utf-8")
        word_unit = cache.nd.shingle_unit == "word"
        tokens_u = words(plain_u) if word_unit else list(plain_u)
        tokens_v = words(plain_v) if word_unit else list(plain_v)
        edit = edit_similarity(tokens_u, tokens_v)
        passed = edit > lsh.edit_threshold
    return similarity, edit, passed


def verify_batches(nd: NeardupConfig, lsh: LshPreset, *, keeper: bool = False):
    """mapInArrow function: (u, v, text_u, text_v) -> VERIFIED_SCHEMA rows (`check_pair` of each pair).

    Jaccard is exact: it compares the two documents' sets of shingle byte strings (`jaccard.exact_jaccard`).
    A document is on several pairs (a bucket's first member on many): each task keeps the shingle sets of the
    documents it saw last, up to VERIFY_CACHE_BYTES of their text, and pairs arrive sorted by `u`.
    """

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        cache = ShingleSets(nd)
        for batch in batches:
            columns = [batch.column(name).to_pylist() for name in ("u", "text_u", "v", "text_v")]
            results = [check_pair(cache, *pair, lsh, keeper=keeper) for pair in zip(*columns, strict=True)]
            yield pa.RecordBatch.from_arrays(
                [
                    batch.column("u"),
                    batch.column("v"),
                    pa.array([r[0] for r in results], pa.float64()),
                    pa.array([r[1] for r in results], pa.float64()),
                    pa.array([r[2] for r in results], pa.bool_()),
                ],
                names=["u", "v", "jaccard", "edit_similarity", "passed"],
            )

    return run


def check_pairs(
    step: Steps,
    name: str,
    pairs: DataFrame,
    texts: DataFrame,
    nd: NeardupConfig,
    lsh: LshPreset,
    *,
    keeper: bool = False,
) -> DataFrame:
    """Pairs (u, v) -> VERIFIED_SCHEMA rows, every pair with its scores and `passed` (`check_pair`), written as
    step `name`. texts: `_dd_id` and the text column of (at least) every document on a pair."""
    id_column, text_column = texts.columns
    with_texts = (
        pairs.join(texts.select(F.col(id_column).alias("v"), F.col(text_column).alias("text_v")), "v")
        .join(texts.select(F.col(id_column).alias("u"), F.col(text_column).alias("text_u")), "u")
        .sortWithinPartitions("u")  # a task sees each u's pairs together (verify_batches caches shingle sets)
    )
    checked = with_texts.select("u", "v", "text_u", "text_v").mapInArrow(
        verify_batches(nd, lsh, keeper=keeper), VERIFIED_SCHEMA
    )
    return step(name, checked)


def checks_candidates(lsh: LshPreset) -> bool:
    """True when the setting checks its candidate pairs (Jaccard, edit similarity or both) before they are edges."""
    return lsh.verify_jaccard or lsh.verify_edit


def verify_candidates(
    step: Steps, name: str, candidates: DataFrame, texts: DataFrame, nd: NeardupConfig, lsh: LshPreset
) -> DataFrame:
    """Candidate pairs (u, v) -> the pairs that pass the setting's verification (all of them when it has none).

    texts: `_dd_id` and the text column; the checked pairs with their scores are written as step `name`.
    """
    if not checks_candidates(lsh):
        return candidates
    return check_pairs(step, name, candidates, texts, nd, lsh).filter("passed").select("u", "v")
