"""Which lifetime state a gold build starts from: the latest day built before the range, as the table holds it."""

from __future__ import annotations

import datetime as dt

from pipeline.batch.inputs import latest_state_day
from pipeline.iceberg_io import ensure_tables, overwrite_day_range
from pipeline.tables import GOLD_CUSTOMER_LIFETIME

D1, D2, D3, D4 = (dt.date(2026, 11, 1) + dt.timedelta(days=i) for i in range(4))


def _state(spark, *days: dt.date):
    return spark.createDataFrame(
        [(day, f"u{i}", day, day, 0, None, None, None) for i, day in enumerate(days)], GOLD_CUSTOMER_LIFETIME.schema
    )


def test_the_latest_state_day_is_the_last_day_built_before_the_range_and_skips_days_never_built(spark, lake) -> None:
    catalog = lake.catalog.name
    assert latest_state_day(spark, catalog, D3) is None, "no table yet"
    ensure_tables(spark, catalog, [GOLD_CUSTOMER_LIFETIME])
    assert latest_state_day(spark, catalog, D3) is None, "a table without a snapshot"

    overwrite_day_range(_state(spark, D1, D3), catalog, GOLD_CUSTOMER_LIFETIME, D1, D3, head=None)
    assert latest_state_day(spark, catalog, D1) is None
    assert latest_state_day(spark, catalog, D2) == D1
    assert latest_state_day(spark, catalog, D3) == D1, "day 2 was never built"
    assert latest_state_day(spark, catalog, D4) == D3

    # Day 3 rebuilt without users: it holds no state any more, so a build of day 4 starts from day 1.
    overwrite_day_range(_state(spark), catalog, GOLD_CUSTOMER_LIFETIME, D3, D3, head=None)
    assert latest_state_day(spark, catalog, D4) == D1
