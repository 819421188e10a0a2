"""Errors (and the library's exception classes), idempotency, and injected faults."""

from __future__ import annotations

import time

import pytest
import stripe

from tests.support.emulator import CARDS_ONLY

PI = {"amount": 1000, "currency": "usd", **CARDS_ONLY}


# ---------------------------------------------------------------------------- error classes
def test_unknown_parameter_is_invalid_request(client):
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.payment_intents.create(
            params={**CARDS_ONLY, **PI, "payment_method_types": ["card"]}
        )
    e = err.value
    assert e.http_status == 400 and e.code == "parameter_unknown"
    assert e.param == "payment_method_types" and e.error.type == "invalid_request_error"


def test_missing_required_parameter(client):
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.payment_intents.create(params={**CARDS_ONLY, "currency": "usd"})
    assert err.value.code == "parameter_missing" and err.value.param == "amount"


def test_error_body_shape(client):
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.customers.retrieve("cus_nope")
    body = err.value.json_body["error"]
    assert {"type", "code", "decline_code", "message", "param"} <= set(body)
    assert err.value.http_status == 404 and body["code"] == "resource_missing"


def test_card_error_402(client):
    with pytest.raises(stripe.CardError) as err:
        client.v1.payment_intents.create(
            params={
                **CARDS_ONLY,
                **PI,
                "payment_method": "pm_card_visa_chargeDeclined",
                "confirm": True,
            }
        )
    assert err.value.http_status == 402 and err.value.code == "card_declined"


def test_authentication_error_401(emu):
    bad = emu.client(api_key="sk_live_nope")
    with pytest.raises(stripe.AuthenticationError) as err:
        bad.v1.customers.list()
    assert err.value.http_status == 401


def test_permission_error_403_for_restricted_key_writes(emu):
    rk = emu.client(api_key="rk_test_readonly")
    assert rk.v1.customers.list().data == []
    with pytest.raises(stripe.PermissionError):
        rk.v1.customers.create()


def test_rate_limit_error_429(emu, client):
    emu.set_faults("rate_limit", paths=["/v1/customers"])
    with pytest.raises(stripe.RateLimitError) as err:
        client.v1.customers.create()
    assert err.value.http_status == 429


def test_api_error_500_does_nothing(emu, client):
    emu.set_faults("error_500", paths=["/v1/payment_intents"])
    with pytest.raises(stripe.APIError) as err:
        client.v1.payment_intents.create(params=PI)
    assert err.value.http_status == 500
    emu.clear_faults()
    assert client.v1.payment_intents.list().data == []


def test_idempotency_error(client):
    client.v1.customers.create(params={"email": "a@x.io"}, options={"idempotency_key": "k1"})
    with pytest.raises(stripe.IdempotencyError) as err:
        client.v1.customers.create(params={"email": "b@x.io"}, options={"idempotency_key": "k1"})
    assert err.value.http_status == 400 and err.value.error.type == "idempotency_error"


def test_unknown_url_is_404(client):
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.raw_request("get", "/v1/nonexistent_things")
    assert err.value.http_status == 404


# ---------------------------------------------------------------------------- idempotency
def test_idempotent_replay_returns_the_first_response(emu, client):
    opts = {"idempotency_key": "order-7"}
    a = client.v1.payment_intents.create(params=PI, options=opts)
    b = client.v1.payment_intents.create(params=PI, options=opts)
    assert a.id == b.id
    assert b.last_response.headers.get("Idempotent-Replayed") == "true"
    assert len(client.v1.payment_intents.list().data) == 1
    assert len(emu.events("payment_intent.created")) == 1


def test_idempotent_replay_includes_errors(client):
    opts = {"idempotency_key": "declined-once"}
    params = {**PI, "payment_method": "pm_card_visa_chargeDeclined", "confirm": True}
    with pytest.raises(stripe.CardError) as first:
        client.v1.payment_intents.create(params=params, options=opts)
    with pytest.raises(stripe.CardError) as second:
        client.v1.payment_intents.create(params=params, options=opts)
    assert first.value.error.payment_intent.id == second.value.error.payment_intent.id
    assert len(client.v1.payment_intents.list().data) == 1


def test_validation_errors_are_not_stored(client):
    opts = {"idempotency_key": "fix-and-retry"}
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.customers.create(params={"bogus": "1"}, options=opts)


def test_idempotency_keys_expire_after_24h(emu, client):
    opts = {"idempotency_key": "old-key"}
    a = client.v1.customers.create(params={"email": "a@x.io"}, options=opts)
    emu.advance_clock(24 * 3600 + 5)
    b = client.v1.customers.create(params={"email": "a@x.io"}, options=opts)
    assert a.id != b.id


# ---------------------------------------------------------------------------- faults
@pytest.mark.parametrize("kind", ["timeout", "reset"])
def test_fault_then_retry_with_same_key_yields_one_object(emu, kind):
    client = emu.client(timeout=(2, 0.5))
    emu.set_faults(kind, paths=["/v1/payment_intents"], count=1, timeout_seconds=0.8)
    opts = {"idempotency_key": f"checkout-{kind}"}
    t0 = time.monotonic()
    with pytest.raises(stripe.APIConnectionError):
        client.v1.payment_intents.create(params=PI, options=opts)
    assert time.monotonic() - t0 < 5
    # the operation was performed although the client never saw the answer
    log = emu.requests(path="/v1/payment_intents")
    assert log[-1]["fault"] == kind and log[-1]["status"] == 200
    pi = client.v1.payment_intents.create(params=PI, options=opts)  # retry, same key
    assert pi.status == "requires_payment_method"
    assert [p.id for p in client.v1.payment_intents.list().data] == [pi.id]
    assert len(emu.events("payment_intent.created")) == 1


def test_library_retries_through_faults_with_one_object(emu):
    client = emu.client(max_network_retries=3, timeout=(2, 0.5))
    emu.set_faults("reset", paths=["/v1/payment_intents"], methods=["POST"], count=2)
    pi = client.v1.payment_intents.create(params=PI)
    posts = emu.requests(path="/v1/payment_intents", method="POST")
    assert len(posts) == 3 and len({r["idempotency_key"] for r in posts}) == 1
    assert [r["fault"] for r in posts] == ["reset", "reset", None]
    assert posts[-1]["replayed"] is True
    assert [p.id for p in client.v1.payment_intents.list().data] == [pi.id]


def test_fault_rate_and_paths(emu, client):
    emu.set_faults("error_500", rate=1.0, paths=["/v1/payment_intents"])
    assert client.v1.customers.create().id  # other paths are unaffected
    emu.set_faults("error_500", rate=0.0)
    assert client.v1.payment_intents.create(params=PI).id
    emu.set_faults("error_500", rate=0.5)
    failures = 0
    for _ in range(40):
        try:
            client.v1.customers.list()
        except stripe.APIError:
            failures += 1
    assert 5 < failures < 35
    emu.clear_faults()
    client.v1.customers.list()
