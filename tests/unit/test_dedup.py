"""Duplicate decisions of the stream: first delivery wins, replays decide as before, the horizon bounds memory only."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.streaming.dedup import EventIdCache, committed_rows, decide, needs_cold_lookup

T0 = dt.datetime(2026, 11, 2, 12, 0, 0)


def narrow(*rows: tuple[str, dt.datetime, dt.datetime, int]) -> pa.Table:
    """(event_id, event_time, kafka_timestamp, offset) rows on topic t, partition 0."""
    return pa.table(
        {
            "event_id": [r[0] for r in rows],
            "event_time": pa.array([r[1] for r in rows], pa.timestamp("us")),
            "kafka_timestamp": pa.array([r[2] for r in rows], pa.timestamp("us")),
            "kafka_topic": ["t"] * len(rows),
            "kafka_partition": pa.array([0] * len(rows), pa.int32()),
            "kafka_offset": pa.array([r[3] for r in rows], pa.int64()),
        }
    )


def cold_lookups(batch: pa.Table, cache: EventIdCache) -> list[tuple[str, dt.date]]:
    """What :func:`needs_cold_lookup` names, as sorted (event id, event date) pairs."""
    wanted = needs_cold_lookup(batch, cache)
    return sorted(zip(wanted.column("event_id").to_pylist(), wanted.column("event_date").to_pylist(), strict=True))


def loaded(
    *committed: tuple[str, dt.datetime, int],
    since: dt.datetime = T0 - dt.timedelta(minutes=30),
    max_ids: int = 2_000_000,
):
    """A hot tier covering ``since`` on, holding (event_id, event_time, offset) rows as silver would."""
    cache = EventIdCache(dt.timedelta(minutes=30), max_ids)
    cache.load(narrow(*((event_id, when, T0, offset) for event_id, when, offset in committed)), since)
    return cache


def test_the_earliest_delivery_in_a_batch_wins_by_kafka_timestamp_then_offset() -> None:
    batch = narrow(
        ("a", T0, T0 + dt.timedelta(seconds=2), 1),
        ("a", T0, T0 + dt.timedelta(seconds=1), 2),
        ("b", T0, T0, 4),
        ("b", T0, T0, 3),
        ("c", T0, T0, 5),
    )
    assert decide(batch, loaded(), {}).is_duplicate == [True, False, True, False, False]


def test_an_event_already_in_silver_at_other_coordinates_is_a_duplicate_every_time() -> None:
    batch = narrow(("a", T0, T0, 10), ("a", T0, T0, 11))
    assert decide(batch, loaded(("a", T0, 1)), {}).is_duplicate == [True, True]


def test_a_replayed_batch_keeps_the_record_its_first_attempt_wrote_even_if_a_later_delivery_sorts_first() -> None:
    # The first attempt wrote offset 11 (it sorted first then); the replay must decide the same.
    batch = narrow(("a", T0, T0, 10), ("a", T0, T0 + dt.timedelta(seconds=1), 11))
    assert decide(batch, loaded(("a", T0, 11)), {}).is_duplicate == [True, False]


def test_conflicting_redeliveries_with_another_event_time_are_still_caught_within_the_horizon() -> None:
    batch = narrow(("a", T0 + dt.timedelta(minutes=5), T0, 9))
    assert decide(batch, loaded(("a", T0, 1)), {}).is_duplicate == [True]


def test_events_older_than_the_horizon_go_to_the_cold_lookup_and_its_answer_decides() -> None:
    old = T0 - dt.timedelta(days=2)
    batch = narrow(("old", old, T0, 7), ("new", T0, T0, 8))
    cache = loaded()
    assert cold_lookups(batch, cache) == [("old", old.date())]
    assert decide(batch, cache, {"old": ("t", 0, 1)}).is_duplicate == [True, False]
    assert decide(batch, cache, {}).is_duplicate == [False, False]


def test_advancing_the_horizon_evicts_old_ids_and_hands_them_to_the_cold_lookup() -> None:
    cache = loaded(("a", T0, 1), ("b", T0 + dt.timedelta(hours=1), 2), since=T0, max_ids=1)
    cache.advance(T0 + dt.timedelta(hours=1, minutes=10))
    assert cache.get("a") is None
    assert cache.get("b") == ("t", 0, 2)
    assert cold_lookups(narrow(("a", T0, T0, 3)), cache) == [("a", T0.date())]


def test_ids_older_than_the_horizon_stay_while_the_tier_holds_no_more_than_its_limit() -> None:
    cache = loaded(("a", T0, 1), ("b", T0 + dt.timedelta(hours=1), 2), since=T0, max_ids=2)
    cache.advance(T0 + dt.timedelta(hours=3))
    assert (cache.get("a"), cache.get("b"), cache.covers_since) == (("t", 0, 1), ("t", 0, 2), T0)
    cache.add(narrow(("c", T0 + dt.timedelta(hours=3), T0, 3)))
    cache.advance(T0 + dt.timedelta(hours=3))
    assert (cache.get("a"), cache.get("b"), cache.covers_since) == (None, ("t", 0, 2), T0 + dt.timedelta(minutes=1))


def test_ids_a_run_committed_older_than_the_covered_range_are_held_until_an_eviction_drops_them() -> None:
    """A catch-up commits events hours older than the hot tier's start: they decide later redeliveries without
    silver, and the tier says when it no longer holds every id it was given."""
    old = T0 - dt.timedelta(hours=5)
    cache = loaded(max_ids=1)
    cache.add(narrow(("old", old, T0, 1)))
    assert (cache.get("old"), cache.holds_every_added_id) == (("t", 0, 1), True)
    redelivery = narrow(("old", old, T0 + dt.timedelta(seconds=5), 2))
    assert cold_lookups(redelivery, cache) == [("old", old.date())]
    assert decide(redelivery, cache, {}).is_duplicate == [True]
    cache.add(narrow(("new", T0 + dt.timedelta(hours=1), T0, 3)))
    cache.advance(T0 + dt.timedelta(hours=1))
    assert (cache.get("old"), cache.holds_every_added_id) == (None, False)


def test_ids_committed_by_a_batch_are_its_first_deliveries_only() -> None:
    batch = narrow(("a", T0, T0, 1), ("a", T0, T0, 2), ("b", T0, T0, 3))
    cache = loaded()
    verdicts = decide(batch, cache, {})
    cache.add(committed_rows(batch, verdicts))
    assert (len(cache), cache.get("a"), cache.get("b")) == (2, ("t", 0, 1), ("t", 0, 3))
    assert decide(narrow(("a", T0, T0, 9)), cache, {}).is_duplicate == [True]


def test_nothing_is_known_before_the_cache_is_loaded() -> None:
    cache = EventIdCache(dt.timedelta(minutes=30))
    assert cold_lookups(narrow(("a", T0, T0, 1)), cache) == [("a", T0.date())]


def on(topic: str, partition: int, *rows: tuple[str, dt.datetime, dt.datetime, int]) -> pa.Table:
    """Like :func:`narrow`, on another topic and partition."""
    table = narrow(*rows)
    return table.set_column(3, "kafka_topic", pa.array([topic] * len(rows))).set_column(
        4, "kafka_partition", pa.array([partition] * len(rows), pa.int32())
    )


def test_conflicting_redeliveries_in_one_batch_keep_the_earliest_kafka_timestamp_whatever_the_event_time() -> None:
    # Three deliveries of "a" whose payloads differ (here: their event times); the earliest Kafka timestamp wins,
    # although it has the latest offset and the latest event time.
    batch = narrow(
        ("a", T0, T0 + dt.timedelta(milliseconds=2), 1),
        ("a", T0 - dt.timedelta(minutes=1), T0 + dt.timedelta(milliseconds=1), 2),
        ("a", T0 + dt.timedelta(minutes=1), T0, 3),
    )
    assert decide(batch, loaded(), {}).is_duplicate == [True, True, False]


def test_deliveries_with_the_same_kafka_timestamp_are_ordered_by_topic_then_partition_then_offset() -> None:
    same = T0
    batch = pa.concat_tables(
        [
            on("t", 1, ("a", T0, same, 1)),
            on("t", 0, ("a", T0, same, 9)),
            on("s", 5, ("b", T0, same, 50)),
            on("t", 0, ("b", T0, same, 2)),
        ]
    )
    assert decide(batch, loaded(), {}).is_duplicate == [True, False, False, True]


def test_a_conflicting_redelivery_in_a_later_batch_loses_to_the_committed_first_delivery() -> None:
    cache = loaded()
    first = narrow(("a", T0, T0 + dt.timedelta(seconds=1), 1))
    cache.add(committed_rows(first, decide(first, cache, {})))
    # A later batch brings "a" again with another payload, even stamped earlier by its producer: still a duplicate.
    later = narrow(("a", T0 + dt.timedelta(seconds=30), T0, 40), ("a", T0, T0 + dt.timedelta(seconds=5), 41))
    assert decide(later, cache, {}).is_duplicate == [True, True]
    assert cache.get("a") == ("t", 0, 1)


def test_after_a_restart_the_reloaded_cache_keeps_the_first_delivery_and_a_replayed_batch_decides_as_before() -> None:
    # Before the restart: batch 1 held two conflicting deliveries of "a"; offset 1 was committed.
    before = loaded()
    batch1 = narrow(("a", T0, T0, 1), ("a", T0 + dt.timedelta(minutes=2), T0 + dt.timedelta(seconds=1), 2))
    assert decide(batch1, before, {}).is_duplicate == [False, True]
    silver = committed_rows(batch1, decide(batch1, before, {}))
    # The restarted stream knows only silver: a fresh cache loaded from it.
    after = EventIdCache(dt.timedelta(minutes=30))
    after.load(silver, T0 - dt.timedelta(minutes=30))
    assert decide(batch1, after, {}).is_duplicate == [False, True], "a replay of batch 1 must decide the same"
    batch2 = narrow(("a", T0 + dt.timedelta(minutes=5), T0 + dt.timedelta(minutes=5), 3))
    assert decide(batch2, after, {}).is_duplicate == [True]


def test_after_a_restart_a_redelivery_of_an_old_event_is_decided_by_the_cold_lookup() -> None:
    old = T0 - dt.timedelta(days=1)
    after = loaded()  # the hot tier starts 30 minutes before T0: "a" from yesterday is only in silver
    batch = narrow(("a", old, T0, 7))
    assert cold_lookups(batch, after) == [("a", old.date())]
    assert decide(batch, after, {"a": ("t", 0, 1)}).is_duplicate == [True]
    assert decide(batch, after, {"a": ("t", 0, 7)}).is_duplicate == [False], "its own committed row is no duplicate"


@settings(max_examples=200, deadline=None)
@given(
    deliveries=st.lists(
        st.tuples(st.sampled_from("abcde"), st.integers(0, 3), st.sampled_from(["s", "t"]), st.integers(0, 1)),
        max_size=25,
    ),
    committed_at=st.dictionaries(st.sampled_from("abcde"), st.integers(0, 30), max_size=3),
)
def test_a_delivery_is_a_duplicate_exactly_when_another_record_of_its_id_came_first_or_is_committed(
    deliveries: list[tuple[str, int, str, int]], committed_at: dict[str, int]
) -> None:
    # (event id, Kafka timestamp in ms, topic, partition); offsets are unique per delivery, as Kafka's are.
    rows = [
        (event_id, T0 + dt.timedelta(milliseconds=ms), topic, part, offset)
        for offset, (event_id, ms, topic, part) in enumerate(deliveries)
    ]
    batch = pa.table(
        {
            "event_id": pa.array([r[0] for r in rows], pa.string()),
            "event_time": pa.array([T0] * len(rows), pa.timestamp("us")),
            "kafka_timestamp": pa.array([r[1] for r in rows], pa.timestamp("us")),
            "kafka_topic": pa.array([r[2] for r in rows], pa.string()),
            "kafka_partition": pa.array([r[3] for r in rows], pa.int32()),
            "kafka_offset": pa.array([r[4] for r in rows], pa.int64()),
        }
    )
    # Committed records sit at offsets the batch may share (a replayed batch) or not (an earlier batch).
    cache = loaded(*((event_id, T0, offset) for event_id, offset in committed_at.items()))

    def expected(row: tuple[str, dt.datetime, str, int, int]) -> bool:
        event_id, kafka_ts, topic, part, offset = row
        if event_id in committed_at:
            return ("t", 0, committed_at[event_id]) != (topic, part, offset)
        return any(
            other[0] == event_id and (other[1], other[2], other[3], other[4]) < (kafka_ts, topic, part, offset)
            for other in rows
        )

    assert decide(batch, cache, {}).is_duplicate == [expected(row) for row in rows]
