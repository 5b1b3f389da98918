"""datatrove's MinHash dedup, end to end, for `bench_neardup.py --datatrove-python` (run in datatrove's own venv).

    python datatrove_minhash.py INPUT_DIR WORK_DIR CORES BANDS ROWS

The four stages of datatrove's MinHash example (signatures, buckets, clusters, filter), each with CORES tasks on
CORES local workers; word 5-grams, BANDS x ROWS hashes, seed 1; reads the `text`/`id` columns of the Parquet files
in INPUT_DIR (datatrove splits its work by file: give it at least CORES files) and writes the surviving documents as
Parquet, as dedup-spark does. Prints one JSON line: {"removed": N}.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pyarrow.parquet as pq
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.dedup.minhash import (
    MinhashConfig,
    MinhashDedupBuckets,
    MinhashDedupCluster,
    MinhashDedupFilter,
    MinhashDedupSignature,
)
from datatrove.pipeline.readers import ParquetReader
from datatrove.pipeline.writers import ParquetWriter


def main() -> None:
    inputs, work, cores, bands, rows = Path(sys.argv[1]), Path(sys.argv[2]), *map(int, sys.argv[3:6])
    config = MinhashConfig(n_grams=5, num_buckets=bands, hashes_per_bucket=rows, seed=1)

    def reader():
        return ParquetReader(str(inputs), glob_pattern="*.parquet", text_key="text", id_key="id")

    def run(name: str, pipeline: list, tasks: int = cores) -> None:
        logs = str(work / "logs" / name)
        LocalPipelineExecutor(pipeline=pipeline, tasks=tasks, workers=min(cores, tasks), logging_dir=logs).run()

    run("signatures", [reader(), MinhashDedupSignature(output_folder=str(work / "signatures"), config=config)])
    run(
        "buckets",
        [
            MinhashDedupBuckets(
                input_folder=str(work / "signatures"), output_folder=str(work / "buckets"), config=config
            )
        ],
        tasks=bands,
    )
    clusters = MinhashDedupCluster(
        input_folder=str(work / "buckets"), output_folder=str(work / "remove_ids"), config=config
    )
    run("clusters", [clusters], tasks=1)
    run(
        "filter",
        [
            reader(),
            MinhashDedupFilter(input_folder=str(work / "remove_ids"), exclusion_writer=None),
            ParquetWriter(str(work / "data")),
        ],
    )
    written = sum(pq.ParquetFile(path).metadata.num_rows for path in (work / "data").glob("*.parquet"))
    read = sum(pq.ParquetFile(path).metadata.num_rows for path in inputs.glob("*.parquet"))
    print(json.dumps({"removed": read - written}))


if __name__ == "__main__":
    main()
