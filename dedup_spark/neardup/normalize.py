"""Text normalisation for NearDup: the words that shingles are made of (a kernel, no Spark).

Normalisation rule (`normalize`), applied in this order:

1. Unicode NFKC, so compatibility forms compare equal (fullwidth ``Ａ`` -> ``A``, ligature ``ﬁ`` -> ``fi``,
   no-break space -> space). With accent folding, NFKD instead (step 4 drops the marks it splits off).
2. Lower-casing with ``str.lower``.
3. Words: a word is a maximal run of letters, digits and combining marks (Unicode categories ``L*``, ``N*``,
   ``M*``). Every other character separates words: punctuation, symbols, spaces, control characters, so
   ``father's``, ``father’s``, ``father`s`` and ``father´s`` are all ``father s``, and every dash or quote is a
   separator. The exceptions: invisible format characters (``Cf``: soft hyphen, zero-width joiners, byte order
   mark) are removed, so they never split a word, except U+200B ZERO WIDTH SPACE, which separates; U+02BC
   MODIFIER LETTER APOSTROPHE (a letter by category, an apostrophe in use) separates; and combining marks that
   start a word (a spacing accent such as ``´`` is a space plus a mark after NFKC) are removed. With
   ``strip_punctuation`` off, only white space separates words (and marks, format characters and U+02BC are
   left as they are).
4. Accent folding (``fold_accents``, off by default): combining marks of category ``Mn`` are removed after the
   NFKD of step 1 and the result is composed again (NFC), so ``café``, ``cafe`` and ``CAFÉ`` are one word.
   It also removes marks that are letters' vowels in Indic and some other scripts, which is why it is off.
5. Separator runs collapse to one ASCII space; the ends are stripped.

The output therefore has words separated by exactly one space, which `word_shingles` relies on. Categories
come from the running Python's ``unicodedata`` (Unicode 14.0 on Python 3.11); all executors of a job should
run the same Python minor version so rare, newly assigned characters normalise alike.
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache

import numpy as np

_SPACE = 0x20

# Characters whose category says "letter" but whose use is an apostrophe: they separate words like ' and ’ do.
APOSTROPHE_LETTERS = frozenset({0x02BC})  # MODIFIER LETTER APOSTROPHE
# The one format character (Cf) that separates words; the others are removed.
ZERO_WIDTH_SPACE = 0x200B


class _NonAsciiTable(dict):
    """`str.translate` table for code points >= 0x80, filled in as code points are first seen (a lookup that hits
    is a plain dict lookup; building a table of all 1.1 million code points up front would cost every worker).

    Values: a space for a separator, None (removed) for a format character or, with accent folding, an Mn mark,
    and the code point itself for a character that stays.
    """

    def __init__(self, strip_punctuation: bool, fold_accents: bool) -> None:
        super().__init__({0: 0})  # NUL joins the runs `normalize_utf8` translates together
        self.strip_punctuation = strip_punctuation
        self.fold_accents = fold_accents

    def __missing__(self, code: int) -> str | int | None:
        char = chr(code)
        category = unicodedata.category(char)
        value: str | int | None = code
        if char.isspace():
            value = " "
        elif self.fold_accents and category == "Mn":
            value = None
        elif self.strip_punctuation:
            if code == ZERO_WIDTH_SPACE or code in APOSTROPHE_LETTERS:
                value = " "
            elif category == "Cf":
                value = None
            elif category[0] not in "LNM":
                value = " "
        self[code] = value
        return value


@cache
def _non_ascii_table(strip_punctuation: bool, fold_accents: bool) -> _NonAsciiTable:
    return _NonAsciiTable(strip_punctuation, fold_accents)


@cache
def _ascii_table(strip_punctuation: bool, lowercase: bool = False) -> bytes:
    """`bytes.translate` table for the ASCII bytes: every byte but a-z, A-Z and 0-9 to a space (if asked), every
    byte that `str.split` treats as white space (including \x1c-\x1f) to a space, and A-Z to a-z (if asked).
    Bytes >= 0x80 map to themselves."""
    table = bytearray(range(256))
    for byte in range(128):
        char = chr(byte)
        if (strip_punctuation and not char.isalnum()) or char.isspace():
            table[byte] = _SPACE
        elif lowercase:
            table[byte] = ord(char.lower())
    return bytes(table)


# Where Unicode has combining marks (category M): the basic and supplementary multilingual planes, and plane 14's
# variation selectors. Planes 2-3 hold CJK ideographs, 15-16 private use. Scanning only these takes a Python worker
# 0.02 s at its first document instead of 0.10 s for every code point (a test checks both give the same marks).
_MARK_PLANES = (range(0x300, 0x20000), range(0xE0000, 0xF0000))


@cache
def _leading_marks() -> re.Pattern[str]:
    """A space and the combining marks right after it: marks that would start a word (see the module docstring).
    Replaced by the space. The marks are given as ranges: a class listing each of them is ~100x slower to match."""
    marks = {c for plane in _MARK_PLANES for c in plane if unicodedata.category(chr(c))[0] == "M"}
    firsts = sorted(c for c in marks if c - 1 not in marks)
    lasts = sorted(c for c in marks if c + 1 not in marks)
    ranges = "".join(f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in zip(firsts, lasts, strict=True))
    return re.compile(f" [{ranges}]+")


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


def normalize(
    text: str, *, lowercase: bool = True, nfkc: bool = True, strip_punctuation: bool = True, fold_accents: bool = False
) -> str:
    """Normalise `text` by the module's rule; the result has single-space-separated words, no edge spaces."""
    return normalize_utf8(
        text, lowercase=lowercase, nfkc=nfkc, strip_punctuation=strip_punctuation, fold_accents=fold_accents
    ).decode("utf-8")


def normalize_utf8(
    text: str | bytes,
    *,
    lowercase: bool = True,
    nfkc: bool = True,
    strip_punctuation: bool = True,
    fold_accents: bool = False,
) -> bytes:
    """``normalize(text, ...).encode("utf-8")``, computed on bytes, which is the form shingle hashing reads.
    `text` may also be given as its UTF-8 bytes (as Arrow hands them over): ASCII text is then never decoded.

    Two paths with the same result (a test compares them with the general rule): pure-ASCII text is handled
    with a 256-byte table (lower-casing included); other text gets that table for its ASCII bytes and the Unicode
    table only for its non-ASCII runs, found with numpy, because `str.translate` with a dict costs a lookup per
    character. Spaces are collapsed on the bytes in both paths (every separator is a space by then).
    """
    if text.isascii():  # NFKC, NFKD and accent folding leave ASCII unchanged
        data = text if isinstance(text, bytes) else text.encode("ascii")
        return _collapse_spaces(data.translate(_ascii_table(strip_punctuation, lowercase)))
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    form = ("NFKD" if nfkc else "NFD") if fold_accents else ("NFKC" if nfkc else None)
    if form and not unicodedata.is_normalized(form, text):  # the check is ~10x cheaper than normalising
        text = unicodedata.normalize(form, text)
    if lowercase:
        text = text.lower()
    data = text.encode("utf-8").translate(_ascii_table(strip_punctuation))
    # Runs of bytes >= 0x80 are runs of whole non-ASCII code points. They are translated together, joined by NUL
    # (ASCII, so never inside a run; the table keeps it), which costs a few calls per document, not per run.
    high = np.zeros(len(data) + 2, dtype=bool)
    high[1:-1] = np.frombuffer(data, dtype=np.uint8) >= 0x80
    edges = np.flatnonzero(high[1:] != high[:-1]).tolist()  # run starts and ends, alternating
    starts, ends = edges[0::2], edges[1::2]
    # With strip_punctuation, a run starting a word gets the space before it (or one at the text's start), which
    # `_leading_marks` needs; the doubled space collapses later.
    lead = [strip_punctuation and (start == 0 or data[start - 1] == _SPACE) for start in starts]
    runs = [b" " * first + data[start:end] for first, start, end in zip(lead, starts, ends, strict=True)]
    joined = b"\0".join(runs).decode("utf-8").translate(_non_ascii_table(strip_punctuation, fold_accents))
    if strip_punctuation:
        joined = _leading_marks().sub(" ", joined)
    translated = joined.encode("utf-8").split(b"\0") if runs else []
    # The ASCII stretches before, between and after the runs, with the translated runs in between.
    ascii_parts = [data[done:start] for done, start in zip([0, *ends], [*starts, len(data)], strict=True)]
    pieces = [None] * (2 * len(runs) + 1)
    pieces[0::2], pieces[1::2] = ascii_parts, translated
    data = b"".join(pieces)
    if fold_accents and not data.isascii():
        composed = data.decode("utf-8")
        if not unicodedata.is_normalized("NFC", composed):
            data = unicodedata.normalize("NFC", composed).encode("utf-8")
    return _collapse_spaces(data)
