"""NearDup's exact-copy groups, candidate pairs and involved documents in one Spark task, for small inputs.

After the signatures a NearDup run of a few hundred MB works on a few MB of band keys; spread over Spark's
shuffles (exact groups, band buckets sorted by a window, distinct pairs, distinct endpoints) the steps cost 5-6 s
of fixed overhead at 300 MB, measured, where numpy needs a fraction of a second. `pairs_in_one_task` computes the
same three results as the distributed steps of `stage.py` from the signatures of at most
`neardup.local_candidates_max_band_keys` band keys (documents x bands) in one task, as one table of (kind, u, v) rows:

- `exact`:     (representative, copy) for every document whose normalised text equals that of a lower id (its
               group's lowest id is the representative), held-out documents included, as the `exact` step's
               groups give them;
- `candidate`: the candidate pairs of `signatures.candidate_pairs` over the representatives, without pairs of
               two held-out documents;
- `node`:      (id, id) for every document on a candidate pair or on an exact pair that is not between two
               held-out documents: the `involved_ids` step.

Ids are ordered as Spark orders strings (by their UTF-8 bytes), so every bucket's first member and predecessor,
and so the pairs, are those of the distributed steps (a test compares the two on the same signatures).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame

from dedup_spark.columns import HELD_OUT_PREFIXES, ID

PAIRS_SCHEMA = "kind string, u string, v string"
EXACT, CANDIDATE, NODE = "exact", "candidate", "node"


def pairs_in_one_task(matchable: DataFrame) -> DataFrame:
    """(kind, u, v) rows (see the module docstring) from signatures (`_dd_id`, `norm_hash`, `band_keys`) of
    documents with shingles. Memory of the task: about 100 bytes per band key (document and band)."""
    signatures = matchable.select(ID, "norm_hash", "band_keys").coalesce(1)
    return signatures.mapInArrow(_pairs_of_batches, PAIRS_SCHEMA)


def _pairs_of_batches(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    batches = list(batches)
    if batches:
        yield from pairs_of_table(pa.Table.from_batches(batches)).to_batches()


def pairs_of_table(signatures: pa.Table) -> pa.Table:
    """The (kind, u, v) table of one table of signatures (columns `_dd_id`, `norm_hash`, `band_keys`)."""
    # Rows in id order (Arrow sorts strings by their bytes, as Spark does): row numbers compare as the ids do.
    signatures = signatures.take(pc.sort_indices(signatures[ID]))
    ids = signatures[ID].combine_chunks()
    rows = len(ids)
    groups = pc.dictionary_encode(signatures["norm_hash"].combine_chunks()).indices.to_numpy()
    _, first_of_group = np.unique(groups, return_index=True)  # the lowest id of each normalised text
    representative = first_of_group[groups]
    is_representative = representative == np.arange(rows)
    copies = np.flatnonzero(~is_representative)
    exact = (representative[copies], copies)
    candidates = _bucket_pairs(signatures["band_keys"].combine_chunks(), is_representative)

    held_out = np.zeros(rows, dtype=bool)
    for prefix in HELD_OUT_PREFIXES:
        held_out |= pc.starts_with(ids, prefix).to_numpy(zero_copy_only=False)
    candidates = _without_held_out_pairs(candidates, held_out)
    nodes = np.unique(np.concatenate([*candidates, *_without_held_out_pairs(exact, held_out)]))
    kinds = [(EXACT, exact), (CANDIDATE, candidates), (NODE, (nodes, nodes))]
    kind = np.repeat(np.arange(len(kinds), dtype=np.int8), [len(u) for _, (u, _) in kinds])
    return pa.Table.from_arrays(
        [
            pa.DictionaryArray.from_arrays(kind, [name for name, _ in kinds]).cast(pa.string()),
            ids.take(pa.array(np.concatenate([u for _, (u, _) in kinds]), pa.int64())),
            ids.take(pa.array(np.concatenate([v for _, (_, v) in kinds]), pa.int64())),
        ],
        schema=pa.schema([("kind", pa.string()), ("u", pa.string()), ("v", pa.string())]),
    )


def _bucket_pairs(band_keys: pa.ListArray, members: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(u, v) row numbers, u < v, distinct: in every (band, key) bucket of the `members` rows, each member after
    the first paired with the bucket's first member and with its predecessor (`signatures.candidate_pairs`).
    band_keys: a list array whose offsets start at 0 (as `take` makes them)."""
    offsets = band_keys.offsets.to_numpy()
    lengths = np.diff(offsets)
    row = np.repeat(np.arange(len(lengths)), lengths)
    band = np.arange(len(row)) - offsets[row]
    key = band_keys.flatten().to_numpy(zero_copy_only=False)
    kept = members[row]
    row, band, key = row[kept], band[kept], key[kept]
    order = np.lexsort((row, key, band))
    row, band, key = row[order], band[order], key[order]
    starts = np.ones(len(row), dtype=bool)
    starts[1:] = (band[1:] != band[:-1]) | (key[1:] != key[:-1])
    first = row[np.maximum.accumulate(np.where(starts, np.arange(len(row)), 0))]
    later = np.flatnonzero(~starts)
    u = np.concatenate([first[later], row[later - 1]])
    v = np.concatenate([row[later], row[later]])
    codes = np.unique(u * np.int64(len(members)) + v)
    return codes // len(members), codes % len(members)


def _without_held_out_pairs(pairs: tuple[np.ndarray, np.ndarray], held_out: np.ndarray) -> tuple[np.ndarray, ...]:
    u, v = pairs
    kept = ~(held_out[u] & held_out[v])
    return u[kept], v[kept]
