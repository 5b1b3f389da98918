"""NearDup's first steps, shared by the stage and by `contamination`: the LSH setting, MinHash signatures with
LSH band keys per document, and candidate pairs from the band buckets."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import replace

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from dedup_spark.columns import ID
from dedup_spark.config import NeardupConfig
from dedup_spark.neardup.lsh import PRESETS, LshPreset, band_keys
from dedup_spark.neardup.minhash import MinHasher
from dedup_spark.neardup.shingles import batch_shingle_hashes
from dedup_spark.neardup.verify import normalize_doc

SIGNATURE_SCHEMA = f"{ID} string, norm_hash string, n_shingles int, band_keys array<bigint>"


def resolve_lsh(nd: NeardupConfig) -> LshPreset:
    """The preset with any explicit bands/rows/threshold/verification settings applied."""
    preset = PRESETS[nd.preset]
    overrides = {
        key: value
        for key, value in (
            ("bands", nd.bands),
            ("rows", nd.rows),
            ("threshold", nd.threshold),
            ("verify_jaccard", nd.verify_jaccard),
            ("verify_edit", nd.verify_edit),
            ("edit_threshold", nd.edit_threshold),
            ("cluster_rule", nd.cluster_rule),
        )
        if value is not None
    }
    return replace(preset, **overrides) if overrides else preset


def signature_batches(nd: NeardupConfig, lsh: LshPreset, text_column: str):
    """mapInArrow function: (_dd_id, text) -> SIGNATURE_SCHEMA rows, `nd.batch_docs` documents at a time.

    Each slice of `nd.batch_docs` documents is normalised, joined and shingle-hashed in a few numpy calls
    (`batch_shingle_hashes`), then min-hashed straight from the flat hash array. Memory per slice: its
    normalised text, 8 bytes per shingle, the (batch_docs x num_perm) signature matrix, and hashing
    temporaries bounded by ``shingles.DEFAULT_CHUNK_BYTES``. ``n_shingles`` counts shingle occurrences (repeats
    included); only ``n_shingles > 0`` (not ``too_short``) is used downstream.
    """
    schema = pa.schema(
        [
            (ID, pa.string()),
            ("norm_hash", pa.string()),
            ("n_shingles", pa.int32()),
            ("band_keys", pa.list_(pa.int64())),
        ]
    )

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        hasher = MinHasher(lsh.num_perm, seed=nd.seed)
        for batch in batches:
            for start in range(0, batch.num_rows, nd.batch_docs):
                part = batch.slice(start, nd.batch_docs)
                texts = part.column(text_column).cast(pa.large_binary()).to_pylist()  # UTF-8 bytes, not decoded
                docs = [normalize_doc(text, nd) for text in texts]
                hashes, offsets = batch_shingle_hashes(docs, nd.ngram, nd.shingle_unit)
                keys = band_keys(hasher.signatures_flat(hashes, offsets), lsh.bands, lsh.rows).view(np.int64)
                yield pa.RecordBatch.from_arrays(
                    [
                        part.column(ID),
                        pa.array([hashlib.sha256(doc).hexdigest()[:32] for doc in docs], pa.string()),
                        pa.array(np.diff(offsets).astype(np.int32), pa.int32()),
                        pa.FixedSizeListArray.from_arrays(pa.array(keys.ravel()), lsh.bands).cast(pa.list_(pa.int64())),
                    ],
                    schema=schema,
                )

    return run


def band_rows(signatures: DataFrame, *columns: str) -> DataFrame:
    """One row per document and band: `_dd_id`, `columns`, `band` (its number) and `key` (its band key)."""
    return signatures.select(ID, *columns, F.posexplode("band_keys").alias("band", "key"))


def candidate_pairs(signatures: DataFrame) -> DataFrame:
    """(u, v) with u < v: in each (band, key) bucket, every member paired with the first member and with its
    predecessor in id order. Linear in bucket size; distinct over all bands."""
    bands = band_rows(signatures)
    bucket = Window.partitionBy("band", "key").orderBy(ID)
    ordered = bands.select(
        ID,
        F.first(ID).over(bucket).alias("first"),
        F.lag(ID).over(bucket).alias("previous"),
    ).filter(F.col("previous").isNotNull())
    # One row per (partner, member): a union of two selects would run the window twice.
    partners = F.explode(F.array_distinct(F.array("first", "previous")))
    return ordered.select(partners.alias("u"), F.col(ID).alias("v")).distinct()
