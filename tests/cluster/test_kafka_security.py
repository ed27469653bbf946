"""Secured Kafka refuses whoever it should: SASL/SCRAM-SHA-512 over TLS, and ACLs per principal.

One broker started by the project's own code with security on (``start_services(kafka_secure=True)``, what
``services up --topology cluster`` does for each of its nodes): a client without credentials, with a wrong
password, or logged in as a principal the ACLs do not allow, is refused; the stream's and the producer's
principals do their own job; a rotated password replaces the old one; no password reaches a log or the
services' status.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError, KafkaTimeoutError, TopicAuthorizationFailedError
from pydantic import SecretStr

from benchmarks.paced_producer import producer_command, producer_environment, write_plan
from devstack.kafka_security import KafkaRole, set_passwords
from devstack.pytest_plugin import make_settings
from devstack.services import Mode, Services, services_status, start_services, state_path
from pipeline.config import ConfigurationError, KafkaSettings, Settings
from pipeline.contracts.events import EventType, topic_name
from pipeline.kafka_topics import ensure_topics
from simulation.generator import generate
from simulation.scenario import load_scenario
from simulation.sinks import make_producer

pytestmark = pytest.mark.cluster

REFUSED_WITHIN_S = 5.0  # a refused login surfaces as a failed bootstrap; the client stops trying after this


@pytest.fixture(scope="module")
def secured(jars_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    services = start_services(jars_home, tmp_path_factory.mktemp("secured"), mode=Mode.LOCAL, kafka_secure=True)
    yield services
    services.stop()


@pytest.fixture
def lake(secured: Services, tmp_path: Path, jars_home: Path) -> Settings:
    """A topic prefix of the test's own, provisioned by the administrator with the roles' ACLs."""
    settings = make_settings(tmp_path, jars_home)
    secured.provision_topics(settings)
    return settings


def _as(services: Services, settings: Settings, role: KafkaRole) -> KafkaSettings:
    return services.kafka_client(settings.kafka, role)


def _bootstrap_refused(kafka: KafkaSettings, **client: object) -> None:
    started = time.monotonic()
    with pytest.raises(KafkaTimeoutError, match="Unable to bootstrap"):
        KafkaAdminClient(
            bootstrap_servers=kafka.bootstrap_servers,
            bootstrap_timeout_ms=int(REFUSED_WITHIN_S * 1000),
            **(kafka.python_client() | client),
        )
    assert time.monotonic() - started < 3 * REFUSED_WITHIN_S


def test_a_client_without_credentials_is_refused(secured: Services, lake: Settings) -> None:
    _bootstrap_refused(KafkaSettings(bootstrap_servers=secured.kafka_bootstrap))


def test_a_wrong_password_is_refused(secured: Services, lake: Settings) -> None:
    producer = _as(secured, lake, KafkaRole.PRODUCER)
    _bootstrap_refused(producer.model_copy(update={"sasl_password": SecretStr("not-the-password")}))


def test_a_broker_certificate_from_another_authority_is_refused(secured: Services, lake: Settings) -> None:
    """TLS is checked: the client trusts only the authority it is given (the system's, here), not the broker."""
    producer = _as(secured, lake, KafkaRole.PRODUCER)
    _bootstrap_refused(producer.model_copy(update={"ssl_ca_file": ""}))


def test_the_producer_writes_the_event_topics_and_the_stream_reads_them(secured: Services, lake: Settings) -> None:
    topic = topic_name(lake.kafka.topic_prefix, EventType.PAGE_VIEW)
    producer = make_producer(_as(secured, lake, KafkaRole.PRODUCER))
    try:
        producer.send(topic, b"an event").get(timeout=30)
    finally:
        producer.close()
    stream = _as(secured, lake, KafkaRole.STREAM)
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=stream.bootstrap_servers,
        group_id=f"shoplake-stream-{lake.kafka.topic_prefix}-test",
        auto_offset_reset="earliest",
        consumer_timeout_ms=10_000,
        **stream.python_client(),
    )
    try:
        assert [record.value for record in consumer] == [b"an event"]
    finally:
        consumer.close()


def test_the_producer_may_not_read(secured: Services, lake: Settings) -> None:
    producer = _as(secured, lake, KafkaRole.PRODUCER)
    consumer = KafkaConsumer(bootstrap_servers=producer.bootstrap_servers, **producer.python_client())
    try:
        consumer.assign([TopicPartition(topic_name(lake.kafka.topic_prefix, EventType.PURCHASE), 0)])
        consumer.seek_to_beginning()
        with pytest.raises(TopicAuthorizationFailedError):
            consumer.poll(timeout_ms=10_000)
    finally:
        consumer.close()


def test_the_stream_may_not_write_nor_create_topics(secured: Services, lake: Settings) -> None:
    stream = _as(secured, lake, KafkaRole.STREAM)
    producer = KafkaProducer(bootstrap_servers=stream.bootstrap_servers, max_block_ms=10_000, **stream.python_client())
    try:
        # The idempotent producer asks for a producer id first, which only a principal allowed to write gets.
        with pytest.raises(KafkaError, match="AuthorizationFailed"):
            producer.send(topic_name(lake.kafka.topic_prefix, EventType.PURCHASE), b"forged").get(timeout=30)
    finally:
        producer.close()
    other_prefix = lake.model_copy(update={"kafka": stream.model_copy(update={"topic_prefix": "elsewhere"})})
    with pytest.raises(ConfigurationError, match="may not create them"):
        ensure_topics(other_prefix)


def test_no_role_reaches_the_topics_of_another_prefix(secured: Services, lake: Settings) -> None:
    """The ACLs are per topic prefix: the producer of one shop cannot write another's events."""
    admin = _as(secured, lake, KafkaRole.ADMIN).model_copy(update={"topic_prefix": f"{lake.kafka.topic_prefix}x"})
    ensure_topics(lake.model_copy(update={"kafka": admin}))  # topics, but no ACLs for anyone
    producer = make_producer(_as(secured, lake, KafkaRole.PRODUCER))
    try:
        with pytest.raises(TopicAuthorizationFailedError):
            producer.send(topic_name(admin.topic_prefix, EventType.PURCHASE), b"forged").get(timeout=30)
    finally:
        producer.close()


def test_the_java_producer_logs_in_from_the_environment(
    secured: Services, lake: Settings, tmp_path: Path, jars_home: Path
) -> None:
    """The benchmarks' paced producer reads ``SHOPLAKE_KAFKA__*``: as the producer it sends, as the stream it is
    refused (exit status 1, nothing acknowledged)."""
    plan = tmp_path / "plan.tsv"
    records = write_plan(generate(load_scenario("normal_day"), 3, 20)[0], lake.kafka.topic_prefix, plan)
    command = producer_command(jars_home, secured.kafka_bootstrap, 100.0, plan)

    def run(role: KafkaRole) -> subprocess.CompletedProcess[str]:
        as_role = lake.model_copy(update={"kafka": _as(secured, lake, role)})
        return subprocess.run(
            command, env=producer_environment(as_role), capture_output=True, text=True, timeout=120, check=False
        )

    sent = run(KafkaRole.PRODUCER)
    assert sent.returncode == 0, sent.stderr[-2000:]
    refused = run(KafkaRole.STREAM)
    assert refused.returncode == 1, refused.stderr[-2000:]
    assert "AuthorizationException" in refused.stderr
    stream = _as(secured, lake, KafkaRole.STREAM)
    consumer = KafkaConsumer(
        *[topic_name(lake.kafka.topic_prefix, t) for t in EventType],
        bootstrap_servers=stream.bootstrap_servers,
        auto_offset_reset="earliest",
        consumer_timeout_ms=10_000,
        **stream.python_client(),
    )
    try:
        assert sum(1 for _ in consumer) == records
    finally:
        consumer.close()


def test_a_rotated_password_replaces_the_old_one(secured: Services, lake: Settings) -> None:
    admin = _as(secured, lake, KafkaRole.ADMIN)
    producer = _as(secured, lake, KafkaRole.PRODUCER)
    old = producer.sasl_password
    assert old is not None
    rotated = "rotated-" + old.get_secret_value()[:12]
    set_passwords(admin, {"producer": rotated})
    try:
        _bootstrap_refused(producer)
        renewed = producer.model_copy(update={"sasl_password": SecretStr(rotated)})
        deadline = time.monotonic() + 30  # the new credential reaches the broker through the metadata log
        while True:
            try:
                make_producer(renewed).close()
                break
            except Exception:
                assert time.monotonic() < deadline, "the rotated password was never accepted"
                time.sleep(1)
    finally:
        set_passwords(admin, {"producer": old.get_secret_value()})


def test_no_password_reaches_a_log_or_the_status(secured: Services, tmp_path: Path) -> None:
    assert secured.kafka_security is not None
    home = tmp_path / "home"
    state_path(home).parent.mkdir(parents=True)
    state_path(home).write_text(json.dumps(secured.to_state()))
    status = " ".join(services_status(home).values())
    assert "SASL_SSL up" in status
    logs = [Path(path).read_text(errors="replace") for path in secured.logs.values()]
    logs += [path.read_text(errors="replace") for path in Path(secured.workdir).rglob("*.log")]
    for password in [*secured.kafka_security.passwords.values(), secured.kafka_security.store_password]:
        assert password not in status
        assert not any(password in log for log in logs)
    tls = Path(secured.kafka_security.folder)
    assert tls.stat().st_mode & 0o077 == 0
    assert all(path.stat().st_mode & 0o077 == 0 for path in tls.iterdir())
