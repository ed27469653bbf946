"""Kafka -> bronze -> silver on the real broker and catalog: exactly once, deduplicated, quarantined, rolled up."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from dagster import DagsterInstance

from pipeline.catalog import pyiceberg_catalog
from pipeline.config import Settings
from pipeline.contracts.events import EventType
from pipeline.contracts.json_schema import stated, violations
from pipeline.live import read_live_view
from pipeline.orchestration.runs import materialize_gold
from pipeline.tables import QUARANTINE_EVENTS
from simulation.scenario import load_scenario
from tests.integration.helpers import (
    assert_gold_matches,
    assert_lake_matches,
    catch_up,
    restamped_redeliveries,
    send_log,
    truth_of,
    write_day,
)

ROOT = Path(__file__).resolve().parents[2]


def test_dirty_stream_in_many_micro_batches_matches_the_oracle(spark, live, tmp_path: Path) -> None:
    # Small micro-batches: sessions and minutes are built up across batches, duplicates cross batch boundaries.
    settings = live.model_copy(update={"stream": live.stream.model_copy(update={"max_offsets_per_trigger": 700})})
    log = write_day(tmp_path / "dirty.jsonl", "dirty_stream", seed=21, events=4000)
    assert restamped_redeliveries(log) > 0, "the scenario re-stamps some redeliveries"
    send_log(settings, log)
    catch_up(spark, settings, timeout_s=600)
    assert_lake_matches(spark, settings, [log])

    days = load_scenario("dirty_stream").dates
    materialize_gold(settings, days, DagsterInstance.ephemeral())
    assert_gold_matches(settings, truth_of([log]), days)

    view = read_live_view(pyiceberg_catalog(settings), minutes=3)
    assert view.newest_minute is not None
    assert set(view.minutes.column("event_type").to_pylist()) <= {
        "page_view",
        "add_to_cart",
        "purchase",
        "user_session",
        "product_update",
    }
    assert sum(view.minutes.column("events").to_pylist()) > 0
    _assert_the_published_schema_finds_the_quarantines_rules(settings)


def _assert_the_published_schema_finds_the_quarantines_rules(settings: Settings) -> None:
    """Each quarantined JSON object breaks, by its topic's JSON Schema document, exactly the quarantine rules a
    schema can state (``pipeline.contracts.json_schema.stated``)."""
    rows = (
        pyiceberg_catalog(settings)
        .load_table(QUARANTINE_EVENTS.identifier)
        .scan(selected_fields=("kafka_topic", "value", "failed_rules"))
        .to_arrow()
        .to_pylist()
    )
    compared = 0
    for row in rows:
        try:
            event = json.loads(row["value"])
        except ValueError:
            continue  # not JSON: nothing for a schema to say
        if not isinstance(event, dict):
            continue
        topic = EventType(row["kafka_topic"].removeprefix(settings.kafka.topic_prefix + "."))
        assert violations(topic, event) == {r for r in row["failed_rules"] if stated(r)}, (row["failed_rules"], event)
        compared += 1
    assert compared >= 20, f"only {compared} quarantined JSON objects to compare"


def test_replaying_a_log_adds_nothing_but_quarantined_duplicates(spark, live, tmp_path: Path) -> None:
    log = write_day(tmp_path / "day.jsonl", "late_data_storm", seed=3, events=2500)
    send_log(live, log)
    catch_up(spark, live, timeout_s=600)
    send_log(live, log)  # the whole day again, as a replay would
    catch_up(spark, live, timeout_s=600)
    assert_lake_matches(spark, live, [log, log])


class _StreamProcess:
    """``shoplake stream`` in a process of its own, its output copied to ``log_file``.

    The stream prints a line per committed micro-batch (``batch N: K records ...``); a reader thread turns the
    ones with records into a signal the test waits on, instead of polling the catalog.
    """

    def __init__(self, settings: Settings, log_file: Path) -> None:
        env = {
            **os.environ,
            **settings.to_env(),
            "PYTHONUNBUFFERED": "1",
            "SHOPLAKE_SPARK__DRIVER_MEMORY": "2g",
            "SHOPLAKE_STREAM__TRIGGER_SECONDS": "0.5",
            "SHOPLAKE_STREAM__MAX_OFFSETS_PER_TRIGGER": "600",
        }
        self.log_file = log_file
        self.committed = threading.Event()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "shoplake.cli", "stream"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        with self.log_file.open("ab") as out:
            for line in self.process.stdout:
                out.write(line)
                out.flush()
                batch = _COMMITTED_BATCH.search(line.decode(errors="replace"))
                if batch and int(batch["records"]) > 0:
                    self.committed.set()

    def wait_for_a_batch(self, timeout_s: float) -> None:
        """Block until the process says it committed a micro-batch with records; fail if it exits first."""
        deadline = time.monotonic() + timeout_s
        while not self.committed.wait(1.0):
            assert self.process.poll() is None, f"the driver exited with {self.process.returncode}: {self.log_file}"
            assert time.monotonic() < deadline, f"the driver committed no batch in {timeout_s:g} s: {self.log_file}"

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)
        self._reader.join(timeout=30)


_COMMITTED_BATCH = re.compile(r"^batch \d+: (?P<records>\d+) records", re.MULTILINE)


def test_sigkilled_driver_restarts_from_its_checkpoint_without_loss_or_duplicates(spark, live, tmp_path: Path) -> None:
    rng = random.Random(4)
    log = write_day(tmp_path / "day.jsonl", "dirty_stream", seed=8, events=6000)
    send_log(live, log)
    metadata = Path(live.checkpoint_root) / "kafka_to_lake" / "metadata"
    query_ids = []
    for _ in range(3):
        driver = _StreamProcess(live, tmp_path / "stream.log")
        driver.wait_for_a_batch(timeout_s=240)
        time.sleep(rng.uniform(0.3, 2.0))  # somewhere inside a following batch
        assert driver.process.poll() is None, f"the restarted driver died on its own: see {driver.log_file}"
        driver.kill()
        query_ids.append(json.loads(metadata.read_text())["id"])
    bronze = pyiceberg_catalog(live).load_table("bronze.events").scan().to_arrow().num_rows
    assert bronze < sum(1 for _ in log.open()), "the last kill interrupted the stream with records still to read"
    catch_up(spark, live, timeout_s=600)  # the same checkpoint, in this process
    assert_lake_matches(spark, live, [log])
    query_ids.append(json.loads(metadata.read_text())["id"])
    assert len(set(query_ids)) == 1, f"every restart resumed the one query of the checkpoint: {query_ids}"
