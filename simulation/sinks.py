"""Where simulated records go: a JSON Lines log file, or Kafka (as fast as possible or paced at a rate).

Two clocks:

* **simulated** (default): an event's ``timestamp`` is its simulated instant, so the output is a pure function
  of scenario, seed and event count;
* **live** (``rate`` given): records are paced at ``rate`` per second and stamped with the real time at which
  they are sent, minus the lateness the scenario gave them; used to measure freshness.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from kafka import KafkaProducer
from kafka.errors import KafkaError

from pipeline.config import KafkaSettings
from pipeline.contracts.events import EventType, topic_name
from pipeline.errors import ShoplakeError
from simulation.logfile import from_log_line, to_log_line
from simulation.records import Manifest, SimRecord, format_timestamp, simulated_timestamp
from simulation.scenario import Scenario

Progress = Callable[[int], None]  # called with the number of records just sent


class SinkError(ShoplakeError, RuntimeError):
    """Records could not be written or delivered."""


def simulated_stamp(scenario: Scenario) -> Callable[[int], str]:
    return lambda event_ms: simulated_timestamp(scenario.start, event_ms)


def live_stamp(record: SimRecord, now: float) -> Callable[[int], str]:
    """Stamp with the real time, keeping the record's simulated lateness (delivery time - event time)."""
    lateness_ms = record.emit_ms - record.event_ms

    return lambda _: format_timestamp(dt.datetime.fromtimestamp(now - lateness_ms / 1000, dt.UTC))


def write_log(
    records: Iterable[SimRecord],
    scenario: Scenario,
    path: Path,
    manifest: Manifest,
    progress: Progress = lambda n: None,
) -> Path:
    """Write records as JSON Lines (in delivery order) and the manifest beside them; returns the manifest path."""
    stamp = simulated_stamp(scenario)
    lines = (to_log_line(r.topic.value, r.key, r.value(stamp)) for r in records)
    write_lines(path, lines, progress)
    return write_manifest(manifest, path)


def write_lines(path: Path, lines: Iterable[str], progress: Progress = lambda n: None) -> int:
    """Write a JSON Lines log (one line per item, ``\\n`` endings); returns how many lines."""
    count = 0
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8", newline="\n") as out:
            for count, line in enumerate(lines, 1):
                out.write(line + "\n")
                if count % 1000 == 0:
                    progress(1000)
    except OSError as exc:
        raise SinkError(f"cannot write {path}: {exc}") from exc
    progress(count % 1000)
    return count


def write_manifest(manifest: Manifest, log_path: Path) -> Path:
    manifest_path = log_path.with_name(log_path.name + ".manifest.json")
    try:
        manifest_path.parent.mkdir(parents=True, exist_ok=True)
        manifest_path.write_text(json.dumps(manifest.to_json(), indent=1) + "\n")
    except OSError as exc:
        raise SinkError(f"cannot write {manifest_path}: {exc}") from exc
    return manifest_path


def make_producer(kafka: KafkaSettings) -> KafkaProducer:
    """A producer to ``kafka``'s brokers, with its transport and login (``acks=all``)."""
    try:
        return KafkaProducer(
            bootstrap_servers=kafka.bootstrap_servers,
            client_id="shoplake-simulator",
            acks="all",
            linger_ms=10,
            batch_size=1024 * 1024,
            max_request_size=4 * 1024 * 1024,
            retries=10,
            **kafka.python_client(),
        )
    except (KafkaError, OSError) as exc:
        raise SinkError(f"cannot reach Kafka at {kafka.bootstrap_servers!r}: {exc}") from exc


class Pacer:
    """Sleeps so that sends average ``rate`` per second (no pacing when rate is None)."""

    def __init__(self, rate: float | None) -> None:
        self.rate = rate
        self.start = time.monotonic()
        self.sent = 0

    def wait(self) -> None:
        self.sent += 1
        if self.rate:
            ahead = self.sent / self.rate - (time.monotonic() - self.start)
            if ahead > 0.002:
                time.sleep(ahead)


def send(
    producer: KafkaProducer,
    items: Iterator[tuple[str, str, bytes]],
    topic_prefix: str,
    rate: float | None = None,
    progress: Progress = lambda n: None,
) -> int:
    """Send (logical topic, key, value) triples in order; returns how many. Fails if any send failed."""
    errors: list[BaseException] = []
    topics = {event_type.value: topic_name(topic_prefix, event_type) for event_type in EventType}
    pacer = Pacer(rate)
    count = 0
    for logical_topic, key, value in items:
        try:
            topic = topics[logical_topic]
        except KeyError:
            raise SinkError(f"record {count + 1}: unknown topic {logical_topic!r}") from None
        producer.send(topic, key=key.encode(), value=value).add_errback(errors.append)
        count += 1
        if count % 1000 == 0:
            progress(1000)
            if errors:
                break
        if rate:
            pacer.wait()
    producer.flush()
    progress(count % 1000)
    if errors:
        raise SinkError(f"{len(errors)} record(s) were not delivered; first error: {errors[0]!r}")
    return count


def simulated_items(records: Iterable[SimRecord], scenario: Scenario, live: bool) -> Iterator[tuple[str, str, bytes]]:
    stamp = simulated_stamp(scenario)
    for record in records:
        value = record.value(live_stamp(record, time.time()) if live else stamp)
        yield record.topic.value, record.key, value


def log_items(path: Path) -> Iterator[tuple[str, str, bytes]]:
    """Replay a recorded log, validating each line; a bad line stops the replay with its line number."""
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            try:
                topic, key, value = from_log_line(line)
                EventType(topic)
            except (ValueError, KeyError, TypeError) as exc:
                raise SinkError(f"{path}:{number}: not a shoplake log line ({exc})") from exc
            yield topic, key, value
