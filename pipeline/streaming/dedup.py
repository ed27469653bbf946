"""Which deliveries of a micro-batch are duplicates: the first delivery of an event id wins, whatever its timestamp.

A delivery is a *duplicate* when an earlier delivery of the same ``event_id`` is already in silver as another
Kafka record, or comes earlier in the same batch (by Kafka timestamp, then topic, partition, offset). A silver row
from the *same* Kafka record is this very record, written by an attempt of this batch that died before Spark
recorded it: replaying the batch then decides exactly what the first attempt decided.

The decision looks at the event id alone, never at the event's time: a producer that re-stamps an event when it
retries (a mobile SDK setting the time on send, a gateway filling ``timestamp`` on arrival) sends a duplicate,
not a new event.

Every id ever committed to silver is held in the driver by :class:`CommittedIds`, as a 128-bit fingerprint (two
independent 64-bit hashes of the id, computed by Spark in the batch's one job) beside a 64-bit fingerprint of the
Kafka record that carried it: 24 bytes an id. It is loaded from silver once when the stream starts
(:mod:`pipeline.streaming.state`) and grows with each committed batch. Looking a batch up is a binary search in a
few sorted arrays, in memory: no batch scans silver or an index. Two different ids share a fingerprint with a
probability of about ``n / 2**128`` per delivery (``n`` ids held): none in the life of any shop.

The number of ids held is bounded by ``stream.dedup_max_ids``: a batch that would take the set past it stops the
stream before it writes anything (:class:`DedupCapacityError`), never admitting a duplicate it could not check.

Everything here is plain Python over Arrow and numpy arrays: no Spark job.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import Column
from pyspark.sql import functions as F

from pipeline.errors import ShoplakeError
from pipeline.tables import KAFKA_COORDINATES

# The fingerprint columns of a delivery, computed by Spark (xxhash64 is a built-in: no Python worker).
ID_HIGH, ID_LOW, RECORD_HASH = "_id_high", "_id_low", "_record_hash"
FINGERPRINT_COLUMNS = (ID_HIGH, ID_LOW, RECORD_HASH)
# The second half of an id's fingerprint hashes it with another seed (xxhash64's seed is the hash of the columns
# before it): an independent 64-bit hash of the same text.
_LOW_SEED = "shoplake.event-id"
BYTES_PER_ID = 24
# Sorted runs merge as they double, up to this many ids (384 MB): larger ones stay apart, so that no merge holds a
# batch up for long (two runs of 8M merge in about 0.2 s); a lookup then searches one run per 16M ids held.
_LARGEST_RUN = 1 << 24


class DedupCapacityError(ShoplakeError):
    """The committed event ids would outgrow ``stream.dedup_max_ids``: the stream stops before it writes."""


def fingerprints() -> list[Column]:
    """The columns :class:`CommittedIds` keys on: the event id's two 64-bit hashes and the Kafka record's one."""
    return [
        F.xxhash64("event_id").alias(ID_HIGH),
        F.xxhash64(F.lit(_LOW_SEED), "event_id").alias(ID_LOW),
        F.xxhash64(*KAFKA_COORDINATES).alias(RECORD_HASH),
    ]


def _int64(table: pa.Table, column: str) -> np.ndarray:
    return table.column(column).to_numpy().astype(np.int64, copy=False)


@dataclass
class _Run:
    """Fingerprints sorted by their high half, with the low half and the record hash of each."""

    high: np.ndarray
    low: np.ndarray
    record: np.ndarray

    @classmethod
    def sorted(cls, high: np.ndarray, low: np.ndarray, record: np.ndarray) -> _Run:
        # Stable sort: on the concatenation of two sorted runs it is a linear merge (numpy's timsort finds them).
        order = np.argsort(high, kind="stable")
        return cls(high[order], low[order], record[order])

    def __len__(self) -> int:
        return len(self.high)

    def lookup(self, high: np.ndarray, low: np.ndarray, found: np.ndarray, record: np.ndarray) -> None:
        """Mark the fingerprints this run holds in ``found`` and put their record hashes in ``record``; ``high``
        sorted (a binary search per needle then walks nearby memory: about 5x faster than unsorted needles)."""
        start = np.searchsorted(self.high, high, side="left")
        inside = np.flatnonzero(start < len(self.high))
        same_high = inside[self.high[start[inside]] == high[inside]]
        same = self.low[start[same_high]] == low[same_high]
        hit = same_high[same]  # the usual hit: the first fingerprint with this high half is the one
        found[hit] = True
        record[hit] = self.record[start[hit]]
        for i in same_high[~same]:  # another fingerprint shares the high half: about never
            j = start[i] + 1
            while j < len(self.high) and self.high[j] == high[i]:
                if self.low[j] == low[i]:
                    found[i], record[i] = True, self.record[j]
                    break
                j += 1


@dataclass
class CommittedIds:
    """Every event id committed to silver (its fingerprint) with the Kafka record that carried it.

    Held as sorted runs that merge as they double, up to a size (a log-structured set): adding a batch sorts the
    batch, merging is spread over the ids added, and a lookup searches each run.
    """

    max_ids: int
    _runs: list[_Run] = field(default_factory=list)

    def __len__(self) -> int:
        return sum(len(run) for run in self._runs)

    @property
    def runs(self) -> int:
        return len(self._runs)

    def add(self, committed: pa.Table) -> None:
        """Hold the fingerprints of ``committed`` (:data:`FINGERPRINT_COLUMNS`, one row per id not held yet: a
        replayed batch's rows loaded from silver are left out by :attr:`Verdicts.is_held`)."""
        if committed.num_rows == 0:
            return
        self.check_room(committed.num_rows)
        high, low, record = (_int64(committed, column) for column in FINGERPRINT_COLUMNS)
        for start in range(0, len(high), _LARGEST_RUN):
            chunk = slice(start, start + _LARGEST_RUN)
            self._runs.append(_Run.sorted(high[chunk], low[chunk], record[chunk]))
            self._merge()

    def _merge(self) -> None:
        """Merge the newest run into the one before it while it is as large, below the largest run's size."""
        while len(self._runs) > 1:
            newer, older = self._runs[-1], self._runs[-2]
            if len(newer) < len(older) or len(older) + len(newer) > _LARGEST_RUN:
                return
            self._runs[-2:] = [
                _Run.sorted(
                    np.concatenate([older.high, newer.high]),
                    np.concatenate([older.low, newer.low]),
                    np.concatenate([older.record, newer.record]),
                )
            ]

    def check_room(self, more: int) -> None:
        """Raise :class:`DedupCapacityError` unless ``more`` ids still fit under :attr:`max_ids`."""
        if len(self) + more > self.max_ids:
            raise DedupCapacityError(
                f"deduplication holds {len(self):,} committed event ids and a micro-batch would add {more:,}, more "
                f"than stream.dedup_max_ids ({self.max_ids:,}; {BYTES_PER_ID} bytes of driver memory each). The "
                "stream stopped before writing the batch: raise SHOPLAKE_STREAM__DEDUP_MAX_IDS (and the driver's "
                "memory) and start it again; it resumes from its checkpoint, exactly once."
            )

    def lookup(self, deliveries: pa.Table) -> tuple[np.ndarray, np.ndarray]:
        """Per delivery (:data:`FINGERPRINT_COLUMNS`): is its id committed, and the record hash it was committed
        with (meaningful where it is)."""
        high = _int64(deliveries, ID_HIGH)
        order = np.argsort(high)
        high, low = high[order], _int64(deliveries, ID_LOW)[order]
        found_sorted = np.zeros(len(high), dtype=bool)
        record_sorted = np.zeros(len(high), dtype=np.int64)
        for run in self._runs:
            run.lookup(high, low, found_sorted, record_sorted)
        found, record = np.empty_like(found_sorted), np.empty_like(record_sorted)
        found[order], record[order] = found_sorted, record_sorted
        return found, record


@dataclass(frozen=True)
class Verdicts:
    """Per valid delivery of a batch: is it a duplicate, and is it already held as committed (the record itself,
    written by an attempt of this batch that died before Spark recorded it)?"""

    is_duplicate: pa.BooleanArray
    is_held: pa.BooleanArray


def decide(valid: pa.Table, committed: CommittedIds) -> Verdicts:
    """Duplicate verdicts for a batch's valid deliveries (``event_id``, ``kafka_timestamp``, the coordinates and
    the fingerprints, one row each).

    A delivery of a committed id is a duplicate unless it is the committed record itself; of the deliveries of
    any other id, all but the first in delivery order are.
    """
    if valid.num_rows == 0:
        return Verdicts(pa.array([], pa.bool_()), pa.array([], pa.bool_()))
    keys = ["event_id", "kafka_timestamp", *KAFKA_COORDINATES]
    order = pc.sort_indices(valid, sort_keys=[(key, "ascending") for key in keys])
    ids_in_order = valid.column("event_id").take(order).combine_chunks()
    # In that order, a delivery whose id is the one before it is a later delivery of an id seen in this batch.
    later = pa.concat_arrays([pa.array([False]), pc.equal(ids_in_order[1:], ids_in_order[:-1]).fill_null(False)])
    in_batch = later.take(pc.sort_indices(order)).to_numpy(zero_copy_only=False)  # back to the batch's order
    found, record = committed.lookup(valid)
    is_same_record = record == _int64(valid, RECORD_HASH)
    return Verdicts(
        is_duplicate=pa.array(np.where(found, ~is_same_record, in_batch), pa.bool_()),
        is_held=pa.array(found & is_same_record, pa.bool_()),
    )
