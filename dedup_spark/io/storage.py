"""Small file-system helpers over pyarrow.fs, so local paths and object stores (s3://, gs://, hdfs://) behave alike.

Spark reads and writes the data; these helpers only list, check, move and delete folders and write small files.
"""

from __future__ import annotations

import fnmatch
import re

import pyarrow.fs as pafs

_GLOB_CHARS = re.compile(r"[*?\[{]")
# The lock a running job holds in its output folder (see outputlock.py); it does not make a folder non-empty.
LOCK_NAME = "_dedup_spark.lock"


def filesystem(path: str) -> tuple[pafs.FileSystem, str]:
    """(filesystem, path inside it) for a local path or a URI."""
    if "://" in path:
        return pafs.FileSystem.from_uri(path)
    return pafs.LocalFileSystem(), _local(path)


def _local(path: str) -> str:
    import os

    return os.path.abspath(os.path.expanduser(path))


def has_glob(path: str) -> bool:
    return bool(_GLOB_CHARS.search(path))


def exists(path: str) -> bool:
    fs, inner = filesystem(path)
    return fs.get_file_info(inner).type != pafs.FileType.NotFound


def is_dir(path: str) -> bool:
    fs, inner = filesystem(path)
    return fs.get_file_info(inner).type == pafs.FileType.Directory


def is_empty_or_missing(path: str) -> bool:
    fs, inner = filesystem(path)
    info = fs.get_file_info(inner)
    if info.type == pafs.FileType.NotFound:
        return True
    if info.type != pafs.FileType.Directory:
        return False
    return all(i.base_name == LOCK_NAME for i in fs.get_file_info(pafs.FileSelector(inner, recursive=False)))


# Metadata that Spark, Hadoop and Delta write beside data files: never documents, so never read, always named
# (a warning and the report list them). Every other file is read, hidden-looking names ("_x", ".x") included.
METADATA_FILES = ("_SUCCESS", "_FAILURE", "_metadata", "_common_metadata", "_started_*", "_committed_*", "*.crc")
METADATA_FILES += ("*._COPYING_", LOCK_NAME)
METADATA_DIRS = ("_delta_log", "_temporary", "_spark_metadata", ".hive-staging*")


def is_metadata(relative: str) -> bool:
    """True for a file (path relative to the input root) that is Spark/Hadoop/Delta metadata (see above)."""
    *folders, name = relative.split("/")
    if any(fnmatch.fnmatchcase(name, pattern) for pattern in METADATA_FILES):
        return True
    return any(fnmatch.fnmatchcase(folder, pattern) for folder in folders for pattern in METADATA_DIRS)


def list_files(path: str) -> list[str]:
    """Data files under a file, a folder (recursively) or a glob, as paths in the path's own style.

    Metadata files (`is_metadata`) are left out; `list_input` also returns them. Sorted, so callers are
    deterministic.
    """
    return [name for name, _ in list_files_with_sizes(path)]


def list_files_with_sizes(path: str) -> list[tuple[str, int]]:
    """Like `list_files`, with each file's size in bytes."""
    return list_input(path)[0]


def list_input(path: str) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """(data files, skipped metadata files) under a file, folder or glob, each as sorted (path, size)."""
    fs, inner = filesystem(path)
    prefix = path[: len(path) - len(inner)] if "://" in path else ""
    if has_glob(inner):
        root = inner[: _GLOB_CHARS.search(inner).start()].rsplit("/", 1)[0] or "/"
        infos = fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
        found = [i for i in infos if i.type == pafs.FileType.File and fnmatch.fnmatch(i.path, inner)]
    else:
        root = inner
        info = fs.get_file_info(inner)
        if info.type == pafs.FileType.File:
            found, root = [info], inner.rsplit("/", 1)[0]
        elif info.type == pafs.FileType.Directory:
            infos = fs.get_file_info(pafs.FileSelector(inner, recursive=True))
            found = [i for i in infos if i.type == pafs.FileType.File]
        else:
            found = []
    data, skipped = [], []
    for i in found:
        (skipped if is_metadata(i.path[len(root) :].lstrip("/")) else data).append((prefix + i.path, i.size))
    return sorted(data), sorted(skipped)


def delete(path: str) -> None:
    """Delete a file or folder if it exists."""
    fs, inner = filesystem(path)
    info = fs.get_file_info(inner)
    if info.type == pafs.FileType.Directory:
        fs.delete_dir(inner)
    elif info.type == pafs.FileType.File:
        fs.delete_file(inner)


def move(source: str, target: str) -> None:
    """Rename a file or folder (atomic on local and HDFS file systems; copy+delete on object stores)."""
    fs, src = filesystem(source)
    _, dst = filesystem(target)
    fs.move(src, dst)


def make_dirs(path: str) -> None:
    fs, inner = filesystem(path)
    fs.create_dir(inner, recursive=True)


def write_text(path: str, text: str) -> None:
    """Write a small text file via a temporary name and a rename, so readers never see half a file."""
    fs, inner = filesystem(path)
    parent = inner.rsplit("/", 1)[0]
    fs.create_dir(parent, recursive=True)
    temporary = inner + ".tmp"
    with fs.open_output_stream(temporary) as stream:
        stream.write(text.encode("utf-8"))
    fs.move(temporary, inner)


def read_text(path: str) -> str:
    fs, inner = filesystem(path)
    with fs.open_input_stream(inner) as stream:
        return stream.read().decode("utf-8")


def join(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *(p.strip("/") for p in parts)])


def to_spark_path(path: str) -> str:
    """Local paths become absolute (Spark resolves relative paths against its own working dir)."""
    return path if "://" in path else _local(path)


def parquet_rows(path: str) -> int:
    """Rows of the Parquet files under a folder, from their footers (no data read). Names starting with "_" or
    "." (Spark's markers) are skipped, as Spark skips them."""
    import pyarrow.dataset as ds

    fs, inner = filesystem(path)
    return ds.dataset(inner, filesystem=fs, format="parquet").count_rows()
