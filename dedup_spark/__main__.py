import sys

from dedup_spark.cli import main

sys.exit(main())
