"""Duplicate decisions of the stream: first delivery of an event id wins, whatever either delivery's timestamp;
replays decide as before; the committed ids are bounded, never silently.

The fingerprints here come from Spark's own ``fingerprints()`` columns (one session, tiny frames), so the tests
exercise the hashes the stream keys on.
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pyarrow.compute as pc
import pytest
import xxhash
from hypothesis import given, settings
from hypothesis import strategies as st
from pyspark.sql import SparkSession

from pipeline.streaming import dedup
from pipeline.streaming.dedup import FINGERPRINT_COLUMNS, CommittedIds, DedupCapacityError, decide, fingerprints

T0 = dt.datetime(2026, 11, 2, 12, 0, 0)
_SCHEMA = (
    "event_id string, event_time timestamp, kafka_timestamp timestamp, "
    "kafka_topic string, kafka_partition int, kafka_offset long"
)


@pytest.fixture(scope="module")
def deliveries(spark: SparkSession):
    """Rows -> the narrow columns the sink decides on, fingerprints computed by Spark."""

    def make(*rows: tuple[str, dt.datetime, dt.datetime, str, int, int]) -> pa.Table:
        return spark.createDataFrame(list(rows), _SCHEMA).select("*", *fingerprints()).toArrow()

    return make


def on_t(*rows: tuple[str, dt.datetime, dt.datetime, int]) -> list[tuple[str, dt.datetime, dt.datetime, str, int, int]]:
    """(event_id, event_time, kafka_timestamp, offset) rows on topic t, partition 0."""
    return [(event_id, event_time, kafka_ts, "t", 0, offset) for event_id, event_time, kafka_ts, offset in rows]


def verdicts(batch: pa.Table, committed: CommittedIds) -> list[bool]:
    return decide(batch, committed).is_duplicate.to_pylist()


def committed(batch: pa.Table, is_duplicate: list[bool] | None = None, max_ids: int = 1_000) -> CommittedIds:
    """Committed ids holding ``batch``'s first deliveries (those not marked duplicate)."""
    ids = CommittedIds(max_ids)
    ids.add(first_deliveries(batch, is_duplicate or [False] * batch.num_rows))
    return ids


def first_deliveries(batch: pa.Table, is_duplicate: list[bool]) -> pa.Table:
    return batch.filter(pc.invert(pa.array(is_duplicate))).select(list(FINGERPRINT_COLUMNS))


def test_the_earliest_delivery_in_a_batch_wins_by_kafka_timestamp_then_offset(deliveries) -> None:
    batch = deliveries(
        *on_t(
            ("a", T0, T0 + dt.timedelta(seconds=2), 1),
            ("a", T0, T0 + dt.timedelta(seconds=1), 2),
            ("b", T0, T0, 3),
            ("b", T0, T0, 4),
            ("c", T0, T0, 5),
        )
    )
    assert verdicts(batch, CommittedIds(10)) == [True, False, False, True, False]


def test_an_event_already_committed_as_another_record_is_a_duplicate_every_time(deliveries) -> None:
    ids = committed(deliveries(*on_t(("a", T0, T0, 1))))
    assert verdicts(deliveries(*on_t(("a", T0, T0, 10), ("a", T0, T0, 11))), ids) == [True, True]


@pytest.mark.parametrize(
    "restamped",
    [
        T0 + dt.timedelta(minutes=65),  # an hour later: outside any "recent" window
        T0 + dt.timedelta(days=1, hours=-3),  # the next day
        T0 - dt.timedelta(days=30),  # a month earlier
    ],
    ids=["an-hour-later", "another-date", "a-month-earlier"],
)
def test_a_redelivery_restamped_with_another_time_is_a_duplicate(deliveries, restamped: dt.datetime) -> None:
    ids = committed(deliveries(*on_t(("a", T0, T0, 1))))
    redelivery = deliveries(*on_t(("a", restamped, restamped, 2)))
    assert verdicts(redelivery, ids) == [True]


def test_restamped_deliveries_in_one_batch_keep_the_earliest_kafka_timestamp_whatever_the_event_time(
    deliveries,
) -> None:
    batch = deliveries(
        *on_t(
            ("a", T0, T0 + dt.timedelta(milliseconds=2), 1),
            ("a", T0 - dt.timedelta(days=1), T0 + dt.timedelta(milliseconds=1), 2),
            ("a", T0 + dt.timedelta(hours=3), T0, 3),
        )
    )
    assert verdicts(batch, CommittedIds(10)) == [True, True, False]


def test_a_replayed_batch_keeps_the_record_its_first_attempt_wrote_even_if_a_later_delivery_sorts_first(
    deliveries,
) -> None:
    # The first attempt wrote offset 11 (it sorted first then); the replay must decide the same.
    ids = committed(deliveries(*on_t(("a", T0, T0, 11))))
    batch = deliveries(*on_t(("a", T0, T0, 10), ("a", T0, T0 + dt.timedelta(seconds=1), 11)))
    assert verdicts(batch, ids) == [True, False]
    assert decide(batch, ids).is_held.to_pylist() == [False, True], "offset 11 is committed: not added again"


def test_the_same_offset_on_another_topic_or_partition_is_another_record(deliveries) -> None:
    ids = committed(deliveries(("a", T0, T0, "t", 0, 7)))
    batch = deliveries(("a", T0, T0, "s", 0, 7), ("a", T0, T0, "t", 1, 7), ("a", T0, T0, "t", 0, 7))
    assert verdicts(batch, ids) == [True, True, False]


def test_after_a_restart_ids_reloaded_from_silver_decide_a_replay_and_a_redelivery_as_before(deliveries) -> None:
    # Before the restart: batch 1 held two deliveries of "a" with different times; offset 1 was committed.
    batch1 = deliveries(*on_t(("a", T0, T0, 1), ("a", T0 + dt.timedelta(minutes=2), T0 + dt.timedelta(seconds=1), 2)))
    assert verdicts(batch1, CommittedIds(10)) == [False, True]
    after = committed(batch1, [False, True])  # the restarted stream loads what silver holds
    assert verdicts(batch1, after) == [False, True], "a replay of batch 1 must decide the same"
    batch2 = deliveries(*on_t(("a", T0 + dt.timedelta(days=2), T0 + dt.timedelta(days=2), 3)))
    assert verdicts(batch2, after) == [True]


def test_a_batch_that_would_outgrow_the_limit_is_refused_with_the_setting_to_raise(deliveries) -> None:
    ids = committed(deliveries(*on_t(("a", T0, T0, 1), ("b", T0, T0, 2))), max_ids=3)
    ids.check_room(1)
    with pytest.raises(DedupCapacityError, match=r"SHOPLAKE_STREAM__DEDUP_MAX_IDS.*exactly once"):
        ids.check_room(2)
    with pytest.raises(DedupCapacityError, match="would add 2"):
        ids.add(deliveries(*on_t(("c", T0, T0, 3), ("d", T0, T0, 4))).select(list(FINGERPRINT_COLUMNS)))
    assert len(ids) == 2, "nothing of a refused batch is held"


def test_ids_whose_high_halves_collide_are_told_apart_by_their_low_halves() -> None:
    def fp(high: int, low: int, record: int) -> pa.Table:
        return pa.table({"_id_high": [high], "_id_low": [low], "_record_hash": [record]})

    ids = CommittedIds(10)
    ids.add(fp(5, 1, 100))
    ids.add(fp(5, 2, 200))
    found, record = ids.lookup(pa.concat_tables([fp(5, 1, 0), fp(5, 2, 0), fp(5, 3, 0), fp(6, 1, 0)]))
    assert (found.tolist(), record[:2].tolist()) == ([True, True, False, False], [100, 200])


def _signed(value: int) -> int:
    return value - 2**64 if value >= 2**63 else value


def _xxh64(data: bytes, seed: int) -> int:
    return _signed(xxhash.xxh64_intdigest(data, seed=seed & (2**64 - 1)))


def python_deliveries(*rows: tuple[str, dt.datetime, dt.datetime, str, int, int]) -> pa.Table:
    """What :func:`deliveries` gives, fingerprints computed in Python with an independent XXH64 (Spark's
    ``xxhash64`` of several columns chains them: each one's hash seeds the next; an int is its 4 little-endian
    bytes, a long its 8): for properties that need many batches and no Spark."""
    low_seed = _xxh64(b"shoplake.event-id", 42)
    columns = ["event_id", "event_time", "kafka_timestamp", "kafka_topic", "kafka_partition", "kafka_offset"]
    table = pa.table(
        {name: [row[i] for row in rows] for i, name in enumerate(columns)},
        schema=pa.schema(
            [
                ("event_id", pa.string()),
                ("event_time", pa.timestamp("us")),
                ("kafka_timestamp", pa.timestamp("us")),
                ("kafka_topic", pa.string()),
                ("kafka_partition", pa.int32()),
                ("kafka_offset", pa.int64()),
            ]
        ),
    )

    def record_hash(topic: str, partition: int, offset: int) -> int:
        seed = _xxh64(topic.encode(), 42)
        seed = _xxh64(partition.to_bytes(4, "little", signed=True), seed)
        return _xxh64(offset.to_bytes(8, "little", signed=True), seed)

    return (
        table.append_column("_id_high", pa.array([_xxh64(r[0].encode(), 42) for r in rows], pa.int64()))
        .append_column("_id_low", pa.array([_xxh64(r[0].encode(), low_seed) for r in rows], pa.int64()))
        .append_column("_record_hash", pa.array([record_hash(*r[3:]) for r in rows], pa.int64()))
    )


def test_the_python_fingerprints_of_these_tests_are_sparks(deliveries) -> None:
    rows = [("a", T0, T0, "t", 0, 1), ("ünï", T0, T0, "shop.page_view", 7, 2**40), ("b", T0, T0, "s", -1, 0)]
    columns = list(FINGERPRINT_COLUMNS)
    assert python_deliveries(*rows).select(columns).to_pydict() == deliveries(*rows).select(columns).to_pydict()


def test_an_ids_fingerprint_is_xxh64_of_its_text_under_two_fixed_seeds(deliveries) -> None:
    """What one run committed, the next one (another session, another Spark version) must recognise: the halves
    are XXH64 of the id's UTF-8 bytes with seed 42 (Spark's) and with the seed XXH64("shoplake.event-id", 42),
    checked against an independent XXH64."""
    texts = ["a", "3f1c9a8e-0b52-4c4e-9d35-1f2a8f7e6b10", "ünïcödé"]
    batch = deliveries(*on_t(*((text, T0, T0, offset) for offset, text in enumerate(texts))))
    low_seed = xxhash.xxh64_intdigest(b"shoplake.event-id", seed=42)
    assert batch.column("_id_high").to_pylist() == [_signed(xxhash.xxh64_intdigest(t.encode(), seed=42)) for t in texts]
    assert batch.column("_id_low").to_pylist() == [
        _signed(xxhash.xxh64_intdigest(t.encode(), seed=low_seed)) for t in texts
    ]


@settings(max_examples=60, deadline=None)
@given(batches=st.lists(st.lists(st.integers(0, 2**40), max_size=300), min_size=1, max_size=12))
def test_committed_ids_hold_every_id_added_across_merged_runs(batches: list[list[int]]) -> None:
    """Runs merge as they double; whatever the sizes, every id added is found with its record and no other is."""
    with pytest.MonkeyPatch.context() as patched:
        patched.setattr(dedup, "_LARGEST_RUN", 256)  # small runs, so that the largest-run rule is exercised
        ids = CommittedIds(10_000)
        model: dict[int, int] = {}
        for batch in batches:
            fresh = [i for i in dict.fromkeys(batch) if i not in model]
            table = pa.table(
                {
                    "_id_high": pa.array([i >> 20 for i in fresh], pa.int64()),  # collisions of the high half
                    "_id_low": pa.array(fresh, pa.int64()),
                    "_record_hash": pa.array([i * 7 for i in fresh], pa.int64()),
                }
            )
            ids.add(table)
            model.update({i: i * 7 for i in fresh})
        probe = [*sorted(model), 2**41 + 1, 2**41 + 2]
        found, record = ids.lookup(
            pa.table(
                {
                    "_id_high": pa.array([i >> 20 for i in probe], pa.int64()),
                    "_id_low": pa.array(probe, pa.int64()),
                }
            )
        )
        assert found.tolist() == [i in model for i in probe]
        assert [r for r, f in zip(record.tolist(), found, strict=True) if f] == [model[i] for i in sorted(model)]
        assert len(ids) == len(model)


@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(
        st.tuples(st.sampled_from("abcde"), st.integers(0, 3), st.sampled_from(["s", "t"]), st.integers(0, 1)),
        max_size=25,
    ),
    committed_at=st.dictionaries(st.sampled_from("abcde"), st.integers(0, 30), max_size=3),
)
def test_a_delivery_is_a_duplicate_exactly_when_another_record_of_its_id_came_first_or_is_committed(
    rows: list[tuple[str, int, str, int]], committed_at: dict[str, int]
) -> None:
    # (event id, Kafka timestamp in ms, topic, partition); offsets are unique per delivery, as Kafka's are. Event
    # times are anything: they never matter.
    records = [
        (event_id, T0 - dt.timedelta(hours=ms), T0 + dt.timedelta(milliseconds=ms), topic, part, offset)
        for offset, (event_id, ms, topic, part) in enumerate(rows)
    ]
    batch = python_deliveries(*records)
    # Committed records sit at offsets the batch may share (a replayed batch) or not (an earlier batch).
    ids = CommittedIds(100)
    committed = python_deliveries(*on_t(*((e, T0, T0, o) for e, o in committed_at.items())))
    ids.add(committed.select(list(FINGERPRINT_COLUMNS)))

    def expected(row: dict) -> bool:
        key = (row["kafka_timestamp"], row["kafka_topic"], row["kafka_partition"], row["kafka_offset"])
        if row["event_id"] in committed_at:
            return ("t", 0, committed_at[row["event_id"]]) != key[1:]
        return any(
            other["event_id"] == row["event_id"]
            and (other["kafka_timestamp"], other["kafka_topic"], other["kafka_partition"], other["kafka_offset"]) < key
            for other in batch.to_pylist()
        )

    assert verdicts(batch, ids) == [expected(row) for row in batch.to_pylist()]
