"""Credentials: who may reach what (secret keys and session tokens)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app.auth import digest
from app.db import db
from app.errors import Unauthenticated
from models import ApiKey, SessionToken
from models.base import utcnow
from tests.factories import make_buyer, make_merchant, make_product


def _problem(response, status: int, code: str) -> None:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["code"] == code


class TestSecretKeys:
    def test_missing_credential_is_401(self, client):
        _problem(client.get("/v1/products"), 401, "unauthenticated")

    def test_malformed_header_is_401(self, client, merchant):
        for header in (merchant.secret_key, f"Basic {merchant.secret_key}", "Bearer ", "Bearer"):
            _problem(
                client.get("/v1/products", headers={"Authorization": header}),
                401,
                "unauthenticated",
            )

    def test_unknown_key_is_401(self, client, merchant):
        forged = merchant.secret_key[:-4] + "AAAA"
        response = client.get("/v1/products", headers={"Authorization": f"Bearer {forged}"})
        _problem(response, 401, "unauthenticated")

    def test_revoked_key_is_401(self, client, merchant):
        key = db.session.query(ApiKey).filter_by(key_hash=digest(merchant.secret_key)).one()
        key.revoked_at = utcnow()
        db.session.commit()
        _problem(client.get("/v1/products", headers=merchant.headers), 401, "unauthenticated")

    def test_keys_are_stored_only_as_digests(self, merchant):
        stored = db.session.query(ApiKey).filter_by(organization_id=merchant.id).one()
        assert merchant.secret_key.startswith("sk_test_")
        assert len(merchant.secret_key) - len("sk_test_") >= 32
        assert stored.key_hash == digest(merchant.secret_key)
        assert merchant.secret_key not in (stored.key_hash, stored.key_prefix)

    def test_other_organizations_product_is_404(self, client, merchant):
        other = make_merchant("Other")
        product = make_product(other)
        response = client.get(f"/v1/products/{product.id}", headers=merchant.headers)
        _problem(response, 404, "product_not_found")
        assert client.get(f"/v1/products/{product.id}", headers=other.headers).status_code == 200


class TestSessionTokens:
    def test_token_lists_only_its_organizations_active_products(self, client, merchant, buyer):
        make_product(merchant, name="Mine")
        make_product(make_merchant("Other"), name="Theirs")
        response = client.get("/v1/products", headers=buyer.headers)
        assert response.status_code == 200
        assert [p["name"] for p in response.get_json()["data"]] == ["Mine"]

    def test_expired_token_is_401_token_expired(self, client, merchant):
        buyer = make_buyer(merchant)
        row = db.session.query(SessionToken).filter_by(token_hash=digest(buyer.token)).one()
        row.expires_at = utcnow() - timedelta(seconds=1)
        db.session.commit()
        _problem(client.get("/v1/products", headers=buyer.headers), 401, "token_expired")

    def test_revoked_token_is_401(self, client, merchant, buyer):
        response = client.post(
            "/v1/session-tokens/revoke", json={"token": buyer.token}, headers=merchant.headers
        )
        assert response.get_json() == {"revoked": True}
        _problem(client.get("/v1/products", headers=buyer.headers), 401, "unauthenticated")

    def test_another_organization_cannot_revoke_a_token(self, client, merchant, buyer):
        other = make_merchant("Other")
        response = client.post(
            "/v1/session-tokens/revoke", json={"token": buyer.token}, headers=other.headers
        )
        assert response.get_json() == {"revoked": False}
        assert client.get("/v1/products", headers=buyer.headers).status_code == 200

    def test_session_token_on_merchant_endpoint_is_refused(self, client, merchant, buyer):
        product = make_product(merchant)
        _problem(
            client.get(f"/v1/products/{product.id}", headers=buyer.headers),
            403,
            "wrong_credential_type",
        )
        _problem(
            client.post(
                "/v1/session-tokens", json={"customer": {"external_id": "x"}}, headers=buyer.headers
            ),
            403,
            "wrong_credential_type",
        )

    def test_unknown_token_is_401(self, client):
        response = client.get("/v1/products", headers={"Authorization": "Bearer bos_st_nope"})
        _problem(response, 401, "unauthenticated")


class TestMintingSessionTokens:
    def test_creates_customer_on_first_sight_and_reuses_it(self, client, merchant):
        body = {"customer": {"external_id": "user_42", "email": "a@example.com"}, "expires_in": 600}
        first = client.post("/v1/session-tokens", json=body, headers=merchant.headers)
        assert first.status_code == 201
        data = first.get_json()
        assert data["token"].startswith("bos_session_test_")
        assert data["customer"]["external_id"] == "user_42"
        assert data["customer"]["email"] == "a@example.com"
        second = client.post(
            "/v1/session-tokens",
            json={"customer": {"external_id": "user_42", "name": "Ada"}},
            headers=merchant.headers,
        )
        assert second.get_json()["customer"]["id"] == data["customer"]["id"]
        assert second.get_json()["customer"]["name"] == "Ada"
        assert second.get_json()["customer"]["email"] == "a@example.com"
        assert second.get_json()["token"] != data["token"]

    def test_expiry_bounds(self, client, merchant):
        for expires_in in (59, 86401, "3600", 3600.5):
            response = client.post(
                "/v1/session-tokens",
                json={"customer": {"external_id": "u"}, "expires_in": expires_in},
                headers=merchant.headers,
            )
            _problem(response, 422, "validation_error")

    def test_tokens_are_stored_only_as_digests(self, client, merchant):
        response = client.post(
            "/v1/session-tokens", json={"customer": {"external_id": "u"}}, headers=merchant.headers
        )
        token = response.get_json()["token"]
        stored = db.session.query(SessionToken).one()
        assert stored.token_hash == digest(token)


class TestSessionTokenCache:
    def test_revoking_a_cached_token_takes_effect_at_once(self, client, merchant, buyer):
        assert client.get("/v1/products", headers=buyer.headers).status_code == 200
        assert client.get("/v1/products", headers=buyer.headers).status_code == 200  # cached
        client.post(
            "/v1/session-tokens/revoke", json={"token": buyer.token}, headers=merchant.headers
        )
        _problem(client.get("/v1/products", headers=buyer.headers), 401, "unauthenticated")

    def test_a_cached_token_still_expires(self, app_context, buyer):
        from app.auth import resolve_session_token

        principal = resolve_session_token(buyer.token)  # fills the cache
        later = principal.expires_at + timedelta(seconds=1)
        with pytest.raises(Unauthenticated) as error:
            resolve_session_token(buyer.token, now=later)
        assert error.value.code == "token_expired"

    def test_a_fill_racing_a_revocation_cannot_resurrect_the_token(
        self, app_context, merchant, buyer
    ):
        from app.auth import (
            _cache_fill,
            forget_revoked_token,
            resolve_session_token,
            revoke_session_token,
        )

        principal = resolve_session_token(buyer.token)
        row = revoke_session_token(merchant.id, buyer.token)
        db.session.commit()
        forget_revoked_token(row)
        # A reader that loaded the row before the revocation committed writes back late.
        _cache_fill(digest(buyer.token), principal, utcnow())
        with pytest.raises(Unauthenticated):
            resolve_session_token(buyer.token)

    def test_a_lost_eviction_is_a_503_and_a_retried_revoke_repairs_it(
        self, app, client, merchant, buyer
    ):
        import redis

        assert client.get("/v1/products", headers=buyer.headers).status_code == 200  # cached
        original = app.extensions["redis"]
        app.extensions["redis"] = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
        try:
            failed = client.post(
                "/v1/session-tokens/revoke", json={"token": buyer.token}, headers=merchant.headers
            )
        finally:
            app.extensions["redis"] = original
        _problem(failed, 503, "service_unavailable")
        assert failed.headers["Retry-After"] == "1"
        # The cached principal would still let the token in until the retry evicts it.
        assert client.get("/v1/products", headers=buyer.headers).status_code == 200
        retried = client.post(
            "/v1/session-tokens/revoke", json={"token": buyer.token}, headers=merchant.headers
        )
        assert retried.get_json() == {"revoked": True}
        _problem(client.get("/v1/products", headers=buyer.headers), 401, "unauthenticated")
