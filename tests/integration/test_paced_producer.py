"""The benchmarks' Java producer sends a simulated plan at its rate, stamped as the simulator's live mode would."""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import time
from collections import defaultdict
from pathlib import Path

from kafka import KafkaConsumer

from benchmarks.paced_producer import PLACEHOLDER, producer_command, producer_environment, write_plan
from devstack.pytest_plugin import make_settings
from devstack.services import Services
from pipeline.contracts.events import EventType, topic_name
from pipeline.kafka_topics import ensure_topics
from simulation.generator import generate
from simulation.scenario import load_scenario

CONTRACT_TIME = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def _delivered(bootstrap: str, topics: list[str], expected: int) -> list[tuple[str, bytes, bytes, int]]:
    """(topic, key, value, Kafka timestamp ms) of every record, in offset order within each partition."""
    consumer = KafkaConsumer(
        *topics, bootstrap_servers=bootstrap, auto_offset_reset="earliest", consumer_timeout_ms=10_000
    )
    try:
        out = [(m.topic, m.key, m.value, m.timestamp) for m in consumer]
    finally:
        consumer.close()
    assert len(out) == expected, f"{len(out)} records delivered, {expected} planned"
    return out


def test_every_planned_record_arrives_paced_stamped_when_sent_and_redeliveries_repeat_their_original_bytes(
    local_services: Services, tmp_path: Path, jars_home: Path
) -> None:
    settings = local_services.apply(make_settings(tmp_path, jars_home))
    ensure_topics(settings)
    prefix = settings.kafka.topic_prefix
    scenario = load_scenario("dirty_stream")  # redeliveries, late and corrupt events
    plan = tmp_path / "plan.tsv"
    planned = write_plan(generate(scenario, 11, 3000)[0], prefix, plan)  # lazily, as the benchmarks do
    records = list(generate(scenario, 11, 3000)[0])
    assert planned == len(records)
    rate = 2000.0

    started = time.time()
    subprocess.run(
        producer_command(jars_home, settings.kafka.bootstrap_servers, rate, plan),
        env=producer_environment(settings),
        check=True,
        timeout=120,
    )
    ended = time.time()

    delivered = _delivered(
        settings.kafka.bootstrap_servers, [topic_name(prefix, t) for t in EventType], expected=len(records)
    )
    # Paced: the Kafka timestamps span the plan at the rate (a little less: the clock starts at the first send).
    sent_at = [timestamp for *_, timestamp in delivered]
    assert (max(sent_at) - min(sent_at)) / 1000 >= (len(records) - 1) / rate - 0.05

    # Records of one key keep their order: match each delivered record to its planned one.
    by_key: dict[tuple[str, bytes], list[bytes]] = defaultdict(list)
    for topic, key, value, _ in delivered:
        by_key[(topic, key)].append(value)
    first_bytes: dict[int, bytes] = {}
    stamped = redelivered = 0
    for record in records:
        sent = by_key[(topic_name(prefix, record.topic), record.key.encode())].pop(0)
        planned = record.value(lambda _: PLACEHOLDER)
        if id(record.payload) in first_bytes:
            assert sent == first_bytes[id(record.payload)]  # a redelivery is its original, byte for byte
            redelivered += 1
            continue
        first_bytes[id(record.payload)] = sent
        if PLACEHOLDER.encode() not in planned:
            assert sent == planned  # nothing to stamp (a payload the scenario corrupted): sent as simulated
            continue
        before, after = planned.split(PLACEHOLDER.encode())
        assert sent.startswith(before)
        assert sent.endswith(after)
        stamp = sent[len(before) : len(sent) - len(after)]
        assert CONTRACT_TIME.fullmatch(stamp), stamp
        event_time = dt.datetime.fromisoformat(stamp.decode().replace("Z", "+00:00")).timestamp()
        lateness_s = (record.emit_ms - record.event_ms) / 1000
        assert started - 1 <= event_time + lateness_s <= ended + 1  # stamped with the time it was sent
        stamped += 1
    assert stamped > 2500
    assert redelivered > 0
