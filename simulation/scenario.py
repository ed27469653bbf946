"""Scenarios: named parameter sets for the shop model and its fault knobs, stored as TOML files.

The built-in scenarios live in ``simulation/scenarios/``; ``--scenario`` also accepts a path to a TOML file.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pipeline.errors import ShoplakeError


class ScenarioError(ShoplakeError, ValueError):
    """A scenario name or file is unknown or invalid."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FlashSale(_Strict):
    start_hour: float = Field(ge=0, lt=24)
    hours: float = Field(gt=0, le=24)
    traffic_multiplier: float = Field(default=4.0, ge=1)
    discount_percent: str = Field(default="30.00", pattern=r"^\d{1,3}\.\d{2}$")


class Traffic(_Strict):
    diurnal: bool = True
    flash_sale: FlashSale | None = None


class Funnel(_Strict):
    views_per_session: float = Field(default=6.0, ge=1)
    cart_probability: float = Field(default=0.15, ge=0, le=1, description="per product page view")
    purchase_probability: float = Field(default=0.45, ge=0, le=1, description="per session with a cart")
    logout_probability: float = Field(default=0.7, ge=0, le=1)
    think_time_s: float = Field(default=30.0, gt=0, description="mean gap between a session's events")


class Faults(_Strict):
    """Each rate is a probability per generated event."""

    duplicate_rate: float = Field(default=0.0, ge=0, le=1, description="a second delivery, same bytes")
    late_rate: float = Field(default=0.0, ge=0, le=1, description="delivered after later events")
    late_min_s: float = Field(default=60.0, ge=0)
    late_max_s: float = Field(default=3600.0, ge=0)
    malformed_rate: float = Field(default=0.0, ge=0, le=1, description="an extra broken record")
    schema_v2_rate: float = Field(default=0.0, ge=0, le=1, description="sent as schema version 2")
    conflicting_duplicate_rate: float = Field(
        default=0.0, ge=0, le=1, description="a second delivery, same event id, another (valid) payload"
    )
    restamped_duplicate_rate: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="a second delivery re-stamped by its producer on retry: same event, another timestamp, "
        "restamp_min_s to restamp_max_s later (possibly on another date)",
    )
    restamp_min_s: float = Field(default=60.0, ge=0)
    restamp_max_s: float = Field(default=3 * 3600.0, ge=0)

    @model_validator(mode="after")
    def _late_range(self) -> Faults:
        if self.late_max_s < self.late_min_s:
            raise ValueError("late_max_s must be >= late_min_s")
        if self.restamp_max_s < self.restamp_min_s:
            raise ValueError("restamp_max_s must be >= restamp_min_s")
        return self


class Scenario(_Strict):
    name: str = Field(pattern=r"^[a-z0-9_]+$")
    description: str = ""
    start: dt.datetime = Field(description="First instant of simulated time, UTC.")
    days: int = Field(default=1, ge=1, le=366)
    products: int = Field(default=200, ge=1)
    users: int = Field(default=2000, ge=1)
    price_changes_per_day: int = Field(default=20, ge=0)
    inventory_updates_per_day: int = Field(default=30, ge=0)
    stock_out_share: float = Field(
        default=0.2, ge=0, le=1, description="Inventory updates that set the stock to 0 (the product sold out)."
    )
    rating_updates_per_day: int = Field(default=10, ge=0)
    traffic: Traffic = Field(default_factory=Traffic)
    funnel: Funnel = Field(default_factory=Funnel)
    faults: Faults = Field(default_factory=Faults)
    edge_cases: bool = Field(
        default=False, description="add scripted shoppers at the metric rules' boundaries (simulation/edges.py)"
    )

    @model_validator(mode="after")
    def _utc_start(self) -> Scenario:
        if self.start.tzinfo is None or self.start.utcoffset() != dt.timedelta(0):
            raise ValueError("start must be a UTC timestamp, e.g. 2026-11-02T00:00:00Z")
        if self.edge_cases and self.days < 2:
            raise ValueError("edge_cases needs at least 2 days (the measured day and the midnight after it)")
        return self

    @property
    def end(self) -> dt.datetime:
        return self.start + dt.timedelta(days=self.days)

    @property
    def dates(self) -> list[dt.date]:
        return [(self.start + dt.timedelta(days=i)).date() for i in range(self.days)]


def builtin_scenarios() -> list[str]:
    folder = resources.files("simulation") / "scenarios"
    return sorted(p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml"))


def load_scenario(name_or_path: str) -> Scenario:
    """A built-in scenario by name, or a TOML file by path."""
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise ScenarioError(f"scenario file {name_or_path!r} does not exist")
        text = path.read_text()
    else:
        resource = resources.files("simulation") / "scenarios" / f"{name_or_path}.toml"
        if not resource.is_file():
            known = ", ".join(builtin_scenarios())
            raise ScenarioError(f"unknown scenario {name_or_path!r}; built-in scenarios: {known}")
        text = resource.read_text()
    try:
        return Scenario.model_validate(tomllib.loads(text))
    except (tomllib.TOMLDecodeError, ValidationError) as exc:
        raise ScenarioError(f"invalid scenario {name_or_path!r}: {exc}") from exc
