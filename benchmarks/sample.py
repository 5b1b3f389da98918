"""Cut a sample of a corpus for the cost-curve benchmarks: its first MB of text, as users' files come.

    python benchmarks/sample.py CORPUS.parquet OUT.parquet --mb 300               # one file, one row group
    python benchmarks/sample.py CORPUS.parquet OUT_DIR --mb 300 --files 64        # 64 files of equal rows

Rows are taken in file order until their text (UTF-8 bytes of column `text`) reaches --mb MB (10^6 bytes).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--mb", type=float, required=True)
    parser.add_argument("--files", type=int, default=1, help="1: one file with one row group; N: a folder of N files")
    args = parser.parse_args()
    table = pq.read_table(args.corpus)
    sizes = pc.binary_length(pc.cast(table["text"], pa.binary())).to_numpy(zero_copy_only=False)
    rows = int(np.searchsorted(np.cumsum(sizes), args.mb * 1e6)) + 1
    sample = table.slice(0, min(rows, table.num_rows))
    if args.files == 1:
        pq.write_table(sample, args.out, row_group_size=max(sample.num_rows, 1))
    else:
        args.out.mkdir(parents=True, exist_ok=True)
        step = -(-sample.num_rows // args.files)
        for number, start in enumerate(range(0, sample.num_rows, step)):
            pq.write_table(sample.slice(start, step), args.out / f"part-{number:04d}.parquet")
    text_mb = sizes[: sample.num_rows].sum() / 1e6
    print(f"{args.out}: {sample.num_rows:,} documents, {text_mb:.1f} MB of text, {args.files} file(s)")


if __name__ == "__main__":
    main()
