"""Unit tests for dedup_spark.neardup.minhash: datasketch equality and exact arithmetic against Python ints."""

from __future__ import annotations

import random
import time

import numpy as np
import pytest
from datasketch import MinHash

from dedup_spark.neardup.minhash import EMPTY_VALUE, MERSENNE_61, MinHasher, fmix64, mod61, mulmod61
from dedup_spark.neardup.normalize import normalize, normalize_utf8
from dedup_spark.neardup.shingles import (
    ShingleUnit,
    batch_shingle_hashes,
    char_shingles,
    shingle_hash,
    shingle_hashes,
    word_shingles,
)

P = MERSENNE_61
M64 = (1 << 64) - 1
EDGES = [0, 1, 2, 7, 8, (1 << 32) - 1, 1 << 32, P - 1, P, P + 1, 1 << 61, (1 << 63) - 1, 1 << 63, M64 - 1, M64]

DOCS = [
    "Deduplicating training data makes language models better. We find that existing language modeling "
    "datasets contain many near-duplicate examples and long repetitive substrings.",
    "Deduplicating training data makes language models better! We find that existing language-modeling "
    "datasets contain many near duplicate examples, and long repetitive substrings.",
    "As a result, over 1% of the unprompted output of language models trained on these datasets is copied "
    "verbatim from the training data. We develop two tools that allow us to deduplicate training datasets.",
    "Зачем дедуплицировать корпуса? Потому что повторы портят модели — и это видно на C4, RealNews, LM1B.",
    "短い",
    "",
]


def _big_fmix64(h: int) -> int:
    h ^= h >> 33
    h = (h * 0xFF51AFD7ED558CCD) & M64
    h ^= h >> 33
    h = (h * 0xC4CEB9FE1A85EC53) & M64
    return h ^ (h >> 33)


def _datasketch(text: str, num_perm: int, seed: int, n: int = 5, unit: str = "word") -> np.ndarray:
    """datasketch's signature of `text`: the same shingles' UTF-8 bytes, hashed by datasketch itself."""
    m = MinHash(num_perm=num_perm, seed=seed, scheme="affine64", hashfunc=shingle_hash)
    shingler = word_shingles if unit == "word" else char_shingles
    for shingle in shingler(normalize(text), n):
        m.update(shingle.encode("utf-8"))
    return m.hashvalues


class TestDatasketchEquality:
    @pytest.mark.parametrize(("num_perm", "seed"), [(1, 1), (16, 0), (128, 1), (160, 42), (257, 2**31 - 1)])
    def test_affine64_signatures_equal_datasketch(self, num_perm: int, seed: int) -> None:
        ours = MinHasher(num_perm, seed).signatures([shingle_hashes(t) for t in DOCS])
        for text, row in zip(DOCS, ours, strict=True):
            np.testing.assert_array_equal(row, _datasketch(text, num_perm, seed))

    @pytest.mark.parametrize(("n", "unit"), [(5, "word"), (1, "word"), (3, "char")])
    def test_batch_kernel_signatures_equal_datasketch(self, n: int, unit: ShingleUnit) -> None:
        # The production path: batch-hashed shingles (repeats included) straight into signatures_flat.
        rng = random.Random(n)
        alphabet = list("abc xyz,.") + ["é", "日本", "🙂", "\u3000", "—", "Ü"]
        texts = [
            *DOCS,
            "one two",
            "a b c d e",
            "...",
            *("".join(rng.choices(alphabet, k=rng.randint(0, 90))) for _ in range(40)),
        ]
        hashes, offsets = batch_shingle_hashes([normalize_utf8(t) for t in texts], n, unit, chunk_bytes=64)
        ours = MinHasher(128, 7).signatures_flat(hashes, offsets)
        for text, row in zip(texts, ours, strict=True):
            np.testing.assert_array_equal(row, _datasketch(text, 128, 7, n, unit), err_msg=repr(text))

    def test_permutation_parameters_equal_datasketch(self) -> None:
        for scheme, ours in (("affine64", "affine64"), ("legacy", "mersenne61")):
            m = MinHash(num_perm=64, seed=5, scheme=scheme)
            mh = MinHasher(64, 5, ours)  # type: ignore[arg-type]
            np.testing.assert_array_equal(m.permutations[0], mh.a)
            np.testing.assert_array_equal(m.permutations[1], mh.b)

    def test_empty_document_is_datasketch_empty_value(self) -> None:
        sig = MinHasher(32, 1).signature(np.empty(0, dtype=np.uint64))
        np.testing.assert_array_equal(sig, MinHash(num_perm=32, scheme="affine64").hashvalues)
        assert (sig == EMPTY_VALUE).all()

    def test_mersenne61_matches_datasketch_legacy_where_legacy_cannot_overflow(self) -> None:
        # legacy computes (a*h + b) % p in uint64: exact only while a*h + b < 2^64, i.e. h <= 7. It also
        # truncates each value to 32 bits before the min, so compare single-element sets.
        mh = MinHasher(64, 3, "mersenne61")
        for h in range(8):
            m = MinHash(num_perm=64, seed=3, scheme="legacy", hashfunc=lambda x: x)
            m.update(h)
            ours = mh.signature(np.array([h], dtype=np.uint64))
            np.testing.assert_array_equal(ours & np.uint64(0xFFFFFFFF), m.hashvalues)

    def test_datasketch_legacy_overflows_on_64_bit_hashes(self) -> None:
        # Documents why we do not offer "legacy": its uint64 product wraps before the modulo.
        h = shingle_hash(b"a b c d e")
        m = MinHash(num_perm=64, seed=3, scheme="legacy", hashfunc=lambda x: x)
        m.update(h)
        exact = [((int(a) * h + int(b)) % P) & 0xFFFFFFFF for a, b in zip(*m.permutations, strict=True)]
        assert sum(int(x) != y for x, y in zip(m.hashvalues, exact, strict=True)) > 50


class TestExactArithmetic:
    def test_fmix64_and_affine64_against_python_ints(self) -> None:
        rng = np.random.default_rng(7)
        hashes = EDGES + rng.integers(0, M64, 200, dtype=np.uint64, endpoint=True).tolist()
        mh = MinHasher(8, 9)
        got = mh.permute(np.array(hashes, dtype=np.uint64))
        for i, h in enumerate(hashes):
            assert int(fmix64(np.array([h], dtype=np.uint64))[0]) == _big_fmix64(h)
            want = [(int(a) * _big_fmix64(h) + int(b)) % (1 << 64) for a, b in zip(mh.a, mh.b, strict=True)]
            assert got[i].tolist() == want

    def test_mod61_and_mulmod61_against_python_ints(self) -> None:
        rng = np.random.default_rng(11)
        values = EDGES + rng.integers(0, M64, 300, dtype=np.uint64, endpoint=True).tolist()
        x = np.array(values, dtype=np.uint64)
        assert mod61(x).tolist() == [v % P for v in values]
        # All pairs of edge values, plus random pairs.
        a, b = np.meshgrid(np.array(EDGES, dtype=np.uint64), np.array(EDGES, dtype=np.uint64))
        assert mulmod61(a, b).ravel().tolist() == [
            (int(i) * int(j)) % P for i, j in zip(a.ravel(), b.ravel(), strict=True)
        ]
        y = rng.permutation(x)
        assert mulmod61(x, y).tolist() == [(int(i) * int(j)) % P for i, j in zip(x, y, strict=True)]

    @pytest.mark.parametrize("chunk_size", [1, 5, 1 << 16])
    def test_mersenne61_signature_against_python_ints(self, chunk_size: int) -> None:
        rng = np.random.default_rng(13)
        docs = [np.array(EDGES, dtype=np.uint64), rng.integers(0, M64, 100, dtype=np.uint64, endpoint=True)]
        mh = MinHasher(24, 17, "mersenne61", chunk_size=chunk_size)
        sigs = mh.signatures(docs)
        for doc, sig in zip(docs, sigs, strict=True):
            want = [min((int(a) * int(h) + int(b)) % P for h in doc) for a, b in zip(mh.a, mh.b, strict=True)]
            assert sig.tolist() == want
            assert mh.permute(doc).min(axis=0).tolist() == want

    def test_mersenne61_zero_residue_is_the_minimum(self) -> None:
        # h = -b/a (mod p) makes a*h + b a multiple of p; the unreduced sum can land exactly on p, which a
        # ">" instead of ">=" in the final reduction would leave unreduced. Try every uint64 representative.
        mh = MinHasher(32, 23, "mersenne61")
        for k in range(32):
            root = (-int(mh.b[k]) * pow(int(mh.a[k]), -1, P)) % P
            doc = np.array([root + j * P for j in range(8) if root + j * P <= M64], dtype=np.uint64)
            for h in doc:
                assert mh.signature(np.array([h], dtype=np.uint64))[k] == 0
            assert mh.permute(doc)[:, k].tolist() == [0] * len(doc)


class TestBatching:
    def _docs(self, rng: np.random.Generator) -> list[np.ndarray]:
        lengths = [0, 3, 1, 0, 0, 50, 7, 0, 200, 1, 0]
        return [rng.integers(0, M64, n, dtype=np.uint64, endpoint=True) for n in lengths]

    @pytest.mark.parametrize("scheme", ["affine64", "mersenne61"])
    @pytest.mark.parametrize("chunk_size", [1, 2, 7, 64, 1 << 16])
    def test_chunking_never_changes_results(self, scheme: str, chunk_size: int) -> None:
        docs = self._docs(np.random.default_rng(3))
        mh = MinHasher(20, 4, scheme, chunk_size=chunk_size)  # type: ignore[arg-type]
        sigs = mh.signatures(docs)
        for doc, sig in zip(docs, sigs, strict=True):
            want = mh.permute(doc).min(axis=0) if len(doc) else np.full(20, EMPTY_VALUE)
            np.testing.assert_array_equal(sig, want)

    def test_many_docs_per_chunk_capped(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import dedup_spark.neardup.minhash as minhash

        monkeypatch.setattr(minhash, "_MAX_PARTIAL_VALUES", 40)  # at most 2 docs per chunk at num_perm=20
        docs = self._docs(np.random.default_rng(5))
        mh = MinHasher(20, 4)
        np.testing.assert_array_equal(mh.signatures(docs), np.array([mh.signature(d) for d in docs]))

    def test_duplicates_order_and_int64_views(self) -> None:
        doc = np.random.default_rng(9).integers(0, M64, 30, dtype=np.uint64, endpoint=True)
        mh = MinHasher(16, 1)
        base = mh.signature(doc)
        np.testing.assert_array_equal(mh.signature(np.concatenate([doc[::-1], doc[:5]])), base)
        np.testing.assert_array_equal(mh.signatures([doc.view(np.int64), doc])[0], base)

    def test_arrow_layout_with_nonzero_first_offset(self) -> None:
        docs = self._docs(np.random.default_rng(21))
        flat = np.concatenate([np.arange(4, dtype=np.uint64), *docs])
        offsets = 4 + np.concatenate([[0], np.cumsum([len(d) for d in docs])])
        mh = MinHasher(12, 2)
        np.testing.assert_array_equal(mh.signatures_flat(flat, offsets), mh.signatures(docs))
        assert mh.signatures([]).shape == (0, 12)

    def test_invalid_arguments(self) -> None:
        with pytest.raises(ValueError, match="num_perm"):
            MinHasher(0, 1)
        with pytest.raises(ValueError, match="scheme"):
            MinHasher(8, 1, "legacy")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="non-decreasing"):
            MinHasher(8, 1).signatures_flat(np.zeros(3, dtype=np.uint64), np.array([0, 2, 1]))
        with pytest.raises(ValueError, match="outside"):
            MinHasher(8, 1).signatures_flat(np.zeros(3, dtype=np.uint64), np.array([0, 4]))


def test_speed_smoke() -> None:
    """Prints docs/s for ~1 KB documents at 160 permutations (no timing assertion)."""
    rng = np.random.default_rng(0)
    vocab = [f"w{i}" for i in range(3000)]
    texts = [" ".join(rng.choice(vocab, 200)) for _ in range(2000)]  # ~1 KB each
    start = time.perf_counter()
    hashes, offsets = batch_shingle_hashes([normalize_utf8(t) for t in texts], 5)
    mid = time.perf_counter()
    sigs = MinHasher(160, 1).signatures_flat(hashes, offsets)
    end = time.perf_counter()
    assert sigs.shape == (2000, 160)
    print(
        f"\n1 KB docs: normalize + batch_shingle_hashes {len(texts) / (mid - start):,.0f} docs/s, "
        f"signatures(160 perms) {len(texts) / (end - mid):,.0f} docs/s"
    )
