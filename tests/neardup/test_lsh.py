"""Unit tests for dedup_spark.neardup.lsh (no Spark)."""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest
from xxhash import xxh64_intdigest

from dedup_spark.neardup.lsh import (
    PRESETS,
    LshPreset,
    band_keys,
    candidate_probability,
    edit_similarity,
    jaccard,
    s_curve,
    similarity_at_probability,
)


class TestSCurve:
    def test_paper_numbers(self) -> None:
        # PAPER.md: about 0.995 at s=0.8, 0.30 at s=0.7, 0.0004 at s=0.5 for 450 bands x 20 rows.
        assert candidate_probability(0.8, 450, 20) == pytest.approx(0.995, abs=0.001)
        assert candidate_probability(0.7, 450, 20) == pytest.approx(0.30, abs=0.005)
        assert candidate_probability(0.5, 450, 20) == pytest.approx(0.0004, rel=0.1)

    @pytest.mark.parametrize(("bands", "rows"), [(450, 20), (20, 8), (25, 10), (14, 8), (1, 1), (9, 13)])
    def test_formula_and_inverse(self, bands: int, rows: int) -> None:
        for s in (0.0, 0.1, 0.5, 0.73, 0.8, 0.99, 1.0):
            assert candidate_probability(s, bands, rows) == pytest.approx(1 - (1 - s**rows) ** bands, abs=1e-12)
        for p in (0.05, 0.5, 0.95):
            s = similarity_at_probability(p, bands, rows)
            assert candidate_probability(s, bands, rows) == pytest.approx(p, abs=1e-9)

    def test_slimpajama_setting_from_paper_md(self) -> None:
        # "9x13 (only 40% of pairs at exactly 0.8 become candidates)"
        assert candidate_probability(0.8, 9, 13) == pytest.approx(0.40, abs=0.01)

    def test_s_curve_points(self) -> None:
        curve = s_curve(20, 8)
        assert [p["similarity"] for p in curve] == [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95]
        probs = [p["probability"] for p in curve]
        assert probs == sorted(probs)
        assert s_curve(2, 2, points=(0.5,)) == [{"similarity": 0.5, "probability": 1 - 0.75**2}]

    def test_invalid_arguments(self) -> None:
        with pytest.raises(ValueError, match="similarity"):
            candidate_probability(1.2, 20, 8)
        with pytest.raises(ValueError, match="bands and rows"):
            candidate_probability(0.5, 0, 8)
        with pytest.raises(ValueError, match="probability"):
            similarity_at_probability(1.0, 20, 8)


class TestPresets:
    def test_paper(self) -> None:
        p = PRESETS["paper"]
        assert (p.bands, p.rows, p.num_perm) == (450, 20, 9000)
        assert (p.threshold, p.verify_jaccard, p.verify_edit, p.edit_threshold) == (0.8, True, True, 0.8)

    def test_default_catches_95_percent_at_0_8(self) -> None:
        p = PRESETS["default"]
        assert (p.bands, p.rows, p.num_perm, p.threshold) == (20, 8, 160, 0.8)
        assert p.verify_jaccard and not p.verify_edit
        assert p.candidate_probability(0.8) >= 0.95

    def test_peers(self) -> None:
        assert (PRESETS["text-dedup"].bands, PRESETS["text-dedup"].rows, PRESETS["text-dedup"].threshold) == (
            25,
            10,
            0.7,
        )
        assert PRESETS["text-dedup"].num_perm == 250
        assert (PRESETS["datatrove"].bands, PRESETS["datatrove"].rows, PRESETS["datatrove"].num_perm) == (14, 8, 112)
        # FineWeb quotes 77% at s=0.75 and 98.8% at s=0.85 for this setting.
        assert PRESETS["datatrove"].candidate_probability(0.75) == pytest.approx(0.77, abs=0.005)
        assert PRESETS["datatrove"].candidate_probability(0.85) == pytest.approx(0.988, abs=0.001)

    def test_frozen_and_validated(self) -> None:
        assert all(name == p.name for name, p in PRESETS.items())
        with pytest.raises(dataclasses.FrozenInstanceError):
            PRESETS["default"].bands = 3  # type: ignore[misc]
        with pytest.raises(ValueError, match="threshold"):
            LshPreset("bad", bands=2, rows=2, threshold=1.5, verify_jaccard=True, verify_edit=False)


class TestBandKeys:
    def test_reference_xxh64_of_little_endian_slices(self) -> None:
        sig = np.random.default_rng(1).integers(0, 2**64 - 1, (3, 12), dtype=np.uint64, endpoint=True)
        keys = band_keys(sig, bands=4, rows=3)
        assert keys.shape == (3, 4) and keys.dtype == np.uint64
        for d in range(3):
            for b in range(4):
                want = xxh64_intdigest(b"".join(int(v).to_bytes(8, "little") for v in sig[d, 3 * b : 3 * b + 3]))
                assert int(keys[d, b]) == want

    def test_shared_key_iff_band_slice_equal(self) -> None:
        rng = np.random.default_rng(2)
        base = rng.integers(0, 2**63, 160, dtype=np.uint64)
        other = base.copy()
        other[[3, 50, 51]] += np.uint64(1)  # bands 0 and 6 differ (rows=8)
        sigs = np.stack([base, other, base[::-1].copy()])
        keys = band_keys(sigs, bands=20, rows=8)
        assert np.flatnonzero(keys[0] != keys[1]).tolist() == [0, 6]
        assert not np.any(keys[0] == keys[2])

    def test_non_contiguous_and_int64_input(self) -> None:
        sig = np.random.default_rng(3).integers(0, 2**63, (6, 16), dtype=np.uint64)
        want = band_keys(sig, 4, 4)
        np.testing.assert_array_equal(band_keys(np.asfortranarray(sig), 4, 4), want)
        np.testing.assert_array_equal(band_keys(sig.view(np.int64), 4, 4), want)
        assert band_keys(np.empty((0, 16), dtype=np.uint64), 4, 4).shape == (0, 4)

    def test_shape_mismatch_rejected(self) -> None:
        with pytest.raises(ValueError, match="bands \\* rows"):
            band_keys(np.zeros((2, 160), dtype=np.uint64), bands=20, rows=9)


def _levenshtein_dp(a: list[str], b: list[str]) -> int:
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


class TestVerifiers:
    def test_jaccard_against_python_sets(self) -> None:
        rng = random.Random(4)
        for _ in range(50):
            a = [rng.randrange(2**64) for _ in range(rng.randrange(1, 40))]
            b = [rng.choice(a) if rng.random() < 0.5 else rng.randrange(2**64) for _ in range(rng.randrange(1, 40))]
            sa, sb = set(a), set(b)
            got = jaccard(np.array(a, dtype=np.uint64), np.array(b, dtype=np.uint64))
            assert got == len(sa & sb) / len(sa | sb)

    def test_jaccard_edge_cases(self) -> None:
        empty = np.empty(0, dtype=np.uint64)
        assert jaccard(empty, empty) == 1.0
        assert jaccard(empty, np.array([1], dtype=np.uint64)) == 0.0
        assert jaccard(np.array([5, 5, 6], dtype=np.uint64), np.array([6, 5], dtype=np.uint64)) == 1.0

    def test_edit_similarity_against_hand_dp(self) -> None:
        rng = random.Random(5)
        vocab = ["the", "cat", "sat", "on", "mat", "über", "日本", ""]
        for _ in range(300):
            a = [rng.choice(vocab) for _ in range(rng.randrange(0, 25))]
            b = [rng.choice(vocab) for _ in range(rng.randrange(0, 25))]
            want = 1.0 if not a and not b else 1 - _levenshtein_dp(a, b) / max(len(a), len(b))
            assert edit_similarity(a, b) == pytest.approx(want, abs=1e-12)

    def test_edit_similarity_works_on_tokens_not_characters(self) -> None:
        # One token substituted out of four, although the strings differ by many characters.
        assert edit_similarity(["alpha", "beta", "gamma", "delta"], ["alpha", "BETAXYZ", "gamma", "delta"]) == 0.75

    def test_edit_similarity_cutoff(self) -> None:
        a, b = ["a", "b", "c", "d", "e"], ["a", "b", "x", "y", "z"]
        assert edit_similarity(a, b) == pytest.approx(0.4)
        assert edit_similarity(a, b, score_cutoff=0.8) == 0.0
        assert edit_similarity(a, a, score_cutoff=0.8) == 1.0
