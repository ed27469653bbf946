"""The ``shoplake`` command line.

Configuration comes from ``pipeline.config.Settings`` (defaults < shoplake.toml < SHOPLAKE_* environment).
Errors in arguments end with a usage message (status 2); expected failures (``pipeline.errors.ShoplakeError``
and the local services' errors) with a one-line message (status 1); anything else is a bug and shows its
traceback.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from devstack.jars import JarsError
from devstack.process import ServiceError
from pipeline.config import load_settings
from pipeline.errors import ShoplakeError
from shoplake.runtime import command_settings, console, with_services

if TYPE_CHECKING:
    from rich.console import RenderableType

F = TypeVar("F", bound=Callable[..., Any])
EXPECTED_ERRORS = (ShoplakeError, ServiceError, JarsError)


def friendly_errors(func: F) -> F:
    """Turn expected failures into ``error: ...`` and exit status 1 (tracebacks are for bugs)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except EXPECTED_ERRORS as exc:
            console.print(f"[red]error:[/red] {exc}", highlight=False)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


def iso_date(_ctx: click.Context, _param: click.Parameter, value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)") from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--log-level",
    type=click.Choice(["warning", "info", "debug"]),
    default="warning",
    envvar="SHOPLAKE_LOG_LEVEL",
    show_default=True,
    help="Level of the pipeline's own logs, written to stderr with millisecond timestamps (info: the stream's "
    "start-up steps and batches, among others). Spark's and Kafka's own logs are not changed.",
)
def main(log_level: str) -> None:
    """Streaming e-commerce lakehouse: Kafka -> Spark -> Iceberg -> Dagster."""
    logging.basicConfig(format="%(asctime)s.%(msecs)03d %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for name in ("pipeline", "shoplake", "devstack"):
        logging.getLogger(name).setLevel(log_level.upper())


@main.command()
@click.option("--rest-catalog", is_flag=True, help="Also the Iceberg REST catalog server (jvm/rest-catalog/pom.xml).")
@click.option("--comet", is_flag=True, help="Also Apache DataFusion Comet, Spark's native engine (spark.comet).")
@friendly_errors
def jars(rest_catalog: bool, comet: bool) -> None:
    """Resolve the pinned JVM dependencies (jvm/pom.xml) with Maven, once, and build the project's own jars."""
    from devstack.jars import PROFILES, resolve

    profiles = PROFILES + (("rest-catalog",) if rest_catalog else ()) + (("comet",) if comet else ())
    for profile, folder in resolve(load_settings().home, profiles, log=console.print).items():
        console.print(f"{profile}: {folder}")


@main.group()
def contract() -> None:
    """The event contract, for producers: JSON Schema documents of every event type and schema version."""


@contract.command("export")
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@friendly_errors
def contract_export(folder: Path) -> None:
    """Write the JSON Schema documents into FOLDER (v<version>/<event_type>.schema.json)."""
    from pipeline.contracts.json_schema import export

    try:
        written = export(folder)
    except OSError as exc:
        raise click.ClickException(f"cannot write the documents into {folder}: {exc.strerror or exc}") from None
    console.print(f"{len(written)} JSON Schema documents written under {folder}", highlight=False)


# -- services ---------------------------------------------------------------------------------------------------


@main.group()
def services() -> None:
    """Local Kafka broker and object store (processes that outlive the command)."""


@services.command("up")
@click.option("--s3/--no-s3", default=True, show_default=True, help="Also start the S3-compatible object store.")
@click.option("--kafka-port", type=click.IntRange(1, 65535), help="Broker port (default: a free one).")
@click.option(
    "--catalog",
    type=click.Choice(["sqlite", "postgres", "rest"]),
    default="sqlite",
    show_default=True,
    help="Iceberg catalog: the SQLite file, the JDBC catalog on a local PostgreSQL, or the REST catalog server "
    "backed by it (warehouse on the object store).",
)
@click.option(
    "--spark",
    type=click.Choice(["local", "cluster"]),
    default="local",
    show_default=True,
    help="local: each application runs Spark in its own process (local[N]); cluster: also a Spark standalone "
    "master and workers (1 core, 1g each) that the stream and gold runs submit to.",
)
@click.option(
    "--spark-workers", type=click.IntRange(1, 8), default=2, show_default=True, help="Workers of --spark cluster."
)
@click.option(
    "--kafka-nodes",
    type=click.IntRange(1, 5),
    default=1,
    show_default=True,
    help="Kafka KRaft nodes; with more than one, topics are replicated to every node (min.insync.replicas one less).",
)
@click.option(
    "--topology",
    type=click.Choice(["single", "cluster"]),
    default="single",
    show_default=True,
    help="cluster: the multi-node shape in one go: 3 Kafka nodes, the REST catalog on PostgreSQL with the "
    "warehouse on the object store, and a Spark standalone cluster (options given explicitly still apply).",
)
@click.option(
    "--secure-kafka/--plaintext-kafka",
    default=None,
    help="Kafka with SASL/SCRAM-SHA-512 over TLS and ACLs: certificates and users are made in the services' "
    "folder, and each command logs in as what it is (the stream reads, a sender writes). Default: secure with "
    "--topology cluster, plaintext otherwise.",
)
@click.pass_context
@friendly_errors
def services_up(
    ctx: click.Context,
    s3: bool,
    kafka_port: int | None,
    catalog: str,
    spark: str,
    spark_workers: int,
    kafka_nodes: int,
    topology: str,
    secure_kafka: bool | None,
) -> None:
    """Start the services; `shoplake` commands then use them."""
    from devstack.jars import PROFILES, resolve
    from devstack.services import CLUSTER_KAFKA_NODES, CatalogBackend
    from devstack.services import services_up as up

    if topology == "cluster":
        if not s3:
            raise click.UsageError("--topology cluster keeps the warehouse on the object store; drop --no-s3")

        def defaulted(name: str) -> bool:
            return ctx.get_parameter_source(name) is click.core.ParameterSource.DEFAULT

        catalog = "rest" if defaulted("catalog") else catalog
        spark = "cluster" if defaulted("spark") else spark
        kafka_nodes = CLUSTER_KAFKA_NODES if defaulted("kafka_nodes") else kafka_nodes
    if secure_kafka is None:
        secure_kafka = topology == "cluster"
    settings = load_settings()
    backend = CatalogBackend(catalog)
    resolve(settings.home, PROFILES + (("rest-catalog",) if backend is CatalogBackend.REST else ()), log=console.print)
    running = up(
        settings.home,
        with_s3=s3,
        kafka_port=kafka_port,
        catalog=backend,
        spark_workers=spark_workers if spark == "cluster" else 0,
        kafka_nodes=kafka_nodes,
        kafka_secure=secure_kafka,
    )
    state = f"{settings.home}/services/state.json"
    replicas = f" ({kafka_nodes} nodes; topics replicated {kafka_nodes}x, producers use acks=all)"
    console.print(f"kafka: {running.kafka_bootstrap}" + (replicas if kafka_nodes > 1 else ""))
    if running.kafka_security is not None:
        topics = running.provision_topics(settings)
        console.print(
            f"  SASL_SSL (SCRAM-SHA-512), certificate authority {running.kafka_security.ca_file}; users admin, "
            f"stream (reads), producer (writes) with passwords in {state}; ACLs on {len(topics)} topics "
            f"{settings.kafka.topic_prefix}.*",
            highlight=False,
        )
    if running.s3:
        console.print(f"object store: {running.s3.endpoint} (credentials in {state})")
    if running.postgres:
        console.print(f"postgresql: {running.postgres.jdbc_url} (credentials in {state})")
    if running.rest_catalog:
        console.print(f"rest catalog: {running.rest_catalog.uri} (warehouse {running.rest_catalog.warehouse})")
    if running.spark_master:
        console.print(
            f"spark master: {running.spark_master} ({spark_workers} workers, 1 core and 1g each; status "
            f"{running.spark_webui}/json/)\n"
            f"  submit to it: SHOPLAKE_SPARK__MASTER={running.spark_master} SHOPLAKE_SPARK__CORES_MAX=1 "
            "SHOPLAKE_SPARK__EXECUTOR_MEMORY=1g (one core per application, so the stream and a gold run share it;"
            " use the object store as the warehouse so executors need no shared disk). It authenticates every "
            f"application with a shared secret (in {state}; `shoplake` commands add it themselves) and "
            "encrypts its RPC",
            highlight=False,
        )


@services.command("status")
@friendly_errors
def services_status() -> None:
    """Show what is running."""
    from devstack.services import services_status as status

    settings = load_settings()
    current = status(settings.home)
    if not current:
        console.print("no local services (start them with `shoplake services up`)")
        return
    for name, line in current.items():
        console.print(f"{name}: {line}")
    used = with_services(settings)  # what `shoplake` commands use: the configuration, else these services
    console.print(f"catalog: {used.catalog_uri}\nwarehouse: {used.warehouse_uri}")


@services.command("down")
@friendly_errors
def services_down() -> None:
    """Stop the services started by `services up`."""
    from devstack.services import services_down as down

    stopped = down(load_settings().home)
    console.print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


# -- simulator ----------------------------------------------------------------------------------------------------


@main.command()
@click.option(
    "--scenario", "scenario_name", default="normal_day", show_default=True, help="Built-in name or TOML file."
)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--events", type=click.IntRange(min=1), default=20_000, show_default=True, help="Events the shop makes.")
@click.option("--rate", type=click.FloatRange(min=0, min_open=True), help="Live mode: send this many per second.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write a JSON Lines log here.")
@click.option("--kafka", "to_kafka", is_flag=True, help="Send to the Kafka topics.")
@friendly_errors
def simulate(scenario_name: str, seed: int, events: int, rate: float | None, out: Path | None, to_kafka: bool) -> None:
    """Simulate the shop: a deterministic log file, or events sent to Kafka."""
    from simulation.generator import generate
    from simulation.scenario import load_scenario
    from simulation.sinks import simulated_items, write_log, write_manifest

    if (out is None) == (not to_kafka):
        raise click.UsageError("give exactly one of --out FILE or --kafka")
    if rate is not None and not to_kafka:
        raise click.UsageError("--rate paces sends to Kafka; it needs --kafka")
    scenario = load_scenario(scenario_name)
    records, manifest = generate(scenario, seed, events)
    if out is not None:
        with _progress(f"simulating {scenario.name}", None) as advance:
            manifest_path = write_log(records, scenario, out, manifest, advance)
        console.print(f"{manifest.records} records ({manifest.events} events) -> {out}; manifest {manifest_path}")
        return
    from shoplake.runtime import kafka_sender

    with kafka_sender(load_settings()) as kafka:
        sent = kafka.send(
            simulated_items(records, scenario, live=rate is not None), f"sending {scenario.name}", rate=rate
        )
    settings = kafka.settings
    manifest_path = write_manifest(
        manifest, settings.home / "simulations" / f"{scenario.name}-{seed}-{int(time.time())}"
    )
    console.print(f"sent {sent} records to {settings.kafka.bootstrap_servers}; manifest {manifest_path}")


@main.command()
@click.argument("log_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--rate", type=click.FloatRange(min=0, min_open=True), help="Records per second (default: as fast as possible)."
)
@friendly_errors
def replay(log_file: Path, rate: float | None) -> None:
    """Re-send a recorded log to Kafka, in order, with its keys."""
    from shoplake.runtime import kafka_sender
    from simulation.sinks import log_items

    total = sum(1 for _ in log_items(log_file))  # validates every line before anything is sent
    with kafka_sender(load_settings()) as kafka:
        sent = kafka.send(log_items(log_file), f"replaying {log_file.name}", total, rate)
    console.print(f"replayed {sent} records")


@main.group("import")
def import_() -> None:
    """Import public clickstreams as contract events."""


@import_.command("rees46")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write a JSON Lines log here.")
@click.option("--kafka", "to_kafka", is_flag=True, help="Send to the Kafka topics.")
@click.option("--speedup", type=click.FloatRange(min=0, min_open=True), help="Replay at X times the original pace.")
@friendly_errors
def import_rees46(csv_file: Path, out: Path | None, to_kafka: bool, speedup: float | None) -> None:
    """A REES46 Open CDP CSV (event_time, event_type, product_id, ...), streamed row by row (docs/rees46.md)."""
    from simulation.logfile import to_log_line
    from simulation.rees46 import ImportReport, paced, read_records
    from simulation.sinks import write_lines

    if (out is None) == (not to_kafka):
        raise click.UsageError("give exactly one of --out FILE or --kafka")
    if speedup is not None and not to_kafka:
        raise click.UsageError("--speedup paces sends to Kafka; it needs --kafka")
    report = ImportReport()
    records = paced(read_records(csv_file, report), speedup)
    items = ((r.topic.value, r.key, r.value) for r in records)
    if out is not None:
        with _progress(f"importing {csv_file.name}", None) as advance:
            write_lines(out, (to_log_line(*item) for item in items), advance)
    else:
        from shoplake.runtime import kafka_sender

        with kafka_sender(load_settings()) as kafka:
            kafka.send(items, f"importing {csv_file.name}")
    console.print(f"{report.rows} rows: " + ", ".join(f"{n} {kind}" for kind, n in sorted(report.events.items())))
    for line, why in report.unmappable:
        console.print(f"[yellow]line {line} not mapped[/yellow] ({why}): sent as is, it will be quarantined")


def _progress(description: str, total: int | None):  # type: ignore[no-untyped-def]
    from shoplake.runtime import progress_bar

    return progress_bar(description, total)


# -- pipeline -------------------------------------------------------------------------------------------------------


@main.command()
@click.option("--available-now", is_flag=True, help="Process what Kafka holds now, then stop.")
@click.option("--trigger", type=click.FloatRange(min=0), help="Micro-batch interval in seconds (default: settings).")
@friendly_errors
def stream(available_now: bool, trigger: float | None) -> None:
    """Run the streaming job (Kafka -> bronze, silver, quarantine) until Ctrl-C."""
    from pipeline.kafka_topics import ensure_topics
    from pipeline.spark_session import build_spark_session
    from pipeline.streaming.job import start_stream
    from shoplake.runtime import BatchCounter

    settings = with_services(load_settings())
    if trigger is not None:
        settings = settings.model_copy(
            update={"stream": settings.stream.model_copy(update={"trigger_seconds": trigger})}
        )
    ensure_topics(settings)
    spark = build_spark_session(settings)
    counter = BatchCounter(log=True)
    running = start_stream(spark, settings, available_now=available_now, on_batch=[counter])
    console.print(f"streaming from {settings.kafka.bootstrap_servers} (Ctrl-C stops cleanly)")
    terminated = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: terminated.set())  # stopped by run_until, outside the handler
    try:
        running.run_until(terminated)
    except KeyboardInterrupt:
        console.print("stopping after the current micro-batch ...")
        running.stop()
    console.print(f"{counter.records} records in {counter.batches} micro-batches")


@main.command()
@click.option("--minutes", type=click.IntRange(1, 1440), default=5, show_default=True, help="Minutes of event time.")
@click.option(
    "--interval", type=click.FloatRange(min=0.2), default=2.0, show_default=True, help="Seconds between refreshes."
)
@click.option("--once", is_flag=True, help="Print the view once and exit.")
@friendly_errors
def live(minutes: int, interval: float, once: bool) -> None:
    """Real-time view, refreshed in place until Ctrl-C: events per minute and type, purchases, revenue, active
    sessions, freshness (read with PyIceberg: no Spark)."""
    from pipeline.catalog import pyiceberg_catalog
    from pipeline.live import read_live_view
    from shoplake.views import live_renderable

    catalog = pyiceberg_catalog(command_settings())
    if once:
        console.print(live_renderable(read_live_view(catalog, minutes), minutes))
        return
    from rich.live import Live

    def frame() -> RenderableType:
        footer = f"read at {dt.datetime.now(dt.UTC):%H:%M:%S} UTC, every {interval:g} s; Ctrl-C stops"
        return live_renderable(read_live_view(catalog, minutes), minutes, footer)

    with Live(frame(), console=console, auto_refresh=False) as screen:
        try:
            while True:
                time.sleep(interval)
                screen.update(frame(), refresh=True)
        except KeyboardInterrupt:
            pass


@main.command()
@click.option("--date", "first", callback=iso_date, required=True, help="Day to build (YYYY-MM-DD).")
@click.option("--to", "last", callback=iso_date, help="Last day of a backfill range (inclusive).")
@friendly_errors
def gold(first: dt.date, last: dt.date | None) -> None:
    """Materialize the daily gold assets through Dagster for a day or a range (one run for the whole range)."""
    from pipeline.batch.inputs import run_days
    from pipeline.orchestration.runs import backfill_gold, dagster_instance

    settings = command_settings()
    # The run's resources load their settings again, and take secrets (a catalog's password) only from the
    # environment, never from run config: the services' catalog reaches them this way.
    os.environ.update(settings.to_env())
    days = run_days(first, last or first)
    with _progress("gold runs", 1) as advance:
        backfill_gold(settings, days[0], days[-1], dagster_instance(settings))
        advance(1)
    console.print(f"gold built for {len(days)} day(s) in one run: {days[0]} .. {days[-1]}")


@main.command()
@click.option(
    "--orphans/--no-orphans",
    default=True,
    show_default=True,
    help="Also remove orphan files older than three days (reads every manifest the tables keep: the scheduled job "
    "does it once a day).",
)
@friendly_errors
def maintain(orphans: bool) -> None:
    """Maintain the streaming tables once, as the scheduled job does: compaction, manifest rewrites, snapshot
    expiry and orphan removal; safe beside a running stream, at a lower CPU priority than it
    (maintenance.niceness). Recorded in ops.maintenance_runs."""
    from rich.table import Table

    from pipeline.maintenance import lower_priority, maintain_tables
    from pipeline.spark_session import build_spark_session
    from pipeline.tables import STREAMING_TABLES

    settings = command_settings()
    lower_priority(settings.maintenance.niceness)
    spark = build_spark_session(settings)
    with _progress("maintaining the streaming tables", len(STREAMING_TABLES)) as advance:
        results = maintain_tables(
            spark,
            settings.catalog.name,
            settings.stream.snapshot_retention,
            orphans=orphans,
            compacted_file_bytes=settings.maintenance.compacted_file_bytes,
            on_table=lambda _: advance(1),
        )
    out = Table(title="maintenance")
    for column in ("table", "data files", "snapshots", "manifests", "orphans removed", "skipped"):
        out.add_column(column)
    for r in results:
        out.add_row(
            r.table,
            f"{r.before.data_files} -> {r.after.data_files}",
            f"{r.before.snapshots} -> {r.after.snapshots}",
            f"{r.before.manifests} -> {r.after.manifests}",
            str(r.orphans_removed) if orphans else "-",
            r.skipped or "",
        )
    console.print(out)


def _table_spec(name: str):  # type: ignore[no-untyped-def]
    from pipeline.tables import table_by_identifier

    try:
        return table_by_identifier(name.removeprefix(command_settings().catalog.name + "."))
    except KeyError as exc:
        raise click.BadParameter(str(exc.args[0])) from None


def _existing_table(spec):  # type: ignore[no-untyped-def]
    """The table from the commands' catalog; a clear error, naming the catalog, when nothing created it yet."""
    from pyiceberg.exceptions import NoSuchTableError

    from pipeline.catalog import pyiceberg_catalog

    settings = command_settings()
    try:
        return pyiceberg_catalog(settings).load_table(spec.identifier)
    except NoSuchTableError:
        raise click.ClickException(
            f"{spec.identifier} has no data yet in the catalog at {settings.catalog_uri}: the stream creates the "
            "streaming tables when it starts, and `shoplake gold` the gold tables"
        ) from None


@main.command()
@click.argument("table")
@friendly_errors
def history(table: str) -> None:
    """List a table's snapshots (id, time, operation, records added), oldest first."""
    from rich.table import Table

    spec = _table_spec(table)
    loaded = _existing_table(spec)
    out = Table(title=f"{spec.identifier} snapshots")
    out.add_column("snapshot_id", no_wrap=True, min_width=19)
    out.add_column("committed_at (UTC)", no_wrap=True)
    for column in ("operation", "added", "total"):
        out.add_column(column)
    for snapshot in loaded.snapshots():
        summary = snapshot.summary
        when = dt.datetime.fromtimestamp(snapshot.timestamp_ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
        operation = summary.operation.value if summary else ""
        added = summary.get("added-records", "") if summary else ""
        total = summary.get("total-records", "") if summary else ""
        out.add_row(str(snapshot.snapshot_id), when, operation, added, total)
    console.print(out)


def _as_of(_ctx: click.Context, _param: click.Parameter, value: str | None) -> int | dt.datetime | None:
    """A snapshot id (digits) or an ISO time (UTC when no offset is given)."""
    if value is None:
        return None
    if value.isdigit():
        return int(value)
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is neither a snapshot id nor an ISO time") from None


def _instant(_ctx: click.Context, _param: click.Parameter, value: str | None) -> dt.datetime | None:
    """An ISO time (UTC when no offset is given)."""
    if value is None:
        return None
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO time") from None


def _where(_ctx: click.Context, _param: click.Parameter, value: str | None) -> tuple[str, str] | None:
    if value is None:
        return None
    column, sep, text = value.partition("=")
    if not sep or not column.strip():
        raise click.BadParameter(f"{value!r} is not COLUMN=VALUE")
    return column.strip(), text


@main.command()
@click.argument("table")
@click.option("--as-of", "as_of", callback=_as_of, help="Snapshot id or time (ISO 8601) to read the table as of.")
@click.option("--date", "day", callback=iso_date, help="Only rows of this day (tables with a date column).")
@click.option(
    "--in-force-at",
    "in_force",
    callback=_instant,
    help="Only the rows in force at this event time (ISO 8601, UTC unless it says otherwise), in a table with "
    "history (silver.products): a product's state then. Distinct from --as-of, which reads an older snapshot.",
)
@click.option("--where", "where", callback=_where, help="Only rows whose COLUMN equals VALUE (e.g. product_id=p-0042).")
@click.option("--limit", type=click.IntRange(1, 10_000), default=20, show_default=True)
@friendly_errors
def show(
    table: str,
    as_of: int | dt.datetime | None,
    day: dt.date | None,
    in_force: dt.datetime | None,
    where: tuple[str, str] | None,
    limit: int,
) -> None:
    """Print rows of a table, now or as of an older snapshot (Iceberg time travel)."""
    from rich.table import Table

    from pipeline.catalog import SnapshotNotFoundError, snapshot_as_of

    spec = _table_spec(table)
    if day is not None and spec.date_column is None:
        raise click.BadParameter(f"{spec.identifier} has no date column", param_hint="--date")
    if in_force is not None and "valid_from" not in spec.schema.fieldNames():
        raise click.BadParameter(
            f"{spec.identifier} has no history (valid_from, valid_to); silver.products has",
            param_hint="--in-force-at",
        )
    from pyiceberg.expressions import AlwaysTrue, And

    from pipeline.catalog import column_equals, equals, in_force_at

    row_filter = equals(spec.date_column, day) if day is not None and spec.date_column else AlwaysTrue()
    if in_force is not None:
        row_filter = And(row_filter, in_force_at(in_force))
    if where is not None:
        try:
            row_filter = And(row_filter, column_equals(spec, *where))
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--where") from None
    loaded = _existing_table(spec)
    try:
        snapshot_id = snapshot_as_of(loaded, as_of)
    except SnapshotNotFoundError as exc:
        raise click.BadParameter(str(exc), param_hint="--as-of") from None
    rows = loaded.scan(row_filter=row_filter, snapshot_id=snapshot_id, limit=limit).to_arrow().to_pylist()
    title = spec.identifier + (f" as of snapshot {snapshot_id}" if snapshot_id else "")
    columns = [f.name for f in spec.schema.fields if f.dataType.typeName() != "binary"]
    if len(columns) <= 6:
        out = Table(title=title)
        for column in columns:
            out.add_column(column)
        for row in rows:
            out.add_row(*(str(row[c]) for c in columns))
        console.print(out)
    else:  # wide tables read better one record at a time
        console.print(f"{title}: {len(rows)} row(s)")
        for number, row in enumerate(rows, 1):
            record = Table(title=f"row {number}", show_header=False)
            record.add_column("column", style="bold")
            record.add_column("value", overflow="fold")
            for column in columns:
                record.add_row(column, str(row[column]))
            console.print(record)


@main.group()
def quarantine() -> None:
    """Records that failed the contract or repeated an event id."""


@quarantine.command("summary")
@click.option("--since", callback=iso_date, help="First arrival day, UTC (YYYY-MM-DD).")
@click.option("--until", callback=iso_date, help="Last arrival day, UTC, inclusive (YYYY-MM-DD).")
@friendly_errors
def quarantine_summary(since: dt.date | None, until: dt.date | None) -> None:
    """Records per rule, topic and arrival day, with the first raw values of each rule."""
    from pipeline.catalog import pyiceberg_catalog
    from pipeline.quarantine import read_quarantine, summarize
    from shoplake.views import quarantine_renderable

    if since is not None and until is not None and until < since:
        raise click.BadParameter(f"{until} is before --since {since}", param_hint="--until")
    settings = command_settings()
    records = read_quarantine(pyiceberg_catalog(settings), since, until)
    console.print(quarantine_renderable(summarize(records), settings.kafka.topic_prefix, since, until))


@quarantine.command("replay")
@click.option(
    "--rule", required=True, help="Rule id as `quarantine summary` lists it, e.g. unsupported_schema_version."
)
@click.option("--since", callback=iso_date, help="First arrival day, UTC (YYYY-MM-DD).")
@click.option("--until", callback=iso_date, help="Last arrival day, UTC, inclusive (YYYY-MM-DD).")
@click.option("--dry-run", is_flag=True, help="Only count and print what would be re-sent.")
@friendly_errors
def quarantine_replay(rule: str, since: dt.date | None, until: dt.date | None, dry_run: bool) -> None:
    """Re-send the kept raw records of one rule to their original topics, same key and value (so the same event
    ids): after the contract or the producer was fixed. Every replay is recorded in ops.quarantine_replays."""
    from pipeline.catalog import pyiceberg_catalog
    from pipeline.replay import Replay, ReplayError, operator, per_topic, read_replay, record_replay, send_records
    from pipeline.tables import QUARANTINE_REPLAYS
    from shoplake.runtime import kafka_sender

    if since is not None and until is not None and until < since:
        raise click.BadParameter(f"{until} is before --since {since}", param_hint="--until")
    settings = command_settings()
    catalog = pyiceberg_catalog(settings)
    try:
        records = read_replay(catalog, rule, since, until)
    except ReplayError as exc:
        raise click.BadParameter(str(exc), param_hint="--rule") from None
    count = records.num_rows
    if not count:
        outcome = f"no quarantined record of rule {rule} to re-send"
    elif dry_run:
        outcome = f"dry run: {count:,} records of rule {rule} would be re-sent"
    else:
        with kafka_sender(settings) as kafka:
            count = send_records(kafka.producer, records)
        outcome = f"re-sent {count:,} records of rule {rule} to their original topics"
    record_replay(catalog, Replay(rule, since, until, count, dry_run, operator(), dt.datetime.now(dt.UTC)))
    topics = ", ".join(f"{topic} {n:,}" for topic, n in per_topic(records).items()) or "none"
    console.print(outcome, highlight=False)
    console.print(f"arrival days (UTC): {since or 'first'} .. {until or 'last'}; per topic: {topics}", highlight=False)
    console.print(f"recorded in {QUARANTINE_REPLAYS.identifier}", highlight=False)


@main.command()
@click.option("--port", type=click.IntRange(1, 65535), default=3000, show_default=True)
@friendly_errors
def ui(port: int) -> None:
    """Open Dagster's UI on 127.0.0.1 for the project's definitions."""
    from pipeline.orchestration.runs import dagster_instance

    settings = command_settings()
    dagster_instance(settings)  # sets DAGSTER_HOME
    module = "pipeline.orchestration.definitions"
    # This interpreter's Dagster, whether or not its environment's scripts are on PATH; its code loads the same
    # settings (the running services' catalog included) from the environment.
    cmd = [sys.executable, "-m", "dagster", "dev", "-m", module, "-h", "127.0.0.1", "-p", str(port)]
    sys.exit(subprocess.call(cmd, env=os.environ | settings.to_env()))


@main.command()
@click.option("--scenario", "scenario_name", default="normal_day", show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--events", type=click.IntRange(min=100), default=20_000, show_default=True)
@click.option(
    "--rate",
    type=click.FloatRange(min=0),
    default=2500,
    show_default=True,
    help="Records/s sent (0: unpaced).",
)
@friendly_errors
def demo(scenario_name: str, seed: int, events: int, rate: float) -> None:
    """Simulate a shop day, stream it, build gold with Dagster, print gold and freshness."""
    from shoplake.demo import run_demo

    if not run_demo(load_settings(), scenario_name, seed, events, rate or None):
        console.print("[red]gold differs from the oracle[/red]")
        sys.exit(2)


if __name__ == "__main__":
    main()
