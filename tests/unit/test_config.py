"""Settings precedence and validation."""

from __future__ import annotations

import re
from pathlib import Path
from unittest import mock

import pytest
from pydantic import ValidationError

from pipeline.config import ConfigurationError, Settings
from pipeline.spark_session import JarsMissingError, jdbc_url, spark_jars


def test_defaults_need_no_configuration(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    assert settings.catalog.name == "lake"
    assert settings.catalog_uri == f"sqlite:///{tmp_path / 'catalog.db'}"
    assert settings.warehouse_uri == (tmp_path / "warehouse").as_uri()


def test_file_overrides_defaults_and_environment_overrides_file(tmp_path: Path, monkeypatch) -> None:
    config = tmp_path / "shoplake.toml"
    config.write_text('[kafka]\ntopic_prefix = "fromfile"\npartitions = 3\n')
    monkeypatch.setenv("SHOPLAKE_CONFIG", str(config))
    assert (Settings().kafka.topic_prefix, Settings().kafka.partitions) == ("fromfile", 3)
    monkeypatch.setenv("SHOPLAKE_KAFKA__TOPIC_PREFIX", "fromenv")
    assert (Settings().kafka.topic_prefix, Settings().kafka.partitions) == ("fromenv", 3)


def test_missing_config_file_is_a_clear_error(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SHOPLAKE_CONFIG", str(tmp_path / "nope.toml"))
    with pytest.raises(ConfigurationError, match=r"nope\.toml"):
        Settings()


@pytest.mark.parametrize(
    "catalog",
    [{"type": "rest"}, {"uri": "mysql://x/y"}, {"name": "Bad-Name"}],
)
def test_invalid_catalog_settings_are_rejected(catalog: dict) -> None:
    with pytest.raises((ValidationError, ConfigurationError)):
        Settings(catalog=catalog)


def test_unknown_keys_are_rejected() -> None:
    with pytest.raises(ValidationError, match="bootstrap"):
        Settings(bootstrap="x")


def test_jdbc_urls_follow_the_catalog_uri() -> None:
    assert jdbc_url("sqlite:////tmp/c.db") == "jdbc:sqlite:/tmp/c.db"
    assert jdbc_url("postgresql+psycopg2://h:5432/db") == "jdbc:postgresql://h:5432/db"


def test_missing_jars_name_the_command_that_resolves_them(tmp_path: Path) -> None:
    with pytest.raises(JarsMissingError, match="shoplake jars"):
        spark_jars(tmp_path)


def test_settings_survive_a_trip_through_the_environment(tmp_path: Path, monkeypatch) -> None:
    settings = Settings(
        home=tmp_path,
        kafka={"bootstrap_servers": "127.0.0.1:9092", "topic_prefix": "t1", "partitions": 3},
        catalog={
            "name": "lake_x",
            "type": "rest",
            "uri": "http://127.0.0.1:8181",
            "warehouse": "s3://bucket/wh",
            "s3_access_key_id": "key",
            "s3_secret_access_key": "secret",
            "s3_path_style_access": False,
        },
        spark={"driver_memory": "2g", "extra_conf": {"spark.sql.ansi.enabled": "true"}},
        stream={"trigger_seconds": 0.5, "max_offsets_per_trigger": 1500, "supported_schema_versions": [1, 3]},
        freshness={"p99_objective_seconds": 2.5, "window_minutes": 5},
    )
    env = settings.to_env()
    assert env["SHOPLAKE_CATALOG__S3_SECRET_ACCESS_KEY"] == "secret"
    assert env["SHOPLAKE_CATALOG__TYPE"] == "rest"
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert Settings() == settings


def test_unset_optional_settings_are_left_out_of_the_environment(tmp_path: Path) -> None:
    env = Settings(home=tmp_path).to_env()
    assert "SHOPLAKE_STREAM__MAX_OFFSETS_PER_TRIGGER" not in env
    assert "SHOPLAKE_CATALOG__S3_ACCESS_KEY_ID" not in env
    assert env["SHOPLAKE_HOME"] == str(tmp_path.resolve())


def test_a_file_where_the_catalog_folder_should_be_is_a_configuration_error(tmp_path: Path) -> None:
    from pipeline.spark_session import ensure_local_paths

    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file")
    settings = Settings(home=tmp_path, catalog={"uri": f"sqlite:///{blocker}/catalog.db"})
    with pytest.raises(ConfigurationError, match="not-a-folder"):
        ensure_local_paths(settings)


def test_supported_schema_versions_default_to_the_contracts_and_come_from_the_environment(
    tmp_path: Path, monkeypatch
) -> None:
    from pipeline.contracts.events import SUPPORTED_SCHEMA_VERSIONS

    assert tuple(Settings(home=tmp_path).stream.supported_schema_versions) == SUPPORTED_SCHEMA_VERSIONS
    monkeypatch.setenv("SHOPLAKE_STREAM__SUPPORTED_SCHEMA_VERSIONS", "[1, 2, 3]")
    assert Settings(home=tmp_path).stream.supported_schema_versions == [1, 2, 3]
    with pytest.raises(ValidationError):
        Settings(home=tmp_path, stream={"supported_schema_versions": []})
    with pytest.raises(ValidationError):
        Settings(home=tmp_path, stream={"supported_schema_versions": [0]})


def test_the_freshness_objective_has_defaults_and_rejects_nonsense(tmp_path: Path) -> None:
    freshness = Settings(home=tmp_path).freshness
    assert (freshness.p99_objective_seconds, freshness.window_minutes) == (10.0, 15)
    with pytest.raises(ValidationError):
        Settings(home=tmp_path, freshness={"p99_objective_seconds": 0})
    with pytest.raises(ValidationError):
        Settings(home=tmp_path, freshness={"window_minutes": 0})


def test_snapshot_retention_must_outlast_a_backlog_fold_and_the_error_names_the_setting(tmp_path: Path) -> None:
    stream = Settings(home=tmp_path).stream
    assert stream.snapshot_retention_minutes * 60 > stream.rollup_fold_backlog_seconds
    with pytest.raises(ValidationError, match="SHOPLAKE_STREAM__SNAPSHOT_RETENTION_MINUTES"):
        Settings(home=tmp_path, stream={"snapshot_retention_minutes": 5, "rollup_fold_backlog_seconds": 300})
    shorter_backlog = Settings(
        home=tmp_path, stream={"snapshot_retention_minutes": 5, "rollup_fold_backlog_seconds": 60}
    )
    assert shorter_backlog.stream.snapshot_retention_minutes == 5


PG_URI = "postgresql+psycopg2://db.internal:5432/iceberg"


def test_postgres_credentials_come_from_the_environment_as_jdbc_properties(monkeypatch) -> None:
    monkeypatch.setenv("SHOPLAKE_CATALOG__URI", PG_URI)
    monkeypatch.setenv("SHOPLAKE_CATALOG__JDBC_USER", "lake")
    monkeypatch.setenv("SHOPLAKE_CATALOG__JDBC_PASSWORD", "s3cr3t")
    settings = Settings()
    assert settings.catalog.jdbc_properties() == {"jdbc.user": "lake", "jdbc.password": "s3cr3t"}
    assert "s3cr3t" not in repr(settings)
    assert "s3cr3t" not in settings.catalog_uri


def test_a_catalog_without_a_login_has_no_jdbc_properties() -> None:
    assert Settings(catalog={"uri": PG_URI}).catalog.jdbc_properties() == {}
    assert Settings(catalog={"uri": PG_URI, "jdbc_user": "lake"}).catalog.jdbc_properties() == {"jdbc.user": "lake"}


@pytest.mark.parametrize("uri", ["postgresql://lake:pw@db:5432/iceberg", "postgresql+psycopg2://lake@db/iceberg"])
def test_credentials_inside_the_catalog_url_are_refused(uri: str) -> None:
    with pytest.raises(ValidationError, match="jdbc_user") as error:
        Settings(catalog={"uri": uri})
    assert "@db" not in str(error.value), "the error message repeats the URL and its secret"


def test_pyiceberg_gets_the_login_in_its_url_and_only_there() -> None:
    from pipeline.catalog import catalog_properties, sql_catalog_url

    settings = Settings(catalog={"uri": PG_URI, "jdbc_user": "lake", "jdbc_password": "p@ss:/word"})
    url = sql_catalog_url(settings)
    assert url == "postgresql+psycopg2://lake:p%40ss%3A%2Fword@db.internal:5432/iceberg"
    assert catalog_properties(settings)["uri"] == url
    assert settings.catalog_uri == PG_URI


def test_a_sqlite_catalog_url_is_left_as_it_is(tmp_path: Path) -> None:
    from pipeline.catalog import sql_catalog_url

    settings = Settings(home=tmp_path, catalog={"jdbc_user": "ignored"})
    assert sql_catalog_url(settings) == f"sqlite:///{tmp_path / 'catalog.db'}"


def test_spark_gets_the_postgres_login_as_catalog_properties_and_not_in_the_url() -> None:
    from pipeline.spark_session import catalog_conf

    settings = Settings(catalog={"name": "lake", "uri": PG_URI, "jdbc_user": "lake", "jdbc_password": "s3cr3t"})
    conf = catalog_conf(settings)
    assert conf["spark.sql.catalog.lake.jdbc.user"] == "lake"
    assert conf["spark.sql.catalog.lake.jdbc.password"] == "s3cr3t"
    assert conf["spark.sql.catalog.lake.uri"] == "jdbc:postgresql://db.internal:5432/iceberg"


def test_cluster_sizing_reaches_spark_only_when_set(tmp_path: Path) -> None:
    from pipeline.spark_session import REQUIRED_JAR_PREFIXES, session_conf

    for prefix in REQUIRED_JAR_PREFIXES:
        (tmp_path / f"{prefix}0.jar").touch()
    default = session_conf(Settings(home=tmp_path, spark={"jars_dir": str(tmp_path)}))
    assert "spark.cores.max" not in default
    assert "spark.executor.memory" not in default
    sized = session_conf(
        Settings(
            home=tmp_path,
            spark={
                "jars_dir": str(tmp_path),
                "master": "spark://127.0.0.1:7077",
                "cores_max": 1,
                "executor_memory": "768m",
            },
        )
    )
    assert (sized["spark.master"], sized["spark.cores.max"], sized["spark.executor.memory"]) == (
        "spark://127.0.0.1:7077", "1", "768m"
    )  # fmt: skip


def test_a_batch_job_shuffles_one_partition_per_64_mib_of_input_coalesced_by_size_alone() -> None:
    from pipeline.spark_session import batch_shuffle_conf

    mib = 1024 * 1024
    partitions = {size: int(batch_shuffle_conf(size, 2)["spark.sql.shuffle.partitions"]) for size in (0, 640 * mib)}
    assert partitions == {0: 2, 640 * mib: 10}, "at least one per core, else one per 64 MiB"
    assert batch_shuffle_conf(10**15, 2)["spark.sql.shuffle.partitions"] == "200"
    assert batch_shuffle_conf(0, 2)["spark.sql.adaptive.coalescePartitions.parallelismFirst"] == "false"


def test_comet_reaches_spark_only_when_on_and_its_jar_is_resolved(tmp_path: Path) -> None:
    from pipeline.spark_session import REQUIRED_JAR_PREFIXES, session_conf

    spark_jars = tmp_path / "jars" / "spark"
    spark_jars.mkdir(parents=True)
    for prefix in REQUIRED_JAR_PREFIXES:
        (spark_jars / f"{prefix}0.jar").touch()
    assert "spark.plugins" not in session_conf(Settings(home=tmp_path))
    on = Settings(home=tmp_path, spark={"comet": True, "comet_offheap": "3g"})
    with pytest.raises(JarsMissingError, match="shoplake jars --comet"):
        session_conf(on)
    jar = tmp_path / "jars" / "comet" / "comet-spark-spark4.1_2.13-1.2.0.jar"
    jar.parent.mkdir()
    jar.touch()
    conf = session_conf(on)
    assert (conf["spark.plugins"], conf["spark.driver.extraClassPath"], conf["spark.memory.offHeap.size"]) == (
        "org.apache.spark.CometPlugin", str(jar), "3g"
    )  # fmt: skip


def test_plaintext_kafka_gives_clients_nothing_to_add() -> None:
    kafka = Settings().kafka
    assert (kafka.python_client(), kafka.java_client()) == ({}, {})


def test_sasl_ssl_logs_in_from_the_environment_and_the_password_stays_a_secret(monkeypatch) -> None:
    monkeypatch.setenv("SHOPLAKE_KAFKA__SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("SHOPLAKE_KAFKA__SASL_USERNAME", "stream")
    monkeypatch.setenv("SHOPLAKE_KAFKA__SASL_PASSWORD", 'p"a\\ss')
    monkeypatch.setenv("SHOPLAKE_KAFKA__SSL_CA_FILE", "/etc/shoplake/ca.pem")
    kafka = Settings().kafka
    assert kafka.python_client() == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "stream",
        "sasl_plain_password": 'p"a\\ss',
        "ssl_cafile": "/etc/shoplake/ca.pem",
        "ssl_check_hostname": True,
    }
    assert kafka.java_client() == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        # A quote or a backslash in a JAAS value is escaped by a backslash.
        "sasl.jaas.config": 'org.apache.kafka.common.security.scram.ScramLoginModule required username="stream" '
        'password="p\\"a\\\\ss";',
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": "/etc/shoplake/ca.pem",
    }
    assert 'p"a' not in repr(kafka)


def test_sasl_ssl_without_a_login_is_refused_naming_the_variables(monkeypatch) -> None:
    monkeypatch.setenv("SHOPLAKE_KAFKA__SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("SHOPLAKE_KAFKA__SASL_USERNAME", "stream")
    with pytest.raises(ValidationError, match="SHOPLAKE_KAFKA__SASL_PASSWORD"):
        Settings()


def test_a_login_without_sasl_ssl_is_refused_rather_than_silently_unused(monkeypatch) -> None:
    monkeypatch.setenv("SHOPLAKE_KAFKA__SASL_USERNAME", "stream")
    monkeypatch.setenv("SHOPLAKE_KAFKA__SASL_PASSWORD", "hunter2")
    with pytest.raises(ValidationError, match="SHOPLAKE_KAFKA__SECURITY_PROTOCOL=SASL_SSL") as refused:
        Settings()
    assert "hunter2" not in str(refused.value)


def test_a_rest_catalog_login_reaches_spark_and_pyiceberg_as_oauth2_client_credentials(monkeypatch) -> None:
    from pipeline.catalog import catalog_properties
    from pipeline.spark_session import catalog_conf, session_conf

    monkeypatch.setenv("SHOPLAKE_CATALOG__TYPE", "rest")
    monkeypatch.setenv("SHOPLAKE_CATALOG__URI", "https://catalog.internal/api/")
    monkeypatch.setenv("SHOPLAKE_CATALOG__REST_CREDENTIAL", "shoplake:s3cr3t")
    settings = Settings()
    login = {
        "credential": "shoplake:s3cr3t",
        "oauth2-server-uri": "https://catalog.internal/api/v1/oauth/tokens",
        "scope": "catalog",
    }
    assert {k: v for k, v in catalog_properties(settings).items() if k in login} == login
    spark = catalog_conf(settings)
    assert {k.removeprefix("spark.sql.catalog.lake."): v for k, v in spark.items() if k.endswith(tuple(login))} == login
    assert spark["spark.sql.catalog.lake.rest.auth.type"] == "oauth2"
    # Spark's UI and event logs redact what matches: the credential's key too.
    with mock.patch("pipeline.spark_session.spark_jars", return_value=[]):
        redacted = session_conf(settings)["spark.redaction.regex"]
    assert re.search(redacted, "spark.sql.catalog.lake.credential")


def test_no_rest_login_without_a_credential_or_for_a_sql_catalog(monkeypatch) -> None:
    monkeypatch.setenv("SHOPLAKE_CATALOG__REST_CREDENTIAL", "shoplake:s3cr3t")
    assert Settings().catalog.rest_auth_properties() == {}  # the SQL catalog takes no REST login
    monkeypatch.delenv("SHOPLAKE_CATALOG__REST_CREDENTIAL")
    monkeypatch.setenv("SHOPLAKE_CATALOG__TYPE", "rest")
    monkeypatch.setenv("SHOPLAKE_CATALOG__URI", "http://127.0.0.1:8181")
    assert Settings().catalog.rest_auth_properties() == {}


def test_a_spark_cluster_secret_turns_on_authentication_and_encryption() -> None:
    from pipeline.spark_session import session_conf

    with mock.patch("pipeline.spark_session.spark_jars", return_value=[]):
        plain = session_conf(Settings())
        secured = session_conf(Settings(spark={"auth_secret": "shared"}))
    assert "spark.authenticate" not in plain
    assert secured["spark.authenticate"] == "true"
    assert secured["spark.authenticate.secret"] == "shared"
    assert secured["spark.network.crypto.enabled"] == "true"
    assert secured["spark.network.crypto.saslFallback"] == "false"
