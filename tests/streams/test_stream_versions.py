"""Versions that order real-time messages live in Postgres; revoked tokens end open streams."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.auth import digest
from app.db import db
from app.entitlements.service import recompute_entitlements
from app.realtime import subscription_message
from app.streams.hub import Watcher, is_newer, parse_update
from models import Customer, SessionToken, Subscription
from models.base import utcnow
from tests.factories import make_product
from tests.streams.clients import EventStream, StatusSocket


def _subscription(buyer, merchant, status: str = "active") -> Subscription:
    product = make_product(merchant, features=[{"key": "pro", "name": "Pro"}])
    price = product.prices[0]
    with db.transaction() as session:
        subscription = Subscription(
            organization_id=buyer.organization_id,
            customer_id=buyer.customer_id,
            product_id=price.product_id,
            price_id=price.id,
            status=status,
            current_period_end=utcnow() + timedelta(days=30),
        )
        session.add(subscription)
        session.flush()
        recompute_entitlements(session, buyer.customer_id)
    return subscription


def _set_status(subscription_id, status: str) -> None:
    with db.transaction() as session:
        row = session.get(Subscription, subscription_id, with_for_update=True)
        assert row is not None
        row.status = status
        session.flush()
        recompute_entitlements(session, row.customer_id)


def _revoke(buyer, redis_client) -> None:
    """What a revocation leaves behind: the row marked, then (after commit) the cache tombstone
    `revoked` under `bos:auth:st:<sha256 of the token>` (app/auth.py)."""
    token_hash = digest(buyer.token)
    with db.transaction() as session:
        row = session.execute(
            select(SessionToken).where(SessionToken.token_hash == token_hash)
        ).scalar_one()
        row.revoked_at = utcnow()
    redis_client.set(f"bos:auth:st:{token_hash}", b"revoked", ex=600)


def _until(client: StatusSocket, message_type: str) -> dict:
    while True:
        frame = client.next_frame()
        assert frame is not None, f"closed ({client.close_code}): {client.frames}"
        if frame["type"] == message_type:
            return frame


class TestEntitlementsVersionSurvivesRedis:
    def test_a_flushed_redis_does_not_freeze_an_open_customer_stream(
        self, web_server, merchant, buyer, redis_client
    ) -> None:
        subscription = _subscription(buyer, merchant)  # version 1, and a Redis generation 1
        client = StatusSocket(
            f"{web_server.ws_url}/v1/customer/ws", headers=buyer.headers, timeout=8
        )
        snapshot = _until(client, "entitlements.updated")
        assert [e["feature_key"] for e in snapshot["data"]] == ["pro"]

        redis_client.flushdb()  # a Redis restart / flush / eviction: counters start over
        _set_status(subscription.id, "canceled")

        revoked = _until(client, "entitlements.updated")
        assert revoked["data"] == []
        assert revoked["version"] > snapshot["version"]
        client.close()

    def test_the_version_is_the_customers_column_bumped_once_per_change(
        self, app_context, merchant, buyer
    ) -> None:
        subscription = _subscription(buyer, merchant)
        _set_status(subscription.id, "canceled")
        with db.transaction() as session:  # a recompute that changes nothing
            assert recompute_entitlements(session, buyer.customer_id) is False
        version = db.session.execute(
            select(Customer.entitlements_version).where(Customer.id == buyer.customer_id)
        ).scalar_one()
        assert version == 2


class TestSubscriptionVersions:
    def test_every_change_of_a_row_bumps_its_version(self, app_context, merchant, buyer) -> None:
        subscription = _subscription(buyer, merchant, status="trialing")
        assert subscription.version == 1
        _set_status(subscription.id, "active")
        with db.transaction() as session:
            row = session.get(Subscription, subscription.id)
            assert row is not None
            row.status = "active"  # no change: no new version
        with db.transaction() as session:
            row = session.get(Subscription, subscription.id)
            assert row is not None
            assert row.version == 2
            assert json.loads(subscription_message(row))["version"] == 2

    def test_messages_reaching_redis_out_of_order_never_go_backwards(
        self, app_context, merchant, buyer, listen
    ) -> None:
        subscription = _subscription(buyer, merchant, status="trialing")
        pubsub = listen(f"customer:{buyer.customer_id}")
        _set_status(subscription.id, "active")
        _set_status(subscription.id, "canceled")
        frames = []
        while len(frames) < 2:
            message = pubsub.get_message(timeout=5)
            assert message is not None
            if json.loads(message["data"])["type"] == "subscription.updated":
                frames.append(message["data"])
        active, canceled = (parse_update(f) for f in frames)
        assert (active.version, canceled.version) == (2, 3)

        # Two commits' publishes may reach Redis in either order: the newer state wins.
        watcher = Watcher(f"customer:{buyer.customer_id}")
        watcher.deliver(canceled)
        watcher.deliver(active)
        _resync, pending = watcher.take(0)
        assert [json.loads(u.data_json)["status"] for u in pending] == ["canceled"]
        assert not is_newer(active, canceled)


@pytest.mark.usefixtures("web_server")
class TestRevokedTokens:
    def test_an_open_customer_websocket_is_closed_with_4401(
        self, web_server, buyer, redis_client
    ) -> None:
        client = StatusSocket(
            f"{web_server.ws_url}/v1/customer/ws", headers=buyer.headers, timeout=8
        )
        assert client.next_frame()["type"] == "entitlements.updated"
        _revoke(buyer, redis_client)
        client.until_closed()  # within one ping interval (2 s here)
        assert client.close_code == 4401

    def test_an_open_sse_stream_ends(self, web_server, buyer, make_checkout, redis_client) -> None:
        checkout = make_checkout()
        stream = EventStream(
            f"{web_server.url}/v1/checkout/{checkout.id}/stream", headers=buyer.headers, timeout=8
        )
        assert stream.status_code == 200
        assert stream.next_event()["data"]["status"] == "pending"
        _revoke(buyer, redis_client)
        assert stream.next_event() is None  # the server ended the stream
