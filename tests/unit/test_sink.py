"""When the stream starts a fold of the roll-ups: on its interval, and rarely while catching up."""

from __future__ import annotations

import datetime as dt
import time

from pipeline.streaming.plan import BatchReport
from pipeline.streaming.sink import FoldCadence


def cadence(seconds_since_last_fold: float) -> FoldCadence:
    return FoldCadence(interval_s=10.0, backlog_s=300.0, last=time.monotonic() - seconds_since_last_fold)


def batch(waited_s: float) -> BatchReport:
    """A batch starting now whose oldest record reached Kafka ``waited_s`` seconds ago."""
    now = time.time()
    return BatchReport(batch_id=7, started_at=now, kafka_ts_min=dt.datetime.fromtimestamp(now - waited_s, dt.UTC))


def test_a_stream_that_keeps_up_folds_once_the_interval_has_passed() -> None:
    assert not cadence(seconds_since_last_fold=9).due(batch(waited_s=3))
    assert cadence(seconds_since_last_fold=11).due(batch(waited_s=3))


def test_a_stream_working_through_a_backlog_folds_only_every_backlog_interval() -> None:
    assert not cadence(seconds_since_last_fold=11).due(batch(waited_s=60))
    assert not cadence(seconds_since_last_fold=299).due(batch(waited_s=60))
    assert cadence(seconds_since_last_fold=301).due(batch(waited_s=60))


def test_the_first_batch_that_is_no_longer_behind_folds_what_the_backlog_left() -> None:
    caught_up = cadence(seconds_since_last_fold=120)
    assert not caught_up.due(batch(waited_s=40))
    assert caught_up.due(batch(waited_s=2))


def test_a_minute_merge_reads_from_the_tails_oldest_minute_and_a_session_merge_a_lookback_before() -> None:
    from pipeline.streaming.rollups import MINUTE_ROLLUP, SESSION_ROLLUP

    oldest, lookback = dt.datetime(2026, 11, 2, 9, 30), dt.timedelta(days=7)
    assert MINUTE_ROLLUP.oldest_match(oldest, lookback) == oldest
    assert SESSION_ROLLUP.oldest_match(oldest, lookback) == dt.datetime(2026, 10, 26, 9, 30)
