"""The input's files: which are read and how, which are skipped, and how many rows each one holds.

Spark's file listing silently drops names starting with "_" or "." (Hadoop's hidden-file rule), and its
checksummed local file system cannot open names Hadoop cannot parse as a URI (a ":" in a name). So:
- `storage.list_input` lists every file; Spark/Hadoop/Delta metadata (`storage.METADATA_FILES`, `METADATA_DIRS`)
  is skipped, named in a warning and in the report; every other file is data.
- When every data file has a name Spark reads, Spark reads the input path as given (the fast path).
- Otherwise, for local inputs, Spark reads symbolic links with plain names (`aliases`) to every data file, made
  in a temporary folder, and `_dd_file` is mapped back to the real file. Object stores have no links: such an
  input is an input error (exit 3) naming the files Spark cannot read and how to fix it.
- `expected_rows` counts rows from the files themselves (Parquet footers; one document per text file), so a
  reader that drops rows breaks the accounting instead of hiding it.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass

from dedup_spark.columns import FILE, LINK, REAL
from dedup_spark.errors import InputError
from dedup_spark.io import storage

log = logging.getLogger("dedup_spark")

_PLAIN_SEGMENT = re.compile(r"^[A-Za-z0-9][\w=.+-]*$")
_SUFFIXES = re.compile(r"(\.[A-Za-z0-9]{1,10})+$")


@dataclass(frozen=True)
class InputFiles:
    """data: (path, size) of the files read; skipped: metadata files not read; aliases: (link, real path)."""

    data: tuple[tuple[str, int], ...]
    skipped: tuple[tuple[str, int], ...]
    read_paths: tuple[str, ...]
    aliases: tuple[tuple[str, str], ...] = ()


def spark_cannot_list(relative: str) -> bool:
    """True when Spark would skip or fail on this file (path relative to the input folder, its name included)."""
    return any(
        (part.startswith("_") and "=" not in part) or part.startswith(".") or ":" in part
        for part in relative.split("/")
    )


def list_input_files(path: str, local_spark: bool = True) -> InputFiles:
    """List the input (see the module docstring), warn about skipped metadata, set up aliases if needed.

    local_spark: Spark runs on this machine (local mode), so links in a temporary folder here are visible to it;
    on a cluster they would not be, and names Spark cannot read are an input error instead.
    """
    data, skipped = storage.list_input(path)
    _check_unlistable(path)
    if skipped:
        size = sum(s for _, s in skipped)
        names = ", ".join(p.rsplit("/", 1)[-1] for p, _ in skipped[:5]) + (", ..." if len(skipped) > 5 else "")
        log.warning(
            "input %s: skipped %d Spark/Delta metadata files (%d bytes; %s); they hold no documents",
            path,
            len(skipped),
            size,
            names,
        )
    root = _root(path)
    awkward = [f for f, _ in data if spark_cannot_list(f[len(root) :].lstrip("/"))]
    if not awkward:
        return InputFiles(tuple(data), tuple(skipped), (storage.to_spark_path(path),))
    if "://" in path or not local_spark:
        raise InputError(
            f"Spark cannot read {len(awkward)} input files under {path!r} by their names (starting with '_' or "
            f"'.', or holding characters such as ':'), e.g. {awkward[0]!r}; rename them"
            + ("" if "://" in path else ", or run in local mode")
        )
    folder = tempfile.mkdtemp(prefix="dedup-spark-input-")
    atexit.register(shutil.rmtree, folder, True)
    aliases = []
    for number, (file, _) in enumerate(data):
        relative = file[len(root) :].lstrip("/")
        folders = [
            p if _PLAIN_SEGMENT.match(p) and not p.startswith("_") else f"d{abs(hash(p)) % 10**8}"
            for p in relative.split("/")[:-1]
        ]
        suffix = _SUFFIXES.search(relative.rsplit("/", 1)[-1])
        link = os.path.join(folder, *folders, f"f{number:07d}{suffix.group(0) if suffix else ''}")
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink(os.path.abspath(file), link)
        aliases.append((link, file))
    log.info(
        "input %s: %d files have names Spark skips or cannot open (e.g. %s); reading them through links in %s",
        path,
        len(awkward),
        awkward[0].rsplit("/", 1)[-1],
        folder,
    )
    return InputFiles(tuple(data), tuple(skipped), (folder,), tuple(aliases))


def _check_unlistable(path: str) -> None:
    """Local folders: entries the listing cannot return as files (broken links, pipes, sockets) are named, not
    silently missed: an input error (exit 3)."""
    import stat

    if "://" in path or storage.has_glob(path) or not os.path.isdir(path):
        return
    odd = []
    for folder, _, names in os.walk(path, followlinks=True):
        for name in names:
            full = os.path.join(folder, name)
            if not os.path.exists(full):
                odd.append((full, "a broken symbolic link"))
            elif not stat.S_ISREG(os.stat(full).st_mode):
                odd.append((full, "not a regular file"))
    if odd:
        more = f" (and {len(odd) - 1} more)" if len(odd) > 1 else ""
        raise InputError(
            f"input file {odd[0][0]!r} is {odd[0][1]}{more}; remove it or point it at a real file, so no data is "
            "silently missing"
        )


def _root(path: str) -> str:
    """The folder the listing's relative names start from: the input folder, a file's folder, a glob's prefix."""
    _, inner = storage.filesystem(path)
    prefix = path[: len(path) - len(inner)] if "://" in path else ""
    if storage.has_glob(inner):
        return prefix + (inner[: re.search(r"[*?\[{]", inner).start()].rsplit("/", 1)[0] or "/")
    if storage.is_dir(path):
        return prefix + inner
    return prefix + inner.rsplit("/", 1)[0]


def file_column(files: InputFiles | None, column: str = "_metadata.file_path"):
    """`_dd_file` for rows Spark read: the real file (links mapped back), as file:/path for local files.

    `_metadata.file_path` is a URI (spaces as %20); it is decoded so quarantine rows name the file as it is.
    """
    from pyspark.sql import functions as F

    path = F.col(column)
    if column == "_metadata.file_path":  # url_decode also turns "+" into a space: protect literal plus signs
        path = F.url_decode(F.replace(path, F.lit("+"), F.lit("%2B")))
    return path


def map_aliases(spark, frame, files: InputFiles | None):
    """Replace link paths in `_dd_file` by the real files they point to (a broadcast join with the link list)."""
    from pyspark.sql import functions as F

    if not files or not files.aliases:
        return frame
    links = spark.createDataFrame(
        [("file:" + link, "file:" + real) for link, real in files.aliases], f"{LINK} string, {REAL} string"
    )
    joined = frame.join(F.broadcast(links), frame[FILE] == links[LINK], "left")
    return joined.withColumn(FILE, F.coalesce(REAL, FILE)).drop(LINK, REAL)


def file_key(spark_path: str) -> str:
    """A file as Spark names it (file:/a%20b) -> as the listing names it (/a b); object-store URIs unchanged."""
    from urllib.parse import unquote

    if spark_path.startswith("file:"):
        return "/" + unquote(spark_path[len("file:") :]).lstrip("/")
    return unquote(spark_path)


def expected_rows(fmt: str, files: InputFiles, footers: dict) -> dict[str, int]:
    """Rows each file holds, counted from the file itself where that is cheap: Parquet footers (`footers`, from
    `parquet_footers`), 1 per text file.

    JSON Lines files have no row count but their lines (reading them is the reader's job); they are left out.
    """
    if fmt == "text":
        return {path: 1 for path, _ in files.data}
    if fmt != "parquet":
        return {}
    return {path: footer.num_rows for path, footer in footers.items()}


# Text bytes per byte on disk of a compressed text file, for sizing only (gzip and zstd on prose and code: 3-5).
COMPRESSED_TEXT_RATIO = 4


def text_bytes(fmt: str, files: InputFiles, footers: dict, text_column: str) -> int:
    """About how many bytes of text the input holds, from the files alone: the text column's uncompressed size in
    Parquet footers (the whole row group's when the column is not found), the size of JSON Lines and text files
    (times COMPRESSED_TEXT_RATIO when compressed). Only sizes the work into shards; no count depends on it."""
    if fmt != "parquet":
        compressed = sum(size for path, size in files.data if path.lower().endswith((".gz", ".zst", ".bz2")))
        return sum(size for _, size in files.data) + (COMPRESSED_TEXT_RATIO - 1) * compressed
    total = 0
    for footer in footers.values():
        for group in range(footer.num_row_groups):
            row_group = footer.row_group(group)
            columns = [row_group.column(i) for i in range(row_group.num_columns)]
            text = [c.total_uncompressed_size for c in columns if c.path_in_schema == text_column]
            total += text[0] if text else row_group.total_byte_size
    return total


def parquet_footers(fmt: str, files: InputFiles) -> dict:
    """{path: pyarrow FileMetaData} of every data file of a Parquet input; {} for other formats."""
    if fmt != "parquet":
        return {}
    import pyarrow.parquet as pq

    footers = {}
    for path, _ in files.data:
        fs, inner = storage.filesystem(path)
        try:
            with fs.open_input_file(inner) as handle:
                footers[path] = pq.ParquetFile(handle).metadata
        except Exception as exc:  # pyarrow raises ArrowInvalid / OSError for a bad footer
            raise InputError(
                f"cannot read input file {path!r}: not a readable Parquet file ({str(exc).splitlines()[0][:200]}); "
                "replace or remove it, or pass the right --input-format"
            ) from None
    return footers


def parquet_conflict(files: InputFiles) -> str | None:
    """The first column two Parquet files give different types, as one line, or None."""
    import pyarrow.parquet as pq

    seen: dict[str, tuple[str, str]] = {}
    for path, _ in files.data:
        fs, inner = storage.filesystem(path)
        try:
            with fs.open_input_file(inner) as handle:
                schema = pq.ParquetFile(handle).schema_arrow
        except Exception as exc:  # a corrupt footer: name the file
            return (
                f"cannot read input file {path!r}: not a readable Parquet file ({str(exc).splitlines()[0][:200]}); "
                "replace or remove it, or pass the right --input-format"
            )
        for field in schema:
            first = seen.setdefault(field.name, (str(field.type), path))
            if first[0] != str(field.type):
                return (
                    f"column {field.name!r} has type {first[0]} in {first[1]!r} but {field.type} in {path!r}; "
                    "Parquet files of one input must agree on column types: cast the column in one of them, or "
                    "read them as separate inputs"
                )
    return None
