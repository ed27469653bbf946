"""A real Apache Kafka broker (KRaft, broker and controller in one process) from the resolved Maven jars."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

from kafka import KafkaAdminClient
from kafka.errors import KafkaError

from devstack.jars import is_resolved, jars_dir
from devstack.process import ManagedProcess, ServiceError, ensure_port_free, free_port, java_executable

READY_TIMEOUT_S = 90.0

LOG4J2 = """\
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = warn
rootLogger.appenderRef.file.ref = file
logger.kafka.name = kafka
logger.kafka.level = info
"""


def server_properties(data_dir: Path, port: int, controller_port: int) -> str:
    return "\n".join(
        [
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.bootstrap.servers=127.0.0.1:{controller_port}",
            f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            f"log.dirs={data_dir}",
            "num.partitions=2",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=4",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            "auto.create.topics.enable=false",
            # Let oversized payloads reach the pipeline (and quarantine) instead of bouncing at the producer.
            "message.max.bytes=4194304",
            "log.retention.hours=-1",
            "",
        ]
    )


def broker_ready(bootstrap: str) -> bool:
    """A metadata request succeeds (the client's own connection-refused logging is muted while probing)."""
    client_log = logging.getLogger("kafka")
    level = client_log.level
    client_log.setLevel(logging.CRITICAL)
    try:
        return _metadata_answers(bootstrap)
    finally:
        client_log.setLevel(level)


def _metadata_answers(bootstrap: str) -> bool:
    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
    except (KafkaError, OSError, ValueError):
        return False
    try:
        return bool(admin.describe_cluster().get("brokers"))
    except (KafkaError, OSError):
        return False
    finally:
        admin.close()


def start_local_kafka(
    home: Path, workdir: Path, *, port: int | None = None, detach: bool = False
) -> tuple[ManagedProcess, str]:
    """Format a fresh KRaft log directory under ``workdir`` and start a broker; returns (process, bootstrap)."""
    if not is_resolved(home, "kafka"):
        raise ServiceError("Kafka broker jars are not resolved: run `shoplake jars` first")
    java = java_executable(17)
    classpath = f"{jars_dir(home, 'kafka')}/*"
    if port is None:
        port = free_port()
    else:
        ensure_port_free(port, "Kafka broker")
    controller_port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    data_dir = workdir / "data"
    props = workdir / "server.properties"
    props.write_text(server_properties(data_dir, port, controller_port))
    log4j = workdir / "log4j2.properties"
    log4j.write_text(LOG4J2.format(log=workdir / "server.log"))
    if not (data_dir / "meta.properties").exists():
        cluster_id = _run_java(java, classpath, ["kafka.tools.StorageTool", "random-uuid"]).strip().splitlines()[-1]
        _run_java(
            java,
            classpath,
            ["kafka.tools.StorageTool", "format", "--standalone", "-t", cluster_id, "-c", str(props)],
        )
    bootstrap = f"127.0.0.1:{port}"
    return relaunch_local_kafka(home, workdir, bootstrap, detach=detach), bootstrap


def relaunch_local_kafka(home: Path, workdir: Path, bootstrap: str, *, detach: bool = False) -> ManagedProcess:
    """Start the broker of an already formatted ``workdir`` (same ports, same data): a start or a restart."""
    props = workdir / "server.properties"
    cmd = [
        java_executable(17),
        "-Xms256m",
        "-Xmx1g",
        "-XX:+UseG1GC",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={workdir / 'log4j2.properties'}",
        "-cp",
        f"{jars_dir(home, 'kafka')}/*",
        "kafka.Kafka",
        str(props),
    ]
    process = ManagedProcess.start("kafka", cmd, workdir / "stdout.log", detach=detach, cwd=workdir)
    process.wait_ready(lambda: broker_ready(bootstrap), READY_TIMEOUT_S)
    return process


def _run_java(java: str, classpath: str, args: list[str]) -> str:
    result = subprocess.run([java, "-cp", classpath, *args], capture_output=True, text=True, check=False, timeout=120)
    if result.returncode != 0:
        raise ServiceError(f"Kafka {args[0]} {args[1]} failed: {result.stderr.strip()[-2000:]}")
    return result.stdout
