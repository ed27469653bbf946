"""The shop simulation: sessions walking a funnel and product updates, driven through the fault injector into an
ordered record stream.

``generate(scenario, seed, events)`` yields :class:`SimRecord` s in delivery order. The same scenario, seed and
event count always give the same records, byte for byte: all randomness comes from :class:`Rand`, all times are
integer milliseconds of simulated time, and JSON is written with a fixed key order and separators.

Counting: ``events`` is the number of events the model produces (what the shop really did). Fault knobs add
records on top (a duplicate delivery, a malformed record) or change delivery order (late events), see
``simulation.faults``; the :class:`Manifest` says exactly what was injected. Records are described in
``simulation.records``, the recorded log format in ``simulation.logfile``.
"""

from __future__ import annotations

import heapq
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pipeline.contracts.events import (
    PAGE_TYPES,
    SCHEMA_VERSION,
    EventType,
    discount_for,
    format_decimal,
    money,
)
from simulation.edges import EdgeCases
from simulation.faults import FaultInjector
from simulation.logfile import to_log_line
from simulation.model import (
    DEVICES,
    PAYMENTS,
    SHIPPINGS,
    USER_AGENTS,
    Product,
    User,
    build_catalog,
    build_users,
    charm_price,
)
from simulation.rand import Rand, cumulative, stable_id
from simulation.records import Manifest, SimRecord
from simulation.scenario import Scenario

# Re-exported: the fault suite writes logs with the generator's ``to_log_line``.
__all__ = ["Manifest", "SimRecord", "generate", "to_log_line"]

DAY_MS = 86_400_000
_LAST = 2**62  # a heap sequence number after every real one
# Relative traffic by hour of day (UTC): quiet nights, a lunch peak, an evening peak.
DIURNAL = (
    0.25,
    0.15,
    0.10,
    0.08,
    0.08,
    0.12,
    0.25,
    0.45,
    0.70,
    0.85,
    0.95,
    1.05,
    1.20,
    1.15,
    1.00,
    0.95,
    0.95,
    1.05,
    1.25,
    1.45,
    1.50,
    1.30,
    0.90,
    0.50,
)
DISCOUNTS = (Decimal("0.00"), Decimal("5.00"), Decimal("10.00"), Decimal("15.00"))
DISCOUNT_CUM = (0.70, 0.82, 0.94, 1.0)


@dataclass
class Step:
    """One step of a planned visit, ``gap_ms`` after the previous one."""

    kind: str  # view | cart | checkout | purchase | logout
    gap_ms: int
    page_type: str = ""
    product: Product | None = None
    quantity: int = 0
    percent: Decimal = Decimal("0.00")
    payment: str = ""
    shipping: str = ""


@dataclass
class SessionPlan:
    """A visit decided before its start time is known (its prices are looked up when it is placed in time)."""

    user: User
    device: str
    steps: list[Step]

    @property
    def events(self) -> int:
        return 1 + len(self.steps)  # the login, then one event per step

    @property
    def duration_ms(self) -> int:
        return sum(step.gap_ms for step in self.steps)


class Shop:
    """The behavioural model: catalog, users, a schedule of product updates, and session funnels.

    Runs in two passes over the same seeded draws. The first plans visits until they hold the requested number
    of events (with the product updates); the second plans the same visits again, spreads their start times
    over the scenario's days following the traffic curve, and turns them into events with the prices in force
    at each instant. So a run has exactly the requested number of events and covers every simulated day.
    """

    def __init__(self, scenario: Scenario, seed: int, events: int) -> None:
        self.scenario = scenario
        self.seed = seed
        self.requested = events
        self.root = Rand(seed, scenario.name)
        self.products: list[Product] = build_catalog(self.root.child("catalog"), scenario.products)
        self.by_id = {p.product_id: p for p in self.products}
        self.users: list[User] = build_users(self.root.child("users"), scenario.users)
        self.user_cum = cumulative([u.visit_weight for u in self.users])
        self.product_cum = cumulative([p.popularity for p in self.products])
        self.counter = 0
        self.span_ms = scenario.days * DAY_MS
        self.price_times: dict[str, list[int]] = {}
        self.price_values: dict[str, list[Decimal]] = {}
        self.updates = self._schedule_updates(self.root.child("updates"))
        self.edges = EdgeCases(scenario, self._envelope, self.products[0]) if scenario.edge_cases else None
        self.edge_events = self.edges.fixed_events() if self.edges else []

    # -- identifiers, time, prices ---------------------------------------------------------------------------

    def next_id(self, kind: str) -> str:
        self.counter += 1
        return stable_id(self.seed, self.scenario.name, kind, self.counter)

    def intensity(self, t_ms: float) -> float:
        """Relative session arrival rate at a simulated instant."""
        hour = (t_ms % DAY_MS) / 3_600_000
        rate = DIURNAL[int(hour)] if self.scenario.traffic.diurnal else 1.0
        if self.in_sale(t_ms):
            assert self.scenario.traffic.flash_sale is not None
            rate *= self.scenario.traffic.flash_sale.traffic_multiplier
        return rate

    def in_sale(self, t_ms: float) -> bool:
        sale = self.scenario.traffic.flash_sale
        hour = (t_ms % DAY_MS) / 3_600_000
        return sale is not None and sale.start_hour <= hour < sale.start_hour + sale.hours

    def price_at(self, product: Product, t_ms: int) -> Decimal:
        times = self.price_times.get(product.product_id)
        if not times:
            return product.price
        i = bisect_right(times, t_ms)
        return self.price_values[product.product_id][i - 1] if i else product.price

    # -- product updates -------------------------------------------------------------------------------------

    def _schedule_updates(self, rand: Rand) -> list[tuple[int, dict[str, Any]]]:
        """All product_update events, with the price timeline later purchases follow.

        Small runs get proportionally fewer updates (at most one per 50 requested events), so that a short run
        is still mostly shopping.
        """
        s = self.scenario
        per_day = {
            "price_change": s.price_changes_per_day,
            "inventory_update": s.inventory_updates_per_day,
            "rating_update": s.rating_updates_per_day,
        }
        configured = sum(per_day.values()) * s.days
        scale = min(1.0, (self.requested // 50) / configured) if configured else 0.0
        planned: list[tuple[int, str, Product]] = []
        for day in range(s.days):
            for update_type, count in per_day.items():
                for _ in range(round(count * scale)):
                    t = day * DAY_MS + rand.integer(0, DAY_MS - 1)
                    planned.append((t, update_type, rand.pick(self.products)))
        planned.sort(key=lambda x: (x[0], x[1], x[2].product_id))
        current = {p.product_id: p.price for p in self.products}
        events = []
        for t, update_type, product in planned:
            body = self._envelope(EventType.PRODUCT_UPDATE)
            body |= {"product_id": product.product_id, "update_type": update_type}
            if update_type == "price_change":
                new_price = charm_price(float(current[product.product_id]) * rand.between(0.8, 1.2))
                current[product.product_id] = new_price
                self.price_times.setdefault(product.product_id, []).append(t)
                self.price_values.setdefault(product.product_id, []).append(new_price)
                body["new_price"] = format_decimal(new_price)
            elif update_type == "inventory_update":
                sold_out = rand.chance(s.stock_out_share)
                body["stock_level"] = 0 if sold_out else rand.integer(1, 800)
            else:
                body["rating"] = format_decimal(money(Decimal(str(round(rand.between(1.0, 5.0), 2)))))
            events.append((t, body))
        return events

    # -- visits ----------------------------------------------------------------------------------------------

    def _envelope(self, event_type: EventType) -> dict[str, Any]:
        return {
            "event_id": self.next_id("event"),
            "event_type": event_type.value,
            "schema_version": SCHEMA_VERSION,
            "timestamp": None,  # filled in when encoded
        }

    def plan(self, rand: Rand) -> SessionPlan:
        """One visit: login, page views, carts, maybe a checkout and purchase, maybe a logout."""
        f = self.scenario.funnel

        def gap(scale: float = 1.0) -> int:
            return 1 + int(rand.exponential(f.think_time_s * 1000 * scale))

        user = rand.weighted(self.users, self.user_cum)
        device = user.device if rand.chance(0.8) else rand.pick(DEVICES)
        steps: list[Step] = []
        has_cart = False
        for i in range(rand.geometric(f.views_per_session)):
            page_type = "home" if i == 0 else rand.weighted(PAGE_TYPES[1:4], (0.25, 0.80, 1.0))
            product = rand.weighted(self.products, self.product_cum) if page_type == "product" else None
            steps.append(Step("view", gap(), page_type=page_type, product=product))
            if product is not None and rand.chance(f.cart_probability):
                steps.append(
                    Step("cart", gap(0.3), product=product, quantity=rand.weighted((1, 2, 3), (0.75, 0.93, 1.0)))
                )
                has_cart = True
        if has_cart and rand.chance(min(1.0, f.purchase_probability * user.propensity)):
            steps.append(Step("checkout", gap(), page_type="checkout"))
            percent = rand.weighted(DISCOUNTS, DISCOUNT_CUM)
            payment = rand.weighted(PAYMENTS, (0.45, 0.65, 0.85, 0.97, 1.0))
            shipping = rand.weighted(SHIPPINGS, (0.6, 0.85, 0.95, 1.0))
            steps.append(Step("purchase", gap(0.5), percent=percent, payment=payment, shipping=shipping))
        if rand.chance(f.logout_probability):
            steps.append(Step("logout", gap()))
        return SessionPlan(user, device, steps)

    def materialize(self, plan: SessionPlan, start_ms: int) -> list[tuple[int, EventType, str, dict[str, Any]]]:
        """The visit's events from ``start_ms``, with the prices in force at each step."""
        user, device = plan.user, plan.device
        session_id = self.next_id("session")
        cart_id = self.next_id("cart")
        agent = USER_AGENTS[device]
        channel = "web" if device == "desktop" else "app"
        session_fields = {"device_type": device, "ip_address": user.ip_address, "user_agent": agent}
        out: list[tuple[int, EventType, str, dict[str, Any]]] = []
        t = start_ms

        def add(event_type: EventType, fields: dict[str, Any]) -> None:
            body = self._envelope(event_type)
            body["metadata"] = {"channel": channel}
            body |= {"user_id": user.user_id, "session_id": session_id} | fields
            out.append((t, event_type, user.user_id, body))

        def view(page_type: str, product: Product | None) -> dict[str, Any]:
            return {
                "product_id": product.product_id if product else None,
                "page_type": page_type,
                "referrer": referrer,
                "user_agent": agent,
                "ip_address": user.ip_address,
                "device_type": device,
            }

        add(EventType.USER_SESSION, {"session_type": "login"} | session_fields)
        cart: dict[str, int] = {}
        referrer = "https://search.example.com/"
        for step in plan.steps:
            t += step.gap_ms
            if step.kind in ("view", "checkout"):
                add(EventType.PAGE_VIEW, view(step.page_type, step.product))
                referrer = f"https://shop.example.com/{step.page_type}"
            elif step.kind == "cart":
                assert step.product is not None
                price = self.price_at(step.product, t)
                add(
                    EventType.ADD_TO_CART,
                    {
                        "product_id": step.product.product_id,
                        "quantity": step.quantity,
                        "price": format_decimal(price),
                        "total_value": format_decimal(price * step.quantity),
                        "cart_id": cart_id,
                    },
                )
                cart[step.product.product_id] = cart.get(step.product.product_id, 0) + step.quantity
            elif step.kind == "purchase":
                add(EventType.PURCHASE, self._purchase(user, cart, step, t))
            else:
                add(EventType.USER_SESSION, {"session_type": "logout"} | session_fields)
        return out

    def _purchase(self, user: User, cart: dict[str, int], step: Step, t: int) -> dict[str, Any]:
        items = []
        subtotal = Decimal("0.00")
        for product_id, quantity in cart.items():
            product = self.by_id[product_id]
            unit = self.price_at(product, t)
            subtotal += unit * quantity
            items.append(
                {
                    "product_id": product_id,
                    "quantity": quantity,
                    "unit_price": format_decimal(unit),
                    "total_price": format_decimal(unit * quantity),
                    "category": product.category,
                    "brand": product.brand,
                }
            )
        sale = self.scenario.traffic.flash_sale
        percent = Decimal(sale.discount_percent) if sale and self.in_sale(t) else step.percent
        discount = discount_for(subtotal, percent)
        a = user.address
        return {
            "order_id": self.next_id("order"),
            "items": items,
            "subtotal": format_decimal(subtotal),
            "discount_percent": format_decimal(percent),
            "discount_amount": format_decimal(discount),
            "total_amount": format_decimal(subtotal - discount),
            "payment_method": step.payment,
            "shipping_method": step.shipping,
            "shipping_address": {
                "street": a.street,
                "city": a.city,
                "state": a.state,
                "zip_code": a.zip_code,
                "country": a.country,
            },
        }

    # -- placing visits in time ------------------------------------------------------------------------------

    def _visits_needed(self) -> tuple[int, int]:
        """First pass: how many visits hold the requested events, and the longest visit's duration."""
        needed = self.requested - len(self.updates) - len(self.edge_events)
        rand = self.root.child("sessions")
        visits = longest = 0
        while needed > 0:
            plan = self.plan(rand)
            needed -= plan.events
            visits += 1
            longest = max(longest, plan.duration_ms)
        return visits, longest

    def _start_times(self, visits: int) -> Iterator[int]:
        """Visit starts at jittered quantiles of the traffic curve: increasing, covering every day."""
        hours = self.scenario.days * 24
        cumulative_traffic = cumulative([self.intensity(h * 3_600_000) for h in range(hours)])
        total = cumulative_traffic[-1]
        rand = self.root.child("arrivals")
        hour = 0
        for k in range(visits):
            target = (k + rand.uniform()) / visits * total
            while cumulative_traffic[hour] < target and hour < hours - 1:
                hour += 1
            before = cumulative_traffic[hour - 1] if hour else 0.0
            within = (target - before) / (cumulative_traffic[hour] - before)
            yield int((hour + min(within, 0.999999)) * 3_600_000)

    def _on_edge_day(self, t_ms: int) -> bool:
        return self.edges is not None and self.edges.day_start_ms <= t_ms < self.edges.day_end_ms

    def _complete_tie(self, methods: Counter[str]) -> list[tuple[int, EventType, str, dict[str, Any]]]:
        assert self.edges is not None
        return self.edges.tie_events(methods)

    def events(self) -> Iterator[tuple[int, EventType, str, dict[str, Any]]]:
        """Second pass: exactly the requested number of events, in event-time order, within the scenario.

        Scripted edge cases are never cut: the model's last events make room for them (a tie completed with more
        purchases than the last day's model events can make room for adds those few events on top)."""
        visits, longest = self._visits_needed()
        heap: list[tuple[int, int, EventType, str, dict[str, Any] | None]] = []  # None: the edge day's tie
        seq = 0
        for t, body in self.updates:
            heap.append((t, seq, EventType.PRODUCT_UPDATE, body["product_id"], body))
            seq += 1
        scripted = range(seq, seq + len(self.edge_events))  # the edge cases' sequence numbers
        for t, event_type, key, body in self.edge_events:
            heap.append((t, seq, event_type, key, body))
            seq += 1
        if self.edges:  # after every other event of the edge day: complete its payment-method tie
            heap.append((self.edges.tie_ms, _LAST, EventType.PURCHASE, "", None))
        heapq.heapify(heap)
        rand = self.root.child("sessions")
        produced = 0
        pending = len(self.edge_events)  # scripted events still to come: the model's last events make room
        methods: Counter[str] = Counter()  # payment methods of the edge day so far

        def release() -> Iterator[tuple[int, EventType, str, dict[str, Any]]]:
            nonlocal produced, pending
            t, s, event_type, key, body = heapq.heappop(heap)
            if body is None:
                due = self._complete_tie(methods)
            elif s in scripted:
                pending -= 1
                due = [(t, event_type, key, body)]
            elif produced + pending < self.requested:
                due = [(t, event_type, key, body)]
            else:
                return
            for event in due:
                if event[1] is EventType.PURCHASE and self._on_edge_day(event[0]):
                    methods[event[3]["payment_method"]] += 1
                produced += 1
                yield event

        for start in self._start_times(visits):
            plan = self.plan(rand)
            # A visit that would run past the last day starts earlier instead; never earlier than
            # `start - longest`, so everything before that instant is final and can be released.
            placed = min(start, self.span_ms - 1 - plan.duration_ms)
            for t, event_type, key, body in self.materialize(plan, max(placed, 0)):
                heapq.heappush(heap, (t, seq, event_type, key, body))
                seq += 1
            while heap and heap[0][0] < start - longest and produced < self.requested:
                yield from release()
        while heap:
            yield from release()


def generate(scenario: Scenario, seed: int, events: int) -> tuple[Iterator[SimRecord], Manifest]:
    """The delivery-ordered records of a run, and the manifest that fills in as they are consumed."""
    if events < 1:
        raise ValueError("events must be at least 1")
    manifest = Manifest(scenario=scenario.name, seed=seed)

    def records() -> Iterator[SimRecord]:
        shop = Shop(scenario, seed, events)
        injector = FaultInjector(scenario, seed, manifest)
        for t, event_type, key, body in shop.events():
            manifest.events += 1
            manifest.by_type[event_type.value] += 1
            conflicting = shop.edges is not None and body["event_id"] in shop.edges.conflicting
            injector.add(t, event_type, key, body, conflicting)
            yield from _counted(injector.due(t), manifest)
        yield from _counted(injector.due(None), manifest)

    return records(), manifest


def _counted(records: Iterator[SimRecord], manifest: Manifest) -> Iterator[SimRecord]:
    for record in records:
        if record.kind.startswith("malformed:"):
            manifest.malformed.append(
                {"record": manifest.records, "kind": record.kind.split(":", 1)[1], "topic": record.topic.value}
            )
        manifest.records += 1
        yield record
