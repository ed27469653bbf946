"""`shoplake demo`: one simulated shop day through the whole chain, on local services, then everything stops.

Kafka broker up -> simulator writes the day to a log and sends it to Kafka -> the streaming job writes bronze,
silver and quarantine -> Dagster materializes the daily gold partitions -> the gold rows (read back with
PyIceberg), the oracle's verdict and the Kafka -> silver latency are printed.
"""

from __future__ import annotations

import shutil
import time

from dagster import DagsterInstance
from rich.table import Table

from devstack.jars import resolve as resolve_jars
from devstack.services import start_services
from pipeline.catalog import pyiceberg_catalog
from pipeline.config import Settings
from pipeline.kafka_topics import ensure_topics
from pipeline.observability import latency_summary
from pipeline.orchestration.runs import materialize_gold
from pipeline.spark_session import build_spark_session
from pipeline.streaming.job import start_stream
from pipeline.tables import GOLD_DAILY_SALES_SUMMARY
from shoplake.runtime import BatchCounter, console, kafka_sender, progress_bar
from simulation import oracle
from simulation.generator import generate
from simulation.scenario import load_scenario
from simulation.sinks import log_items, write_log

GOLD_COLUMNS = ("orders", "revenue", "unique_customers", "visitors", "sessions", "conversion_rate")


def demo_settings(settings: Settings) -> Settings:
    """A fresh catalog, warehouse and checkpoints under ``<home>/demo`` (the jars stay where they are)."""
    root = settings.home / "demo"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    catalog = settings.catalog.model_copy(
        update={"uri": f"sqlite:///{root / 'catalog.db'}", "warehouse": (root / "warehouse").as_uri()}
    )
    stream = settings.stream.model_copy(update={"checkpoint_dir": str(root / "checkpoints")})
    spark = settings.spark.model_copy(update={"jars_dir": str(settings.spark_jars_dir)})
    return settings.model_copy(update={"catalog": catalog, "stream": stream, "spark": spark})


def run_demo(settings: Settings, scenario_name: str, seed: int, events: int, rate: float | None) -> bool:
    """Returns True when gold equals the oracle for every day."""
    started = time.monotonic()
    resolve_jars(settings.home, log=console.print)
    settings = demo_settings(settings)
    root = settings.home / "demo"
    scenario = load_scenario(scenario_name)

    console.rule("[bold]1. services")
    with start_services(settings.home, root / "services") as services:
        settings = services.apply(settings)
        console.print(f"Kafka ({services.mode}) at {services.kafka_bootstrap}; catalog {settings.catalog_uri}")
        topics = ensure_topics(settings)
        spark = build_spark_session(settings)

        console.rule("[bold]2. simulate")
        log_path = root / f"{scenario.name}.jsonl"
        records, manifest = generate(scenario, seed, events)
        with progress_bar(f"simulating {scenario.name}", None) as advance:
            write_log(records, scenario, log_path, manifest, advance)
        console.print(f"{manifest.records} records ({manifest.events} events) in {log_path}")

        console.rule("[bold]3. stream")
        counter = BatchCounter()
        stream = start_stream(spark, settings, on_batch=[counter])
        try:
            pace = f" at {rate:,.0f}/s" if rate else ""
            with kafka_sender(settings) as kafka:
                kafka.send(log_items(log_path), f"sending to {len(topics)} topics{pace}", manifest.records, rate)
            counter.wait_for(manifest.records, timeout_s=300, failed=stream.exception)
        finally:
            stream.stop()
        console.print(f"streamed {counter.records} records in {counter.batches} micro-batches")
        latency = latency_summary(spark, settings.catalog.name)

        console.rule("[bold]4. gold (Dagster)")
        instance = DagsterInstance.ephemeral()
        materialize_gold(settings, scenario.dates, instance, lambda day, _: console.print(f"materialized {day}"))

        console.rule("[bold]5. results")
        gold = pyiceberg_catalog(settings).load_table(GOLD_DAILY_SALES_SUMMARY.identifier).scan().to_arrow().to_pylist()
        expected = oracle.daily_sales_summary(oracle.read_log(log_path))
        matches = _print_gold(gold, expected)
        if latency:
            console.print(
                f"Kafka -> silver latency over {latency.events} events: p50 {latency.p50_s:.2f}s, "
                f"p95 {latency.p95_s:.2f}s, p99 {latency.p99_s:.2f}s, max {latency.max_s:.2f}s "
                f"(trigger {settings.stream.trigger_seconds:g}s, the first micro-batch includes Spark's warm-up)"
            )
        spark.stop()
    console.print(f"done in {time.monotonic() - started:.0f}s; services stopped")
    return matches


def _print_gold(gold: list[dict], expected: dict) -> bool:
    table = Table(title="gold.daily_sales_summary (read with PyIceberg)")
    for column in ("event_date", *GOLD_COLUMNS, "oracle"):
        table.add_column(column, justify="right")
    all_match = True
    for row in sorted(gold, key=lambda r: r["event_date"]):
        truth = expected.get(row["event_date"])
        match = truth is not None and all(row[c] == value for c, value in truth.items())  # every metric, not just shown
        all_match &= match
        table.add_row(
            str(row["event_date"]), *(str(row[c]) for c in GOLD_COLUMNS), "[green]equal" if match else "[red]DIFFERS"
        )
    all_match &= {r["event_date"] for r in gold} == set(expected)
    console.print(table)
    return all_match
