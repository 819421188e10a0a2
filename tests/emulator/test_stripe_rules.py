"""Places where Stripe is strict and the emulator must be too (never kinder than Stripe)."""

from __future__ import annotations

import pytest
import stripe

from tests.support.emulator import CARDS_ONLY

RETURN_URL_REFUSAL = "A `return_url` must be specified because this {} is configured"


# ---------------------------------------------------------------------- return_url on confirm


def test_intent_that_allows_redirects_is_not_confirmed_without_return_url(client):
    pi = client.v1.payment_intents.create(params={"amount": 1000, "currency": "usd"})
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.payment_intents.confirm(pi.id, params={"payment_method": "pm_card_visa"})
    assert refused.value.http_status == 400 and refused.value.param == "return_url"
    assert RETURN_URL_REFUSAL.format("Payment Intent") in str(refused.value.user_message)
    assert client.v1.payment_intents.retrieve(pi.id).status == "requires_payment_method"
    # `confirm=true` at creation is refused the same way.
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.payment_intents.create(
            params={
                "amount": 1000,
                "currency": "usd",
                "payment_method": "pm_card_visa",
                "confirm": True,
            }
        )
    done = client.v1.payment_intents.confirm(
        pi.id, params={"payment_method": "pm_card_visa", "return_url": "https://shop.example/ok"}
    )
    assert done.status == "succeeded"


def test_return_url_may_come_with_the_confirmation_token(client):
    pi = client.v1.payment_intents.create(params={"amount": 1000, "currency": "usd"})
    token = client.v1.test_helpers.confirmation_tokens.create(
        params={"payment_method": "pm_card_visa", "return_url": "https://shop.example/ok"}
    )
    done = client.v1.payment_intents.confirm(pi.id, params={"confirmation_token": token.id})
    assert done.status == "succeeded"


def test_cards_only_intents_confirm_without_return_url(client):
    pi = client.v1.payment_intents.create(params={"amount": 1000, "currency": "usd", **CARDS_ONLY})
    assert pi.automatic_payment_methods.allow_redirects == "never"
    assert (
        client.v1.payment_intents.confirm(pi.id, params={"payment_method": "pm_card_visa"}).status
        == "succeeded"
    )
    si = client.v1.setup_intents.create(params=CARDS_ONLY)
    assert (
        client.v1.setup_intents.confirm(si.id, params={"payment_method": "pm_card_visa"}).status
        == "succeeded"
    )


def test_setup_intent_that_allows_redirects_is_not_confirmed_without_return_url(client):
    si = client.v1.setup_intents.create()
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.setup_intents.confirm(si.id, params={"payment_method": "pm_card_visa"})
    assert RETURN_URL_REFUSAL.format("Setup Intent") in str(refused.value.user_message)


def _subscription(client, plan, **extra):
    cus, price = plan
    return client.v1.subscriptions.create(
        params={
            "customer": cus.id,
            "items": [{"price": price.id}],
            "payment_behavior": "default_incomplete",
            "expand": ["latest_invoice.confirmation_secret", "pending_setup_intent"],
            **extra,
        }
    )


@pytest.mark.emulator_only(
    "Stripe documents that invoices without payment_settings[payment_method_types] use the "
    "Dashboard's payment methods; the emulator takes that to include redirect-based ones"
)
def test_subscription_intents_follow_payment_settings(client, plan):
    open_sub = _subscription(client, plan)
    secret = open_sub.latest_invoice.confirmation_secret.client_secret
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.payment_intents.confirm(
            secret.split("_secret_")[0], params={"payment_method": "pm_card_visa"}
        )
    trial = _subscription(client, plan, trial_period_days=7)
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.setup_intents.confirm(
            trial.pending_setup_intent.id, params={"payment_method": "pm_card_visa"}
        )


def test_card_only_subscription_intents_confirm_without_return_url(client, plan):
    cards = {"payment_settings": {"payment_method_types": ["card"]}}
    open_sub = _subscription(client, plan, **cards)
    secret = open_sub.latest_invoice.confirmation_secret.client_secret
    paid = client.v1.payment_intents.confirm(
        secret.split("_secret_")[0], params={"payment_method": "pm_card_visa"}
    )
    assert paid.status == "succeeded"
    trial = _subscription(client, plan, trial_period_days=7, **cards)
    saved = client.v1.setup_intents.confirm(
        trial.pending_setup_intent.id, params={"payment_method": "pm_card_visa"}
    )
    assert saved.status == "succeeded"


# ---------------------------------------------------------------------- canceled, still payable


def test_canceled_subscription_keeps_its_open_invoice_payable(client, plan):
    cards = {"payment_settings": {"payment_method_types": ["card"]}}
    sub = _subscription(client, plan, **cards)
    invoice = sub.latest_invoice
    client.v1.subscriptions.cancel(sub.id)
    assert client.v1.invoices.retrieve(invoice.id).status == "open"
    pi_id = invoice.confirmation_secret.client_secret.split("_secret_")[0]
    paid = client.v1.payment_intents.confirm(pi_id, params={"payment_method": "pm_card_visa"})
    assert paid.status == "succeeded"
    assert client.v1.invoices.retrieve(invoice.id).status == "paid"
    assert client.v1.subscriptions.retrieve(sub.id).status == "canceled"


def test_voiding_an_invoice_cancels_its_payment_intent(client, plan):
    sub = _subscription(client, plan, payment_settings={"payment_method_types": ["card"]})
    invoice = sub.latest_invoice
    client.v1.subscriptions.cancel(sub.id)
    voided = client.v1.invoices.void_invoice(invoice.id)
    assert voided.status == "void"
    pi_id = invoice.confirmation_secret.client_secret.split("_secret_")[0]
    assert client.v1.payment_intents.retrieve(pi_id).status == "canceled"
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.payment_intents.confirm(pi_id, params={"payment_method": "pm_card_visa"})
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.invoices.void_invoice(invoice.id)


# ---------------------------------------------------------------------- a stored 500


@pytest.mark.emulator_only("a stored 500 cannot be provoked in Stripe test mode")
def test_stored_500_is_replayed_under_its_key_and_executes_nothing(emu, client):
    emu.set_faults("stored_500", rate=1.0, count=1, paths=["/v1/customers"])
    options = {"idempotency_key": "customer:42:create", "max_network_retries": 0}
    for _ in range(2):
        with pytest.raises(stripe.APIError) as failed:
            client.v1.customers.create(params={"email": "a@example.com"}, options=options)
        assert failed.value.http_status == 500
    assert [r["replayed"] for r in emu.requests(path="/v1/customers")] == [False, True]
    assert client.v1.customers.list().data == []
    # Another key executes.
    created = client.v1.customers.create(
        params={"email": "a@example.com"}, options={"idempotency_key": "customer:42:create:1"}
    )
    assert [c.id for c in client.v1.customers.list().data] == [created.id]


# ---------------------------------------------------------------------- rolling a webhook secret


@pytest.mark.emulator_only("rolls the secret through the emulator's control API")
def test_rolled_secret_signs_with_both_until_the_old_one_expires(emu, client):
    from tests.support.emulator import WebhookReceiver

    receiver = WebhookReceiver()
    try:
        endpoint = emu.register_webhook(receiver.url, "whsec_before_the_roll")
        rolled = emu.roll_webhook_secret(endpoint["id"], "whsec_after_the_roll", expires_in=3600)
        assert rolled["secret"] == "whsec_after_the_roll"
        client.v1.customers.create()
        got = receiver.wait_for(lambda r: len(r) >= 1)[0]
        header = got["headers"]["Stripe-Signature"]
        assert header.count("v1=") == 2
        for secret in ("whsec_after_the_roll", "whsec_before_the_roll"):
            stripe.WebhookSignature.verify_header(got["payload"], header, secret, 300)
        emu.roll_webhook_secret(endpoint["id"], "whsec_third", expires_in=0)
        client.v1.customers.create()
        last = receiver.wait_for(lambda r: len(r) >= 2)[-1]
        assert last["headers"]["Stripe-Signature"].count("v1=") == 1
        with pytest.raises(stripe.SignatureVerificationError):
            stripe.WebhookSignature.verify_header(
                last["payload"], last["headers"]["Stripe-Signature"], "whsec_after_the_roll", 300
            )
    finally:
        receiver.close()


# ---------------------------------------------------------------------- disputes, failed refunds


def _paid_with(client, card):
    return client.v1.payment_intents.create(
        params={
            **CARDS_ONLY,
            "amount": 2900,
            "currency": "usd",
            "payment_method": card,
            "confirm": True,
        }
    )


def _event_types(emu):
    return [e["type"] for e in emu.events()]


@pytest.mark.emulator_only("Stripe opens and decides test disputes asynchronously")
def test_dispute_card_opens_a_dispute_that_the_network_decides(emu, client):
    pi = _paid_with(client, "pm_card_createDispute")
    assert pi.status == "succeeded"
    assert client.v1.charges.retrieve(pi.latest_charge).disputed is True
    created = emu.events(type="charge.dispute.created")
    assert len(created) == 1
    assert client.v1.events.retrieve(created[0]["id"]).data.object.status == "needs_response"
    closed = emu.close_dispute(created[0]["object_id"], "lost")
    assert closed["status"] == "lost"
    event = client.v1.events.retrieve(emu.events(type="charge.dispute.closed")[0]["id"])
    assert event.data.object.status == "lost" and event.data.object.payment_intent == pi.id


@pytest.mark.emulator_only("Stripe fails a test refund asynchronously")
def test_refund_of_the_refund_fail_card_fails_after_creation(emu, client):
    pi = _paid_with(client, "pm_card_refundFail")
    refund = client.v1.refunds.create(params={"payment_intent": pi.id})
    assert client.v1.refunds.retrieve(refund.id).status == "failed"
    charge = client.v1.charges.retrieve(pi.latest_charge)
    assert charge.amount_refunded == 0 and charge.refunded is False
    updated = emu.events(type="charge.refund.updated")
    assert len(updated) == 1
    assert client.v1.events.retrieve(updated[0]["id"]).data.object.status == "failed"


def test_canceled_intent_and_failed_setup_emit_their_events(emu, client):
    pi = client.v1.payment_intents.create(params={"amount": 1000, "currency": "usd"})
    client.v1.payment_intents.cancel(pi.id)
    si = client.v1.setup_intents.create(params=CARDS_ONLY)
    with pytest.raises(stripe.CardError):
        client.v1.setup_intents.confirm(
            si.id, params={"payment_method": "pm_card_visa_chargeDeclined"}
        )
    types = _event_types(emu)
    assert "payment_intent.canceled" in types and "setup_intent.setup_failed" in types


# ---------------------------------------------------------------------- endpoint API versions


@pytest.mark.emulator_only("needs a webhook receiver registered with the emulator")
def test_events_are_rendered_in_the_endpoints_api_version(emu, client, plan):
    from tests.support.emulator import WebhookReceiver

    receiver = WebhookReceiver()
    try:
        emu.register_webhook(receiver.url, "whsec_old_endpoint", api_version="2025-02-24.acacia")
        sub = _subscription(client, plan, payment_settings={"payment_method_types": ["card"]})
        got = receiver.wait_for(lambda r: any(x["event"]["type"] == "invoice.created" for x in r))
        invoice_event = next(x["event"] for x in got if x["event"]["type"] == "invoice.created")
        assert invoice_event["api_version"] == "2025-02-24.acacia"
        invoice = invoice_event["data"]["object"]
        assert invoice["subscription"] == sub.id and "parent" not in invoice
        # The API itself answers in the requested (pinned) version.
        assert client.v1.invoices.retrieve(invoice["id"]).parent is not None
    finally:
        receiver.close()


# ---------------------------------------------------------------------- listing events


def test_events_list_filters_by_delivery_and_created_window(emu, client):
    from tests.support.emulator import WebhookReceiver

    failing = WebhookReceiver(fail_first=10_000)
    try:
        emu.register_webhook(failing.url, "whsec_failing")
        first = client.v1.customers.create()
        emu.advance_clock(120)
        client.v1.customers.create()
        failing.wait_for(lambda r: len(r) >= 2)
        undelivered = client.v1.events.list(params={"delivery_success": False}).data
        assert {e.type for e in undelivered} == {"customer.created"}
        assert client.v1.events.list(params={"delivery_success": True}).data == []
        created = client.v1.events.list(params={"type": "customer.created"}).data[-1].created
        window = client.v1.events.list(params={"created": {"lte": created + 60}}).data
        assert [e.data.object.id for e in window] == [first.id]
    finally:
        failing.close()


# ---------------------------------------------------------------------- trials without a card


@pytest.mark.emulator_only("moves the emulator's clock past the trial")
@pytest.mark.parametrize(
    "behavior,status",
    [("cancel", "canceled"), ("pause", "paused"), ("create_invoice", "past_due")],
)
def test_trial_end_without_a_card_follows_missing_payment_method(
    emu, client, plan, behavior, status
):
    cus, price = plan
    sub = client.v1.subscriptions.create(
        params={
            "customer": cus.id,
            "items": [{"price": price.id}],
            "trial_period_days": 7,
            "trial_settings": {"end_behavior": {"missing_payment_method": behavior}},
        }
    )
    assert sub.trial_settings.end_behavior.missing_payment_method == behavior
    emu.advance_clock(8 * 86400)
    assert client.v1.subscriptions.retrieve(sub.id).status == status
    emu.advance_clock(40 * 86400)  # nothing more happens to a paused or canceled trial
    assert client.v1.subscriptions.retrieve(sub.id).status in (status, "unpaid")
