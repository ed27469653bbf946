"""Real Apache Kafka from the resolved Maven jars: one KRaft node (broker and controller in one process), or a
cluster of such nodes with a static controller quorum (replicated topics, a node can die)."""

from __future__ import annotations

import contextlib
import functools
import logging
import subprocess
from pathlib import Path

from kafka import KafkaAdminClient
from kafka.errors import KafkaError

from devstack.jars import is_resolved, jars_dir
from devstack.kafka_security import KafkaRole, KafkaSecurity
from devstack.process import ManagedProcess, ServiceError, ensure_port_free, free_port, java_executable
from pipeline.config import KafkaSettings

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


def listener_properties(
    node_id: int, nodes: int, port: int, controller_port: int, security: KafkaSecurity | None
) -> list[str]:
    """The listeners of a node: in the clear, or as ``security`` sets them (SASL_SSL, TLS, ACLs)."""
    if security is not None:
        return security.listener_properties(node_id, nodes, port, controller_port)
    return [
        f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names=CONTROLLER",
        "inter.broker.listener.name=PLAINTEXT",
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
    ]


def server_properties(data_dir: Path, port: int, controller_port: int, security: KafkaSecurity | None = None) -> str:
    return "\n".join(
        [
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.bootstrap.servers=127.0.0.1:{controller_port}",
            *listener_properties(1, 1, port, controller_port, security),
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


def cluster_node_properties(
    node_id: int,
    data_dir: Path,
    port: int,
    controller_port: int,
    voters: str,
    nodes: int,
    security: KafkaSecurity | None = None,
) -> str:
    """One node of an ``nodes``-node cluster: broker and controller, voters fixed (``id@host:port,...``).

    Internal topics and new topics are replicated to every node with ``min.insync.replicas`` one less, so a
    producer with ``acks=all`` keeps writing while one node is down.
    """
    replicas, min_isr = nodes, max(1, nodes - 1)
    return "\n".join(
        [
            "process.roles=broker,controller",
            f"node.id={node_id}",
            f"controller.quorum.voters={voters}",
            *listener_properties(node_id, nodes, port, controller_port, security),
            f"log.dirs={data_dir}",
            "num.partitions=2",
            f"default.replication.factor={replicas}",
            f"min.insync.replicas={min_isr}",
            f"offsets.topic.replication.factor={replicas}",
            "offsets.topic.num.partitions=4",
            f"transaction.state.log.replication.factor={replicas}",
            f"transaction.state.log.min.isr={min_isr}",
            f"share.coordinator.state.topic.replication.factor={replicas}",
            f"share.coordinator.state.topic.min.isr={min_isr}",
            "group.initial.rebalance.delay.ms=0",
            "auto.create.topics.enable=false",
            "unclean.leader.election.enable=false",
            "message.max.bytes=4194304",
            "log.retention.hours=-1",
            "",
        ]
    )


def start_local_kafka_cluster(
    home: Path, workdir: Path, *, nodes: int = 3, detach: bool = False, security: KafkaSecurity | None = None
) -> tuple[list[ManagedProcess], str]:
    """Format and start ``nodes`` KRaft nodes (one cluster id, a static voter list); returns (processes, bootstrap).

    Every node is started before any is waited for: none is ready until a quorum of controllers is up. With
    ``security``, the nodes listen as it says and their storage holds its users.
    """
    if not is_resolved(home, "kafka"):
        raise ServiceError("Kafka broker jars are not resolved: run `shoplake jars` first")
    java = java_executable(17)
    classpath = f"{jars_dir(home, 'kafka')}/*"
    ports = [(free_port(), free_port()) for _ in range(nodes)]
    voters = ",".join(f"{i + 1}@127.0.0.1:{controller}" for i, (_, controller) in enumerate(ports))
    cluster_id = _run_java(java, classpath, ["kafka.tools.StorageTool", "random-uuid"]).strip().splitlines()[-1]
    users = security.format_arguments() if security is not None else []
    node_dirs = []
    for i, (port, controller) in enumerate(ports):
        node_dir = workdir / f"node-{i + 1}"
        node_dir.mkdir(parents=True, exist_ok=True)
        props = node_dir / "server.properties"
        _write_private(
            props, cluster_node_properties(i + 1, node_dir / "data", port, controller, voters, nodes, security)
        )
        (node_dir / "log4j2.properties").write_text(LOG4J2.format(log=node_dir / "server.log"))
        _run_java(java, classpath, ["kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(props), *users])
        node_dirs.append(node_dir)
    processes: list[ManagedProcess] = []
    try:
        for node_dir in node_dirs:
            processes.append(_launch(home, node_dir, detach=detach, heap="512m"))
        for process, (port, _) in zip(processes, ports, strict=True):
            process.wait_ready(functools.partial(broker_ready, f"127.0.0.1:{port}", security), READY_TIMEOUT_S)
    except BaseException:
        for process in processes:
            with contextlib.suppress(ServiceError):
                process.stop()
        raise
    return processes, ",".join(f"127.0.0.1:{port}" for port, _ in ports)


def admin_login(bootstrap: str, security: KafkaSecurity | None) -> KafkaSettings:
    """Client settings for ``bootstrap`` as the administrator (in the clear without ``security``)."""
    kafka = KafkaSettings(bootstrap_servers=bootstrap)
    return kafka if security is None else security.client(kafka, KafkaRole.ADMIN)


def broker_ready(bootstrap: str, security: KafkaSecurity | None = None) -> bool:
    """A metadata request succeeds, as the administrator when the broker is secured (the client's own
    connection-refused logging is muted while probing)."""
    client_log = logging.getLogger("kafka")
    level = client_log.level
    client_log.setLevel(logging.CRITICAL)
    try:
        return _metadata_answers(admin_login(bootstrap, security))
    finally:
        client_log.setLevel(level)


def _metadata_answers(kafka: KafkaSettings) -> bool:
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=kafka.bootstrap_servers, request_timeout_ms=3000, **kafka.python_client()
        )
    except (KafkaError, OSError, ValueError):
        return False
    try:
        return bool(admin.describe_cluster().get("brokers"))
    except (KafkaError, OSError):
        return False
    finally:
        admin.close()


def start_local_kafka(
    home: Path,
    workdir: Path,
    *,
    port: int | None = None,
    detach: bool = False,
    security: KafkaSecurity | None = None,
) -> tuple[ManagedProcess, str]:
    """Format a fresh KRaft log directory under ``workdir`` and start a broker; returns (process, bootstrap).
    With ``security``, it listens as that says and its storage holds its users."""
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
    _write_private(props, server_properties(data_dir, port, controller_port, security))
    log4j = workdir / "log4j2.properties"
    log4j.write_text(LOG4J2.format(log=workdir / "server.log"))
    if not (data_dir / "meta.properties").exists():
        cluster_id = _run_java(java, classpath, ["kafka.tools.StorageTool", "random-uuid"]).strip().splitlines()[-1]
        _run_java(
            java,
            classpath,
            [
                "kafka.tools.StorageTool", "format", "--standalone", "-t", cluster_id, "-c", str(props),
                *(security.format_arguments() if security is not None else []),
            ],
        )  # fmt: skip
    bootstrap = f"127.0.0.1:{port}"
    return relaunch_local_kafka(home, workdir, bootstrap, detach=detach, security=security), bootstrap


def relaunch_local_kafka(
    home: Path, workdir: Path, bootstrap: str, *, detach: bool = False, security: KafkaSecurity | None = None
) -> ManagedProcess:
    """Start the broker of an already formatted ``workdir`` (same ports, same data): a start or a restart."""
    process = _launch(home, workdir, detach=detach, heap="1g")
    process.wait_ready(lambda: broker_ready(bootstrap, security), READY_TIMEOUT_S)
    return process


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` readable by this user only: a secured node's properties hold its passwords."""
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(text)


def _launch(home: Path, workdir: Path, *, detach: bool, heap: str) -> ManagedProcess:
    """Start the node configured in ``workdir`` (its server.properties and log4j2.properties)."""
    props = workdir / "server.properties"
    jars = jars_dir(home, "kafka")
    cmd = [
        java_executable(17),
        "-Xms256m",
        f"-Xmx{heap}",
        "-XX:+UseG1GC",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={workdir / 'log4j2.properties'}",
        "-cp",
        f"{jars}/*",
        "kafka.Kafka",
        str(props),
    ]
    return ManagedProcess.start("kafka", cmd, workdir / "stdout.log", detach=detach, cwd=workdir)


def _run_java(java: str, classpath: str, args: list[str]) -> str:
    result = subprocess.run([java, "-cp", classpath, *args], capture_output=True, text=True, check=False, timeout=120)
    if result.returncode != 0:  # the arguments hold the users' passwords: only the tool's own words are shown
        raise ServiceError(f"Kafka {args[0]} {args[1]} failed: {result.stderr.strip()[-2000:]}")
    return result.stdout
