"""Every `shoplake` command reads and writes the same lake: the configuration's, else the running services'."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from devstack.postgres import PostgresEndpoint
from devstack.services import Services, state_path
from pipeline.config import CatalogType, ConfigurationError, load_settings
from shoplake.cli import main
from shoplake.runtime import command_settings, with_services

POSTGRES = PostgresEndpoint("127.0.0.1", 55432, "shoplake_catalog", "shoplake", "not-a-real-password")


def _services_up(home: Path, postgres: PostgresEndpoint | None = POSTGRES) -> None:
    """The state `shoplake services up --catalog postgres` leaves in ``home`` (where its services would answer)."""
    services = Services("local", str(home / "services"), "127.0.0.1:59092", postgres=postgres)
    state_path(home).parent.mkdir(parents=True, exist_ok=True)
    state_path(home).write_text(json.dumps(services.to_state()))


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SHOPLAKE_HOME", str(tmp_path))
    return tmp_path


def test_commands_without_kafka_use_the_catalog_and_broker_of_the_running_services(home: Path) -> None:
    _services_up(home)
    settings = command_settings()
    assert settings.catalog.type is CatalogType.SQL
    assert settings.catalog_uri == POSTGRES.sqlalchemy_url
    assert settings.catalog.jdbc_user == "shoplake"
    assert settings.kafka.bootstrap_servers == "127.0.0.1:59092"
    assert with_services(load_settings()) == settings, "the stream and the other commands see one lake"


def test_a_configured_catalog_or_broker_wins_over_the_services(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _services_up(home)
    monkeypatch.setenv("SHOPLAKE_CATALOG__URI", f"sqlite:///{home}/mine.db")
    settings = command_settings()
    assert settings.catalog_uri == f"sqlite:///{home}/mine.db"
    assert settings.kafka.bootstrap_servers == "127.0.0.1:59092"

    monkeypatch.delenv("SHOPLAKE_CATALOG__URI")
    monkeypatch.setenv("SHOPLAKE_KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:9999")
    settings = command_settings()
    assert settings.kafka.bootstrap_servers == "127.0.0.1:9999"
    assert settings.catalog_uri == POSTGRES.sqlalchemy_url


def test_without_services_commands_use_the_configuration_and_only_kafka_commands_need_a_broker(home: Path) -> None:
    settings = command_settings()
    assert settings.catalog_uri == f"sqlite:///{home / 'catalog.db'}"
    with pytest.raises(ConfigurationError, match="SHOPLAKE_KAFKA__BOOTSTRAP_SERVERS"):
        with_services(load_settings())


@pytest.mark.parametrize("command", ["show", "history"])
def test_reading_a_table_nothing_has_written_yet_says_so_and_names_the_catalog(home: Path, command: str) -> None:
    result = CliRunner().invoke(main, [command, "silver.purchases"])
    assert result.exit_code == 1
    assert "silver.purchases has no data yet in the catalog at sqlite:///" in result.output
    assert "Traceback" not in result.output


def test_a_day_before_the_first_partition_names_the_setting_to_change(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("os.environ", dict(os.environ))  # `gold` exports its settings for the run's resources
    result = CliRunner().invoke(main, ["gold", "--date", "2018-02-06"])
    assert result.exit_code == 1
    assert "set SHOPLAKE_PARTITIONS_START (partitions_start in shoplake.toml) to 2018-02-06 or earlier" in (
        result.output
    )
