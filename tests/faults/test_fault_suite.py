"""Fault injection: the stream is killed, its broker, object store and catalog go away, maintenance and gold
run beside it, hostile payloads pour in; at the end every Kafka offset is accounted for exactly once and gold
equals the oracle.

Seedable and bounded: SHOPLAKE_TEST_FAULT_SEED, SHOPLAKE_TEST_FAULT_KILLS (default 20), SHOPLAKE_TEST_FAULT_PAYLOADS
(default 10,000). Runs on local services only: it restarts them.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from dagster import DagsterInstance
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from devstack.services import Mode, Services, start_services
from pipeline.catalog import pyiceberg_catalog
from pipeline.config import Settings
from pipeline.kafka_topics import ensure_topics
from pipeline.maintenance import MaintenanceResult, maintain
from pipeline.orchestration.runs import materialize_gold
from pipeline.spark_session import build_spark_session
from pipeline.streaming.job import start_stream
from pipeline.tables import QUARANTINE_EVENTS, STREAMING_TABLES
from simulation.generator import generate, to_log_line
from simulation.scenario import load_scenario
from simulation.sinks import make_producer, send, simulated_items
from tests.integration.helpers import assert_gold_matches, assert_lake_matches, truth_of

pytestmark = [pytest.mark.faults, pytest.mark.timeout(2400)]

SEED = int(os.environ.get("SHOPLAKE_TEST_FAULT_SEED", "20261125"))
KILLS = int(os.environ.get("SHOPLAKE_TEST_FAULT_KILLS", "20"))
PAYLOADS = int(os.environ.get("SHOPLAKE_TEST_FAULT_PAYLOADS", "10000"))
ROOT = Path(__file__).resolve().parents[2]
TOPICS = ["page_view", "add_to_cart", "purchase", "user_session", "product_update"]
INJECTIONS = ["'; DROP TABLE silver.purchases; --", "${jndi:ldap://127.0.0.1/x}", "<script>alert(1)</script>",
              "../../../../etc/passwd", "\u0000\u202e", "%s%s%n", "1 OR 1=1"]  # fmt: skip


def hostile_payloads(count: int) -> list[bytes]:
    """Payloads no valid event can be: random bytes, broken and deeply nested JSON, huge blobs, wrong types,
    injection strings in the envelope. Drawn by hypothesis, with a fixed seed."""
    envelope = st.fixed_dictionaries(
        {
            "event_id": st.one_of(st.none(), st.text(max_size=20), st.integers(), st.sampled_from(INJECTIONS)),
            "event_type": st.one_of(st.sampled_from(INJECTIONS), st.integers(), st.lists(st.text(max_size=3))),
            "schema_version": st.one_of(st.text(max_size=3), st.floats(allow_nan=False), st.just(99)),
            "timestamp": st.one_of(st.text(max_size=30), st.integers()),
        }
    )
    payload = st.one_of(
        st.binary(max_size=200),
        st.text(max_size=200).map(str.encode),
        envelope.map(lambda e: json.dumps(e).encode()),
        st.integers(1, 3000).map(lambda depth: (b"[" * depth) + (b"]" * depth)),
        st.integers(1, 3000).map(lambda depth: b'{"a":' * depth + b"1" + b"}" * depth),
        st.binary(min_size=1, max_size=50).map(lambda b: b'{"event_id":"' + b + b'\xff"}'),
    )
    drawn: list[bytes] = []
    batch = 25

    @seed(SEED)
    @settings(
        max_examples=count // batch * 2,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(st.lists(payload, min_size=batch, max_size=batch))
    def draw(payloads: list[bytes]) -> None:
        if len(drawn) < count:
            drawn.extend(payloads[: count - len(drawn)])

    draw()
    assert len(drawn) == count, f"hypothesis produced {len(drawn)} of {count} payloads"
    # A few huge ones (over the 64 KiB limit, up to 2 MB): enough to prove the point, not gigabytes of them.
    drawn[:: max(1, count // 40)] = [
        b'{"blob":"' + b"x" * (70_000 + 50_000 * i) + b'"}' for i in range(len(drawn[:: max(1, count // 40)]))
    ]
    return drawn


@pytest.fixture(scope="module")
def chaos_services(jars_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    services = start_services(jars_home, tmp_path_factory.mktemp("chaos"), with_s3=True, mode=Mode.LOCAL)
    yield services
    services.stop()


def _stream_env(settings: Settings) -> dict[str, str]:
    return {
        **os.environ,
        **settings.to_env(),
        "SHOPLAKE_SPARK__DRIVER_MEMORY": "2g",
        "SHOPLAKE_STREAM__TRIGGER_SECONDS": "0.5",
        "SHOPLAKE_STREAM__MAX_OFFSETS_PER_TRIGGER": "1500",
    }


class Supervisor:
    """Keeps one `shoplake stream` process running; kills it on demand; counts what happened."""

    def __init__(self, settings: Settings, log: Path) -> None:
        self.settings, self.log = settings, log
        self.process: subprocess.Popen[bytes] | None = None
        self.kills = self.crashes = self.starts = 0

    def ensure_running(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            self.crashes += 1  # it died on its own (an outage): restart it, as an orchestrator would
            self.process = None
        if self.process is None:
            with self.log.open("ab") as out:
                command = [sys.executable, "-m", "shoplake.cli", "stream"]
                env = _stream_env(self.settings)
                self.process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=out, stderr=out)
            self.starts += 1

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)
            self.kills += 1
        elif self.process is not None:
            self.crashes += 1  # it had died on its own before the kill came
        self.process = None

    def batches(self) -> int:
        try:
            return len(pyiceberg_catalog(self.settings).load_table("bronze.events").snapshots())
        except Exception:
            return -1


def _maintain_all(spark, settings: Settings) -> list[MaintenanceResult]:
    """Aggressive maintenance: expire everything it may (no age), keep three snapshots."""
    return [
        maintain(spark, settings.catalog.name, spec, snapshot_retention=dt.timedelta(0), retain_last=3)
        for spec in STREAMING_TABLES
    ]


def _catalog_outage(settings: Settings, seconds: float) -> None:
    """The SQLite catalog file is replaced by a folder: every connection fails until it comes back."""
    path = Path(settings.catalog_uri.removeprefix("sqlite:///"))
    aside = path.with_name(path.name + ".away")
    path.rename(aside)
    path.mkdir()
    time.sleep(seconds)
    path.rmdir()
    aside.rename(path)


def test_the_lake_survives_kills_outages_maintenance_and_hostile_input(
    spark, lake: Settings, chaos_services: Services, jars_home: Path, tmp_path: Path
) -> None:
    rng = random.Random(SEED)
    settings = chaos_services.apply(lake, s3_warehouse=True)
    ensure_topics(settings)
    build_spark_session(settings)
    scenario = load_scenario("dirty_stream")

    # Everything that will be sent, in order: the shop's day with hostile payloads mixed in.
    records, _ = generate(scenario, SEED % 10_000, 12_000)
    items = list(simulated_items(records, scenario, live=False))
    hostile = hostile_payloads(PAYLOADS)
    for i, payload in enumerate(hostile):
        items.insert(rng.randrange(len(items) + 1), (TOPICS[i % len(TOPICS)], f"fuzz-{i}", payload))
    log = tmp_path / "sent.jsonl"
    log.write_text("".join(to_log_line(t, k, v) + "\n" for t, k, v in items))
    truth = truth_of([log])
    assert truth.records == len(items)
    assert sum(truth.rejected.values()) >= PAYLOADS, "a hostile payload would pass as a valid event"

    # The records go out in one chunk per step, so that every kill lands in a stream that has work in flight.
    chunk = -(-len(items) // KILLS)
    chunks = [items[i : i + chunk] for i in range(0, len(items), chunk)]
    producer = make_producer(settings.kafka)

    def send_next_chunk() -> None:
        if not chunks:
            return
        deadline = time.monotonic() + 120
        while True:  # the broker may be coming back from a restart: retry, as a producer would
            try:
                send(producer, iter(chunks[0]), settings.kafka.topic_prefix)
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(2)
        chunks.pop(0)

    supervisor = Supervisor(settings, tmp_path / "stream.log")
    outages = {"broker_restarts": 0, "object_store_outages": 0, "catalog_outages": 0}
    background: list[threading.Thread] = []
    errors: list[str] = []
    maintained: list[MaintenanceResult] = []

    def beside(name: str, work: Callable[[], object]) -> None:
        def run() -> None:
            try:
                work()
            except BaseException as exc:
                errors.append(f"{name} failed: {type(exc).__name__}: {str(exc)[:4000]}")

        thread = threading.Thread(target=run, name=name)
        thread.start()
        background.append(thread)

    def restart_broker() -> None:
        # Not while sending: a resent chunk would put records twice into Kafka, which the log does not hold.
        chaos_services.restart_broker(jars_home, down_s=rng.uniform(3, 8))
        outages["broker_restarts"] += 1

    def while_down(kind: str, outage: Callable[[], None]) -> None:
        """The next chunk goes out a second into the outage: the stream reads it and must commit while it lasts.
        The outage itself runs on this (the main) thread: a service restarted from a short-lived thread would be
        stopped by the kernel when that thread ends (its processes die with the thread that started them)."""
        sender = threading.Thread(target=lambda: (time.sleep(1), send_next_chunk()), name=f"send during {kind}")
        sender.start()
        outage()
        sender.join()
        outages[kind] += 1

    def object_store_outage() -> None:
        while_down("object_store_outages", lambda: chaos_services.pause_object_store(jars_home, rng.uniform(5, 10)))

    def catalog_outage() -> None:
        while_down("catalog_outages", lambda: _catalog_outage(settings, rng.uniform(3, 6)))

    gold_runs: list[threading.Thread] = []

    def gold_beside_the_stream() -> None:
        for earlier in gold_runs:  # one gold run at a time, as the orchestrator's run queue would have it
            earlier.join()
        beside("gold", lambda: materialize_gold(settings, scenario.dates, DagsterInstance.ephemeral()))
        gold_runs.append(background[-1])

    actions: list[Callable[[], object]] = [
        restart_broker,
        object_store_outage,
        catalog_outage,
        lambda: beside("maintenance", lambda: maintained.extend(_maintain_all(spark, settings))),
        gold_beside_the_stream,
        gold_beside_the_stream,  # a rerun of every day: a backfill over days already built
    ]
    assert len(actions) <= KILLS, f"SHOPLAKE_TEST_FAULT_KILLS must be at least {len(actions)}"
    schedule = {1 + round((i + 1) * KILLS / (len(actions) + 1)): action for i, action in enumerate(actions)}
    started = time.monotonic()
    step = 0
    while supervisor.kills < KILLS:
        step += 1
        supervisor.ensure_running()
        before = supervisor.batches()
        send_next_chunk()
        deadline = time.monotonic() + 120
        while supervisor.batches() <= before and time.monotonic() < deadline and supervisor.process.poll() is None:  # type: ignore[union-attr]
            time.sleep(0.5)
        time.sleep(rng.uniform(0.2, 2.5))  # land somewhere inside a later micro-batch
        if step in schedule:
            schedule[step]()
        supervisor.kill()
    while chunks:
        send_next_chunk()
    producer.close()
    for thread in background:
        thread.join(timeout=900)
    assert not errors, "\n".join(errors)
    assert [r.table for r in maintained] == [spec.identifier for spec in STREAMING_TABLES], (
        "the maintenance round beside the stream did not maintain every table"
    )

    # Catch up in this process from the same checkpoint, then audit everything.
    stream = start_stream(spark, settings, available_now=True)
    stream.await_termination(timeout_s=1200)
    assert stream.exception() is None
    audit = assert_lake_matches(spark, settings, [log])
    quarantine = pyiceberg_catalog(settings).load_table(QUARANTINE_EVENTS.identifier).scan().to_arrow()
    assert all(quarantine.column("failed_rules").to_pylist()), "a quarantined record has no reason"
    materialize_gold(settings, scenario.dates, DagsterInstance.ephemeral())
    assert_gold_matches(settings, truth, scenario.dates)

    report = {
        "seed": SEED,
        "kills": supervisor.kills,
        "stream_starts": supervisor.starts,
        "crashes_from_outages": supervisor.crashes,
        **outages,
        "maintenance_runs_beside_the_stream": 1,
        "maintenance_steps_skipped": {r.table: r.skipped for r in maintained if r.skipped},
        "gold_runs_beside_the_stream": len(gold_runs),
        "records": truth.records,
        "hostile_payloads": PAYLOADS,
        "offsets_audited": audit.bronze_records,
        "lost": truth.records - audit.bronze_records + audit.missing,  # never in bronze, or in bronze only
        "duplicated": audit.doubled + audit.bronze_duplicates + audit.orphans,
        "minutes": round((time.monotonic() - started) / 60, 1),
    }
    print("FAULT SUITE", json.dumps(report))
    (ROOT / ".shoplake").mkdir(exist_ok=True)
    (ROOT / ".shoplake" / "fault-report.json").write_text(json.dumps(report, indent=1))
