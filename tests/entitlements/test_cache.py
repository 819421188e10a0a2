"""The entitlement read cache: one Redis round trip, never stale after a committed change."""

from __future__ import annotations

import json
import time
from datetime import timedelta

from sqlalchemy import delete

from app.db import db
from app.entitlements.cache import body_key, generation_key
from app.entitlements.service import (
    _encode,
    entitlement_cache,
    entitlements_version,
    load_entitlements,
    recompute_entitlements,
)
from models import Entitlement
from models.base import utcnow
from tests.factories import make_buyer
from tests.support.billing import entitlement_keys
from tests.support.ownership import make_subscription


def _grant(buyer, price, **fields):
    subscription = make_subscription(buyer.customer_id, price, **fields)
    recompute_entitlements(db.session(), buyer.customer_id)
    db.session.commit()
    return subscription


def _revoke(buyer, subscription):
    subscription.status = "canceled"
    recompute_entitlements(db.session(), buyer.customer_id)
    db.session.commit()


class TestReadThrough:
    def test_a_read_fills_the_cache_and_the_next_is_served_from_it(
        self, client, buyer, catalog, redis_client
    ):
        _grant(buyer, catalog.monthly)
        redis_client.delete(body_key(buyer.customer_id))
        first = client.get("/v1/customer/entitlements", headers=buyer.headers)
        assert redis_client.get(body_key(buyer.customer_id)) == first.data
        # Rows removed behind the service's back (no recompute, no commit hook) are not
        # noticed: proof that the second read did not touch Postgres.
        db.session.execute(delete(Entitlement).where(Entitlement.customer_id == buyer.customer_id))
        db.session.commit()
        second = client.get("/v1/customer/entitlements", headers=buyer.headers)
        assert second.data == first.data
        assert second.mimetype == "application/json"

    def test_the_body_is_the_api_object(self, client, buyer, catalog):
        _grant(buyer, catalog.monthly)
        body = client.get("/v1/customer/entitlements", headers=buyer.headers).get_json()
        assert body["has_more"] is False
        assert sorted(body["data"][0]) == ["expires_at", "feature_key", "product_id", "source"]

    def test_customers_have_separate_entries(self, client, merchant, buyer, catalog):
        other = make_buyer(merchant, external_id="user_2")
        _grant(buyer, catalog.monthly)
        assert entitlement_keys(client, other) == []
        assert len(entitlement_keys(client, buyer)) == 2

    def test_an_expired_grant_is_not_served_and_not_cached_past_its_end(
        self, client, buyer, catalog, redis_client
    ):
        _grant(buyer, catalog.monthly, period_end=utcnow() + timedelta(seconds=30))
        _grant(buyer, catalog.trial, status="trialing", period_end=utcnow() - timedelta(days=1))
        assert entitlement_keys(client, buyer) == [
            ("export", "subscription"),
            ("pro", "subscription"),
        ]
        assert 0 < redis_client.pttl(body_key(buyer.customer_id)) <= 30_000


class TestInvalidation:
    def test_a_committed_revocation_is_seen_by_the_next_read(self, client, buyer, catalog):
        subscription = _grant(buyer, catalog.monthly)
        assert len(entitlement_keys(client, buyer)) == 2
        _revoke(buyer, subscription)
        assert entitlement_keys(client, buyer) == []

    def test_a_rolled_back_change_does_not_touch_the_cache(
        self, client, buyer, catalog, redis_client
    ):
        subscription = _grant(buyer, catalog.monthly)
        cached = client.get("/v1/customer/entitlements", headers=buyer.headers).data
        generation = redis_client.get(generation_key(buyer.customer_id))
        subscription.status = "canceled"
        assert recompute_entitlements(db.session(), buyer.customer_id) is True
        db.session.rollback()
        assert redis_client.get(generation_key(buyer.customer_id)) == generation
        assert redis_client.get(body_key(buyer.customer_id)) == cached

    def test_nothing_is_invalidated_before_the_commit(self, buyer, catalog, redis_client):
        subscription = _grant(buyer, catalog.monthly)
        generation = redis_client.get(generation_key(buyer.customer_id))
        subscription.status = "canceled"
        recompute_entitlements(db.session(), buyer.customer_id)
        assert redis_client.get(generation_key(buyer.customer_id)) == generation
        db.session.commit()
        assert int(redis_client.get(generation_key(buyer.customer_id))) == int(generation) + 1


class TestStaleReaderRace:
    def test_rows_loaded_before_a_revocation_are_never_written_back_after_it(
        self, client, app, buyer, catalog, redis_client
    ):
        """Reader: miss → load from Postgres … Writer: revoke, commit, invalidate … Reader: fill.

        The reader's fill must be refused, or the revoked grant would be served until the TTL.
        """
        subscription = _grant(buyer, catalog.monthly)
        redis_client.delete(body_key(buyer.customer_id))
        cache = entitlement_cache()

        # The reader misses and loads the grant from Postgres (its own connection)...
        lookup = cache.lookup(buyer.customer_id)
        assert lookup.body is None
        with db.session_factory() as reader_session:
            stale = load_entitlements(reader_session, buyer.customer_id)
        assert len(stale) == 2

        # ...the revocation commits (and its after-commit hook invalidates)...
        _revoke(buyer, subscription)
        redis_client.delete(body_key(buyer.customer_id))  # not even a warm body to hide behind

        # ...and the slow reader's write-back is refused.
        assert cache.fill(lookup.ticket, _encode(stale), 60_000) is False
        assert redis_client.get(body_key(buyer.customer_id)) is None
        assert entitlement_keys(client, buyer) == []

    def test_a_fill_with_a_current_ticket_is_stored(self, buyer, catalog, redis_client):
        _grant(buyer, catalog.monthly)
        redis_client.delete(body_key(buyer.customer_id))
        cache = entitlement_cache()
        lookup = cache.lookup(buyer.customer_id)
        with db.session_factory() as reader_session:
            fresh = load_entitlements(reader_session, buyer.customer_id)
        assert cache.fill(lookup.ticket, _encode(fresh), 60_000) is True
        assert redis_client.get(body_key(buyer.customer_id)) == _encode(fresh)


class TestRealtime:
    def test_a_change_is_published_on_the_customer_channel_after_commit(
        self, buyer, catalog, redis_client
    ):
        pubsub = redis_client.pubsub()
        pubsub.subscribe(f"customer:{buyer.customer_id}")
        assert pubsub.get_message(timeout=2)["type"] == "subscribe"
        subscription = _grant(buyer, catalog.monthly)
        granted = _next_entitlements_message(pubsub)
        assert [e["feature_key"] for e in granted["data"]] == ["export", "pro"]

        _revoke(buyer, subscription)
        revoked = _next_entitlements_message(pubsub)
        assert revoked["data"] == []
        assert revoked["version"] > granted["version"]
        pubsub.close()

    def test_nothing_is_published_for_a_recompute_that_changed_nothing(
        self, buyer, catalog, redis_client
    ):
        subscription = _grant(buyer, catalog.monthly)
        version = entitlements_version(db.session(), buyer.customer_id)
        pubsub = redis_client.pubsub()
        pubsub.subscribe(f"customer:{buyer.customer_id}")
        pubsub.get_message(timeout=2)
        assert recompute_entitlements(db.session(), buyer.customer_id) is False
        db.session.commit()
        # The next message is the next real change, one version later (the customer's
        # Postgres counter): the no-op recompute neither published nor bumped it.
        _revoke(buyer, subscription)
        message = _next_entitlements_message(pubsub)
        assert (message["data"], message["version"]) == ([], version + 1)
        pubsub.close()


def _next_entitlements_message(pubsub) -> dict:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.5)
        if message and message["type"] == "message":
            payload = json.loads(message["data"])
            if payload["type"] == "entitlements.updated":
                return payload
    raise AssertionError("no entitlements.updated message")


class TestInvalidationFailure:
    def test_the_list_is_still_published_and_the_cache_lives_briefly(
        self, client, buyer, catalog, redis_client, monkeypatch
    ):
        import redis as redis_lib

        from app.entitlements.cache import CACHE_TTL_SECONDS, EntitlementCache

        subscription = _grant(buyer, catalog.monthly)
        assert len(entitlement_keys(client, buyer)) == 2  # cached now
        assert 0 < redis_client.pttl(body_key(buyer.customer_id)) <= CACHE_TTL_SECONDS * 1000
        assert CACHE_TTL_SECONDS <= 60

        def unreachable(self, customer_id):
            raise redis_lib.ConnectionError("Redis went away")

        monkeypatch.setattr(EntitlementCache, "invalidate", unreachable)
        pubsub = redis_client.pubsub()
        pubsub.subscribe(f"customer:{buyer.customer_id}")
        pubsub.get_message(timeout=2)
        _revoke(buyer, subscription)
        # The streams still hear of it, with the Postgres version...
        message = _next_entitlements_message(pubsub)
        assert message["data"] == []
        assert message["version"] == 2
        pubsub.close()

    def test_the_documentation_does_not_promise_more_than_the_cache_keeps(self, client):
        spec = client.get("/openapi.json").get_json()
        description = spec["paths"]["/v1/customer/entitlements"]["get"]["description"]
        assert "never served after its revocation" not in description
        assert "at most" in description
