"""dedup_spark: near-duplicate and exact-substring deduplication of text corpora on Spark."""

__version__ = "0.1.0"
