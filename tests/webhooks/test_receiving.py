"""`POST /stripe/webhooks`: what is verified, what is stored, what is answered."""

from __future__ import annotations

import json
import time
from typing import Any

from flask.testing import FlaskClient

from models.stripe_event import IGNORED, PENDING
from tests.support.processes import free_port
from tests.support.stripe_webhooks import envelope, signature_header
from tests.webhooks.conftest import (
    WEBHOOK_PATH,
    inbox,
    inbox_count,
    post_webhook,
    queued_event_ids,
    stripe_fixture,
)


def assert_problem(response: Any, status: int, code: str) -> None:
    assert response.status_code == status
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["code"] == code


class TestSignature:
    def test_valid_signature_is_stored_and_acknowledged(self, post_event):
        event = envelope("payment_intent.succeeded", stripe_fixture("payment_intent"))
        response = post_event(event)
        assert response.status_code == 200
        assert response.get_json() == {"received": True, "stored": True}
        row = inbox(event["id"])
        assert row is not None
        assert row.status == PENDING
        assert row.type == "payment_intent.succeeded"
        assert row.object_id == event["data"]["object"]["id"]
        assert row.payload == event
        assert row.attempts == 0
        assert queued_event_ids() == [event["id"]]

    def test_wrong_secret_is_rejected(self, post_event):
        event = envelope("payment_intent.succeeded", stripe_fixture("payment_intent"))
        payload = json.dumps(event)
        response = post_event(payload, signature=signature_header(payload, "whsec_not_ours"))
        assert_problem(response, 400, "invalid_signature")
        assert inbox_count() == 0
        assert queued_event_ids() == []

    def test_tampered_body_is_rejected(self, post_event, webhook_secret):
        event = envelope("charge.refunded", stripe_fixture("charge"))
        payload = json.dumps(event)
        header = signature_header(payload, webhook_secret)
        tampered = payload.replace('"amount_refunded": 0', '"amount_refunded": 100')
        assert tampered != payload
        assert_problem(post_event(tampered, signature=header), 400, "invalid_signature")
        assert inbox_count() == 0

    def test_timestamp_older_than_tolerance_is_rejected(self, post_event, webhook_secret):
        event = envelope("payment_intent.succeeded", stripe_fixture("payment_intent"))
        payload = json.dumps(event)
        stale = signature_header(payload, webhook_secret, timestamp=int(time.time()) - 301)
        assert_problem(post_event(payload, signature=stale), 400, "invalid_signature")
        assert inbox_count() == 0

    def test_timestamp_within_tolerance_is_accepted(self, post_event, webhook_secret):
        event = envelope("payment_intent.succeeded", stripe_fixture("payment_intent"))
        payload = json.dumps(event)
        recent = signature_header(payload, webhook_secret, timestamp=int(time.time()) - 240)
        assert post_event(payload, signature=recent).status_code == 200

    def test_missing_header_is_rejected(self, client: FlaskClient):
        event = envelope("payment_intent.succeeded", stripe_fixture("payment_intent"))
        response = client.post(
            WEBHOOK_PATH, data=json.dumps(event), headers={"Content-Type": "application/json"}
        )
        assert_problem(response, 400, "invalid_signature")
        assert inbox_count() == 0

    def test_one_matching_signature_among_several_is_enough(self, post_event, webhook_secret):
        # During a secret roll Stripe signs with the old and the new secret.
        event = envelope("payment_intent.succeeded", stripe_fixture("payment_intent"))
        payload = json.dumps(event)
        timestamp = int(time.time())
        ours = signature_header(payload, webhook_secret, timestamp).split("v1=")[1]
        other = signature_header(payload, "whsec_rolled_away", timestamp).split("v1=")[1]
        header = f"t={timestamp},v1={other},v1={ours},v0=deadbeef"
        assert post_event(payload, signature=header).status_code == 200
        assert inbox(event["id"]) is not None

    def test_several_signatures_none_matching_are_rejected(self, post_event):
        event = envelope("payment_intent.succeeded", stripe_fixture("payment_intent"))
        payload = json.dumps(event)
        timestamp = int(time.time())
        sigs = [
            signature_header(payload, secret, timestamp).split("v1=")[1]
            for secret in ("whsec_a", "whsec_b")
        ]
        header = f"t={timestamp},v1={sigs[0]},v1={sigs[1]}"
        assert_problem(post_event(payload, signature=header), 400, "invalid_signature")

    def test_garbage_header_is_rejected(self, post_event):
        event = envelope("payment_intent.succeeded", stripe_fixture("payment_intent"))
        assert_problem(post_event(event, signature="v1=abc,t=notanumber"), 400, "invalid_signature")


class TestPayload:
    def test_signed_malformed_json_is_invalid_payload(self, post_event):
        assert_problem(post_event('{"id": "evt_1", "type": '), 400, "invalid_payload")
        assert inbox_count() == 0

    def test_signed_json_that_is_not_an_event_is_invalid_payload(self, post_event):
        for body in ('["evt_1"]', '{"id": "evt_1"}', '{"id": "evt_1", "type": "x", "data": 1}'):
            assert_problem(post_event(body), 400, "invalid_payload")
        assert inbox_count() == 0

    def test_problem_details_leak_nothing(self, post_event):
        response = post_event('{"id": "evt_1", "type": ')
        body = response.get_data(as_text=True)
        assert "whsec_" not in body
        assert "Traceback" not in body


class TestInbox:
    def test_duplicate_delivery_is_acknowledged_and_not_enqueued_again(self, post_event):
        event = envelope("invoice.paid", stripe_fixture("invoice"))
        first = post_event(event)
        second = post_event(event)
        assert first.get_json() == {"received": True, "stored": True}
        assert second.status_code == 200
        assert second.get_json() == {"received": True, "stored": False}
        assert inbox_count() == 1
        assert queued_event_ids() == [event["id"]]

    def test_unhandled_type_is_stored_as_ignored_and_not_enqueued(self, post_event):
        event = envelope("customer.created", stripe_fixture("customer"))
        response = post_event(event)
        assert response.status_code == 200
        row = inbox(event["id"])
        assert row is not None
        assert row.status == IGNORED
        assert queued_event_ids() == []

    def test_endpoint_is_in_the_openapi_document(self, client: FlaskClient):
        spec = client.get("/openapi.json").get_json()
        operation = spec["paths"]["/stripe/webhooks"]["post"]
        assert operation["security"] == []
        assert {"200", "400", "503"} <= set(operation["responses"])


class TestUnavailableStorage:
    def test_postgres_down_answers_503_so_stripe_retries(self, start_web_server, webhook_secret):
        dead = f"postgresql+psycopg2://postgres@127.0.0.1:{free_port()}/billingos"
        server = start_web_server(env={"DATABASE_URL": dead})
        event = envelope("payment_intent.succeeded", stripe_fixture("payment_intent"))
        payload = json.dumps(event)
        status, body = post_webhook(server, payload, signature_header(payload, webhook_secret))
        assert status == 503
        assert body["status"] == 503
        assert "postgres" not in json.dumps(body).lower()
        assert queued_event_ids() == []
