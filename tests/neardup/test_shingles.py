"""Unit tests for dedup_spark.neardup.shingles (no Spark)."""

from __future__ import annotations

import itertools
import random
import sys
import unicodedata

import numpy as np
import pytest

import dedup_spark.neardup.normalize as normalize_module
import dedup_spark.neardup.shingles as shingles_module
from dedup_spark.neardup.normalize import normalize, normalize_utf8
from dedup_spark.neardup.shingles import (
    BASE,
    LENGTH_MIX,
    ShingleUnit,
    batch_shingle_hashes,
    char_shingles,
    hash_shingles,
    hash_spans,
    join_documents,
    shingle_hash,
    shingle_hashes,
    shingle_set,
    shingle_spans,
    word_shingles,
    words,
)

M64 = (1 << 64) - 1

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

    def test_symbols_separate_words_and_digits_are_kept(self) -> None:
        assert normalize("$100 + €5 = 7 ^ ~ | a→b x²") == "100 5 7 a b x2"

    def test_apostrophe_quote_and_dash_variants_compare_equal(self) -> None:
        variants = ["father's", "father’s", "father`s", "father´s", "fatherʼs", "father‘s", "father′s"]
        assert {normalize(v) for v in variants} == {"father s"}
        dashes = ["e-mail", "e–mail", "e—mail", "e‐mail", "e−mail", "e―mail", "e_mail"]
        assert {normalize(d) for d in dashes} == {"e mail"}
        quotes = ['"q"', "“q”", "«q»", "„q“", "'q'", "‹q›", "「q」", "``q''"]
        assert {normalize(q) for q in quotes} == {"q"}

    def test_format_characters_are_removed_inside_words(self) -> None:
        assert normalize("co\u00adoperate zero\u200dwidth \ufeffbom a\u200bb") == "cooperate zerowidth bom a b"

    def test_marks_stay_in_words_unless_accents_are_folded(self) -> None:
        assert normalize("Café CAFE\u0301 naïve") == "café café naïve"
        assert normalize("Café CAFE\u0301 naïve", fold_accents=True) == "cafe cafe naive"
        assert normalize("हिन्दी") == "हिन्दी"  # virama and vowel sign are marks inside the word
        assert normalize("a \u0301b") == "a b"  # a mark cannot start a word
        assert normalize("a \U000e0100b \U0001d165c") == "a b c"  # marks of planes 14 and 1 too

    def test_the_planes_scanned_for_marks_hold_every_mark(self) -> None:
        scanned = {c for plane in normalize_module._MARK_PLANES for c in plane}
        marks = {c for c in range(sys.maxunicode + 1) if unicodedata.category(chr(c)).startswith("M")}
        assert marks and marks <= scanned

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
        assert normalize_utf8(text) == out.encode("utf-8")


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
            batch_shingle_hashes([b"a b"], bad, "char")


def reference_hash(data: bytes) -> int:
    """The module docstring's definition, in Python ints: polynomial mod 2^64, length mix, fmix64."""
    poly = sum(byte * pow(BASE, j, 1 << 64) for j, byte in enumerate(data)) & M64
    h = poly ^ ((len(data) * LENGTH_MIX) & M64)
    h ^= h >> 33
    h = (h * 0xFF51AFD7ED558CCD) & M64
    h ^= h >> 33
    h = (h * 0xC4CEB9FE1A85EC53) & M64
    return h ^ (h >> 33)


def random_texts(rng: random.Random, count: int) -> list[str]:
    """Raw texts mixing ASCII, multi-byte UTF-8, NUL, punctuation-only, empty and very short documents."""
    alphabet = list("abcxyz  ,.") + ["é", "ß", "日本", "🙂", "\x00", "  ", "\u3000", "—"]
    texts = ["", "  ...  ", "one", "a b c d", "a b c d e", "a b c d e f", "日本語", "\x00 \x00"]
    texts += ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 80))) for _ in range(count)]
    return rng.sample(texts, len(texts))


class TestHashing:
    def test_shingle_hash_equals_the_definition(self) -> None:
        rng = random.Random(1)
        samples = [b"", b"\x00", b"a", b"a\x00", b"a b c d e", "ü 日本 🙂".encode()]
        samples += [rng.randbytes(rng.choice([1, 7, 64, 300, 5000])) for _ in range(40)]
        for data in samples:
            assert shingle_hash(data) == reference_hash(data), data[:20]
        assert len({shingle_hash(d) for d in set(samples)}) == len(set(samples))

    def test_hash_shingles_is_the_set_of_shingle_hash(self) -> None:
        shingles = ["a b", "ü ß", "a b", "日本"]
        got = hash_shingles(shingles)
        assert got.dtype == np.uint64
        assert sorted(got.tolist()) == sorted({shingle_hash(s.encode("utf-8")) for s in shingles})
        assert len(got) == 3

    def test_bits_look_random(self) -> None:
        # Structured inputs (counters, one-byte changes) must still give balanced, distinct 64-bit values.
        data = [f"w{i} w{i + 1} w{i + 2}".encode() for i in range(4000)] + [bytes([b]) * 9 for b in range(256)]
        hashes = np.array([shingle_hash(d) for d in data], dtype=np.uint64)
        assert len(np.unique(hashes)) == len(data)
        ones = ((hashes[:, None] >> np.arange(64, dtype=np.uint64)) & np.uint64(1)).mean(axis=0)
        assert np.all(np.abs(ones - 0.5) < 0.04)  # ~5 standard deviations at n = 4256

    def test_empty(self) -> None:
        assert hash_shingles([]).dtype == np.uint64
        assert shingle_hashes("  ...  ").shape == (0,)
        assert shingle_hashes("").dtype == np.uint64
        hashes, offsets = batch_shingle_hashes([], 5)
        assert hashes.shape == (0,) and offsets.tolist() == [0]

    @pytest.mark.parametrize("unit", ["word", "char"])
    @pytest.mark.parametrize("n", [1, 2, 5])
    @pytest.mark.parametrize("chunk_bytes", [1, 50, 1 << 18])
    def test_batch_equals_shingle_hash_of_each_shingle(self, unit: ShingleUnit, n: int, chunk_bytes: int) -> None:
        rng = random.Random(n * 100 + chunk_bytes)
        normalized = [normalize(t) for t in random_texts(rng, 60)]
        shingler = word_shingles if unit == "word" else char_shingles
        docs = [t.encode("utf-8") for t in normalized]
        hashes, offsets = batch_shingle_hashes(docs, n, unit, chunk_bytes=chunk_bytes)
        assert hashes.dtype == np.uint64 and len(offsets) == len(normalized) + 1
        for i, text in enumerate(normalized):
            # In text order with repeats, exactly the string path's shingles.
            want = [shingle_hash(s.encode("utf-8")) for s in shingler(text, n)]
            assert hashes[offsets[i] : offsets[i + 1]].tolist() == want, repr(text)
            assert shingle_set(text, n, unit) == {s.encode("utf-8") for s in shingler(text, n)}

    def test_spans_are_the_shingles_bytes(self) -> None:
        docs = ["a bb ccc", "", "x", "é 日本 z"]
        buf, bounds = join_documents([d.encode() for d in docs])
        starts, ends, offsets = shingle_spans(buf, bounds, 2)
        data = buf.tobytes()
        assert [data[s:e] for s, e in zip(starts, ends, strict=True)] == [
            b"a bb",
            b"bb ccc",
            b"x",
            "é 日本".encode(),
            "日本 z".encode(),
        ]
        assert offsets.tolist() == [0, 2, 2, 3, 5]

    def test_hash_spans_in_any_order_and_any_piece_size(self) -> None:
        buf, bounds = join_documents([normalize_utf8(t) for t in random_texts(random.Random(7), 30)])
        starts, ends, _ = shingle_spans(buf, bounds, 3)
        want = hash_spans(buf, starts, ends)
        order = np.random.default_rng(0).permutation(len(starts))
        for piece_bytes in (1, 10, 1 << 20):
            got = hash_spans(buf, starts[order], ends[order], piece_bytes=piece_bytes)
            np.testing.assert_array_equal(got, want[order])

    def test_documents_longer_than_the_cached_powers(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(shingles_module, "_MAX_CACHED_POWERS", 16)
        monkeypatch.setattr(shingles_module, "_powers_cache", shingles_module._powers_cache)
        text = " ".join(f"word{i}" for i in range(50))
        hashes, _ = batch_shingle_hashes([text.encode()], 5)
        assert hashes.tolist() == [shingle_hash(s.encode()) for s in word_shingles(text, 5)]

    def test_shingle_hashes_options(self) -> None:
        text = "Hello, World! Hello, World! Hello again."
        word = shingle_hashes(text, ngram=2)
        assert set(word.tolist()) == {shingle_hash(s.encode()) for s in ("hello world", "world hello", "hello again")}
        assert len(word) == 3  # de-duplicated
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


def general_rule(text: str, nfkc: bool, lower: bool, strip: bool, fold: bool) -> str:
    """The module docstring's rule, one character at a time (no tables, no byte paths)."""
    import unicodedata as ud

    form = ("NFKD" if nfkc else "NFD") if fold else ("NFKC" if nfkc else None)
    text = ud.normalize(form, text) if form else text
    text = text.lower() if lower else text
    out: list[str] = []
    for char in text:
        category = ud.category(char)
        if char.isspace():
            out.append(" ")
        elif fold and category == "Mn":
            continue
        elif not strip:
            out.append(char)
        elif char in "\u200b\u02bc" or category[0] not in "LNMC" or category in ("Cc", "Cs", "Co", "Cn"):
            out.append(" ")
        elif category == "Cf" or (category[0] == "M" and (not out or out[-1] == " ")):
            continue
        else:
            out.append(char)
    joined = "".join(out)
    return " ".join((ud.normalize("NFC", joined) if fold else joined).split())


def test_fast_paths_equal_the_general_rule():
    rng = random.Random(0)
    unicode_spaces = "\x85\xa0\u1680\u2000\u2028\u2029\u202f\u3000"
    others = (
        "«»—。、？ÉßΣ\u0130\ufb01Ａ🙂´`’ʼ\u00ad\u200b\u200d\u0301\u0308e\u093f\u094dकで\U00020000\U000e0100\U000f0000"
    )
    alphabet = [chr(c) for c in range(128)] + list(unicode_spaces + others)
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        for nfkc, lower, strip, fold in itertools.product((True, False), repeat=4):
            expected = general_rule(text, nfkc, lower, strip, fold)
            flags = {"nfkc": nfkc, "lowercase": lower, "strip_punctuation": strip, "fold_accents": fold}
            assert normalize(text, **flags) == expected, (repr(text), flags)
            assert normalize_utf8(text.encode("utf-8"), **flags) == expected.encode("utf-8"), (repr(text), flags)
