"""POST/GET /v1/portal-session: the Stripe billing portal for customers Stripe knows."""

from __future__ import annotations

import urllib.request
from datetime import datetime, timedelta

from models.base import utcnow

PORTAL = "/v1/portal-session"


def _subscribe_free(client, buyer, catalog):
    response = client.post(
        "/v1/customer/subscription/create",
        json={"price_id": str(catalog.free_monthly.id)},
        headers=buyer.headers,
    )
    assert response.status_code == 201


class TestPortal:
    def test_a_paying_customer_gets_a_working_portal_url(
        self, client, buyer, catalog, relay, stripe_emulator
    ):
        from tests.support.billing import subscribe_with_card

        subscribe_with_card(relay, buyer, catalog.monthly)
        response = client.post(
            PORTAL, json={"return_url": "https://app.example.com/account"}, headers=buyer.headers
        )
        assert response.status_code == 201, response.get_json()
        body = response.get_json()
        expires_at = datetime.fromisoformat(body["expires_at"])
        assert utcnow() < expires_at <= utcnow() + timedelta(minutes=5, seconds=5)
        # The URL is Stripe's (here the emulator's) hosted page for this customer.
        assert body["url"].startswith(stripe_emulator.url)
        with urllib.request.urlopen(body["url"], timeout=10) as page:  # noqa: S310 (test URL)
            assert page.status == 200
        [request] = stripe_emulator.requests(path="/v1/billing_portal/sessions")
        assert request["params"]["return_url"] == "https://app.example.com/account"

    def test_get_takes_the_return_url_from_the_query(self, client, buyer, catalog, stripe_emulator):
        _subscribe_free(client, buyer, catalog)
        response = client.get(
            PORTAL, query_string={"return_url": "http://localhost:3000/"}, headers=buyer.headers
        )
        assert response.status_code == 201
        [request] = stripe_emulator.requests(path="/v1/billing_portal/sessions")
        assert request["params"]["return_url"] == "http://localhost:3000/"

    def test_return_url_is_optional(self, client, buyer, catalog, stripe_emulator):
        _subscribe_free(client, buyer, catalog)
        assert client.post(PORTAL, headers=buyer.headers).status_code == 201

    def test_a_customer_who_never_paid_gets_a_clear_conflict(self, client, buyer, stripe_emulator):
        response = client.post(PORTAL, json={}, headers=buyer.headers)
        assert response.status_code == 409
        body = response.get_json()
        assert body["code"] == "no_billing_account"
        assert "first checkout" in body["detail"]
        assert stripe_emulator.requests(path="/v1/billing_portal") == []

    def test_return_url_must_be_an_absolute_http_url(self, client, buyer, catalog, stripe_emulator):
        _subscribe_free(client, buyer, catalog)
        for bad in ("javascript:alert(1)", "/account", "ftp://example.com/", "https://", 42):
            response = client.post(PORTAL, json={"return_url": bad}, headers=buyer.headers)
            assert response.status_code == 422, bad
            assert response.get_json()["errors"][0]["loc"] == ["body", "return_url"]
        response = client.get(
            PORTAL, query_string={"return_url": "javascript:alert(1)"}, headers=buyer.headers
        )
        assert response.status_code == 422

    def test_needs_a_session_token(self, client, merchant, stripe_emulator):
        assert client.post(PORTAL, json={}).status_code == 401
        assert client.post(PORTAL, json={}, headers=merchant.headers).status_code == 403
