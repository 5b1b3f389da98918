"""Whether two locations overlap (one inside the other), after resolving symlinks. Pure Python, no Spark.

Local paths are compared by `os.path.realpath`; URIs (s3://, gs://, dbfs:/, ...) as normalised strings. A glob
stands for its fixed prefix (the folder before the first wildcard), since it can match anything below it.
"""

from __future__ import annotations

import os
import re

_GLOB = re.compile(r"[*?\[{]")


def _is_uri(path: str) -> bool:
    return bool(re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", path)) and not re.match(r"^[A-Za-z]:[\\/]", path)


def location(path: str) -> str:
    """The folder or file a path (or glob) can touch, resolved: no symlinks, no trailing slash."""
    match = _GLOB.search(path)
    if match:
        path = path[: match.start()].rsplit("/", 1)[0] or "/"
    if _is_uri(path):
        scheme, _, rest = path.partition(":")
        if scheme.lower() == "file":
            return location(re.sub(r"^/+", "/", rest))
        return scheme.lower() + ":" + re.sub(r"/+", "/", rest).rstrip("/")
    return os.path.realpath(os.path.expanduser(path))


def overlap(a: str, b: str) -> bool:
    """True when a and b are the same location or one lies inside the other."""
    la, lb = location(a), location(b)
    return la == lb or _inside(la, lb) or _inside(lb, la)


def _inside(child: str, parent: str) -> bool:
    return child.startswith(parent.rstrip("/") + "/")
