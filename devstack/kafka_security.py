"""Kafka's security on the local services: SASL/SCRAM-SHA-512 over TLS for clients and between brokers, TLS
with client certificates between controllers, and ACLs.

* **Certificates** come from the JDK's ``keytool``: a certificate authority, and per node a key store (PKCS12)
  holding the node's key and its certificate signed by the authority for ``127.0.0.1``. Clients trust the
  authority's certificate (a PEM file). Key store passwords reach ``keytool`` through its environment
  (``-storepass:env``), never its command line.
* **Users** are SCRAM-SHA-512 credentials. ``broker`` (between brokers) and ``admin`` (creates topics, grants
  ACLs, sets passwords) are bootstrapped into the metadata log when a node's storage is formatted
  (``--add-scram``), so that brokers log in to one another on their first start; the formatter, for the second
  it runs, is the one process that has passwords on its command line. ``stream`` (the streaming job) and
  ``producer`` (whatever sends events) are then set by ``admin`` through the Admin API
  (:func:`set_passwords`), which is also how any password rotates.
* **ACLs** (Kafka's KRaft authorizer, nothing allowed without one): ``producer`` may write and describe the
  event topics of a prefix, ``stream`` may read and describe them and read its consumer groups, ``broker``,
  ``admin`` and the nodes' certificates are super users. No one else may do anything.

Everything lands in one folder with owner-only permissions, under the services' state folder.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from kafka import KafkaAdminClient
from kafka.admin import (
    ACL,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    ResourcePattern,
    ResourceType,
    ScramMechanism,
    UserScramCredentialUpsertion,
)
from kafka.protocol.admin import DescribeAclsRequest

from devstack.process import ServiceError
from pipeline.config import KafkaSecurityProtocol, KafkaSettings
from pipeline.kafka_topics import stream_group_prefix

MECHANISM = "SCRAM-SHA-512"
BROKER_USER = "broker"
# The certificate a node presents to the controllers names it ``CN=kafka-node-<id>``; mapped to that user.
NODE_USER_PREFIX = "kafka-node-"
VALIDITY_DAYS = "3650"


class KafkaRole(StrEnum):
    """Who a client logs in as."""

    ADMIN = "admin"
    STREAM = "stream"
    PRODUCER = "producer"


@dataclass(frozen=True)
class KafkaSecurity:
    """Where a secure Kafka's authority certificate and key stores are, and its users' passwords."""

    folder: str
    passwords: dict[str, str]  # user -> SCRAM password, for the broker user and every role
    store_password: str  # of every node's key store

    @property
    def ca_file(self) -> Path:
        return Path(self.folder) / "ca.pem"

    def keystore(self, node_id: int) -> Path:
        return Path(self.folder) / f"node-{node_id}.p12"

    def client(self, kafka: KafkaSettings, role: KafkaRole) -> KafkaSettings:
        """``kafka`` logging in as ``role``."""
        return KafkaSettings.model_validate(
            kafka.model_dump()
            | {
                "security_protocol": KafkaSecurityProtocol.SASL_SSL,
                "sasl_mechanism": MECHANISM,
                "sasl_username": role.value,
                "sasl_password": self.passwords[role.value],
                "ssl_ca_file": str(self.ca_file),
            }
        )

    def listener_properties(self, node_id: int, nodes: int, port: int, controller_port: int) -> list[str]:
        """server.properties lines: clients and brokers on SASL_SSL (SCRAM), controllers on TLS with client
        certificates (SCRAM credentials live in the metadata the controllers serve), the KRaft authorizer."""
        jaas = (
            "org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="{BROKER_USER}" password="{self.passwords[BROKER_USER]}";'
        )
        nodes_users = ";".join(f"User:{NODE_USER_PREFIX}{n}" for n in range(1, nodes + 1))
        return [
            f"listeners=BROKER://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
            f"advertised.listeners=BROKER://127.0.0.1:{port}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=BROKER",
            "listener.security.protocol.map=BROKER:SASL_SSL,CONTROLLER:SSL",
            f"sasl.enabled.mechanisms={MECHANISM}",
            f"sasl.mechanism.inter.broker.protocol={MECHANISM}",
            f"listener.name.broker.{MECHANISM.lower()}.sasl.jaas.config={jaas}",
            "ssl.keystore.type=PKCS12",
            f"ssl.keystore.location={self.keystore(node_id)}",
            f"ssl.keystore.password={self.store_password}",
            "ssl.truststore.type=PEM",
            f"ssl.truststore.location={self.ca_file}",
            "listener.name.controller.ssl.client.auth=required",
            "ssl.principal.mapping.rules=RULE:^CN=([^,]+)(,.*)?$/$1/,DEFAULT",
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            f"super.users=User:{BROKER_USER};User:{KafkaRole.ADMIN.value};{nodes_users}",
            "allow.everyone.if.no.acl.found=false",
        ]

    def format_arguments(self) -> list[str]:
        """``StorageTool format`` arguments that bootstrap the broker's and the administrator's credentials."""
        arguments = []
        for user in (BROKER_USER, KafkaRole.ADMIN.value):
            arguments += ["--add-scram", f"{MECHANISM}=[name={user},password={self.passwords[user]}]"]
        return arguments


def create_kafka_security(folder: Path, nodes: int, java: str) -> KafkaSecurity:
    """A certificate authority, a key store per node signed by it, and a password per user, in ``folder``
    (``keytool`` from the JDK of ``java``)."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    security = KafkaSecurity(
        str(folder),
        {user: secrets.token_urlsafe(24) for user in (BROKER_USER, *(role.value for role in KafkaRole))},
        secrets.token_urlsafe(24),
    )
    keytool = str(Path(java).resolve().parent / "keytool")
    authority_password = secrets.token_urlsafe(24)
    authority = folder / "ca.p12"

    def run(*args: str, password: str) -> None:
        environment = {**os.environ, "SHOPLAKE_STORE_PASSWORD": password}
        done = subprocess.run(
            [keytool, *args], env=environment, cwd=folder, capture_output=True, text=True, timeout=120, check=False
        )
        if done.returncode != 0:
            raise ServiceError(f"keytool {args[0]} failed: {(done.stderr or done.stdout).strip()[-2000:]}")

    store = ("-storetype", "PKCS12", "-storepass:env", "SHOPLAKE_STORE_PASSWORD")
    key = ("-keyalg", "RSA", "-keysize", "2048", "-validity", VALIDITY_DAYS)
    run(
        "-genkeypair", "-alias", "ca", "-dname", "CN=shoplake-kafka-ca", "-ext", "bc:c", *key,
        "-keystore", str(authority), *store, password=authority_password,
    )  # fmt: skip
    run(
        "-exportcert", "-rfc", "-alias", "ca", "-file", str(security.ca_file), "-keystore", str(authority), *store,
        password=authority_password,
    )  # fmt: skip
    for node_id in range(1, nodes + 1):
        keystore, request, signed = (
            security.keystore(node_id),
            folder / f"node-{node_id}.csr",
            folder / f"node-{node_id}.pem",
        )
        node_store = ("-keystore", str(keystore), *store)
        run(
            "-genkeypair", "-alias", "node", "-dname", f"CN={NODE_USER_PREFIX}{node_id}", *key, *node_store,
            password=security.store_password,
        )  # fmt: skip
        run("-certreq", "-alias", "node", "-file", str(request), *node_store, password=security.store_password)
        run(
            "-gencert", "-rfc", "-alias", "ca", "-infile", str(request), "-outfile", str(signed),
            "-ext", "san=ip:127.0.0.1,dns:localhost", "-ext", "eku=serverAuth,clientAuth", "-validity", VALIDITY_DAYS,
            "-keystore", str(authority), *store, password=authority_password,
        )  # fmt: skip
        run("-importcert", "-noprompt", "-alias", "ca", "-file", str(security.ca_file), *node_store,
            password=security.store_password)  # fmt: skip
        run("-importcert", "-alias", "node", "-file", str(signed), *node_store, password=security.store_password)
        request.unlink()
    authority.unlink()  # nothing signs again: the authority's key does not outlive this call
    for path in folder.iterdir():
        path.chmod(0o600)
    return security


def _admin_client(admin: KafkaSettings) -> KafkaAdminClient:
    return KafkaAdminClient(
        bootstrap_servers=admin.bootstrap_servers, client_id="shoplake-security", **admin.python_client()
    )


def set_passwords(admin: KafkaSettings, passwords: dict[str, str]) -> None:
    """Set (create or rotate) the SCRAM-SHA-512 password of each user in ``passwords``, logged in as ``admin``.

    A client logged in keeps its connection; its next login needs the new password.
    """
    client = _admin_client(admin)
    try:
        failed = client.alter_user_scram_credentials(
            [
                UserScramCredentialUpsertion(user, ScramMechanism.SCRAM_SHA_512, password)
                for user, password in passwords.items()
            ]
        )
    finally:
        client.close()
    refused = {user: error for user, error in failed.items() if error}
    if refused:
        raise ServiceError(f"Kafka refused the passwords of {sorted(refused)}: {refused}")


def grant_event_topics(admin: KafkaSettings, topic_prefix: str) -> None:
    """The ACLs of ``topic_prefix``'s event topics: ``producer`` writes them, ``stream`` reads them and its
    consumer groups. ``admin`` must log in as a super user."""
    topics = ResourcePattern(ResourceType.TOPIC, f"{topic_prefix}.", ACLResourcePatternType.PREFIXED)
    groups = ResourcePattern(ResourceType.GROUP, stream_group_prefix(topic_prefix), ACLResourcePatternType.PREFIXED)
    grants = [
        (KafkaRole.PRODUCER, ACLOperation.WRITE, topics),
        (KafkaRole.PRODUCER, ACLOperation.DESCRIBE, topics),
        (KafkaRole.STREAM, ACLOperation.READ, topics),
        (KafkaRole.STREAM, ACLOperation.DESCRIBE, topics),
        (KafkaRole.STREAM, ACLOperation.READ, groups),
    ]
    acls = [
        ACL(f"User:{role.value}", "*", operation, ACLPermissionType.ALLOW, pattern)
        for role, operation, pattern in grants
    ]
    client = _admin_client(admin)
    try:
        result = client.create_acls(acls)
        if result["failed"]:
            raise ServiceError(f"Kafka refused ACLs for {topic_prefix!r}: {result['failed']}")
        _wait_until_every_broker_holds(client, acls)
    finally:
        client.close()


def _wait_until_every_broker_holds(client: KafkaAdminClient, acls: list[ACL], timeout_s: float = 30.0) -> None:
    """Block until each broker's authorizer lists ``acls``.

    The controller commits new ACLs to the metadata log and each broker applies them when it has read that far:
    a client that reaches a broker still behind is refused, and an idempotent producer refused its producer id
    fails for good. Each broker is asked on its own (kafka-python's connection manager addresses one node; the
    admin client's public calls go to whichever node is least loaded).
    """
    wanted = {_acl_key(acl) for acl in acls}
    everything = DescribeAclsRequest(
        min_version=0,
        resource_type_filter=ResourceType.ANY,
        resource_name_filter=None,
        pattern_type_filter=ACLResourcePatternType.ANY,
        principal_filter=None,
        host_filter=None,
        operation=ACLOperation.ANY,
        permission_type=ACLPermissionType.ANY,
    )
    deadline = time.monotonic() + timeout_s
    for node in [broker["broker_id"] for broker in client.describe_cluster()["brokers"]]:
        while True:
            response = client._manager.run(client._manager.send, everything, node)
            held, _ = client._convert_describe_acls_response_to_acls(response)
            if wanted <= {_acl_key(acl) for acl in held}:
                break
            if time.monotonic() > deadline:
                raise ServiceError(f"Kafka node {node} did not apply the new ACLs within {timeout_s:g} s")
            time.sleep(0.2)


def _acl_key(acl: ACL) -> tuple[object, ...]:
    pattern = acl.resource_pattern
    return (acl.principal, acl.operation, acl.permission_type, pattern.resource_type, pattern.resource_name,
            pattern.pattern_type)  # fmt: skip
