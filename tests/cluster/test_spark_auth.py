"""An authenticated Spark standalone cluster: an application with the shared secret runs, one without it is
refused by the master, and the secret is in no log and on no command line."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.spark_cluster import SparkCluster, start_spark_cluster

pytestmark = pytest.mark.cluster

# An application of its own process (this one keeps its local session): one count on the cluster's executor.
APPLICATION = """
import sys
from pyspark.sql import SparkSession
from pipeline.spark_session import spark_auth_conf

builder = (
    SparkSession.builder.master(sys.argv[1])
    .config("spark.driver.host", "127.0.0.1")
    .config("spark.driver.bindAddress", "127.0.0.1")
    .config("spark.ui.enabled", "false")
    .config("spark.cores.max", "1")
    .config("spark.executor.memory", "512m")
)
if len(sys.argv) > 2:
    for key, value in spark_auth_conf(sys.argv[2]).items():
        builder = builder.config(key, value)
print("counted", builder.getOrCreate().range(1000).count(), flush=True)
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SparkCluster]:
    running = start_spark_cluster(tmp_path_factory.mktemp("spark"), workers=1, secret=secrets.token_urlsafe(32))
    yield running
    running.stop()


def _application(cluster: SparkCluster, *secret: str, timeout_s: float) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1"}
    command = [sys.executable, "-c", APPLICATION, cluster.master_url, *secret]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout_s, check=False)


def test_an_application_with_the_secret_runs_on_the_cluster(cluster: SparkCluster) -> None:
    assert cluster.secret is not None
    done = _application(cluster, cluster.secret, timeout_s=180)
    assert "counted 1000" in done.stdout, done.stderr[-3000:]


@pytest.mark.parametrize("secret", [(), ("not-the-secret",)], ids=["without a secret", "with a wrong secret"])
def test_an_application_without_the_secret_is_refused_by_the_master(
    cluster: SparkCluster, secret: tuple[str, ...]
) -> None:
    """The master closes the connection of a driver that does not authenticate; the driver gives up after its
    three registration attempts (20 s each) and no job runs."""
    done = _application(cluster, *secret, timeout_s=240)
    assert "counted" not in done.stdout
    assert "All masters are unresponsive" in done.stderr, done.stderr[-3000:]
    applications = (cluster.status() or {}).get("activeapps", []) + (cluster.status() or {}).get("completedapps", [])
    assert not [app for app in applications if app.get("state") == "RUNNING"]


def test_the_secret_is_in_no_log_and_only_in_the_owner_only_configuration(cluster: SparkCluster) -> None:
    assert cluster.secret is not None
    _application(cluster, cluster.secret, timeout_s=180)  # executors launched, their logs written
    logs = [path for path in cluster.workdir.rglob("*") if path.is_file() and path.parent.name != "conf"]
    assert logs
    assert not [path for path in logs if cluster.secret in path.read_text(errors="replace")]
    conf = cluster.workdir / "conf"
    assert conf.stat().st_mode & 0o077 == 0
    assert (conf / "spark-defaults.conf").stat().st_mode & 0o077 == 0
    for process in [cluster.master, *cluster.workers]:
        assert cluster.secret not in Path(f"/proc/{process.pid}/cmdline").read_bytes().decode(errors="replace")
