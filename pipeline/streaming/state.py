"""The stream's state between micro-batches, recovered once from the tables before the query starts.

What a micro-batch needs to know beyond its own records is recovered by :func:`recover`, in one place, before
the streaming query starts (there is no other path: the first batch after a restart runs like any other):

* the stream's id (its checkpoint's query id; a new checkpoint gets one here, before Spark starts on it);
* per table, the highest batch id of this stream it holds (:class:`pipeline.streaming.commit.BatchCommitter`);
* the newest event time of each committed batch, from which the watermark of any batch follows, a replayed one
  included: the newest event time of the batches before it, minus ``stream.late_after_seconds``;
* the newest ingest time any table holds: ingest times grow strictly from batch to batch, also across restarts
  (the roll-ups fold by them), and every silver row ingested so far may be folded;
* every event id committed to silver (:class:`pipeline.streaming.dedup.CommittedIds`): loaded in a thread of its
  own while the Kafka source and the query start; the first batch waits for it before it decides a duplicate,
  and a failed load fails that batch, which then writes nothing.

After each committed batch, :meth:`StreamState.advance` moves it on.
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
import logging
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession

from pipeline.iceberg_io import current_snapshot_id, read_table
from pipeline.streaming.checkpoint import ensure_query_id
from pipeline.streaming.commit import NOTHING_COMMITTED, StreamCommit, stream_commits
from pipeline.streaming.dedup import CommittedIds, fingerprints
from pipeline.tables import BRONZE_EVENTS, QUARANTINE_EVENTS, SILVER, STREAM_BATCHES

log = logging.getLogger(__name__)

EPOCH = dt.datetime.fromtimestamp(0, dt.UTC)
_TICK = dt.timedelta(milliseconds=1)
# Every table the stream appends to with its markers.
MARKED_TABLES = (BRONZE_EVENTS, *SILVER.values(), QUARANTINE_EVENTS, STREAM_BATCHES)


def _in_thread(work: functools.partial[CommittedIds], name: str) -> Future[CommittedIds]:
    """Run ``work`` in a daemon thread of its own (a process may exit before it ends); its outcome as a future."""
    outcome: Future[CommittedIds] = Future()

    def run() -> None:
        try:
            outcome.set_result(work())
        except BaseException as error:  # handed to whoever waits for the outcome
            outcome.set_exception(error)

    threading.Thread(target=run, name=name, daemon=True).start()
    return outcome


def load_committed_ids(spark: SparkSession, catalog: str, max_ids: int) -> CommittedIds:
    """Every event id silver holds, as :class:`CommittedIds` (one Spark job over the ids of the silver tables
    that have rows; none on a fresh lake)."""
    ids = CommittedIds(max_ids)
    written = [spec for spec in SILVER.values() if current_snapshot_id(spark, catalog, spec) is not None]
    if written:
        frames = [read_table(spark, catalog, spec).select(*fingerprints()) for spec in written]
        ids.add(functools.reduce(DataFrame.unionByName, frames).toArrow())
    log.info("%d committed event ids loaded for deduplication (%d MB)", len(ids), len(ids) * 24 // 2**20)
    return ids


@dataclass
class StreamState:
    """What the stream knows between batches; built by :func:`recover`, moved on by :meth:`advance`."""

    stream_id: str
    late_after: dt.timedelta
    committed_batches: dict[str, int]  # table -> the highest batch id of this stream it holds
    recovered_event_times: list[tuple[int, dt.datetime]]  # (batch id, its newest event time), by batch id
    last_ingest: dt.datetime | None  # the newest ingest time given to any batch, recovered or this run's
    completed_ingest: dt.datetime | None  # the newest ingest time of a batch every table of which committed
    ids_loading: Future[CommittedIds]
    max_event_time: dt.datetime | None = None  # the newest event time of the batches this run committed
    _ids: CommittedIds | None = field(default=None, repr=False)

    def newest_event_time_before(self, batch_id: int) -> dt.datetime | None:
        """The newest event time of the batches committed before ``batch_id`` (a replayed batch sees exactly
        what its first attempt saw)."""
        position = bisect.bisect_left(self.recovered_event_times, batch_id, key=lambda entry: entry[0])
        recovered = max((t for _, t in self.recovered_event_times[:position]), default=None)
        return max((t for t in (recovered, self.max_event_time) if t is not None), default=None)

    def watermark(self, batch_id: int) -> dt.datetime:
        """Events older than this are late in batch ``batch_id``."""
        newest = self.newest_event_time_before(batch_id)
        return EPOCH if newest is None else newest - self.late_after

    def next_ingest_time(self, now: dt.datetime) -> dt.datetime:
        """``now``, or just after the last ingest time given when the clock has not passed it."""
        ingest = now if self.last_ingest is None or now > self.last_ingest else self.last_ingest + _TICK
        self.last_ingest = ingest
        return ingest

    def committed_ids(self) -> CommittedIds:
        """Every event id committed so far (waits for the load started by :func:`recover`; raises its error)."""
        if self._ids is None:
            self._ids = self.ids_loading.result()
        return self._ids

    def advance(self, ingest_time: dt.datetime, max_event_time: dt.datetime | None, committed: pa.Table) -> None:
        """A batch committed every table: its ids are committed, its times the newest."""
        self.committed_ids().add(committed)
        self.max_event_time = max_event_time
        self.completed_ingest = ingest_time


def recover(
    spark: SparkSession, catalog: str, checkpoint_location: str, late_after: dt.timedelta, max_ids: int
) -> StreamState:
    """The stream's state as the tables and the checkpoint hold it (see the module's docstring)."""
    stream_id = ensure_query_id(spark, checkpoint_location)
    commits = stream_commits(spark, catalog, MARKED_TABLES)
    ours = [c for c in commits if c.stream_id == stream_id and c.batch_id is not None]
    committed = {spec.identifier: NOTHING_COMMITTED for spec in MARKED_TABLES}
    for commit in ours:
        assert commit.batch_id is not None
        committed[commit.table] = max(committed[commit.table], commit.batch_id)
    last_ingest = _newest_ingest(commits)
    loading = _in_thread(functools.partial(load_committed_ids, spark, catalog, max_ids), "dedup-committed-ids")
    state = StreamState(
        stream_id=stream_id,
        late_after=late_after,
        committed_batches=committed,
        recovered_event_times=sorted(
            (c.batch_id, c.max_event_time) for c in ours if c.batch_id is not None and c.max_event_time is not None
        ),
        last_ingest=last_ingest,
        completed_ingest=last_ingest,
        ids_loading=loading,
    )
    if ours:
        log.info("stream %s resumes after batch %d", stream_id, max(committed.values()))
    return state


def _newest_ingest(commits: list[StreamCommit]) -> dt.datetime | None:
    return max((c.ingest_time for c in commits if c.ingest_time is not None), default=None)
