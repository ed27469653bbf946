"""One topology's measurement, in a process of its own: catch-up throughput, then live freshness.

``benchmarks/test_topology.py`` starts the services of a topology and runs this module with the settings in
``SHOPLAKE_*`` variables, so that each topology gets a fresh driver JVM whose Spark master is the one the settings
name (``local[N]`` or a standalone cluster); a process can hold only one SparkContext. It prints nothing and
writes one JSON object to ``--out``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks.pipeline_runs import catch_up, measure_freshness
from pipeline.config import Settings
from pipeline.kafka_topics import ensure_topics
from pipeline.spark_session import build_spark_session


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, required=True, help="events preloaded for the catch-up run")
    parser.add_argument("--per-batch", type=int, required=True, help="max offsets per micro-batch when catching up")
    parser.add_argument("--rate", type=float, required=True, help="events/s of the live run")
    parser.add_argument("--duration", type=float, required=True, help="seconds of the live run")
    parser.add_argument("--warmup", type=int, required=True, help="events streamed before the live run is measured")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    settings = Settings()
    ensure_topics(settings)
    spark = build_spark_session(settings)
    throughput = catch_up(spark, settings, args.events, args.per_batch)
    freshness = measure_freshness(spark, settings, args.rate, args.duration, warmup_events=args.warmup)
    result = {
        "spark_master": settings.spark.master,
        "catch_up": throughput,
        "freshness": {**freshness.summary(), "phases": freshness.phases},
        "latencies": freshness.latencies,
    }
    args.out.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
