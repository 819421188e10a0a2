"""API versions: the header, the organization's default, unknown versions, the OpenAPI documents."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient

from app.versions import SDK_2026_01_01, V2026_11_27
from tests.factories import Merchant, make_merchant
from tests.versions.conftest import node_headers


class TestWhichVersion:
    def test_unknown_version_is_400_naming_the_known_ones(
        self, client: FlaskClient, merchant: Merchant
    ) -> None:
        response = client.get(
            "/v1/products", headers={**merchant.headers, "X-BillingOS-Version": "2025-06-01"}
        )
        assert response.status_code == 400
        body = response.get_json()
        # Rendered in the base version, with the dialect's `error` member for either client.
        assert body["code"] == "unknown_api_version"
        assert "2026-01-01" in body["detail"] and "2026-11-27" in body["detail"]
        assert body["error"]["message"] == body["detail"]
        assert response.headers["X-BillingOS-Version"] == V2026_11_27
        assert "X-BillingOS-Version" in response.headers["Vary"]

    def test_without_a_header_the_organizations_default_applies(
        self, client: FlaskClient, merchant: Merchant
    ) -> None:
        pinned = make_merchant("Pinned", api_version=V2026_11_27)
        body = {"externalUserId": "u1"}
        sdk = client.post("/v1/session-tokens", json=body, headers=node_headers(merchant))
        assert sdk.status_code == 201 and "sessionToken" in sdk.get_json()
        assert sdk.headers["X-BillingOS-Version"] == SDK_2026_01_01
        ours = client.post("/v1/session-tokens", json=body, headers=pinned.headers)
        assert ours.status_code == 422
        assert ours.mimetype == "application/problem+json"
        assert ours.headers["X-BillingOS-Version"] == V2026_11_27

    def test_the_header_overrides_the_default(
        self, client: FlaskClient, merchant: Merchant
    ) -> None:
        response = client.post(
            "/v1/session-tokens",
            json={"customer": {"external_id": "u1"}},
            headers={**merchant.headers, "X-BillingOS-Version": V2026_11_27},
        )
        assert response.status_code == 201
        body = response.get_json()
        assert body["token"].startswith("bos_session_test_") and "sessionToken" not in body
        assert isinstance(body["id"], str)

    def test_an_unauthenticated_error_without_header_is_readable_by_both_clients(
        self, client: FlaskClient
    ) -> None:
        response = client.post(
            "/v1/session-tokens", json={}, headers={"Authorization": "Bearer sk_test_nope"}
        )
        assert response.status_code == 401
        body = response.get_json()
        assert body["code"] == "unauthenticated" and body["error"]["code"] == "unauthenticated"
        assert body["error"]["message"] == body["detail"]

    def test_the_dialect_renders_errors_of_routes_without_a_translator(
        self, client: FlaskClient, merchant: Merchant
    ) -> None:
        response = client.get("/v1/checkouts?limit=1000", headers=merchant.headers)
        assert response.status_code == 400
        assert response.mimetype == "application/json"
        assert response.get_json()["error"]["code"] == "validation_error"


class TestOpenApi:
    def _doc(self, client: FlaskClient, version: str | None = None) -> Any:
        url = "/openapi.json" + (f"?version={version}" if version else "")
        response = client.get(url)
        assert response.status_code == 200
        return response.get_json()

    def test_each_version_documents_its_own_bodies(self, client: FlaskClient) -> None:
        ours = self._doc(client, V2026_11_27)
        sdk = self._doc(client, SDK_2026_01_01)
        assert ours["info"]["version"] == V2026_11_27 and sdk["info"]["version"] == SDK_2026_01_01

        def create_body(doc: Any) -> Any:
            ref = doc["paths"]["/v1/checkout/create"]["post"]["requestBody"]["content"][
                "application/json"
            ]["schema"]["$ref"]
            return doc["components"]["schemas"][ref.rsplit("/", 1)[1]]

        assert "price_id" in create_body(ours)["properties"]
        assert "priceId" in create_body(sdk)["properties"]
        sdk_create = sdk["paths"]["/v1/checkout/create"]["post"]["responses"]
        assert "application/json" in sdk_create["400"]["content"]
        assert "422" not in sdk_create
        assert (
            "application/problem+json"
            in ours["paths"]["/v1/checkout/create"]["post"]["responses"]["422"]["content"]
        )
        assert "/v1/features/check" in sdk["paths"] and "/v1/features/check" in ours["paths"]
        # Hand-written error entries (websockets, webhooks) follow the version too.
        upgrade = sdk["paths"]["/v1/customer/ws"]["get"]["responses"]["400"]["content"]
        assert list(upgrade) == ["application/json"]
        products = sdk["paths"]["/v1/products"]["get"]["responses"]["200"]["content"]
        schema = products["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
        options = sdk["components"]["schemas"][schema]["anyOf"]
        assert {o["$ref"].rsplit("/", 1)[1] for o in options} == {"PricingTable", "ProductList"}

    def test_unknown_version_is_400(self, client: FlaskClient) -> None:
        response = client.get("/openapi.json?version=1999-01-01")
        assert response.status_code == 400
        assert response.get_json()["code"] == "unknown_api_version"

    def test_without_a_version_the_base_version(self, client: FlaskClient) -> None:
        assert self._doc(client)["info"]["version"] == V2026_11_27


def test_every_translator_names_a_route_of_the_app(app) -> None:  # type: ignore[no-untyped-def]
    """A renamed handler must not silently drop its route back to 2026-11-27's shape."""
    from app.versions import _TRANSLATORS

    assert _TRANSLATORS
    for _version, endpoint in _TRANSLATORS:
        assert endpoint in app.view_functions, endpoint
