"""Credential prefixes and modes: SDK prefixes minted, legacy ones accepted, other mode 401."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import credentials
from app.auth import digest
from app.config import ConfigError, Settings
from app.db import db
from models import ApiKey, SessionToken
from tests.factories import Buyer, Merchant


@pytest.fixture()
def live_mode(app: Flask) -> Iterator[None]:
    """This deployment serving live mode (the Stripe key itself is not used by these tests)."""
    settings = app.config["BILLINGOS"]
    app.config["BILLINGOS"] = dataclasses.replace(settings, mode="live")
    yield
    app.config["BILLINGOS"] = settings


class TestPrefixes:
    def test_minted_credentials_carry_the_sdk_prefixes(
        self, merchant: Merchant, buyer: Buyer
    ) -> None:
        assert merchant.secret_key.startswith("sk_test_")
        assert buyer.token.startswith("bos_session_test_")

    def test_no_prefix_shadows_another(self) -> None:
        prefixes = [p.prefix for p in credentials.PREFIXES]
        for a in prefixes:
            assert [b for b in prefixes if b.startswith(a)] == [a]

    def test_credentials_issued_under_the_old_prefixes_keep_working(
        self, client: FlaskClient, merchant: Merchant, buyer: Buyer
    ) -> None:
        old_key = "bos_sk_test_" + "k" * 43
        db.session.add(
            ApiKey(organization_id=merchant.id, key_hash=digest(old_key), key_prefix=old_key[:16])
        )
        token = db.session.query(SessionToken).filter_by(customer_id=buyer.customer_id).one()
        old_token = "bos_st_" + "t" * 43
        token.token_hash = digest(old_token)
        db.session.commit()
        assert (
            client.get("/v1/checkouts", headers={"Authorization": f"Bearer {old_key}"}).status_code
            == 200
        )
        response = client.get("/v1/products", headers={"Authorization": f"Bearer {old_token}"})
        assert response.status_code == 200


class TestModes:
    def test_a_live_credential_on_a_test_host_is_401_naming_the_live_host(
        self, client: FlaskClient
    ) -> None:
        response = client.get("/v1/products", headers={"Authorization": "Bearer sk_live_abc"})
        assert response.status_code == 401
        body = response.get_json()
        assert body["code"] == "wrong_mode"
        assert "live-mode" in body["detail"] and "https://api.billingos.dev" in body["detail"]
        assert body["error"]["message"] == body["detail"]

    def test_a_test_credential_on_a_live_host_is_401_naming_the_sandbox(
        self, client: FlaskClient, merchant: Merchant, buyer: Buyer, live_mode: None
    ) -> None:
        for headers in (merchant.headers, buyer.headers):
            response = client.get("/v1/products", headers=headers)
            assert response.status_code == 401
            assert "https://sandbox-api.billingos.dev" in response.get_json()["detail"]

    def test_a_live_host_mints_live_credentials(
        self, client: FlaskClient, live_mode: None, app_context: None
    ) -> None:
        from app.organizations.service import create_organization

        _organization, secret_key = create_organization("Live shop", "2026-01-01")
        db.session.commit()
        assert secret_key.startswith("sk_live_")
        minted = client.post(
            "/v1/session-tokens",
            json={"externalUserId": "u1"},
            headers={"Authorization": f"Bearer {secret_key}"},
        )
        assert minted.status_code == 201
        token = minted.get_json()["sessionToken"]
        assert token.startswith("bos_session_live_")
        assert (
            client.get("/v1/products", headers={"Authorization": f"Bearer {token}"}).status_code
            == 200
        )


class TestModeSetting:
    def _settings(self, **env: str) -> Settings:
        return Settings.from_env({"STRIPE_SECRET_KEY": "sk_test_x", **env})

    def test_defaults_to_test(self) -> None:
        assert self._settings().mode == "test"

    def test_live_needs_a_live_stripe_key(self) -> None:
        with pytest.raises(ConfigError, match="BILLINGOS_MODE=live needs a live"):
            self._settings(BILLINGOS_MODE="live").require_safe_secrets()
        live = self._settings(BILLINGOS_MODE="live", STRIPE_SECRET_KEY="sk_live_real")
        assert live.mode == "live"
        assert not [p for p in live.secret_problems() if "BILLINGOS_MODE" in p]

    def test_a_live_stripe_key_needs_live_mode_and_modes_are_known(self) -> None:
        with pytest.raises(ConfigError, match="needs BILLINGOS_MODE=live"):
            self._settings(STRIPE_SECRET_KEY="sk_live_real").require_safe_secrets()
        with pytest.raises(ConfigError):
            self._settings(BILLINGOS_MODE="staging")


def test_sdk_credentials_are_redacted_in_logs_whole() -> None:
    from app.logging_setup import redact

    for secret, tail in (
        ("sk_test_ab-cd_ef", "-cd_ef"),
        ("sk_live_ab-cd", "-cd"),
        ("bos_session_test_x-y_z", "x-y_z"),
    ):
        redacted = redact(f"Authorization: Bearer {secret}")
        assert secret not in redacted and tail not in redacted
