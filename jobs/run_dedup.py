"""spark-submit entry point: `spark-submit [spark options] jobs/run_dedup.py run --input=... --output=...`.

Only calls the library; the exit code is the CLI's (0 ok, 1 unexpected, 2 usage/config, 3 input).
"""

import sys

from dedup_spark.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
