"""Where a Spark driver's CPU goes: JFR execution samples of a running stream, grouped by kind of work.

Record a running driver (local mode runs the tasks in the driver JVM too), then summarize::

    jcmd <driver pid> JFR.start name=stream settings=profile duration=40s filename=/tmp/stream.jfr
    python -m benchmarks.jfr_profile /tmp/stream.jfr

The driver's pid is the ``org.apache.spark.deploy.SparkSubmit`` java process. A sample is counted once, in the
first kind of work (in the order of :data:`KINDS`) any frame of its stack belongs to; the task threads
(``Executor task launch worker``) are told from the driver's own threads. Recording with ``settings=profile``
slows the stream down: use it to see shares, not to measure latency.
"""

from __future__ import annotations

import argparse
import collections
import json
import subprocess

# (kind, substrings of "package/Class.method" that mark it), first match wins
KINDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("code generation", ("GenerateUnsafeProjection", "CodegenContext", "CodeFormatter", "CodeGenerator", "janino")),
    ("kafka read", ("KafkaDataConsumer", "org/apache/kafka", "KafkaBatchPartitionReader.next")),
    ("json parsing", ("JsonToStructs", "JacksonParser", "jackson")),
    ("regular expressions", ("RLike", "regex/Matcher", "regex/Pattern")),
    ("parquet write", ("parquet", "Parquet")),
    ("iceberg", ("org/apache/iceberg",)),
    ("table write, other", ("WritingSparkTask",)),
    ("validation and materialize, other", ("MemoryStore.putIterator",)),
    ("arrow", ("arrow", "Arrow")),
    ("query planning", ("RuleExecutor", "QueryExecution", "SparkPlanner")),
    ("class loading", ("ClassLoader", "ZipFile", "URLClassPath")),
)


def _samples(recording: str) -> list[tuple[str, list[str]]]:
    """(thread name, frames top first as ``package/Class.method``) of each execution sample."""
    printed = subprocess.run(
        ["jfr", "print", "--json", "--stack-depth", "200", "--events", "jdk.ExecutionSample", recording],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    samples = []
    for event in json.loads(printed)["recording"]["events"]:
        values = event["values"]
        thread = (values.get("sampledThread") or {}).get("javaName") or "?"
        frames = (values.get("stackTrace") or {}).get("frames") or []
        samples.append((thread, [f"{f['method']['type']['name']}.{f['method']['name']}" for f in frames]))
    return samples


def kind_of(frames: list[str]) -> str:
    for kind, marks in KINDS:
        if any(mark in frame for frame in frames for mark in marks):
            return kind
    return "other"


def shares(samples: list[tuple[str, list[str]]]) -> collections.Counter[tuple[str, str]]:
    """Samples per (``task`` or ``driver``, kind of work)."""
    return collections.Counter(
        ("task" if thread.startswith("Executor task launch") else "driver", kind_of(frames))
        for thread, frames in samples
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recording", help="a .jfr file")
    counts = shares(_samples(parser.parse_args().recording))
    total = sum(counts.values())
    print(f"{total} samples")
    for (threads, kind), count in counts.most_common():
        print(f"{count:6d} {100 * count / total:5.1f} %  {threads:6s} {kind}")


if __name__ == "__main__":
    main()
