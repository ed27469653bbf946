"""Dirty days on the cluster topology, as a deployment runs them, with a Kafka node and a Spark worker killed.

The topology is what ``shoplake services up --topology cluster`` starts: three Kafka KRaft nodes (topics
replicated three times, ``min.insync.replicas=2``, producers with ``acks=all``; SASL/SCRAM over TLS with ACLs: the
stream logs in as ``stream``, which may only read, and the log is sent as ``producer``), Iceberg's REST catalog server
backed by PostgreSQL with the warehouse on the S3 store, and a Spark standalone cluster (one master, two one-core
workers). The stream and the gold run are separate ``shoplake`` processes whose Spark driver connects to the
master (``SHOPLAKE_SPARK__MASTER=spark://...``), each limited to one core (``SHOPLAKE_SPARK__CORES_MAX=1``) so
that both fit on the cluster at once; executors share no local path with the driver. The cluster authenticates
every application with a shared secret (``SHOPLAKE_SPARK__AUTH_SECRET``) and encrypts its RPC.

While the stream works through a dirty day and a multi-day week, the Kafka node leading a partition is SIGKILLed
(the rest is produced to the two survivors), then the worker running the stream's executor (worker and executor
together). The stream must go on, or, when its driver exits on the lost blocks of a micro-batch, resume from its
checkpoint once restarted (as an orchestrator restarts it). Then a replacement worker joins, the gold run shares
the cluster with the still-running stream, the stream is stopped with SIGTERM (it must exit cleanly), and the lake
is audited: every Kafka record exactly once (conservation), silver and roll-ups equal to the oracle, gold equal to
the oracle.

This test process keeps its own local session for the audit only; nothing it computes feeds the pipeline.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyiceberg.exceptions import NoSuchTableError

from devstack.kafka_security import KafkaRole
from devstack.process import ManagedProcess, ServiceError
from devstack.pytest_plugin import make_settings
from devstack.services import Services, start_cluster_services
from devstack.spark_cluster import SparkCluster, alive_workers, master_status, start_spark_cluster
from pipeline.catalog import pyiceberg_catalog
from pipeline.config import Settings
from pipeline.contracts.events import all_topics
from pipeline.spark_session import build_spark_session
from pipeline.tables import BRONZE_EVENTS
from simulation.scenario import load_scenario
from tests.cluster.conftest import partition_leaders
from tests.integration.helpers import assert_gold_matches, assert_lake_matches, send_log, split_log, truth_of, write_day
from tests.integration.test_services import _gone

pytestmark = pytest.mark.cluster

SCENARIOS = ("dirty_stream", "multi_day")  # a day of everything going wrong, then a week with late events
EVENTS = 2000  # per scenario
WORKERS = 2
KAFKA_NODES = 3  # the cluster topology: three nodes, so that one can die
# The children run the code under test, whichever checkout the interpreter's editable install points at.
PROJECT_ROOT = Path(__file__).resolve().parents[2]
SHOPLAKE = [sys.executable, "-m", "shoplake.cli"]


@pytest.fixture
def spark_cluster(tmp_path: Path) -> Iterator[SparkCluster]:
    cluster = start_spark_cluster(
        tmp_path / "spark-cluster",
        workers=WORKERS,
        worker_cores=1,
        worker_memory="1g",
        secret=secrets.token_urlsafe(32),
    )
    yield cluster
    cluster.stop()


@pytest.fixture
def services(cluster_jars: Path, tmp_path: Path) -> Iterator[Services]:
    """Three Kafka nodes, the object store, PostgreSQL and the REST catalog server, as ``--topology cluster``."""
    running = start_cluster_services(cluster_jars, tmp_path / "services")
    yield running
    running.stop()


@pytest.fixture
def cluster_settings(
    spark, cluster_jars: Path, services: Services, spark_cluster: SparkCluster, tmp_path: Path
) -> Settings:
    """The test's lake on those services (REST catalog, S3 warehouse) with Spark on the standalone master; Kafka
    logged in as the stream (it reads the event topics and nothing else)."""
    settings = services.apply(
        make_settings(
            tmp_path,
            cluster_jars,
            spark={
                "master": spark_cluster.master_url,
                "auth_secret": spark_cluster.secret,
                "cores_max": 1,
                "executor_memory": "1g",
                "driver_memory": "1536m",
                "shuffle_partitions": 2,
            },
            # Many micro-batches, so that the node and the worker die while the stream is at work.
            stream={"max_offsets_per_trigger": 250},
        ),
        kafka_role=KafkaRole.STREAM,
    )
    assert settings.kafka.replication_factor == KAFKA_NODES
    build_spark_session(settings)  # registers the catalog on this process's own (local) session, for the audit
    return settings


def _child_environment(settings: Settings, tmp_path: Path) -> dict[str, str]:
    """The settings as ``SHOPLAKE_*`` variables (a child process loads exactly these), loopback only."""
    return {
        **os.environ,
        **settings.to_env(),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "DAGSTER_HOME": str(tmp_path / "dagster"),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")])),
    }


def _bronze_records(settings: Settings) -> int:
    try:
        table = pyiceberg_catalog(settings).load_table(BRONZE_EVENTS.identifier)
    except NoSuchTableError:
        return 0
    return table.scan(selected_fields=("kafka_offset",)).to_arrow().num_rows


def _log_tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else "(no log)"


def _wait_for_bronze(
    settings: Settings, records: int, stream: subprocess.Popen, log: Path, timeout_s: float, below: bool = False
) -> int:
    """Wait until bronze holds ``records`` rows (or, with ``below``, more than it held but fewer than that)."""
    start = _bronze_records(settings)
    deadline = time.monotonic() + timeout_s
    while True:
        assert stream.poll() is None, f"the stream exited ({stream.returncode}):\n{_log_tail(log)}"
        count = _bronze_records(settings)
        if (start < count < records) if below else count >= records:
            return count
        assert not (below and count >= records), "the stream took in everything before the kill could hit it mid-stream"
        assert count <= records, f"bronze holds {count} rows for {records} records sent"
        assert time.monotonic() < deadline, f"bronze holds {count} of {records} rows after {timeout_s:g}s"
        time.sleep(0.5)


def _worker_running_executors(cluster: SparkCluster) -> ManagedProcess:
    """The one worker whose core is in use (only the stream runs): it hosts the stream's executor."""
    busy = {w["port"] for w in alive_workers(cluster.status()) if w.get("coresused", 0) > 0}
    matches = [worker for worker, port in zip(cluster.workers, cluster.worker_ports, strict=True) if port in busy]
    assert len(matches) == 1, f"expected one busy worker, the master reports {cluster.status()}"
    return matches[0]


class AppWatcher:
    """Polls the master: the most applications it ran at once, and the ids of all it ran."""

    def __init__(self, cluster: SparkCluster) -> None:
        self.cluster = cluster
        self.most_at_once = 0
        self.app_ids: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self._stop.wait(0.5):
            apps = [a for a in (self.cluster.status() or {}).get("activeapps", []) if a.get("state") == "RUNNING"]
            self.most_at_once = max(self.most_at_once, len(apps))
            self.app_ids |= {a["id"] for a in apps}

    def __enter__(self) -> AppWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@pytest.mark.timeout(2400)  # one core per application: the stream's start-up and the gold run are slow
def test_dirty_days_on_the_cluster_topology_survive_a_killed_kafka_node_and_worker_and_gold_equals_the_oracle(
    spark, services: Services, spark_cluster: SparkCluster, cluster_settings: Settings, tmp_path: Path
) -> None:
    settings = cluster_settings
    environment = _child_environment(settings, tmp_path)
    # One gold run over the dirty day and the week (the quiet days between included); the scenarios' days compared.
    days = sorted({day for name in SCENARIOS for day in load_scenario(name).dates})
    services.provision_topics(settings)  # created by the administrator, with the stream's and producer's ACLs
    producer = settings.model_copy(update={"kafka": services.kafka_client(settings.kafka, KafkaRole.PRODUCER)})
    dirty = write_day(tmp_path / "dirty.jsonl", SCENARIOS[0], seed=31, events=EVENTS)
    week, week_rest = split_log(write_day(tmp_path / "week.jsonl", SCENARIOS[1], seed=37, events=EVENTS))
    logs = [dirty, week, week_rest]
    stream_log = tmp_path / "stream.log"

    def start_stream(log: Path) -> subprocess.Popen:
        with log.open("wb") as out:
            return subprocess.Popen(
                [*SHOPLAKE, "stream"],
                env=environment,
                cwd=tmp_path,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: a last-resort kill hits the driver and nothing else
            )

    stream = start_stream(stream_log)
    restarted = False
    try:
        sent = send_log(producer, dirty)
        _wait_for_bronze(settings, sent, stream, stream_log, timeout_s=600)
        (stream_app,) = (spark_cluster.status() or {})["activeapps"]
        assert stream_app["cores"] == 1, stream_app  # spark.cores.max leaves the other worker free

        # A Kafka node dies mid-stream: the leader of a partition the stream reads. The rest goes to the survivors.
        topic = all_topics(settings.kafka.topic_prefix)[0]
        leader = partition_leaders(services.kafka_client(settings.kafka, KafkaRole.ADMIN), topic, KAFKA_NODES)[0]
        sent += send_log(producer, week)
        _wait_for_bronze(settings, sent, stream, stream_log, timeout_s=300, below=True)
        node = services.pids[f"kafka-{leader}"]  # node ids are 1..N in start order
        os.killpg(node, signal.SIGKILL)
        assert _gone(node)
        sent += send_log(producer, week_rest)  # acks=all: two in-sync replicas are enough

        # Then a Spark worker dies mid-batch: the one running the stream's executor.
        victim = _worker_running_executors(spark_cluster)
        _wait_for_bronze(settings, sent, stream, stream_log, timeout_s=300, below=True)
        spark_cluster.kill_worker(victim)
        assert not victim.alive()
        # The stream either carries on on the surviving worker, or its driver exits (a micro-batch is materialized
        # with localCheckpoint(), whose blocks die with their executor) and, restarted as an orchestrator restarts
        # it, resumes from its checkpoint. Either way the audit below must find nothing lost or doubled.
        deadline = time.monotonic() + 900
        while stream.poll() is None and _bronze_records(settings) < sent:
            assert time.monotonic() < deadline, f"bronze holds {_bronze_records(settings)} of {sent} rows"
            time.sleep(0.5)
        if stream.poll() is not None:
            assert stream.returncode != 0, "the stream stopped by itself, without an error"
            restarted = True
            stream_log = tmp_path / "stream-restarted.log"
            stream = start_stream(stream_log)
        _wait_for_bronze(settings, sent, stream, stream_log, timeout_s=900)  # on the surviving worker
        assert len(alive_workers(spark_cluster.status())) == WORKERS - 1

        spark_cluster.start_worker()  # a replacement joins, so the gold run finds a free core
        spark_cluster.wait_for_workers(WORKERS)
        with AppWatcher(spark_cluster) as watcher:
            gold = subprocess.run(
                [*SHOPLAKE, "gold", "--date", days[0].isoformat(), "--to", days[-1].isoformat()],
                env=environment,
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=1200,
                check=False,
            )
        assert gold.returncode == 0, gold.stdout + gold.stderr
        assert watcher.most_at_once == 2, "the gold run did not run beside the stream on the cluster"
        if not restarted:
            assert stream_app["id"] in watcher.app_ids, "the stream is not the application it was before the kill"
    finally:
        stream.send_signal(signal.SIGTERM)  # the driver process only: it stops its query cleanly
        try:
            stream.wait(timeout=180)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(os.getpgid(stream.pid), signal.SIGKILL)
            stream.wait()
    assert stream.returncode == 0, _log_tail(stream_log)

    assert_lake_matches(spark, settings, logs)  # conservation: 0 lost, 0 doubled; silver == oracle
    assert_gold_matches(settings, truth_of(logs), days)


def test_services_up_with_the_cluster_topology_prints_every_endpoint_and_down_stops_every_process(
    cluster_jars: Path, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "jars").symlink_to(cluster_jars / "jars")
    env = {**os.environ, "SHOPLAKE_HOME": str(home), "PYTHONPATH": str(PROJECT_ROOT)}
    for name in [n for n in env if n.startswith("SHOPLAKE_") and n != "SHOPLAKE_HOME"]:
        del env[name]  # the services alone decide what the commands use

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*SHOPLAKE, *args], env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)

    up = run("services", "up", "--topology", "cluster")
    assert up.returncode == 0, up.stderr
    state = json.loads((home / "services" / "state.json").read_text())
    try:
        printed = " ".join(up.stderr.split())  # the console wraps lines
        assert f"SHOPLAKE_SPARK__MASTER={state['spark_master']}" in printed
        assert f"rest catalog: {state['rest_catalog']['uri']} (warehouse s3://" in printed
        assert state["kafka_nodes"] == KAFKA_NODES
        assert len(state["kafka_bootstrap"].split(",")) == KAFKA_NODES
        assert len(alive_workers(master_status(state["spark_webui"]))) == WORKERS
        status = " ".join(run("services", "status").stderr.split())
        assert f"{WORKERS} worker(s) ALIVE" in status
        assert "rest catalog: " in status
        assert f"catalog: {state['rest_catalog']['uri']}" in status  # what `shoplake` commands will use
        assert "DOWN" not in status
        assert f"({KAFKA_NODES} of {KAFKA_NODES} nodes running) SASL_SSL up" in status  # secured by default
        assert "ACLs on 5 topics shop.*" in printed
        security = state["kafka_security"]
        for secret in [*security["passwords"].values(), security["store_password"]]:
            assert secret not in printed
            assert secret not in status
    finally:
        down = run("services", "down")
    assert down.returncode == 0, down.stderr
    kafka = {f"kafka-{n}" for n in range(1, KAFKA_NODES + 1)}
    assert {*kafka, "s3", "postgres", "rest-catalog", "spark-master", "spark-worker-1", "spark-worker-2"} == set(
        state["pids"]
    )
    assert all(_gone(pid) for pid in state["pids"].values())
    assert master_status(state["spark_webui"], timeout_s=1) is None


def test_a_cluster_that_cannot_start_says_why(tmp_path: Path) -> None:
    with pytest.raises(ServiceError, match="at least one worker"):
        start_spark_cluster(tmp_path, workers=0)
