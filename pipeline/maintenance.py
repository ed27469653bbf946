"""Table maintenance for tables written by the stream: compaction, manifest rewrite, snapshot expiry, orphans.

Safe beside a running stream:

* compaction and manifest rewrites are ordinary Iceberg commits; appends never conflict with them, and a
  conflicting merge (roll-ups) is retried by the stream;
* snapshot expiry never removes the snapshots from the newest stream marker on: the exactly-once bookkeeping
  (stream id + batch id in the snapshot summary) stays readable;
* orphan files are only removed when older than ``orphan_age`` (3 days by default): a file a writer has just
  written but not yet committed is never touched;
* the stream cleans its own metadata as it goes (:class:`StreamHygiene` merges manifests and expires snapshots
  every few minutes), so a step can read a metadata file the stream deletes an instant later, or commit against
  a snapshot the stream has just replaced. Such a step lost a race, not data: it is run again on the table's new
  state (:func:`retrying_races`, :data:`STEP_ATTEMPTS`), and only an error of another kind, or a race lost every
  time, fails the round.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TypeVar

from pyspark import SparkContext
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from pipeline.config import MaintenanceSettings
from pipeline.iceberg_io import append_rows, ensure_table, ensure_tables, table_location
from pipeline.streaming.commit import STREAM_ID_PROPERTY
from pipeline.tables import MAINTENANCE_RUNS, STREAMING_TABLES, TableSpec

log = logging.getLogger(__name__)

T = TypeVar("T")

COMPACTED_FILE_BYTES = MaintenanceSettings().compacted_file_bytes

STEP_ATTEMPTS = 4
"""How often a maintenance step runs before a race it keeps losing fails the round."""

# What a step sees when a file it listed or a snapshot it read was removed or replaced under it: Iceberg's own
# exceptions, Java's and Hadoop's local listing (which shells out to ``ls`` for a file's permissions).
_RACE_SIGNS = (
    "org.apache.iceberg.exceptions.NotFoundException",
    "org.apache.iceberg.exceptions.CommitFailedException",
    "org.apache.iceberg.exceptions.ValidationException",
    "java.io.FileNotFoundException",
    "java.nio.file.NoSuchFileException",
    "No such file or directory",
    "cannot access",
)


def lost_a_race(exc: BaseException) -> bool:
    """Whether ``exc`` says a file or snapshot the step relied on went away or changed under it."""
    text = str(exc)
    return any(sign in text for sign in _RACE_SIGNS)


def retrying_races(
    step: str, table: str, run: Callable[[], T], attempts: int = STEP_ATTEMPTS, backoff_s: float = 0.5
) -> T:
    """``run()``, again (up to ``attempts`` times in all, waiting ``backoff_s`` longer each time) while it loses a
    race with a concurrent writer (:func:`lost_a_race`); any other error, or the last race, is raised."""
    for attempt in range(1, attempts + 1):
        try:
            return run()
        except Exception as exc:
            if attempt == attempts or not lost_a_race(exc):
                raise
            lines = [line.strip() for line in str(exc).splitlines() if any(s in line for s in _RACE_SIGNS)]
            log.info("%s of %s lost a race with a concurrent writer (%s); again", step, table, lines[0][:300])
            time.sleep(backoff_s * attempt)
    raise AssertionError("unreachable")


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


def lower_priority(niceness: int) -> None:
    """Run this process, and the Spark driver it is about to start, at CPU priority ``niceness`` (Unix nice).

    Maintenance shares the machine with the stream: at a lower priority, a micro-batch gets the cores first and
    the round takes longer. A JVM's threads take the priority of the thread that starts them, so this must come
    before Spark starts in this process; when Spark already runs, it says so and changes nothing.
    """
    if SparkContext._active_spark_context is not None:
        log.warning("Spark already runs in this process: maintenance keeps the priority it started with")
        return
    current = os.nice(0)
    if niceness > current:
        os.nice(niceness - current)


def maintain(
    spark: SparkSession,
    catalog: str,
    spec: TableSpec,
    *,
    snapshot_retention: dt.timedelta = dt.timedelta(hours=1),
    retain_last: int = 10,
    orphan_age: dt.timedelta = dt.timedelta(days=3),
    orphans: bool = True,
    compacted_file_bytes: int = COMPACTED_FILE_BYTES,
    now: dt.datetime | None = None,
) -> MaintenanceResult:
    """Compact, rewrite manifests, expire old snapshots (keeping stream markers) and, with ``orphans``, remove
    orphan files older than ``orphan_age``.

    Compaction bin-packs the data files under ``compacted_file_bytes``, in each partition with two or more of them.
    Iceberg's own floor is three quarters of the 512 MB target: every round would rewrite the whole of a day
    still under it, again and again as the day grows. With a low floor, a round rewrites what the stream added
    since the previous round and at most that floor of older data per partition.
    """
    name = spec.qualified(catalog)
    now = now or dt.datetime.now()
    before = retrying_races("reading the shape", name, lambda: table_shape(spark, name))
    call = f"{catalog}.system"
    skipped = []
    rewritten = 0

    def compact() -> int:
        row = spark.sql(
            f"CALL {call}.rewrite_data_files(table => :table, options => map('partial-progress.enabled', 'true',"
            " 'min-input-files', '2', 'min-file-size-bytes', :floor))",
            args={"table": name, "floor": str(compacted_file_bytes)},
        ).first()
        return int(row["rewritten_data_files_count"]) if row is not None else 0

    # Compaction and manifest rewrites only make reads cheaper: one that still fails is left to the next round.
    try:
        rewritten = retrying_races("compaction", name, compact)
    except Exception as exc:
        skipped.append(f"compaction: {type(exc).__name__}")
        log.warning("compaction of %s skipped: %s", name, exc)
    try:
        retrying_races("manifest rewrite", name, lambda: rewrite_manifests(spark, catalog, spec))
    except Exception as exc:
        skipped.append(f"manifests: {type(exc).__name__}")
    expired_count = retrying_races(
        "snapshot expiry", name, lambda: expire_snapshots(spark, catalog, spec, snapshot_retention, retain_last, now)
    )
    removed = (
        retrying_races("orphan removal", name, lambda: remove_orphans(spark, catalog, spec, now - orphan_age))
        if orphans
        else 0
    )
    after = retrying_races("reading the shape", name, lambda: table_shape(spark, name))
    return MaintenanceResult(spec.identifier, before, after, rewritten, expired_count, removed, "; ".join(skipped))


def maintain_tables(
    spark: SparkSession,
    catalog: str,
    snapshot_retention: dt.timedelta,
    *,
    orphans: bool,
    compacted_file_bytes: int = COMPACTED_FILE_BYTES,
    tables: tuple[TableSpec, ...] = STREAMING_TABLES,
    on_table: Callable[[MaintenanceResult], object] | None = None,
) -> list[MaintenanceResult]:
    """One maintenance round over ``tables`` (:func:`maintain`, in order), recorded in ``ops.maintenance_runs``.

    Orphan removal reads every manifest of every snapshot a table keeps, to know which files are live: the most
    expensive step, and the one with the least to do (a file only becomes an orphan when a writer fails between
    writing and committing it). The scheduled job runs it once a day and the other steps hourly. ``on_table`` is
    called with each table's result as it is done (progress).
    """
    ensure_tables(spark, catalog, tables)
    results = []
    for spec in tables:
        results.append(
            maintain(
                spark,
                catalog,
                spec,
                snapshot_retention=snapshot_retention,
                orphans=orphans,
                compacted_file_bytes=compacted_file_bytes,
            )
        )
        log.info("maintained %s", spec.identifier)
        if on_table is not None:
            on_table(results[-1])
    ensure_table(spark, catalog, MAINTENANCE_RUNS)
    append_rows(maintenance_rows(spark, results), catalog, MAINTENANCE_RUNS)
    return results


def remove_orphans(spark: SparkSession, catalog: str, spec: TableSpec, older_than: dt.datetime) -> int:
    """Delete the files under the table's location that no snapshot references and that are older than
    ``older_than``; returns how many went.

    An object-store warehouse (``s3://``: no Hadoop file system here) is listed through the table's FileIO (prefix
    listing). A local one is listed by Hadoop's local file system, one folder at a time (``listStatus``), which
    reads each file's size and time from Java and nothing else: a prefix listing of a local folder builds each
    file's full status, permissions included, by running ``ls`` (or, after ``useStatIfAvailable``, ``stat``) once
    per file. Beside a stream that deletes a metadata file at every commit, that ``ls`` failed every listing; and
    one process started per file made a round over ten streaming tables take longer than ten minutes.
    """
    local = table_location(spark, catalog, spec).startswith(("file:", "/"))
    listing = "" if local else ", prefix_listing => true"
    return spark.sql(
        f"CALL {catalog}.system.remove_orphan_files(table => :table, older_than => :cutoff{listing})",
        args={"table": spec.qualified(catalog), "cutoff": older_than},
    ).count()


def maintenance_rows(spark: SparkSession, results: list[MaintenanceResult]) -> DataFrame:
    """``ops.maintenance_runs`` rows for one run."""
    run_at = dt.datetime.now()
    rows = [
        (run_at, r.table, *asdict(r.before).values(), *asdict(r.after).values(), r.rewritten_files,
         r.expired_snapshots, r.orphans_removed, r.skipped)
        for r in results
    ]  # fmt: skip
    return spark.createDataFrame(rows, MAINTENANCE_RUNS.schema)
