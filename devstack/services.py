"""Local services for development and tests: a Kafka broker, an S3-compatible object store, a catalog server.

Where a Docker engine answers, testcontainers runs them (Kafka, MinIO); otherwise they run as local processes
from the resolved Maven jars (Kafka in KRaft mode, s3proxy). External bootstrap servers from configuration are
used as they are. The Iceberg catalog needs no service by default: it is a SQLite file. The production catalogs
run as local processes on request (``catalog=``): PostgreSQL from the machine's binaries (the JDBC catalog), and
Iceberg's REST catalog server backed by that PostgreSQL. A Spark standalone cluster (a master and workers) runs on
request too (``spark_workers=``); applications use it when ``spark.master`` names it. Kafka runs as one node, or
as a cluster of ``kafka_nodes`` KRaft nodes whose topics are replicated to every node (``min.insync.replicas`` one
less), so one node can die without stopping a producer that waits for ``acks=all``.

Two lifetimes:

* **attached** (tests, ``shoplake demo``): services die with the Python process, even on SIGKILL;
* **detached** (``shoplake services up``): services outlive the command and are described by a state file
  (``<home>/services/state.json``) that ``shoplake services status`` and ``down`` read.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from devstack.kafka import broker_ready, relaunch_local_kafka, start_local_kafka, start_local_kafka_cluster
from devstack.kafka_security import KafkaRole, KafkaSecurity, create_kafka_security, grant_event_topics, set_passwords
from devstack.postgres import PostgresEndpoint, PostgresServer, postgres_bin_dir, server_ready, start_local_postgres
from devstack.postgres import stop_postgres as _stop_postgres
from devstack.process import ManagedProcess, ServiceError, java_executable
from devstack.rest_catalog import RestCatalog, rest_catalog_ready, start_rest_catalog
from devstack.s3 import S3Endpoint, relaunch_local_s3, s3_ready, start_local_s3
from devstack.spark_cluster import alive_workers, master_status, start_spark_cluster
from pipeline.config import CatalogSettings, CatalogType, KafkaSettings, Settings
from pipeline.kafka_topics import ensure_topics

WAREHOUSE_BUCKET = "warehouse"


class Mode(StrEnum):
    AUTO = "auto"  # containers if Docker answers, else local processes
    CONTAINERS = "containers"
    LOCAL = "local"


class CatalogBackend(StrEnum):
    """Which Iceberg catalog the services provide."""

    SQLITE = "sqlite"  # the embedded default: a file, no service
    POSTGRES = "postgres"  # the JDBC catalog on a local PostgreSQL server
    REST = "rest"  # Iceberg's REST catalog server, backed by that PostgreSQL


def docker_available() -> bool:
    """A Docker engine answers a ping (the client binary alone is not enough)."""
    try:
        import docker

        return bool(docker.from_env(timeout=3).ping())
    except Exception:
        return False


@dataclass
class Services:
    """Running services and how to reach them."""

    mode: str
    workdir: str
    kafka_bootstrap: str
    s3: S3Endpoint | None = None
    pids: dict[str, int] = field(default_factory=dict)
    logs: dict[str, str] = field(default_factory=dict)
    postgres: PostgresEndpoint | None = None
    rest_catalog: RestCatalog | None = None
    postgres_root: str = ""  # the PostgreSQL server's temporary folder (data and log), for a stop from the state
    spark_master: str = ""  # spark://127.0.0.1:PORT of the standalone cluster, when one runs
    spark_webui: str = ""  # its master's status page (``/json/`` lists the workers and applications)
    spark_secret: str = ""  # the secret its daemons and applications authenticate with (a secret: never print it)
    kafka_nodes: int = 1  # Kafka nodes; topics are replicated to each of them
    kafka_security: KafkaSecurity | None = None  # SASL_SSL, TLS and ACLs, when the brokers are secured
    _owned: list[Any] = field(default_factory=list, repr=False)  # processes or containers to stop

    @property
    def catalog(self) -> CatalogBackend:
        if self.rest_catalog is not None:
            return CatalogBackend.REST
        return CatalogBackend.POSTGRES if self.postgres is not None else CatalogBackend.SQLITE

    def apply(
        self, settings: Settings, *, s3_warehouse: bool = False, kafka_role: KafkaRole = KafkaRole.ADMIN
    ) -> Settings:
        """Settings pointing at these services: the brokers (topics replicated to each; on secured brokers,
        logged in as ``kafka_role``), the catalog server if one runs (the REST catalog when both do), and the
        object store as the warehouse if asked (the REST catalog's own warehouse always).
        """
        update: dict[str, Any] = {"kafka": self.kafka_client(settings.kafka, kafka_role)}
        catalog: dict[str, Any] = {}
        if s3_warehouse or (self.rest_catalog is not None and self.rest_catalog.warehouse.startswith("s3")):
            if self.s3 is None:
                raise ServiceError("an S3 warehouse was asked for but no object store is running")
            catalog |= {
                "warehouse": f"s3://{WAREHOUSE_BUCKET}/",
                "s3_endpoint": self.s3.endpoint,
                "s3_region": self.s3.region,
                "s3_access_key_id": self.s3.access_key_id,
                "s3_secret_access_key": self.s3.secret_access_key,
            }
        if self.rest_catalog is not None:
            catalog |= {
                "type": CatalogType.REST,
                "uri": self.rest_catalog.uri,
                "warehouse": self.rest_catalog.warehouse,
                "rest_credential": self.rest_catalog.credential,
            }
        elif self.postgres is not None:
            catalog |= {
                "type": CatalogType.SQL,
                "uri": self.postgres.sqlalchemy_url,
                "jdbc_user": self.postgres.user,
                "jdbc_password": self.postgres.password,
            }
        if catalog:
            update["catalog"] = CatalogSettings.model_validate(settings.catalog.model_dump() | catalog)
        return settings.model_copy(update=update)

    def kafka_client(self, kafka: KafkaSettings, role: KafkaRole) -> KafkaSettings:
        """``kafka`` pointing at these brokers, logged in as ``role`` when they are secured."""
        kafka = kafka.model_copy(
            update={"bootstrap_servers": self.kafka_bootstrap, "replication_factor": self.kafka_nodes}
        )
        return kafka if self.kafka_security is None else self.kafka_security.client(kafka, role)

    def provision_topics(self, settings: Settings) -> list[str]:
        """Create ``settings``' event topics as the administrator and, on secured brokers, grant the stream and
        the producer their ACLs on them; returns the topic names."""
        admin = settings.model_copy(update={"kafka": self.kafka_client(settings.kafka, KafkaRole.ADMIN)})
        topics = ensure_topics(admin)
        if self.kafka_security is not None:
            grant_event_topics(admin.kafka, settings.kafka.topic_prefix)
        return topics

    def restart_broker(self, home: Path, down_s: float = 0.0) -> None:
        """Stop the local broker, wait ``down_s``, start it again on the same port with the same data.

        Call it from a thread that lives as long as the services: the new process dies with its starting thread.
        """
        if self.mode != Mode.LOCAL.value or self.kafka_nodes != 1:
            raise ServiceError("only a single local-process broker can be restarted")
        workdir = Path(self.workdir) / "kafka"
        self._relaunch(
            "kafka",
            "kafka",
            down_s,
            lambda: relaunch_local_kafka(home, workdir, self.kafka_bootstrap, security=self.kafka_security),
        )

    def pause_object_store(self, home: Path, down_s: float) -> None:
        """Make the object store unreachable for ``down_s`` seconds (stop it, start it again, same data).

        Call it from a thread that lives as long as the services: the new process dies with its starting thread.
        """
        s3 = self.s3
        if s3 is None or self.mode != Mode.LOCAL.value:
            raise ServiceError("only a local object store can be paused")
        workdir = Path(self.workdir) / "s3"
        self._relaunch("s3proxy", "s3", down_s, lambda: relaunch_local_s3(home, workdir, s3))

    def _relaunch(self, name: str, pid_key: str, down_s: float, launch: Callable[[], ManagedProcess]) -> None:
        """Stop the owned process ``name``, wait ``down_s``, and put the one ``launch`` starts in its place."""
        old = next(p for p in self._owned if isinstance(p, ManagedProcess) and p.name == name)
        old.stop()
        time.sleep(down_s)
        new = launch()
        self._owned[self._owned.index(old)] = new
        self.pids[pid_key] = new.pid

    def stop(self) -> None:
        errors = []
        for owned in reversed(self._owned):
            try:
                owned.stop()
            except Exception as exc:
                errors.append(f"{owned}: {exc}")
        self._owned.clear()
        if errors:
            raise ServiceError("some services did not stop: " + "; ".join(errors))

    def __enter__(self) -> Services:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the state file of detached services -------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "workdir": self.workdir,
            "kafka_bootstrap": self.kafka_bootstrap,
            "s3": asdict(self.s3) if self.s3 else None,
            "pids": self.pids,
            "logs": self.logs,
            "postgres": asdict(self.postgres) if self.postgres else None,
            "postgres_root": self.postgres_root,
            "rest_catalog": asdict(self.rest_catalog) if self.rest_catalog else None,
            "spark_master": self.spark_master,
            "spark_webui": self.spark_webui,
            "spark_secret": self.spark_secret,
            "kafka_nodes": self.kafka_nodes,
            "kafka_security": asdict(self.kafka_security) if self.kafka_security else None,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Services:
        s3 = S3Endpoint(**state["s3"]) if state.get("s3") else None
        postgres = PostgresEndpoint(**state["postgres"]) if state.get("postgres") else None
        rest = RestCatalog(**state["rest_catalog"]) if state.get("rest_catalog") else None
        security = KafkaSecurity(**state["kafka_security"]) if state.get("kafka_security") else None
        return cls(
            state["mode"],
            state["workdir"],
            state["kafka_bootstrap"],
            s3,
            state["pids"],
            state["logs"],
            postgres,
            rest,
            state.get("postgres_root", ""),
            state.get("spark_master", ""),
            state.get("spark_webui", ""),
            state.get("spark_secret", ""),
            state.get("kafka_nodes", 1),
            security,
        )


def _create_bucket(endpoint: S3Endpoint) -> None:
    import pyarrow.fs as pafs

    scheme, _, address = endpoint.endpoint.partition("://")
    fs = pafs.S3FileSystem(
        access_key=endpoint.access_key_id,
        secret_key=endpoint.secret_access_key,
        endpoint_override=address,
        scheme=scheme,
        region=endpoint.region,
        allow_bucket_creation=True,
    )
    fs.create_dir(WAREHOUSE_BUCKET)


def _start_containers(with_s3: bool) -> Services:
    from testcontainers.community.kafka import KafkaContainer
    from testcontainers.community.minio import MinioContainer

    kafka = KafkaContainer("confluentinc/cp-kafka:7.9.0").with_kraft()
    kafka.start()
    services = Services(Mode.CONTAINERS.value, "", kafka.get_bootstrap_server(), _owned=[kafka])
    if with_s3:
        minio = MinioContainer()
        minio.start()
        services._owned.append(minio)
        config = minio.get_config()
        services.s3 = S3Endpoint(f"http://{config['endpoint']}", config["access_key"], config["secret_key"])
        _create_bucket(services.s3)
    return services


def start_services(
    home: Path,
    workdir: Path,
    *,
    with_s3: bool = False,
    mode: Mode = Mode.AUTO,
    detach: bool = False,
    kafka_port: int | None = None,
    catalog: CatalogBackend = CatalogBackend.SQLITE,
    spark_workers: int = 0,
    kafka_nodes: int = 1,
    kafka_secure: bool = False,
) -> Services:
    """Start a broker, or a cluster of ``kafka_nodes`` (an object store if ``with_s3``, the ``catalog`` server,
    and a Spark standalone cluster of ``spark_workers`` one-core workers if asked); on any failure, stop what was
    started and raise. The REST catalog keeps its warehouse on the object store when one runs. With
    ``kafka_secure``, the brokers take SASL/SCRAM over TLS and ACLs (:mod:`devstack.kafka_security`): their
    certificates and users are made here, in ``workdir``."""
    if kafka_nodes < 1:
        raise ServiceError(f"a Kafka cluster needs at least one node, not {kafka_nodes}")
    if kafka_nodes > 1 and kafka_port is not None:
        raise ServiceError("a Kafka cluster's nodes take free ports; a fixed broker port is for one node only")
    if catalog is not CatalogBackend.SQLITE or spark_workers or kafka_nodes > 1 or kafka_secure:
        if mode is Mode.CONTAINERS:
            raise ServiceError(
                "the catalog servers, the Kafka cluster, secured Kafka and the Spark cluster run as local processes "
                "only; use --mode local"
            )
        mode = Mode.LOCAL
    if mode is Mode.CONTAINERS or (mode is Mode.AUTO and not detach and docker_available()):
        if detach:
            raise ServiceError("detached services run as local processes; use --mode local")
        return _start_containers(with_s3)
    if mode is Mode.CONTAINERS:
        raise ServiceError("no Docker engine answers: containers cannot start here (use --mode local)")
    workdir.mkdir(parents=True, exist_ok=True)
    started: list[ManagedProcess | PostgresServer] = []
    security = create_kafka_security(workdir / "kafka-tls", kafka_nodes, java_executable()) if kafka_secure else None
    try:
        if kafka_nodes == 1:
            kafka, bootstrap = start_local_kafka(
                home, workdir / "kafka", port=kafka_port, detach=detach, security=security
            )
            started.append(kafka)
            services = Services(Mode.LOCAL.value, str(workdir), bootstrap, kafka_security=security, _owned=started)
            services.pids["kafka"] = kafka.pid
            services.logs["kafka"] = str(workdir / "kafka" / "server.log")
        else:
            nodes, bootstrap = start_local_kafka_cluster(
                home, workdir / "kafka", nodes=kafka_nodes, detach=detach, security=security
            )
            started.extend(nodes)
            services = Services(
                Mode.LOCAL.value,
                str(workdir),
                bootstrap,
                kafka_nodes=kafka_nodes,
                kafka_security=security,
                _owned=started,
            )
            for number, node in enumerate(nodes, start=1):
                services.pids[f"kafka-{number}"] = node.pid
                services.logs[f"kafka-{number}"] = str(workdir / "kafka" / f"node-{number}" / "server.log")
        if security is not None:
            roles = {role.value: security.passwords[role.value] for role in (KafkaRole.STREAM, KafkaRole.PRODUCER)}
            set_passwords(services.kafka_client(KafkaSettings(), KafkaRole.ADMIN), roles)
        if with_s3:
            s3, endpoint = start_local_s3(home, workdir / "s3", detach=detach)
            started.append(s3)
            services.s3 = endpoint
            services.pids["s3"] = s3.pid
            services.logs["s3"] = str(s3.log_path)
            _create_bucket(endpoint)
        if catalog is not CatalogBackend.SQLITE:
            postgres = start_local_postgres(workdir / "postgres", detach=detach)
            started.append(postgres)
            services.postgres = postgres.endpoint
            services.postgres_root = str(postgres.root)
            services.pids["postgres"] = postgres.pid
            services.logs["postgres"] = str(postgres.process.log_path)
        if catalog is CatalogBackend.REST:
            assert services.postgres is not None
            warehouse = f"s3://{WAREHOUSE_BUCKET}/" if services.s3 else (workdir / "rest-warehouse").as_uri()
            rest, rest_catalog = start_rest_catalog(
                home, workdir / "rest-catalog", services.postgres, warehouse, s3=services.s3, detach=detach
            )
            started.append(rest)
            services.rest_catalog = rest_catalog
            services.pids["rest-catalog"] = rest.pid
            services.logs["rest-catalog"] = str(rest.log_path)
        if spark_workers:
            secret = secrets.token_urlsafe(32)
            cluster = start_spark_cluster(workdir / "spark", workers=spark_workers, detach=detach, secret=secret)
            services.spark_secret = secret
            for spark_process in (cluster.master, *cluster.workers):
                started.append(spark_process)
                services.pids[spark_process.name] = spark_process.pid
                services.logs[spark_process.name] = str(spark_process.log_path)
            services.spark_master, services.spark_webui = cluster.master_url, cluster.webui_url
        return services
    except BaseException:
        for process in reversed(started):
            with contextlib.suppress(ServiceError):
                process.stop()
        raise


# Kafka nodes of the cluster topology: with min.insync.replicas one less, one node can die and acks=all still lands.
CLUSTER_KAFKA_NODES = 3


def start_cluster_services(home: Path, workdir: Path, *, detach: bool = False) -> Services:
    """The cluster topology's services (``services up --topology cluster`` without the Spark cluster): Kafka on
    :data:`CLUSTER_KAFKA_NODES` nodes secured (SASL/SCRAM over TLS, ACLs), the object store, and the REST catalog
    on PostgreSQL with the warehouse on the object store."""
    return start_services(
        home,
        workdir,
        with_s3=True,
        mode=Mode.LOCAL,
        detach=detach,
        catalog=CatalogBackend.REST,
        kafka_nodes=CLUSTER_KAFKA_NODES,
        kafka_secure=True,
    )


# -- detached services: `shoplake services up/status/down` ------------------------------------------------------


def state_path(home: Path) -> Path:
    return home / "services" / "state.json"


def services_up(
    home: Path,
    *,
    with_s3: bool = True,
    kafka_port: int | None = None,
    catalog: CatalogBackend = CatalogBackend.SQLITE,
    spark_workers: int = 0,
    kafka_nodes: int = 1,
    kafka_secure: bool = False,
) -> Services:
    path = state_path(home)
    if path.exists():
        current = Services.from_state(json.loads(path.read_text()))
        if all(_alive(pid) for pid in current.pids.values()):
            raise ServiceError(f"services are already up (see `shoplake services status`, state in {path})")
        services_down(home)
    workdir = home / "services"
    shutil.rmtree(workdir / "kafka", ignore_errors=True)
    shutil.rmtree(workdir / "kafka-tls", ignore_errors=True)
    shutil.rmtree(workdir / "spark", ignore_errors=True)
    services = start_services(
        home,
        workdir,
        with_s3=with_s3,
        mode=Mode.LOCAL,
        detach=True,
        kafka_port=kafka_port,
        catalog=catalog,
        spark_workers=spark_workers,
        kafka_nodes=kafka_nodes,
        kafka_secure=kafka_secure,
    )
    path.touch(mode=0o600)  # holds the object store's and the database's generated credentials
    path.chmod(0o600)
    path.write_text(json.dumps(services.to_state(), indent=1))
    return services


def running_services(home: Path) -> Services | None:
    path = state_path(home)
    if not path.exists():
        return None
    return Services.from_state(json.loads(path.read_text()))


def services_status(home: Path) -> dict[str, str]:
    services = running_services(home)
    if services is None:
        return {}
    nodes = ""
    if services.kafka_nodes > 1:
        alive = sum(_alive(pid) for name, pid in services.pids.items() if name.startswith("kafka-"))
        nodes = f" ({alive} of {services.kafka_nodes} nodes running)"
    up = "up" if broker_ready(services.kafka_bootstrap, services.kafka_security) else "DOWN"
    secured = " SASL_SSL" if services.kafka_security is not None else ""
    status = {"kafka": f"{services.kafka_bootstrap}{nodes}{secured} {up}"}
    if services.s3:
        status["object store"] = f"{services.s3.endpoint} " + ("up" if s3_ready(services.s3.endpoint) else "DOWN")
    if services.postgres:
        status["postgresql"] = f"{services.postgres.jdbc_url} " + ("up" if server_ready(services.postgres) else "DOWN")
    if services.rest_catalog:
        uri = services.rest_catalog.uri
        answers = rest_catalog_ready(uri, services.rest_catalog.credential)
        status["rest catalog"] = f"{uri} (OAuth2 client credentials) " + ("up" if answers else "DOWN")
    if services.spark_master:
        master = master_status(services.spark_webui)
        alive = len(alive_workers(master))
        state = f"up, {alive} worker(s) ALIVE" if master is not None else "DOWN"
        status["spark master"] = f"{services.spark_master} ({services.spark_webui}) {state}"
    return status


def services_down(home: Path) -> list[str]:
    services = running_services(home)
    if services is None:
        return []
    stopped = []
    for name, pid in reversed(services.pids.items()):
        process = ManagedProcess(name, pid, Path(services.logs.get(name, os.devnull)))
        bin_dir = postgres_bin_dir()
        if name == "postgres" and services.postgres_root and bin_dir is not None:
            _stop_postgres(bin_dir, Path(services.postgres_root), process)
        else:
            process.stop()
        stopped.append(name)
    stopped.reverse()
    state_path(home).unlink(missing_ok=True)
    shutil.rmtree(Path(services.workdir) / "kafka-tls", ignore_errors=True)  # key stores outlive no service
    return stopped


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
