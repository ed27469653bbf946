"""Simulator speed: events generated per second, and records produced to a real Kafka broker per second."""

from __future__ import annotations

from pytest_benchmark.fixture import BenchmarkFixture

from benchmarks.harness import Results
from devstack.services import Services
from pipeline.config import Settings
from simulation.generator import generate
from simulation.scenario import load_scenario
from simulation.sinks import make_producer, send, simulated_items


def _generate(events: int) -> int:
    scenario = load_scenario("dirty_stream")
    records, _ = generate(scenario, 1, events)
    return sum(1 for _ in simulated_items(records, scenario, live=False))


def test_generation_rate(benchmark: BenchmarkFixture, results: Results, full: bool) -> None:
    events = 200_000 if full else 5_000
    records = benchmark.pedantic(_generate, args=(events,), rounds=3 if full else 1, iterations=1)
    seconds = benchmark.stats.stats.mean
    results.add(
        "simulator",
        {
            "what": "generate",
            "events": events,
            "records": records,
            "seconds": seconds,
            "events_per_s": events / seconds,
        },
    )


def test_produce_rate(
    benchmark: BenchmarkFixture, results: Results, full: bool, live: Settings, local_services: Services
) -> None:
    events = 200_000 if full else 5_000
    scenario = load_scenario("normal_day")
    records, _ = generate(scenario, 2, events)
    items = list(simulated_items(records, scenario, live=False))
    producer = make_producer(live.kafka)

    def produce() -> int:
        return send(producer, iter(items), live.kafka.topic_prefix)

    sent = benchmark.pedantic(produce, rounds=3 if full else 1, iterations=1)
    producer.close()
    seconds = benchmark.stats.stats.mean
    results.add("simulator", {"what": "produce", "events": sent, "seconds": seconds, "events_per_s": sent / seconds})
