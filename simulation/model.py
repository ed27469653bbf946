"""The shop: a catalog of products with categories, brands and prices, and users with segments and addresses."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from pipeline.contracts.events import money
from simulation.rand import Rand, cumulative

CATEGORIES: dict[str, tuple[tuple[str, ...], float, float]] = {
    # category: (brands, lowest price, highest price)
    "electronics": (("voltix", "nordtek", "lumen", "arcwave"), 19.0, 1200.0),
    "clothing": (("fieldline", "urbanthread", "kestrel"), 9.0, 180.0),
    "home": (("hearthwell", "oakmere", "brightnest"), 6.0, 450.0),
    "beauty": (("velvetine", "purebloom"), 4.0, 90.0),
    "sports": (("trailpeak", "swiftfin", "ironcore"), 8.0, 600.0),
    "books": (("inkwell press", "harbor books"), 5.0, 60.0),
    "toys": (("tinkerly", "brickbay"), 5.0, 150.0),
}

# The simulated shop always knows these (the contract also allows "unknown", for imported data).
DEVICES = ("desktop", "mobile", "tablet")
PAYMENTS = ("credit_card", "debit_card", "paypal", "apple_pay", "gift_card")
SHIPPINGS = ("standard", "express", "next_day", "pickup")

SEGMENTS: dict[str, tuple[float, float, float]] = {
    # segment: (share of users, visit weight, purchase propensity multiplier)
    "new": (0.30, 0.6, 0.6),
    "casual": (0.45, 1.0, 1.0),
    "loyal": (0.20, 2.0, 1.5),
    "vip": (0.05, 4.0, 2.2),
}

CITIES = (
    ("Springfield", "IL", "627"),
    ("Portland", "OR", "972"),
    ("Austin", "TX", "787"),
    ("Madison", "WI", "537"),
    ("Raleigh", "NC", "276"),
    ("Boise", "ID", "837"),
    ("Tucson", "AZ", "857"),
    ("Albany", "NY", "122"),
)
STREETS = ("Maple St", "Oak Ave", "Pine Rd", "Cedar Ln", "Elm St", "Birch Way", "Lakeview Dr", "Hillcrest Ct")
USER_AGENTS = {
    "desktop": "Mozilla/5.0 (X11; Linux x86_64) ShopBrowser/126.0",
    "mobile": "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) ShopApp/5.2",
    "tablet": "Mozilla/5.0 (iPad; CPU OS 18_1 like Mac OS X) ShopApp/5.2",
}


@dataclass
class Product:
    product_id: str
    category: str
    brand: str
    price: Decimal
    stock: int
    rating: Decimal
    popularity: float


@dataclass(frozen=True)
class Address:
    street: str
    city: str
    state: str
    zip_code: str
    country: str = "US"


@dataclass(frozen=True)
class User:
    user_id: str
    segment: str
    device: str
    ip_address: str
    address: Address
    visit_weight: float
    propensity: float


def charm_price(value: float) -> Decimal:
    """A shop-like price: whole units ending in .99 (at least 0.99)."""
    return money(Decimal(max(int(value), 1)) - Decimal("0.01"))


def build_catalog(rand: Rand, count: int) -> list[Product]:
    names = list(CATEGORIES)
    products = []
    for i in range(count):
        category = names[i % len(names)]
        brands, low, high = CATEGORIES[category]
        # Log-uniform prices: many cheap products, a few expensive ones.
        price = charm_price(low * (high / low) ** rand.uniform())
        products.append(
            Product(
                product_id=f"p{i + 1:05d}",
                category=category,
                brand=rand.pick(brands),
                price=price,
                stock=rand.integer(20, 500),
                rating=money(Decimal(str(round(rand.between(2.5, 5.0), 2)))),
                popularity=1.0 / (1 + i // len(names)) ** 0.8,  # Zipf-like within each category
            )
        )
    return products


def build_users(rand: Rand, count: int) -> list[User]:
    segment_names = list(SEGMENTS)
    segment_cum = cumulative([SEGMENTS[s][0] for s in segment_names])
    device_cum = cumulative([0.45, 0.45, 0.10])
    users = []
    for i in range(count):
        segment = rand.weighted(segment_names, segment_cum)
        _, visit_weight, propensity = SEGMENTS[segment]
        city, state, zip_prefix = rand.pick(CITIES)
        users.append(
            User(
                user_id=f"u{i + 1:06d}",
                segment=segment,
                device=rand.weighted(DEVICES, device_cum),
                ip_address=f"10.{rand.integer(0, 255)}.{rand.integer(0, 255)}.{rand.integer(1, 254)}",
                address=Address(
                    street=f"{rand.integer(1, 9999)} {rand.pick(STREETS)}",
                    city=city,
                    state=state,
                    zip_code=f"{zip_prefix}{rand.integer(0, 99):02d}",
                ),
                visit_weight=visit_weight,
                propensity=propensity,
            )
        )
    return users
