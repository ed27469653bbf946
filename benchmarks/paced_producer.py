"""The benchmarks' live load: simulated records paced into Kafka by a Java producer.

The simulator's own live mode (``shoplake simulate --kafka --rate R``) renders and sends every record in Python:
about 85 µs of CPU a record with kafka-python, so 5,000 records/s take most of a core, and on two cores shared
with the stream and the broker it falls behind the rate it was asked for. Here the simulator writes a *plan*
first (before the measured traffic starts) and ``shoplake.producer.PacedProducer`` (``jvm/shoplake-producer``,
built by ``shoplake jars`` beside the broker's jars) sends it at the rate, stamping each event with the real time
it is sent, as the live mode does: a redelivered event repeats its original's bytes, and a late one keeps its
simulated lateness.

    python -m benchmarks.paced_producer --rate 5000 --events 300000 --seed 7 --plan /tmp/plan.tsv \
        --jars-home .shoplake   # Kafka and the topic prefix from the SHOPLAKE_* settings

Once the plan is written, the process becomes the Java producer (``exec``): stopping it stops the sending.
"""

from __future__ import annotations

import argparse
import base64
import os
import sys
import weakref
from collections.abc import Iterable
from pathlib import Path

from devstack.jars import PACED_PRODUCER, jars_dir
from devstack.process import java_executable
from pipeline.config import Settings, load_settings
from pipeline.contracts.events import topic_name
from simulation.generator import generate
from simulation.records import SimEvent, SimRecord
from simulation.scenario import load_scenario

# What a plan's values carry where their event time goes (the Java producer's PacedProducer.PLACEHOLDER).
PLACEHOLDER = "@@SHOPLAKE_TIMESTAMP@@"


def plan_lines(records: Iterable[SimRecord], topic_prefix: str) -> Iterable[str]:
    """One plan line per record, in delivery order: topic, base64 key, the line whose send time stamps it, the
    simulated lateness (ms) and the base64 value with :data:`PLACEHOLDER` for its event time.

    A record repeating an earlier one's payload (a redelivery) is stamped by that earlier line, so its bytes are
    the original's, as in the simulator's live mode."""
    # Payload identity -> (the payload, its first line, that line's lateness). The records come lazily and a payload
    # no later record repeats is freed: a weak reference tells a reused id() from the payload it was first seen as.
    first_line: dict[int, tuple[weakref.ref[SimEvent], int, int]] = {}
    for line, record in enumerate(records):
        seen = first_line.get(id(record.payload))
        if seen is None or seen[0]() is not record.payload:
            lateness_ms = record.emit_ms - record.event_ms
            seen = first_line[id(record.payload)] = (weakref.ref(record.payload), line, lateness_ms)
        _, stamp_line, stamp_lateness = seen
        value = record.value(lambda _: PLACEHOLDER)
        key = base64.b64encode(record.key.encode()).decode()
        topic = topic_name(topic_prefix, record.topic)
        yield f"{topic}\t{key}\t{stamp_line}\t{stamp_lateness}\t{base64.b64encode(value).decode()}"


def write_plan(records: Iterable[SimRecord], topic_prefix: str, path: Path) -> int:
    count = 0
    with path.open("w", encoding="ascii", newline="\n") as out:
        for line in plan_lines(records, topic_prefix):
            out.write(line + "\n")
            count += 1
    return count


def producer_command(jars_home: Path, bootstrap_servers: str, rate: float, plan: Path) -> list[str]:
    kafka_jars = jars_dir(jars_home, PACED_PRODUCER.profile)
    if not (kafka_jars / PACED_PRODUCER.jar).is_file():
        raise FileNotFoundError(f"{kafka_jars / PACED_PRODUCER.jar} is missing: run `shoplake jars`")
    # The plan is read as it is sent; only the stamped values a later redelivery repeats stay in memory.
    # The broker's jars bring the Kafka client and its logging; log4j's defaults keep it to errors on stderr.
    main_class = "shoplake.producer.PacedProducer"
    return [
        java_executable(),
        "-Xmx512m",
        "-cp",
        f"{kafka_jars}/*",
        main_class,
        bootstrap_servers,
        repr(rate),
        str(plan),
    ]


def producer_environment(settings: Settings) -> dict[str, str]:
    """This process's environment with the Kafka settings (transport, login) as the Java producer reads them:
    ``SHOPLAKE_KAFKA__*``, whether they came from the environment or a file."""
    kafka = {key: value for key, value in settings.to_env().items() if key.startswith("SHOPLAKE_KAFKA__")}
    return {**os.environ, **kafka}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, required=True, help="records per second")
    parser.add_argument("--events", type=int, required=True, help="events to simulate and send")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--scenario", default="normal_day")
    parser.add_argument("--jars-home", type=Path, required=True, help="the folder holding jars/kafka")
    parser.add_argument("--plan", type=Path, required=True, help="where to write the plan (left for the caller)")
    args = parser.parse_args(argv)
    if args.rate <= 0 or args.events <= 0:
        parser.error("--rate and --events must be positive")
    settings = load_settings()
    records, _ = generate(load_scenario(args.scenario), args.seed, args.events)
    write_plan(records, settings.kafka.topic_prefix, args.plan)
    cmd = producer_command(args.jars_home, settings.kafka.bootstrap_servers, args.rate, args.plan)
    sys.stdout.flush()
    os.execve(cmd[0], cmd, producer_environment(settings))


if __name__ == "__main__":
    main()
