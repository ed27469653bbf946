"""The micro-batch sink: the only place of the stream with side effects.

Each micro-batch arrives validated (the contract's rules are part of the streaming query, planned once when it
starts). The sink then does one pass:

1. **materialize** the batch once (stamped with batch id, ingest time and the late flag) and bring its narrow
   columns (ids, times, coordinates, verdicts) to the driver as Arrow: one Spark job;
2. **decide** duplicates in the driver against the committed event ids (:mod:`pipeline.streaming.dedup`), and
   count everything the batch report needs from the same Arrow columns;
3. **commit** bronze, the silver table of each event type present and quarantine (if anything was rejected),
   all at once, each an Iceberg append that is once-only per batch id (:class:`BatchCommitter`).

The roll-ups are folded from silver in the background (:mod:`pipeline.streaming.fold`) and ``ops.stream_batches``
gets the batch's row while the next batch runs: neither is on the path from Kafka to silver.

Exactly once: what a batch writes is a deterministic function of its records and of silver as it was before the
batch (the committed event ids), so a batch replayed after a crash writes exactly what the first attempt wrote,
wherever that attempt stopped, and the committer skips the tables that already hold it. The argument in full is
in ``docs/streaming.md``.

Every commit's snapshot summary carries the stream id, batch id, ingest time, the watermark used, the newest
event time seen so far and the Kafka timestamps covered: the Iceberg snapshot that made an event visible says
when it did, and the stream's state is recovered from the tables themselves after a restart.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from pipeline.contracts.events import EventType
from pipeline.iceberg_io import (
    INGEST_TIME_PROPERTY,
    KAFKA_TS_MAX_PROPERTY,
    KAFKA_TS_MIN_PROPERTY,
    MAX_EVENT_TIME_PROPERTY,
    WATERMARK_PROPERTY,
    BatchCommitter,
    StreamCommit,
    current_snapshot_id,
    days_with_rows,
    has_snapshot,
    holds_rows_since,
    read_table,
    stream_commits,
)
from pipeline.maintenance import StreamHygiene
from pipeline.spark_session import in_background_pool
from pipeline.streaming.bronze import with_ingest
from pipeline.streaming.checkpoint import has_query_metadata, query_id
from pipeline.streaming.dedup import (
    NARROW_COLUMNS,
    Coordinates,
    EventIdCache,
    committed_rows,
    coordinates_of,
    decide,
    needs_cold_lookup,
)
from pipeline.streaming.fold import RollupFolder
from pipeline.streaming.silver import (
    DUPLICATE_RULE,
    FAILED_RULES,
    to_quarantine,
    to_silver,
    with_duplicates,
    with_late_flag,
)
from pipeline.tables import BRONZE_EVENTS, QUARANTINE_EVENTS, SILVER, STREAM_BATCHES, TableSpec

log = logging.getLogger(__name__)

# Times inside the sink are timezone-aware UTC, as Arrow hands them over; Spark converts them on the way in.
EPOCH = dt.datetime.fromtimestamp(0, dt.UTC)
_COORDINATES = ["kafka_topic", "kafka_partition", "kafka_offset"]
_COORDINATES_SCHEMA = "kafka_topic string, kafka_partition int, kafka_offset long"
_TICK = dt.timedelta(milliseconds=1)
_SILVER_BY_ID = {spec.identifier: spec for spec in SILVER.values()}
# The hot tier's columns when silver holds nothing to load.
_NO_IDS = pa.schema(
    [
        ("event_id", pa.string()),
        ("event_time", pa.timestamp("us", "UTC")),
        ("kafka_topic", pa.string()),
        ("kafka_partition", pa.int32()),
        ("kafka_offset", pa.int64()),
    ]
).empty_table()


def _iso(value: dt.datetime | None) -> str:
    """A datetime (aware, or naive local as PySpark returns them) as an unambiguous UTC ISO string."""
    return value.astimezone(dt.UTC).isoformat() if value else ""


def _from_iso(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value).astimezone(dt.UTC)


@dataclass
class BatchReport:
    """What one micro-batch did; logged, passed to callbacks and written to ``ops.stream_batches``."""

    batch_id: int
    records: int = 0
    silver_rows: dict[str, int] = field(default_factory=dict)
    quarantined: int = 0
    duplicates: int = 0
    late: int = 0
    late_dates: list[dt.date] = field(default_factory=list)  # event days that received late events
    kafka_ts_min: dt.datetime | None = None
    kafka_ts_max: dt.datetime | None = None
    watermark: dt.datetime | None = None
    max_event_time: dt.datetime | None = None
    started_at: float = 0.0
    committed_at: float = 0.0
    # seconds spent materializing (Kafka read, validation, the narrow columns to the driver), looking committed
    # ids up in silver (loading the hot tier, cold lookups), deduplicating, planning the writes, committing
    phases: dict[str, float] = field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        return self.committed_at - self.started_at

    @property
    def lag_s(self) -> float | None:
        """Seconds from the oldest record's Kafka timestamp to the batch's last commit."""
        if self.kafka_ts_min is None:
            return None
        return self.committed_at - self.kafka_ts_min.timestamp()


def _in_thread(work: Callable[[], None], name: str) -> Future[None]:
    """Run ``work`` in a daemon thread of its own (a process may exit before it ends); its outcome as a future."""
    outcome: Future[None] = Future()

    def run() -> None:
        try:
            work()
        except BaseException as error:  # handed to whoever waits for the outcome
            outcome.set_exception(error)
        else:
            outcome.set_result(None)

    threading.Thread(target=run, name=name, daemon=True).start()
    return outcome


def _marked(narrow: pa.Table, coordinates: set[Coordinates]) -> pa.Array:
    """Per record of the batch: are its Kafka coordinates among ``coordinates``? (Usually none are.)"""
    if not coordinates:
        return pa.repeat(pa.scalar(False), narrow.num_rows)
    return pa.array([record in coordinates for record in coordinates_of(narrow)], pa.bool_())


def _newest_ingest(commits: list[StreamCommit]) -> dt.datetime | None:
    return max((_from_iso(c.ingest_time) for c in commits if c.ingest_time), default=None)


def _summarize(narrow: pa.Table, is_duplicate: pa.Array, report: BatchReport) -> dict[str, int]:
    """Fill the report's counts from the batch's narrow columns; returns silver rows per event type."""
    is_valid = narrow.column("is_valid")
    unique = pc.and_(is_valid, pc.invert(is_duplicate))
    late = pc.and_(unique, narrow.column("is_late"))
    report.records = narrow.num_rows
    report.duplicates = pc.sum(is_duplicate).as_py() or 0
    report.late = pc.sum(late).as_py() or 0
    report.quarantined = report.records - (pc.sum(unique).as_py() or 0)
    report.kafka_ts_min = pc.min(narrow.column("kafka_timestamp")).as_py()
    report.kafka_ts_max = pc.max(narrow.column("kafka_timestamp")).as_py()
    report.late_dates = sorted(set(pc.filter(narrow.column("event_date"), late).to_pylist()))
    types = pc.filter(narrow.column("_event_type"), unique).to_pylist()
    return {event_type.value: types.count(event_type.value) for event_type in EventType}


@dataclass
class MicroBatchSink:
    """``foreachBatch`` target: validated Kafka records -> bronze, silver, quarantine; roll-ups folded later."""

    catalog: str
    checkpoint_location: str
    late_after: dt.timedelta
    rollup_lookback: dt.timedelta = dt.timedelta(days=7)
    dedup_horizon: dt.timedelta = dt.timedelta(minutes=30)
    dedup_max_ids: int = 2_000_000  # ids older than the horizon stay in memory up to this many
    fold_interval_s: float = 30.0  # stream.rollup_fold_seconds
    fold_backlog_s: float = 300.0  # the longest a fold waits while the stream is behind
    on_batch: list = field(default_factory=list)  # callbacks receiving each BatchReport
    spark: SparkSession | None = None  # folds on flush() even if no batch ran in this process
    hygiene: StreamHygiene | None = None  # run in the background after a fold, when due

    def __post_init__(self) -> None:
        self._committer: BatchCommitter | None = None
        self._max_event_time: dt.datetime | None = None
        self._last_ingest: dt.datetime | None = None  # of the newest batch written by any run, recovered on start
        self._completed_ingest: dt.datetime | None = None  # of the newest batch this run completed
        self._ids = EventIdCache(self.dedup_horizon, self.dedup_max_ids)
        # Each silver table's snapshot before this run's first commit (None: never written): while the hot tier
        # holds every id this run committed, a cold lookup needs nothing newer.
        self._silver_before_run: dict[str, int | None] | None = None
        self._folder = RollupFolder(self.catalog, self.rollup_lookback)
        self._last_fold = time.monotonic()
        self._spark: SparkSession | None = None
        self._recovered: list[tuple[int, str]] | None = None  # (batch id, newest event time) of each commit
        self._ops_writer: threading.Thread | None = None
        self._ops_error: BaseException | None = None
        self._ids_loading: Future[None] | None = None  # the hot tier, loading while the query starts

    # -- state recovered on the first batch after a (re)start -------------------------------------------------

    def recover(self, spark: SparkSession) -> None:
        """Recover the stream's state from the tables before its first batch runs (a restart).

        Doing it here rather than in the first batch keeps that batch as fast as the ones after it: the events
        waiting in Kafka meet a stream that is ready. The batch markers are read now; the hot tier's committed
        ids are loaded in a thread of their own while the Kafka source and the query start, and the first batch
        waits for them before it decides a duplicate (a failed load fails that batch, which writes nothing). A
        stream that never ran has nothing to recover; its first batch then starts from empty state.
        """
        if self._committer is None and has_query_metadata(spark, self.checkpoint_location):
            self._recover(spark)
            since = self._ids_horizon(None)
            if since is not None:
                self._ids_loading = _in_thread(functools.partial(self._load_ids, spark, since), "dedup-hot-tier")

    def _recover(self, spark: SparkSession) -> BatchCommitter:
        stream_id = query_id(spark, self.checkpoint_location)
        committer = BatchCommitter(spark, self.catalog, stream_id)
        recovered = (BRONZE_EVENTS, *SILVER.values(), QUARANTINE_EVENTS)
        commits = stream_commits(spark, self.catalog, recovered)
        ours = [(c.batch_id, c) for c in commits if c.stream_id == stream_id and c.batch_id is not None]
        last = {spec.identifier: -1 for spec in recovered}
        for batch, commit in ours:
            last[commit.table] = max(last[commit.table], batch)
        committer.prime(last)
        self._silver_before_run = {
            spec.identifier: current_snapshot_id(spark, self.catalog, spec) for spec in SILVER.values()
        }
        self._recovered = [(batch, c.max_event_time) for batch, c in ours if c.max_event_time]
        # Ingest times grow strictly from batch to batch, also across restarts (the roll-ups fold by them):
        # the newest one any table holds, including a table a killed attempt of the next batch reached.
        self._last_ingest = _newest_ingest(commits)
        # Every silver row ingested so far is committed, whole batch or not: the roll-ups may fold it.
        self._completed_ingest = self._last_ingest
        self._spark = spark
        self._committer = committer
        return committer

    def _start(self, spark: SparkSession, batch_id: int) -> BatchCommitter:
        committer = self._committer or self._recover(spark)
        if self._recovered is not None:
            # The watermark of a replayed batch must be the one its first attempt used: from earlier batches only.
            earlier = [(batch, event_time) for batch, event_time in self._recovered if batch < batch_id]
            newest = max(earlier)[1] if earlier else None
            self._max_event_time = _from_iso(newest) if newest else None
            self._recovered = None
            log.info("stream %s resumes at batch %d (newest event time %s)", committer.stream_id, batch_id, newest)
        return committer

    def watermark(self) -> dt.datetime:
        """Events older than this are late: the newest event time seen before this batch, minus the allowance."""
        if self._max_event_time is None:
            return EPOCH
        return self._max_event_time - self.late_after

    def _next_ingest_time(self, now: float) -> dt.datetime:
        ingest = dt.datetime.fromtimestamp(now, dt.UTC)
        if self._last_ingest is not None and ingest <= self._last_ingest:
            ingest = self._last_ingest + _TICK
        self._last_ingest = ingest
        return ingest

    # -- the batch ---------------------------------------------------------------------------------------------

    def __call__(self, validated_df: DataFrame, batch_id: int) -> None:
        started = time.time()
        spark = validated_df.sparkSession
        committer = self._start(spark, batch_id)
        self._raise_background_errors()
        report = BatchReport(batch_id=batch_id, started_at=started, watermark=self.watermark())
        ingest_time = self._next_ingest_time(started)

        # 1. Materialize once: the Kafka read and validation run in one job, which also brings the narrow columns
        # to the driver (the checkpoint is lazy: that job fills it); every later job reads the checkpoint.
        batch = with_late_flag(
            with_ingest(validated_df, F.lit(batch_id), F.lit(ingest_time)),
            F.lit(report.watermark),
        ).localCheckpoint(eager=False)
        narrow = batch.select(
            *NARROW_COLUMNS,
            "event_date",
            "_event_type",
            "is_late",
            (F.size(F.col(FAILED_RULES)) == 0).alias("is_valid"),
        ).toArrow()
        mark = self._phase(report, "materialize", started)
        if narrow.num_rows == 0:
            return

        # 2. Duplicates, decided in the driver against the committed event ids.
        valid = narrow.filter(narrow.column("is_valid"))
        self._ensure_ids_loaded(spark, valid)
        cold = self._cold_lookup(spark, needs_cold_lookup(valid, self._ids))
        mark = self._phase(report, "lookup", mark)  # Spark jobs only when the hot tier is loaded or falls short
        verdicts = decide(valid, self._ids, cold)
        duplicates = verdicts.duplicate_coordinates(valid)
        is_duplicate = _marked(narrow, set(duplicates))
        per_type = _summarize(narrow, is_duplicate, report)
        mark = self._phase(report, "deduplicate", mark)

        # 3. Every table from the one materialized batch. The frames are built in the commit threads too: their
        # plans cost py4j round trips, which overlap there.
        # From Arrow, the frame lives in the JVM: a frame from a Python list would start Python workers in every
        # write job that joins it.
        duplicates_df = (
            spark.createDataFrame(narrow.filter(is_duplicate).select(_COORDINATES), _COORDINATES_SCHEMA)
            if duplicates
            else None
        )
        flagged = with_duplicates(batch, duplicates_df)
        unique_valid = (F.size(F.col(FAILED_RULES)) == 0) & ~F.col("is_duplicate")
        writes: list[tuple[Callable[[], DataFrame], TableSpec]] = [(lambda: batch, BRONZE_EVENTS)]
        for event_type in EventType:
            rows = per_type[event_type.value]
            report.silver_rows[SILVER[event_type].identifier] = rows
            if rows:
                silver = functools.partial(to_silver, flagged.filter(unique_valid), event_type)
                writes.append((silver, SILVER[event_type]))
        if report.quarantined:
            reasons = F.when(F.col("is_duplicate"), F.array(F.lit(DUPLICATE_RULE))).otherwise(F.col(FAILED_RULES))
            rejected = functools.partial(to_quarantine, flagged.filter(~unique_valid).withColumn(FAILED_RULES, reasons))
            writes.append((rejected, QUARANTINE_EVENTS))
        committed = committed_rows(valid, verdicts)
        newest = pc.max(committed.column("event_time")).as_py() if committed.num_rows else None
        report.max_event_time = max((t for t in (newest, self._max_event_time) if t is not None), default=None)
        properties = {
            INGEST_TIME_PROPERTY: _iso(ingest_time),
            WATERMARK_PROPERTY: _iso(report.watermark),
            MAX_EVENT_TIME_PROPERTY: _iso(report.max_event_time),
            KAFKA_TS_MIN_PROPERTY: _iso(report.kafka_ts_min),
            KAFKA_TS_MAX_PROPERTY: _iso(report.kafka_ts_max),
        }
        tasks: list[Callable[[], object]] = [
            functools.partial(committer.append_built, build, spec, batch_id, properties) for build, spec in writes
        ]
        commit_started = self._phase(report, "plan", mark)
        self._run_all(tasks)
        report.committed_at = time.time()
        report.phases["commit"] = report.committed_at - commit_started

        # Committed: the batch's ids are known from now on; state moves on. The horizon moves first, so that the
        # ids it already leaves behind (most of a catch-up batch) are never added.
        self._max_event_time = report.max_event_time
        if self._max_event_time is not None:
            self._ids.advance(self._max_event_time)
        self._ids.add(committed)
        self._completed_ingest = ingest_time
        batch.unpersist()
        self._record_later(spark, committer, report)
        if self.fold_due(report):
            hygiene = self.hygiene.run if self.hygiene is not None and self.hygiene.due() else None
            if self._folder.fold_later(spark, ingest_time, then=hygiene):
                self._last_fold = time.monotonic()
        for callback in self.on_batch:
            callback(report)

    def fold_due(self, report: BatchReport) -> bool:
        """Every ``fold_interval_s``; while the stream is behind, every ``fold_backlog_s``.

        Behind: the batch's oldest record waited in Kafka longer than a fold interval before the batch started.
        A fold then competes with the next batches for the same cores, and every fold's merges read the roll-up
        tables again; once the stream has caught up, one fold covers the whole backlog.
        """
        assert report.kafka_ts_min is not None  # the batch has records
        behind = report.started_at - report.kafka_ts_min.timestamp() > self.fold_interval_s
        return time.monotonic() - self._last_fold >= (self.fold_backlog_s if behind else self.fold_interval_s)

    @staticmethod
    def _phase(report: BatchReport, name: str, since: float) -> float:
        """Record the seconds since ``since`` as phase ``name``; returns now."""
        now = time.time()
        report.phases[name] = now - since
        return now

    @staticmethod
    def _run_all(tasks: list[Callable[[], object]]) -> None:
        """Run every commit at once: each table is its own Iceberg commit, none needs to wait for another."""
        with ThreadPoolExecutor(max_workers=len(tasks), thread_name_prefix="commit") as pool:
            for future in [pool.submit(task) for task in tasks]:
                future.result()

    # -- committed event ids -----------------------------------------------------------------------------------

    def _silver_ids(
        self, spark: SparkSession, specs: list[TableSpec], snapshots: dict[str, int | None] | None = None
    ) -> DataFrame:
        """(event_id, event_time, event_date, coordinates) of every row of the silver tables ``specs``, each as of
        its snapshot in ``snapshots`` (None: the current one)."""
        frames = [
            read_table(spark, self.catalog, spec, (snapshots or {}).get(spec.identifier)).select(
                "event_id", "event_time", "event_date", *_COORDINATES
            )
            for spec in specs
        ]
        return functools.reduce(DataFrame.unionByName, frames)

    def _lookup_snapshots(self, spark: SparkSession) -> dict[str, int | None] | None:
        """The silver snapshots a cold lookup must read: those before this run while the hot tier holds every id
        this run committed (and they are not expired), else None: the current ones."""
        before = self._silver_before_run
        if before is None or not self._ids.holds_every_added_id:
            return None
        if any(
            snapshot is not None and not has_snapshot(spark, self.catalog, _SILVER_BY_ID[name], snapshot)
            for name, snapshot in before.items()
        ):
            self._silver_before_run = None  # expired by the stream's hygiene: from now on, the current ones
            return None
        return before

    def _ensure_ids_loaded(self, spark: SparkSession, valid: pa.Table) -> None:
        """On the first batch of a run: the hot tier's committed ids, loaded since :meth:`recover` or now."""
        if self._ids_loading is not None:
            loading, self._ids_loading = self._ids_loading, None
            loading.result()  # raises what the load raised
        if self._ids.covers_since is None:
            since = self._ids_horizon(pc.max(valid.column("event_time")).as_py() if valid.num_rows else None)
            if since is not None:
                self._load_ids(spark, since)

    def _ids_horizon(self, batch_newest: dt.datetime | None) -> dt.datetime | None:
        """Where the hot tier starts: its horizon counted back from the newest event time known (recovered from
        the tables, or the first batch's own); None while nothing valid was seen (the next batch decides)."""
        recovered = max((_from_iso(t) for _, t in self._recovered or ()), default=None)
        anchor = max((t for t in (batch_newest, recovered, self._max_event_time) if t is not None), default=None)
        return None if anchor is None else (anchor - self.dedup_horizon).replace(second=0, microsecond=0)

    def _load_ids(self, spark: SparkSession, since: dt.datetime) -> None:
        """Load the committed ids of silver's rows since ``since`` into the hot tier.

        Only the silver tables whose metadata plans a data file with rows from ``since``'s day on are read: on a
        fresh lake, or one the stream has not reached the day of, that is none, and no Spark job runs."""
        specs = [spec for spec in SILVER.values() if holds_rows_since(spark, self.catalog, spec, since.date())]
        rows = (
            self._silver_ids(spark, specs)
            .filter((F.col("event_date") >= F.lit(since.date())) & (F.col("event_time") >= F.lit(since)))
            .select("event_id", "event_time", *_COORDINATES)
            .toArrow()
            if specs
            else _NO_IDS
        )
        self._ids.load(rows, since)
        log.info("%d committed event ids since %s loaded for deduplication", len(self._ids), since)

    def _cold_lookup(self, spark: SparkSession, wanted: pa.Table) -> dict[str, Coordinates]:
        """Committed coordinates of event ids older than the hot tier (``wanted``: :func:`needs_cold_lookup`),
        looked up in silver: in the tables and days whose metadata plans data files with rows (none on a fresh
        lake: then no Spark job runs)."""
        if wanted.num_rows == 0:
            return {}
        days = set(pc.unique(wanted.column("event_date")).to_pylist())
        snapshots = self._lookup_snapshots(spark)
        held = {
            spec.identifier: (
                set()
                if snapshots is not None and snapshots[spec.identifier] is None  # no rows before this run
                else days_with_rows(
                    spark, self.catalog, spec, min(days), max(days), (snapshots or {}).get(spec.identifier)
                )
                & days
            )
            for spec in SILVER.values()
        }
        specs = [spec for spec in SILVER.values() if held[spec.identifier]]
        held_days = sorted(set().union(*held.values()))
        log.info(
            "%d deliveries older than the dedup horizon looked up in silver %s (%d days, %d of them with rows)",
            wanted.num_rows,
            "as it was before this run" if snapshots is not None else "as it is now",
            len(days),
            len(held_days),
        )
        if not specs:
            return {}
        # In and out as Arrow: a frame from a Python list would start Python workers in the lookup's job, and a
        # catch-up's first batch can ask for hundreds of thousands of ids.
        in_held_days = pc.is_in(wanted.column("event_date"), pa.array(held_days, pa.date32()))
        ids = spark.createDataFrame(
            pa.table({"event_id": pc.unique(wanted.filter(in_held_days).column("event_id")).cast(pa.string())})
        )
        rows = (
            self._silver_ids(spark, specs, snapshots)
            .filter(F.col("event_date").isin(*held_days))
            .join(F.broadcast(ids), on="event_id", how="left_semi")
            .select("event_id", *_COORDINATES)
            .toArrow()
        )
        return dict(zip(rows.column("event_id").to_pylist(), coordinates_of(rows), strict=True))

    # -- roll-ups and ops.stream_batches: while the next batch runs --------------------------------------------

    def _record_later(self, spark: SparkSession, committer: BatchCommitter, report: BatchReport) -> None:
        self.wait_ops()
        values = (
            committer.stream_id,
            report.batch_id,
            dt.datetime.fromtimestamp(report.started_at, dt.UTC),
            dt.datetime.fromtimestamp(report.committed_at, dt.UTC),
            report.records,
            report.kafka_ts_min,
            report.kafka_ts_max,
            report.watermark,
            report.max_event_time,
            sum(report.silver_rows.values()),
            report.quarantined,
            report.duplicates,
            report.late,
            report.late_dates,
        )
        # One Arrow row (a frame from a Python list would start Python workers for its write job).
        row = pa.Table.from_pylist([dict(zip(STREAM_BATCHES.schema.fieldNames(), values, strict=True))])

        def write() -> None:
            try:
                in_background_pool(spark)
                committer.append(spark.createDataFrame(row, STREAM_BATCHES.schema), STREAM_BATCHES, report.batch_id)
            except BaseException as exc:  # surfaced by the next batch or flush()
                self._ops_error = exc

        self._ops_writer = threading.Thread(target=write, name=f"ops-batch-{report.batch_id}", daemon=True)
        self._ops_writer.start()
        log.info(
            "batch %d: %d records, %d silver, %d quarantined (%d duplicates, %d late), %.2fs, lag %.2fs",
            report.batch_id,
            report.records,
            sum(report.silver_rows.values()),
            report.quarantined,
            report.duplicates,
            report.late,
            report.duration_s,
            report.lag_s or 0.0,
        )

    def wait_ops(self) -> None:
        """Wait for the last batch's ``ops.stream_batches`` row, written in the background; raises if writing it
        or a fold failed."""
        if self._ops_writer is not None:
            self._ops_writer.join()
            self._ops_writer = None
        self._raise_background_errors()

    def _raise_background_errors(self) -> None:
        if self._ops_error is not None:
            error, self._ops_error = self._ops_error, None
            raise RuntimeError("writing ops.stream_batches failed") from error
        self._folder.raise_error()

    def flush(self) -> None:
        """Wait for the pending background writes and fold silver into the roll-ups up to the newest batch.

        Raises if any of them failed. A process that ran no batch (a restart with nothing new in Kafka) still
        folds what earlier runs committed and never folded.
        """
        self.wait_ops()
        self._folder.wait()
        spark = self._spark or self.spark
        if spark is None:
            return
        through = self._completed_ingest
        if self._spark is None:
            through = _newest_ingest(stream_commits(spark, self.catalog, (BRONZE_EVENTS, *SILVER.values())))
        if through is not None:
            self._folder.fold(spark, through)
            self._last_fold = time.monotonic()
