"""The Stripe.js stand-in: the script at /js/v3/ and the browser calls it makes, authorised as
Stripe's are (a publishable key; an intent only with its own client secret)."""

from __future__ import annotations

from typing import Any

import requests


def _call(emu: Any, method: str, path: str, **body: Any) -> requests.Response:
    url = f"{emu.url}/_stripejs/{path}"
    headers = {"Origin": "http://shop.test"}
    if method == "GET":
        return requests.get(url, params=body, headers=headers, timeout=5)
    return requests.post(url, json=body, headers=headers, timeout=5)


def _payment_intent(client: Any) -> Any:
    return client.v1.payment_intents.create(params={"amount": 1500, "currency": "usd"})


def test_the_script_is_served_as_javascript(emu: Any) -> None:
    response = requests.get(f"{emu.url}/js/v3/", timeout=5)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/javascript")
    assert "window.Stripe = Stripe" in response.text


def test_a_card_becomes_a_payment_method_with_a_publishable_key_only(emu: Any) -> None:
    card = {"number": "4242424242424242", "exp_month": 12, "exp_year": 2034, "cvc": "123"}
    refused = _call(emu, "POST", "payment_methods", key="sk_test_x", card=card)
    assert refused.status_code == 401

    created = _call(emu, "POST", "payment_methods", key="pk_test_x", card=card)
    assert created.status_code == 200, created.text
    assert created.headers["Access-Control-Allow-Origin"] == "http://shop.test"
    method = created.json()
    assert method["id"].startswith("pm_") and method["card"]["last4"] == "4242"
    assert "123" not in created.text  # the CVC is checked, never kept


def test_an_intent_is_reached_only_with_its_own_client_secret(emu: Any, client: Any) -> None:
    intent = _payment_intent(client)
    forged = intent.client_secret.rsplit("_", 1)[0] + "_forged"
    assert _call(emu, "GET", "intents", key="pk_test_x", client_secret=forged).status_code == 404

    read = _call(emu, "GET", "intents", key="pk_test_x", client_secret=intent.client_secret)
    assert read.status_code == 200 and read.json()["id"] == intent.id


def test_three_d_secure_is_completed_from_the_browser(emu: Any, client: Any) -> None:
    intent = _payment_intent(client)
    secret = intent.client_secret
    confirmed = _call(
        emu,
        "POST",
        "intents/confirm",
        key="pk_test_x",
        client_secret=secret,
        payment_method="pm_card_authenticationRequired",
    ).json()
    assert confirmed["status"] == "requires_action"

    done = _call(
        emu,
        "POST",
        "intents/authenticate",
        key="pk_test_x",
        client_secret=secret,
        outcome="succeed",
    )
    assert done.json()["status"] == "succeeded"
    assert client.v1.payment_intents.retrieve(intent.id).status == "succeeded"


def test_a_preflight_is_answered_for_any_origin(emu: Any) -> None:
    response = requests.options(
        f"{emu.url}/_stripejs/payment_methods",
        headers={"Origin": "http://shop.test", "Access-Control-Request-Method": "POST"},
        timeout=5,
    )
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == "http://shop.test"
