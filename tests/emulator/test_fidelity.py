"""Fidelity: object shapes against Stripe's fixtures, accepted params against stripe.params."""

from __future__ import annotations

import importlib

import pytest
import stripe
from stripe._request_options import RequestOptions

from stripe_emulator.operations import OPERATIONS
from tests.support.stripe_fixtures import (
    SHARED_STRIPE_FIXTURES,
    STRIPE_FIXTURES,
    stripe_fixture_resources,
)

# Keys Stripe's fixture has that the emulator deliberately leaves out. Keep this list short.
FIXTURE_KEY_EXCEPTIONS = {
    # fixtures3.json still lists `invoice.subscription`, but API versions since basil
    # (2025-03-31) removed it: stripe 16.1.0's Invoice class has no such attribute, and the
    # link is `parent.subscription_details.subscription`.
    ("invoice", "subscription"),
}
LIST_KEYS = {"object", "data", "has_more", "url"}
SEARCH_KEYS = {"object", "data", "has_more", "next_page", "url"}


@pytest.fixture(scope="module")
def fixtures():
    return stripe_fixture_resources()


def test_vendored_fixtures_match_the_shared_copy():
    if not SHARED_STRIPE_FIXTURES.exists():
        pytest.skip("no shared copy beside the repository to compare with")
    assert STRIPE_FIXTURES.read_bytes() == SHARED_STRIPE_FIXTURES.read_bytes()


def _raw(obj):
    """The JSON the emulator answered (not the library's view of it)."""
    return obj.last_response.data


def _compare(kind, ours, theirs, path, problems):
    want = set(theirs) - {k for (t, k) in FIXTURE_KEY_EXCEPTIONS if t == kind and path == kind}
    have = set(ours)
    if want - have:
        problems.append(f"{path}: missing {sorted(want - have)}")
    # Stripe's polymorphic hashes carry their details under the key named by `type`
    # (e.g. invoice_payment.payment = {"type": "payment_intent", "payment_intent": "pi_..."});
    # the fixtures omit that key, the API does not.
    extra = have - set(theirs) - {ours.get("type")}
    if extra:
        problems.append(f"{path}: extra {sorted(extra)}")
    # nested objects: compare where both sides are non-empty hashes of the same kind
    for key in want & have:
        a, b = ours[key], theirs[key]
        if isinstance(a, dict) and isinstance(b, dict) and a and b:
            if a.get("object") == "list" or b.get("object") == "list":
                continue  # lists are checked item by item by the caller
            if "object" in a and a.get("object") != b.get("object"):
                continue  # an expanded object vs a different example object
            if "type" in b and a.get("type") != b.get("type"):
                continue  # polymorphic hash (e.g. payment_method_preview of another type)
            _compare(kind, a, b, f"{path}.{key}", problems)


@pytest.fixture
def objects(emu, client):
    """Create one of every object type the emulator returns; return raw JSON by fixture name."""
    out = {}
    cus = client.v1.customers.create(params={"email": "f@x.io", "metadata": {"k": "v"}})
    out["customer"] = _raw(cus)
    prod = client.v1.products.create(params={"name": "P"})
    out["product"] = _raw(prod)
    price = client.v1.prices.create(
        params={
            "product": prod.id,
            "currency": "usd",
            "unit_amount": 1000,
            "recurring": {"interval": "month"},
        }
    )
    out["price"] = _raw(price)
    pm = client.v1.payment_methods.attach("pm_card_visa", params={"customer": cus.id})
    out["payment_method"] = _raw(pm)
    pi = client.v1.payment_intents.create(
        params={
            "amount": 1000,
            "currency": "usd",
            "customer": cus.id,
            "payment_method": pm.id,
            "confirm": True,
            "return_url": "https://shop.example/done",
        }
    )
    out["payment_intent"] = _raw(pi)
    out["charge"] = _raw(client.v1.charges.retrieve(pi.latest_charge))
    out["refund"] = _raw(client.v1.refunds.create(params={"payment_intent": pi.id}))
    out["setup_intent"] = _raw(client.v1.setup_intents.create(params={"customer": cus.id}))
    out["confirmation_token"] = _raw(
        client.v1.test_helpers.confirmation_tokens.create(params={"payment_method": "pm_card_visa"})
    )
    sub = client.v1.subscriptions.create(
        params={
            "customer": cus.id,
            "items": [{"price": price.id}],
            "payment_behavior": "default_incomplete",
        }
    )
    out["subscription"] = _raw(sub)
    out["subscription_item"] = out["subscription"]["items"]["data"][0]
    inv = client.v1.invoices.retrieve(sub.latest_invoice)
    out["invoice"] = _raw(inv)
    out["line_item"] = out["invoice"]["lines"]["data"][0]
    out["invoice_payment"] = _raw(client.v1.invoice_payments.list(params={"invoice": inv.id}))[
        "data"
    ][0]
    out["billing_portal.session"] = _raw(
        client.v1.billing_portal.sessions.create(
            params={"customer": cus.id, "return_url": "https://x.io"}
        )
    )
    out["event"] = _raw(client.v1.events.retrieve(client.v1.events.list().data[0].id))
    out["list"] = _raw(client.v1.customers.list())
    out["search_result"] = _raw(client.v1.customers.search(params={"query": "email:'f@x.io'"}))
    return out


def test_object_keys_match_stripe_fixtures(objects, fixtures):
    problems: list[str] = []
    for kind, ours in objects.items():
        if kind == "list":
            assert set(ours) == LIST_KEYS
            continue
        if kind == "search_result":
            assert set(ours) == SEARCH_KEYS
            continue
        assert ours["object"] == kind, kind
        _compare(kind, ours, fixtures[kind], kind, problems)
    assert problems == [], "\n".join(problems)


def test_expand_only_fields_appear_only_when_expanded(client, objects):
    inv = objects["invoice"]
    assert "confirmation_secret" not in inv and "payments" not in inv
    full = client.v1.invoices.retrieve(
        inv["id"], params={"expand": ["confirmation_secret", "payments"]}
    )
    assert full.confirmation_secret.type == "payment_intent"
    assert full.payments.object == "list"


def _typed_params(dotted: str):
    module = stripe.params
    *mods, name = dotted.split(".")
    for m in mods:
        module = importlib.import_module(f"stripe.params.{m}")
    return getattr(module, name)


def test_every_accepted_parameter_is_a_real_stripe_parameter():
    options = RequestOptions.__required_keys__ | RequestOptions.__optional_keys__
    problems = []
    for op in OPERATIONS:
        td = _typed_params(op.typed_params)
        real = (td.__required_keys__ | td.__optional_keys__) - options
        unknown = op.params - real
        if unknown:
            problems.append(f"{op.name} ({op.typed_params}): {sorted(unknown)}")
        assert set(op.required) <= op.params, op.name
    assert problems == []


def test_operation_table_covers_the_contract():
    names = {op.name for op in OPERATIONS}
    for required in [
        "customers.create",
        "customers.retrieve",
        "customers.update",
        "customers.list",
        "customers.search",
        "products.create",
        "products.retrieve",
        "products.update",
        "products.list",
        "prices.create",
        "prices.retrieve",
        "prices.update",
        "prices.list",
        "payment_methods.retrieve",
        "payment_methods.attach",
        "payment_intents.create",
        "payment_intents.retrieve",
        "payment_intents.update",
        "payment_intents.confirm",
        "payment_intents.cancel",
        "setup_intents.create",
        "setup_intents.retrieve",
        "setup_intents.confirm",
        "subscriptions.create",
        "subscriptions.retrieve",
        "subscriptions.update",
        "subscriptions.cancel",
        "invoices.retrieve",
        "refunds.create",
        "billing_portal_sessions.create",
        "events.retrieve",
        "events.list",
    ]:
        assert required in names
