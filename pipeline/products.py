"""The product dimension with its history (slowly changing, type 2), from the product updates alone.

Definitions: ``docs/metrics.md``, ``silver.products``. In short, per product, its accepted updates in event time
order (``event_time``, then ``event_id``: two updates of one instant apply in id order) each set the fields they
carry (``new_price`` -> ``price``, ``stock_level``, ``rating``) and keep the others as they were. Every instant at
which a product has an update starts a version, in force until the product's next such instant (``valid_to``,
exclusive) or for good (``valid_to`` null, ``is_current``).

The versions are a pure function of the set of updates: the order in which they reached Kafka does not matter
(a late price change falls into place and splits the version it belongs to), a redelivered update is already
gone (silver holds each event id once), and a replay gives the same rows. A field no update has set yet is null:
a product's price before its first price change is not in any event.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from pipeline.tables import PRODUCTS

# Each version's fields are the newest value each field was given up to it.
_FIELDS = {"price": "new_price", "stock_level": "stock_level", "rating": "rating"}


def product_versions(product_updates_df: DataFrame) -> DataFrame:
    """``silver.products`` rows from ``silver.product_updates`` rows (every update of the products wanted)."""
    in_order = Window.partitionBy("product_id").orderBy("event_time", "event_id")
    so_far = in_order.rowsBetween(Window.unboundedPreceding, Window.currentRow)
    running = product_updates_df.select(
        "product_id",
        "event_time",
        "event_id",
        *[F.last(source, ignorenulls=True).over(so_far).alias(name) for name, source in _FIELDS.items()],
    )
    # The state after the last update of each instant is the version that instant starts.
    last_of_instant = Window.partitionBy("product_id", "event_time").orderBy(F.col("event_id").desc())
    instants = running.withColumn("nth", F.row_number().over(last_of_instant)).filter(F.col("nth") == 1)
    by_start = Window.partitionBy("product_id").orderBy("event_time")
    valid_to: Column = F.lead("event_time").over(by_start)
    return instants.select(
        "product_id",
        F.row_number().over(by_start).alias("version"),
        F.col("event_time").alias("valid_from"),
        valid_to.alias("valid_to"),
        valid_to.isNull().alias("is_current"),
        *_FIELDS,
        "event_id",
    ).select(*[F.col(f.name).cast(f.dataType) for f in PRODUCTS.schema.fields])
