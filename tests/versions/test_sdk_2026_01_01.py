"""Every SDK route, driven with exactly the bodies the SDKs send; every field they read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient

from app.db import db
from app.entitlements.service import recompute_entitlements
from app.versions import V2026_11_27, sdk_2026_01_01
from models import Customer
from tests.factories import Merchant
from tests.support.ownership import make_purchase, make_subscription
from tests.support.processes import wait_until
from tests.versions.conftest import Catalog, mint, node_headers, react_headers


def _parse_time(value: Any) -> datetime:
    assert isinstance(value, str)
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _sdk_error(response: Any, status: int, code: str) -> dict[str, Any]:
    """What both clients read from an error: a JSON body with `error.message` (and the status)."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert "application/json" in response.headers["Content-Type"]
    error = response.get_json()["error"]
    assert isinstance(error["message"], str) and error["message"]
    assert error["code"] == code
    assert "details" in error
    return error  # type: ignore[no-any-return]


def _customer_id(external_id: str) -> Any:
    db.session.remove()
    return db.session.query(Customer.id).filter_by(external_id=external_id).scalar()


# ---------------------------------------------------------------------- @billingos/node


class TestNodeSdkSessionTokens:
    def test_create_answers_session_token_and_expiry(
        self, client: FlaskClient, merchant: Merchant
    ) -> None:
        before = datetime.now(UTC)
        response = client.post(
            "/v1/session-tokens",
            json={
                "externalUserId": "user_42",
                "externalOrganizationId": "org_7",
                "expiresIn": 600,
                "metadata": {"ip": "203.0.113.9"},
            },
            headers=node_headers(merchant),
        )
        assert response.status_code == 201
        assert response.headers["X-BillingOS-Version"] == "2026-01-01"
        body = response.get_json()
        assert isinstance(body["sessionToken"], str)
        assert body["sessionToken"].startswith("bos_session_test_")
        expires_at = _parse_time(body["expiresAt"])
        assert before + timedelta(seconds=590) < expires_at < before + timedelta(seconds=610)
        assert isinstance(body["id"], str)
        # The token works for the React SDK at once.
        products = client.get("/v1/products", headers=react_headers(body["sessionToken"]))
        assert products.status_code == 200

    def test_expires_in_defaults_to_an_hour(self, client: FlaskClient, merchant: Merchant) -> None:
        before = datetime.now(UTC)
        body = mint(client, merchant)
        response = client.post(
            "/v1/session-tokens", json={"externalUserId": "u"}, headers=node_headers(merchant)
        )
        expires_at = _parse_time(response.get_json()["expiresAt"])
        assert before + timedelta(seconds=3590) < expires_at < before + timedelta(seconds=3610)
        assert body["sessionToken"] != response.get_json()["sessionToken"]

    def test_invalid_body_is_400_in_the_sdk_shape(
        self, client: FlaskClient, merchant: Merchant
    ) -> None:
        response = client.post(
            "/v1/session-tokens", json={"expiresIn": 10}, headers=node_headers(merchant)
        )
        error = _sdk_error(response, 400, "validation_error")
        assert {tuple(d["loc"]) for d in error["details"]} == {
            ("body", "externalUserId"),
            ("body", "expiresIn"),
        }

    def test_scoped_tokens_are_refused_not_widened(
        self, client: FlaskClient, merchant: Merchant
    ) -> None:
        response = client.post(
            "/v1/session-tokens",
            json={"externalUserId": "u", "allowedOperations": ["read:products"]},
            headers=node_headers(merchant),
        )
        _sdk_error(response, 400, "validation_error")

    def test_revoke_by_id_answers_json_and_the_token_stops_working(
        self, client: FlaskClient, merchant: Merchant
    ) -> None:
        token = mint(client, merchant)
        assert (
            client.get("/v1/products", headers=react_headers(token["sessionToken"])).status_code
            == 200
        )
        response = client.delete(
            f"/v1/session-tokens/{token['id']}", headers=node_headers(merchant)
        )
        assert response.status_code == 200
        assert response.get_json() == {"id": token["id"], "revoked": True}
        after = client.get("/v1/products", headers=react_headers(token["sessionToken"]))
        _sdk_error(after, 401, "unauthenticated")
        again = client.delete(f"/v1/session-tokens/{token['id']}", headers=node_headers(merchant))
        assert again.status_code == 200

    def test_revoking_another_organizations_token_is_404(
        self, client: FlaskClient, merchant: Merchant
    ) -> None:
        from tests.factories import make_merchant

        other = make_merchant("Globex")
        token = mint(client, merchant)
        response = client.delete(f"/v1/session-tokens/{token['id']}", headers=other.headers)
        assert response.status_code == 404
        assert (
            client.get("/v1/products", headers=react_headers(token["sessionToken"])).status_code
            == 200
        )


# ---------------------------------------------------------------------- pricing table


class TestPricingTable:
    def test_products_and_current_subscription(
        self, client: FlaskClient, merchant: Merchant, catalog: Catalog, session_token: str
    ) -> None:
        subscription = make_subscription(_customer_id("user_42"), catalog.yearly)
        response = client.get("/v1/products", headers=react_headers(session_token))
        assert response.status_code == 200
        body = response.get_json()
        by_name = {p["name"]: p for p in body["products"]}
        assert set(by_name) == {"Pro", "Team (14-day trial)", "Free", "Lifetime export pack"}
        pro = by_name["Pro"]
        assert pro["id"] == str(catalog.pro.id)
        assert isinstance(pro["description"], str)
        assert (
            pro["isCurrentPlan"] is True
            and by_name["Team (14-day trial)"]["isCurrentPlan"] is False
        )
        assert pro["trialDays"] == 0 and by_name["Team (14-day trial)"]["trialDays"] == 14
        assert pro["prices"] == [
            {
                "id": str(catalog.monthly.id),
                "amount": 1200,
                "currency": "usd",
                "interval": "month",
                "intervalCount": 1,
            },
            {
                "id": str(catalog.yearly.id),
                "amount": 12000,
                "currency": "usd",
                "interval": "year",
                "intervalCount": 1,
            },
        ]
        assert [(f["name"], f["title"], f["type"]) for f in pro["features"]] == [
            ("export", "Export", "boolean_flag"),
            ("pro", "Pro features", "boolean_flag"),
        ]
        assert all(isinstance(f["id"], str) for f in pro["features"])
        assert pro["features"][0]["properties"] == {"limit": None, "period": None, "unit": None}
        current = body["currentSubscription"]
        assert current["id"] == str(subscription.id)
        assert current["productId"] == str(catalog.pro.id)
        assert current["priceId"] == str(catalog.yearly.id)
        assert current["status"] == "active"
        assert _parse_time(current["currentPeriodEnd"]) > datetime.now(UTC)
        assert current["cancelAtPeriodEnd"] is False
        assert current["interval"] == "year" and current["amount"] == 12000

    def test_plan_ids_filter_and_no_subscription(
        self, client: FlaskClient, catalog: Catalog, session_token: str
    ) -> None:
        response = client.get(
            f"/v1/products?planIds={catalog.team.id},{catalog.free.id}",
            headers=react_headers(session_token),
        )
        body = response.get_json()
        assert [p["name"] for p in body["products"]] == ["Team (14-day trial)", "Free"]
        assert body["currentSubscription"] is None

    def test_a_merchant_still_lists_its_catalog(
        self, client: FlaskClient, merchant: Merchant, catalog: Catalog
    ) -> None:
        response = client.get("/v1/products", headers=node_headers(merchant))
        assert response.status_code == 200
        assert {p["name"] for p in response.get_json()["data"]} >= {"Pro", "Free"}


# ---------------------------------------------------------------------- checkout


def _assert_checkout_session(body: dict[str, Any], catalog: Catalog) -> None:
    """CheckoutSession as the bottom sheet reads it (the recurring Pro monthly price)."""
    assert isinstance(body["id"], str)
    assert isinstance(body["clientSecret"], str) and "_secret_" in body["clientSecret"]
    assert body["amount"] == 1200 and body["currency"] == "usd"
    assert body["product"] == {
        "name": "Pro",
        "interval": "month",
        "features": ["Export", "Pro features"],
    }
    assert body["stripeAccountId"] is None
    assert body["stripePublishableKey"] == "pk_test_billingos"
    assert body["proration"] is None
    assert _parse_time(body["expiresAt"]) > datetime.now(UTC)


class TestCheckout:
    def test_bottom_sheet_create_confirm_and_poll(
        self,
        client: FlaskClient,
        catalog: Catalog,
        session_token: str,
        worker: Any,
    ) -> None:
        headers = react_headers(session_token)
        created = client.post(
            "/v1/checkout/create",
            json={
                "priceId": str(catalog.monthly.id),
                "customerEmail": "ada@example.com",
                "customerName": "Ada",
            },
            headers=headers,
        )
        assert created.status_code == 201, created.get_json()
        assert created.headers["Access-Control-Allow-Origin"] == "http://localhost:5173"
        body = created.get_json()
        _assert_checkout_session(body, catalog)
        assert body["customer"] == {"email": "ada@example.com", "name": "Ada"}
        assert body["status"] == "pending" and body["state"] == "open"

        confirmed = client.post(
            f"/v1/checkout/{body['clientSecret']}/confirm",
            json={"paymentMethodId": "pm_card_visa"},
            headers=headers,
        )
        assert confirmed.status_code == 202, confirmed.get_json()
        answer = confirmed.get_json()
        assert answer["success"] is True
        assert answer["status"] == "active"
        assert isinstance(answer["message"], str) and answer["message"]
        assert answer["subscriptionId"] is None or isinstance(answer["subscriptionId"], str)
        assert answer["state"] == "processing"

        def completed() -> Any:
            polled = client.get(f"/v1/checkout/{body['id']}/status", headers=headers)
            assert polled.status_code == 200
            details = polled.get_json()
            return details if details["status"] == "completed" else None

        details = wait_until(completed, what="the checkout to complete")
        _assert_checkout_session(details, catalog)
        assert details["state"] == "succeeded"
        assert details["priceId"] == str(catalog.monthly.id)
        assert details["totalAmount"] == 1200
        assert details["checkoutMode"] == "standard"
        assert details["couponCode"] is None
        assert details["discountAmount"] == 0 and details["taxAmount"] == 0
        assert details["subscription"]["status"] == "active"

    def test_modal_create_and_both_versions_agree(
        self,
        client: FlaskClient,
        catalog: Catalog,
        session_token: str,
        worker: Any,
    ) -> None:
        headers = react_headers(session_token)
        created = client.post(
            "/v1/checkout/create",
            json={
                "priceId": str(catalog.one_time.id),
                "customer": {"email": "ada@example.com", "name": "Ada", "taxId": "DE123"},
                "metadata": {"campaign": "spring"},
                "mode": "embedded",
                "successUrl": "https://shop.example.com/thanks",
                "cancelUrl": "https://shop.example.com/cart",
                "adaptivePricing": False,
            },
            headers=headers,
        )
        assert created.status_code == 201, created.get_json()
        modal = created.get_json()
        assert isinstance(modal["id"], str)
        assert modal["url"] is None
        assert modal["status"] == "pending"
        assert _parse_time(modal["expiresAt"]) > datetime.now(UTC)
        assert modal["product"] == {
            "name": "Lifetime export pack",
            "interval": None,
            "features": ["Export"],
        }
        assert modal["customer"] == {"email": "ada@example.com", "name": "Ada"}

        sdk = client.get(f"/v1/checkout/{modal['id']}/status", headers=headers).get_json()
        ours_response = client.get(
            f"/v1/checkout/{modal['id']}/status",
            headers={**headers, "X-BillingOS-Version": V2026_11_27},
        )
        assert ours_response.headers["X-BillingOS-Version"] == V2026_11_27
        ours = ours_response.get_json()
        assert "clientSecret" not in ours and ours["status"] == "open"
        assert sdk["id"] == ours["id"]
        assert sdk["state"] == ours["status"]
        assert sdk["clientSecret"] == ours["client_secret"]
        assert sdk["amount"] == ours["amount"] == 2900
        assert sdk["currency"] == ours["currency"]
        assert sdk["priceId"] == ours["price_id"]
        assert _parse_time(sdk["expiresAt"]) == _parse_time(ours["expires_at"])
        assert sdk["version"] == ours["version"]

    def test_create_never_answers_without_the_client_secret(
        self,
        client: FlaskClient,
        catalog: Catalog,
        session_token: str,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        # No worker runs, so the checkout cannot open within the (shortened) bound.
        monkeypatch.setattr(sdk_2026_01_01, "CREATE_WAIT_SECONDS", 0.2)
        response = client.post(
            "/v1/checkout/create",
            json={"priceId": str(catalog.monthly.id)},
            headers=react_headers(session_token),
        )
        _sdk_error(response, 503, "checkout_not_ready")
        assert response.headers["Retry-After"] == "1"

    def test_unknown_price_and_coupon(
        self, client: FlaskClient, catalog: Catalog, session_token: str
    ) -> None:
        headers = react_headers(session_token)
        missing = client.post(
            "/v1/checkout/create",
            json={"priceId": "0b6f2a1e-8f5c-4a55-9a57-3c0b2d4a9e11"},
            headers=headers,
        )
        _sdk_error(missing, 404, "price_not_found")
        coupon = client.post(
            "/v1/checkout/create",
            json={"priceId": str(catalog.monthly.id), "couponCode": "SPRING"},
            headers=headers,
        )
        _sdk_error(coupon, 400, "coupon_not_supported")
        upgrade = client.post(
            "/v1/checkout/create",
            json={"priceId": str(catalog.yearly.id), "existingSubscriptionId": "sub_1"},
            headers=headers,
        )
        _sdk_error(upgrade, 400, "plan_change_not_supported")

    def test_confirm_of_an_unknown_checkout_is_404(
        self, client: FlaskClient, session_token: str
    ) -> None:
        response = client.post(
            "/v1/checkout/pi_nope_secret_nope/confirm",
            json={"paymentMethodId": "pm_card_visa"},
            headers=react_headers(session_token),
        )
        _sdk_error(response, 404, "checkout_not_found")


# ---------------------------------------------------------------------- features


class TestFeatures:
    def test_check_and_entitlements_from_the_entitlement_cache(
        self, client: FlaskClient, catalog: Catalog, session_token: str
    ) -> None:
        customer_id = _customer_id("user_42")
        make_purchase(customer_id, catalog.one_time)
        recompute_entitlements(db.session(), customer_id)
        db.session.commit()
        headers = react_headers(session_token)
        granted = client.get("/v1/features/check?feature_key=export", headers=headers)
        assert granted.status_code == 200
        body = granted.get_json()
        assert body["feature_key"] == "export" and body["has_access"] is True
        assert body["limit"] is None and body["usage"] is None
        assert isinstance(body["metadata"], dict)
        denied = client.get("/v1/features/check?feature_key=team", headers=headers).get_json()
        assert denied["feature_key"] == "team" and denied["has_access"] is False
        listed = client.get("/v1/features/entitlements", headers=headers).get_json()
        assert [(e["feature_key"], e["has_access"]) for e in listed["entitlements"]] == [
            ("export", True)
        ]

    def test_a_revocation_is_seen_at_once(
        self, client: FlaskClient, catalog: Catalog, session_token: str
    ) -> None:
        customer_id = _customer_id("user_42")
        subscription = make_subscription(customer_id, catalog.monthly)
        recompute_entitlements(db.session(), customer_id)
        db.session.commit()
        headers = react_headers(session_token)
        check = "/v1/features/check?feature_key=pro"
        assert client.get(check, headers=headers).get_json()["has_access"] is True
        subscription.status = "canceled"
        recompute_entitlements(db.session(), customer_id)
        db.session.commit()  # invalidates the cache after the commit
        assert client.get(check, headers=headers).get_json()["has_access"] is False
