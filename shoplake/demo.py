"""`shoplake demo`: one simulated shop day through the whole chain, on local services, then everything stops.

Kafka broker up -> simulator writes the day to a log and sends it to Kafka -> the streaming job writes bronze,
silver and quarantine -> Dagster materializes the daily gold partitions -> the gold rows (read back with
PyIceberg), the oracle's verdict and the Kafka -> silver latency are printed.

The screen is for a newcomer on an 80-column terminal: each step says what it does and how long it took, Spark's
and Java's own output goes to a log file named on screen, tables are transposed (one row per metric) so they
fit, and the end says where the tables are and what to try next.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dagster import DagsterInstance
from rich import box
from rich.table import Table

from devstack.jars import resolve as resolve_jars
from devstack.services import start_services
from pipeline.catalog import pyiceberg_catalog
from pipeline.config import Settings
from pipeline.kafka_topics import ensure_topics
from pipeline.observability import Freshness, freshness_since
from pipeline.orchestration.runs import materialize_gold
from pipeline.spark_session import build_spark_session
from pipeline.streaming.job import start_stream
from pipeline.tables import GOLD_DAILY_SALES_SUMMARY, GOLD_TABLES
from shoplake.runtime import BatchCounter, console, kafka_sender, progress_bar
from simulation import oracle
from simulation.generator import generate
from simulation.scenario import load_scenario
from simulation.sinks import log_items, write_log

# Every metric of the gold summary, in the table's order (the day itself heads the columns).
GOLD_METRICS = tuple(f.name for f in GOLD_DAILY_SALES_SUMMARY.schema.fields if f.name != "event_date")
STEPS = 5


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


@contextmanager
def step(number: int, title: str, what: str) -> Iterator[None]:
    """A numbered step: a heading, one line saying what it does, and how long it took."""
    console.rule(f"[bold]{number}/{STEPS} {title}", align="left")
    console.print(what, style="dim")
    started = time.monotonic()
    yield
    console.print(f"[green]✓[/green] {title}: {format_seconds(time.monotonic() - started)}")


def format_seconds(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = round(seconds)
    return f"{whole // 60}m {whole % 60:02d}s"


def demo_instance(dagster_home: Path) -> DagsterInstance:
    """The demo's own Dagster instance under ``<home>/demo/dagster`` (telemetry off: a scratch instance).

    Persistent, so `shoplake ui` with ``DAGSTER_HOME`` pointing there shows the demo's gold runs.
    """
    dagster_home.mkdir(parents=True, exist_ok=True)
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n", encoding="utf-8")
    return DagsterInstance.from_config(str(dagster_home))


@contextmanager
def output_to(log_path: Path) -> Iterator[None]:
    """Send this process's stdout and stderr (file descriptors 1 and 2) to ``log_path`` while inside.

    A process started inside (the Spark JVM) inherits them and keeps writing there for its whole life: its
    WARN lines, JVM notices and stack traces land in the log, not on the screen. Nothing of ours is printed
    inside, since it would land in the log too.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    saved = (os.dup(1), os.dup(2))
    try:
        with log_path.open("ab") as log:
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, copy in zip((1, 2), saved, strict=True):
            os.dup2(copy, fd)
            os.close(copy)


def python_warnings_to(log_path: Path) -> None:
    """Python warnings and library log records (py4j, Dagster's own) go to the log file as well."""
    handler = logging.FileHandler(log_path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    logging.captureWarnings(True)
    for name in ("py.warnings", "py4j", "dagster"):
        logger = logging.getLogger(name)
        logger.addHandler(handler)
        logger.propagate = False


def run_demo(settings: Settings, scenario_name: str, seed: int, events: int, rate: float | None) -> bool:
    """Returns True when gold equals the oracle for every day."""
    started = time.monotonic()
    resolve_jars(settings.home, log=console.print)
    settings = demo_settings(settings)
    root = settings.home / "demo"
    jvm_log = root / "logs" / "spark.log"
    jvm_log.parent.mkdir(parents=True)
    python_warnings_to(jvm_log)
    scenario = load_scenario(scenario_name)
    console.print(f"Spark and Java output goes to [bold]{jvm_log}[/bold]", soft_wrap=True)

    with step(1, "services", "Start a Kafka broker and an S3 object store as local processes, and Spark."):
        services = start_services(settings.home, root / "services")
    with services:
        settings = services.apply(settings)
        console.print(f"Kafka ({services.mode}) at {services.kafka_bootstrap}")
        console.print(f"Iceberg catalog {settings.catalog_uri}", soft_wrap=True)
        topics = ensure_topics(settings)
        with output_to(jvm_log):
            spark = build_spark_session(settings)

        with step(2, "simulate", f"Generate {events:,} events of the '{scenario.name}' scenario into a log file."):
            log_path = root / f"{scenario.name}.jsonl"
            records, manifest = generate(scenario, seed, events)
            with progress_bar("simulating", None) as advance:
                write_log(records, scenario, log_path, manifest, advance)
            console.print(f"{manifest.records:,} records ({manifest.events:,} events) in {log_path}", soft_wrap=True)

        with step(3, "stream", "Send the log to Kafka; Spark streams it into bronze, silver and quarantine."):
            counter = BatchCounter()
            stream_started = time.time()
            stream = start_stream(spark, settings, on_batch=[counter])
            try:
                pace = f" at {rate:,.0f}/s" if rate else ""
                with kafka_sender(settings) as kafka:
                    kafka.send(log_items(log_path), f"to {len(topics)} topics{pace}", manifest.records, rate)
                counter.wait_for(manifest.records, timeout_s=300, failed=stream.exception)
            finally:
                stream.stop()
            console.print(f"streamed {counter.records:,} records in {counter.batches} micro-batches")
            latency = freshness_since(spark, settings.catalog.name, stream_started)

        with step(4, "gold", "Dagster builds each day's gold partitions from silver, with their checks."):
            instance = demo_instance(root / "dagster")
            materialize_gold(settings, scenario.dates, instance, lambda day, _: console.print(f"built {day}"))

        with step(5, "results", "Read gold back with PyIceberg and compare it with the simulator's oracle."):
            gold = (
                pyiceberg_catalog(settings)
                .load_table(GOLD_DAILY_SALES_SUMMARY.identifier)
                .scan()
                .to_arrow()
                .to_pylist()
            )
            expected = oracle.daily_sales_summary(oracle.read_log(log_path))
            matches = gold_matches(gold, expected)
            for table in gold_tables(gold, expected, width=console.width):
                console.print(table)
            if latency:
                console.print(latency_text(latency, settings.stream.trigger_seconds))
        spark.stop()
    console.print(summary_text(settings, jvm_log, root / "dagster", time.monotonic() - started), soft_wrap=True)
    return matches


def gold_matches(gold: Sequence[dict[str, Any]], expected: dict[Any, dict[str, Any]]) -> bool:
    """Every day of gold equals the oracle in every metric, and gold has exactly the oracle's days."""
    days_equal = {r["event_date"] for r in gold} == set(expected)
    return days_equal and all(_day_matches(row, expected.get(row["event_date"])) for row in gold)


def _day_matches(row: dict[str, Any], truth: dict[str, Any] | None) -> bool:
    return truth is not None and all(row[c] == value for c, value in truth.items())


def gold_tables(gold: Sequence[dict[str, Any]], expected: dict[Any, dict[str, Any]], width: int = 80) -> list[Table]:
    """The gold summary transposed: one row per metric, one column per day, as many tables as fit ``width``.

    The last row says whether the day equals the oracle (every metric, not only the ones shown).
    """
    rows = sorted(gold, key=lambda r: r["event_date"])
    cells = {str(r["event_date"]): [_cell(r[m]) for m in GOLD_METRICS] for r in rows}
    verdicts = {str(r["event_date"]): _day_matches(r, expected.get(r["event_date"])) for r in rows}
    label_width = max(len(m) for m in (*GOLD_METRICS, "oracle"))
    day_width = max([10, *(len(c) for column in cells.values() for c in column)])
    # Rich's box: one border per column plus one; one space of padding each side of every cell.
    per_table = max(1, (width - label_width - 3 - 1) // (day_width + 3))
    days = list(cells)
    tables = []
    for start in range(0, max(len(days), 1), per_table):
        chunk = days[start : start + per_table]
        title = "gold.daily_sales_summary" + (
            f" ({start + 1}-{start + len(chunk)} of {len(days)} days)" if len(days) > per_table else ""
        )
        table = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left")
        table.add_column("metric", no_wrap=True)
        for day in chunk:
            table.add_column(day, justify="right", no_wrap=True)
        for i, metric in enumerate(GOLD_METRICS):
            table.add_row(metric, *(cells[day][i] for day in chunk))
        table.add_row("oracle", *("[green]equal" if verdicts[day] else "[red]DIFFERS" for day in chunk))
        tables.append(table)
    return tables


def _cell(value: object) -> str:
    return "-" if value is None else str(value)


def latency_text(latency: Freshness, trigger_seconds: float) -> str:
    """Cold start and steady freshness apart: the events that waited for Spark to start say nothing about how
    fresh silver stays once it runs, and hiding them would flatter the numbers."""
    lines = [f"Cold start: the first event was visible in silver {latency.cold_start_s:.1f}s after the stream started."]
    if latency.warm is not None:
        warm = latency.warm
        lines.append(
            f"Kafka -> silver latency of the {warm.events:,} events sent after that: p50 {warm.p50_s:.2f}s, "
            f"p99 {warm.p99_s:.2f}s, max {warm.max_s:.2f}s (trigger {trigger_seconds:g}s)."
        )
    lines.append(
        f"Over all {latency.all.events:,} events, those that waited for the start included: "
        f"p50 {latency.all.p50_s:.2f}s, p99 {latency.all.p99_s:.2f}s."
    )
    return "\n".join(lines)


def summary_text(settings: Settings, jvm_log: Path, dagster_home: Path, seconds: float) -> str:
    """Where everything is and the commands to try next (pointed at the demo's catalog and Dagster instance).

    Paths are printed whole on their own lines (soft-wrapped by the terminal, so they copy as one line).
    """
    layers = ("bronze", "silver", "quarantine", *sorted({spec.identifier.split(".")[0] for spec in GOLD_TABLES}))
    return "\n".join(
        [
            f"[bold]Done in {format_seconds(seconds)}[/bold]; the services are stopped.",
            "",
            f"Tables ({', '.join(dict.fromkeys(layers))}) are in the Iceberg catalog",
            f"  {settings.catalog_uri}",
            "with their data files under",
            f"  {settings.warehouse_uri}",
            "Spark and Java log:",
            f"  {jvm_log}",
            "",
            "Try next, on the demo's tables (`shoplake services up` starts a broker):",
            f"  export SHOPLAKE_CATALOG__URI={settings.catalog_uri}",
            f"  export SHOPLAKE_CATALOG__WAREHOUSE={settings.warehouse_uri}",
            f"  export DAGSTER_HOME={dagster_home}",
            "  shoplake show gold.daily_sales_summary  # one table, read from Iceberg",
            "  shoplake live                           # events per minute, revenue, sessions",
            "  shoplake ui                             # Dagster: lineage, gold runs, checks",
        ]
    )
