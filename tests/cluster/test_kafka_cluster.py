"""Three Kafka KRaft nodes, topics replicated three times with min ISR 2: one node killed mid-stream costs nothing.

The stream runs continuously while the node leading the first topic's partition 0 is SIGKILLed; the rest of the
day is then produced with ``acks=all`` to the two survivors. Every record must land exactly once (conservation
audit, silver and roll-ups equal to the oracle).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.kafka import start_local_kafka_cluster
from devstack.process import ManagedProcess, ServiceError
from pipeline.config import Settings
from pipeline.contracts.events import all_topics
from pipeline.kafka_topics import ensure_topics
from pipeline.streaming.job import start_stream
from pipeline.streaming.plan import BatchReport
from tests.cluster.conftest import partition_leaders
from tests.integration.helpers import assert_lake_matches, send_log, split_log, write_day

pytestmark = pytest.mark.cluster

NODES = 3


@pytest.fixture
def kafka_cluster(cluster_jars: Path, tmp_path: Path) -> Iterator[tuple[list[ManagedProcess], str]]:
    processes, bootstrap = start_local_kafka_cluster(cluster_jars, tmp_path / "kafka", nodes=NODES)
    yield processes, bootstrap
    for process in processes:
        with contextlib.suppress(ServiceError):
            process.stop()


class Committed:
    """Kafka records the stream has committed (an ``on_batch`` callback)."""

    def __init__(self) -> None:
        self.records = 0
        self.lock = threading.Lock()

    def __call__(self, report: BatchReport) -> None:
        with self.lock:
            self.records += report.records

    def wait_for(self, records: int, stream, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while self.records < records:
            assert stream.exception() is None, stream.exception()
            assert time.monotonic() < deadline, f"committed {self.records} of {records} records in {timeout_s:g}s"
            time.sleep(0.2)


def test_a_kafka_node_killed_mid_stream_loses_and_doubles_nothing(
    spark, lake: Settings, kafka_cluster: tuple[list[ManagedProcess], str], tmp_path: Path
) -> None:
    processes, bootstrap = kafka_cluster
    settings = lake.model_copy(
        update={"kafka": lake.kafka.model_copy(update={"bootstrap_servers": bootstrap, "replication_factor": NODES})}
    )
    ensure_topics(settings)
    leaders = partition_leaders(settings.kafka, all_topics(settings.kafka.topic_prefix)[0], replicas=NODES)
    first, rest = split_log(write_day(tmp_path / "dirty.jsonl", "dirty_stream", seed=29, events=3000))

    committed = Committed()
    stream = start_stream(spark, settings, on_batch=[committed])
    try:
        sent = send_log(settings, first)
        committed.wait_for(sent, stream, timeout_s=300)
        victim = processes[leaders[0] - 1]  # node ids are 1..NODES in start order
        os.killpg(victim.pid, signal.SIGKILL)
        sent += send_log(settings, rest)  # acks=all: two in-sync replicas are enough
        committed.wait_for(sent, stream, timeout_s=300)
        assert not victim.alive()
    finally:
        stream.stop()
    assert stream.exception() is None
    assert_lake_matches(spark, settings, [first, rest])
