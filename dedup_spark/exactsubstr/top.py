"""The report's most repeated substrings: exact counts for candidate windows and collapsing shifted windows.

Per task, `find_repeats` names its most frequent windows; a repeated sentence of n bytes gives n - k + 1 of
them, shifted by one byte, all with the same count. `collapse_repeats` chains windows of equal count that
overlap by k - 1 bytes back into the sentence, so the report lists distinct repeats. Which candidates a task
looks at is a heuristic (its top groups); the counts are not: they come from tasks that see every occurrence.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from dedup_spark.exactsubstr.minimizers import wgram_hashes

#: Longest snippet bytes kept for a repeated substring (a few hundred characters of any script).
SNIPPET_BYTES = 1024
#: Bytes of super-k-mers hashed at once when recounting windows (temporaries ~24 bytes per byte).
_HASH_SEGMENT_BYTES = 1 << 22
# Low hash bits indexed by the bitmap that pre-filters hashes before the exact target lookup (128 KB of bool).
_BITMAP_BITS = 17
_BITMAP_MASK = (1 << _BITMAP_BITS) - 1


def weighted_window_counts(datas: Sequence[bytes], weights: np.ndarray, k: int, windows: Sequence[bytes]) -> np.ndarray:
    """Occurrences of each window's first k bytes in the pieces `datas`, each piece counting `weights[i]` times.

    Every k-byte window inside a piece is hashed (64-bit polynomial hash, `wgram_hashes`), pieces a few MB at
    a time. A hash collision could only raise a reported count, never change a removal.
    """
    keys = sorted({bytes(w[:k]) for w in windows})
    targets = np.array([wgram_hashes(np.frombuffer(key, dtype=np.uint8), k)[0] for key in keys], dtype=np.uint64)
    order = np.argsort(targets, kind="stable")
    targets = targets[order]
    found = np.zeros(len(keys), dtype=np.int64)  # per sorted target
    # Most hashes match no target: a bitmap of the targets' low bits rules them out before the binary search.
    bitmap = np.zeros(1 << _BITMAP_BITS, dtype=bool)
    bitmap[targets & np.uint64(_BITMAP_MASK)] = True
    lengths = np.fromiter((len(d) for d in datas), dtype=np.int64, count=len(datas))
    cumulative = np.cumsum(lengths)
    weights = np.asarray(weights)
    first = 0
    while first < len(datas) and keys:
        done_before = cumulative[first - 1] if first else 0
        end = max(first + 1, int(np.searchsorted(cumulative, done_before + _HASH_SEGMENT_BYTES, side="right")))
        hashes = wgram_hashes(np.frombuffer(b"".join(datas[first:end]), dtype=np.uint8), k)
        maybe = np.flatnonzero(bitmap[hashes & np.uint64(_BITMAP_MASK)])
        slot = np.minimum(np.searchsorted(targets, hashes[maybe]), len(keys) - 1)
        # A window is real if it ends inside its piece (not across into the next one).
        piece = np.searchsorted(cumulative, maybe + done_before, side="right")
        hit = (targets[slot] == hashes[maybe]) & (maybe + done_before + k <= cumulative[piece])
        np.add.at(found, slot[hit], weights[piece[hit]])
        first = end
    per_key = dict(zip((keys[i] for i in order), found.tolist(), strict=True))
    return np.array([per_key[bytes(w[:k])] for w in windows], dtype=np.int64)


def collapse_repeats(entries: Sequence[tuple[bytes, int]], k: int, limit: int) -> list[tuple[bytes, int]]:
    """Join substrings of equal count that chain by a (k-1)-byte overlap (1-byte-shifted windows of one repeat,
    consecutive super-k-mers of one copied text) into one; drop ones contained in another of the same count.

    entries: (bytes, count); returns at most `limit` (bytes <= SNIPPET_BYTES, count), largest count first,
    ties by bytes, so the result does not depend on input order.
    """
    by_count: dict[int, set[bytes]] = defaultdict(set)
    for data, count in entries:
        by_count[count].add(bytes(data))
    overlap = k - 1
    result: list[tuple[bytes, int]] = []
    for count in sorted(by_count, reverse=True):
        items = sorted(by_count[count])
        chains: list[bytes] = []
        if overlap > 0:
            heads: dict[bytes, bytes] = {}
            for item in items:
                heads.setdefault(item[:overlap], item)
            successor: dict[bytes, bytes] = {}
            taken: set[bytes] = set()
            for item in items:
                nxt = heads.get(item[-overlap:]) if len(item) < SNIPPET_BYTES else None
                if nxt is not None and nxt != item and nxt not in taken:
                    successor[item] = nxt
                    taken.add(nxt)
            seen: set[bytes] = set()
            # Chain heads first; whatever is left over sits on a cycle (periodic text) and starts anywhere.
            for item in [i for i in items if i not in taken] + items:
                if item in seen:
                    continue
                text, current = item, item
                seen.add(item)
                while current in successor and successor[current] not in seen and len(text) < SNIPPET_BYTES:
                    current = successor[current]
                    seen.add(current)
                    text += current[overlap:]
                chains.append(text[:SNIPPET_BYTES])
        else:
            chains = items
        kept: list[bytes] = []
        for text in sorted(set(chains), key=lambda t: (-len(t), t)):
            if not any(text in longer for longer in kept):
                kept.append(text)
        result += [(text, count) for text in sorted(kept)]
        if len(result) >= limit:
            break
    return result[:limit]


def snippet(data: bytes, max_chars: int = 200) -> str:
    """Readable text of a repeated substring: partial UTF-8 characters at its edges dropped, cut to max_chars."""
    text = data.decode("utf-8", errors="ignore")
    return text if len(text) <= max_chars else text[: max_chars - 1] + "…"
