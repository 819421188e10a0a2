"""CORS per organization: preflights for the SDK's routes, the real request checked against the
organization of its credential, nothing for other origins, never `*`."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient

from tests.factories import Buyer, Merchant, make_buyer, make_merchant

APP = "https://app.acme.example"
OTHER = "https://evil.example"


def _preflight(
    client: FlaskClient, path: str, origin: str, method: str = "POST", **extra: str
) -> Any:
    headers = {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": extra.get(
            "request_headers", "authorization,content-type,x-billingos-version"
        ),
    }
    return client.options(path, headers=headers)


def _acme() -> tuple[Merchant, Buyer]:
    merchant = make_merchant("Acme shop", allowed_origins=(APP,))
    return merchant, make_buyer(merchant)


class TestPreflight:
    def test_allowed_origin_gets_an_exact_answer(self, client: FlaskClient) -> None:
        _acme()
        response = _preflight(client, "/v1/checkout/create", APP)
        assert response.status_code == 204
        assert response.headers["Access-Control-Allow-Origin"] == APP
        allowed = {
            h.strip().lower() for h in response.headers["Access-Control-Allow-Headers"].split(",")
        }
        assert allowed == {
            "authorization",
            "content-type",
            "x-billingos-version",
            "idempotency-key",
        }
        assert response.headers["Access-Control-Allow-Methods"] == "POST"
        assert response.headers["Access-Control-Max-Age"] == "600"
        assert "Origin" in response.headers["Vary"]
        assert "Access-Control-Allow-Credentials" not in response.headers

    def test_every_sdk_route_is_preflighted(self, client: FlaskClient) -> None:
        _acme()
        for method, path in (
            ("GET", "/v1/products"),
            ("POST", "/v1/checkout/pi_1_secret_2/confirm"),
            ("GET", "/v1/checkout/0b6f2a1e-8f5c-4a55-9a57-3c0b2d4a9e11/status"),
            ("GET", "/v1/features/check"),
            ("GET", "/v1/features/entitlements"),
            ("POST", "/v1/features/track-usage"),
            ("GET", "/v1/features/usage-metrics"),
        ):
            response = _preflight(client, path, APP, method)
            assert response.headers.get("Access-Control-Allow-Origin") == APP, path

    def test_other_origin_gets_no_cors_headers(self, client: FlaskClient) -> None:
        _acme()
        response = _preflight(client, "/v1/checkout/create", OTHER)
        assert "Access-Control-Allow-Origin" not in response.headers

    def test_secret_key_routes_are_never_preflighted(self, client: FlaskClient) -> None:
        _acme()
        response = _preflight(client, "/v1/session-tokens", APP)
        assert "Access-Control-Allow-Origin" not in response.headers

    def test_an_unexpected_request_header_is_not_allowed(self, client: FlaskClient) -> None:
        _acme()
        response = _preflight(client, "/v1/products", APP, "GET", request_headers="x-custom")
        assert "Access-Control-Allow-Origin" not in response.headers


class TestActualRequest:
    def test_allowed_origin_reads_the_answer(self, client: FlaskClient) -> None:
        _merchant, buyer = _acme()
        response = client.get("/v1/products", headers={**buyer.headers, "Origin": APP})
        assert response.status_code == 200
        assert response.headers["Access-Control-Allow-Origin"] == APP
        assert "X-BillingOS-Version" in response.headers["Access-Control-Expose-Headers"]

    def test_an_origin_of_another_organization_is_refused(self, client: FlaskClient) -> None:
        _acme()
        other = make_merchant("Other shop", allowed_origins=(OTHER,))
        buyer = make_buyer(other)
        # The preflight passes (some organization allows APP), the request itself does not.
        response = client.get("/v1/products", headers={**buyer.headers, "Origin": APP})
        assert response.status_code == 403
        assert response.get_json()["code"] == "origin_not_allowed"
        assert "Access-Control-Allow-Origin" not in response.headers

    def test_a_bad_token_from_an_allowed_origin_is_readable(self, client: FlaskClient) -> None:
        _acme()
        response = client.get(
            "/v1/products",
            headers={"Authorization": "Bearer bos_session_test_nope", "Origin": APP},
        )
        assert response.status_code == 401
        assert response.headers["Access-Control-Allow-Origin"] == APP

    def test_servers_send_no_origin_and_are_unaffected(self, client: FlaskClient) -> None:
        _merchant, buyer = _acme()
        response = client.get("/v1/products", headers=buyer.headers)
        assert response.status_code == 200
        assert "Access-Control-Allow-Origin" not in response.headers
