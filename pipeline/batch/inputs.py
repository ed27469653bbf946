"""The inputs of one gold run: one way in, one snapshot of each table.

A gold run builds the days ``first`` .. ``last``: one daily partition, or a backfill's range in one pass.
:class:`GoldRun` is the one way its assets and checks get their frames:

- each silver table is read as of one snapshot for the whole run (its current one when the run first asks for
  it), for the rows dated on the run's days or reaching Kafka on them (the second set is what
  ``gold.data_quality`` accounts for): every asset and the silver contract check compute from that read, so a
  stream committing meanwhile never makes two steps of a run see two different silvers;
- the lifetime state of the nearest built day before the run, and the silver days of a gap before the run when
  that state is older than the day before it;
- bronze and the quarantine, for the records that reached Kafka on the run's days;
- the run's days of the gold tables it wrote, for the checks and the assets that build on them.

The run also sizes the session's shuffles from the bytes of silver it reads (``batch_shuffle_conf``).
:meth:`GoldRun.release` puts the session's settings back when the run ends. Frames are not cached: on two cores
caching a day of page views (730,000 rows) took 4.3 s and saved 0.3 s per later scan, which reads only the
columns a step needs (``docs/benchmarks/log/2026-12-06-gold-one-way-in-and-comet.md``). Every read filters on a
partition column; dates are bound as literals in DataFrame filters, never formatted into SQL text.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from pipeline.config import ConfigurationError
from pipeline.contracts.events import EventType, topic_name
from pipeline.iceberg_io import current_snapshot_id, days_with_rows, planned_bytes, read_day, read_days, read_table
from pipeline.observability import with_latency
from pipeline.products import product_versions
from pipeline.spark_session import batch_shuffle_conf
from pipeline.tables import (
    BRONZE_EVENTS,
    GOLD_CUSTOMER_LIFETIME,
    KAFKA_COORDINATES,
    QUARANTINE_EVENTS,
    SILVER,
    STREAM_BATCHES,
    TableSpec,
)

log = logging.getLogger(__name__)

# Event types that carry a user: a user is active on a day with one of these events.
USER_EVENT_TYPES = tuple(e for e in EventType if e is not EventType.PRODUCT_UPDATE)


def run_days(first: dt.date, last: dt.date) -> list[dt.date]:
    """The days ``first`` .. ``last`` a run builds, in order."""
    if last < first:
        raise ConfigurationError(f"the range ends ({last}) before it starts ({first})")
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


def latest_state_day(spark: SparkSession, catalog: str, before: dt.date) -> dt.date | None:
    """The latest day before ``before`` whose lifetime state is built, from the data files the table's metadata
    plans for the days before it (no data file read, no Spark job); None when there is none."""
    if not spark.catalog.tableExists(GOLD_CUSTOMER_LIFETIME.qualified(catalog)):
        return None
    built = days_with_rows(spark, catalog, GOLD_CUSTOMER_LIFETIME, dt.date.min, before - dt.timedelta(days=1))
    return max(built, default=None)


def kafka_days(first: dt.date, last: dt.date, column: str = "kafka_timestamp") -> Column:
    """``column`` falls on the UTC days ``first`` .. ``last``: a half-open timestamp range, which Iceberg prunes
    on a ``days(column)`` partition (``to_date(column)`` would not prune)."""
    start = F.lit(first).cast("timestamp")  # midnight in the session time zone, UTC (pipeline.spark_session)
    end = F.lit(last + dt.timedelta(days=1)).cast("timestamp")
    return (F.col(column) >= start) & (F.col(column) < end)


@dataclass(frozen=True)
class LifetimeInputs:
    """What the lifetime state of the run's days is computed from (``pipeline.batch.gold.customer_lifetime``).

    ``previous_df`` is the state as of ``state_day`` (empty when no earlier state is built); the event frames
    hold every day after ``state_day`` up to the run's last: the run's days, plus the days of a gap before them.
    """

    state_day: dt.date | None
    previous_df: DataFrame
    purchases_df: DataFrame
    activity_df: DataFrame


@dataclass(frozen=True)
class DataQualityInputs:
    """The frames ``gold.data_quality`` is computed from (see ``pipeline.batch.gold.data_quality``)."""

    silver_df: DataFrame
    quarantine_df: DataFrame
    bronze_df: DataFrame
    landed_df: DataFrame
    table_of_topic: dict[str, str]


@dataclass
class GoldRun:
    """The frames one gold run computes from, each defined on first use and the same for the rest of the run."""

    spark: SparkSession
    catalog: str
    topic_prefix: str
    first: dt.date
    last: dt.date
    days: list[dt.date] = field(init=False)
    input_bytes: int = field(init=False, default=0)  # of the silver days it reads, as their manifests plan them
    _frames: dict[str, DataFrame] = field(default_factory=dict, init=False, repr=False)
    _replaced_conf: dict[str, str | None] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self.days = run_days(self.first, self.last)
        self._size_shuffles()

    def _size_shuffles(self) -> None:
        """Set the session's shuffle settings from the size of the silver days the run reads (from the tables'
        manifests) and the cores (``pipeline.spark_session.batch_shuffle_conf``) until :meth:`release`."""
        self.input_bytes = sum(
            planned_bytes(self.spark, self.catalog, spec, self.first, self.last)
            for spec in SILVER.values()
            if self.spark.catalog.tableExists(spec.qualified(self.catalog))
        )
        conf = batch_shuffle_conf(self.input_bytes, self.spark.sparkContext.defaultParallelism)
        for key, value in conf.items():
            self._replaced_conf[key] = self.spark.conf.get(key, None)
            self.spark.conf.set(key, value)

    def _once(self, name: str, read: Callable[[], DataFrame]) -> DataFrame:
        if name not in self._frames:
            log.info("%s read for the run of %s .. %s", name, self.first, self.last)
            self._frames[name] = read()
        return self._frames[name]

    def release(self) -> None:
        """Forget the run's frames and put the session's shuffle settings back."""
        self._frames.clear()
        for key, value in self._replaced_conf.items():
            if value is None:
                self.spark.conf.unset(key)
            else:
                self.spark.conf.set(key, value)
        self._replaced_conf.clear()

    @property
    def _arrived(self) -> Column:
        return kafka_days(self.first, self.last)

    @property
    def _dated(self) -> Column:
        return F.col("event_date").between(F.lit(self.first), F.lit(self.last))

    def _silver_read(self, event_type: EventType) -> DataFrame:
        """The one read of a silver table: rows dated on the run's days, or reaching Kafka on them, as of the
        table's snapshot when first asked (a stream committing meanwhile changes nothing the run sees). Product
        updates are read whole: a day's product versions start with updates of any earlier day."""
        spec = SILVER[event_type]

        def read() -> DataFrame:
            snapshot = current_snapshot_id(self.spark, self.catalog, spec)
            rows = read_table(self.spark, self.catalog, spec, snapshot)
            return rows if event_type is EventType.PRODUCT_UPDATE else rows.filter(self._dated | self._arrived)

        return self._once(spec.identifier, read)

    def silver(self, event_type: EventType) -> DataFrame:
        """Silver rows of ``event_type`` dated on the run's days."""
        return self._silver_read(event_type).filter(self._dated)

    def product_versions(self) -> DataFrame:
        """Every version of every product (``silver.products``), from the run's one read of the product updates
        (all of them: a day's versions start with updates of earlier days). The ``silver/products`` asset of the
        run writes these rows, so the table and the run's gold agree."""
        return product_versions(self._silver_read(EventType.PRODUCT_UPDATE))

    def stream_batches(self) -> DataFrame:
        """Every ``ops.stream_batches`` row (one per micro-batch: when it became visible); none on a lake no stream
        has written."""

        def read() -> DataFrame:
            if not self.spark.catalog.tableExists(STREAM_BATCHES.qualified(self.catalog)):
                return self.spark.createDataFrame([], STREAM_BATCHES.schema)
            return read_table(self.spark, self.catalog, STREAM_BATCHES)

        return self._once(STREAM_BATCHES.identifier, read)

    def gold(self, spec: TableSpec) -> DataFrame:
        """The run's days of a gold table the run has written."""
        return self._once(spec.identifier, lambda: read_days(self.spark, self.catalog, spec, self.first, self.last))

    def lifetime(self) -> LifetimeInputs:
        """The state of the nearest built day before the run (the day before, unless that was never built) and
        the events after it: the run's days, and a gap's days read for this alone."""
        state_day = latest_state_day(self.spark, self.catalog, self.first)
        if state_day is None:
            previous = self.spark.createDataFrame([], GOLD_CUSTOMER_LIFETIME.schema)
        else:
            previous = read_day(self.spark, self.catalog, GOLD_CUSTOMER_LIFETIME, state_day)

        def events(event_type: EventType) -> DataFrame:
            rows = self.silver(event_type)
            if state_day == self.first - dt.timedelta(days=1):
                return rows
            gap = read_table(self.spark, self.catalog, SILVER[event_type]).filter(
                F.col("event_date") < F.lit(self.first)
            )
            if state_day is not None:
                gap = gap.filter(F.col("event_date") > F.lit(state_day))
            return rows.unionByName(gap)

        activity = functools.reduce(
            DataFrame.unionByName, [events(e).select("user_id", "event_date") for e in USER_EVENT_TYPES]
        )
        return LifetimeInputs(state_day, previous, events(EventType.PURCHASE), activity)

    def data_quality(self) -> DataQualityInputs:
        """Silver rows dated on the run's days; quarantined records dated on them, or undated and reaching Kafka
        on them; the bronze records that reached Kafka on them and where they landed (silver or quarantine)."""
        silver = functools.reduce(
            DataFrame.unionByName,
            [
                with_latency(
                    self.silver(e).select("event_date", "batch_id", "ingest_time", "kafka_timestamp", "is_late"),
                    self.stream_batches(),
                ).select(F.lit(spec.name).alias("table_name"), "event_date", "is_late", "latency_s")
                for e, spec in SILVER.items()
            ],
        )
        quarantine = self._once(
            QUARANTINE_EVENTS.identifier,
            lambda: read_table(self.spark, self.catalog, QUARANTINE_EVENTS).filter(self._dated | self._arrived),
        )
        bronze = (
            read_table(self.spark, self.catalog, BRONZE_EVENTS)
            .filter(self._arrived)
            .select(*KAFKA_COORDINATES, "kafka_timestamp", "ingest_time")
        )
        landed = functools.reduce(
            DataFrame.unionByName,
            [self._silver_read(e).filter(self._arrived).select(*KAFKA_COORDINATES) for e in SILVER]
            + [quarantine.filter(self._arrived).select(*KAFKA_COORDINATES)],
        )
        table_of_topic = {topic_name(self.topic_prefix, e): SILVER[e].name for e in EventType}
        return DataQualityInputs(
            silver,
            quarantine.filter(self._dated | (F.col("event_date").isNull() & self._arrived)).select(
                "kafka_topic", "kafka_timestamp", "event_date", "failed_rules"
            ),
            bronze,
            landed,
            table_of_topic,
        )
