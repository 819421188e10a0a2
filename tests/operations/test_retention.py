"""Retention: what is past its horizon is pruned or scrubbed, and nothing else is touched."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

import celeryconfig
from app.config import Settings
from app.db import db
from app.errors import ApiError
from app.webhooks import service as webhooks
from models import CheckoutSession, SessionToken, StripeEvent
from models.base import utcnow
from tasks.retention import apply_retention
from tests.factories import Buyer, make_buyer, make_product
from tests.operations.conftest import checkout_row, stored_event

DAY = timedelta(days=1)


def _age_token(buyer: Buyer, expired_ago: timedelta) -> None:
    db.session.execute(
        update(SessionToken)
        .where(SessionToken.customer_id == buyer.customer_id)
        .values(expires_at=utcnow() - expired_ago)
    )
    db.session.commit()


def _checkout(buyer: Buyer, price: Any, status: str, completed_ago: timedelta | None) -> Any:
    secret = f"pi_{secrets.token_hex(8)}_secret_{secrets.token_hex(8)}"
    completed_at = None if completed_ago is None else utcnow() - completed_ago
    return checkout_row(buyer, price, status, client_secret=secret, completed_at=completed_at).id


def _event(status: str, received_ago: timedelta) -> str:
    return stored_event(
        status,
        received_ago,
        {
            "type": "payment_intent.succeeded",
            "created": 1_700_000_000,
            "data": {
                "object": {"receipt_email": "buyer@example.com", "client_secret": "pi_x_secret_y"}
            },
        },
    )


def _row(model: Any, **where: Any) -> Any:
    db.session.expire_all()
    return db.session.execute(select(model).filter_by(**where)).scalar_one_or_none()


class TestRetention:
    def test_expired_session_tokens_are_deleted_after_the_horizon(self, merchant: Any) -> None:
        long_expired = make_buyer(merchant, external_id="long_gone")
        _age_token(long_expired, 8 * DAY)
        recently_expired = make_buyer(merchant, external_id="recent")
        _age_token(recently_expired, 2 * DAY)
        valid = make_buyer(merchant, external_id="valid")

        counts = apply_retention()

        assert counts["session_tokens_deleted"] == 1
        assert _row(SessionToken, customer_id=long_expired.customer_id) is None
        assert _row(SessionToken, customer_id=recently_expired.customer_id) is not None
        assert _row(SessionToken, customer_id=valid.customer_id) is not None

    def test_finished_checkouts_lose_their_client_secret_and_nothing_else(
        self, merchant: Any, buyer: Buyer
    ) -> None:
        price = make_product(merchant, prices=[{"amount": 500, "currency": "usd"}]).prices[0]
        scrubbed = [
            _checkout(buyer, price, "succeeded", 2 * DAY),
            _checkout(buyer, price, "expired", 3 * DAY),
            _checkout(buyer, price, "canceled", 2 * DAY),
        ]
        kept = [
            _checkout(buyer, price, "succeeded", timedelta(hours=1)),  # inside the horizon
            _checkout(buyer, price, "failed", None),  # may be paid again with another card
            _checkout(buyer, price, "open", None),
            _checkout(buyer, price, "requires_action", None),
        ]
        before = {cid: _row(CheckoutSession, id=cid) for cid in scrubbed}
        versions = {cid: row.version for cid, row in before.items()}

        assert apply_retention()["client_secrets_scrubbed"] == 3

        for checkout_id in scrubbed:
            row = _row(CheckoutSession, id=checkout_id)
            assert row.client_secret is None
            assert row.status == before[checkout_id].status
            assert row.version == versions[checkout_id]
        for checkout_id in kept:
            assert _row(CheckoutSession, id=checkout_id).client_secret is not None
        # A second run finds nothing left to do.
        assert apply_retention()["client_secrets_scrubbed"] == 0

    def test_done_inbox_payloads_shrink_to_their_envelope(self, app_context: None) -> None:
        processed_old = _event("processed", 8 * DAY)
        ignored_old = _event("ignored", 10 * DAY)
        processed_recent = _event("processed", 1 * DAY)
        pending_old = _event("pending", 10 * DAY)
        failed_old = _event("failed", 10 * DAY)

        assert apply_retention()["event_payloads_scrubbed"] == 2

        for event_id in (processed_old, ignored_old):
            row = _row(StripeEvent, stripe_event_id=event_id)
            assert row.payload == {
                "id": event_id,
                "object": "event",
                "type": "payment_intent.succeeded",
                "created": 1_700_000_000,
            }
            assert row.payload_scrubbed_at is not None
        for event_id in (processed_recent, pending_old, failed_old):
            row = _row(StripeEvent, stripe_event_id=event_id)
            assert row.payload["data"]["object"]["receipt_email"] == "buyer@example.com"
            assert row.payload_scrubbed_at is None

    def test_a_scrubbed_event_cannot_be_replayed(self, app_context: None) -> None:
        event_id = _event("processed", 8 * DAY)
        apply_retention()
        with pytest.raises(ApiError, match="removed by retention"):
            webhooks.replay_event(db.session(), event_id, force=True)
        db.session.rollback()

    def test_horizons_are_settings(self, app_context: None) -> None:
        settings = Settings.from_env(
            {
                "SESSION_TOKEN_RETENTION_DAYS": "2",
                "CLIENT_SECRET_RETENTION_DAYS": "3",
                "EVENT_PAYLOAD_RETENTION_DAYS": "4",
                "EVENT_RETENTION_DAYS": "5",
            }
        )
        assert (
            settings.session_token_retention_days,
            settings.client_secret_retention_days,
            settings.event_payload_retention_days,
            settings.event_retention_days,
        ) == (2, 3, 4, 5)

    def test_it_runs_on_beat(self, app: Any) -> None:
        schedule = {entry["task"] for entry in celeryconfig.beat_schedule.values()}
        assert "maintenance.apply_retention" in schedule
        assert "maintenance.apply_retention" in app.extensions["celery"].tasks
