"""Quarantine replay's selection on tiny Arrow tables, its record written without Spark, its refusals."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest
from click.testing import CliRunner
from pyiceberg.catalog import load_catalog

from pipeline.catalog import arrow_schema
from pipeline.replay import (
    RECORD_SCHEMA,
    Replay,
    ReplayError,
    check_rule,
    distinct_records,
    filter_rule,
    per_topic,
    record_replay,
    with_keys,
)
from pipeline.tables import BRONZE_EVENTS, QUARANTINE_REPLAYS
from shoplake.cli import main

RULE = "unsupported_schema_version"


def at(second: int) -> dt.datetime:
    return dt.datetime(2026, 11, 2, 9, 0, second, tzinfo=dt.UTC)


def quarantined() -> pa.Table:
    """Arrival order: offset 3 (t=1), 5 (t=2), 1 on the other topic (t=3), then a record without coordinates."""
    return pa.table(
        {
            "kafka_topic": ["t.page_view", "t.page_view", "t.purchase", "t.page_view", None],
            "kafka_partition": pa.array([0, 0, 1, 0, None], pa.int32()),
            "kafka_offset": pa.array([5, 3, 1, 9, None], pa.int64()),
            "kafka_timestamp": pa.array([at(2), at(1), at(3), at(4), None], pa.timestamp("us", tz="UTC")),
            "value": pa.array([b'{"v":3}', b'{"w":3}', b'{"v":3}', b'{"v":3}', None], pa.binary()),
            "failed_rules": pa.array(
                [[RULE], [RULE, "missing:user_id"], [RULE], ["invalid_json"], None], pa.list_(pa.string())
            ),
        }
    )


def bronze_keys() -> pa.Table:
    return pa.table(
        {
            "kafka_topic": ["t.page_view", "t.page_view", "t.purchase"],
            "kafka_partition": pa.array([0, 0, 1], pa.int32()),
            "kafka_offset": pa.array([5, 3, 1], pa.int64()),
            "kafka_key": pa.array([b"u1", None, b"u2"], pa.binary()),
        }
    )


def test_the_records_of_a_rule_are_those_that_failed_it_among_others_in_arrival_order() -> None:
    selected = filter_rule(quarantined(), RULE)
    assert selected["kafka_offset"].to_pylist() == [3, 5, 1]
    assert filter_rule(quarantined(), "invalid_json")["kafka_offset"].to_pylist() == [9]
    assert filter_rule(quarantined(), "no_such_rule").num_rows == 0


def test_each_record_gets_the_key_of_its_bronze_copy_and_none_where_it_had_none() -> None:
    keyed = with_keys(filter_rule(quarantined(), RULE), bronze_keys())
    assert [(r["kafka_offset"], r["kafka_key"]) for r in keyed.to_pylist()] == [(3, None), (5, b"u1"), (1, b"u2")]


def test_the_same_raw_record_kept_twice_is_sent_once_in_order_of_first_arrival() -> None:
    twice = pa.concat_tables([quarantined(), quarantined().slice(0, 1).set_column(2, "kafka_offset", [[11]])])
    keys = pa.concat_tables(
        [bronze_keys(), pa.table({"kafka_topic": ["t.page_view"], "kafka_partition": pa.array([0], pa.int32()),
                                  "kafka_offset": pa.array([11], pa.int64()), "kafka_key": [b"u1"]})]
    )  # fmt: skip
    records = distinct_records(with_keys(filter_rule(twice, RULE), keys))
    assert records.schema == RECORD_SCHEMA
    assert records.to_pylist() == [
        {"kafka_topic": "t.page_view", "kafka_key": None, "value": b'{"w":3}'},
        {"kafka_topic": "t.page_view", "kafka_key": b"u1", "value": b'{"v":3}'},
        {"kafka_topic": "t.purchase", "kafka_key": b"u2", "value": b'{"v":3}'},  # same value, other topic: sent
    ]
    assert per_topic(records) == {"t.page_view": 2, "t.purchase": 1}


def test_duplicates_and_an_empty_rule_are_refused() -> None:
    assert check_rule(RULE) == RULE
    with pytest.raises(ReplayError, match="already in silver"):
        check_rule("duplicate")
    with pytest.raises(ReplayError, match="empty"):
        check_rule(" ")


def test_a_replay_is_recorded_in_its_ops_table_created_on_first_use(tmp_path) -> None:
    catalog = load_catalog("t", type="sql", uri=f"sqlite:///{tmp_path / 'catalog.db'}", warehouse=tmp_path.as_uri())
    when = dt.datetime(2026, 11, 3, 8, 30, tzinfo=dt.UTC)
    record_replay(catalog, Replay(RULE, dt.date(2026, 11, 2), None, 3, True, "ops@host", when))
    record_replay(catalog, Replay(RULE, None, None, 0, False, "ops@host", when))
    rows = catalog.load_table(QUARANTINE_REPLAYS.identifier).scan().to_arrow().to_pylist()
    rows.sort(key=lambda r: -r["records"])  # one data file per append, read in no set order
    assert [(r["since"], r["until"], r["records"], r["is_dry_run"], r["replayed_by"]) for r in rows] == [
        (dt.date(2026, 11, 2), None, 3, True, "ops@host"),
        (None, None, 0, False, "ops@host"),
    ]
    assert rows[0]["replayed_at"] == when


def test_only_flat_unpartitioned_tables_are_written_without_spark() -> None:
    assert arrow_schema(QUARANTINE_REPLAYS).names == QUARANTINE_REPLAYS.schema.fieldNames()
    with pytest.raises(ValueError, match="partitioned"):
        arrow_schema(BRONZE_EVENTS)


def test_replay_refuses_the_duplicate_rule_bad_dates_and_an_inverted_range(tmp_path) -> None:
    env = {"SHOPLAKE_HOME": str(tmp_path)}
    for options, message in [
        (["--rule", "duplicate"], "already in silver"),
        (["--rule", RULE, "--since", "2026-13-01"], "not a date"),
        (["--rule", RULE, "--since", "2026-11-03", "--until", "2026-11-02"], "is before --since"),
        ([], "Missing option '--rule'"),
    ]:
        result = CliRunner().invoke(main, ["quarantine", "replay", *options], env=env)
        assert result.exit_code == 2, (options, result.output)
        assert message in result.output, (options, result.output)
