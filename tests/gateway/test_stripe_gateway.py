"""The Stripe gateway against the emulator over HTTP: keys, metadata, and the error vocabulary."""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

import pytest
from flask import Flask

from app.config import Settings
from app.stripe_gateway import (
    InvalidStripeRequest,
    PaymentDeclined,
    StripeGateway,
    TransientStripeError,
    get_gateway,
    payment_intent_id_from_client_secret,
)
from tests.gateway.conftest import new_customer


def test_one_gateway_per_process(app: Flask, stripe_emulator: Any) -> None:
    with app.app_context():
        assert get_gateway() is get_gateway()
        assert get_gateway().client is get_gateway().client


def test_writes_are_idempotent_and_traceable(gateway: StripeGateway, stripe_emulator: Any) -> None:
    organization_id, checkout_id = uuid.uuid4(), uuid.uuid4()
    customer_id = new_customer(gateway, organization_id)
    first = gateway.create_payment_intent(
        checkout_id=checkout_id,
        organization_id=organization_id,
        stripe_customer_id=customer_id,
        amount=2900,
        currency="usd",
    )
    again = gateway.create_payment_intent(
        checkout_id=checkout_id,
        organization_id=organization_id,
        stripe_customer_id=customer_id,
        amount=2900,
        currency="usd",
    )
    assert again.id == first.id
    assert first.metadata.to_dict() == {
        "billingos_organization_id": str(organization_id),
        "billingos_checkout_id": str(checkout_id),
    }
    assert payment_intent_id_from_client_secret(first.client_secret) == first.id
    posts = stripe_emulator.requests(path="/v1/payment_intents", method="POST")
    assert [r["idempotency_key"] for r in posts] == [f"checkout:{checkout_id}:prepare"] * 2
    assert [r["replayed"] for r in posts] == [False, True]


def test_the_same_customer_is_ensured_once(gateway: StripeGateway, stripe_emulator: Any) -> None:
    customer_id, organization_id = uuid.uuid4(), uuid.uuid4()
    made = [
        gateway.ensure_customer(
            customer_id=customer_id,
            organization_id=organization_id,
            external_id="user_1",
            email=email,
            name=None,
        )
        for email in ("a@example.com", "a@example.com", "changed@example.com")
    ]
    assert len(set(made)) == 1
    customer = stripe_emulator.client().v1.customers.retrieve(made[0])
    assert customer.metadata["billingos_customer_id"] == str(customer_id)
    # A stored id is returned without asking Stripe.
    before = len(stripe_emulator.requests(path="/v1/customers"))
    assert (
        gateway.ensure_customer(
            customer_id=customer_id,
            organization_id=organization_id,
            external_id="user_1",
            email=None,
            name=None,
            stripe_customer_id=made[0],
        )
        == made[0]
    )
    assert len(stripe_emulator.requests(path="/v1/customers")) == before


def test_decline_is_permanent_with_its_codes(gateway: StripeGateway) -> None:
    organization_id, checkout_id = uuid.uuid4(), uuid.uuid4()
    intent = gateway.create_payment_intent(
        checkout_id=checkout_id,
        organization_id=organization_id,
        stripe_customer_id=new_customer(gateway, organization_id),
        amount=1000,
        currency="usd",
    )
    with pytest.raises(PaymentDeclined) as declined:
        gateway.confirm_payment_intent(
            intent.id,
            idempotency_key=f"checkout:{checkout_id}:confirm:1",
            payment_method="pm_card_visa_chargeDeclinedInsufficientFunds",
        )
    assert declined.value.code == "card_declined"
    assert declined.value.decline_code == "insufficient_funds"
    assert declined.value.stripe_object is not None
    assert declined.value.stripe_object["status"] == "requires_payment_method"


def test_invalid_request_is_permanent(gateway: StripeGateway) -> None:
    with pytest.raises(InvalidStripeRequest) as invalid:
        gateway.retrieve_payment_intent("pi_does_not_exist")
    assert invalid.value.http_status == 404


def test_bad_credentials_are_permanent(settings: Settings) -> None:
    gateway = StripeGateway(dataclasses.replace(settings, stripe_secret_key="not_a_key"))
    with pytest.raises(InvalidStripeRequest):
        gateway.retrieve_payment_intent("pi_1")


@pytest.mark.parametrize("kind", ["error_500", "rate_limit", "timeout", "reset"])
def test_network_and_server_failures_are_transient(
    gateway: StripeGateway, stripe_emulator: Any, kind: str
) -> None:
    stripe_emulator.set_faults(kind, rate=1.0, timeout_seconds=0.2)
    with pytest.raises(TransientStripeError):
        gateway.retrieve_payment_intent("pi_1")


def test_unreachable_stripe_is_transient(settings: Settings) -> None:
    from tests.support.processes import free_port

    down = dataclasses.replace(settings, stripe_api_base=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(TransientStripeError):
        StripeGateway(down).retrieve_payment_intent("pi_1")
