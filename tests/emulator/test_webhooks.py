"""Webhook delivery: signatures, envelope, asynchrony, retries, chaos and pausing."""

from __future__ import annotations

import itertools
import time

import stripe

from tests.emulator.conftest import WEBHOOK_SECRET
from tests.support.emulator import CARDS_ONLY, WebhookReceiver

PI = {"amount": 1000, "currency": "usd", **CARDS_ONLY}


def _pay(client):
    return client.v1.payment_intents.create(
        params={**CARDS_ONLY, **PI, "payment_method": "pm_card_visa", "confirm": True}
    )


def test_delivery_is_signed_and_in_stripe_envelope(emu, client, receiver):
    pi = _pay(client)
    got = receiver.wait_for(lambda r: len(r) >= 3)
    assert [r["event"]["type"] for r in got] == [
        "payment_intent.created",
        "charge.succeeded",
        "payment_intent.succeeded",
    ]
    for r in got:
        sig = r["headers"]["Stripe-Signature"]
        assert sig.startswith("t=") and ",v1=" in sig
        event = stripe.Webhook.construct_event(r["payload"], sig, WEBHOOK_SECRET)
        assert event.object == "event" and event.id.startswith("evt_")
        assert set(r["event"]) == {
            "id",
            "object",
            "api_version",
            "created",
            "data",
            "livemode",
            "pending_webhooks",
            "request",
            "type",
        }
        assert r["event"]["api_version"] == stripe.api_version
        assert r["event"]["pending_webhooks"] == 1
        assert r["event"]["request"]["id"].startswith("req_")
    assert got[2]["event"]["data"]["object"]["id"] == pi.id
    assert got[0]["event"]["data"]["object"]["status"] == "requires_confirmation"  # snapshot
    bad = got[0]["headers"]["Stripe-Signature"]
    try:
        stripe.Webhook.construct_event(got[0]["payload"], bad, "whsec_wrong")
        raise AssertionError("a wrong secret must not verify")
    except stripe.SignatureVerificationError:
        pass
    # delivery bookkeeping is visible
    events = emu.events()
    assert all(e["delivered"] for e in events)
    assert events[0]["deliveries"][0]["attempts"][0]["status"] == 200
    assert client.v1.events.list(params={"delivery_success": False}).data == []


def test_delivery_never_blocks_the_request(emu, client):
    slow = WebhookReceiver(status_for=lambda ev: (time.sleep(0.5), 200)[1])
    emu.register_webhook(slow.url, WEBHOOK_SECRET)
    try:
        t0 = time.monotonic()
        _pay(client)
        assert time.monotonic() - t0 < 0.4
        assert len(slow.wait_for(lambda r: len(r) >= 3, timeout=5)) == 3
    finally:
        slow.close()


def test_cli_webhook_endpoint_survives_reset(emulator):
    from tests.support.emulator import EmulatorProcess

    rcv = WebhookReceiver()
    emu2 = EmulatorProcess(
        extra_args=["--webhook-url", rcv.url, "--webhook-secret", "whsec_cli"]
    ).start()
    try:
        emu2.reset()
        emu2.client().v1.customers.create()
        got = rcv.wait_for(lambda r: len(r) >= 1)
        stripe.Webhook.construct_event(
            got[0]["payload"], got[0]["headers"]["Stripe-Signature"], "whsec_cli"
        )
    finally:
        emu2.stop()
        rcv.close()


def test_retries_with_backoff_on_failing_receiver(emu, client):
    rcv = WebhookReceiver(fail_first=2)
    emu.register_webhook(rcv.url, WEBHOOK_SECRET)
    try:
        client.v1.customers.create()
        got = rcv.wait_for(lambda r: any(x["status"] == 200 for x in r), timeout=5)
        assert [r["status"] for r in got] == [500, 500, 200]
        assert len({r["event"]["id"] for r in got}) == 1
        attempts = emu.events()[0]["deliveries"][0]["attempts"]
        assert [a["status"] for a in attempts] == [500, 500, 200]
        gaps = [b["at"] - a["at"] for a, b in itertools.pairwise(attempts)]
        assert gaps[0] >= 0.04 and gaps[1] >= 0.09  # the configured 0.05 s, 0.1 s backoff
    finally:
        rcv.close()


def test_retries_are_bounded_and_failures_listable(emu, client):
    rcv = WebhookReceiver(status_for=lambda ev: 503)
    emu.register_webhook(rcv.url, WEBHOOK_SECRET)
    try:
        cus = client.v1.customers.create()
        rcv.wait_for(lambda r: len(r) >= 4, timeout=5)
        time.sleep(0.3)
        assert len(rcv.received) == 4  # one attempt + 3 retries (schedule 0.05, 0.1, 0.2)
        ev = emu.events()[0]
        assert ev["deliveries"][0]["status"] == "failed" and not ev["delivered"]
        undelivered = client.v1.events.list(params={"delivery_success": False}).data
        assert [e.data.object.id for e in undelivered] == [cus.id]
        assert undelivered[0].pending_webhooks == 1
    finally:
        rcv.close()


def test_timeouts_count_as_failures(emu, client):
    emu.webhook_settings(timeout_seconds=0.2, retry_delays=[0.05])
    calls = []

    def slow_first(ev):
        calls.append(1)
        if len(calls) == 1:
            time.sleep(0.5)
        return 200

    rcv = WebhookReceiver(status_for=slow_first)
    emu.register_webhook(rcv.url, WEBHOOK_SECRET)
    try:
        client.v1.customers.create()
        rcv.wait_for(lambda r: len(r) >= 2, timeout=5)
        time.sleep(0.1)
        attempts = emu.events()[0]["deliveries"][0]["attempts"]
        assert attempts[0]["error"] == "timeout" and attempts[-1]["status"] == 200, attempts
    finally:
        rcv.close()


def test_chaos_duplicates(emu, client, receiver):
    emu.webhook_chaos(duplicate_rate=1.0)
    client.v1.customers.create()
    got = receiver.wait_for(lambda r: len(r) >= 2)
    assert len(got) == 2 and got[0]["event"]["id"] == got[1]["event"]["id"]
    for r in got:
        stripe.Webhook.construct_event(
            r["payload"], r["headers"]["Stripe-Signature"], WEBHOOK_SECRET
        )


def test_chaos_shuffle_reorders(emu, client, receiver):
    emu.webhook_chaos(shuffle=True)
    emu.webhook_settings(concurrency=4)
    for _ in range(10):
        client.v1.customers.create()
    got = receiver.wait_for(lambda r: len(r) >= 10)
    created_order = [e["id"] for e in emu.events()]
    arrival = [r["event"]["id"] for r in got]
    assert sorted(arrival) == sorted(created_order)
    assert arrival != created_order


def test_chaos_delay(emu, client, receiver):
    emu.webhook_chaos(delay_ms=300)
    t0 = time.monotonic()
    client.v1.customers.create()
    assert receiver.received == []
    receiver.wait_for(lambda r: len(r) >= 1)
    assert time.monotonic() - t0 >= 0.29


def test_pause_and_resume_delivery(emu, client, receiver):
    emu.webhook_chaos(enabled=False)
    client.v1.customers.create()
    client.v1.customers.create()
    time.sleep(0.2)
    assert receiver.received == []
    undelivered = client.v1.events.list(params={"delivery_success": False}).data
    assert len(undelivered) == 2  # reconciliation can find them
    emu.resume_webhooks()
    assert len(receiver.wait_for(lambda r: len(r) >= 2)) == 2
    emu.pause_webhooks()
    client.v1.customers.create()
    time.sleep(0.1)
    assert len(receiver.received) == 2
    emu.webhook_chaos(enabled=True)
    assert len(receiver.wait_for(lambda r: len(r) >= 3)) == 3


def test_enabled_events_filter(emu, client):
    rcv = WebhookReceiver()
    emu.register_webhook(rcv.url, WEBHOOK_SECRET, enabled_events=["payment_intent.succeeded"])
    try:
        _pay(client)
        got = rcv.wait_for(lambda r: len(r) >= 1)
        time.sleep(0.1)
        assert [r["event"]["type"] for r in rcv.received] == ["payment_intent.succeeded"]
        assert got
    finally:
        rcv.close()
