"""LSH banding, its S-curve, presets, and the exact pair verifiers (kernels, no Spark).

Vocabulary, used everywhere in dedup_spark: a signature of ``bands * rows`` min-hashes is cut into
``bands`` consecutive slices of ``rows`` min-hashes each. Two documents become a candidate pair when ALL
``rows`` values of AT LEAST ONE band agree, which for Jaccard similarity ``s`` happens with probability
``1 - (1 - s**rows)**bands``. More rows make a band stricter (the curve moves right); more bands give more
chances (the curve moves left). Lee et al. write "r = 450 bands, b = 20 rows", swapping the textbook letters;
we never use single letters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from rapidfuzz.distance import Levenshtein
from xxhash import xxh64_intdigest

DEFAULT_CURVE_POINTS: tuple[float, ...] = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))  # 0.5 .. 0.95


def _check_bands_rows(bands: int, rows: int) -> None:
    if not (isinstance(bands, int) and isinstance(rows, int) and bands >= 1 and rows >= 1):
        raise ValueError(f"bands and rows must be integers >= 1, got bands={bands!r}, rows={rows!r}")


def candidate_probability(s: float, bands: int, rows: int) -> float:
    """P(a pair with Jaccard ``s`` shares at least one band) = 1 - (1 - s**rows)**bands."""
    _check_bands_rows(bands, rows)
    if not 0.0 <= s <= 1.0:
        raise ValueError(f"similarity must be in [0, 1], got {s!r}")
    if s == 1.0:
        return 1.0
    # log1p/expm1 keep precision where s**rows is tiny (e.g. 0.5**20) and the result is ~1e-4.
    return -math.expm1(bands * math.log1p(-(s**rows)))


def similarity_at_probability(probability: float, bands: int, rows: int) -> float:
    """Inverse of `candidate_probability`: the Jaccard at which a pair becomes a candidate with that
    probability. At 0.5 this is the setting's effective threshold, e.g. about 0.66 for 20 bands x 8 rows."""
    _check_bands_rows(bands, rows)
    if not 0.0 < probability < 1.0:
        raise ValueError(f"probability must be in (0, 1), got {probability!r}")
    return (-math.expm1(math.log1p(-probability) / bands)) ** (1.0 / rows)


def s_curve(bands: int, rows: int, points: tuple[float, ...] = DEFAULT_CURVE_POINTS) -> list[dict[str, float]]:
    """The S-curve for the run report: ``[{"similarity": s, "probability": P(candidate | s)}, ...]``."""
    return [{"similarity": s, "probability": candidate_probability(s, bands, rows)} for s in points]


@dataclass(frozen=True)
class LshPreset:
    """A named banding + verification setting.

    ``bands``: number of signature slices; ``rows``: min-hashes per slice (see the module docstring).
    ``threshold``: the Jaccard the setting targets; when ``verify_jaccard`` a candidate pair counts only if
    its exact shingle Jaccard is strictly greater than it. When ``verify_edit`` the pair must also have
    token edit similarity strictly greater than ``edit_threshold`` (Lee et al.: both > 0.8).
    """

    name: str
    bands: int
    rows: int
    threshold: float
    verify_jaccard: bool
    verify_edit: bool
    edit_threshold: float = 0.8
    # "components" (every verified pair joins a cluster) or "anchored" (removed only if verified against the
    # cluster's kept document); see dedup_spark/neardup/anchored.py.
    cluster_rule: str = "components"
    source: str = ""

    def __post_init__(self) -> None:
        _check_bands_rows(self.bands, self.rows)
        for field in ("threshold", "edit_threshold"):
            value = getattr(self, field)
            if not 0.0 < value < 1.0:
                raise ValueError(f"LshPreset {self.name!r}: {field} must be in (0, 1), got {value!r}")

    @property
    def num_perm(self) -> int:
        """Signature length: bands * rows."""
        return self.bands * self.rows

    def candidate_probability(self, s: float) -> float:
        """P(candidate | Jaccard s) for this banding."""
        return candidate_probability(s, self.bands, self.rows)


# name: (bands, rows, threshold, verify Jaccard, verify edit similarity, cluster rule), where the numbers come from
_PRESET_TABLE = {
    "paper": ((450, 20, 0.8, True, True, "components"),
              "Lee et al. 2022: 9,000 min-hashes, Jaccard > 0.8 then edit similarity > 0.8"),
    "default": ((20, 8, 0.8, True, False, "anchored"),
                "dedup_spark: 160 min-hashes, P(candidate | J=0.8) ~ 0.975, false positives removed by Jaccard, "
                "removed only if verified against the kept document"),
    "text-dedup": ((25, 10, 0.7, False, False, "components"),
                   "BigCode/text-dedup Spark defaults: 250 min-hashes, threshold 0.7, no verification"),
    "datatrove": ((14, 8, 0.75, False, False, "components"),
                  "datatrove/FineWeb: 112 min-hashes, 'targeting documents at least 75% similar', no verification"),
}  # fmt: skip
PRESETS: dict[str, LshPreset] = {
    name: LshPreset(name, bands, rows, threshold, jaccard, edit, cluster_rule=rule, source=source)
    for name, ((bands, rows, threshold, jaccard, edit, rule), source) in _PRESET_TABLE.items()
}


def band_keys(signatures: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """One 64-bit key per (document, band): xxh64 (seed 0) of the band's ``rows`` values as little-endian
    uint64 bytes. Input (n_docs, bands * rows) signatures; output (n_docs, bands) uint64.

    Keys of the same band index are equal iff the band slices are equal (up to a 2^-64 collision). The key
    does not encode the band index, so group by (band index, key), never by key alone.
    """
    _check_bands_rows(bands, rows)
    sig = np.asarray(signatures)
    if sig.ndim != 2 or sig.shape[1] != bands * rows:
        raise ValueError(
            f"signatures must have shape (n_docs, bands * rows) = (n, {bands * rows}), got {sig.shape}: "
            "num_perm must equal bands * rows"
        )
    # Fixed byte order so keys are the same on any platform; ascontiguousarray makes rows back to back.
    buf = np.ascontiguousarray(sig, dtype="<u8").tobytes()
    width = rows * 8
    keys = np.fromiter(
        (xxh64_intdigest(buf[i : i + width]) for i in range(0, len(buf), width)),
        dtype=np.uint64,
        count=sig.shape[0] * bands,
    )
    return keys.reshape(sig.shape[0], bands)


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Exact Jaccard |A & B| / |A | B| of two shingle-hash sets (duplicates ignored); 1.0 if both are empty,
    matching MinHash, where two empty signatures agree everywhere."""
    a, b = np.unique(a), np.unique(b)
    if len(a) == 0 and len(b) == 0:
        return 1.0
    inter = len(np.intersect1d(a, b, assume_unique=True))
    return inter / (len(a) + len(b) - inter)


def edit_similarity(tokens_a: list[str], tokens_b: list[str], *, score_cutoff: float | None = None) -> float:
    """1 - Levenshtein distance over tokens / max(len(tokens_a), len(tokens_b)); 1.0 if both are empty.

    With ``score_cutoff``, any similarity below it is returned as 0.0, which lets rapidfuzz stop early on
    long, clearly different documents.
    """
    return Levenshtein.normalized_similarity(tokens_a, tokens_b, score_cutoff=score_cutoff)
