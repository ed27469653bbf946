"""The asset checks: take the run's frames, compute the verdict with ``pipeline.batch.checks``, report it.

A run builds one day or a backfill's range at once; a check then judges every day of it (and fails when one
day fails). Its frames come from the run's :class:`~pipeline.batch.inputs.GoldRun`: the silver days the assets
were built from, and the gold days the run wrote, read back. Checks on ``gold/data_quality`` are blocking
(contracts on silver); the others warn or flag disagreement. Metadata always carries the counts behind the
verdict. The ``freshness`` check on each silver table is built from the settings (its objective and window) by
:func:`build_freshness_check`.
"""

import datetime as dt
from collections.abc import Iterator
from typing import Any

import dagster as dg
from pyspark.sql import DataFrame, Row

from pipeline.batch import checks
from pipeline.config import FreshnessSettings
from pipeline.iceberg_io import read_days
from pipeline.observability import freshness_verdict, recent_latency_summary
from pipeline.orchestration.assets import QUALITY_KEY, gold_run
from pipeline.orchestration.resources import GoldInputsResource, LakehouseResource, asset_key
from pipeline.tables import (
    GOLD_CUSTOMER_DAILY,
    GOLD_DAILY_CATEGORY_SALES,
    GOLD_DAILY_SALES_SUMMARY,
    GOLD_DATA_QUALITY,
    GOLD_PRODUCT_DAILY,
    SILVER,
)


def _only_row(verdict_df: DataFrame) -> Row:
    row = verdict_df.first()
    assert row is not None, "a verdict is one row"
    return row


@dg.asset_check(asset=QUALITY_KEY, blocking=True, description="Every Kafka record of the day is in exactly one place.")
def conservation(context: dg.AssetCheckExecutionContext, gold_inputs: GoldInputsResource) -> dg.AssetCheckResult:
    verdict = _only_row(checks.conservation_verdict(gold_run(context, gold_inputs).gold(GOLD_DATA_QUALITY)))
    return dg.AssetCheckResult(
        passed=verdict["is_ok"],
        metadata={
            "bronze_records": verdict["bronze_records"],
            "tables_failing": ", ".join(verdict["tables_failing"]) or "none",
        },
    )


@dg.asset_check(
    asset=QUALITY_KEY, blocking=True, description="Silver holds each event id once and only the day's events."
)
def silver_contract(context: dg.AssetCheckExecutionContext, gold_inputs: GoldInputsResource) -> dg.AssetCheckResult:
    run = gold_run(context, gold_inputs)
    verdicts, recounted = checks.silver_contract_verdicts({spec.name: run.silver(e) for e, spec in SILVER.items()})
    metadata: dict[str, Any] = {f"{name}_rows": verdict["rows"] for name, verdict in verdicts.items()}
    metadata["ids_recounted_exactly"] = ", ".join(recounted) or "none"
    return dg.AssetCheckResult(passed=all(v["is_ok"] for v in verdicts.values()), metadata=metadata)


@dg.asset_check(
    asset=asset_key(GOLD_DAILY_SALES_SUMMARY),
    additional_deps=[asset_key(GOLD_DAILY_CATEGORY_SALES), asset_key(GOLD_CUSTOMER_DAILY)],
    description="Gold tables of the day agree with each other.",
)
def totals_reconcile(context: dg.AssetCheckExecutionContext, gold_inputs: GoldInputsResource) -> dg.AssetCheckResult:
    run = gold_run(context, gold_inputs)
    verdicts = checks.totals_verdict(
        run.gold(GOLD_DAILY_SALES_SUMMARY),
        run.gold(GOLD_DAILY_CATEGORY_SALES),
        run.gold(GOLD_CUSTOMER_DAILY),
        by=("event_date",),
    ).collect()
    failing = sorted(v["event_date"].isoformat() for v in verdicts if not v["is_ok"])
    return dg.AssetCheckResult(
        passed=bool(verdicts) and not failing,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "summary_revenue": str(sum(v["revenue"] for v in verdicts)),
            "customers_revenue": str(sum(v["customers_revenue"] for v in verdicts)),
            "orders": sum(v["orders"] for v in verdicts),
            "days_failing": ", ".join(failing) or "none",
        },
    )


@dg.asset_check(asset=asset_key(GOLD_DAILY_SALES_SUMMARY), description="Revenue within 3x of the trailing 7-day mean.")
def revenue_anomaly(context: dg.AssetCheckExecutionContext, gold_inputs: GoldInputsResource) -> dg.AssetCheckResult:
    run = gold_run(context, gold_inputs)
    trailing = read_days(
        run.spark,
        run.catalog,
        GOLD_DAILY_SALES_SUMMARY,
        run.first - dt.timedelta(days=checks.ANOMALY_TRAILING_DAYS),
        run.first - dt.timedelta(days=1),
    )
    daily_sales = trailing.unionByName(run.gold(GOLD_DAILY_SALES_SUMMARY))
    verdicts = checks.revenue_anomaly_verdicts(daily_sales, run.days).collect()
    failing = sorted(v["event_date"].isoformat() for v in verdicts if not v["is_ok"])
    latest = max(verdicts, key=lambda v: v["event_date"])
    mean = latest["trailing_mean"]
    return dg.AssetCheckResult(
        passed=not failing,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "revenue": latest["revenue"],
            "trailing_mean": mean if mean is not None else "no history",
            "days_failing": ", ".join(failing) or "none",
        },
    )


@dg.asset_check(asset=asset_key(GOLD_PRODUCT_DAILY), description="Funnel rates are between 0 and 1.")
def rates_bounded(context: dg.AssetCheckExecutionContext, gold_inputs: GoldInputsResource) -> dg.AssetCheckResult:
    verdict = _only_row(checks.rates_verdict(gold_run(context, gold_inputs).gold(GOLD_PRODUCT_DAILY)))
    return dg.AssetCheckResult(
        passed=verdict["is_ok"], metadata={"products_out_of_range": verdict["products_out_of_range"]}
    )


FRESHNESS_CHECK = "freshness"


def _seconds(value: float | None) -> float | str:
    return round(value, 3) if value is not None else "no event"


def build_freshness_check(freshness: FreshnessSettings) -> dg.AssetChecksDefinition:
    """One ``freshness`` check per silver table: Kafka -> silver p99 of the events made visible in the last
    ``window_minutes`` against ``p99_objective_seconds``.

    Warn severity: a late event is still exactly once and correct, and gold is built from complete days, so a
    missed objective calls for attention but must not block anything.
    """
    objective, window = freshness.p99_objective_seconds, freshness.window_minutes
    description = f"Kafka -> silver p99 over the last {window} min is at most {objective:g} s."
    specs = [
        dg.AssetCheckSpec(FRESHNESS_CHECK, asset=asset_key(spec), description=description) for spec in SILVER.values()
    ]

    @dg.multi_asset_check(specs=specs, name="silver_freshness_checks")
    def silver_freshness(
        context: dg.AssetCheckExecutionContext, lake: LakehouseResource
    ) -> Iterator[dg.AssetCheckResult]:
        since = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=window)
        spark, catalog = lake.spark(), lake.catalog()
        for spec in SILVER.values():
            verdict = freshness_verdict(recent_latency_summary(spark, catalog, spec, since), objective)
            yield dg.AssetCheckResult(
                asset_key=asset_key(spec),
                check_name=FRESHNESS_CHECK,
                passed=verdict.is_ok,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={
                    "events": verdict.events,
                    "p50_s": _seconds(verdict.p50_s),
                    "p95_s": _seconds(verdict.p95_s),
                    "p99_s": _seconds(verdict.p99_s),
                    "max_s": _seconds(verdict.max_s),
                    "p99_objective_s": objective,
                    "window_minutes": window,
                    "visible_since": since.isoformat(timespec="seconds"),
                },
            )

    return silver_freshness


ASSET_CHECKS: tuple[dg.AssetChecksDefinition, ...] = (
    conservation,
    silver_contract,
    totals_reconcile,
    revenue_anomaly,
    rates_bounded,
)
