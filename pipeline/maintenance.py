"""Table maintenance for tables written by the stream: compaction, manifest rewrite, snapshot expiry, orphans.

Safe beside a running stream:

* compaction and manifest rewrites are ordinary Iceberg commits; appends never conflict with them, and a
  conflicting merge (roll-ups) is retried by the stream;
* snapshot expiry never removes the snapshots from the newest stream marker on: the exactly-once bookkeeping
  (stream id + batch id in the snapshot summary) stays readable;
* orphan files are only removed when older than ``orphan_age`` (3 days by default): a file a writer has just
  written but not yet committed is never touched.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import asdict, dataclass, field

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from pipeline.streaming.commit import STREAM_ID_PROPERTY
from pipeline.tables import MAINTENANCE_RUNS, TableSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TableShape:
    data_files: int
    delete_files: int
    bytes: int
    snapshots: int
    manifests: int


@dataclass(frozen=True)
class MaintenanceResult:
    table: str
    before: TableShape
    after: TableShape
    rewritten_files: int
    expired_snapshots: int
    orphans_removed: int
    skipped: str = ""  # why a step was skipped (e.g. a concurrent commit won)


def table_shape(spark: SparkSession, name: str) -> TableShape:
    files = spark.table(f"{name}.files")
    stats = files.agg(
        F.count_if(F.col("content") == 0).alias("data"),
        F.count_if(F.col("content") != 0).alias("deletes"),
        F.coalesce(F.sum("file_size_in_bytes"), F.lit(0)).alias("bytes"),
    ).first()
    snapshots = spark.table(f"{name}.snapshots").count()
    manifests = spark.table(f"{name}.manifests").count()
    assert stats is not None
    return TableShape(int(stats["data"]), int(stats["deletes"]), int(stats["bytes"]), snapshots, manifests)


def _newest_marker(spark: SparkSession, name: str) -> dt.datetime | None:
    """Commit time of the newest snapshot carrying a stream marker (the one a restarted stream reads)."""
    row = (
        spark.table(f"{name}.snapshots")
        .filter(F.col("summary")[STREAM_ID_PROPERTY].isNotNull())
        .agg(F.max("committed_at"))
        .first()
    )
    return row[0] if row is not None else None


def rewrite_manifests(spark: SparkSession, catalog: str, spec: TableSpec) -> None:
    """Merge the table's manifests (a streaming table gains one per micro-batch)."""
    table = spec.qualified(catalog)
    spark.sql(f"CALL {catalog}.system.rewrite_manifests(table => :table)", args={"table": table}).collect()


def expire_snapshots(
    spark: SparkSession,
    catalog: str,
    spec: TableSpec,
    retention: dt.timedelta,
    retain_last: int,
    now: dt.datetime | None = None,
) -> int:
    """Expire the table's snapshots older than ``retention`` (keeping the last ``retain_last`` and every one from
    the stream's newest marker on); returns how many manifest lists went with them."""
    name = spec.qualified(catalog)
    cutoff = (now or dt.datetime.now()) - retention
    marker = _newest_marker(spark, name)
    if marker is not None and marker < cutoff:
        cutoff = marker  # never expire the stream's newest bookkeeping snapshot (or anything after it)
    expired = spark.sql(
        f"CALL {catalog}.system.expire_snapshots(table => :table, older_than => :cutoff, retain_last => :keep)",
        args={"table": name, "cutoff": cutoff, "keep": retain_last},
    ).first()
    return int(expired["deleted_manifest_lists_count"]) if expired is not None else 0


@dataclass
class StreamHygiene:
    """Keeps the metadata of the tables a stream appends to from growing with the stream's age.

    Every micro-batch adds one snapshot and one manifest to each table it writes: after an hour at one batch a
    second, every commit would rewrite a metadata file listing 3,600 snapshots and every scan would open 3,600
    manifests. Every ``every`` the stream (in the background, off the micro-batch's path) merges each table's
    manifests into one and expires its snapshots older than ``retention``, keeping the stream's newest marker.
    Compaction and orphan removal stay with the hourly maintenance job.
    """

    catalog: str
    tables: tuple[TableSpec, ...]
    every: dt.timedelta
    retention: dt.timedelta
    retain_last: int = 10
    _last_run: float = field(default_factory=time.monotonic)

    def due(self) -> bool:
        return time.monotonic() - self._last_run >= self.every.total_seconds()

    def run(self, spark: SparkSession) -> None:
        """One round over every table; a step that loses a race with a commit is left to the next round."""
        self._last_run = time.monotonic()
        for spec in self.tables:
            name = spec.qualified(self.catalog)
            try:
                rewrite_manifests(spark, self.catalog, spec)
                expire_snapshots(spark, self.catalog, spec, self.retention, self.retain_last)
            except Exception as exc:  # a concurrent commit won: nothing is lost, the next round tries again
                log.warning("hygiene of %s skipped this round: %s", name, str(exc).splitlines()[0] if str(exc) else exc)


def maintain(
    spark: SparkSession,
    catalog: str,
    spec: TableSpec,
    *,
    snapshot_retention: dt.timedelta = dt.timedelta(hours=1),
    retain_last: int = 10,
    orphan_age: dt.timedelta = dt.timedelta(days=3),
    now: dt.datetime | None = None,
) -> MaintenanceResult:
    """Compact, rewrite manifests, expire old snapshots (keeping stream markers) and remove old orphans."""
    name = spec.qualified(catalog)
    now = now or dt.datetime.now()
    before = table_shape(spark, name)
    call = f"{catalog}.system"
    skipped = []
    rewritten = 0
    try:
        row = spark.sql(
            f"CALL {call}.rewrite_data_files(table => :table, options => map('partial-progress.enabled', 'true',"
            " 'min-input-files', '2'))",
            args={"table": name},
        ).first()
        rewritten = int(row["rewritten_data_files_count"]) if row is not None else 0
    except Exception as exc:
        skipped.append(f"compaction: {type(exc).__name__}")
        log.warning("compaction of %s skipped: %s", name, exc)
    try:
        rewrite_manifests(spark, catalog, spec)
    except Exception as exc:
        skipped.append(f"manifests: {type(exc).__name__}")
    expired_count = expire_snapshots(spark, catalog, spec, snapshot_retention, retain_last, now)
    # Listed through the table's FileIO (prefix listing), not a Hadoop file system: an s3:// warehouse has no
    # Hadoop file system here (S3FileIO needs none), and a local one lists the same either way.
    orphans = spark.sql(
        f"CALL {call}.remove_orphan_files(table => :table, older_than => :cutoff, prefix_listing => true)",
        args={"table": name, "cutoff": now - orphan_age},
    ).count()
    return MaintenanceResult(
        spec.identifier, before, table_shape(spark, name), rewritten, expired_count, orphans, "; ".join(skipped)
    )


def maintenance_rows(spark: SparkSession, results: list[MaintenanceResult]) -> DataFrame:
    """``ops.maintenance_runs`` rows for one run."""
    run_at = dt.datetime.now()
    rows = [
        (run_at, r.table, *asdict(r.before).values(), *asdict(r.after).values(), r.rewritten_files,
         r.expired_snapshots, r.orphans_removed, r.skipped)
        for r in results
    ]  # fmt: skip
    return spark.createDataFrame(rows, MAINTENANCE_RUNS.schema)
