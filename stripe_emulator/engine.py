"""The stateful core: objects, state machines, events and the emulated clock.

Every public ``op_*`` method implements one entry of ``operations.OPERATIONS``; it gets the
object id from the path (or None) and the decoded params, mutates state, emits events, and
returns the stored object (the server renders ``expand[]``) or raises ``StripeError``.
All calls happen under ``Engine.lock``.
"""

from __future__ import annotations

import calendar
import datetime as dt
import json
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import objects as O
from .errors import StripeError, invalid, missing

DAY = 86400

# scenario -> (code, decline_code, message); None = succeeds; "3ds" = requires authentication
_DECLINES = {
    "decline": ("card_declined", "generic_decline", "Your card was declined."),
    "insufficient": ("card_declined", "insufficient_funds", "Your card has insufficient funds."),
    "expired": ("expired_card", "expired_card", "Your card has expired."),
    "cvc": ("incorrect_cvc", "incorrect_cvc", "Your card's security code is incorrect."),
    "processing": (
        "processing_error",
        "processing_error",
        "An error occurred while processing your card. Try again in a little bit.",
    ),
}
_AUTH_REQUIRED = (
    "authentication_required",
    "authentication_required",
    "Your card was declined. This transaction requires authentication.",
)

# Stripe's documented test PaymentMethod ids -> (card number, scenario)
MAGIC_PAYMENT_METHODS = {
    "pm_card_visa": ("4242424242424242", "success"),
    "pm_card_mastercard": ("5555555555554444", "success"),
    "pm_card_amex": ("378282246310005", "success"),
    "pm_card_visa_chargeDeclined": ("4000000000000002", "decline"),
    "pm_card_visa_chargeDeclinedInsufficientFunds": ("4000000000009995", "insufficient"),
    "pm_card_chargeDeclinedExpiredCard": ("4000000000000069", "expired"),
    "pm_card_chargeDeclinedIncorrectCvc": ("4000000000000127", "cvc"),
    "pm_card_chargeDeclinedProcessingError": ("4000000000000119", "processing"),
    "pm_card_threeDSecure2Required": ("4000000000003220", "3ds"),
    "pm_card_authenticationRequired": ("4000002760003184", "3ds"),
    "pm_card_authenticationRequiredOnSetup": ("4000002500003155", "3ds"),
}
CARD_NUMBERS = {num: scen for num, scen in MAGIC_PAYMENT_METHODS.values()}
CARD_NUMBERS["4000056655665556"] = "success"  # visa debit
CARD_NUMBERS["5555555555554444"] = "success"

_TERMINAL_SUB = ("canceled", "incomplete_expired")


def add_interval(ts: int, interval: str, count: int) -> int:
    if interval == "day":
        return ts + count * DAY
    if interval == "week":
        return ts + count * 7 * DAY
    months = count * (12 if interval == "year" else 1)
    d = dt.datetime.fromtimestamp(ts, dt.UTC)
    m = d.month - 1 + months
    year, month = d.year + m // 12, m % 12 + 1
    day = min(d.day, calendar.monthrange(year, month)[1])
    return int(d.replace(year=year, month=month, day=day).timestamp())


def _bool(value: Any, param: str) -> bool:
    if value in (True, "true"):
        return True
    if value in (False, "false", ""):
        return False
    raise invalid(f"Invalid boolean: {value}", param, "parameter_invalid_boolean", store=False)


def _int(value: Any, param: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise invalid(
            f"Invalid integer: {value}", param, "parameter_invalid_integer", store=False
        ) from None


def _snapshot(obj: Any) -> Any:
    return json.loads(json.dumps(obj))


@dataclass
class EventRecord:
    id: str
    type: str
    created: int
    object_id: str | None
    payload: str  # the event as JSON, a snapshot taken when it was emitted
    request_id: str | None
    deliveries: list = field(default_factory=list)

    def delivered(self) -> bool:
        return all(d.status == "succeeded" for d in self.deliveries if not d.duplicate)

    def pending(self) -> int:
        return sum(1 for d in self.deliveries if d.status != "succeeded" and not d.duplicate)


class Engine:
    def __init__(
        self,
        max_events: int = 100_000,
        on_event: Callable[[EventRecord], int] | None = None,
    ) -> None:
        self.lock = threading.RLock()
        self.max_events = max_events
        # on_event schedules delivery; it returns the number of endpoints the event goes to
        self.on_event = on_event or (lambda rec: 0)
        self.base_url = "http://127.0.0.1:12111"
        self.request_id: str | None = None
        self.idempotency_key: str | None = None
        self.reset()

    # ----------------------------------------------------------------- state and clock
    def reset(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.by_type: dict[str, dict[str, dict[str, Any]]] = {}
        self.events: OrderedDict[str, EventRecord] = OrderedDict()
        self.clock_offset = 0.0
        self.pm_scenario: dict[str, str] = {}
        self.ctoken_pm: dict[str, str] = {}
        self.pi_invoice: dict[str, str] = {}
        self.invoice_pi: dict[str, str] = {}
        self.invoice_payment_ids: dict[str, list[str]] = {}
        self.si_subscription: dict[str, str] = {}
        self.sub_state: dict[str, dict[str, Any]] = {}
        self.portal_tokens: dict[str, str] = {}

    def now(self) -> int:
        return int(time.time() + self.clock_offset)

    def advance_clock(self, seconds: float) -> dict[str, Any]:
        if seconds < 0:
            raise invalid("seconds must be >= 0", "seconds")
        self.clock_offset += seconds
        n_before = len(self.events)
        self.run_due()
        return {
            "now": self.now(),
            "offset": self.clock_offset,
            "events_emitted": len(self.events) - n_before,
        }

    def _store(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.objects[obj["id"]] = obj
        self.by_type.setdefault(obj["object"], {})[obj["id"]] = obj
        return obj

    def _get(self, kind: str, obj_id: str | None, label: str, param: str = "id") -> dict:
        obj = self.objects.get(obj_id or "")
        if obj is None or obj["object"] != kind:
            raise missing(label, obj_id or "", param)
        return obj

    # ----------------------------------------------------------------- events
    def emit(self, etype: str, obj: dict[str, Any], previous: dict | None = None) -> None:
        evid = O.new_id("evt")
        ev = O.event(
            evid, self.now(), etype, obj, previous, self.request_id, self.idempotency_key, 0
        )
        rec = EventRecord(evid, etype, ev["created"], obj.get("id"), "", self.request_id)
        self.events[evid] = rec
        while len(self.events) > self.max_events:
            self.events.popitem(last=False)
        ev["pending_webhooks"] = self.on_event(rec)
        rec.payload = json.dumps(ev)

    def event_dict(self, rec: EventRecord) -> dict[str, Any]:
        ev = json.loads(rec.payload)
        ev["pending_webhooks"] = rec.pending()
        return ev

    # ----------------------------------------------------------------- rendering helpers
    # fields Stripe returns only when expanded (not ids: computed on demand)
    _INCLUDABLE = frozenset({("invoice", "confirmation_secret"), ("invoice", "payments")})

    def expand(self, obj: dict[str, Any], paths: Any) -> dict[str, Any]:
        if not paths:
            return obj
        if isinstance(paths, str):
            paths = [paths]
        if isinstance(paths, dict):
            paths = list(paths.values())
        for path in paths:
            obj = self._expand(obj, str(path).split("."), str(path))
        return obj

    def _expand(self, obj: Any, segs: list[str], full: str) -> Any:
        if not isinstance(obj, dict):
            return obj
        key, rest = segs[0], segs[1:]
        if obj.get("object") in ("list", "search_result") and key == "data":
            new = dict(obj)
            new["data"] = [self._expand(x, rest, full) if rest else x for x in obj["data"]]
            return new
        kind = obj.get("object")
        if (kind, key) in self._INCLUDABLE:
            val = self._include(obj, key)
        elif key in obj:
            val = obj[key]
        else:
            raise invalid(f"This property cannot be expanded ({full}).", "expand", store=False)
        if isinstance(val, str):
            target = self.objects.get(val)
            if target is not None:
                val = target
            elif val in self.events:
                val = self.event_dict(self.events[val])
        if rest and isinstance(val, dict):
            val = self._expand(val, rest, full)
        new = dict(obj)
        new[key] = val
        return new

    def _include(self, obj: dict[str, Any], key: str) -> Any:
        if key == "confirmation_secret":
            pi = self.objects.get(self.invoice_pi.get(obj["id"], ""))
            if pi is None or obj["status"] in ("paid", "void", "draft"):
                return None
            return {"client_secret": pi["client_secret"], "type": "payment_intent"}
        ids = self.invoice_payment_ids.get(obj["id"], [])
        data = [self.objects[i] for i in reversed(ids)]
        return {
            "object": "list",
            "data": data,
            "has_more": False,
            "url": f"/v1/invoices/{obj['id']}/payments",
        }

    def _list(
        self,
        kind: str,
        params: dict[str, Any],
        url: str,
        pred: Callable[[dict], bool] | None = None,
    ) -> dict[str, Any]:
        limit = _int(params.get("limit", 10), "limit")
        if not 1 <= limit <= 100:
            raise invalid(
                "Invalid limit: must be between 1 and 100",
                "limit",
                "parameter_invalid_integer",
                store=False,
            )
        items = list(reversed(self.by_type.get(kind, {}).values()))
        created = params.get("created")
        if isinstance(created, dict):
            for opname, fn in (
                ("gt", int.__gt__),
                ("gte", int.__ge__),
                ("lt", int.__lt__),
                ("lte", int.__le__),
            ):
                if opname in created:
                    bound = _int(created[opname], f"created[{opname}]")
                    items = [o for o in items if fn(o["created"], bound)]
        elif created not in (None, ""):
            c = _int(created, "created")
            items = [o for o in items if o["created"] == c]
        if pred is not None:
            items = [o for o in items if pred(o)]
        after, before = params.get("starting_after"), params.get("ending_before")
        if after:
            idx = next((i for i, o in enumerate(items) if o["id"] == after), None)
            if idx is None:
                raise missing(kind, after, "starting_after")
            items = items[idx + 1 :]
            page, more = items[:limit], len(items) > limit
        elif before:
            idx = next((i for i, o in enumerate(items) if o["id"] == before), None)
            if idx is None:
                raise missing(kind, before, "ending_before")
            items = items[:idx]
            page, more = items[-limit:], len(items) > limit
        else:
            page, more = items[:limit], len(items) > limit
        return {"object": "list", "data": page, "has_more": more, "url": url}

    @staticmethod
    def _metadata(obj: dict[str, Any], md: Any) -> None:
        if md is None:
            return
        if md == "":
            obj["metadata"] = {}
            return
        if not isinstance(md, dict):
            raise invalid("Invalid metadata: must be an object", "metadata", store=False)
        new = dict(obj["metadata"])
        for k, v in md.items():
            if len(str(k)) > 40:
                raise invalid(
                    "Metadata keys can have up to 40 characters", f"metadata[{k}]", store=False
                )
            if v == "":
                new.pop(k, None)
            else:
                if len(str(v)) > 500:
                    raise invalid(
                        "Metadata values can have up to 500 characters",
                        f"metadata[{k}]",
                        store=False,
                    )
                new[k] = str(v)
        if len(new) > 50:
            raise invalid("Metadata can have up to 50 keys", "metadata", store=False)
        obj["metadata"] = new

    # ----------------------------------------------------------------- customers
    def op_customers_create(self, _id, p):
        cus = O.customer(O.new_id("cus", 14), self.now(), p)
        self._metadata(cus, p.get("metadata"))
        self._store(cus)
        if p.get("payment_method"):
            pm = self._resolve_pm(p["payment_method"], "payment_method")
            self._attach(pm, cus["id"], emit=False)
        dpm = (p.get("invoice_settings") or {}).get("default_payment_method")
        if dpm:
            pm = self._resolve_pm(dpm, "invoice_settings[default_payment_method]")
            self._attach(pm, cus["id"], emit=False)
            cus["invoice_settings"]["default_payment_method"] = pm["id"]
        self.emit("customer.created", cus)
        return cus

    def op_customers_retrieve(self, cid, p):
        return self._get("customer", cid, "customer")

    def op_customers_update(self, cid, p):
        cus = self._get("customer", cid, "customer")
        prev: dict[str, Any] = {}
        for key in (
            "email",
            "name",
            "description",
            "phone",
            "shipping",
            "tax_exempt",
            "invoice_prefix",
        ):
            if key in p:
                new = p[key] or None
                if key == "tax_exempt":
                    new = new or "none"
                if cus[key] != new:
                    prev[key] = cus[key]
                    cus[key] = new
        if "address" in p:
            prev["address"] = cus["address"]
            cus["address"] = O._address(p["address"]) if p["address"] else None
        if "balance" in p:
            prev["balance"] = cus["balance"]
            cus["balance"] = _int(p["balance"], "balance")
        if "preferred_locales" in p:
            prev["preferred_locales"] = cus["preferred_locales"]
            cus["preferred_locales"] = list(p["preferred_locales"] or [])
        if "next_invoice_sequence" in p:
            cus["next_invoice_sequence"] = _int(p["next_invoice_sequence"], "next_invoice_sequence")
        inv = p.get("invoice_settings")
        if isinstance(inv, dict) and "default_payment_method" in inv:
            old = dict(cus["invoice_settings"])
            dpm = inv["default_payment_method"]
            if dpm:
                pm = self._resolve_pm(dpm, "invoice_settings[default_payment_method]")
                self._attach(pm, cus["id"])
                dpm = pm["id"]
            cus["invoice_settings"]["default_payment_method"] = dpm or None
            prev["invoice_settings"] = old
        if "metadata" in p:
            old_md = cus["metadata"]
            self._metadata(cus, p["metadata"])
            if old_md != cus["metadata"]:
                prev["metadata"] = old_md
        if prev:
            self.emit("customer.updated", cus, prev)
        return cus

    def op_customers_list(self, _id, p):
        email = p.get("email")
        return self._list(
            "customer", p, "/v1/customers", (lambda c: c["email"] == email) if email else None
        )

    _SEARCH_TERM = re.compile(
        r"\s*(-?)([a-z_]+)(?:\['([^']+)'\]|\[\"([^\"]+)\"\])?\s*(:|~)\s*(?:'([^']*)'|\"([^\"]*)\")\s*"
    )

    def op_customers_search(self, _id, p):
        query = str(p.get("query") or "")
        parts = re.split(r"\s+(AND|OR)\s+", query.strip())
        terms, joins = parts[0::2], set(parts[1::2])
        if len(joins) > 1:
            raise invalid("Mixing AND and OR is not supported", "query", store=False)
        matchers = []
        for term in terms:
            m = self._SEARCH_TERM.fullmatch(term)
            if not m:
                raise invalid(
                    f"Invalid search query: {query}",
                    "query",
                    "parameter_invalid_string",
                    store=False,
                )
            neg, fld, k1, k2, op, v1, v2 = m.groups()
            matchers.append((bool(neg), fld, k1 or k2, op, v1 if v1 is not None else v2))

        def one(c, neg, fld, key, op, val):
            if fld == "metadata":
                actual = c["metadata"].get(key or "")
            elif fld in ("email", "name", "phone", "description", "id"):
                actual = c.get(fld)
            else:
                raise invalid(f"Field '{fld}' is an unsupported search field", "query", store=False)
            if op == "~":
                hit = actual is not None and val.lower() in str(actual).lower()
            else:
                hit = actual is not None and str(actual).lower() == val.lower()
            return hit != neg

        use_or = "OR" in joins
        hits = []
        for c in reversed(self.by_type.get("customer", {}).values()):
            results = [one(c, *mt) for mt in matchers]
            if any(results) if use_or else all(results):
                hits.append(c)
        limit = _int(p.get("limit", 10), "limit")
        offset = _int(p["page"], "page") if p.get("page") else 0
        page = hits[offset : offset + limit]
        more = len(hits) > offset + limit
        return {
            "object": "search_result",
            "data": page,
            "has_more": more,
            "next_page": str(offset + limit) if more else None,
            "url": "/v1/customers/search",
        }

    # ----------------------------------------------------------------- products and prices
    def op_products_create(self, _id, p):
        pid = p.get("id") or O.new_id("prod", 14)
        if pid in self.objects:
            raise invalid(f"Product already exists: {pid}", "id", "resource_already_exists")
        prod = O.product(pid, self.now(), p)
        prod["active"] = _bool(p.get("active", True), "active")
        if "shippable" in p:
            prod["shippable"] = _bool(p["shippable"], "shippable")
        self._metadata(prod, p.get("metadata"))
        self._store(prod)
        self.emit("product.created", prod)
        return prod

    def op_products_retrieve(self, pid, p):
        return self._get("product", pid, "product")

    def op_products_update(self, pid, p):
        prod = self._get("product", pid, "product")
        prev: dict[str, Any] = {}
        for key in (
            "name",
            "description",
            "url",
            "unit_label",
            "statement_descriptor",
            "tax_code",
            "images",
            "default_price",
        ):
            if key in p:
                prev[key] = prod[key]
                prod[key] = p[key] or ([] if key == "images" else None)
        for key in ("active", "shippable"):
            if key in p:
                prev[key] = prod[key]
                prod[key] = _bool(p[key], key)
        if "metadata" in p:
            prev["metadata"] = prod["metadata"]
            self._metadata(prod, p["metadata"])
        prod["updated"] = self.now()
        self.emit("product.updated", prod, prev)
        return prod

    def op_products_list(self, _id, p):
        active = _bool(p["active"], "active") if "active" in p else None
        ids = set(p["ids"]) if isinstance(p.get("ids"), list) else None
        return self._list(
            "product",
            p,
            "/v1/products",
            lambda o: (active is None or o["active"] == active) and (ids is None or o["id"] in ids),
        )

    def op_prices_create(self, _id, p):
        if "product" in p:
            prod = self._get("product", p["product"], "product", "product")
        elif isinstance(p.get("product_data"), dict):
            pd = dict(p["product_data"])
            pd.setdefault("name", "")
            if not pd["name"]:
                raise invalid(
                    "Missing required param: product_data[name].",
                    "product_data[name]",
                    "parameter_missing",
                    store=False,
                )
            prod = self.op_products_create(
                None,
                {
                    k: v
                    for k, v in pd.items()
                    if k
                    in (
                        "name",
                        "active",
                        "metadata",
                        "id",
                        "unit_label",
                        "statement_descriptor",
                        "tax_code",
                    )
                },
            )
        else:
            raise invalid(
                "Missing required param: product.", "product", "parameter_missing", store=False
            )
        if "unit_amount" not in p and "unit_amount_decimal" not in p:
            raise invalid(
                "Missing required param: unit_amount.",
                "unit_amount",
                "parameter_missing",
                store=False,
            )
        if "unit_amount" in p:
            amount = _int(p["unit_amount"], "unit_amount")
            if amount < 0:
                raise invalid("Invalid unit_amount", "unit_amount", store=False)
        rec = p.get("recurring")
        if rec is not None and (
            not isinstance(rec, dict)
            or rec.get("interval")
            not in (
                "day",
                "week",
                "month",
                "year",
            )
        ):
            raise invalid("Invalid recurring[interval]", "recurring[interval]", store=False)
        pr = O.price(O.new_id("price"), self.now(), p, prod["id"])
        pr["active"] = _bool(p.get("active", True), "active")
        self._metadata(pr, p.get("metadata"))
        self._store(pr)
        if prod["default_price"] is None:
            prod["default_price"] = pr["id"]
        self.emit("price.created", pr)
        return pr

    def op_prices_retrieve(self, pid, p):
        return self._get("price", pid, "price")

    def op_prices_update(self, pid, p):
        pr = self._get("price", pid, "price")
        prev: dict[str, Any] = {}
        for key in ("nickname", "lookup_key", "tax_behavior"):
            if key in p:
                prev[key] = pr[key]
                pr[key] = p[key] or None
        if "active" in p:
            prev["active"] = pr["active"]
            pr["active"] = _bool(p["active"], "active")
        if "metadata" in p:
            prev["metadata"] = pr["metadata"]
            self._metadata(pr, p["metadata"])
        self.emit("price.updated", pr, prev)
        return pr

    def op_prices_list(self, _id, p):
        active = _bool(p["active"], "active") if "active" in p else None
        product, ptype, cur = p.get("product"), p.get("type"), p.get("currency")
        keys = set(p["lookup_keys"]) if isinstance(p.get("lookup_keys"), list) else None
        return self._list(
            "price",
            p,
            "/v1/prices",
            lambda o: (
                (active is None or o["active"] == active)
                and (not product or o["product"] == product)
                and (not ptype or o["type"] == ptype)
                and (not cur or o["currency"] == cur.lower())
                and (keys is None or o["lookup_key"] in keys)
            ),
        )

    # ----------------------------------------------------------------- payment methods
    def _new_pm(self, number: str, scenario: str, billing: Any = None) -> dict[str, Any]:
        pm = O.payment_method(O.new_id("pm"), self.now(), number, billing)
        self.pm_scenario[pm["id"]] = scenario
        return self._store(pm)

    def _resolve_pm(self, value: Any, param: str) -> dict[str, Any]:
        value = str(value)
        obj = self.objects.get(value)
        if obj is not None and obj["object"] == "payment_method":
            return obj
        magic = MAGIC_PAYMENT_METHODS.get(value)
        if magic is not None:
            return self._new_pm(*magic)
        raise missing("PaymentMethod", value, param)

    def _attach(self, pm: dict[str, Any], customer_id: str, emit: bool = True) -> None:
        if pm["customer"] == customer_id:
            return
        if pm["customer"] is not None:
            raise invalid(
                "The payment method you provided has already been attached to a customer.",
                "payment_method",
                "payment_method_unexpected_state",
            )
        pm["customer"] = customer_id
        if emit:
            self.emit("payment_method.attached", pm)

    def op_payment_methods_create(self, _id, p):
        if p.get("type") != "card":
            raise invalid(
                "The emulator supports only type=card PaymentMethods.",
                "type",
                "parameter_invalid_string" if p.get("type") else "parameter_missing",
                store=False,
            )
        card = p.get("card")
        if not isinstance(card, dict) or not (card.get("number") or card.get("token")):
            raise invalid(
                "Missing required param: card[number].",
                "card[number]",
                "parameter_missing",
                store=False,
            )
        number = re.sub(r"\D", "", str(card.get("number") or "4242424242424242"))
        if card.get("token"):
            tok = str(card["token"]).replace("tok_", "pm_card_")
            if tok not in MAGIC_PAYMENT_METHODS:
                raise missing("token", str(card["token"]), "card[token]")
            number = MAGIC_PAYMENT_METHODS[tok][0]
        if len(number) < 12:
            raise StripeError(
                402,
                "card_error",
                "Your card number is incorrect.",
                code="incorrect_number",
                param="card[number]",
            )
        pm = self._new_pm(number, CARD_NUMBERS.get(number, "success"), p.get("billing_details"))
        if "exp_month" in card:
            pm["card"]["exp_month"] = _int(card["exp_month"], "card[exp_month]")
        if "exp_year" in card:
            pm["card"]["exp_year"] = _int(card["exp_year"], "card[exp_year]")
        if p.get("allow_redisplay"):
            pm["allow_redisplay"] = p["allow_redisplay"]
        self._metadata(pm, p.get("metadata"))
        return pm

    def op_payment_methods_retrieve(self, pmid, p):
        if pmid in MAGIC_PAYMENT_METHODS:
            return self._resolve_pm(pmid, "payment_method")
        return self._get("payment_method", pmid, "PaymentMethod")

    def op_payment_methods_attach(self, pmid, p):
        pm = self._resolve_pm(pmid, "payment_method")
        self._get("customer", p["customer"], "customer", "customer")
        self._attach(pm, p["customer"])
        return pm

    # ----------------------------------------------------------------- payment intents
    def op_payment_intents_create(self, _id, p):
        amount = _int(p["amount"], "amount")
        if amount < 50 and amount != 0:
            raise invalid(
                "Amount must be at least $0.50 usd", "amount", "amount_too_small", store=False
            )
        if p.get("capture_method") == "manual":
            raise invalid(
                "capture_method=manual is not supported by the emulator.",
                "capture_method",
                store=False,
            )
        if p.get("customer"):
            self._get("customer", p["customer"], "customer", "customer")
        pi = O.payment_intent(O.new_id("pi"), self.now(), p)
        self._metadata(pi, p.get("metadata"))
        pm = None
        if p.get("payment_method"):
            pm = self._resolve_pm(p["payment_method"], "payment_method")
            pi["payment_method"] = pm["id"]
            pi["status"] = "requires_confirmation"
        self._store(pi)
        self.emit("payment_intent.created", pi)
        if _bool(p.get("confirm", False), "confirm"):
            self._confirm_pi(pi, p)
        return pi

    def op_payment_intents_retrieve(self, piid, p):
        pi = self._get("payment_intent", piid, "payment_intent")
        if p.get("client_secret") and p["client_secret"] != pi["client_secret"]:
            raise invalid(
                "The client_secret provided does not match the client_secret "
                "associated with the PaymentIntent.",
                "client_secret",
            )
        return pi

    def op_payment_intents_update(self, piid, p):
        pi = self._get("payment_intent", piid, "payment_intent")
        if pi["status"] in ("succeeded", "canceled", "processing"):
            raise invalid(
                f"This PaymentIntent's status is {pi['status']}; it cannot be updated.",
                None,
                "payment_intent_unexpected_state",
            )
        prev: dict[str, Any] = {}
        if "amount" in p:
            prev["amount"] = pi["amount"]
            pi["amount"] = _int(p["amount"], "amount")
        if "currency" in p:
            prev["currency"] = pi["currency"]
            pi["currency"] = str(p["currency"]).lower()
        if "customer" in p:
            if p["customer"]:
                self._get("customer", p["customer"], "customer", "customer")
            prev["customer"] = pi["customer"]
            pi["customer"] = p["customer"] or None
        for key in (
            "description",
            "receipt_email",
            "setup_future_usage",
            "shipping",
            "statement_descriptor",
            "statement_descriptor_suffix",
            "transfer_group",
        ):
            if key in p:
                prev[key] = pi[key]
                pi[key] = p[key] or None
        if p.get("payment_method"):
            pm = self._resolve_pm(p["payment_method"], "payment_method")
            prev["payment_method"] = pi["payment_method"]
            pi["payment_method"] = pm["id"]
            if pi["status"] == "requires_payment_method":
                prev["status"] = pi["status"]
                pi["status"] = "requires_confirmation"
        if "metadata" in p:
            prev["metadata"] = pi["metadata"]
            self._metadata(pi, p["metadata"])
        return pi

    def op_payment_intents_confirm(self, piid, p):
        pi = self._get("payment_intent", piid, "payment_intent")
        return self._confirm_pi(pi, p)

    def op_payment_intents_cancel(self, piid, p):
        pi = self._get("payment_intent", piid, "payment_intent")
        if pi["status"] in ("succeeded", "canceled", "processing"):
            raise invalid(
                "You cannot cancel this PaymentIntent because it has a status of "
                f"{pi['status']}. Only a PaymentIntent with one of the following statuses may "
                "be canceled: requires_payment_method, requires_capture, requires_confirmation, "
                "requires_action, processing.",
                None,
                "payment_intent_unexpected_state",
                extra={"payment_intent": _snapshot(pi)},
            )
        if piid in self.pi_invoice:
            raise invalid(
                "You cannot cancel this PaymentIntent because it was created by an invoice.",
                None,
                "payment_intent_unexpected_state",
            )
        pi.update(
            status="canceled",
            canceled_at=self.now(),
            next_action=None,
            cancellation_reason=p.get("cancellation_reason") or "requested_by_customer",
        )
        self.emit("payment_intent.canceled", pi)
        return pi

    def op_payment_intents_list(self, _id, p):
        cus = p.get("customer")
        return self._list(
            "payment_intent",
            p,
            "/v1/payment_intents",
            (lambda o: o["customer"] == cus) if cus else None,
        )

    def _pm_from_confirm_params(self, p: dict[str, Any]) -> dict[str, Any] | None:
        if p.get("confirmation_token"):
            ct = self._get(
                "confirmation_token",
                p["confirmation_token"],
                "ConfirmationToken",
                "confirmation_token",
            )
            return self.objects[self.ctoken_pm[ct["id"]]]
        if p.get("payment_method"):
            return self._resolve_pm(p["payment_method"], "payment_method")
        return None

    def _confirm_pi(self, pi: dict[str, Any], p: dict[str, Any]) -> dict[str, Any]:
        if pi["status"] not in (
            "requires_payment_method",
            "requires_confirmation",
            "requires_action",
        ):
            raise invalid(
                f"This PaymentIntent's status is {pi['status']}, but it must be one of "
                "requires_payment_method, requires_confirmation, requires_action to be "
                "confirmed.",
                None,
                "payment_intent_unexpected_state",
                extra={"payment_intent": _snapshot(pi)},
            )
        pm = self._pm_from_confirm_params(p)
        if p.get("confirmation_token"):
            self.objects[p["confirmation_token"]]["payment_intent"] = pi["id"]
        if pm is None and pi["payment_method"]:
            pm = self.objects[pi["payment_method"]]
        if pm is None:
            raise invalid(
                "You cannot confirm this PaymentIntent because it's missing a payment "
                "method. To confirm the PaymentIntent with "
                f"{pi['customer'] or 'a customer'}, specify a payment method attached "
                "to this customer along with the customer ID.",
                "payment_method",
                "payment_intent_unexpected_state",
            )
        for key in ("receipt_email", "setup_future_usage", "shipping"):
            if key in p:
                pi[key] = p[key] or None
        off_session = (
            _bool(p.get("off_session", False), "off_session")
            if isinstance(p.get("off_session"), (str, bool))
            else bool(p.get("off_session"))
        )
        outcome = self._attempt_payment(pi, pm, off_session)
        if outcome == "failed":
            err = pi["last_payment_error"]
            raise StripeError(
                402,
                err["type"],
                err["message"],
                code=err["code"],
                decline_code=err.get("decline_code"),
                extra={
                    "charge": err.get("charge"),
                    "payment_intent": _snapshot(pi),
                    "payment_method": err.get("payment_method"),
                },
            )
        return pi

    def _attempt_payment(self, pi: dict, pm: dict, off_session: bool) -> str:
        """Charge ``pm`` for ``pi``: returns "succeeded", "requires_action" or "failed"."""
        scenario = self.pm_scenario.get(pm["id"], "success")
        pi["payment_method"] = pm["id"]
        if scenario == "3ds":
            if not off_session:
                pi.update(
                    status="requires_action",
                    last_payment_error=None,
                    next_action=O.next_action_3ds(pi["id"], self.base_url),
                )
                self.emit("payment_intent.requires_action", pi)
                return "requires_action"
            return self._fail_payment(pi, pm, _AUTH_REQUIRED)
        failure = _DECLINES.get(scenario)
        if failure is not None:
            return self._fail_payment(pi, pm, failure)
        self._succeed_payment(pi, pm)
        return "succeeded"

    def _succeed_payment(self, pi: dict, pm: dict) -> None:
        ch = self._store(O.charge(O.new_id("ch"), self.now(), pi, pm, True, None))
        pi.update(
            status="succeeded",
            amount_received=pi["amount"],
            latest_charge=ch["id"],
            next_action=None,
            last_payment_error=None,
            payment_method=pm["id"],
        )
        self.emit("charge.succeeded", ch)
        self.emit("payment_intent.succeeded", pi)
        if pi["customer"] and pi["setup_future_usage"] and pm["customer"] is None:
            self._attach(pm, pi["customer"])
        inv_id = self.pi_invoice.get(pi["id"])
        if inv_id:
            self._invoice_paid(self.objects[inv_id], pi, pm)

    def _fail_payment(self, pi: dict, pm: dict, failure: tuple[str, str, str]) -> str:
        code, decline, message = failure
        ch = self._store(O.charge(O.new_id("ch"), self.now(), pi, pm, False, failure))
        pi.update(
            status="requires_payment_method",
            latest_charge=ch["id"],
            next_action=None,
            payment_method=None,
            last_payment_error={
                "advice_code": "try_again_later" if code == "card_declined" else None,
                "charge": ch["id"],
                "code": code,
                "decline_code": decline,
                "doc_url": "https://stripe.com/docs/error-codes/" + code.replace("_", "-"),
                "message": message,
                "network_advice_code": None,
                "network_decline_code": None,
                "param": None,
                "payment_method": _snapshot(pm),
                "type": "card_error",
            },
        )
        self.emit("charge.failed", ch)
        self.emit("payment_intent.payment_failed", pi)
        inv_id = self.pi_invoice.get(pi["id"])
        if inv_id:
            self._invoice_failed(self.objects[inv_id])
        return "failed"

    def authenticate_payment_intent(self, piid: str, outcome: str) -> dict[str, Any]:
        pi = self._get("payment_intent", piid, "payment_intent")
        if pi["status"] != "requires_action":
            raise invalid(f"PaymentIntent {piid} is {pi['status']}, not requires_action.")
        pm = self.objects[pi["payment_method"]]
        if outcome == "succeed":
            self._succeed_payment(pi, pm)
        elif outcome == "fail":
            pi.update(
                status="requires_payment_method",
                next_action=None,
                payment_method=None,
                last_payment_error={
                    "code": "payment_intent_authentication_failure",
                    "doc_url": "https://stripe.com/docs/error-codes/"
                    "payment-intent-authentication-failure",
                    "message": "We are unable to authenticate your payment method. Please "
                    "choose a different payment method and try again.",
                    "payment_method": _snapshot(pm),
                    "type": "invalid_request_error",
                },
            )
            self.emit("payment_intent.payment_failed", pi)
            inv_id = self.pi_invoice.get(pi["id"])
            if inv_id:
                self._invoice_failed(self.objects[inv_id])
        else:
            raise invalid('outcome must be "succeed" or "fail"', "outcome")
        return pi

    # ----------------------------------------------------------------- setup intents
    def op_setup_intents_create(self, _id, p):
        if p.get("customer"):
            self._get("customer", p["customer"], "customer", "customer")
        si = O.setup_intent(O.new_id("seti"), self.now(), p)
        self._metadata(si, p.get("metadata"))
        if p.get("payment_method"):
            pm = self._resolve_pm(p["payment_method"], "payment_method")
            si.update(payment_method=pm["id"], status="requires_confirmation")
        self._store(si)
        self.emit("setup_intent.created", si)
        if _bool(p.get("confirm", False), "confirm"):
            self._confirm_si(si, p)
        return si

    def op_setup_intents_retrieve(self, siid, p):
        si = self._get("setup_intent", siid, "setup_intent")
        if p.get("client_secret") and p["client_secret"] != si["client_secret"]:
            raise invalid(
                "The client_secret provided does not match the client_secret "
                "associated with the SetupIntent.",
                "client_secret",
            )
        return si

    def op_setup_intents_confirm(self, siid, p):
        return self._confirm_si(self._get("setup_intent", siid, "setup_intent"), p)

    def _confirm_si(self, si: dict, p: dict) -> dict:
        if si["status"] not in (
            "requires_payment_method",
            "requires_confirmation",
            "requires_action",
        ):
            raise invalid(
                f"This SetupIntent's status is {si['status']}; it cannot be confirmed.",
                None,
                "setup_intent_unexpected_state",
            )
        pm = self._pm_from_confirm_params(p)
        if p.get("confirmation_token"):
            self.objects[p["confirmation_token"]]["setup_intent"] = si["id"]
        if pm is None and si["payment_method"]:
            pm = self.objects[si["payment_method"]]
        if pm is None:
            raise invalid(
                "You cannot confirm this SetupIntent because it's missing a payment method.",
                "payment_method",
                "setup_intent_unexpected_state",
            )
        si["payment_method"] = pm["id"]
        scenario = self.pm_scenario.get(pm["id"], "success")
        if scenario == "3ds":
            si.update(
                status="requires_action",
                last_setup_error=None,
                next_action=O.next_action_3ds(si["id"], self.base_url),
            )
            self.emit("setup_intent.requires_action", si)
            return si
        failure = _DECLINES.get(scenario)
        if failure is not None:
            code, decline, message = failure
            si.update(
                status="requires_payment_method",
                payment_method=None,
                last_setup_error={
                    "code": code,
                    "decline_code": decline,
                    "message": message,
                    "doc_url": "https://stripe.com/docs/error-codes/" + code.replace("_", "-"),
                    "payment_method": _snapshot(pm),
                    "type": "card_error",
                },
            )
            self.emit("setup_intent.setup_failed", si)
            raise StripeError(
                402,
                "card_error",
                message,
                code=code,
                decline_code=decline,
                extra={"setup_intent": _snapshot(si), "payment_method": _snapshot(pm)},
            )
        self._setup_succeeded(si, pm)
        return si

    def _setup_succeeded(self, si: dict, pm: dict) -> None:
        if si["customer"]:
            self._attach(pm, si["customer"])
        si.update(
            status="succeeded", next_action=None, last_setup_error=None, payment_method=pm["id"]
        )
        self.emit("setup_intent.succeeded", si)
        sub_id = self.si_subscription.get(si["id"])
        if sub_id:
            sub = self.objects[sub_id]
            if sub["pending_setup_intent"] == si["id"]:
                prev = {
                    "pending_setup_intent": si["id"],
                    "default_payment_method": sub["default_payment_method"],
                }
                sub.update(pending_setup_intent=None, default_payment_method=pm["id"])
                self.emit("customer.subscription.updated", sub, prev)

    def authenticate_setup_intent(self, siid: str, outcome: str) -> dict[str, Any]:
        si = self._get("setup_intent", siid, "setup_intent")
        if si["status"] != "requires_action":
            raise invalid(f"SetupIntent {siid} is {si['status']}, not requires_action.")
        pm = self.objects[si["payment_method"]]
        if outcome == "succeed":
            self._setup_succeeded(si, pm)
        elif outcome == "fail":
            si.update(
                status="requires_payment_method",
                next_action=None,
                payment_method=None,
                last_setup_error={
                    "code": "setup_intent_authentication_failure",
                    "message": "We are unable to authenticate your payment method. "
                    "Please choose a different payment method and try again.",
                    "payment_method": _snapshot(pm),
                    "type": "invalid_request_error",
                },
            )
            self.emit("setup_intent.setup_failed", si)
        else:
            raise invalid('outcome must be "succeed" or "fail"', "outcome")
        return si

    # ----------------------------------------------------------------- confirmation tokens
    def op_confirmation_tokens_create(self, _id, p):
        if not p.get("payment_method"):
            raise invalid(
                "Missing required param: payment_method.",
                "payment_method",
                "parameter_missing",
                store=False,
            )
        pm = self._resolve_pm(p["payment_method"], "payment_method")
        ct = self._store(O.confirmation_token(O.new_id("ctoken"), self.now(), pm, p))
        self.ctoken_pm[ct["id"]] = pm["id"]
        return ct

    def op_confirmation_tokens_retrieve(self, ctid, p):
        return self._get("confirmation_token", ctid, "ConfirmationToken")

    # ----------------------------------------------------------------- charges and refunds
    def op_charges_retrieve(self, chid, p):
        return self._get("charge", chid, "charge")

    def op_refunds_create(self, _id, p):
        if p.get("charge"):
            ch = self._get("charge", p["charge"], "charge", "charge")
        elif p.get("payment_intent"):
            pi = self._get(
                "payment_intent", p["payment_intent"], "payment_intent", "payment_intent"
            )
            if pi["status"] != "succeeded" or not pi["latest_charge"]:
                raise invalid(
                    f"This PaymentIntent ({pi['id']}) does not have a successful charge to refund.",
                    "payment_intent",
                )
            ch = self.objects[pi["latest_charge"]]
        else:
            raise invalid(
                "One of the following params should be provided for this request: "
                "payment_intent or charge.",
                None,
                "parameter_missing",
                store=False,
            )
        if ch["status"] != "succeeded":
            raise invalid("This charge cannot be refunded.", "charge")
        remaining = ch["amount"] - ch["amount_refunded"]
        if remaining <= 0:
            raise invalid(
                f"Charge {ch['id']} has already been refunded.", None, "charge_already_refunded"
            )
        amount = _int(p["amount"], "amount") if "amount" in p else remaining
        if amount <= 0 or amount > remaining:
            raise invalid(
                f"Refund amount ({amount}) is greater than unrefunded amount on "
                f"charge ({remaining})",
                "amount",
                "amount_too_large",
            )
        re_ = O.refund(O.new_id("re"), self.now(), ch, amount, p)
        self._metadata(re_, p.get("metadata"))
        self._store(re_)
        prev = {
            "amount_refunded": ch["amount_refunded"],
            "refunded": ch["refunded"],
            "refunds": _snapshot(ch["refunds"]),
        }
        ch["amount_refunded"] += amount
        ch["refunded"] = ch["amount_refunded"] >= ch["amount"]
        ch["refunds"] = dict(ch["refunds"], data=[re_, *ch["refunds"]["data"]])
        self.emit("refund.created", re_)
        self.emit("charge.refunded", ch, prev)
        self.emit(
            "refund.updated",
            re_,
            {"destination_details": {"card": {"reference": None, "reference_status": "pending"}}},
        )
        return re_

    def op_refunds_retrieve(self, reid, p):
        return self._get("refund", reid, "refund")

    # ----------------------------------------------------------------- invoices
    def op_invoices_retrieve(self, inid, p):
        return self._get("invoice", inid, "invoice")

    def op_invoices_list(self, _id, p):
        cus, sub, status = p.get("customer"), p.get("subscription"), p.get("status")

        def pred(o):
            sub_of = ((o["parent"] or {}).get("subscription_details") or {}).get("subscription")
            return (
                (not cus or o["customer"] == cus)
                and (not sub or sub_of == sub)
                and (not status or o["status"] == status)
            )

        return self._list("invoice", p, "/v1/invoices", pred)

    def op_invoice_payments_list(self, _id, p):
        inv = p.get("invoice")
        pay = p.get("payment") if isinstance(p.get("payment"), dict) else {}
        pi_id = pay.get("payment_intent")
        status = p.get("status")
        return self._list(
            "invoice_payment",
            p,
            "/v1/invoice_payments",
            lambda o: (
                (not inv or o["invoice"] == inv)
                and (not pi_id or o["payment"].get("payment_intent") == pi_id)
                and (not status or o["status"] == status)
            ),
        )

    def op_invoice_payments_retrieve(self, ipid, p):
        return self._get("invoice_payment", ipid, "invoice_payment")

    def _create_invoice(self, sub: dict, reason: str, start: int, end: int) -> dict:
        cus = self.objects[sub["customer"]]
        inv_id = O.new_id("in")
        number = f"{cus['invoice_prefix']}-{cus['next_invoice_sequence']:04d}"
        cus["next_invoice_sequence"] += 1
        inv = O.invoice(inv_id, self.now(), cus, sub, reason, start, end, number)
        lines = [
            O.line_item(O.new_id("il"), inv_id, sub["id"], si, start, end)
            for si in sub["items"]["data"]
        ]
        total = 0 if reason == "trial" else sum(li["amount"] for li in lines)
        if reason == "trial":
            for li in lines:
                li["amount"] = li["subtotal"] = 0
                li["description"] = "Trial period for " + li["description"]
            reason = "subscription_create"
        inv["billing_reason"] = reason
        inv["lines"]["data"] = lines
        inv.update(
            amount_due=total,
            amount_remaining=total,
            subtotal=total,
            subtotal_excluding_tax=total,
            total=total,
            total_excluding_tax=total,
        )
        self._store(inv)
        sub["latest_invoice"] = inv_id
        return inv

    def _finalize_invoice(self, inv: dict, sub: dict) -> dict | None:
        now = self.now()
        inv["status"] = "open"
        inv["status_transitions"]["finalized_at"] = now
        inv["effective_at"] = now
        if inv["amount_due"] == 0:
            self.emit("invoice.finalized", inv)
            self._mark_invoice_paid(inv)
            return None
        save = sub["payment_settings"]["save_default_payment_method"] == "on_subscription"
        desc = (
            "Subscription creation"
            if inv["billing_reason"] == "subscription_create"
            else "Subscription update"
        )
        pi = O.payment_intent(
            O.new_id("pi"),
            now,
            {
                "amount": inv["amount_due"],
                "currency": inv["currency"],
                "customer": inv["customer"],
                "description": desc,
                "setup_future_usage": "off_session" if save else None,
            },
        )
        self._store(pi)
        ip = self._store(O.invoice_payment(O.new_id("inpay"), now, inv, pi["id"]))
        self.pi_invoice[pi["id"]] = inv["id"]
        self.invoice_pi[inv["id"]] = pi["id"]
        self.invoice_payment_ids.setdefault(inv["id"], []).append(ip["id"])
        self.emit("invoice.finalized", inv)
        self.emit("payment_intent.created", pi)
        return pi

    def _mark_invoice_paid(self, inv: dict) -> None:
        now = self.now()
        inv.update(
            status="paid",
            amount_paid=inv["amount_due"],
            amount_remaining=0,
            attempted=True,
            next_payment_attempt=None,
        )
        inv["status_transitions"]["paid_at"] = now
        self.emit("invoice.paid", inv)
        self.emit("invoice.payment_succeeded", inv)

    def _invoice_paid(self, inv: dict, pi: dict, pm: dict) -> None:
        inv["attempt_count"] += 1
        self._mark_invoice_paid(inv)
        cus = self.objects[inv["customer"]]
        cus["delinquent"] = False
        sub_id = ((inv["parent"] or {}).get("subscription_details") or {}).get("subscription")
        sub = self.objects.get(sub_id or "")
        if sub is not None and sub["status"] not in _TERMINAL_SUB:
            prev: dict[str, Any] = {}
            if sub["status"] in ("incomplete", "past_due", "unpaid"):
                prev["status"] = sub["status"]
                sub["status"] = "active"
            save = sub["payment_settings"]["save_default_payment_method"] == "on_subscription"
            if save and sub["default_payment_method"] != pm["id"]:
                prev["default_payment_method"] = sub["default_payment_method"]
                sub["default_payment_method"] = pm["id"]
            if prev:
                self.emit("customer.subscription.updated", sub, prev)
        for ipid in self.invoice_payment_ids.get(inv["id"], []):
            ip = self.objects[ipid]
            if ip["payment"].get("payment_intent") == pi["id"]:
                ip.update(status="paid", amount_paid=pi["amount"])
                ip["status_transitions"]["paid_at"] = self.now()
                self.emit("invoice_payment.paid", ip)

    def _invoice_failed(self, inv: dict) -> None:
        inv["attempt_count"] += 1
        inv["attempted"] = True
        self.objects[inv["customer"]]["delinquent"] = True
        sub_id = ((inv["parent"] or {}).get("subscription_details") or {}).get("subscription")
        sub = self.objects.get(sub_id or "")
        new_status = None
        if sub is not None and inv["billing_reason"] != "subscription_create":
            if sub["status"] in ("active", "trialing"):
                new_status = "past_due"
            elif sub["status"] == "past_due":
                new_status = "unpaid"
        retry = new_status == "past_due"
        inv["next_payment_attempt"] = self.now() + 3 * DAY if retry else None
        self.emit("invoice.payment_failed", inv)
        if sub is not None and new_status:
            prev = {"status": sub["status"]}
            sub["status"] = new_status
            self.emit("customer.subscription.updated", sub, prev)

    def _charge_invoice(self, inv: dict, sub: dict) -> None:
        """Attempt the invoice's PaymentIntent off-session with the default payment method."""
        pi = self.objects[self.invoice_pi[inv["id"]]]
        cus = self.objects[sub["customer"]]
        pm_id = sub["default_payment_method"] or cus["invoice_settings"]["default_payment_method"]
        if not pm_id:
            self._invoice_failed(inv)
            return
        if pi["status"] == "requires_action":
            pi.update(status="requires_payment_method", next_action=None)
        self._attempt_payment(pi, self.objects[pm_id], off_session=True)

    # ----------------------------------------------------------------- subscriptions
    def op_subscriptions_create(self, _id, p):
        cus = self._get("customer", p["customer"], "customer", "customer")
        items = p.get("items")
        if not isinstance(items, list) or not items:
            raise invalid(
                "Missing required param: items.", "items", "parameter_missing", store=False
            )
        now = self.now()
        prices = []
        for i, it in enumerate(items):
            if not isinstance(it, dict) or not it.get("price"):
                raise invalid(
                    f"Missing required param: items[{i}][price].",
                    f"items[{i}][price]",
                    "parameter_missing",
                    store=False,
                )
            pr = self._get("price", it["price"], "price", f"items[{i}][price]")
            if pr["recurring"] is None:
                raise invalid(
                    f"The price specified ({pr['id']}) is not recurring.", f"items[{i}][price]"
                )
            prices.append(pr)
        behavior = p.get("payment_behavior") or "allow_incomplete"
        if behavior not in (
            "allow_incomplete",
            "default_incomplete",
            "error_if_incomplete",
            "pending_if_incomplete",
        ):
            raise invalid(f"Invalid payment_behavior: {behavior}", "payment_behavior", store=False)
        sub = O.subscription(O.new_id("sub"), now, cus["id"], prices[0]["currency"])
        self._metadata(sub, p.get("metadata"))
        sub["description"] = p.get("description") or None
        ps = p.get("payment_settings") if isinstance(p.get("payment_settings"), dict) else {}
        if ps.get("save_default_payment_method"):
            sub["payment_settings"]["save_default_payment_method"] = ps[
                "save_default_payment_method"
            ]
        if isinstance(ps.get("payment_method_types"), list):
            sub["payment_settings"]["payment_method_types"] = ps["payment_method_types"]
        if p.get("default_payment_method"):
            pm = self._resolve_pm(p["default_payment_method"], "default_payment_method")
            self._attach(pm, cus["id"])
            sub["default_payment_method"] = pm["id"]
        trial_end = None
        if p.get("trial_period_days") not in (None, ""):
            days = _int(p["trial_period_days"], "trial_period_days")
            if days > 0:
                trial_end = now + days * DAY
        elif p.get("trial_end") not in (None, "", "now"):
            trial_end = _int(p["trial_end"], "trial_end")
            if trial_end <= now:
                raise invalid("Invalid timestamp: must be in the future", "trial_end")
        rec = prices[0]["recurring"]
        if trial_end:
            start, end = now, trial_end
            sub.update(
                status="trialing",
                trial_start=now,
                trial_end=trial_end,
                billing_cycle_anchor=trial_end,
            )
        else:
            start, end = now, add_interval(now, rec["interval"], rec["interval_count"])
        for it, pr in zip(items, prices, strict=False):
            meta = it.get("metadata") if isinstance(it.get("metadata"), dict) else {}
            qty = _int(it.get("quantity", 1), "quantity")
            sub["items"]["data"].append(
                O.subscription_item(
                    O.new_id("si", 14), now, sub["id"], pr, qty, dict(meta), start, end
                )
            )
        if _bool(p.get("cancel_at_period_end", False), "cancel_at_period_end"):
            sub.update(cancel_at_period_end=True, cancel_at=end, canceled_at=now)
            sub["cancellation_details"]["reason"] = "cancellation_requested"
        self._store(sub)
        self.sub_state[sub["id"]] = {
            "anchor": trial_end or now,
            "cycle": 0,
            "trial_will_end_sent": False,
        }
        dpm = sub["default_payment_method"] or cus["invoice_settings"]["default_payment_method"]
        if trial_end:
            inv = self._create_invoice(sub, "trial", now, trial_end)
            si = None
            if not dpm:
                si = O.setup_intent(
                    O.new_id("seti"), now, {"customer": cus["id"], "usage": "off_session"}
                )
                self._store(si)
                self.si_subscription[si["id"]] = sub["id"]
                sub["pending_setup_intent"] = si["id"]
            self.emit("customer.subscription.created", sub)
            self.emit("invoice.created", inv)
            self._finalize_invoice(inv, sub)
            if si is not None:
                self.emit("setup_intent.created", si)
            return sub
        inv = self._create_invoice(sub, "subscription_create", now, now)
        self.emit("customer.subscription.created", sub)
        self.emit("invoice.created", inv)
        pi = self._finalize_invoice(inv, sub)
        if pi is None:  # zero-amount first invoice
            sub["status"] = "active"
            self.emit("customer.subscription.updated", sub, {"status": "incomplete"})
            return sub
        if behavior == "default_incomplete":
            if dpm:
                pi.update(payment_method=dpm, status="requires_confirmation")
            return sub
        if dpm:
            self._attempt_payment(pi, self.objects[dpm], off_session=True)
            if behavior == "error_if_incomplete" and pi["status"] != "succeeded":
                err = pi["last_payment_error"] or {}
                raise StripeError(
                    402,
                    "card_error",
                    err.get("message", "Payment failed"),
                    code=err.get("code"),
                    decline_code=err.get("decline_code"),
                    extra={"payment_intent": _snapshot(pi)},
                )
        return sub

    def op_subscriptions_retrieve(self, sid, p):
        return self._get("subscription", sid, "subscription")

    def op_subscriptions_list(self, _id, p):
        cus, status, price = p.get("customer"), p.get("status"), p.get("price")

        def pred(o):
            if status == "all":
                ok = True
            elif status:
                ok = o["status"] == status
            else:
                ok = o["status"] not in _TERMINAL_SUB
            return (
                ok
                and (not cus or o["customer"] == cus)
                and (not price or any(si["price"]["id"] == price for si in o["items"]["data"]))
            )

        return self._list("subscription", p, "/v1/subscriptions", pred)

    def op_subscriptions_update(self, sid, p):
        sub = self._get("subscription", sid, "subscription")
        if sub["status"] in _TERMINAL_SUB:
            raise invalid(
                "A canceled subscription can only update its cancellation_details and metadata.",
                None,
            )
        prev: dict[str, Any] = {}
        if "cancel_at_period_end" in p:
            cape = _bool(p["cancel_at_period_end"], "cancel_at_period_end")
            if cape != sub["cancel_at_period_end"]:
                prev.update(
                    cancel_at_period_end=sub["cancel_at_period_end"],
                    cancel_at=sub["cancel_at"],
                    canceled_at=sub["canceled_at"],
                    cancellation_details=dict(sub["cancellation_details"]),
                )
                end = sub["items"]["data"][0]["current_period_end"]
                if cape:
                    sub.update(cancel_at_period_end=True, cancel_at=end, canceled_at=self.now())
                    sub["cancellation_details"]["reason"] = "cancellation_requested"
                else:
                    sub.update(cancel_at_period_end=False, cancel_at=None, canceled_at=None)
                    sub["cancellation_details"]["reason"] = None
        if isinstance(p.get("cancellation_details"), dict):
            cd = p["cancellation_details"]
            prev.setdefault("cancellation_details", dict(sub["cancellation_details"]))
            for k in ("comment", "feedback"):
                if k in cd:
                    sub["cancellation_details"][k] = cd[k] or None
        if "default_payment_method" in p:
            new = None
            if p["default_payment_method"]:
                pm = self._resolve_pm(p["default_payment_method"], "default_payment_method")
                self._attach(pm, sub["customer"])
                new = pm["id"]
            if new != sub["default_payment_method"]:
                prev["default_payment_method"] = sub["default_payment_method"]
                sub["default_payment_method"] = new
        if "description" in p:
            prev["description"] = sub["description"]
            sub["description"] = p["description"] or None
        if "metadata" in p:
            prev["metadata"] = sub["metadata"]
            self._metadata(sub, p["metadata"])
        ps = p.get("payment_settings")
        if isinstance(ps, dict) and ps.get("save_default_payment_method"):
            prev["payment_settings"] = dict(sub["payment_settings"])
            sub["payment_settings"]["save_default_payment_method"] = ps[
                "save_default_payment_method"
            ]
        if isinstance(p.get("items"), list):
            prev["items"] = _snapshot(sub["items"])
            self._update_items(sub, p["items"])
        run_due = False
        if "trial_end" in p and sub["status"] == "trialing":
            te = self.now() if p["trial_end"] == "now" else _int(p["trial_end"], "trial_end")
            prev["trial_end"] = sub["trial_end"]
            sub["trial_end"] = te
            for si in sub["items"]["data"]:
                si["current_period_end"] = te
            self.sub_state[sub["id"]]["anchor"] = te
            run_due = True
        if prev:
            self.emit("customer.subscription.updated", sub, prev)
        if run_due:
            self.run_due()
        return sub

    def _update_items(self, sub: dict, items: list) -> None:
        data = sub["items"]["data"]
        by_id = {si["id"]: si for si in data}
        first = data[0]
        for i, it in enumerate(items):
            if not isinstance(it, dict):
                continue
            if it.get("id"):
                si = by_id.get(it["id"])
                if si is None:
                    raise missing("subscription item", it["id"], f"items[{i}][id]")
                if it.get("deleted") in (True, "true"):
                    data.remove(si)
                    continue
            else:
                if not it.get("price"):
                    raise invalid(
                        f"Missing required param: items[{i}][price].",
                        f"items[{i}][price]",
                        "parameter_missing",
                        store=False,
                    )
                si = O.subscription_item(
                    O.new_id("si", 14),
                    self.now(),
                    sub["id"],
                    self.objects[it["price"]],
                    1,
                    {},
                    first["current_period_start"],
                    first["current_period_end"],
                )
                data.append(si)
            if it.get("price"):
                pr = self._get("price", it["price"], "price", f"items[{i}][price]")
                si["price"] = pr
                si["plan"] = O.plan_from_price(pr)
            if "quantity" in it:
                si["quantity"] = _int(it["quantity"], f"items[{i}][quantity]")
            if isinstance(it.get("metadata"), dict):
                self._metadata(si, it["metadata"])
        if not data:
            raise invalid("A subscription must have at least one item.", "items")

    def op_subscriptions_cancel(self, sid, p):
        sub = self._get("subscription", sid, "subscription")
        if sub["status"] in _TERMINAL_SUB:
            raise invalid(
                f"This subscription is already {sub['status']}.", None, "resource_missing"
            )
        cd = (
            p.get("cancellation_details") if isinstance(p.get("cancellation_details"), dict) else {}
        )
        for k in ("comment", "feedback"):
            if k in cd:
                sub["cancellation_details"][k] = cd[k] or None
        self._cancel(sub, self.now())
        return sub

    def _cancel(self, sub: dict, at: int) -> None:
        sub.update(status="canceled", ended_at=at, canceled_at=sub["canceled_at"] or at)
        sub["cancellation_details"]["reason"] = (
            sub["cancellation_details"]["reason"] or "cancellation_requested"
        )
        self.emit("customer.subscription.deleted", sub)

    def set_subscription_payment_method(self, sid: str, pm_value: str) -> dict:
        """Control API: make future charges of a subscription use ``pm_value``."""
        sub = self._get("subscription", sid, "subscription")
        pm = self._resolve_pm(pm_value, "payment_method")
        self._attach(pm, sub["customer"])
        prev = {"default_payment_method": sub["default_payment_method"]}
        sub["default_payment_method"] = pm["id"]
        self.emit("customer.subscription.updated", sub, prev)
        return sub

    # ----------------------------------------------------------------- time-driven lifecycle
    def run_due(self) -> None:
        """Do what Stripe would have done by ``now()``; loops until nothing is due."""
        for _ in range(10_000):
            if not any(
                self._tick(sub) for sub in list(self.by_type.get("subscription", {}).values())
            ):
                return

    def _tick(self, sub: dict) -> bool:
        now = self.now()
        status = sub["status"]
        st = self.sub_state[sub["id"]]
        if status in _TERMINAL_SUB:
            return False
        if status == "incomplete":
            if now >= sub["created"] + 23 * 3600:
                self._expire(sub)
                return True
            return False
        if status == "trialing":
            te = sub["trial_end"]
            if not st["trial_will_end_sent"] and now >= te - 3 * DAY:
                st["trial_will_end_sent"] = True
                self.emit("customer.subscription.trial_will_end", sub)
                return True
            if now >= te:
                self._end_trial(sub)
                return True
            return False
        period_end = sub["items"]["data"][0]["current_period_end"]
        if now >= period_end:
            if sub["cancel_at_period_end"] or (sub["cancel_at"] and sub["cancel_at"] <= now):
                self._cancel(sub, period_end)
                return True
            self._renew(sub)
            return True
        if status == "past_due":
            inv = self.objects.get(sub["latest_invoice"] or "")
            if (
                inv is not None
                and inv["status"] == "open"
                and inv["next_payment_attempt"]
                and inv["next_payment_attempt"] <= now
            ):
                inv["next_payment_attempt"] = None
                self._charge_invoice(inv, sub)
                return True
        return False

    def _set_period(self, sub: dict, start: int, end: int) -> None:
        for si in sub["items"]["data"]:
            si["current_period_start"] = start
            si["current_period_end"] = end

    def _expire(self, sub: dict) -> None:
        now = self.now()
        sub.update(status="incomplete_expired", ended_at=now)
        self.emit("customer.subscription.updated", sub, {"status": "incomplete"})
        inv = self.objects.get(sub["latest_invoice"] or "")
        if inv is not None and inv["status"] == "open":
            inv.update(status="void", amount_remaining=0, next_payment_attempt=None)
            inv["status_transitions"]["voided_at"] = now
            self.emit("invoice.voided", inv)
            pi = self.objects.get(self.invoice_pi.get(inv["id"], ""))
            if pi is not None and pi["status"] != "succeeded":
                pi.update(
                    status="canceled",
                    canceled_at=now,
                    cancellation_reason="void_invoice",
                    next_action=None,
                )
                self.emit("payment_intent.canceled", pi)
            for ipid in self.invoice_payment_ids.get(inv["id"], []):
                ip = self.objects[ipid]
                ip["status"] = "canceled"
                ip["status_transitions"]["canceled_at"] = now

    def _end_trial(self, sub: dict) -> None:
        te = sub["trial_end"]
        if sub["cancel_at_period_end"]:
            self._cancel(sub, te)
            return
        rec = sub["items"]["data"][0]["price"]["recurring"]
        st = self.sub_state[sub["id"]]
        st.update(anchor=te, cycle=1)
        end = add_interval(te, rec["interval"], rec["interval_count"])
        prev = {
            "status": "trialing",
            "items": _snapshot(sub["items"]),
            "latest_invoice": sub["latest_invoice"],
        }
        self._set_period(sub, te, end)
        sub["status"] = "active"
        if sub["pending_setup_intent"]:
            prev["pending_setup_intent"] = sub["pending_setup_intent"]
            sub["pending_setup_intent"] = None
        self._bill_cycle(sub, te, end, prev)

    def _renew(self, sub: dict) -> None:
        rec = sub["items"]["data"][0]["price"]["recurring"]
        st = self.sub_state[sub["id"]]
        st["cycle"] += 1
        start = sub["items"]["data"][0]["current_period_end"]
        end = add_interval(st["anchor"], rec["interval"], rec["interval_count"] * st["cycle"])
        if end <= start:
            end = add_interval(start, rec["interval"], rec["interval_count"])
        prev = {"items": _snapshot(sub["items"]), "latest_invoice": sub["latest_invoice"]}
        self._set_period(sub, start, end)
        if sub["status"] == "unpaid":
            # Stripe leaves further invoices of an unpaid subscription as drafts: no charge
            self.emit("customer.subscription.updated", sub, prev)
            return
        self._bill_cycle(sub, start, end, prev)

    def _bill_cycle(self, sub: dict, start: int, end: int, prev: dict) -> None:
        inv = self._create_invoice(sub, "subscription_cycle", start, end)
        self.emit("customer.subscription.updated", sub, prev)
        self.emit("invoice.created", inv)
        pi = self._finalize_invoice(inv, sub)
        if pi is not None:
            self._charge_invoice(inv, sub)

    # ----------------------------------------------------------------- billing portal
    def op_billing_portal_sessions_create(self, _id, p):
        cus = self._get("customer", p["customer"], "customer", "customer")
        token = O.secret("bps")[len("bps_secret_") :]
        bps = O.portal_session(
            O.new_id("bps"), self.now(), cus["id"], p, f"{self.base_url}/p/session/{token}"
        )
        self._store(bps)
        self.portal_tokens[token] = bps["id"]
        return bps

    def portal_session_for(self, token: str) -> dict | None:
        sid = self.portal_tokens.get(token)
        return self.objects.get(sid) if sid else None

    def customer_subscriptions(self, cid: str) -> list[dict]:
        return [
            s
            for s in reversed(self.by_type.get("subscription", {}).values())
            if s["customer"] == cid
        ]

    # ----------------------------------------------------------------- events
    def op_events_retrieve(self, evid, p):
        rec = self.events.get(evid or "")
        if rec is None:
            raise missing("event", evid or "")
        return self.event_dict(rec)

    def op_events_list(self, _id, p):
        limit = _int(p.get("limit", 10), "limit")
        if not 1 <= limit <= 100:
            raise invalid("Invalid limit: must be between 1 and 100", "limit", store=False)
        types = p.get("types") if isinstance(p.get("types"), list) else []
        if p.get("type"):
            types = [*types, p["type"]]
        pats = [re.compile(re.escape(t).replace(r"\*", ".*") + "$") for t in types]
        ds = _bool(p["delivery_success"], "delivery_success") if "delivery_success" in p else None
        created = p.get("created") if isinstance(p.get("created"), dict) else {}
        bounds = {k: _int(v, f"created[{k}]") for k, v in created.items()}
        recs = []
        for rec in reversed(self.events.values()):
            if pats and not any(pt.match(rec.type) for pt in pats):
                continue
            if ds is not None and rec.delivered() != ds:
                continue
            c = rec.created
            if (
                ("gt" in bounds and not c > bounds["gt"])
                or ("gte" in bounds and not c >= bounds["gte"])
                or ("lt" in bounds and not c < bounds["lt"])
                or ("lte" in bounds and not c <= bounds["lte"])
            ):
                continue
            recs.append(rec)
        after, before = p.get("starting_after"), p.get("ending_before")
        if after:
            idx = next((i for i, r in enumerate(recs) if r.id == after), None)
            if idx is None:
                raise missing("event", after, "starting_after")
            recs = recs[idx + 1 :]
            page = recs[:limit]
        elif before:
            idx = next((i for i, r in enumerate(recs) if r.id == before), None)
            if idx is None:
                raise missing("event", before, "ending_before")
            recs = recs[:idx]
            page = recs[-limit:]
        else:
            page = recs[:limit]
        return {
            "object": "list",
            "data": [self.event_dict(r) for r in page],
            "has_more": len(recs) > limit,
            "url": "/v1/events",
        }
