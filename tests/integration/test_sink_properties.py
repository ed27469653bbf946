"""Properties of the micro-batch sink on a real Iceberg catalog, with hypothesis choosing the records.

Whatever the mix of valid events, redeliveries and broken payloads, and however it is cut into micro-batches:
every record lands exactly once in silver or quarantine, each event id once in silver, whatever timestamps its
deliveries carry; and replaying a batch with a freshly recovered sink (as after a crash at any of its commits)
changes nothing. Failures are injected at the commit seams (the committer's append, the folder's merge) of a
sink built as the stream builds it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import json
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyspark.sql import DataFrame, SparkSession

from pipeline.audit import conservation
from pipeline.config import Settings
from pipeline.contracts.events import EventType
from pipeline.iceberg_io import ensure_tables, merge_into
from pipeline.spark_session import build_spark_session
from pipeline.streaming.background import BackgroundWorkError
from pipeline.streaming.bronze import to_bronze
from pipeline.streaming.commit import Append, BatchCommitter, iceberg_append
from pipeline.streaming.fold import RollupFolder
from pipeline.streaming.silver import EventValidator
from pipeline.streaming.sink import MicroBatchSink
from pipeline.streaming.state import recover
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


def _sink(
    spark: SparkSession,
    settings: Settings,
    checkpoint: Path,
    append: Append = iceberg_append,
    merge: Callable[..., None] = merge_into,
) -> MicroBatchSink:
    """A sink as ``start_stream`` builds it: state recovered from the tables first (a restarted driver's)."""
    catalog = settings.catalog.name
    state = recover(spark, catalog, str(checkpoint), dt.timedelta(minutes=10), settings.stream.dedup_max_ids)
    committer = BatchCommitter(catalog, state.stream_id, state.committed_batches, append)
    folder = RollupFolder(catalog, dt.timedelta(days=settings.stream.rollup_lookback_days), merge)
    return MicroBatchSink.build(spark, settings, state, committer=committer, folder=folder)


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

    sink = _sink(spark, settings, checkpoint)
    for batch_id, batch in enumerate(batches):
        sink(batch, batch_id)
    # A crash after the commits, before Spark's: the restarted driver recovers, then replays the batch.
    _sink(spark, settings, checkpoint)(batches[-1], len(batches) - 1)

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


def dying_after(calls: int, write: Callable[..., None]) -> Callable[..., None]:
    """``write``, for ``calls`` calls; every later call dies before it does anything (the driver dies there)."""
    done = itertools.count()

    def dying(*args: object) -> None:
        if next(done) >= calls:
            raise SimulatedCrash(f"after {calls} writes")
        write(*args)

    return dying


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
        sink = _sink(spark, settings, checkpoint)
        for batch_id, batch in enumerate(batches):
            if batch_id in crash_points:
                sink.wait_background()  # a driver's background work dies with it; here it ends first
                dying = _sink(spark, settings, checkpoint, append=dying_after(crash_points[batch_id], iceberg_append))
                with contextlib.suppress(SimulatedCrash):
                    dying(batch, batch_id)
                sink = _sink(spark, settings, checkpoint)  # the restarted driver recovers, then replays the batch
            sink(batch, batch_id)
        if fold_dies_after is not None:
            sink.wait_background()
            dying = _sink(spark, settings, checkpoint, merge=dying_after(fold_dies_after, merge_into))
            with contextlib.suppress(BackgroundWorkError):
                dying.flush()
            sink = _sink(spark, settings, checkpoint)
            sink(batches[-1], len(batches) - 1)  # Spark replays the last batch; nothing is written twice
        sink.flush()
        assert conservation(spark, settings.catalog.name).ok
        return _lake_state(spark, settings.catalog.name)

    assert run(dict(crashes), fold_crash) == run({}, None)


@pytest.mark.integration
def test_a_restart_whose_committed_ids_fail_to_load_fails_its_first_batch_before_it_writes(
    spark: SparkSession, lake: Settings, tmp_path: Path
) -> None:
    """A restarted sink loads the committed ids in the background while the query starts. If that load fails
    (here: a silver data file is missing from the warehouse), the first batch raises its error and writes
    nothing; once the file is back, the next start replays the batch as if nothing happened."""
    settings, checkpoint = _fresh_lake(spark, lake, tmp_path)
    catalog = settings.catalog.name
    now = dt.datetime.now().replace(microsecond=0)
    batches = _event_batches(spark, settings, [list(range(0, 20)), list(range(10, 40))], now)  # 10 redelivered
    first = _sink(spark, settings, checkpoint)
    first(batches[0], 0)
    first.flush()
    before = _lake_state(spark, catalog)

    page_views = SILVER[EventType.PAGE_VIEW].qualified(catalog)
    data_file = Path(spark.table(f"{page_views}.files").select("file_path").first()[0].removeprefix("file:"))
    hidden = data_file.with_name(data_file.name + ".away")
    data_file.rename(hidden)
    try:
        restarted = _sink(spark, settings, checkpoint)  # returns while the load runs (and fails) in its thread
        with pytest.raises(Exception, match=data_file.name):
            restarted(batches[1], 1)
    finally:
        hidden.rename(data_file)
    assert _lake_state(spark, catalog) == before

    again = _sink(spark, settings, checkpoint)
    again(batches[1], 1)
    again.flush()
    assert conservation(spark, catalog).ok
    duplicates = spark.table(QUARANTINE_EVENTS.qualified(catalog)).filter("array_contains(failed_rules, 'duplicate')")
    assert duplicates.count() == 10, "the ids loaded on the second start knew the first batch's"


def _restamped(pick: int, event_time: dt.datetime) -> tuple[str, str, bytes]:
    """``POOL`` event ``pick`` with its timestamp set to ``event_time``."""
    event = json.loads(POOL[pick][2])
    event["timestamp"] = event_time.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return POOL[pick][0], POOL[pick][1], json.dumps(event).encode()


@pytest.mark.integration
def test_redeliveries_restamped_with_any_time_land_once_within_a_run_and_across_a_restart(
    spark: SparkSession, lake: Settings, tmp_path: Path
) -> None:
    """A producer that re-stamps an event when it retries sends a duplicate, whatever the new time says: an hour
    later (past any recent window), on another date, within one batch, or after the stream restarted. The first
    delivery stays in silver, every other lands in quarantine as a duplicate."""
    settings, checkpoint = _fresh_lake(spark, lake, tmp_path)
    catalog = settings.catalog.name
    t0 = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC)
    # Events 0-3 first delivered at 10:00 on 2026-11-23; a later page view moves the newest event time an hour on.
    originals = [_restamped(pick, t0) for pick in range(4)]
    redelivered = [
        _restamped(0, t0 + dt.timedelta(minutes=65)),  # re-stamped an hour later: the newest times now
        _restamped(1, dt.datetime(2026, 11, 24, 9, 0, tzinfo=dt.UTC)),  # re-stamped on the next date
        _restamped(2, t0 - dt.timedelta(days=3)),  # re-stamped days earlier (a late event, by its time)
        originals[3],  # byte for byte
    ]
    later = _restamped(4, t0 + dt.timedelta(hours=1))
    pool = [*originals, *redelivered, later]
    # batch 0: the originals, and event 0 again within the batch re-stamped; batch 1: the page view an hour
    # later and redeliveries 0-1; then a restart; batch 2: redeliveries 2-3 and 0-1 once more.
    picks = [[0, 1, 2, 3, 4], [8, 4, 5], [6, 7, 4, 5]]
    batches = _event_batches(spark, settings, picks, dt.datetime.now().replace(microsecond=0), pool=pool)
    sink = _sink(spark, settings, checkpoint)
    sink(batches[0], 0)
    sink(batches[1], 1)
    sink.flush()
    restarted = _sink(spark, settings, checkpoint)
    restarted(batches[2], 2)
    restarted.flush()

    assert conservation(spark, catalog).ok
    silver = {
        r.event_id: r.event_time
        for spec in SILVER.values()
        for r in spark.table(spec.qualified(catalog)).select("event_id", "event_time").collect()
    }
    ids = [json.loads(POOL[pick][2])["event_id"] for pick in range(5)]
    assert sorted(silver) == sorted(ids), "each event id once in silver"
    first_times = {ids[pick]: t0 for pick in range(4)} | {ids[4]: t0 + dt.timedelta(hours=1)}
    assert {i: t.astimezone(dt.UTC) for i, t in silver.items()} == first_times, "the first delivery wins"
    quarantine = spark.table(QUARANTINE_EVENTS.qualified(catalog))
    duplicates = quarantine.filter("array_contains(failed_rules, 'duplicate')")
    assert duplicates.count() == sum(map(len, picks)) - len(ids) == quarantine.count()
