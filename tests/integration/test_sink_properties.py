"""Properties of the micro-batch sink on a real Iceberg catalog, with hypothesis choosing the records.

Whatever the mix of valid events, redeliveries and broken payloads, and however it is cut into micro-batches:
every record lands exactly once in silver or quarantine, each event id once in silver; and replaying the last
batch with a fresh sink (as after a crash) changes nothing.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyspark.sql import DataFrame, SparkSession

from pipeline.audit import conservation
from pipeline.config import Settings
from pipeline.contracts.events import EventType
from pipeline.iceberg_io import BatchCommitter, ensure_tables
from pipeline.spark_session import build_spark_session
from pipeline.streaming import fold
from pipeline.streaming.bronze import to_bronze
from pipeline.streaming.silver import EventValidator
from pipeline.streaming.sink import MicroBatchSink
from pipeline.tables import BRONZE_EVENTS, EVENT_MINUTES, QUARANTINE_EVENTS, SESSIONS, SILVER, STREAMING_TABLES
from simulation.generator import generate
from simulation.scenario import load_scenario
from simulation.sinks import simulated_items

KAFKA_SCHEMA = (
    "key binary, value binary, topic string, partition int, offset long, timestamp timestamp, timestampType int"
)
POOL = list(simulated_items(generate(load_scenario("normal_day"), 5, 300)[0], load_scenario("normal_day"), live=False))
BROKEN = st.one_of(
    st.binary(max_size=60),
    st.sampled_from([b"", b"{", b"[]", b"null", b'{"event_type": "page_view"}', b"\xff\xfe\xfd"]),
    st.builds(lambda i: POOL[i][2][: len(POOL[i][2]) // 2], st.integers(0, len(POOL) - 1)),
)
RECORD = st.one_of(
    st.tuples(st.just("event"), st.integers(0, len(POOL) - 1)),
    st.tuples(st.just("broken"), BROKEN),
)


def _sink(settings: Settings, checkpoint: Path) -> MicroBatchSink:
    return MicroBatchSink(
        catalog=settings.catalog.name, checkpoint_location=str(checkpoint), late_after=dt.timedelta(minutes=10)
    )


def _fresh_lake(spark: SparkSession, lake: Settings, tmp_path: Path) -> tuple[Settings, Path]:
    """A catalog of its own (same warehouse) with the streaming tables, and a checkpoint with a new stream id."""
    catalog = f"{lake.catalog.name}_{uuid.uuid4().hex[:6]}"
    settings = lake.model_copy(update={"catalog": lake.catalog.model_copy(update={"name": catalog})})
    build_spark_session(settings)
    ensure_tables(spark, catalog, STREAMING_TABLES)
    checkpoint = tmp_path / uuid.uuid4().hex
    checkpoint.mkdir()
    (checkpoint / "metadata").write_text(json.dumps({"id": str(uuid.uuid4())}))
    return settings, checkpoint


@pytest.mark.integration
@settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(records=st.lists(RECORD, min_size=1, max_size=60), cuts=st.lists(st.integers(0, 60), max_size=2))
def test_any_mix_of_records_lands_exactly_once_even_when_a_batch_is_replayed(
    spark: SparkSession, lake: Settings, tmp_path: Path, records: list, cuts: list[int]
) -> None:
    settings, checkpoint = _fresh_lake(spark, lake, tmp_path)
    prefix, catalog = settings.kafka.topic_prefix, settings.catalog.name

    now = dt.datetime.now().replace(microsecond=0)
    rows = []
    for offset, (kind, value) in enumerate(records):
        topic, key, payload = POOL[value] if kind == "event" else ("page_view", "k", value)
        rows.append((key.encode(), payload, f"{prefix}.{topic}", 0, offset, now + dt.timedelta(milliseconds=offset), 0))
    bounds = sorted({0, len(rows), *(min(c, len(rows)) for c in cuts)})
    validator = EventValidator(prefix, settings.stream.max_payload_bytes)
    batches = [
        validator.validate(to_bronze(spark.createDataFrame(rows[a:b], KAFKA_SCHEMA)))
        for a, b in itertools.pairwise(bounds)
        if b > a
    ]

    sink = _sink(settings, checkpoint)
    for batch_id, batch in enumerate(batches):
        sink(batch, batch_id)
    # A crash after the commits, before Spark's; this replay recovers its state lazily, in the batch itself.
    _sink(settings, checkpoint)(batches[-1], len(batches) - 1)

    report = conservation(spark, catalog)
    assert report.ok, report
    assert report.bronze_records == len(rows)
    silver_ids = [
        r[0] for spec in SILVER.values() for r in spark.table(spec.qualified(catalog)).select("event_id").collect()
    ]
    assert len(silver_ids) == len(set(silver_ids))
    valid_ids = {json.loads(POOL[i][2])["event_id"] for kind, i in records if kind == "event"}
    assert set(silver_ids) == valid_ids
    assert spark.table(QUARANTINE_EVENTS.qualified(catalog)).count() == len(rows) - len(valid_ids)


class SimulatedCrash(Exception):
    """The driver dies here."""


@contextlib.contextmanager
def crash_after(target: object, name: str, calls: int) -> Iterator[None]:
    """Let ``calls`` calls of ``target.name`` through, then make every later one die before it does anything."""
    original = getattr(target, name)
    done = itertools.count()

    def dying(*args: object, **kwargs: object) -> object:
        if next(done) >= calls:
            raise SimulatedCrash(f"{name} call {calls + 1}")
        return original(*args, **kwargs)

    setattr(target, name, dying)
    try:
        yield
    finally:
        setattr(target, name, original)


def _event_batches(
    spark: SparkSession,
    settings: Settings,
    picks: list[list[int]],
    now: dt.datetime,
    pool: list[tuple[str, str, bytes]] = POOL,
) -> list[DataFrame]:
    """One validated micro-batch (as the query hands it to the sink) per list of ``pool`` events; offsets run on
    across the batches, each record's Kafka timestamp is ``now`` plus its offset in milliseconds."""
    prefix = settings.kafka.topic_prefix
    validator = EventValidator(prefix, settings.stream.max_payload_bytes)
    offset = itertools.count()
    batches = []
    for batch in picks:
        rows = []
        for pick in batch:
            topic, key, payload = pool[pick]
            o = next(offset)
            rows.append((key.encode(), payload, f"{prefix}.{topic}", 0, o, now + dt.timedelta(milliseconds=o), 0))
        batches.append(validator.validate(to_bronze(spark.createDataFrame(rows, KAFKA_SCHEMA))))
    return batches


def _lake_state(spark: SparkSession, catalog: str) -> dict[str, list]:
    """Every streaming table's rows, without the columns that say *when* they were written (they differ by run)."""
    volatile = {"ingest_time", "folded_through"}
    state = {}
    for spec in (BRONZE_EVENTS, *SILVER.values(), QUARANTINE_EVENTS, SESSIONS, EVENT_MINUTES):
        columns = [c for c in spec.schema.fieldNames() if c not in volatile]
        state[spec.identifier] = sorted(
            (tuple(row) for row in spark.table(spec.qualified(catalog)).select(*columns).collect()), key=repr
        )
    return state


@pytest.mark.integration
@settings(
    max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(
    picks=st.lists(st.integers(0, len(POOL) - 1), min_size=4, max_size=40),
    crashes=st.lists(st.tuples(st.integers(0, 2), st.integers(0, 6)), min_size=1, max_size=3),
    fold_crash=st.integers(0, 2),
)
def test_replaying_batches_after_crashes_at_any_commit_leaves_the_same_tables_as_no_crash(
    spark: SparkSession, lake: Settings, tmp_path: Path, picks: list[int], crashes: list, fold_crash: int
) -> None:
    """Three micro-batches (redeliveries among them); the driver dies after any number of a batch's table commits
    or between the two roll-up folds, and a fresh sink replays the batch. Every table ends as in a run that never
    crashed: same bronze, silver, quarantine, sessions and per-minute rows."""
    now = dt.datetime.now().replace(microsecond=0)
    picks = picks + picks[: len(picks) // 3]  # some events delivered twice, possibly in another batch
    thirds = [picks[i::3] for i in range(3)]

    def run(crash_points: dict[int, int], fold_dies_after: int | None) -> dict[str, list]:
        settings, checkpoint = _fresh_lake(spark, lake, tmp_path)
        batches = _event_batches(spark, settings, thirds, now)
        sink = _sink(settings, checkpoint)
        for batch_id, batch in enumerate(batches):
            if batch_id in crash_points:
                with crash_after(BatchCommitter, "append", crash_points[batch_id]), contextlib.suppress(SimulatedCrash):
                    sink(batch, batch_id)
                sink = _sink(settings, checkpoint)  # the restarted driver recovers, as start_stream does,
                sink.recover(spark)  # then replays the batch
            sink(batch, batch_id)
        if fold_dies_after is not None:
            with crash_after(fold, "merge_into", fold_dies_after), contextlib.suppress(SimulatedCrash):
                sink.flush()
            sink = _sink(settings, checkpoint)
            sink(batches[-1], len(batches) - 1)  # Spark replays the last batch; nothing is written twice
        sink.flush()
        assert conservation(spark, settings.catalog.name).ok
        return _lake_state(spark, settings.catalog.name)

    assert run(dict(crashes), fold_crash) == run({}, None)


@pytest.mark.integration
def test_a_restart_whose_hot_tier_fails_to_load_fails_its_first_batch_before_it_writes(
    spark: SparkSession, lake: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A restarted sink loads the committed ids in the background while the query starts. If that load fails,
    the first batch raises its error and writes nothing; the next start replays the batch as if nothing
    happened."""
    settings, checkpoint = _fresh_lake(spark, lake, tmp_path)
    catalog = settings.catalog.name
    now = dt.datetime.now().replace(microsecond=0)
    batches = _event_batches(spark, settings, [list(range(0, 20)), list(range(10, 40))], now)  # 10 redelivered
    first = _sink(settings, checkpoint)
    first(batches[0], 0)
    first.flush()
    before = _lake_state(spark, catalog)

    def unreachable(self: MicroBatchSink, spark: SparkSession, since: dt.datetime) -> None:
        raise RuntimeError("silver is unreachable")

    with monkeypatch.context() as patched:
        patched.setattr(MicroBatchSink, "_load_ids", unreachable)
        restarted = _sink(settings, checkpoint)
        restarted.recover(spark)  # returns while the load runs (and fails) in its thread
        with pytest.raises(RuntimeError, match="silver is unreachable"):
            restarted(batches[1], 1)
    assert _lake_state(spark, catalog) == before

    again = _sink(settings, checkpoint)
    again.recover(spark)
    again(batches[1], 1)
    again.flush()
    assert conservation(spark, catalog).ok
    duplicates = spark.table(QUARANTINE_EVENTS.qualified(catalog)).filter("array_contains(failed_rules, 'duplicate')")
    assert duplicates.count() == 10, "the hot tier loaded on the second start knew the first batch's ids"


def _restamped(pick: int, minutes_later: int) -> tuple[str, str, bytes]:
    """``POOL`` event ``pick`` with its event time ``minutes_later`` than the pool's first event's."""
    first = dt.datetime.fromisoformat(json.loads(POOL[0][2])["timestamp"])
    event = json.loads(POOL[pick][2])
    event["timestamp"] = (
        (first + dt.timedelta(minutes=minutes_later)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )
    return POOL[pick][0], POOL[pick][1], json.dumps(event).encode()


@pytest.mark.integration
def test_an_old_redelivery_is_caught_from_memory_within_a_run_and_from_silver_as_it_was_after_a_restart(
    spark: SparkSession, lake: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a fresh lake the first batch neither loads a hot tier nor looks an old event up in silver: nothing is
    there. Within the run, a redelivery of the old event (older than the dedup horizon) is caught by the ids the
    run committed, still in memory: silver is not read. After a restart it is looked up in silver as it was
    before the restart, in the one table holding the old event's day, and quarantined as a duplicate again."""
    settings, checkpoint = _fresh_lake(spark, lake, tmp_path)
    catalog = settings.catalog.name
    # A product update, and a day later a session event: the old one is far outside the dedup horizon.
    old, new = _restamped(0, 0), _restamped(1, 25 * 60)
    assert (old[0], new[0]) == ("product_update", "user_session")
    original = MicroBatchSink._silver_ids
    read: list[list[str]] = []

    def reading(self: MicroBatchSink, spark: SparkSession, specs: list, snapshots: dict | None = None) -> DataFrame:
        read.append([spec.identifier for spec in specs])
        return original(self, spark, specs, snapshots)

    monkeypatch.setattr(MicroBatchSink, "_silver_ids", reading)
    now = dt.datetime.now().replace(microsecond=0)
    batches = _event_batches(spark, settings, [[0, 1], [0], [0]], now, pool=[old, new])
    sink = _sink(settings, checkpoint)
    sink(batches[0], 0)
    assert read == [], "a fresh lake's silver holds no rows to read"
    assert sum(spark.table(spec.qualified(catalog)).count() for spec in SILVER.values()) == 2
    sink(batches[1], 1)
    assert read == [], "the run's own commits are still in memory"
    sink.flush()
    restarted = _sink(settings, checkpoint)
    restarted.recover(spark)
    restarted(batches[2], 2)
    assert read == [
        [SILVER[EventType.USER_SESSION].identifier],  # the hot tier, loaded from the horizon's rows
        [SILVER[EventType.PRODUCT_UPDATE].identifier],  # the cold lookup, in the table holding the old day
    ]
    restarted.flush()
    assert conservation(spark, catalog).ok
    duplicates = spark.table(QUARANTINE_EVENTS.qualified(catalog)).filter("array_contains(failed_rules, 'duplicate')")
    assert duplicates.count() == 2
