"""The streaming job: Kafka topics -> micro-batch sink (bronze, silver, quarantine), from a checkpoint."""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.streaming import StreamingQuery

from pipeline.config import ConfigurationError, Settings
from pipeline.contracts.events import all_topics
from pipeline.iceberg_io import ensure_tables
from pipeline.kafka_topics import bootstrap_servers, stream_group_prefix
from pipeline.streaming.bronze import to_bronze
from pipeline.streaming.checkpoint import local_path, pending_batch
from pipeline.streaming.lock import StreamLock, hold_stream_lock, lock_file
from pipeline.streaming.plan import BatchReport
from pipeline.streaming.silver import EventValidator
from pipeline.streaming.sink import MicroBatchSink
from pipeline.streaming.state import recover
from pipeline.tables import STREAMING_TABLES

log = logging.getLogger(__name__)

QUERY_NAME = "kafka_to_lake"


def checkpoint_location(settings: Settings) -> str:
    return f"{settings.checkpoint_root.rstrip('/')}/{QUERY_NAME}"


class CheckpointError(ConfigurationError):
    """The stream's checkpoint exists but cannot be read: resuming from it would be a guess."""


def check_catalog(spark: SparkSession, settings: Settings) -> None:
    try:
        spark.sql(f"SHOW NAMESPACES IN {settings.catalog.name}").collect()  # a validated identifier
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigurationError(
            f"the Iceberg catalog {settings.catalog.name!r} at {settings.catalog_uri} cannot be used: {first}"
        ) from exc


def check_checkpoint(location: str) -> None:
    """A local checkpoint whose query metadata is missing or unreadable is refused (remote ones: Spark checks)."""
    local = local_path(location)
    if local is None:
        return
    metadata = local / "metadata"
    if not metadata.exists() and not (metadata.parent / "offsets").exists():
        return  # first start (or a start that died before writing anything)
    try:
        json.loads(metadata.read_text().splitlines()[0])["id"]
    except (OSError, ValueError, KeyError, IndexError) as exc:
        raise CheckpointError(
            f"checkpoint {location} is unreadable ({type(exc).__name__}: {exc}); restore it, or move it away to "
            "start over (the stream then re-reads Kafka from the earliest offsets; silver deduplicates)"
        ) from exc


def kafka_source(spark: SparkSession, settings: Settings) -> DataFrame:
    """All event topics, from the earliest offsets on first start, validated against the contract.

    Lost offsets fail the query. Validation is part of the streaming query itself (one function of the topic
    and the value, :class:`EventValidator`).
    """
    reader = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", bootstrap_servers(settings))
        .option("subscribe", ",".join(all_topics(settings.kafka.topic_prefix)))
        .option("startingOffsets", "earliest")
        .option("failOnDataLoss", "true")
        .option("includeHeaders", "false")
        # The consumer reads up to each batch's end offsets; with the default 500 ms the broker holds a fetch
        # that finds nothing new, which added ~0.6 s to every micro-batch. Freshness is the point here.
        .option("kafka.fetch.max.wait.ms", "10")
        .option("groupIdPrefix", stream_group_prefix(settings.kafka.topic_prefix))
        .options(**{f"kafka.{key}": value for key, value in settings.kafka.java_client().items()})
    )
    if settings.stream.max_offsets_per_trigger:
        reader = reader.option("maxOffsetsPerTrigger", str(settings.stream.max_offsets_per_trigger))
    validator = EventValidator(
        settings.kafka.topic_prefix, settings.stream.max_payload_bytes, settings.stream.supported_schema_versions
    )
    return validated_events(reader.load(), validator, settings.stream.batch_partitions)


def validated_events(kafka_records: DataFrame, validator: EventValidator, partitions: int) -> DataFrame:
    """Kafka records as bronze rows in ``partitions`` partitions, validated against the contract: what each
    micro-batch of the stream hands to the sink.

    The Kafka source gives one partition per topic partition (ten by default); a micro-batch of a live stream
    holds a few thousand records, which two tasks read and validate for less than ten would cost to schedule.
    """
    return validator.validate(to_bronze(kafka_records).coalesce(partitions))


def _replay_pending_batch(spark: SparkSession, settings: Settings, sink: MicroBatchSink, location: str) -> None:
    """Re-run the batch a killed driver left uncommitted, alone, before the stream proper starts.

    Spark 4.1.1 fails a query whose first batch is such a replay: the Kafka source reports progress metrics for
    offsets it never fetched (a NullPointerException in ``KafkaMicroBatchStream.metrics``, SPARK-55271), after
    the batch itself has been committed. Replaying it in a one-batch query of its own confines that failure to a
    query whose only job is the replay; the error is accepted only if the checkpoint now records the batch as
    committed, so nothing is ever skipped.
    """
    pending = pending_batch(spark, location)
    if pending is None:
        return
    log.info("replaying batch %d, left uncommitted by the previous run", pending)
    query = (
        kafka_source(spark, settings)
        .writeStream.queryName(f"{QUERY_NAME}_replay")
        .option("checkpointLocation", location)
        .trigger(once=True)  # with a planned batch in the log, "once" is exactly that batch
        .foreachBatch(sink)
        .start()
    )
    try:
        query.awaitTermination()
    except Exception:
        if pending_batch(spark, location) is not None:
            raise
        log.info("batch %d replayed and committed (Spark's progress report failed afterwards: SPARK-55271)", pending)
    # Not flush(): its fold of the roll-ups would hold up the stream proper; the next batches fold on their cadence.
    sink.wait_background()


@dataclass
class Stream:
    """A running streaming query, its sink and the driver's lock on its checkpoint; ``stop`` also waits for the
    sink's last bookkeeping write, then lets the lock go."""

    query: StreamingQuery
    sink: MicroBatchSink
    lock: StreamLock | None = None

    def stop(self) -> None:
        self.query.stop()
        self._ended()

    def _ended(self) -> None:
        try:
            self.sink.flush()
        finally:
            self._release()

    def _release(self) -> None:
        if self.lock is not None:
            self.lock.release()

    def _await(self, timeout_s: int | None) -> bool | None:
        """The query's awaitTermination; when it raises because the query failed, the lock is let go too."""
        try:
            return self.query.awaitTermination() if timeout_s is None else self.query.awaitTermination(timeout_s)
        except BaseException:
            if not self.query.isActive:
                self._release()
            raise

    def await_termination(self, timeout_s: float | None = None) -> bool | None:
        result = self._await(None if timeout_s is None else math.ceil(timeout_s))
        if result is False:  # still running
            self.sink.flush()
        else:
            self._ended()
        return result

    def run_until(self, stop_requested: threading.Event, poll_s: int = 1) -> None:
        """Wait until the query ends by itself, or until ``stop_requested`` is set, then stop it cleanly.

        For signal handlers: a handler must only set the event. It runs in the main thread, which is usually
        inside a py4j call (waiting for the query), and a second JVM call from there breaks that call.
        """
        while not stop_requested.is_set():
            if self._await(poll_s):
                self._ended()
                return
        self.stop()

    def process_all_available(self) -> None:
        """Block until everything Kafka held when called is committed (tests use this for determinism)."""
        self.query.processAllAvailable()
        self.sink.flush()

    def exception(self) -> BaseException | None:
        return self.query.exception()


def start_stream(
    spark: SparkSession,
    settings: Settings,
    *,
    available_now: bool = False,
    on_batch: Iterable[Callable[[BatchReport], None]] = (),
) -> Stream:
    """Start the query. ``available_now`` processes what Kafka holds at start, then stops by itself.

    Fails fast, with the setting to fix, when the catalog cannot be reached or the checkpoint cannot be read.
    Waits up to ``stream.lock_wait_seconds`` for another driver of the same checkpoint to end (a killed one's
    JVM, finishing its last commit), then refuses to start (:mod:`pipeline.streaming.lock`).
    """
    check_catalog(spark, settings)
    log.info("catalog %s reachable", settings.catalog.name)
    ensure_tables(spark, settings.catalog.name, STREAMING_TABLES)
    log.info("streaming tables ready")
    location = checkpoint_location(settings)
    check_checkpoint(location)
    # Before any state is read: a killed driver's JVM may still be finishing a commit (pipeline.streaming.lock).
    lock = hold_stream_lock(spark, lock_file(location, settings.home), settings.stream.lock_wait_seconds)
    log.info("lock %s held", lock.path)
    try:
        return _start(spark, settings, location, available_now, on_batch, lock)
    except BaseException:
        lock.release()
        raise


def _start(
    spark: SparkSession,
    settings: Settings,
    location: str,
    available_now: bool,
    on_batch: Iterable[Callable[[BatchReport], None]],
    lock: StreamLock,
) -> Stream:
    # Before any batch: the first one after a restart runs as fast as the rest (the committed ids load meanwhile).
    state = recover(
        spark,
        settings.catalog.name,
        location,
        dt.timedelta(seconds=settings.stream.late_after_seconds),
        settings.stream.dedup_max_ids,
    )
    log.info("state recovered from the tables")
    sink = MicroBatchSink.build(spark, settings, state, list(on_batch))
    _replay_pending_batch(spark, settings, sink, location)
    writer = kafka_source(spark, settings).writeStream.queryName(QUERY_NAME).option("checkpointLocation", location)
    if available_now:
        writer = writer.trigger(availableNow=True)
    elif settings.stream.trigger_seconds > 0:
        writer = writer.trigger(processingTime=f"{settings.stream.trigger_seconds} seconds")
    query = writer.foreachBatch(sink).start()
    log.info("query %s started", QUERY_NAME)
    return Stream(query, sink, lock)
