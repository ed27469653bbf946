"""The cluster topology beside the embedded one, same machine, same run: catch-up throughput and live freshness.

* **local**: the embedded default: ``local[2]`` Spark, one Kafka broker, the SQLite catalog, a local warehouse;
* **cluster**: what ``shoplake services up --topology cluster`` starts: a Spark standalone master with two
  one-core workers (the stream gets both cores, as ``local[2]`` does), three Kafka nodes (topics replicated three
  times, ``acks=all``), Iceberg's REST catalog server on PostgreSQL, the warehouse on the S3 store.

Each topology runs in a process of its own (``benchmarks/topology_run.py``): preload N events and catch up with
``--available-now``, then stream a live producer at R events/s and measure every event's Kafka -> silver latency.
On one two-core machine the cluster cannot be faster: its extra JVMs, network hops and replication share the same
cores. The figures say what the topology costs, not what more machines would buy.

Results: ``benchmarks/results/topology.json`` (one run per topology) and ``topology_cdf.png``.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from benchmarks.harness import Results
from benchmarks.plots import latency_cdf
from devstack.jars import OPTIONAL_PROFILES, PROFILES, resolve
from devstack.postgres import missing_postgres_reason
from devstack.pytest_plugin import make_settings
from devstack.services import Mode, start_cluster_services, start_services
from devstack.spark_cluster import start_spark_cluster
from pipeline.config import Settings

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parent.parent
WORKERS = 2
_cdf: list[tuple[str, list[float]]] = []


def _sizes(full: bool) -> dict[str, int]:
    if full:
        return {"events": 200_000, "per_batch": 50_000, "rate": 1000, "duration": 60, "warmup": 5000}
    return {"events": 4000, "per_batch": 2000, "rate": 200, "duration": 8, "warmup": 500}


@pytest.fixture(scope="module")
def cluster_jars(jars_home: Path) -> Path:
    reason = missing_postgres_reason()
    if reason is not None:
        pytest.skip(reason)
    resolve(jars_home, PROFILES + OPTIONAL_PROFILES)
    return jars_home


@pytest.fixture
def topology_settings(request: pytest.FixtureRequest, cluster_jars: Path, tmp_path: Path) -> Iterator[Settings]:
    """The settings of the topology under test, its services running for the test."""
    topology = request.param
    with ExitStack() as stack:
        if topology == "local":
            services = start_services(cluster_jars, tmp_path / "services", mode=Mode.LOCAL)
            stack.callback(services.stop)
            yield services.apply(make_settings(tmp_path, cluster_jars, spark={"master": "local[2]"}))
            return
        services = start_cluster_services(cluster_jars, tmp_path / "services")
        stack.callback(services.stop)
        cluster = start_spark_cluster(
            tmp_path / "spark", workers=WORKERS, worker_cores=1, worker_memory="1g", secret=secrets.token_urlsafe(32)
        )
        stack.callback(cluster.stop)
        spark = {
            "master": cluster.master_url,
            "auth_secret": cluster.secret,
            "cores_max": WORKERS,
            "executor_memory": "1g",
        }
        yield services.apply(make_settings(tmp_path, cluster_jars, spark=spark))


@pytest.mark.timeout(3600)
@pytest.mark.parametrize("topology_settings", ["local", "cluster"], indirect=True)
def test_topology(topology_settings: Settings, full: bool, results: Results, tmp_path: Path) -> None:
    settings = topology_settings
    topology = "local" if settings.spark.master.startswith("local") else "cluster"
    sizes = _sizes(full)
    out = tmp_path / "measured.json"
    command = [sys.executable, "-m", "benchmarks.topology_run", "--out", str(out)]
    command += [arg for name, value in sizes.items() for arg in (f"--{name.replace('_', '-')}", str(value))]
    env = {
        **os.environ,
        **settings.to_env(),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    log = tmp_path / "run.log"
    with log.open("wb") as output:
        done = subprocess.run(command, env=env, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT, check=False)
    assert done.returncode == 0, log.read_text(errors="replace")[-4000:]
    measured = json.loads(out.read_text())
    latencies = measured.pop("latencies")
    run = {
        "topology": topology,
        "kafka_nodes": settings.kafka.replication_factor,
        "catalog": settings.catalog.type,
        "warehouse": settings.warehouse_uri.split(":", 1)[0],
        **measured,
    }
    path = results.add("topology", run)
    _cdf.append((f"{topology}, {sizes['rate']}/s", latencies))
    latency_cdf(_cdf, path.with_name("topology_cdf.png"), "Kafka -> silver latency by topology (CDF)")
