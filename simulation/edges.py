"""Scripted shoppers at the edges of the documented rules (``docs/metrics.md``), for scenarios with ``edge_cases``.

The random shop rarely lands exactly on a rule's boundary, so these events put it there on purpose, all measured
on one day, :attr:`EdgeCases.day` (the scenario's second-to-last day, so the midnight that follows it is
simulated too):

* **recency**: a user whose only order is 0, 1, 7, 8, 30, 31, 90 or 91 days before the day (as far back as the
  scenario reaches), active on the day;
* **frequency**: users with 1, 2, 3, 4, 5, 9 and 10 orders to date;
* **monetary**: users whose lifetime value is a cent below and exactly at 50, 200, 500 and 1000;
* **segments**: five orders with the last 7 days back (champion) and 8 days back (loyal), five and three orders
  all on the day (champion before new customer, new customer before loyal), a user with no order (prospect);
* **repeated product lines**: an order with the same product on two lines;
* **a payment-method tie** on the day, completed at 23:59:59.999 once the day's other purchases are known, and
  one purchase with the alphabetically later method at 00:00:00.000 of the next day: counting it on the wrong
  day breaks the tie;
* **conflicting redeliveries**: each purchase that completes the tie is delivered again under the same event id
  with the other tied method (:meth:`conflicting_copy`); keeping the last delivery instead of the first breaks
  the tie the other way;
* **product versions** (``edge-product``): a price change at 23:59:59.999 of the day (the list price at its
  close) and one at 00:00:00.000 of the next day (not); a stock-out from 12:00:00.000 with page views at
  11:59:59.999 (in stock) and at 12:00:00.000 (out of stock: a version starts at its instant); a price change and
  a rating update of one instant (one version).

Users are named after their edge (``edge-recency-7``, ``edge-ltv-49.99``, ...), so a failing comparison names
the rule it broke.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from pipeline.contracts.events import EventType, format_decimal
from simulation.model import Product
from simulation.scenario import Scenario

DAY_MS = 86_400_000
RECENCY_DAYS = (0, 1, 7, 8, 30, 31, 90, 91)
FREQUENCY_ORDERS = (1, 2, 3, 4, 5, 9, 10)
LTV_AMOUNTS = ("49.99", "50.00", "199.99", "200.00", "499.99", "500.00", "999.99", "1000.00")
# (orders days before the day) -> the segment rule each combination sits on
SEGMENT_ORDERS = {
    "champion-7": (20, 20, 20, 20, 7),
    "loyal-8": (20, 20, 20, 20, 8),
    "champion-today": (0, 0, 0, 0, 0),
    "new-today": (0, 0, 0),
}
TIED_METHODS = ("apple_pay", "paypal")  # the tie must go to the first
EDGE_PRODUCT = "edge-product"
FREQUENCY_DAYS_BEFORE = 20
LTV_DAYS_BEFORE = 1

Event = tuple[int, EventType, str, dict[str, Any]]  # (event time in ms after start, type, key, body)


class EdgeCases:
    """The scripted events of one run: fixed ones (:meth:`fixed_events`) and the tie completed at the end of the
    day (:meth:`tie_events`), with the ids to redeliver with a conflicting payload."""

    def __init__(self, scenario: Scenario, envelope: Callable[[EventType], dict[str, Any]], product: Product) -> None:
        if scenario.days < 2:
            raise ValueError("edge cases need a scenario of at least two days (the day and the midnight after it)")
        self.scenario = scenario
        self.envelope = envelope
        self.product = product
        self.day_index = scenario.days - 2
        self.day = scenario.dates[self.day_index]
        self.day_start_ms = self.day_index * DAY_MS
        self.day_end_ms = self.day_start_ms + DAY_MS  # 00:00:00.000 of the next day
        self.conflicting: set[str] = set()  # event ids to deliver a second time with another payload
        self._sessions = 0

    # -- building blocks ---------------------------------------------------------------------------------------

    def _at(self, days_before: int, ms_into_day: int) -> int:
        return self.day_start_ms - days_before * DAY_MS + ms_into_day

    def _session(self) -> str:
        self._sessions += 1
        return f"edge-session-{self._sessions}"

    def _login(self, t: int, user: str, session: str) -> Event:
        body = self.envelope(EventType.USER_SESSION)
        body |= {"user_id": user, "session_id": session, "session_type": "login", "device_type": "desktop"}
        return (t, EventType.USER_SESSION, user, body)

    def _purchase(self, t: int, user: str, session: str, lines: list[tuple[int, str]], method: str) -> Event:
        """An order of ``lines`` (quantity, unit price), without discount nor shipping address (both optional).

        Lines 1 and 2 are the same product; a third line is another one."""
        items = [
            {
                "product_id": self.product.product_id if i != 2 else f"{self.product.product_id}-b",
                "quantity": quantity,
                "unit_price": price,
                "total_price": format_decimal(Decimal(price) * quantity),
                "category": self.product.category,
                "brand": self.product.brand,
            }
            for i, (quantity, price) in enumerate(lines)
        ]
        subtotal = format_decimal(sum((Decimal(price) * quantity for quantity, price in lines), Decimal("0.00")))
        body = self.envelope(EventType.PURCHASE)
        body |= {
            "user_id": user,
            "session_id": session,
            "order_id": f"edge-order-{body['event_id']}",
            "items": items,
            "subtotal": subtotal,
            "discount_percent": "0.00",
            "discount_amount": "0.00",
            "total_amount": subtotal,
            "payment_method": method,
            "shipping_method": "standard",
        }
        return (t, EventType.PURCHASE, user, body)

    def _visit(self, t: int, user: str, lines: list[tuple[int, str]], method: str = "credit_card") -> list[Event]:
        session = self._session()
        return [self._login(t, user, session), self._purchase(t + 1, user, session, lines, method)]

    def _active_on_the_day(self, user: str) -> Event:
        return self._login(self.day_start_ms + 12 * 3_600_000, user, self._session())

    # -- the edges ---------------------------------------------------------------------------------------------

    def fixed_events(self) -> list[Event]:
        """Every scripted event but the tie's completion, in no particular order."""
        reach = self.day_index  # how many days before the day the scenario starts
        out: list[Event] = []
        for k in (k for k in RECENCY_DAYS if k <= reach):
            user = f"edge-recency-{k}"
            out += self._visit(self._at(k, 9 * 3_600_000), user, [(1, "1.00")])
            out.append(self._active_on_the_day(user))
        for n in FREQUENCY_ORDERS:
            user = f"edge-orders-{n}"
            back = min(FREQUENCY_DAYS_BEFORE, reach)
            for i in range(n):
                out += self._visit(self._at(back, 10 * 3_600_000 + i * 1000), user, [(1, "1.00")])
            out.append(self._active_on_the_day(user))
        for amount in LTV_AMOUNTS:
            user = f"edge-ltv-{amount}"
            out += self._visit(self._at(min(LTV_DAYS_BEFORE, reach), 11 * 3_600_000), user, [(1, amount)])
            out.append(self._active_on_the_day(user))
        for name, days_before in SEGMENT_ORDERS.items():
            user = f"edge-segment-{name}"
            for i, k in enumerate(d for d in days_before if d <= reach):
                out += self._visit(self._at(k, 13 * 3_600_000 + i * 1000), user, [(1, "2.00")])
            out.append(self._active_on_the_day(user))
        out.append(self._active_on_the_day("edge-segment-prospect"))
        # The same product on two lines of one order (and a second product after them).
        out += self._visit(self._at(0, 14 * 3_600_000), "edge-lines", [(1, "3.00"), (2, "3.00"), (1, "4.00")])
        out += self._product_versions()
        # The first millisecond of the next day: one purchase with the later tied method.
        session = self._session()
        out.append(self._login(self.day_end_ms, "edge-midnight", session))
        out.append(self._purchase(self.day_end_ms, "edge-midnight", session, [(1, "5.00")], TIED_METHODS[1]))
        return out

    def _product_update(self, t: int, **fields: Any) -> Event:
        body = self.envelope(EventType.PRODUCT_UPDATE)
        update_type = "price_change" if "new_price" in fields else "inventory_update"
        if "rating" in fields:
            update_type = "rating_update"
        body |= {"product_id": EDGE_PRODUCT, "update_type": update_type, **fields}
        return (t, EventType.PRODUCT_UPDATE, EDGE_PRODUCT, body)

    def _product_view(self, t: int) -> list[Event]:
        user, session = "edge-product-viewer", self._session()
        body = self.envelope(EventType.PAGE_VIEW)
        body |= {"user_id": user, "session_id": session, "page_type": "product", "product_id": EDGE_PRODUCT,
                 "device_type": "desktop"}  # fmt: skip
        return [self._login(t, user, session), (t, EventType.PAGE_VIEW, user, body)]

    def _product_versions(self) -> list[Event]:
        noon = self.day_start_ms + 12 * 3_600_000
        return [
            self._product_update(self.day_start_ms + 8 * 3_600_000, new_price="10.00"),
            self._product_update(self.day_start_ms + 8 * 3_600_000, rating="4.50"),  # the same instant
            self._product_update(noon, stock_level=0),
            *self._product_view(noon - 1),
            *self._product_view(noon),
            self._product_update(self.day_end_ms - 1, new_price="12.00"),
            self._product_update(self.day_end_ms, new_price="15.00"),
        ]

    @property
    def tie_ms(self) -> int:
        """23:59:59.999 of the day: when the tie is completed, after every other event of the day."""
        return self.day_end_ms - 1

    def tie_events(self, methods_of_the_day: Counter[str]) -> list[Event]:
        """Purchases at :attr:`tie_ms` that bring both tied methods one above the day's most used one."""
        target = max(methods_of_the_day.values(), default=0) + 1
        out: list[Event] = []
        for method in TIED_METHODS:
            for _ in range(target - methods_of_the_day[method]):
                session = self._session()
                event = self._purchase(self.tie_ms, "edge-tie", session, [(1, "6.00")], method)
                out.append(event)
                if method == TIED_METHODS[0]:
                    self.conflicting.add(event[3]["event_id"])
        return out


def conflicting_copy(event_type: EventType, body: dict[str, Any]) -> dict[str, Any]:
    """A still valid payload for the same event id that differs from ``body`` in a field gold reads."""
    other = copy.deepcopy(body)
    if event_type is EventType.PURCHASE:  # the other tied method for a tie's purchase, paypal otherwise
        tied = TIED_METHODS
        other["payment_method"] = tied[1] if body["payment_method"] != tied[1] else tied[0]
    elif event_type is EventType.ADD_TO_CART:
        other["quantity"] = body["quantity"] + 1
        other["total_value"] = format_decimal(Decimal(body["price"]) * other["quantity"])
    elif event_type is EventType.PAGE_VIEW:
        other["product_id"] = None
        other["page_type"] = "home"
    elif event_type is EventType.USER_SESSION:
        other["device_type"] = "tablet" if body["device_type"] != "tablet" else "mobile"
    else:
        other["metadata"] = {"redelivered": "with another payload"}
    return other
