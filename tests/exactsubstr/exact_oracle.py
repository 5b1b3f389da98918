"""Brute-force ExactSubstr: the contract written out literally, for tests (small corpora only).

Contract: a window is k consecutive bytes of one document's UTF-8 text. It is repeated if its bytes
occur at least twice in the corpus (overlaps count). Corpus order is (document index, byte offset).
- strike_all: every byte covered by an occurrence of a repeated window is removed.
- keep_first: every byte covered by an occurrence that is not the first occurrence of its bytes is removed.
Removed bytes form maximal spans per document; each is widened outward to whole UTF-8 characters; spans
that then overlap or touch are merged; spans are reported as code point offsets [start, end).
"""

from __future__ import annotations

POLICIES = ("strike_all", "keep_first")


def removed_byte_masks(docs: list[str], k: int, policy: str) -> list[list[bool]]:
    """Per document, per byte: is the byte removed under `policy`? (docs are in corpus order)."""
    if policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r}")
    texts = [doc.encode("utf-8") for doc in docs]
    occurrences: dict[bytes, list[tuple[int, int]]] = {}
    for d, text in enumerate(texts):
        for i in range(len(text) - k + 1):
            occurrences.setdefault(text[i : i + k], []).append((d, i))  # appended in corpus order
    masks = [[False] * len(text) for text in texts]
    for occ in occurrences.values():
        if len(occ) < 2:
            continue
        removed = occ if policy == "strike_all" else occ[1:]
        for d, i in removed:
            masks[d][i : i + k] = [True] * k
    return masks


def byte_spans(mask: list[bool]) -> list[tuple[int, int]]:
    """Maximal runs of True as [start, end) byte spans."""
    spans = []
    i = 0
    while i < len(mask):
        if mask[i]:
            j = i
            while j < len(mask) and mask[j]:
                j += 1
            spans.append((i, j))
            i = j
        else:
            i += 1
    return spans


def is_continuation(byte: int) -> bool:
    return byte & 0xC0 == 0x80


def mask_to_codepoint_spans(doc: str, mask: list[bool]) -> list[tuple[int, int]]:
    """Maximal runs of marked UTF-8 bytes of `doc`, widened to whole characters, as merged code point spans."""
    text = doc.encode("utf-8")
    spans: list[tuple[int, int]] = []
    for start, end in byte_spans(mask):
        while start > 0 and is_continuation(text[start]):
            start -= 1
        while end < len(text) and is_continuation(text[end]):
            end += 1
        cp_start, cp_end = len(text[:start].decode("utf-8")), len(text[:end].decode("utf-8"))
        if spans and cp_start <= spans[-1][1]:  # overlaps or touches the previous span
            spans[-1] = (spans[-1][0], max(cp_end, spans[-1][1]))
        else:
            spans.append((cp_start, cp_end))
    return spans


def oracle_spans(docs: list[str], k: int, policy: str) -> list[list[tuple[int, int]]]:
    """Code point spans removed from each document, by brute force (see the module docstring)."""
    return [mask_to_codepoint_spans(d, m) for d, m in zip(docs, removed_byte_masks(docs, k, policy), strict=True)]


def oracle_cut(docs: list[str], k: int, policy: str) -> list[str]:
    """The documents with their `oracle_spans` removed."""
    out = []
    for doc, spans in zip(docs, oracle_spans(docs, k, policy), strict=True):
        kept, pos = [], 0
        for start, end in spans:
            kept.append(doc[pos:start])
            pos = end
        kept.append(doc[pos:])
        out.append("".join(kept))
    return out
