"""The merchant's organization settings, and `create-org`'s version and origin options."""

from __future__ import annotations

import json

from flask import Flask
from flask.testing import FlaskClient

from app.versions import NEW_ORGANIZATION_VERSION
from tests.factories import Merchant


class TestOrganizationSettings:
    def test_read_and_change_allowed_origins(self, client: FlaskClient, merchant: Merchant) -> None:
        current = client.get("/v1/organization", headers=merchant.headers)
        assert current.status_code == 200
        assert current.get_json()["allowed_origins"] == []
        assert current.get_json()["api_version"] == "2026-11-27"
        changed = client.patch(
            "/v1/organization",
            json={"allowed_origins": ["https://app.acme.example", "http://localhost:3000"]},
            headers=merchant.headers,
        )
        assert changed.status_code == 200
        assert changed.get_json()["allowed_origins"] == [
            "https://app.acme.example",
            "http://localhost:3000",
        ]
        preflight = client.options(
            "/v1/products",
            headers={"Origin": "http://localhost:3000", "Access-Control-Request-Method": "GET"},
        )
        assert preflight.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"

    def test_an_origin_is_scheme_host_and_port_only(
        self, client: FlaskClient, merchant: Merchant
    ) -> None:
        for bad in ("*", "https://app.example.com/", "app.example.com", "https://a.example/path"):
            response = client.patch(
                "/v1/organization", json={"allowed_origins": [bad]}, headers=merchant.headers
            )
            assert response.status_code == 422, bad

    def test_change_the_default_version(self, client: FlaskClient, merchant: Merchant) -> None:
        response = client.patch(
            "/v1/organization", json={"api_version": "2026-01-01"}, headers=merchant.headers
        )
        assert response.status_code == 200
        after = client.get("/v1/organization", headers=merchant.headers)
        assert after.headers["X-BillingOS-Version"] == "2026-01-01"
        assert after.get_json()["api_version"] == "2026-01-01"
        unknown = client.patch(
            "/v1/organization", json={"api_version": "2030-01-01"}, headers=merchant.headers
        )
        assert unknown.status_code == 400  # rendered in 2026-01-01 now

    def test_a_session_token_cannot_read_them(self, client: FlaskClient, buyer) -> None:  # type: ignore[no-untyped-def]
        assert client.get("/v1/organization", headers=buyer.headers).status_code == 403


class TestCreateOrg:
    def test_new_organizations_speak_the_sdk_dialect(self, app: Flask, app_context: None) -> None:
        result = app.test_cli_runner().invoke(args=["billingos", "create-org", "Shop", "--json"])
        assert result.exit_code == 0, result.output
        data = json.loads(result.output)
        assert data["api_version"] == NEW_ORGANIZATION_VERSION == "2026-01-01"
        assert data["allowed_origins"] == []

    def test_version_and_origins_options(self, app: Flask, app_context: None) -> None:
        result = app.test_cli_runner().invoke(
            args=[
                "billingos", "create-org", "Shop", "--json", "--api-version", "2026-11-27",
                "--allowed-origin", "https://app.shop.example",
                "--allowed-origin", "http://localhost:5173",
            ]
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        data = json.loads(result.output)
        assert data["api_version"] == "2026-11-27"
        assert data["allowed_origins"] == ["https://app.shop.example", "http://localhost:5173"]

    def test_a_bad_origin_is_refused(self, app: Flask, app_context: None) -> None:
        result = app.test_cli_runner().invoke(
            args=["billingos", "create-org", "Shop", "--allowed-origin", "https://x.example/"]
        )
        assert result.exit_code != 0

    def test_the_demo_allows_the_react_dev_servers(self, app: Flask, app_context: None) -> None:
        seed = app.test_cli_runner().invoke(args=["billingos", "seed-demo", "--json"])
        data = json.loads(seed.output)
        assert data["allowed_origins"] == ["http://localhost:3000", "http://localhost:5173"]
        assert data["api_version"] == "2026-01-01"
