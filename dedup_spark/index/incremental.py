"""`run --index=INDEX`: deduplicate a new batch within itself and against everything already kept, then add it.

Steps (the pipeline calls them in this order; the index's table is `index/store.py`):
1. open       before any work: read the index's newest version (`latest`) and the batch's input fingerprint (the
              same file list, sizes and times resume uses). A batch whose fingerprint an earlier commit carries
              was added already: it is checked against the version before that commit, and nothing is added
              again, so a re-run gives the same outputs and never adds a document twice. The version read is
              part of the ingest step's resume fingerprint, so a run resumed after the index moved recomputes.
2. reference  after ingest: the index's documents become (a) held-out documents for NearDup, exactly as
              `--protect` makes them (ids `index:<id>`, the text, `_dd_bytes`, the id column cast back to the
              input's type): they come first in every cluster's keep order and are never removed, and a batch
              document in a cluster with one is removed as `near_duplicate_of_index` with that document's id
              (`index:<id>`) as `cluster_id`; (b) `StageContext.index` for ExactSubstr, which cuts batch windows
              that occur in the index's texts as well as the batch's own repeats (`exactsubstr/against.py`).
3. finish     after the outputs are written and the accounting balances: the survivors (`data/`) go into the
              index in one commit (`Index.append`), unless the mode is read-only or the batch was added already.
              report.json gets `index`: versions before and after, documents, size on disk, matches.

Why exact: NearDup sees precisely the documents `--protect` would give it (same ids but for the prefix, texts,
sizes and keep keys), so its removals are those of `run --protect` with the index as the held-out set; for
ExactSubstr see `exactsubstr/against.py`.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from dedup_spark import __version__
from dedup_spark.columns import BYTES, ID, INDEX_ID_PREFIX, INDEXED, SUPERKMERS, col
from dedup_spark.config import RunConfig
from dedup_spark.errors import InputError
from dedup_spark.exactsubstr.against import SUPERKMERS_TYPE, doc_superkmers
from dedup_spark.index.store import FORMAT_VERSION, MINIMIZERS_KEY, SIGNATURES_KEY, Index
from dedup_spark.io import storage
from dedup_spark.io.writers import read_table
from dedup_spark.neardup.signatures import SIGNATURE_SCHEMA, resolve_lsh, signature_batches
from dedup_spark.report.run import RunReport
from dedup_spark.resume import InputIdentity

log = logging.getLogger("dedup_spark")

NEAR_DUPLICATE_OF_INDEX = "near_duplicate_of_index"
# Index ids matched, named in the report (the count covers all).
REPORT_IDS = 20


@dataclass
class IndexRun:
    """The index as this run uses it."""

    mode: str
    latest: Index  # the newest version when the run started: a commit is pinned to the one after it
    view: Index  # the snapshot the batch is checked against: `latest`, or the one before the batch's own commit
    fingerprint: str
    added_at: int | None  # the version that added this batch already, or None

    def key(self) -> dict[str, Any]:
        """The index's part of the ingest fingerprint (resume)."""
        return self.view.key()


def input_fingerprint(identity: InputIdentity) -> str:
    """SHA-256 of the batch's input: format and file list with sizes and times (or the Delta version)."""
    payload = json.dumps({"format": identity.format, **identity.key}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def signature_settings(config: RunConfig) -> str:
    """A hash of everything a NearDup signature depends on: normalisation, shingles, seed, bands x rows, version."""
    nd, lsh = config.neardup, resolve_lsh(config.neardup)
    settings = {
        "normalize": [nd.lowercase, nd.nfkc, nd.strip_punctuation, nd.fold_accents],
        "shingles": [nd.ngram, nd.shingle_unit],
        "minhash": [nd.seed, lsh.bands, lsh.rows],
        "dedup_spark_version": __version__,
    }
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode("utf-8")).hexdigest()[:32]


def minimizer_settings(config: RunConfig) -> str:
    """A hash of what the stored super-k-mers depend on: min_length, minimizer width, version."""
    ex = config.exactsubstr
    settings = {"min_length": ex.min_length, "width": ex.width, "dedup_spark_version": __version__}
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode("utf-8")).hexdigest()[:32]


def stored_settings(config: RunConfig) -> dict[str, str]:
    """The commit metadata naming the settings of the signatures and minimizers a commit stores."""
    return {SIGNATURES_KEY: signature_settings(config), MINIMIZERS_KEY: minimizer_settings(config)}


def open_index(spark: SparkSession, config: RunConfig, identity: InputIdentity) -> IndexRun | None:
    """Step 1 (see the module docstring); None without --index."""
    if not config.index.path:
        return None
    latest = Index.open(spark, config.index.path, delta_writer=config.index.delta_writer)
    if latest.version < 0 and config.index.mode == "read-only":
        raise InputError(
            f"--index={config.index.path} holds no index and --index-mode=read-only does not create one: "
            "seed it with `dedup-spark index create`, or run once without --index-mode=read-only"
        )
    fingerprint = input_fingerprint(identity)
    added = latest.added_by(fingerprint)
    view = latest if added is None else latest.at(added - 1)
    if added is not None:
        log.info(
            "index: this input was added at version %s already; checking it against version %s, adding nothing",
            added,
            view.version,
        )
    path, mode = config.index.path, config.index.mode
    log.info("index: %s version %s (%s documents), mode %s", path, view.version, view.documents, mode)
    return IndexRun(config.index.mode, latest, view, fingerprint, added)


def plan_line(run: IndexRun) -> str:
    """The --dry-run plan's line on the index."""
    view = run.view
    line = f"  index   {view.path} version {view.version} ({view.documents:,} documents), mode {run.mode}"
    if run.added_at is not None:
        return (
            line + f"; this input was added at version {run.added_at}: checked against the version before, adds nothing"
        )
    return line + ("; adds the survivors in one commit" if run.mode == "update" else "; adds nothing")


def reference_docs(
    spark: SparkSession, config: RunConfig, run: IndexRun | None, protected: DataFrame | None, docs: DataFrame
) -> tuple[DataFrame | None, DataFrame | None, DataFrame | None]:
    """Step 2: NearDup's held-out documents with the index's added; ExactSubstr's index documents; the index's
    stored signatures when they were made with this run's settings (`StageContext.protected_signatures`)."""
    if run is None or run.view.version < 0:
        return protected, None, None
    clashing = docs.filter(F.col(ID).startswith(INDEX_ID_PREFIX)).select(ID).limit(3).collect()
    if clashing:
        raise InputError(
            f"input ids {[r[ID] for r in clashing]} start with {INDEX_ID_PREFIX!r}, which names documents of "
            "the --index; rename them or let dedup-spark derive ids"
        )
    stored = run.view.docs(spark)
    text = config.input.text_column
    superkmers = []
    if run.view.settings_match(MINIMIZERS_KEY, minimizer_settings(config)):
        superkmers.append(F.col("superkmers").alias(SUPERKMERS))
    for_exact = stored.select(
        F.col("id").alias(ID), F.col("text").alias(text), F.col("bytes").alias(BYTES), *superkmers
    )
    extra = []
    if config.input.id_column:  # the keep order reads the id column first, with the input's type
        id_type = docs.schema[config.input.id_column].dataType
        extra.append(F.col("id").cast(id_type).alias(config.input.id_column))
    for_neardup = stored.select(
        F.concat(F.lit(INDEX_ID_PREFIX), F.col("id")).alias(ID),
        F.col("text").alias(text),
        F.col("bytes").alias(BYTES),
        *extra,
        F.lit(True).alias(INDEXED),
    )
    if protected is not None:
        for_neardup = protected.unionByName(for_neardup, allowMissingColumns=True)
    signatures = None
    if run.view.settings_match(SIGNATURES_KEY, signature_settings(config)):
        prefixed = F.concat(F.lit(INDEX_ID_PREFIX), F.col("id")).alias(ID)
        signatures = stored.select(prefixed, "norm_hash", "n_shingles", "band_keys")
    else:
        log.info("index: its NearDup signatures were made with other settings or another version: hashing it again")
    return for_neardup, for_exact, signatures


def finish(spark: SparkSession, config: RunConfig, run: IndexRun | None, report: RunReport, files_dir: str) -> None:
    """Step 3: add the survivors (mode update, a batch not added yet) and record the index in report.json."""
    if run is None:
        return
    removed = _read_output(spark, config, report, "removed")
    if "cluster_id" not in removed.columns:  # no NearDup stage
        removed = removed.withColumn("cluster_id", F.lit(None).cast("string"))
    matched = removed.filter(F.col("reason") == NEAR_DUPLICATE_OF_INDEX).select("cluster_id").distinct()
    ids = [r["cluster_id"] for r in matched.orderBy("cluster_id").limit(REPORT_IDS).collect()]
    exact = next((s for s in report.stages if s["name"] == "exactsubstr"), {}).get("details", {})
    passes = exact.get("passes") if isinstance(exact.get("passes"), list) else [exact]  # exactsubstr.passes=2
    shared = sum(p.get("index", {}).get("bytes_shared_with_index", 0) for p in passes)
    entry: dict[str, Any] = {
        "path": config.index.path,
        "mode": run.mode,
        "format_version": FORMAT_VERSION,
        "checked_against_version": run.view.version,
        "version_before": run.latest.version,
        "documents_before": run.view.documents,
        "text_bytes_before": run.view.text_bytes,
        "near_duplicates_of_index": report.removed_by_reason.get(NEAR_DUPLICATE_OF_INDEX, 0),
        "index_documents_matched": matched.count(),
        "index_ids_matched": [i.removeprefix(INDEX_ID_PREFIX) for i in ids],
        "bytes_shared_with_index": shared,
        "already_added_at_version": run.added_at,
    }
    report.index = entry
    version_after, added, added_bytes = run.latest.version, 0, 0
    if run.mode == "update" and run.added_at is None:
        survivors = _survivors(spark, config, report)
        _check_new_ids(survivors, run.latest, spark)
        # From data/ itself: counted on the index rows, the join with their signatures would hash the batch again.
        totals = survivors.agg(F.count(F.lit(1)).alias("n"), F.sum(F.octet_length("text")).alias("b")).first()
        added, added_bytes = int(totals["n"]), int(totals["b"] or 0)
        counts = {"documents_added": added, "text_bytes_added": added_bytes, **stored_settings(config)}
        frame = index_rows(survivors, run.latest.version + 1, config)
        try:
            version_after = run.latest.append(frame, run.fingerprint, counts)
        except Exception as exc:
            report.status, entry["error"] = "failed", str(exc)
            report.write(files_dir)
            raise
        log.info("index: added %s documents as version %s", added, version_after)
    after = run.latest.at(version_after) if version_after >= 0 else run.latest
    entry.update(
        version_after=version_after,
        documents_added=added,
        text_bytes_added=added_bytes,
        documents_after=after.documents,
        text_bytes_after=after.text_bytes,
        size_on_disk_bytes=after.size_on_disk(),
    )
    # Disk per byte of text held: text, signatures, super-k-mers, every version's files and the log.
    entry["size_on_disk_per_text_byte"] = (
        round(entry["size_on_disk_bytes"] / after.text_bytes, 3)
        if after.text_bytes and entry["size_on_disk_bytes"] is not None
        else None
    )
    report.write(files_dir)


def _read_output(spark: SparkSession, config: RunConfig, report: RunReport, name: str) -> DataFrame:
    location = report.outputs[name]
    if storage.exists(location) or "/" in location or ":" in location:
        return read_table(spark, location, config.output.format)
    return spark.read.table(location)  # --output names catalog tables


def _survivors(spark: SparkSession, config: RunConfig, report: RunReport) -> DataFrame:
    """`id, text` of data/: what this run kept, with the text as written."""
    data = _read_output(spark, config, report, "data")
    doc_id = col(config.input.id_column).cast("string") if config.input.id_column else col(config.output.id_column)
    return data.select(doc_id.alias("id"), col(config.input.text_column).alias("text"))


def index_rows(docs: DataFrame, batch: int, config: RunConfig) -> DataFrame:
    """`id, text` -> index rows (`store.DOCS_SCHEMA`) of batch `batch`, with NearDup signatures and ExactSubstr
    super-k-mers.

    The signatures are those NearDup computes for the same text and settings (`neardup.signatures`), so a later
    run with these settings can use them in place of hashing the index; the super-k-mers let ExactSubstr read
    only the index text that can share a window with its batch (`exactsubstr/against.py`; see `reference_docs`)."""
    nd, lsh, ex = config.neardup, resolve_lsh(config.neardup), config.exactsubstr
    sign = signature_batches(nd, lsh, "text")
    signatures = docs.select(F.col("id").alias(ID), "text").mapInArrow(sign, SIGNATURE_SCHEMA)
    sized = docs.select(F.col("id").alias(ID), "text", F.octet_length("text").cast("long").alias(BYTES))
    superkmers = doc_superkmers(sized, "text", ex.min_length, ex.width).withColumnRenamed(ID, "id")
    with_all = docs.join(signatures.withColumnRenamed(ID, "id"), "id").join(superkmers, "id", "left")
    return with_all.select(
        "id",
        F.lit(batch).cast("long").alias("batch"),
        "text",
        F.octet_length("text").cast("long").alias("bytes"),
        F.substring(F.sha2("text", 256), 1, 32).alias("text_hash"),
        "norm_hash",
        "n_shingles",
        "band_keys",
        F.coalesce(SUPERKMERS, F.array().cast(SUPERKMERS_TYPE)).alias("superkmers"),
    )


def _check_new_ids(frame: DataFrame, index: Index, spark: SparkSession) -> None:
    """Survivors whose id the index holds already are an InputError (exit 3): ids must stay unique in the index."""
    if index.version < 0:
        return
    stored = index.docs(spark).select("id", F.col("batch").alias("added_in"))
    clashes = frame.select("id").join(stored, "id").orderBy("id").limit(5).collect()
    if clashes:
        named = ", ".join(f"{r['id']} (batch {r['added_in']})" for r in clashes)
        raise InputError(
            f"documents kept from this batch have ids the index holds already: {named}; their texts are not "
            "near-duplicates of the index's, so they are different documents: give them new ids (ids must be "
            "unique in the index) and run again; nothing was added"
        )


def create_index(spark: SparkSession, config: RunConfig, index_path: str) -> dict[str, Any]:
    """`dedup-spark index create --input=CORPUS --index=INDEX`: a new index holding the corpus as it is.

    The corpus is ingested with the run's input settings (quarantined rows and duplicate ids as in `run`) into
    `INDEX/_work` and added in one commit (batch 0) without deduplication: it is what was published. Refuses an
    index that exists already. Returns the summary (also logged).
    """
    from dedup_spark.io.ingest import ingest, load_docs
    from dedup_spark.io.readers import read_input, resolve_source
    from dedup_spark.resume import input_identity

    index = Index.open(spark, index_path, delta_writer=config.index.delta_writer)
    if index.version >= 0:
        raise InputError(
            f"--index={index_path} holds an index already (version {index.version}, {index.documents} documents): "
            "add batches with `dedup-spark run --index`, or pass a new folder"
        )
    source = resolve_source(spark, config.input)
    fingerprint = input_fingerprint(input_identity(spark, source))
    work = storage.join(index_path, "_work")
    storage.delete(work)
    try:
        raw = read_input(spark, source, config.input)
        files = (source.format, source.files) if source.files else None
        result = ingest(spark, raw, config, work, source_files=files)
        docs = load_docs(spark, result)
        seed = docs.select(F.col(ID).alias("id"), col(config.input.text_column).alias("text"))
        frame = index_rows(seed, 0, config)
        counts = {
            "documents_added": result.docs,
            "text_bytes_added": result.text_bytes,
            **stored_settings(config),
        }
        version = index.append(frame, fingerprint, counts)
    finally:
        storage.delete(work)
    summary = {
        "index": index_path,
        "version": version,
        "documents": result.docs,
        "text_bytes": result.text_bytes,
        "rows_read": result.rows_read,
        "quarantined_by_reason": result.quarantined_by_reason,
        "size_on_disk_bytes": index.at().size_on_disk(),
    }
    log.info("index created: %s", summary)
    return summary
