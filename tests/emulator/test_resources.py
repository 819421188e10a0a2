"""Every resource and operation of the emulator, through the real stripe library."""

from __future__ import annotations

import urllib.request

import pytest
import stripe

from tests.support.emulator import CARDS_ONLY


def _types(emu, prefix=""):
    return [e["type"] for e in emu.events() if e["type"].startswith(prefix)]


# ---------------------------------------------------------------------------- customers
def test_customer_create_retrieve_update_list_search(emu, client):
    cus = client.v1.customers.create(
        params={
            "email": "ada@example.com",
            "name": "Ada",
            "metadata": {"billingos_customer_id": "c-1"},
        }
    )
    assert cus.id.startswith("cus_") and cus.object == "customer"
    assert cus.metadata["billingos_customer_id"] == "c-1"
    assert client.v1.customers.retrieve(cus.id).email == "ada@example.com"

    upd = client.v1.customers.update(
        cus.id, params={"name": "Ada L.", "metadata": {"tier": "gold"}}
    )
    assert upd.name == "Ada L." and upd.metadata.to_dict() == {
        "billingos_customer_id": "c-1",
        "tier": "gold",
    }
    upd = client.v1.customers.update(cus.id, params={"metadata": {"tier": ""}})
    assert "tier" not in upd.metadata

    other = client.v1.customers.create(
        params={"email": "bob@example.com", "metadata": {"billingos_customer_id": "c-2"}}
    )
    by_email = client.v1.customers.list(params={"email": "ada@example.com"})
    assert [c.id for c in by_email.data] == [cus.id]
    assert [c.id for c in client.v1.customers.list().data] == [other.id, cus.id]  # newest first

    found = client.v1.customers.search(params={"query": "metadata['billingos_customer_id']:'c-2'"})
    assert found.object == "search_result" and [c.id for c in found.data] == [other.id]
    assert client.v1.customers.search(params={"query": "email:'nobody@x.io'"}).data == []
    assert _types(emu, "customer.") == [
        "customer.created",
        "customer.updated",
        "customer.updated",
        "customer.created",
    ]


def test_list_pagination_and_auto_paging(client):
    ids = [client.v1.customers.create(params={"email": f"p{i}@x.io"}).id for i in range(7)]
    page = client.v1.customers.list(params={"limit": 3})
    assert page.object == "list" and page.url == "/v1/customers" and page.has_more
    assert [c.id for c in page.data] == ids[::-1][:3]
    page2 = client.v1.customers.list(params={"limit": 3, "starting_after": page.data[-1].id})
    assert [c.id for c in page2.data] == ids[::-1][3:6]
    back = client.v1.customers.list(params={"limit": 2, "ending_before": page2.data[0].id})
    assert [c.id for c in back.data] == ids[::-1][1:3]
    assert [c.id for c in page.auto_paging_iter()] == ids[::-1]


# ---------------------------------------------------------------------------- catalog
def test_products_and_prices(emu, client):
    prod = client.v1.products.create(params={"name": "Pro", "metadata": {"plan": "pro"}})
    assert prod.metadata["plan"] == "pro" and prod.active
    price = client.v1.prices.create(
        params={
            "product": prod.id,
            "currency": "usd",
            "unit_amount": 2000,
            "recurring": {"interval": "month"},
            "lookup_key": "pro_monthly",
            "metadata": {"k": "v"},
        }
    )
    assert price.type == "recurring" and price.recurring.interval == "month"
    assert str(price.unit_amount_decimal) == "2000" and price.metadata["k"] == "v"
    assert client.v1.products.retrieve(prod.id).default_price == price.id
    one_off = client.v1.prices.create(
        params={"currency": "eur", "unit_amount": 500, "product_data": {"name": "Setup fee"}}
    )
    assert one_off.type == "one_time" and one_off.recurring is None

    assert client.v1.prices.retrieve(price.id).product == prod.id
    assert client.v1.prices.update(price.id, params={"active": False}).active is False
    assert client.v1.products.update(prod.id, params={"name": "Pro+"}).name == "Pro+"
    assert [p.id for p in client.v1.prices.list(params={"active": True}).data] == [one_off.id]
    assert [p.id for p in client.v1.prices.list(params={"lookup_keys": ["pro_monthly"]}).data] == [
        price.id
    ]
    assert [p.id for p in client.v1.prices.list(params={"product": prod.id}).data] == [price.id]
    assert len(client.v1.products.list().data) == 2
    expanded = client.v1.prices.retrieve(price.id, params={"expand": ["product"]})
    assert expanded.product.id == prod.id and expanded.product.object == "product"


# ---------------------------------------------------------------------------- payment methods
@pytest.mark.parametrize("magic", ["pm_card_visa", "pm_card_mastercard"])
def test_payment_method_retrieve_and_attach(client, magic):
    cus = client.v1.customers.create()
    pm = client.v1.payment_methods.retrieve(magic)
    assert pm.object == "payment_method" and pm.type == "card" and pm.id.startswith("pm_")
    attached = client.v1.payment_methods.attach(magic, params={"customer": cus.id})
    assert attached.customer == cus.id
    assert attached.card.brand == ("visa" if "visa" in magic else "mastercard")
    again = client.v1.payment_methods.attach(attached.id, params={"customer": cus.id})
    assert again.id == attached.id


def test_payment_method_create_with_card_number(client):
    pm = client.v1.payment_methods.create(
        params={
            "type": "card",
            "card": {"number": "4000000000009995", "exp_month": 12, "exp_year": 2031, "cvc": "123"},
        }
    )
    assert pm.card.last4 == "9995"
    with pytest.raises(stripe.CardError) as err:
        client.v1.payment_intents.create(
            params={
                **CARDS_ONLY,
                "amount": 1000,
                "currency": "usd",
                "payment_method": pm.id,
                "confirm": True,
            }
        )
    assert err.value.error.decline_code == "insufficient_funds"


# ---------------------------------------------------------------------------- payment intents
def test_payment_intent_success_flow(emu, client):
    cus = client.v1.customers.create()
    pi = client.v1.payment_intents.create(
        params={
            **CARDS_ONLY,
            "amount": 1999,
            "currency": "usd",
            "customer": cus.id,
            "metadata": {"order": "o-1"},
            "automatic_payment_methods": {"enabled": True},
        }
    )
    assert pi.status == "requires_payment_method" and pi.metadata["order"] == "o-1"
    assert pi.client_secret.split("_secret_")[0] == pi.id
    upd = client.v1.payment_intents.update(
        pi.id, params={"amount": 2500, "description": "two things"}
    )
    assert upd.amount == 2500
    done = client.v1.payment_intents.confirm(
        pi.id, params={"payment_method": "pm_card_visa", "return_url": "https://shop.example/done"}
    )
    assert done.status == "succeeded" and done.amount_received == 2500
    assert done.latest_charge.startswith("ch_") and done.last_payment_error is None
    ch = client.v1.charges.retrieve(done.latest_charge)
    assert ch.paid and ch.amount == 2500 and ch.payment_intent == pi.id
    full = client.v1.payment_intents.retrieve(
        pi.id, params={"expand": ["latest_charge", "customer"]}
    )
    assert full.latest_charge.id == ch.id and full.customer.id == cus.id
    assert [p.id for p in client.v1.payment_intents.list(params={"customer": cus.id}).data] == [
        pi.id
    ]
    assert _types(emu, "payment_intent.") + _types(emu, "charge.") == [
        "payment_intent.created",
        "payment_intent.succeeded",
        "charge.succeeded",
    ]


def test_payment_intent_create_with_confirm_true(client):
    pi = client.v1.payment_intents.create(
        params={
            **CARDS_ONLY,
            "amount": 1000,
            "currency": "usd",
            "payment_method": "pm_card_mastercard",
            "confirm": True,
        }
    )
    assert pi.status == "succeeded"


@pytest.mark.parametrize(
    "magic,decline",
    [
        ("pm_card_visa_chargeDeclined", "generic_decline"),
        ("pm_card_visa_chargeDeclinedInsufficientFunds", "insufficient_funds"),
    ],
)
def test_payment_intent_declines(emu, client, magic, decline):
    pi = client.v1.payment_intents.create(params={**CARDS_ONLY, "amount": 1000, "currency": "usd"})
    with pytest.raises(stripe.CardError) as err:
        client.v1.payment_intents.confirm(pi.id, params={"payment_method": magic})
    e = err.value
    assert e.http_status == 402 and e.code == "card_declined"
    assert e.error.decline_code == decline and e.error.payment_intent.id == pi.id
    after = client.v1.payment_intents.retrieve(pi.id)
    assert after.status == "requires_payment_method"
    assert after.last_payment_error.code == "card_declined"
    assert after.last_payment_error.decline_code == decline
    assert after.last_payment_error.type == "card_error"
    # the same PaymentIntent can be confirmed again with a good card
    ok = client.v1.payment_intents.confirm(pi.id, params={"payment_method": "pm_card_visa"})
    assert ok.status == "succeeded" and ok.last_payment_error is None
    assert "charge.failed" in _types(emu) and "payment_intent.payment_failed" in _types(emu)


@pytest.mark.parametrize(
    "magic", ["pm_card_threeDSecure2Required", "pm_card_authenticationRequired"]
)
def test_payment_intent_3ds_authenticate_succeed(emu, client, magic):
    pi = client.v1.payment_intents.create(
        params={
            **CARDS_ONLY,
            "amount": 1000,
            "currency": "usd",
            "payment_method": magic,
            "confirm": True,
        }
    )
    assert pi.status == "requires_action"
    assert pi.next_action.type == "use_stripe_sdk"
    assert "payment_intent.requires_action" in _types(emu)
    emu.authenticate("payment_intent", pi.id, "succeed")
    done = client.v1.payment_intents.retrieve(pi.id)
    assert done.status == "succeeded" and done.next_action is None


def test_payment_intent_3ds_authenticate_fail(emu, client):
    pi = client.v1.payment_intents.create(params={**CARDS_ONLY, "amount": 1000, "currency": "usd"})
    pi = client.v1.payment_intents.confirm(
        pi.id, params={"payment_method": "pm_card_threeDSecure2Required"}
    )
    assert pi.status == "requires_action"
    emu.authenticate("payment_intents", pi.id, "fail")
    failed = client.v1.payment_intents.retrieve(pi.id)
    assert failed.status == "requires_payment_method"
    assert failed.last_payment_error.code == "payment_intent_authentication_failure"
    assert _types(emu, "payment_intent.")[-1] == "payment_intent.payment_failed"


def test_card_number_3ds_and_decline_mapping(client):
    for number, expected in [
        ("4242424242424242", "succeeded"),
        ("4000000000003220", "requires_action"),
    ]:
        pm = client.v1.payment_methods.create(
            params={
                "type": "card",
                "card": {"number": number, "exp_month": 1, "exp_year": 2033, "cvc": "314"},
            }
        )
        pi = client.v1.payment_intents.create(
            params={
                **CARDS_ONLY,
                "amount": 700,
                "currency": "usd",
                "payment_method": pm.id,
                "confirm": True,
            }
        )
        assert pi.status == expected
    pm = client.v1.payment_methods.create(
        params={
            "type": "card",
            "card": {"number": "4000000000000002", "exp_month": 1, "exp_year": 2033, "cvc": "314"},
        }
    )
    with pytest.raises(stripe.CardError) as err:
        client.v1.payment_intents.create(
            params={
                **CARDS_ONLY,
                "amount": 700,
                "currency": "usd",
                "payment_method": pm.id,
                "confirm": True,
            }
        )
    assert err.value.code == "card_declined"


def test_payment_intent_cancel(emu, client):
    pi = client.v1.payment_intents.create(params={**CARDS_ONLY, "amount": 1000, "currency": "usd"})
    canceled = client.v1.payment_intents.cancel(pi.id, params={"cancellation_reason": "abandoned"})
    assert canceled.status == "canceled" and canceled.cancellation_reason == "abandoned"
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.payment_intents.confirm(pi.id, params={"payment_method": "pm_card_visa"})
    assert err.value.code == "payment_intent_unexpected_state"
    assert _types(emu, "payment_intent.")[-1] == "payment_intent.canceled"


def test_confirmation_token_confirms_payment_intent(client):
    ct = client.v1.test_helpers.confirmation_tokens.create(
        params={"payment_method": "pm_card_visa"}
    )
    assert ct.id.startswith("ctoken_") and ct.payment_method_preview.type == "card"
    assert client.v1.confirmation_tokens.retrieve(ct.id).id == ct.id
    pi = client.v1.payment_intents.create(params={**CARDS_ONLY, "amount": 1200, "currency": "usd"})
    done = client.v1.payment_intents.confirm(pi.id, params={"confirmation_token": ct.id})
    assert done.status == "succeeded"
    assert client.v1.confirmation_tokens.retrieve(ct.id).payment_intent == pi.id


# ---------------------------------------------------------------------------- setup intents
def test_setup_intent_flow(emu, client):
    cus = client.v1.customers.create()
    si = client.v1.setup_intents.create(
        params={**CARDS_ONLY, "customer": cus.id, "metadata": {"a": "b"}}
    )
    assert si.status == "requires_payment_method" and si.metadata["a"] == "b"
    assert si.client_secret.startswith(si.id + "_secret_")
    done = client.v1.setup_intents.confirm(si.id, params={"payment_method": "pm_card_visa"})
    assert done.status == "succeeded"
    pm = client.v1.payment_methods.retrieve(done.payment_method)
    assert pm.customer == cus.id
    assert client.v1.setup_intents.retrieve(si.id).status == "succeeded"
    assert {"setup_intent.created", "setup_intent.succeeded", "payment_method.attached"} <= set(
        _types(emu)
    )


def test_setup_intent_3ds_and_decline(emu, client):
    cus = client.v1.customers.create()
    si = client.v1.setup_intents.create(
        params={
            **CARDS_ONLY,
            "customer": cus.id,
            "payment_method": "pm_card_threeDSecure2Required",
            "confirm": True,
        }
    )
    assert si.status == "requires_action" and si.next_action.type == "use_stripe_sdk"
    emu.authenticate("setup_intent", si.id, "succeed")
    assert client.v1.setup_intents.retrieve(si.id).status == "succeeded"

    si2 = client.v1.setup_intents.create(params={**CARDS_ONLY, "customer": cus.id})
    si2 = client.v1.setup_intents.confirm(
        si2.id, params={"payment_method": "pm_card_authenticationRequired"}
    )
    emu.authenticate("setup_intents", si2.id, "fail")
    assert client.v1.setup_intents.retrieve(si2.id).status == "requires_payment_method"

    si3 = client.v1.setup_intents.create(params={**CARDS_ONLY, "customer": cus.id})
    with pytest.raises(stripe.CardError):
        client.v1.setup_intents.confirm(
            si3.id, params={"payment_method": "pm_card_visa_chargeDeclined"}
        )
    assert client.v1.setup_intents.retrieve(si3.id).last_setup_error.code == "card_declined"


# ---------------------------------------------------------------------------- refunds
def test_refunds(emu, client):
    pi = client.v1.payment_intents.create(
        params={
            **CARDS_ONLY,
            "amount": 5000,
            "currency": "usd",
            "payment_method": "pm_card_visa",
            "confirm": True,
        }
    )
    part = client.v1.refunds.create(
        params={"payment_intent": pi.id, "amount": 2000, "metadata": {"why": "partial"}}
    )
    assert part.status == "succeeded" and part.amount == 2000 and part.metadata["why"]
    ch = client.v1.charges.retrieve(pi.latest_charge)
    assert ch.amount_refunded == 2000 and ch.refunded is False
    rest = client.v1.refunds.create(params={"charge": ch.id})
    assert rest.amount == 3000
    ch = client.v1.charges.retrieve(pi.latest_charge)
    assert ch.amount_refunded == 5000 and ch.refunded is True
    assert client.v1.refunds.retrieve(rest.id).charge == ch.id
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.refunds.create(params={"charge": ch.id})
    assert err.value.code == "charge_already_refunded"
    refunded = [e for e in emu.events() if e["type"] == "charge.refunded"]
    assert len(refunded) == 2
    assert {"refund.created", "refund.updated"} <= set(_types(emu, "refund."))


# ---------------------------------------------------------------------------- billing portal
def test_billing_portal_session_page(emu, client):
    cus = client.v1.customers.create(params={"email": "portal@example.com"})
    price = client.v1.prices.create(
        params={
            "currency": "usd",
            "unit_amount": 900,
            "recurring": {"interval": "month"},
            "product_data": {"name": "Basic"},
        }
    )
    sub = client.v1.subscriptions.create(
        params={
            "customer": cus.id,
            "items": [{"price": price.id}],
            "default_payment_method": "pm_card_visa",
        }
    )
    bps = client.v1.billing_portal.sessions.create(
        params={"customer": cus.id, "return_url": "https://app.example/account"}
    )
    assert bps.object == "billing_portal.session" and bps.url.startswith(emu.url)
    page = urllib.request.urlopen(bps.url, timeout=5).read().decode()  # noqa: S310
    assert "portal@example.com" in page and sub.id in page
    assert "https://app.example/account" in page
    # the portal's cancel button schedules cancellation at period end
    req = urllib.request.Request(f"{bps.url}/cancel/{sub.id}", data=b"", method="POST")  # noqa: S310
    urllib.request.urlopen(req, timeout=5).read()  # noqa: S310
    assert client.v1.subscriptions.retrieve(sub.id).cancel_at_period_end is True


# ---------------------------------------------------------------------------- events
def test_events_retrieve_and_list(client):
    cus = client.v1.customers.create()
    client.v1.payment_intents.create(
        params={**CARDS_ONLY, "amount": 1000, "currency": "usd", "customer": cus.id}
    )
    events = client.v1.events.list()
    assert [e.type for e in events.data] == ["payment_intent.created", "customer.created"]
    ev = client.v1.events.retrieve(events.data[1].id)
    assert ev.data.object.id == cus.id and ev.api_version == stripe.api_version
    assert ev.request.id.startswith("req_") and ev.request.idempotency_key
    only = client.v1.events.list(params={"type": "customer.*"})
    assert [e.type for e in only.data] == ["customer.created"]
    assert [
        e.type for e in client.v1.events.list(params={"types": ["payment_intent.created"]}).data
    ] == ["payment_intent.created"]
    assert len(client.v1.events.list(params={"delivery_success": True}).data) == 2


def test_request_log_counts_requests(emu, client):
    key = "checkout-42"
    client.v1.payment_intents.create(
        params={"amount": 1000, "currency": "usd"}, options={"idempotency_key": key}
    )
    client.v1.payment_intents.create(
        params={"amount": 1000, "currency": "usd"}, options={"idempotency_key": key}
    )
    rows = emu.requests(path="/v1/payment_intents", method="POST")
    assert [r["idempotency_key"] for r in rows] == [key, key]
    assert [r["replayed"] for r in rows] == [False, True]
    assert rows[0]["params"] == {"amount": "1000", "currency": "usd"}
    assert rows[0]["status"] == 200
    assert len(client.v1.payment_intents.list().data) == 1


def test_expand_in_lists_and_nested(client):
    cus = client.v1.customers.create(params={"email": "e@x.io"})
    client.v1.payment_intents.create(
        params={**CARDS_ONLY, "amount": 900, "currency": "usd", "customer": cus.id}
    )
    listed = client.v1.payment_intents.list(params={"expand": ["data.customer"]})
    assert listed.data[0].customer.email == "e@x.io"
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.customers.retrieve(cus.id, params={"expand": ["no_such_field"]})


def test_customer_default_payment_method_and_control_override(emu, client):
    cus = client.v1.customers.create(params={"payment_method": "pm_card_visa"})
    pm = client.v1.payment_methods.attach("pm_card_mastercard", params={"customer": cus.id})
    cus = client.v1.customers.update(
        cus.id, params={"invoice_settings": {"default_payment_method": pm.id}}
    )
    assert cus.invoice_settings.default_payment_method == pm.id
    emu._call(
        "POST",
        f"/_emulator/customers/{cus.id}/payment_method",
        {"payment_method": "pm_card_visa_chargeDeclined"},
    )
    cus = client.v1.customers.retrieve(cus.id)
    assert cus.invoice_settings.default_payment_method != pm.id
