"""Build the bundled demo corpus data/demo/corpus.jsonl.gz (run once; the output is committed).

Source: the King James Version of the Bible (1611, public domain), as printed by Debian's `bible-kjv` program:
    apt-get download bible-kjv bible-kjv-text && dpkg-deb -x each into a folder, then
    bible -d usr/lib/bible.data -l100000 "gen1:1-rev22:21" > kjv.txt
    python scripts/build_demo_data.py kjv.txt data/demo/corpus.jsonl.gz

One document per chapter (1,189). The text has natural near-duplicates (Psalm 14 / Psalm 53, parallel passages
in Kings and Chronicles) and long repeated phrases. Planted on top, with a fixed seed:
  - 40 exact copies of chapters (source "mirror"),
  - 40 lightly edited copies, about 1% of words changed (source "edited"),
  - a 170-byte boilerplate footer appended to 150 chapters (a repeated substring),
  - three rows for the quarantine: null text, empty text, a malformed JSON line.
"""

from __future__ import annotations

import gzip
import json
import random
import re
import sys
from pathlib import Path

FOOTER = (
    "\n\nThis chapter is part of the dedup-spark demo corpus, assembled from the public-domain King James "
    "Version of 1611 to show how repeated boilerplate is found and removed."
)


def chapters(path: str) -> list[dict]:
    docs, book, chapter, verses = [], None, None, []
    heading = re.compile(r"^(\S.*) (\d+)$")
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        line = line.rstrip("\n")
        match = heading.match(line)
        if match:
            if verses:
                docs.append((book, chapter, verses))
            book, chapter, verses = match.group(1), int(match.group(2)), []
        elif line.strip():
            verses.append(re.sub(r"^\s*\d+ ", "", line).strip())
    docs.append((book, chapter, verses))
    return [
        {
            "id": f"kjv-{b.lower().replace(' ', '-')}-{c:03d}",
            "text": "\n".join(v),
            "source": "kjv",
            "book": b,
            "chapter": c,
        }
        for b, c, v in docs
    ]


def edit(text: str, rng: random.Random, vocabulary: list[str]) -> str:
    words = text.split(" ")
    for i in rng.sample(range(len(words)), max(1, len(words) // 100)):
        words[i] = rng.choice(vocabulary)
    return " ".join(words)


def main(source: str, target: str) -> None:
    rng = random.Random(20221)
    docs = chapters(source)
    assert len(docs) == 1189, len(docs)
    vocabulary = sorted({w for d in docs[:50] for w in d["text"].split()})
    for doc in rng.sample(docs, 150):
        doc["text"] += FOOTER
    planted = []
    for n, doc in enumerate(rng.sample(docs, 40)):
        planted.append({**doc, "id": f"mirror-{n:03d}", "source": "mirror"})
    for n, doc in enumerate(rng.sample(docs, 40)):
        planted.append({**doc, "id": f"edited-{n:03d}", "source": "edited", "text": edit(doc["text"], rng, vocabulary)})
    rows = docs + planted
    rng.shuffle(rows)
    lines = [json.dumps(r, ensure_ascii=False) for r in rows]
    lines.insert(100, json.dumps({"id": "bad-null", "text": None, "source": "bad"}))
    lines.insert(200, json.dumps({"id": "bad-empty", "text": "", "source": "bad"}))
    lines.insert(300, '{"id": "bad-json", "text": "this line was cut off')
    with gzip.GzipFile(target, "wb", mtime=0) as out:
        out.write(("\n".join(lines) + "\n").encode("utf-8"))
    print(f"wrote {len(lines)} lines to {target}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
