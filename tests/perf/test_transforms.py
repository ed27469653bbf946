"""Throughput of the pure transforms, without Kafka or Iceberg: where a micro-batch's time goes.

pytest-benchmark measures each stage on the same 100,000 Kafka-shaped records held by Spark: validating them
against the contract (parse + every named rule), and turning the valid ones into silver rows of every type; and,
in pure Python, the oracle over a simulated day. `tox -e perf` writes the figures to
``benchmarks/results/perf.json``.
"""

from __future__ import annotations

import pytest
from pyspark.sql import DataFrame, SparkSession
from pytest_benchmark.fixture import BenchmarkFixture

from benchmarks.datasets import as_ingested, kafka_records, multiplied, read_everything
from pipeline.contracts.events import EventType
from pipeline.streaming.bronze import to_bronze
from pipeline.streaming.job import validated_events
from pipeline.streaming.silver import EventValidator, filter_valid, to_silver
from simulation import oracle
from simulation.generator import generate
from simulation.scenario import load_scenario
from simulation.sinks import simulated_items

RECORDS = 100_000
SMALL_BATCH = 12_000


@pytest.fixture(scope="module")
def kafka_df(spark: SparkSession) -> DataFrame:
    base = kafka_records(spark, "dirty_stream", seed=5, events=5_000)
    copies = -(-RECORDS // base.count())
    return multiplied(base, copies).limit(RECORDS).localCheckpoint()


def test_validation_rate(benchmark: BenchmarkFixture, kafka_df: DataFrame) -> None:
    validator = EventValidator("shop", 65536)
    validated = validator.validate(to_bronze(kafka_df))
    benchmark.pedantic(lambda: read_everything(validated), rounds=3, iterations=1)
    assert validated.count() == RECORDS
    benchmark.extra_info["records_per_s"] = round(RECORDS / benchmark.stats.stats.mean)


@pytest.mark.parametrize("coalesced", ["before validation", "after validation"])
def test_small_batch_validation_time(benchmark: BenchmarkFixture, spark: SparkSession, coalesced: str) -> None:
    """A live micro-batch's size (12,000 records over the ten partitions of the Kafka source), validated and
    materialized in two partitions as the stream does ("before validation"), against coalescing the validated
    rows ("after validation"): each validation projection generates its code once per partition it runs on."""
    records = kafka_records(spark, "normal_day", seed=6, events=SMALL_BATCH).repartition(10).localCheckpoint()
    validator = EventValidator("shop", 65536)

    def batch() -> DataFrame:  # planned anew each round, as every micro-batch is
        if coalesced == "before validation":
            return validated_events(records, validator, partitions=2)
        return validator.validate(to_bronze(records)).coalesce(2)

    benchmark.pedantic(lambda: batch().localCheckpoint().count(), rounds=7, iterations=1, warmup_rounds=2)
    assert batch().count() == records.count()
    benchmark.extra_info["records"] = records.count()


def test_silver_rows_rate(benchmark: BenchmarkFixture, kafka_df: DataFrame) -> None:
    valid = as_ingested(filter_valid(EventValidator("shop", 65536).validate(to_bronze(kafka_df)))).localCheckpoint()
    valid_rows = valid.count()

    silver = [to_silver(valid, event_type) for event_type in EventType]
    benchmark.pedantic(lambda: [read_everything(rows) for rows in silver], rounds=3, iterations=1)
    assert sum(rows.count() for rows in silver) == valid_rows
    benchmark.extra_info["rows_per_s"] = round(valid_rows / benchmark.stats.stats.mean)


def test_oracle_rate(benchmark: BenchmarkFixture) -> None:
    scenario = load_scenario("dirty_stream")
    records, _ = generate(scenario, 6, 20_000)
    items = list(simulated_items(records, scenario, live=False))
    truth = benchmark.pedantic(lambda: oracle.daily_sales_summary(oracle.read_truth(iter(items))), rounds=3)
    assert truth
    benchmark.extra_info["records_per_s"] = round(len(items) / benchmark.stats.stats.mean)
