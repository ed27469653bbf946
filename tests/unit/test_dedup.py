"""Duplicate decisions of the stream: first delivery wins, replays decide as before, the horizon bounds memory only."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

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


def loaded(*committed: tuple[str, dt.datetime, int], since: dt.datetime = T0 - dt.timedelta(minutes=30)):
    """A hot tier covering ``since`` on, holding (event_id, event_time, offset) rows as silver would."""
    cache = EventIdCache(dt.timedelta(minutes=30))
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
    assert needs_cold_lookup(batch, cache) == [("old", old.date())]
    assert decide(batch, cache, {"old": ("t", 0, 1)}).is_duplicate == [True, False]
    assert decide(batch, cache, {}).is_duplicate == [False, False]


def test_advancing_the_horizon_evicts_old_ids_and_hands_them_to_the_cold_lookup() -> None:
    cache = loaded(("a", T0, 1), ("b", T0 + dt.timedelta(hours=1), 2), since=T0)
    cache.advance(T0 + dt.timedelta(hours=1, minutes=10))
    assert cache.get("a") is None
    assert cache.get("b") == ("t", 0, 2)
    assert needs_cold_lookup(narrow(("a", T0, T0, 3)), cache) == [("a", T0.date())]


def test_ids_committed_by_a_batch_are_its_first_deliveries_only() -> None:
    batch = narrow(("a", T0, T0, 1), ("a", T0, T0, 2), ("b", T0, T0, 3))
    cache = loaded()
    verdicts = decide(batch, cache, {})
    cache.add(committed_rows(batch, verdicts))
    assert (len(cache), cache.get("a"), cache.get("b")) == (2, ("t", 0, 1), ("t", 0, 3))
    assert decide(narrow(("a", T0, T0, 9)), cache, {}).is_duplicate == [True]


def test_nothing_is_known_before_the_cache_is_loaded() -> None:
    cache = EventIdCache(dt.timedelta(minutes=30))
    assert needs_cold_lookup(narrow(("a", T0, T0, 1)), cache) == [("a", T0.date())]
