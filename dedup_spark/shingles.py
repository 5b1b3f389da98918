"""Text normalisation, shingling and shingle hashing for NearDup (kernels, no Spark).

Normalisation rule (`normalize`), applied in this order:

1. Unicode NFKC, so compatibility forms compare equal (fullwidth ``Ａ`` -> ``A``, ligature ``ﬁ`` -> ``fi``,
   no-break space -> space).
2. Lower-casing with ``str.lower``.
3. Every character whose Unicode general category starts with ``P`` (punctuation: ``. , ! ? - _ ' " « » 。``
   and so on) becomes a space. Symbols (``$ € + = @``, category ``S*``) and digits are kept.
4. Whitespace runs (as ``str.split()`` sees them) collapse to one ASCII space; the ends are stripped.

The output therefore has words separated by exactly one space, which `word_shingles` relies on. Categories
come from the running Python's ``unicodedata`` (Unicode 14.0 on Python 3.11); all executors of a job should
run the same Python minor version so rare, newly assigned characters normalise alike.

Shingles are word n-grams (the paper's word 5-grams) or character n-grams (for scripts without spaces).
Short-document rule: a document with 1..n-1 units yields exactly one shingle (all of it); a document with
no units yields no shingles, and the caller reports it as ``too_short`` rather than dropping it.

Shingle hashes are xxh64 (seed 0) of each shingle's UTF-8 bytes, returned as a de-duplicated uint64 array.
`shingle_hashes` is the fast path used per document: it hashes byte slices of the encoded text instead of
building shingle strings, and gives the same set as ``hash_shingles(word_shingles(normalize(text), n))``.
"""

from __future__ import annotations

import re
import sys
import unicodedata
from collections.abc import Iterable
from functools import cache
from typing import Literal

import numpy as np
from xxhash import xxh64_intdigest

ShingleUnit = Literal["word", "char"]
SHINGLE_UNITS: tuple[str, ...] = ("word", "char")

_SPACE = 0x20
_EMPTY_HASHES = np.empty(0, dtype=np.uint64)


@cache
def _punctuation_table() -> dict[int, str]:
    """`str.translate` table mapping every P* code point to a space (built once per process, ~0.25 s)."""
    return {c: " " for c in range(sys.maxunicode + 1) if unicodedata.category(chr(c))[0] == "P"}


_NON_ASCII_RUN = re.compile(r"[^\x00-\x7f]+")


@cache
def _ascii_table(strip_punctuation: bool) -> bytes:
    """`bytes.translate` table for the ASCII bytes: P* punctuation to spaces (if asked) and every byte that
    `str.split` treats as white space (including \x1c-\x1f) to a space. Bytes >= 0x80 map to themselves."""
    table = bytearray(range(256))
    for byte in range(128):
        punctuation = strip_punctuation and unicodedata.category(chr(byte))[0] == "P"
        if punctuation or chr(byte).isspace():
            table[byte] = _SPACE
    return bytes(table)


def _collapse_spaces(data: bytes) -> bytes:
    """Drop leading/trailing spaces and all but the first space of each run (numpy, no Python loop)."""
    arr = np.frombuffer(data, dtype=np.uint8)
    space = arr == _SPACE
    keep = ~space
    keep[1:] |= ~space[:-1]
    out = arr[keep]
    if len(out) and out[-1] == _SPACE:
        out = out[:-1]
    return out.tobytes()


def normalize(text: str, *, lowercase: bool = True, nfkc: bool = True, strip_punctuation: bool = True) -> str:
    """Normalise `text` by the module's rule; the result has single-space-separated words, no edge spaces.

    Two paths with the same result (a test compares them): pure-ASCII text is handled as bytes with a 256-byte
    table; other text gets the table for its ASCII bytes and the full Unicode table only for non-ASCII runs,
    because `str.translate` with a dict costs a lookup per character.
    """
    if text.isascii():  # NFKC leaves ASCII unchanged
        data = text.encode("ascii")
        data = data.lower() if lowercase else data
        return _collapse_spaces(data.translate(_ascii_table(strip_punctuation))).decode("ascii")
    if nfkc:
        text = unicodedata.normalize("NFKC", text)
    if lowercase:
        text = text.lower()
    text = text.encode("utf-8").translate(_ascii_table(strip_punctuation)).decode("utf-8")
    if strip_punctuation:
        table = _punctuation_table()
        text = _NON_ASCII_RUN.sub(lambda run: run.group().translate(table), text)
    return " ".join(text.split())


def _check_n(n: int) -> None:
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"shingle size n must be an integer >= 1, got {n!r}")


def words(normalized: str) -> list[str]:
    """The words of a normalised text (empty text -> no words). Also the tokens for edit similarity."""
    return normalized.split(" ") if normalized else []


def word_shingles(normalized: str, n: int) -> list[str]:
    """Word n-grams of a normalised text, each joined with single spaces; short-document rule applies."""
    _check_n(n)
    tokens = words(normalized)
    if len(tokens) < n:
        return [normalized] if tokens else []
    return list(map(" ".join, zip(*(tokens[i:] for i in range(n)), strict=False)))


def char_shingles(normalized: str, n: int) -> list[str]:
    """Character (code point) n-grams of a normalised text, spaces included; short-document rule applies."""
    _check_n(n)
    if len(normalized) < n:
        return [normalized] if normalized else []
    return [normalized[i : i + n] for i in range(len(normalized) - n + 1)]


def hash_shingles(shingles: Iterable[str]) -> np.ndarray:
    """xxh64 (seed 0) of each shingle's UTF-8 bytes, as a de-duplicated uint64 array in no particular order."""
    hashes = {xxh64_intdigest(s.encode("utf-8")) for s in shingles}
    return np.fromiter(hashes, dtype=np.uint64, count=len(hashes))


def _hash_slices(buf: bytes, starts: list[int], ends: list[int]) -> np.ndarray:
    # A set comprehension over plain ints is the cheapest de-duplication at ~100s of shingles per document.
    hashes = {xxh64_intdigest(buf[s:e]) for s, e in zip(starts, ends, strict=True)}
    return np.fromiter(hashes, dtype=np.uint64, count=len(hashes))


def word_shingle_hashes(normalized: str, n: int) -> np.ndarray:
    """Same set as ``hash_shingles(word_shingles(normalized, n))``, without building shingle strings.

    Words are separated by exactly one space, so a word n-gram's UTF-8 bytes are one contiguous slice of the
    encoded text, from the start of its first word to the end of its last.
    """
    _check_n(n)
    if not normalized:
        return _EMPTY_HASHES.copy()
    buf = normalized.encode("utf-8")
    spaces = np.flatnonzero(np.frombuffer(buf, dtype=np.uint8) == _SPACE)
    n_words = len(spaces) + 1
    if n_words < n:
        return np.array([xxh64_intdigest(buf)], dtype=np.uint64)
    starts = np.concatenate(([0], spaces + 1))[: n_words - n + 1]
    ends = np.concatenate((spaces, [len(buf)]))[n - 1 :]
    return _hash_slices(buf, starts.tolist(), ends.tolist())


def char_shingle_hashes(normalized: str, n: int) -> np.ndarray:
    """Same set as ``hash_shingles(char_shingles(normalized, n))``, hashing slices of the UTF-8 bytes."""
    _check_n(n)
    if not normalized:
        return _EMPTY_HASHES.copy()
    buf = normalized.encode("utf-8")
    # A UTF-8 byte starts a code point unless it is a continuation byte 0b10xxxxxx.
    char_starts = np.flatnonzero((np.frombuffer(buf, dtype=np.uint8) & 0xC0) != 0x80)
    n_chars = len(char_starts)
    if n_chars < n:
        return np.array([xxh64_intdigest(buf)], dtype=np.uint64)
    bounds = np.append(char_starts, len(buf))
    return _hash_slices(buf, bounds[: n_chars - n + 1].tolist(), bounds[n:].tolist())


def shingle_hashes(
    text: str,
    *,
    ngram: int = 5,
    unit: ShingleUnit = "word",
    lowercase: bool = True,
    nfkc: bool = True,
    strip_punctuation: bool = True,
) -> np.ndarray:
    """Raw document text -> de-duplicated uint64 shingle hashes (normalize, shingle, xxh64).

    An empty result means the document has no words/characters after normalisation (``too_short``).
    """
    normalized = normalize(text, lowercase=lowercase, nfkc=nfkc, strip_punctuation=strip_punctuation)
    if unit == "word":
        return word_shingle_hashes(normalized, ngram)
    if unit == "char":
        return char_shingle_hashes(normalized, ngram)
    raise ValueError(f"shingle unit must be one of {SHINGLE_UNITS}, got {unit!r}")
