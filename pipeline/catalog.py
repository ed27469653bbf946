"""The Iceberg catalog from Python without Spark (PyIceberg): same catalog name, same rows as Spark's."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pyarrow as pa
from pyiceberg.catalog import Catalog, load_catalog
from pyiceberg.exceptions import NoSuchTableError, TableAlreadyExistsError
from pyiceberg.expressions import (
    And,
    BooleanExpression,
    EqualTo,
    GreaterThan,
    GreaterThanOrEqual,
    IsNull,
    LessThan,
    LessThanOrEqual,
    Or,
    Reference,
)
from pyiceberg.expressions.literals import literal
from pyiceberg.table import Table
from pyspark.sql import types as T

from pipeline.config import CatalogType, Settings
from pipeline.errors import ShoplakeError
from pipeline.tables import TableSpec


class SnapshotNotFoundError(ShoplakeError):
    """A table has no snapshot with the requested id, or did not exist yet at the requested time."""


class TableNotFoundError(ShoplakeError):
    """A table a reader needs does not exist yet (the stream creates the streaming tables when it starts)."""


def sql_catalog_url(settings: Settings) -> str:
    """The SQLAlchemy URL PyIceberg's SQL catalog connects with: the configured URL plus the login.

    The one place credentials meet the URL (SQLAlchemy takes them nowhere else). The result holds the password:
    hand it to PyIceberg only; to show a URL, use ``settings.catalog_uri`` (it never has one).
    """
    from sqlalchemy.engine import make_url

    url = make_url(settings.catalog_uri)
    cat = settings.catalog
    if url.get_backend_name() == "postgresql" and (cat.jdbc_user or cat.jdbc_password is not None):
        password = cat.jdbc_password.get_secret_value() if cat.jdbc_password is not None else None
        url = url.set(username=cat.jdbc_user or None, password=password)
    return url.render_as_string(hide_password=False)


def catalog_properties(settings: Settings) -> dict[str, Any]:
    """PyIceberg's ``load_catalog`` properties for ``settings`` (they hold secrets: never log them)."""
    cat = settings.catalog
    props: dict[str, Any] = {"warehouse": settings.warehouse_uri}
    if cat.type is CatalogType.REST:
        props |= {"type": "rest", "uri": settings.catalog_uri, **cat.rest_auth_properties()}
    else:
        props |= {"type": "sql", "uri": sql_catalog_url(settings)}
    if settings.warehouse_uri.startswith("s3"):
        props |= {"s3.region": cat.s3_region, "s3.force-virtual-addressing": not cat.s3_path_style_access}
        if cat.s3_endpoint:
            props["s3.endpoint"] = cat.s3_endpoint
        if cat.s3_access_key_id and cat.s3_secret_access_key:
            props["s3.access-key-id"] = cat.s3_access_key_id.get_secret_value()
            props["s3.secret-access-key"] = cat.s3_secret_access_key.get_secret_value()
    return props


def pyiceberg_catalog(settings: Settings) -> Catalog:
    return load_catalog(settings.catalog.name, **catalog_properties(settings))


def load_table(catalog: Catalog, identifier: str) -> Table:
    """``catalog.load_table``, with a missing table as a :class:`TableNotFoundError` that says what to run."""
    try:
        return catalog.load_table(identifier)
    except NoSuchTableError:
        raise TableNotFoundError(f"{identifier} does not exist yet: run `shoplake stream` first") from None


# Row filters: every value is bound as a typed literal (an aware datetime for timestamps), never parsed from text.


def equals(column: str, value: Any) -> BooleanExpression:
    """A PyIceberg row filter ``column = value``."""
    return EqualTo(term=Reference(column), value=literal(value))


def greater_than(column: str, value: Any) -> BooleanExpression:
    """A PyIceberg row filter ``column > value``."""
    return GreaterThan(term=Reference(column), value=literal(value))


def at_least(column: str, value: Any) -> BooleanExpression:
    """A PyIceberg row filter ``column >= value``."""
    return GreaterThanOrEqual(term=Reference(column), value=literal(value))


def less_than(column: str, value: Any) -> BooleanExpression:
    """A PyIceberg row filter ``column < value``."""
    return LessThan(term=Reference(column), value=literal(value))


def at_most(column: str, value: Any) -> BooleanExpression:
    """A PyIceberg row filter ``column <= value``."""
    return LessThanOrEqual(term=Reference(column), value=literal(value))


def in_force_at(moment: dt.datetime) -> BooleanExpression:
    """A PyIceberg row filter for the rows of a table with history (``valid_from``, ``valid_to``) in force at
    ``moment`` (naive: UTC): ``valid_from <= moment`` and (``valid_to`` null, or ``moment < valid_to``)."""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
    return And(at_most("valid_from", aware), Or(IsNull(term=Reference("valid_to")), greater_than("valid_to", aware)))


def column_equals(spec: TableSpec, column: str, text: str) -> BooleanExpression:
    """``column = text`` read as the column's type (text, whole number or date); a clear error for another
    column or type, or a value that is not one."""
    types = {f.name: f.dataType for f in spec.schema.fields}
    if column not in types:
        raise ValueError(f"{spec.identifier} has no column {column!r} (it has {', '.join(types)})")
    kind = types[column]
    try:
        if isinstance(kind, T.StringType):
            return equals(column, text)
        if isinstance(kind, T.IntegerType | T.LongType):
            return equals(column, int(text))
        if isinstance(kind, T.DateType):
            return equals(column, dt.date.fromisoformat(text))
    except ValueError:
        raise ValueError(f"{column} is a {kind.simpleString()} column: {text!r} is not one") from None
    raise ValueError(f"{column} is a {kind.simpleString()} column: only text, whole-number and date columns filter")


# Small writes without Spark (the CLI's own records): the registry's Spark schema as Arrow, appended by PyIceberg.

_ARROW_TYPES: dict[type[T.DataType], pa.DataType] = {
    T.StringType: pa.string(),
    T.LongType: pa.int64(),
    T.IntegerType: pa.int32(),
    T.BooleanType: pa.bool_(),
    T.DateType: pa.date32(),
    T.TimestampType: pa.timestamp("us", tz="UTC"),  # Spark's timestamp is Iceberg's timestamptz
    T.BinaryType: pa.binary(),
}


def arrow_schema(spec: TableSpec) -> pa.Schema:
    """The Arrow schema of a flat, unpartitioned table of the registry (what :func:`append_rows` writes)."""
    if spec.partition_by:
        raise ValueError(f"{spec.identifier} is partitioned: Spark writes it (pipeline.iceberg_io)")
    fields = []
    for field in spec.schema.fields:
        kind = field.dataType
        arrow_type = (
            pa.decimal128(kind.precision, kind.scale)
            if isinstance(kind, T.DecimalType)
            else _ARROW_TYPES.get(type(kind))
        )
        if arrow_type is None:
            raise ValueError(f"{spec.identifier}.{field.name}: no Arrow type for {field.dataType.simpleString()}")
        fields.append(pa.field(field.name, arrow_type, nullable=True))
    return pa.schema(fields)


def append_rows(catalog: Catalog, spec: TableSpec, rows: list[dict[str, Any]]) -> int:
    """Append ``rows`` to a small flat ops table through PyIceberg, creating it (and its namespace) when missing;
    returns how many rows."""
    schema = arrow_schema(spec)
    catalog.create_namespace_if_not_exists(spec.layer.value)
    try:
        table = catalog.load_table(spec.identifier)
    except NoSuchTableError:
        try:
            # a copy: PyIceberg takes format-version out of the dict it is given
            table = catalog.create_table(spec.identifier, schema=schema, properties=dict(spec.properties))
        except TableAlreadyExistsError:  # created meanwhile by another process
            table = catalog.load_table(spec.identifier)
    table.append(pa.Table.from_pylist(rows, schema=schema))
    return len(rows)


def snapshot_as_of(table: Table, as_of: int | dt.datetime | None) -> int | None:
    """The snapshot to read ``table`` at (Iceberg time travel): a snapshot id, checked to exist; the snapshot
    current at a time (naive times are UTC); or None, the current state, when ``as_of`` is None."""
    if as_of is None:
        return None
    name = ".".join(table.name())
    if isinstance(as_of, int):
        if table.snapshot_by_id(as_of) is None:
            raise SnapshotNotFoundError(f"{name} has no snapshot {as_of} (see `shoplake history`)")
        return as_of
    moment = as_of if as_of.tzinfo else as_of.replace(tzinfo=dt.UTC)
    found = table.snapshot_as_of_timestamp(int(moment.timestamp() * 1000))
    if found is None:
        raise SnapshotNotFoundError(f"{name} did not exist yet at {moment.isoformat()}")
    return found.snapshot_id
