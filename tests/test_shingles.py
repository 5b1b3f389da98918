"""Unit tests for dedup_spark.shingles (no Spark)."""

from __future__ import annotations

import numpy as np
import pytest
from xxhash import xxh64_intdigest

from dedup_spark.shingles import (
    char_shingle_hashes,
    char_shingles,
    hash_shingles,
    normalize,
    shingle_hashes,
    word_shingle_hashes,
    word_shingles,
    words,
)

SAMPLES = [
    "",
    "   \t\n ",
    "...!!!",
    "one",
    "Two words",
    "exactly five words here now",
    "The quick brown fox jumps over the lazy dog, again and again.",
    "Ｆｕｌｌｗｉｄｔｈ ＡＢＣ, the ﬁrst ligature; “curly quotes” — and «guillemets»!",
    "Ünïcödé Grüße aus Köln: Straße, Äpfel & Öl (2 × 3 = 6) $100 €5",
    "日本語のテキストです。句読点、そして空白なし",
    "Кириллица тоже работает — правда? Да!",
    "emoji 🎉 party 🎉🎉 time\u00a0with\u3000odd\u2003spaces",
]


class TestNormalize:
    def test_rule_order_and_output(self) -> None:
        assert normalize("  Hello,   WORLD!\n\tIt's   me.  ") == "hello world it s me"

    def test_nfkc_folds_compatibility_forms(self) -> None:
        assert normalize("Ｆｕｌｌ ﬁsh ①") == "full fish 1"

    def test_unicode_punctuation_becomes_space(self) -> None:
        assert normalize("a—b«c»d。e、f¿g_h-i") == "a b c d e f g h i"

    def test_symbols_and_digits_are_kept(self) -> None:
        assert normalize("$100 + €5 = 7 ^ ~ |") == "$100 + €5 = 7 ^ ~ |"

    def test_ascii_po_characters_are_punctuation(self) -> None:
        # @ # % & * / \ are Unicode Po, not symbols: they split words (e-mail addresses, URLs, paths).
        assert normalize("a@b.c #tag 50% R&D x*y a/b c\\d") == "a b c tag 50 r d x y a b c d"

    def test_unicode_whitespace_collapses(self) -> None:
        assert normalize("a\u00a0\u00a0b\u3000c\u2003\r\nd") == "a b c d"

    def test_flags_disable_steps(self) -> None:
        text = "Ｈｉ, There!"
        assert normalize(text, nfkc=False) == "ｈｉ there"
        assert normalize(text, lowercase=False) == "Hi There"
        assert normalize(text, strip_punctuation=False) == "hi, there!"

    @pytest.mark.parametrize("text", SAMPLES)
    def test_output_invariants(self, text: str) -> None:
        out = normalize(text)
        assert out == out.strip()
        assert "  " not in out
        assert normalize(out) == out


class TestShingles:
    def test_word_ngrams(self) -> None:
        assert word_shingles("a b c d e f", 5) == ["a b c d e", "b c d e f"]
        assert word_shingles("a b c", 1) == ["a", "b", "c"]

    def test_word_short_document_rule(self) -> None:
        assert word_shingles("a b c", 5) == ["a b c"]
        assert word_shingles("a b c d e", 5) == ["a b c d e"]
        assert word_shingles("", 5) == []
        assert words("") == []

    def test_char_ngrams_and_short_rule(self) -> None:
        assert char_shingles("日本語です", 3) == ["日本語", "本語で", "語です"]
        assert char_shingles("ab", 3) == ["ab"]
        assert char_shingles("", 3) == []

    @pytest.mark.parametrize("bad", [0, -1, 2.5])
    def test_bad_n_rejected(self, bad) -> None:
        with pytest.raises(ValueError, match="shingle size"):
            word_shingles("a b", bad)
        with pytest.raises(ValueError, match="shingle size"):
            char_shingle_hashes("a b", bad)


class TestHashing:
    def test_hash_shingles_is_xxh64_set(self) -> None:
        shingles = ["a b", "ü ß", "a b", "日本"]
        got = hash_shingles(shingles)
        assert got.dtype == np.uint64
        assert sorted(got.tolist()) == sorted({xxh64_intdigest(s.encode("utf-8")) for s in shingles})
        assert len(got) == 3

    def test_empty(self) -> None:
        assert hash_shingles([]).dtype == np.uint64
        assert shingle_hashes("  ...  ").shape == (0,)
        assert shingle_hashes("").dtype == np.uint64

    @pytest.mark.parametrize("text", SAMPLES)
    @pytest.mark.parametrize("n", [1, 2, 5, 9])
    def test_fast_path_equals_string_path(self, text: str, n: int) -> None:
        norm = normalize(text)
        assert set(word_shingle_hashes(norm, n).tolist()) == set(hash_shingles(word_shingles(norm, n)).tolist())
        assert set(char_shingle_hashes(norm, n).tolist()) == set(hash_shingles(char_shingles(norm, n)).tolist())

    def test_shingle_hashes_options(self) -> None:
        text = "Hello, World! Hello, World! Hello again."
        word = shingle_hashes(text, ngram=2)
        assert set(word.tolist()) == {
            xxh64_intdigest(s.encode()) for s in ("hello world", "world hello", "hello again")
        }
        char = shingle_hashes(text, ngram=4, unit="char", lowercase=False)
        assert set(char.tolist()) == set(hash_shingles(char_shingles(normalize(text, lowercase=False), 4)).tolist())
        with pytest.raises(ValueError, match="shingle unit"):
            shingle_hashes(text, unit="token")  # type: ignore[arg-type]

    def test_near_duplicates_share_most_shingles(self) -> None:
        a = shingle_hashes("The cat sat on the mat and looked out of the window at the rain.")
        b = shingle_hashes("the cat sat on the mat, and looked out of the window at the RAIN!")
        c = shingle_hashes("The cat sat on a mat and looked out of the window at the rain.")
        assert set(a.tolist()) == set(b.tolist())  # case and punctuation only
        assert len(set(a.tolist()) & set(c.tolist())) == len(a) - 5  # one word changes 5 shingles


def test_fast_paths_equal_the_general_rule():
    import random
    import unicodedata as ud

    from dedup_spark.shingles import _punctuation_table

    rng = random.Random(0)
    alphabet = [chr(c) for c in range(128)] + list("\x85\xa0\u2028\u3000«»—。、？ÉßΣ\u0130\ufb01Ａ🙂")
    for _ in range(4000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        for lower in (True, False):
            for strip in (True, False):
                general = ud.normalize("NFKC", text)
                general = general.lower() if lower else general
                general = general.translate(_punctuation_table()) if strip else general
                expected = " ".join(general.split())
                assert normalize(text, lowercase=lower, strip_punctuation=strip) == expected, repr(text)
