"""Typed settings for every part of the pipeline.

Precedence, lowest first: the documented defaults below < a TOML file (``shoplake.toml`` in the working
directory, or the path in ``SHOPLAKE_CONFIG``) < environment variables (``SHOPLAKE_`` prefix, ``__`` between
nested names, e.g. ``SHOPLAKE_KAFKA__BOOTSTRAP_SERVERS``) < keyword arguments.

The embedded default needs no configuration at all: a SQLite Iceberg catalog and a warehouse on the local
filesystem under ``.shoplake/``, and a Kafka broker whose address the caller supplies (``shoplake`` fills it in
from the local services it started).
"""

from __future__ import annotations

import datetime as dt
import json
import os
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, PositiveInt, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from pipeline.contracts.events import SUPPORTED_SCHEMA_VERSIONS
from pipeline.errors import ShoplakeError

CONFIG_ENV_VAR = "SHOPLAKE_CONFIG"
DEFAULT_CONFIG_FILE = "shoplake.toml"


class ConfigurationError(ShoplakeError, ValueError):
    """The configuration is invalid or points at something that does not exist."""


class CatalogType(StrEnum):
    SQL = "sql"  # Iceberg JDBC catalog in Spark, SQL catalog in PyIceberg (SQLite file or PostgreSQL)
    REST = "rest"  # an Iceberg REST catalog server


class KafkaSecurityProtocol(StrEnum):
    """How clients reach the brokers: in the clear, or authenticated by SASL/SCRAM over TLS."""

    PLAINTEXT = "PLAINTEXT"
    SASL_SSL = "SASL_SSL"


class KafkaSettings(BaseModel):
    bootstrap_servers: str = Field(
        default="",
        description="host:port[,host:port]; empty means 'the broker started by `shoplake services up`'.",
    )
    topic_prefix: str = Field(default="shop", pattern=r"^[A-Za-z0-9_-]+$")
    partitions: int = Field(default=2, ge=1, description="Partitions per topic when shoplake creates topics.")
    replication_factor: int = Field(default=1, ge=1, description="Replicas per topic when shoplake creates topics.")
    security_protocol: KafkaSecurityProtocol = Field(
        default=KafkaSecurityProtocol.PLAINTEXT,
        description="PLAINTEXT, or SASL_SSL: TLS to the brokers (checked against ssl_ca_file) and a SCRAM login "
        "as sasl_username.",
    )
    sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256"] = "SCRAM-SHA-512"
    sasl_username: str = Field(default="", description="SASL_SSL: the principal this process logs in as.")
    sasl_password: SecretStr | None = Field(
        default=None,
        description="SASL_SSL: its password; from the environment (SHOPLAKE_KAFKA__SASL_PASSWORD), never a file "
        "the repository tracks.",
    )
    ssl_ca_file: str = Field(
        default="",
        description="SASL_SSL: PEM file of the certificate authority that signed the brokers' certificates. Empty: "
        "the system's trusted authorities.",
    )

    @model_validator(mode="after")
    def _check_security(self) -> KafkaSettings:
        secure = self.security_protocol is KafkaSecurityProtocol.SASL_SSL
        if secure and not (self.sasl_username and self.sasl_password):
            raise ValueError(
                "kafka.security_protocol SASL_SSL needs a login: set SHOPLAKE_KAFKA__SASL_USERNAME and "
                "SHOPLAKE_KAFKA__SASL_PASSWORD"
            )
        if not secure and (self.sasl_username or self.sasl_password or self.ssl_ca_file):
            raise ValueError(
                "kafka.sasl_username, sasl_password or ssl_ca_file is set but kafka.security_protocol is PLAINTEXT, "
                "which sends neither: set SHOPLAKE_KAFKA__SECURITY_PROTOCOL=SASL_SSL"
            )
        return self

    def python_client(self) -> dict[str, Any]:
        """Keyword arguments of kafka-python's clients for these settings' transport and login."""
        if self.security_protocol is KafkaSecurityProtocol.PLAINTEXT:
            return {}
        assert self.sasl_password is not None  # checked by the validator
        return {
            "security_protocol": self.security_protocol.value,
            "sasl_mechanism": self.sasl_mechanism,
            "sasl_plain_username": self.sasl_username,
            "sasl_plain_password": self.sasl_password.get_secret_value(),
            "ssl_cafile": self.ssl_ca_file or None,
            "ssl_check_hostname": True,
        }

    def java_client(self) -> dict[str, str]:
        """The same as Kafka's Java client properties (Spark's Kafka source takes them with a ``kafka.`` prefix).

        The password travels inside ``sasl.jaas.config``, which Kafka's clients log as ``[hidden]`` and Spark
        redacts.
        """
        if self.security_protocol is KafkaSecurityProtocol.PLAINTEXT:
            return {}
        assert self.sasl_password is not None
        props = {
            "security.protocol": self.security_protocol.value,
            "sasl.mechanism": self.sasl_mechanism,
            "sasl.jaas.config": "org.apache.kafka.common.security.scram.ScramLoginModule required "
            f"username={_jaas_quoted(self.sasl_username)} "
            f"password={_jaas_quoted(self.sasl_password.get_secret_value())};",
        }
        if self.ssl_ca_file:
            props |= {"ssl.truststore.type": "PEM", "ssl.truststore.location": self.ssl_ca_file}
        return props


def _jaas_quoted(value: str) -> str:
    """``value`` as a quoted JAAS option value (a backslash escapes a quote or a backslash)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class CatalogSettings(BaseModel):
    name: str = Field(default="lake", pattern=r"^[a-z_][a-z0-9_]*$")
    type: CatalogType = CatalogType.SQL
    uri: str = Field(
        default="",
        description="SQL catalog: a SQLAlchemy URL (sqlite:///abs/path.db or postgresql+psycopg2://host:port/db, "
        "without credentials); REST catalog: its http(s) URL. Empty: a SQLite file under the home directory.",
    )
    jdbc_user: str = Field(
        default="", description="PostgreSQL catalog: the database user (Spark's jdbc.user; PyIceberg's URL)."
    )
    jdbc_password: SecretStr | None = Field(
        default=None,
        description="PostgreSQL catalog: the user's password; from the environment "
        "(SHOPLAKE_CATALOG__JDBC_PASSWORD), never a file or the URL.",
    )
    rest_credential: SecretStr | None = Field(
        default=None,
        description="REST catalog: OAuth2 client credentials `client_id:client_secret`, from the environment "
        "(SHOPLAKE_CATALOG__REST_CREDENTIAL), exchanged for a bearer token at rest_oauth2_uri.",
    )
    rest_oauth2_uri: str = Field(
        default="", description="REST catalog: the OAuth2 token endpoint. Empty: <uri>/v1/oauth/tokens."
    )
    warehouse: str = Field(default="", description="file:// or s3:// URI. Empty: <home>/warehouse.")
    s3_endpoint: str = ""
    s3_region: str = "us-east-1"
    s3_access_key_id: SecretStr | None = None
    s3_secret_access_key: SecretStr | None = None
    s3_path_style_access: bool = True

    def rest_auth_properties(self) -> dict[str, str]:
        """The REST catalog's login as Iceberg's client properties (Spark's and PyIceberg's alike), empty when
        there is none: the credential, the token endpoint, the scope."""
        if self.type is not CatalogType.REST or self.rest_credential is None:
            return {}
        return {
            "credential": self.rest_credential.get_secret_value(),
            "oauth2-server-uri": self.rest_oauth2_uri or self.uri.rstrip("/") + "/v1/oauth/tokens",
            "scope": "catalog",
        }

    def jdbc_properties(self) -> dict[str, str]:
        """The Iceberg JDBC catalog's login properties (``jdbc.user``, ``jdbc.password``), empty when unset.

        Spark passes them under ``spark.sql.catalog.<name>.``; the JDBC driver receives them as connection
        properties, so they never appear in the URL.
        """
        props: dict[str, str] = {}
        if self.jdbc_user:
            props["jdbc.user"] = self.jdbc_user
        if self.jdbc_password is not None:
            props["jdbc.password"] = self.jdbc_password.get_secret_value()
        return props


class SparkSettings(BaseModel):
    master: str = Field(
        default="local[2]",
        description="local[N], or a standalone cluster's spark://host:port (e.g. `shoplake services up --spark`).",
    )
    driver_memory: str = Field(default="4g", pattern=r"^\d+[mMgG]$")
    cores_max: int | None = Field(
        default=None,
        ge=1,
        description="spark.cores.max: cores this application takes on a cluster. Unset, the first application "
        "takes every core, and the stream and a gold run cannot run side by side.",
    )
    executor_memory: str | None = Field(
        default=None,
        pattern=r"^\d+[mMgG]$",
        description="spark.executor.memory on a cluster (it must fit in a worker's memory). Unset: Spark's 1g.",
    )
    shuffle_partitions: int = Field(default=4, ge=1)
    jars_dir: str = Field(default="", description="Folder of resolved Spark jars. Empty: <home>/jars/spark.")
    ui_enabled: bool = False
    auth_secret: SecretStr | None = Field(
        default=None,
        description="The shared secret of an authenticated Spark standalone cluster (spark.authenticate), from the "
        "environment (SHOPLAKE_SPARK__AUTH_SECRET): set, the application authenticates to the master and its "
        "executors, and their RPC is encrypted (AES). `shoplake services up --spark cluster` makes one.",
    )
    comet: bool = Field(
        default=False,
        description="Run Spark's plans on Apache DataFusion Comet, a native engine (`shoplake jars --comet` first): "
        "gold's day took 25 % less time at 1M events on two cores (docs/benchmarks.md). Applies to the Spark "
        "session a process starts; evaluated for gold, not for the stream.",
    )
    comet_offheap: str = Field(
        default="2g", pattern=r"^\d+[mMgG]$", description="Off-heap memory Comet's native operators work in."
    )
    extra_conf: dict[str, str] = Field(default_factory=dict)


class StreamSettings(BaseModel):
    trigger_seconds: float = Field(default=1.0, ge=0.0, description="Micro-batch trigger interval.")
    checkpoint_dir: str = Field(default="", description="Empty: <home>/checkpoints.")
    max_offsets_per_trigger: int | None = Field(default=None, ge=1)
    late_after_seconds: int = Field(
        default=600, ge=0, description="An event is late when its time is this far behind the watermark."
    )
    max_payload_bytes: int = Field(default=65536, ge=1024, description="Larger payloads are quarantined.")
    rollup_lookback_days: int = Field(
        default=7, ge=1, description="How far back a late event can still update its session or minute."
    )
    batch_partitions: int = Field(default=2, ge=1, description="Spark partitions a micro-batch is processed in.")
    dedup_max_ids: int = Field(
        default=100_000_000,
        ge=1,
        description="The most event ids deduplication holds (every id ever committed to silver, 24 bytes of driver "
        "memory each: 2.4 GB at the default, twice that while its largest runs merge). A micro-batch that would "
        "go past it stops the stream before writing anything; raise it with the driver's memory.",
    )
    rollup_fold_seconds: float = Field(
        default=30.0,
        gt=0,
        description="How often silver is folded into the sessions and per-minute roll-ups (readers that need them "
        "to the second add silver's unfolded tail: `shoplake live`). Each fold costs two MERGEs on the stream's "
        "cores, whatever the tail's size: folding every 10 s took a fifth of the stream's CPU at 5,000 events/s.",
    )
    rollup_fold_backlog_seconds: float = Field(
        default=300.0,
        gt=0,
        description="While the stream works through a backlog (a batch's oldest record waited in Kafka longer than "
        "rollup_fold_seconds), folds wait up to this long, so that the catch-up's CPU goes to the backlog; the "
        "first batch that is no longer behind, and every stop, fold what is left.",
    )
    hygiene_minutes: float = Field(
        default=5.0,
        gt=0,
        description="How often the stream merges the manifests of the tables it appends to and expires their old "
        "snapshots (in the background), so that commits and scans do not slow down as the stream ages.",
    )
    snapshot_retention_minutes: float = Field(
        default=10.0,
        ge=1,
        description="Snapshots of the streaming tables younger than this are kept, by the stream's hygiene and by "
        "the maintenance job: the time travel they allow, and the window in which a gold run's pinned snapshot "
        "stays readable. Every commit rewrites a metadata file listing each kept snapshot, so this sizes the "
        "commit's cost (about 400 snapshots per table at one batch a second and a half). The stream's newest "
        "marker is always kept; per-event latency is read from ops.stream_batches, not from snapshots. Must "
        "exceed rollup_fold_backlog_seconds: a fold reads the appends since the last one from their snapshots.",
    )
    lock_wait_seconds: float = Field(
        default=60.0,
        ge=0,
        description="How long a starting stream waits for another driver of the same checkpoint to end (a "
        "killed driver's JVM can outlive it by seconds) before it refuses to start.",
    )
    supported_schema_versions: list[PositiveInt] = Field(
        default_factory=lambda: list(SUPPORTED_SCHEMA_VERSIONS),
        min_length=1,
        description="Values of schema_version the stream accepts; other versions are quarantined "
        "(unsupported_schema_version) and can be replayed once their version is listed here.",
    )

    @property
    def snapshot_retention(self) -> dt.timedelta:
        """How long the streaming tables' snapshots are kept (``snapshot_retention_minutes``)."""
        return dt.timedelta(minutes=self.snapshot_retention_minutes)

    @model_validator(mode="after")
    def _check_retention(self) -> StreamSettings:
        if self.snapshot_retention_minutes * 60 <= self.rollup_fold_backlog_seconds:
            raise ValueError(
                f"stream.snapshot_retention_minutes ({self.snapshot_retention_minutes:g}) must exceed "
                f"stream.rollup_fold_backlog_seconds ({self.rollup_fold_backlog_seconds:g} s): a fold reads the "
                "appends since the previous fold from their snapshots (SHOPLAKE_STREAM__SNAPSHOT_RETENTION_MINUTES)"
            )
        return self


class MaintenanceSettings(BaseModel):
    """How the maintenance job (`shoplake maintain`, the scheduled Dagster job) shares the machine with the stream."""

    niceness: int = Field(
        default=10,
        ge=0,
        le=19,
        description="The maintenance process's CPU priority (Unix nice), set before it starts Spark: beside the "
        "stream on the same cores, the stream's batches go first and the round takes longer. 0 keeps the priority "
        "it was started with.",
    )
    compacted_file_mb: int = Field(
        default=32,
        ge=1,
        description="Compaction leaves alone data files of at least this size: a file is rewritten once, or a few "
        "times while small, not again at every round as the day it holds grows.",
    )

    @property
    def compacted_file_bytes(self) -> int:
        return self.compacted_file_mb * 2**20


class FreshnessSettings(BaseModel):
    """The freshness objective the ``freshness`` asset check on silver holds the stream to."""

    p99_objective_seconds: float = Field(
        default=10.0,
        gt=0,
        description="Kafka -> silver p99 latency (seconds) the events made visible in the window must not exceed.",
    )
    window_minutes: int = Field(
        default=15, ge=1, description="The window: events made visible in silver in the last this many minutes."
    )


class Settings(BaseSettings):
    """All settings; see the module docstring for where values come from."""

    model_config = SettingsConfigDict(
        env_prefix="SHOPLAKE_",
        env_nested_delimiter="__",
        extra="forbid",
        # Errors name the field and the rule, never the value: values include passwords and keys.
        hide_input_in_errors=True,
    )

    home: Path = Field(default=Path(".shoplake"), description="Local state: jars, warehouse, catalog, logs.")
    partitions_start: str = Field(
        default="2026-01-01", pattern=r"^\d{4}-\d{2}-\d{2}$", description="First day of daily partitions."
    )
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    catalog: CatalogSettings = Field(default_factory=CatalogSettings)
    spark: SparkSettings = Field(default_factory=SparkSettings)
    stream: StreamSettings = Field(default_factory=StreamSettings)
    maintenance: MaintenanceSettings = Field(default_factory=MaintenanceSettings)
    freshness: FreshnessSettings = Field(default_factory=FreshnessSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = _config_file()
        if config_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
        return tuple(sources)

    @field_validator("home")
    @classmethod
    def _absolute_home(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @model_validator(mode="after")
    def _check_catalog(self) -> Settings:
        if self.catalog.type is CatalogType.REST and not self.catalog.uri:
            raise ConfigurationError("catalog.type is 'rest' but catalog.uri (the REST server URL) is empty")
        if self.catalog.uri and self.catalog.type is CatalogType.SQL:
            scheme = self.catalog.uri.split(":", 1)[0]
            if not (scheme == "sqlite" or scheme.startswith("postgresql")):
                raise ConfigurationError(
                    f"catalog.uri {self.catalog.uri!r}: a SQL catalog needs a sqlite:/// or postgresql:// URL"
                )
            if scheme.startswith("postgresql") and "@" in self.catalog.uri.split("://", 1)[-1].split("/", 1)[0]:
                # The URL is printed by `shoplake services status` and may reach logs: no secret belongs in it.
                raise ConfigurationError(
                    "catalog.uri carries a user name or password: put them in catalog.jdbc_user and "
                    "SHOPLAKE_CATALOG__JDBC_PASSWORD instead"
                )
        return self

    def to_env(self) -> dict[str, str]:
        """These settings as ``SHOPLAKE_*`` environment variables, so that a child process loads the same ones
        (the environment beats its defaults and any file). Optional values that are unset (None) are left out.
        """
        env: dict[str, str] = {}

        def add(prefix: str, model: BaseModel) -> None:
            for name in type(model).model_fields:
                value = getattr(model, name)
                if isinstance(value, BaseModel):
                    add(f"{prefix}{name.upper()}__", value)
                elif value is not None:
                    env[f"{prefix}{name.upper()}"] = _env_value(value)

        add("SHOPLAKE_", self)
        return env

    # Derived locations -------------------------------------------------------------------------------------

    @property
    def catalog_uri(self) -> str:
        """SQLAlchemy-style URL of the SQL catalog, or the REST URL."""
        return self.catalog.uri or f"sqlite:///{self.home / 'catalog.db'}"

    @property
    def warehouse_uri(self) -> str:
        return self.catalog.warehouse or (self.home / "warehouse").as_uri()

    @property
    def spark_jars_dir(self) -> Path:
        return Path(self.spark.jars_dir).resolve() if self.spark.jars_dir else self.home / "jars" / "spark"

    @property
    def comet_jars_dir(self) -> Path:
        """Where ``shoplake jars --comet`` puts Comet's jar: beside the Spark jars."""
        return self.spark_jars_dir.parent / "comet"

    @property
    def checkpoint_root(self) -> str:
        return self.stream.checkpoint_dir or str(self.home / "checkpoints")


def _env_value(value: Any) -> str:
    """A setting's value as the environment source parses it back."""
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)  # text, numbers, paths, and StrEnum members (their value)


def _config_file() -> Path | None:
    explicit = os.environ.get(CONFIG_ENV_VAR)
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigurationError(f"{CONFIG_ENV_VAR}={explicit!r} does not name a readable file")
        return path
    default = Path(DEFAULT_CONFIG_FILE)
    return default if default.is_file() else None


def load_settings(**overrides: Any) -> Settings:
    """Settings from defaults, the config file and the environment, then ``overrides`` on top."""
    return Settings(**overrides)
