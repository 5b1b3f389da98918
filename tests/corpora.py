"""Real corpora for slow tests and benchmarks, built by ../shared/corpora/make_corpora.sh (never committed)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MAKE_CORPORA = REPO.parent / "shared" / "corpora" / "make_corpora.sh"
CACHE = Path(os.environ.get("DEDUP_SPARK_CORPORA", Path.home() / ".cache" / "dedup-spark" / "corpora"))


def corpus(name: str) -> Path:
    """Path of `name`.parquet (columns id, text, source), building it on first use; skips if it cannot."""
    path = CACHE / "pq" / f"{name}.parquet"
    if path.exists():
        return path
    if not MAKE_CORPORA.exists():
        pytest.skip(f"{MAKE_CORPORA} not found: the real-corpus tests need the shared/ folder beside the repo")
    env = {**os.environ, "PY": sys.executable}
    result = subprocess.run(["bash", str(MAKE_CORPORA), str(CACHE), name], env=env, capture_output=True, text=True)
    if result.returncode != 0 or not path.exists():
        raise RuntimeError(f"building corpus {name} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return path
