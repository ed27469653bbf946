"""A Spark standalone cluster as local processes: one master and N workers from pyspark's bundled Spark.

The pip package has ``bin/spark-class`` but not the ``sbin`` start scripts, so the master and the workers are
started the way those scripts would start them (``spark-class org.apache.spark.deploy.master.Master`` and
``...deploy.worker.Worker``), in the foreground, one managed process each, every port free and on 127.0.0.1.
The cluster is ready when the master's JSON status page lists N ALIVE workers.

An application takes every core of the cluster unless ``spark.cores.max`` is set: the stream and a gold run
share the cluster only when each asks for fewer cores than there are (``spark.cores_max`` in the settings).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devstack.process import ManagedProcess, ServiceError, free_port, java_executable

READY_TIMEOUT_S = 90.0
MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"


def spark_home() -> Path:
    """pyspark's bundled Spark (its ``bin/spark-class`` and ``jars/``)."""
    import pyspark

    home = Path(pyspark.__file__).resolve().parent
    if not (home / "bin" / "spark-class").is_file():
        raise ServiceError(f"pyspark at {home} has no bin/spark-class: cannot start a standalone cluster")
    return home


def master_status(webui_url: str, timeout_s: float = 3.0) -> dict[str, Any] | None:
    """The master's JSON status page (workers, applications), or None when it does not answer."""
    try:
        with urllib.request.urlopen(f"{webui_url}/json/", timeout=timeout_s) as response:
            status: dict[str, Any] = json.load(response)
            return status
    except (urllib.error.URLError, OSError, ValueError):
        return None


def alive_workers(status: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The workers the master currently counts as ALIVE (dead ones stay listed for a while)."""
    return [w for w in (status or {}).get("workers", []) if w.get("state") == "ALIVE"]


@dataclass
class SparkCluster:
    """A running master and its workers; ``master_url`` is what ``spark.master`` takes."""

    master_url: str
    webui_url: str
    workdir: Path
    master: ManagedProcess
    workers: list[ManagedProcess] = field(default_factory=list)
    worker_ports: list[int] = field(default_factory=list)  # each worker's RPC port, as the master lists it
    worker_cores: int = 1
    worker_memory: str = "1g"
    detach: bool = False
    secret: str | None = None  # the shared secret every daemon and application authenticates with, if any

    def status(self) -> dict[str, Any] | None:
        return master_status(self.webui_url)

    def wait_for_workers(self, count: int, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Block until the master lists ``count`` ALIVE workers; fail naming each worker's last log lines."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.master.alive():
                raise ServiceError(f"the Spark master exited; last log lines:\n{self.master.log_tail()}")
            if len(alive_workers(self.status())) >= count:
                return
            time.sleep(0.5)
        tails = "\n".join(f"--- {w.name} ({w.log_path}):\n{w.log_tail(10)}" for w in self.workers)
        raise ServiceError(
            f"the Spark master at {self.master_url} did not list {count} ALIVE workers within {timeout_s:g}s "
            f"(it lists {len(alive_workers(self.status()))}); last worker log lines:\n{tails}"
        )

    def start_worker(self) -> ManagedProcess:
        """Start one more worker (a new process, new ports) registering with the master; not waited for."""
        index = len(self.workers) + 1
        worker_dir = self.workdir / f"worker-{index}"
        (worker_dir / "work").mkdir(parents=True, exist_ok=True)
        port = free_port()
        cmd = [
            str(spark_home() / "bin" / "spark-class"),
            WORKER_CLASS,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--webui-port",
            str(free_port()),
            "--cores",
            str(self.worker_cores),
            "--memory",
            self.worker_memory,
            "--work-dir",
            str(worker_dir / "work"),
            self.master_url,
        ]
        worker = ManagedProcess.start(
            f"spark-worker-{index}",
            cmd,
            worker_dir / "worker.log",
            detach=self.detach,
            cwd=worker_dir,
            env=_daemon_env(self.workdir),
        )
        self.workers.append(worker)
        self.worker_ports.append(port)
        return worker

    def kill_worker(self, worker: ManagedProcess) -> None:
        """SIGKILL a worker's process group: the worker and the executors it launched die at once, as when a
        machine is lost."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while worker.alive() and time.monotonic() < deadline:
            time.sleep(0.1)

    def stop(self) -> None:
        errors = []
        for process in [*reversed(self.workers), self.master]:
            try:
                process.stop()
            except ServiceError as exc:
                errors.append(str(exc))
        if errors:
            raise ServiceError("; ".join(errors))


def _daemon_env(workdir: Path) -> dict[str, str]:
    """Environment of the master and workers (and, through the workers, of the executors): their configuration
    folder (the shared secret, when the cluster authenticates) is the cluster's own."""
    return {
        "SPARK_HOME": str(spark_home()),
        "SPARK_CONF_DIR": str(workdir / "conf"),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_DAEMON_MEMORY": "512m",
        # The REST submission server would take port 6066 on every master; applications connect over RPC.
        "SPARK_MASTER_OPTS": "-Dspark.master.rest.enabled=false",
    }


def start_spark_cluster(
    workdir: Path,
    *,
    workers: int = 2,
    worker_cores: int = 1,
    worker_memory: str = "1g",
    detach: bool = False,
    secret: str | None = None,
) -> SparkCluster:
    """Start a master and ``workers`` workers under ``workdir`` (logs there too); wait until all are ALIVE.

    With ``secret``, the daemons authenticate every application and one another with it and encrypt their RPC
    (:func:`~pipeline.spark_session.spark_auth_conf`): it is in their configuration file, owner-only, never on a
    command line. On any failure, what was started is stopped and the error names the process and its last
    log lines.
    """
    if workers < 1:
        raise ServiceError("a Spark standalone cluster needs at least one worker")
    java_executable(17)  # spark-class runs JAVA_HOME's or PATH's java: fail early and clearly if it is missing
    workdir.mkdir(parents=True, exist_ok=True)
    _write_daemon_conf(workdir / "conf", secret)
    port, webui_port = free_port(), free_port()
    master_dir = workdir / "master"
    master_dir.mkdir(exist_ok=True)
    cmd = [
        str(spark_home() / "bin" / "spark-class"),
        MASTER_CLASS,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--webui-port",
        str(webui_port),
    ]
    master = ManagedProcess.start(
        "spark-master", cmd, master_dir / "master.log", detach=detach, cwd=master_dir, env=_daemon_env(workdir)
    )
    cluster = SparkCluster(
        f"spark://127.0.0.1:{port}",
        f"http://127.0.0.1:{webui_port}",
        workdir,
        master,
        worker_cores=worker_cores,
        worker_memory=worker_memory,
        detach=detach,
        secret=secret,
    )
    try:
        master.wait_ready(lambda: cluster.status() is not None, READY_TIMEOUT_S)
        for _ in range(workers):
            cluster.start_worker()
        cluster.wait_for_workers(workers)
    except BaseException:
        with contextlib.suppress(ServiceError):
            cluster.stop()
        raise
    return cluster


def _write_daemon_conf(conf_dir: Path, secret: str | None) -> None:
    """The daemons' ``spark-defaults.conf``: the authentication settings with ``secret``, else nothing."""
    from pipeline.spark_session import spark_auth_conf  # imports pyspark: only when a cluster starts

    conf_dir.mkdir(parents=True, exist_ok=True)
    conf_dir.chmod(0o700)
    conf = conf_dir / "spark-defaults.conf"
    conf.touch(mode=0o600)
    conf.chmod(0o600)
    lines = [f"{key} {value}" for key, value in spark_auth_conf(secret).items()] if secret is not None else []
    conf.write_text("".join(line + "\n" for line in lines))
