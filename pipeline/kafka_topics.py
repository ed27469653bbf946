"""Kafka administration the pipeline needs: reaching the broker and creating the event topics."""

from __future__ import annotations

import contextlib

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import AuthorizationError, KafkaError, TopicAlreadyExistsError

from pipeline.config import ConfigurationError, Settings
from pipeline.contracts.events import all_topics


class BrokerUnreachableError(ConfigurationError):
    """No Kafka broker answered at the configured bootstrap servers."""


def stream_group_prefix(topic_prefix: str) -> str:
    """The prefix of the consumer groups the stream reads ``topic_prefix``'s topics in (Spark's
    ``groupIdPrefix``): what a secured broker's ACLs let the stream's principal use."""
    return f"shoplake-stream-{topic_prefix}"


def bootstrap_servers(settings: Settings) -> str:
    if not settings.kafka.bootstrap_servers:
        raise ConfigurationError(
            "kafka.bootstrap_servers is empty: start local services with `shoplake services up` "
            "or set SHOPLAKE_KAFKA__BOOTSTRAP_SERVERS"
        )
    return settings.kafka.bootstrap_servers


def admin_client(settings: Settings, timeout_s: float = 10.0) -> KafkaAdminClient:
    servers = bootstrap_servers(settings)
    try:
        return KafkaAdminClient(
            bootstrap_servers=servers,
            client_id="shoplake-admin",
            request_timeout_ms=int(timeout_s * 1000),
            # Without these the client keeps retrying for its own 30 s whatever the request timeout says.
            bootstrap_timeout_ms=int(timeout_s * 1000),
            reconnect_backoff_max_ms=1000,
            **settings.kafka.python_client(),
        )
    except (KafkaError, OSError) as exc:
        raise BrokerUnreachableError(f"no Kafka broker answered at {servers!r} within {timeout_s:g}s: {exc}") from exc


def ensure_topics(settings: Settings, timeout_s: float = 10.0) -> list[str]:
    """Create the event topics that do not exist yet; returns all event topic names."""
    topics = all_topics(settings.kafka.topic_prefix)
    admin = admin_client(settings, timeout_s)
    try:
        existing = set(admin.list_topics())
        missing = [t for t in topics if t not in existing]
        if missing:
            kafka = settings.kafka
            new = [NewTopic(t, kafka.partitions, kafka.replication_factor) for t in missing]
            try:
                with contextlib.suppress(TopicAlreadyExistsError):  # created meanwhile by another process
                    admin.create_topics(new, timeout_ms=int(timeout_s * 1000))
            except AuthorizationError as exc:
                raise ConfigurationError(
                    f"the topics {', '.join(missing)} do not exist and the Kafka user "
                    f"{kafka.sasl_username or '(anonymous)'} may not create them ({type(exc).__name__}): an "
                    "administrator creates them (`shoplake services up` creates the configured topic prefix's)"
                ) from None
    finally:
        admin.close()
    return topics
