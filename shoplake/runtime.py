"""Glue shared by the CLI and the demo: settings that point at running services, sending to Kafka, progress
bars, waiting for the stream."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from kafka import KafkaProducer
from pydantic import SecretStr
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from devstack.kafka_security import KafkaRole
from devstack.services import running_services
from pipeline.config import ConfigurationError, Settings, load_settings
from pipeline.errors import ShoplakeError
from pipeline.kafka_topics import ensure_topics
from pipeline.streaming.plan import BatchReport
from simulation.sinks import make_producer, send

# Lines are never broken by the console (the terminal wraps them): a path or an error message stays whole, to
# copy and to grep, whatever the width.
console = Console(stderr=True, soft_wrap=True)


# Catalog settings that say where the lake is: a configuration that sets any of them keeps its own catalog.
_CATALOG_LOCATION = frozenset({"type", "uri", "warehouse", "s3_endpoint"})


def with_services(
    settings: Settings, *, kafka_required: bool = True, kafka_role: KafkaRole = KafkaRole.STREAM
) -> Settings:
    """The settings a `shoplake` command uses: the configuration, and where it names no broker or no catalog, the
    ones `shoplake services up` started (its state in ``<home>/services``).

    The configuration wins section by section: a configured broker (``SHOPLAKE_KAFKA__BOOTSTRAP_SERVERS``) is
    kept, and so is a catalog configured by its type, URI, warehouse or object store. On the services' secured
    brokers the command logs in as ``kafka_role``: the stream reads, a sender writes, neither can do more. A
    command that needs Kafka (``kafka_required``) fails, saying how to give it one, when neither names a broker.
    """
    services = running_services(settings.home)
    if services is not None:
        served = services.apply(settings, kafka_role=kafka_role)
        update: dict[str, object] = {}
        # Settings that already point at these brokers (a sender given a command's settings) take the role's login.
        if settings.kafka.bootstrap_servers in ("", services.kafka_bootstrap):
            update["kafka"] = served.kafka
        if not settings.catalog.model_fields_set & _CATALOG_LOCATION:
            update["catalog"] = served.catalog
        if services.spark_secret and settings.spark.master == services.spark_master and not settings.spark.auth_secret:
            # The services' Spark cluster authenticates every application with its secret.
            update["spark"] = settings.spark.model_copy(update={"auth_secret": SecretStr(services.spark_secret)})
        settings = settings.model_copy(update=update)
    if kafka_required and not settings.kafka.bootstrap_servers:
        raise ConfigurationError(
            "no Kafka broker configured and no local services running: run `shoplake services up` "
            "or set SHOPLAKE_KAFKA__BOOTSTRAP_SERVERS"
        )
    return settings


def command_settings() -> Settings:
    """Settings of a command that reads or builds the lake without Kafka (``show``, ``history``, ``live``,
    ``gold``, ``quarantine``, ``ui``): the same catalog the stream writes to."""
    return with_services(load_settings(), kafka_required=False)


@dataclass(frozen=True)
class KafkaSender:
    """A producer for the event topics of ``settings``."""

    settings: Settings
    producer: KafkaProducer

    def send(
        self,
        items: Iterable[tuple[str, str, bytes]],
        description: str,
        total: int | None = None,
        rate: float | None = None,
    ) -> int:
        """Send (logical topic, key, value) triples in order under a progress bar; returns how many."""
        with progress_bar(description, total) as advance:
            return send(self.producer, iter(items), self.settings.kafka.topic_prefix, rate, advance)


@contextmanager
def kafka_sender(settings: Settings) -> Iterator[KafkaSender]:
    """Resolve the broker (``with_services``), create the event topics, and yield a sender whose producer is
    closed on the way out, whatever happens inside."""
    settings = with_services(settings, kafka_role=KafkaRole.PRODUCER)
    ensure_topics(settings)
    producer = make_producer(settings.kafka)
    try:
        yield KafkaSender(settings, producer)
    finally:
        producer.close()


class StreamWaitError(ShoplakeError, RuntimeError):
    """The stream failed, or did not commit the expected records in time."""


@contextmanager
def progress_bar(description: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr; yields a function that advances it."""
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    if total:
        columns.append(TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(description, total=total)
        yield lambda n: progress.advance(task, n)


class BatchCounter:
    """Counts records the stream has committed; an ``on_batch`` callback."""

    def __init__(self, log: bool = False) -> None:
        self.records = 0
        self.batches = 0
        self.log = log

    def __call__(self, report: BatchReport) -> None:
        self.records += report.records
        self.batches += 1
        if self.log:
            rate = report.records / report.duration_s if report.duration_s else 0.0
            console.print(
                f"batch {report.batch_id}: {report.records} records in {report.duration_s:.2f}s "
                f"({rate:,.0f}/s), {sum(report.silver_rows.values())} silver, {report.quarantined} quarantined, "
                f"oldest record {report.lag_s or 0:.2f}s old at commit"
            )

    def wait_for(self, records: int, timeout_s: float, failed: Callable[[], BaseException | None]) -> None:
        """Block until ``records`` records are committed; raise on timeout or when the stream failed."""
        deadline = time.monotonic() + timeout_s
        while self.records < records:
            error = failed()
            if error is not None:
                raise StreamWaitError(f"the stream failed: {error}") from error
            if time.monotonic() > deadline:
                raise StreamWaitError(f"the stream committed {self.records} of {records} records in {timeout_s:g}s")
            time.sleep(0.2)
