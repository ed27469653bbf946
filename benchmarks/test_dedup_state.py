"""Deduplication's state: what every committed event id costs in memory, at start-up and per micro-batch.

Two measures:

* **start-up**: a silver table holding ``n`` rows (generated inside Spark, ids shaped like UUIDs), loaded into
  :class:`pipeline.streaming.dedup.CommittedIds` as a restarted stream loads it
  (:func:`pipeline.streaming.state.load_committed_ids`): seconds, ids per second, and the driver's resident
  memory before and after;
* **per batch**: with ``n`` ids held (fingerprints drawn at random, straight into numpy), the seconds to look up
  a batch of 7,800 new ids (a batch at 5,000 events/s) and to add them, and the number of sorted runs searched.

``--full``: start-up at 1M and 5M rows, per batch at 10M and 100M ids; the quick variant: 200,000 and 1M.
Result: ``benchmarks/results/dedup_state.json``.
"""

from __future__ import annotations

import resource
import statistics
import time

import numpy as np
import pyarrow as pa
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from benchmarks.harness import Results
from pipeline.contracts.events import EventType
from pipeline.iceberg_io import ensure_tables
from pipeline.spark_session import build_spark_session
from pipeline.streaming.dedup import BYTES_PER_ID, FINGERPRINT_COLUMNS, CommittedIds
from pipeline.streaming.state import load_committed_ids
from pipeline.tables import SILVER

BATCH = 7_800


def _rss_mib() -> float:
    """The process's peak resident memory so far (ru_maxrss, KiB on Linux), in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _silver_with(spark: SparkSession, catalog: str, rows: int) -> None:
    """``silver.page_views`` holding ``rows`` rows whose ids look like UUIDs; the other columns the load does not
    read are null."""
    spec = SILVER[EventType.PAGE_VIEW]
    ensure_tables(spark, catalog, list(SILVER.values()))  # as the stream creates them
    hexed = F.sha2(F.col("id").cast("string"), 256)
    values = {
        "event_id": F.concat_ws("-", *(hexed.substr(start, length) for start, length in [(1, 8), (9, 4), (13, 4)])),
        "kafka_topic": F.lit("shop.page_view"),
        "kafka_partition": (F.col("id") % 10).cast("int"),
        "kafka_offset": F.col("id"),
    }
    spark.range(rows).select(
        *[(values[f.name] if f.name in values else F.lit(None)).cast(f.dataType).alias(f.name) for f in spec.schema]
    ).writeTo(spec.qualified(catalog)).append()


def _fingerprints(count: int, rng: np.random.Generator) -> pa.Table:
    draw = rng.integers(np.iinfo(np.int64).min, np.iinfo(np.int64).max, size=(3, count), dtype=np.int64)
    return pa.table(dict(zip(FINGERPRINT_COLUMNS, draw, strict=True)))


def test_committed_ids_load_at_start_and_cost_little_per_batch(
    full: bool, results: Results, spark: SparkSession, lake
) -> None:
    startup = []
    for rows in [1_000_000, 5_000_000] if full else [200_000]:
        catalog = f"{lake.catalog.name}_{rows}"
        build_spark_session(lake.model_copy(update={"catalog": lake.catalog.model_copy(update={"name": catalog})}))
        _silver_with(spark, catalog, rows)
        before = _rss_mib()
        started = time.monotonic()
        ids = load_committed_ids(spark, catalog, max_ids=2 * rows)
        seconds = time.monotonic() - started
        assert len(ids) == rows
        startup.append(
            {
                "ids": rows,
                "load_s": round(seconds, 2),
                "ids_per_s": round(rows / seconds),
                "peak_rss_mib_before": round(before),
                "peak_rss_mib_after": round(_rss_mib()),
            }
        )
        del ids

    per_batch = []
    rng = np.random.default_rng(7)
    for held in [10_000_000, 100_000_000] if full else [1_000_000]:
        ids = CommittedIds(max_ids=2 * held)
        started = time.monotonic()
        for start in range(0, held, 10_000_000):
            ids.add(_fingerprints(min(10_000_000, held - start), rng))
        build_s = time.monotonic() - started
        lookups, adds = [], []
        for _ in range(20):
            batch = _fingerprints(BATCH, rng)
            started = time.monotonic()
            found, _ = ids.lookup(batch)
            lookups.append(time.monotonic() - started)
            assert not found.any()
            started = time.monotonic()
            ids.add(batch)
            adds.append(time.monotonic() - started)
        per_batch.append(
            {
                "ids_held": held,
                "bytes_held_mib": round(len(ids) * BYTES_PER_ID / 2**20),
                "runs": ids.runs,
                "build_s": round(build_s, 2),
                "lookup_ms_median": round(1000 * statistics.median(lookups), 2),
                "add_ms_median": round(1000 * statistics.median(adds), 2),
                "add_ms_max": round(1000 * max(adds), 2),
            }
        )
        del ids
    results.add("dedup_state", {"batch": BATCH, "startup": startup, "per_batch": per_batch})
