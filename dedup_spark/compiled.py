"""numba for the compiled loops of both tools, with its cache of compiled code in one folder per machine.

`NUMBA_CACHE_DIR` defaults to a folder under the temporary directory, so Spark's Python workers on one machine
compile each function once and later load it in a fraction of a second; set it to a persistent, writable folder
on cluster nodes to keep the compiled code between runs. Kernel modules import `njit` from here so the folder is
set before numba is first imported.
"""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("NUMBA_CACHE_DIR", os.path.join(tempfile.gettempdir(), "dedup-spark-numba"))

from numba import njit  # noqa: E402

__all__ = ["njit"]
