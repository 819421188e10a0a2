"""The emulator's state: stored objects, links between them, events and the emulated clock.

``EngineCore`` is the base every resource family (customers and catalog, payment methods,
payment and setup intents, invoices, subscriptions, events) builds on. It owns the object
store, event emission, list pagination and ``expand[]`` rendering; the families add the
``op_*`` handlers named by ``operations.OPERATIONS``. All calls happen under ``lock``.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from . import objects
from .errors import invalid, missing
from .params import Params, StripeObject, parse_int

T = TypeVar("T")

_CREATED_BOUNDS: tuple[tuple[str, Callable[[int, int], bool]], ...] = (
    ("gt", int.__gt__),
    ("gte", int.__ge__),
    ("lt", int.__lt__),
    ("lte", int.__le__),
)


@dataclass
class EventRecord:
    id: str
    type: str
    created: int
    object_id: str | None
    payload: str  # the event as JSON, a snapshot taken when it was emitted
    request_id: str | None
    deliveries: list[Any] = field(default_factory=list)  # webhooks.Delivery, one per endpoint

    def delivered(self) -> bool:
        return all(d.status == "succeeded" for d in self.deliveries if not d.duplicate)

    def pending(self) -> int:
        return sum(1 for d in self.deliveries if d.status != "succeeded" and not d.duplicate)


def parse_limit(params: Params) -> int:
    limit = parse_int(params.get("limit", 10), "limit")
    if not 1 <= limit <= 100:
        raise invalid(
            "Invalid limit: must be between 1 and 100",
            "limit",
            "parameter_invalid_integer",
            store=False,
        )
    return limit


def filter_created(items: list[T], created: Any, created_of: Callable[[T], int]) -> list[T]:
    """Apply ``created`` (an exact timestamp or ``{gt,gte,lt,lte}`` bounds) to ``items``."""
    if isinstance(created, dict):
        for name, compare in _CREATED_BOUNDS:
            if name in created:
                bound = parse_int(created[name], f"created[{name}]")
                items = [item for item in items if compare(created_of(item), bound)]
    elif created not in (None, ""):
        exact = parse_int(created, "created")
        items = [item for item in items if created_of(item) == exact]
    return items


def paginate(
    items: list[T], params: Params, limit: int, kind: str, id_of: Callable[[T], str]
) -> tuple[list[T], bool]:
    """Stripe's cursor pagination over ``items`` (newest first) → (page, has_more)."""

    def position(cursor: str, param: str) -> int:
        index = next((i for i, item in enumerate(items) if id_of(item) == cursor), None)
        if index is None:
            raise missing(kind, cursor, param)
        return index

    after, before = params.get("starting_after"), params.get("ending_before")
    if after:
        items = items[position(after, "starting_after") + 1 :]
        return items[:limit], len(items) > limit
    if before:
        items = items[: position(before, "ending_before")]
        return items[-limit:], len(items) > limit
    return items[:limit], len(items) > limit


class EngineCore:
    # (object type, field) pairs Stripe returns only when expanded; computed on demand
    INCLUDABLE_FIELDS: frozenset[tuple[str, str]] = frozenset()

    def __init__(
        self,
        max_events: int = 100_000,
        on_event: Callable[[EventRecord], int] | None = None,
    ) -> None:
        self.lock = threading.RLock()
        self.max_events = max_events
        # on_event schedules delivery; it returns the number of endpoints the event goes to
        self.on_event: Callable[[EventRecord], int] = on_event or (lambda record: 0)
        self.base_url = "http://127.0.0.1:12111"
        # the request being served, copied into the events it causes
        self.request_id: str | None = None
        self.idempotency_key: str | None = None
        self.reset()

    # ----------------------------------------------------------------- state and clock
    def reset(self) -> None:
        self.objects: dict[str, StripeObject] = {}
        self.objects_by_type: dict[str, dict[str, StripeObject]] = {}
        self.events: OrderedDict[str, EventRecord] = OrderedDict()
        self.clock_offset = 0.0
        # links between objects that Stripe keeps but does not show on them
        self.card_scenarios: dict[str, str] = {}  # payment method id -> test card scenario
        self.confirmation_token_payment_methods: dict[str, str] = {}
        self.invoice_of_payment_intent: dict[str, str] = {}
        self.payment_intent_of_invoice: dict[str, str] = {}
        self.invoice_payment_ids: dict[str, list[str]] = {}  # invoice id -> invoice_payment ids
        self.subscription_of_setup_intent: dict[str, str] = {}
        self.billing_schedules: dict[str, dict[str, Any]] = {}  # subscription id -> schedule
        self.portal_session_of_token: dict[str, str] = {}

    def now(self) -> int:
        return int(time.time() + self.clock_offset)

    def advance_clock(self, seconds: float) -> dict[str, Any]:
        if seconds < 0:
            raise invalid("seconds must be >= 0", "seconds")
        self.clock_offset += seconds
        events_before = len(self.events)
        self.run_due()
        return {
            "now": self.now(),
            "offset": self.clock_offset,
            "events_emitted": len(self.events) - events_before,
        }

    def run_due(self) -> None:
        """Do what Stripe would have done by ``now()``; the subscription lifecycle adds to it."""

    # ----------------------------------------------------------------- object store
    def _save(self, obj: StripeObject) -> StripeObject:
        self.objects[obj["id"]] = obj
        self.objects_by_type.setdefault(obj["object"], {})[obj["id"]] = obj
        return obj

    def _require(
        self, kind: str, obj_id: str | None, label: str, param: str = "id"
    ) -> StripeObject:
        """The stored ``kind`` object ``obj_id``, or Stripe's 404 naming ``label``/``param``."""
        obj = self.objects.get(obj_id or "")
        if obj is None or obj["object"] != kind:
            raise missing(label, obj_id or "", param)
        return obj

    def _newest_first(self, kind: str) -> list[StripeObject]:
        return list(reversed(self.objects_by_type.get(kind, {}).values()))

    # ----------------------------------------------------------------- events
    def emit(
        self, event_type: str, obj: StripeObject, previous: dict[str, Any] | None = None
    ) -> None:
        event_id = objects.new_id("evt")
        event = objects.event(
            event_id,
            self.now(),
            event_type,
            obj,
            previous,
            self.request_id,
            self.idempotency_key,
            0,
        )
        record = EventRecord(
            event_id, event_type, event["created"], obj.get("id"), "", self.request_id
        )
        self.events[event_id] = record
        while len(self.events) > self.max_events:
            self.events.popitem(last=False)
        event["pending_webhooks"] = self.on_event(record)
        record.payload = json.dumps(event)

    def event_dict(self, record: EventRecord) -> dict[str, Any]:
        event: dict[str, Any] = json.loads(record.payload)
        event["pending_webhooks"] = record.pending()
        return event

    # ----------------------------------------------------------------- lists
    def _list(
        self,
        kind: str,
        params: Params,
        url: str,
        predicate: Callable[[StripeObject], bool] | None = None,
    ) -> dict[str, Any]:
        limit = parse_limit(params)
        items = filter_created(
            self._newest_first(kind), params.get("created"), lambda obj: obj["created"]
        )
        if predicate is not None:
            items = [obj for obj in items if predicate(obj)]
        page, has_more = paginate(items, params, limit, kind, lambda obj: obj["id"])
        return {"object": "list", "data": page, "has_more": has_more, "url": url}

    # ----------------------------------------------------------------- expand[]
    def expand(self, obj: StripeObject, paths: Any) -> StripeObject:
        if not paths:
            return obj
        if isinstance(paths, str):
            paths = [paths]
        if isinstance(paths, dict):
            paths = list(paths.values())
        for path in paths:
            obj = self._expand(obj, str(path).split("."), str(path))
        return obj

    def _expand(self, obj: Any, segments: list[str], full_path: str) -> Any:
        if not isinstance(obj, dict):
            return obj
        key, rest = segments[0], segments[1:]
        if obj.get("object") in ("list", "search_result") and key == "data":
            expanded_list = dict(obj)
            expanded_list["data"] = [
                self._expand(item, rest, full_path) if rest else item for item in obj["data"]
            ]
            return expanded_list
        if (obj.get("object"), key) in self.INCLUDABLE_FIELDS:
            value = self._include_field(obj, key)
        elif key in obj:
            value = obj[key]
        else:
            raise invalid(f"This property cannot be expanded ({full_path}).", "expand", store=False)
        if isinstance(value, str):
            target = self.objects.get(value)
            if target is not None:
                value = target
            elif value in self.events:
                value = self.event_dict(self.events[value])
        if rest and isinstance(value, dict):
            value = self._expand(value, rest, full_path)
        expanded = dict(obj)
        expanded[key] = value
        return expanded

    def _include_field(self, obj: StripeObject, key: str) -> Any:
        """The value of an ``INCLUDABLE_FIELDS`` entry; families that declare one compute it."""
        raise invalid(f"This property cannot be expanded ({key}).", "expand", store=False)
