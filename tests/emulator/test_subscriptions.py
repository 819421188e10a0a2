"""Subscriptions, invoices and the emulated clock."""

from __future__ import annotations

import pytest
import stripe

DAY = 86400


def _types(emu):
    return [e["type"] for e in emu.events()]


def _create_incomplete(client, cus, price, **extra):
    return client.v1.subscriptions.create(
        params={
            "customer": cus.id,
            "items": [{"price": price.id}],
            "payment_behavior": "default_incomplete",
            "payment_settings": {
                "save_default_payment_method": "on_subscription",
                "payment_method_types": ["card"],
            },
            "expand": ["latest_invoice.confirmation_secret"],
            "metadata": {"plan": "pro"},
            **extra,
        }
    )


def test_default_incomplete_then_pay_first_invoice(emu, client, plan):
    cus, price = plan
    sub = _create_incomplete(client, cus, price)
    assert sub.status == "incomplete" and sub.metadata["plan"] == "pro"
    inv = sub.latest_invoice
    assert inv.object == "invoice" and inv.status == "open" and inv.amount_due == 2000
    assert "payment_intent" not in inv and "subscription" not in inv
    assert inv.parent.subscription_details.subscription == sub.id
    secret = inv.confirmation_secret.client_secret
    pi_id = secret.split("_secret_")[0]
    item = sub["items"].data[0]
    assert item.current_period_end > item.current_period_start
    assert _types(emu) == [
        "customer.created",
        "product.created",
        "price.created",
        "customer.subscription.created",
        "invoice.created",
        "invoice.finalized",
        "payment_intent.created",
    ]

    pi = client.v1.payment_intents.confirm(pi_id, params={"payment_method": "pm_card_visa"})
    assert pi.status == "succeeded"
    sub = client.v1.subscriptions.retrieve(sub.id, params={"expand": ["latest_invoice.payments"]})
    assert sub.status == "active" and sub.default_payment_method == pi.payment_method
    assert sub.latest_invoice.status == "paid"
    payments = sub.latest_invoice.payments.data
    assert payments[0].payment.payment_intent == pi_id and payments[0].status == "paid"
    listed = client.v1.invoice_payments.list(params={"payment": {"payment_intent": pi_id}})
    assert listed.data[0].invoice == sub.latest_invoice.id
    new = _types(emu)[7:]
    assert new[:2] == ["charge.succeeded", "payment_intent.succeeded"]
    assert {
        "invoice.paid",
        "invoice.payment_succeeded",
        "customer.subscription.updated",
        "invoice_payment.paid",
        "payment_method.attached",
    } <= set(new)
    upd = [e for e in emu.events("customer.subscription.updated")]
    ev = client.v1.events.retrieve(upd[-1]["id"])
    assert ev.data.previous_attributes.status == "incomplete"
    assert client.v1.invoices.retrieve(sub.latest_invoice.id).amount_paid == 2000
    invoices = client.v1.invoices.list(params={"subscription": sub.id})
    assert [i.id for i in invoices.data] == [sub.latest_invoice.id]


def test_first_invoice_declined_then_retried(emu, client, plan):
    cus, price = plan
    sub = _create_incomplete(client, cus, price)
    pi_id = sub.latest_invoice.confirmation_secret.client_secret.split("_secret_")[0]
    with pytest.raises(stripe.CardError):
        client.v1.payment_intents.confirm(
            pi_id, params={"payment_method": "pm_card_visa_chargeDeclined"}
        )
    assert "invoice.payment_failed" in _types(emu)
    assert client.v1.subscriptions.retrieve(sub.id).status == "incomplete"
    client.v1.payment_intents.confirm(pi_id, params={"payment_method": "pm_card_mastercard"})
    assert client.v1.subscriptions.retrieve(sub.id).status == "active"


def test_first_invoice_with_3ds(emu, client, plan):
    cus, price = plan
    sub = _create_incomplete(client, cus, price)
    pi_id = sub.latest_invoice.confirmation_secret.client_secret.split("_secret_")[0]
    pi = client.v1.payment_intents.confirm(
        pi_id, params={"payment_method": "pm_card_threeDSecure2Required"}
    )
    assert pi.status == "requires_action"
    emu.authenticate("payment_intent", pi_id, "succeed")
    assert client.v1.subscriptions.retrieve(sub.id).status == "active"


def test_incomplete_expires_after_23_hours(emu, client, plan):
    cus, price = plan
    sub = _create_incomplete(client, cus, price)
    emu.advance_clock(22 * 3600)
    assert client.v1.subscriptions.retrieve(sub.id).status == "incomplete"
    emu.advance_clock(3600 + 5)
    sub = client.v1.subscriptions.retrieve(sub.id, params={"expand": ["latest_invoice"]})
    assert sub.status == "incomplete_expired" and sub.latest_invoice.status == "void"
    assert "invoice.voided" in _types(emu)


def test_trial_with_pending_setup_intent_then_trial_end(emu, client, plan):
    cus, price = plan
    sub = client.v1.subscriptions.create(
        params={
            "customer": cus.id,
            "items": [{"price": price.id}],
            "trial_period_days": 14,
            "payment_behavior": "default_incomplete",
            "payment_settings": {"payment_method_types": ["card"]},
            "expand": ["pending_setup_intent"],
        }
    )
    assert sub.status == "trialing" and sub.trial_end - sub.trial_start == 14 * DAY
    seti = sub.pending_setup_intent
    assert seti.object == "setup_intent" and seti.client_secret.startswith(seti.id)
    assert sub["items"].data[0].current_period_end == sub.trial_end
    types = _types(emu)
    assert types[3:] == [
        "customer.subscription.created",
        "invoice.created",
        "invoice.finalized",
        "invoice.paid",
        "invoice.payment_succeeded",
        "setup_intent.created",
    ]

    client.v1.setup_intents.confirm(seti.id, params={"payment_method": "pm_card_visa"})
    sub = client.v1.subscriptions.retrieve(sub.id)
    assert sub.pending_setup_intent is None and sub.default_payment_method
    assert sub.status == "trialing"

    emu.advance_clock(11 * DAY + 60)
    assert "customer.subscription.trial_will_end" in _types(emu)
    assert client.v1.subscriptions.retrieve(sub.id).status == "trialing"
    emu.advance_clock(3 * DAY)
    sub = client.v1.subscriptions.retrieve(sub.id, params={"expand": ["latest_invoice"]})
    assert sub.status == "active"
    assert sub.latest_invoice.status == "paid" and sub.latest_invoice.amount_paid == 2000
    assert sub.latest_invoice.billing_reason == "subscription_cycle"


def test_trial_end_with_declining_card_goes_past_due_then_unpaid(emu, client, plan):
    cus, price = plan
    sub = client.v1.subscriptions.create(
        params={
            "customer": cus.id,
            "items": [{"price": price.id}],
            "trial_period_days": 3,
            "default_payment_method": "pm_card_visa_chargeDeclined",
        }
    )
    assert sub.status == "trialing" and sub.pending_setup_intent is None
    emu.advance_clock(3 * DAY + 10)
    sub = client.v1.subscriptions.retrieve(sub.id, params={"expand": ["latest_invoice"]})
    assert sub.status == "past_due" and sub.latest_invoice.status == "open"
    assert "invoice.payment_failed" in _types(emu)
    emu.advance_clock(3 * DAY + 10)  # the automatic retry fails too
    assert client.v1.subscriptions.retrieve(sub.id).status == "unpaid"


def test_renewal_paid_and_then_failing(emu, client, plan):
    cus, price = plan
    sub = client.v1.subscriptions.create(
        params={
            "customer": cus.id,
            "items": [{"price": price.id}],
            "default_payment_method": "pm_card_visa",
        }
    )
    assert sub.status == "active"
    first_end = sub["items"].data[0].current_period_end
    emu.advance_clock(first_end - emu.now() + 5)
    sub = client.v1.subscriptions.retrieve(sub.id, params={"expand": ["latest_invoice"]})
    assert sub.status == "active" and sub.latest_invoice.status == "paid"
    assert sub["items"].data[0].current_period_start == first_end
    assert len(client.v1.invoices.list(params={"customer": cus.id}).data) == 2

    emu.set_payment_method(sub.id, "pm_card_visa_chargeDeclinedInsufficientFunds")
    emu.advance_clock(sub["items"].data[0].current_period_end - emu.now() + 5)
    sub = client.v1.subscriptions.retrieve(sub.id)
    assert sub.status == "past_due"
    failed = client.v1.events.list(params={"type": "invoice.payment_failed"}).data
    assert len(failed) == 1
    emu.advance_clock(32 * DAY)  # next renewal fails again
    assert client.v1.subscriptions.retrieve(sub.id).status == "unpaid"


def test_update_default_payment_method_then_recover(emu, client, plan):
    cus, price = plan
    sub = client.v1.subscriptions.create(
        params={
            "customer": cus.id,
            "items": [
                {"price": price.id},
            ],
            "default_payment_method": "pm_card_visa_chargeDeclined",
        }
    )
    assert sub.status == "incomplete"
    pm = client.v1.payment_methods.attach("pm_card_visa", params={"customer": cus.id})
    sub = client.v1.subscriptions.update(sub.id, params={"default_payment_method": pm.id})
    assert sub.default_payment_method == pm.id


def test_cancel_at_period_end_and_cancel(emu, client, plan):
    cus, price = plan
    sub = client.v1.subscriptions.create(
        params={
            "customer": cus.id,
            "items": [{"price": price.id}],
            "default_payment_method": "pm_card_visa",
            "metadata": {"a": "1"},
        }
    )
    sub = client.v1.subscriptions.update(
        sub.id, params={"cancel_at_period_end": True, "metadata": {"b": "2"}}
    )
    assert sub.cancel_at_period_end and sub.status == "active"
    assert sub.cancel_at == sub["items"].data[0].current_period_end
    assert sub.metadata.to_dict() == {"a": "1", "b": "2"}
    ev = client.v1.events.list(params={"type": "customer.subscription.updated"}).data[0]
    assert ev.data.previous_attributes.cancel_at_period_end is False
    emu.advance_clock(sub.cancel_at - emu.now() + 5)
    sub = client.v1.subscriptions.retrieve(sub.id)
    assert sub.status == "canceled" and sub.ended_at
    assert "customer.subscription.deleted" in _types(emu)

    other = client.v1.subscriptions.create(
        params={
            "customer": cus.id,
            "items": [{"price": price.id}],
            "default_payment_method": "pm_card_visa",
        }
    )
    canceled = client.v1.subscriptions.cancel(other.id)
    assert canceled.status == "canceled" and canceled.canceled_at
    assert [s.id for s in client.v1.subscriptions.list(params={"customer": cus.id}).data] == []
    assert len(client.v1.subscriptions.list(params={"status": "all"}).data) == 2
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.subscriptions.cancel(other.id)


def test_subscription_item_price_change(client, plan):
    cus, price = plan
    bigger = client.v1.prices.create(
        params={
            "currency": "usd",
            "unit_amount": 5000,
            "recurring": {"interval": "month"},
            "product": price.product,
        }
    )
    sub = client.v1.subscriptions.create(
        params={
            "customer": cus.id,
            "items": [{"price": price.id, "quantity": 2}],
            "default_payment_method": "pm_card_visa",
        }
    )
    item = sub["items"].data[0]
    sub = client.v1.subscriptions.update(
        sub.id,
        params={"items": [{"id": item.id, "price": bigger.id}], "proration_behavior": "none"},
    )
    assert sub["items"].data[0].price.id == bigger.id and sub["items"].data[0].quantity == 2
