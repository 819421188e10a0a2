"""Webhook secrets can be rotated (several accepted at once), and the body is verified as the
UTF-8 text Stripe signed."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import settings_of
from app.config import Settings
from app.webhooks import service
from tests.support.stripe_webhooks import envelope, signature_header
from tests.webhooks.conftest import WEBHOOK_PATH

OLD, NEW = "whsec_old_secret_being_retired", "whsec_new_secret_after_rotation"


def test_both_variables_and_comma_lists_configure_the_secrets() -> None:
    rotated = Settings.from_env({"STRIPE_WEBHOOK_SECRET": f"{NEW}, {OLD}"})
    assert rotated.webhook_secrets == (NEW, OLD)
    assert rotated.stripe_webhook_secret == NEW
    both = Settings.from_env(
        {"STRIPE_WEBHOOK_SECRETS": f"{NEW},{OLD}", "STRIPE_WEBHOOK_SECRET": OLD}
    )
    assert both.webhook_secrets == (NEW, OLD)
    production = {"BILLINGOS_ENV": "production", "SECRET_KEY": "s", "STRIPE_SECRET_KEY": "sk",
                  "STRIPE_PUBLISHABLE_KEY": "pk", "STRIPE_WEBHOOK_SECRETS": NEW}  # fmt: skip
    assert Settings.from_env(production).webhook_secrets == (NEW,)


@pytest.fixture()
def rotating(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    """The app mid-rotation: the new secret and the one being retired are both accepted."""
    rotated = dataclasses.replace(settings_of(app), stripe_webhook_secrets=(NEW, OLD))
    monkeypatch.setitem(app.config, "BILLINGOS", rotated)


def _post(client: FlaskClient, payload: str | bytes, secret: str) -> Any:
    text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else payload
    return client.post(
        WEBHOOK_PATH,
        data=payload,
        headers={
            "Stripe-Signature": signature_header(text, secret),
            "Content-Type": "application/json",
        },
    )


@pytest.mark.usefixtures("rotating")
def test_events_signed_with_either_secret_are_accepted(client: FlaskClient) -> None:
    for secret in (NEW, OLD):
        event = envelope("customer.created", {"id": "cus_rotation", "object": "customer"})
        response = _post(client, json.dumps(event), secret)
        assert response.status_code == 200, response.get_json()
    stranger = envelope("customer.created", {"id": "cus_rotation", "object": "customer"})
    refused = _post(client, json.dumps(stranger), "whsec_someone_else")
    assert refused.status_code == 400 and refused.get_json()["code"] == "invalid_signature"


def test_non_ascii_body_is_verified_as_the_utf8_text_stripe_signed() -> None:
    event = envelope("customer.created", {"id": "cus_zoe", "object": "customer", "name": "Zoë"})
    text = json.dumps(event, ensure_ascii=False)
    verified = service.verify_event(text.encode("utf-8"), signature_header(text, NEW), (OLD, NEW))
    assert verified["data"]["object"]["name"] == "Zoë"


def test_a_body_that_is_not_utf8_is_an_invalid_payload() -> None:
    body = b'{"id": "evt_1", "name": "\xff"}'
    with pytest.raises(service.InvalidPayload):
        service.verify_event(body, signature_header(body.decode("latin-1"), NEW), (NEW,))
