"""`GET /v1/customer/ws`: the customer's subscriptions and entitlements, snapshot then changes."""

from __future__ import annotations

from datetime import timedelta

from app.db import db
from app.entitlements.service import recompute_entitlements
from models import CheckoutSession, Subscription
from models.base import utcnow
from tests.factories import make_buyer
from tests.streams.clients import StatusSocket


def _subscribe(checkout: CheckoutSession, status: str) -> Subscription:
    with db.transaction() as session:
        subscription = Subscription(
            organization_id=checkout.organization_id,
            customer_id=checkout.customer_id,
            product_id=checkout.product_id,
            price_id=checkout.price_id,
            status=status,
        )
        session.add(subscription)
    return subscription


class TestCustomerWebsocket:
    def test_snapshot_first_then_subscription_and_entitlement_changes(
        self, web_server, make_checkout, buyer
    ) -> None:
        subscription = _subscribe(make_checkout(), "incomplete")
        client = StatusSocket(f"{web_server.ws_url}/v1/customer/ws", headers=buyer.headers)

        snapshot = [client.next_frame(), client.next_frame()]
        assert [f["type"] for f in snapshot] == ["subscription.updated", "entitlements.updated"]
        assert snapshot[0]["data"]["id"] == str(subscription.id)
        assert snapshot[0]["data"]["status"] == "incomplete"
        assert snapshot[1]["data"] == []

        # What a paid first invoice does: activate, then recompute the grants, in one commit.
        with db.transaction() as session:
            row = session.get(Subscription, subscription.id)
            assert row is not None
            row.status = "active"
            row.current_period_end = utcnow() + timedelta(days=30)
            session.flush()
            recompute_entitlements(session, buyer.customer_id)

        changes = {f["type"]: f for f in (client.next_frame(), client.next_frame())}
        assert changes["subscription.updated"]["data"]["status"] == "active"
        granted = changes["entitlements.updated"]["data"]
        assert [(e["feature_key"], e["source"]) for e in granted] == [("pro", "subscription")]
        assert changes["entitlements.updated"]["version"] >= 1
        client.close()

    def test_another_customers_changes_are_not_sent(
        self, web_server, make_checkout, buyer, merchant
    ) -> None:
        stranger = make_buyer(merchant, external_id="someone_else")
        client = StatusSocket(f"{web_server.ws_url}/v1/customer/ws", headers=stranger.headers)
        assert client.next_frame()["data"] == []  # no subscriptions: only the entitlement list

        _subscribe(make_checkout(), "active")  # the buyer's, not the stranger's
        mine = _subscribe(make_checkout(for_buyer=stranger), "trialing")

        frame = client.next_frame()
        assert (frame["type"], frame["data"]["id"]) == ("subscription.updated", str(mine.id))
        client.close()
