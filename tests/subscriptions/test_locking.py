"""Locks: one order, none across a Stripe call, and a lock held elsewhere fails fast, never 500.

The worker applying a webhook locks a checkout, then its subscription. A cancel that held the
subscription across its Stripe call and then wanted the checkout closed a cycle with it:
`deadlock detected`, answered as a 500 — the first cancel a buyer tried after a purchase.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from app import settings_of
from app.checkout import stripe_steps
from app.db import db, is_contention
from tasks.checkout import is_transient
from tests.support.billing import open_checkout_row, subscribe_with_card

# Short enough for a quick test, long enough for an uncontended statement on a busy machine.
LOCK_TIMEOUT_MS = 400


@pytest.fixture()
def short_lock_timeout(app) -> Iterator[None]:  # type: ignore[no-untyped-def]
    settings = settings_of(app)
    db.session.remove()
    db.configure(
        settings.database_url,
        pool_size=settings.db_pool_size,
        lock_timeout_ms=LOCK_TIMEOUT_MS,
        statement_timeout_ms=settings.db_statement_timeout_ms,
    )
    yield
    db.session.remove()
    db.configure(
        settings.database_url,
        pool_size=settings.db_pool_size,
        lock_timeout_ms=settings.db_lock_timeout_ms,
        statement_timeout_ms=settings.db_statement_timeout_ms,
    )


@pytest.fixture()
def other_connection(app) -> Iterator[object]:  # type: ignore[no-untyped-def]
    """A connection of "someone else" (another process), outside the app's pool."""
    engine = create_engine(settings_of(app).database_url)
    with engine.connect() as connection:
        yield connection
        connection.rollback()
    engine.dispose()


def _lock_rows(connection, table: str, row_id) -> None:  # type: ignore[no-untyped-def]
    connection.execute(text(f"SELECT 1 FROM {table} WHERE id = :id FOR UPDATE"), {"id": row_id})


def _wait_for_a_lock_wait(connection) -> None:  # type: ignore[no-untyped-def]
    """Until some backend of this database other than `connection` waits for a row lock."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        waiting = connection.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
            )
        ).scalar_one()
        if waiting:
            return
        time.sleep(0.02)
    raise AssertionError("nothing started waiting for a lock")


def test_cancel_and_the_webhook_worker_take_locks_in_one_order(
    app, client, buyer, catalog, relay, stripe_emulator, other_connection
):
    subscription = subscribe_with_card(relay, buyer, catalog.monthly)
    subscription_id, checkout_id = subscription.id, subscription.checkout_session_id
    assert checkout_id is not None
    db.session.remove()
    # "The worker" is in the middle of an event about this purchase: it holds the checkout.
    _lock_rows(other_connection, "checkout_sessions", checkout_id)

    answer: dict[str, Any] = {}

    def cancel() -> None:
        with app.app_context():
            response = app.test_client().post(
                f"/v1/customer/subscriptions/{subscription_id}/cancel",
                json={"at_period_end": True},
                headers=buyer.headers,
            )
            answer["status"], answer["body"] = response.status_code, response.get_json()

    request = threading.Thread(target=cancel)
    request.start()
    _wait_for_a_lock_wait(other_connection)  # the cancel, done with Stripe, waits its turn
    # "The worker" goes on to the subscription row, as stripe_sync does after the checkout.
    _lock_rows(other_connection, "subscriptions", subscription_id)
    other_connection.rollback()
    request.join(timeout=30)

    assert answer["status"] == 200, answer
    assert answer["body"]["cancel_at_period_end"] is True


def test_every_connection_carries_the_configured_timeouts(app, app_context):
    settings = settings_of(app)
    # pg_settings gives both in milliseconds, unformatted.
    found = dict(
        db.session.execute(
            text(
                "SELECT name, setting FROM pg_settings "
                "WHERE name IN ('lock_timeout', 'statement_timeout')"
            )
        ).all()
    )
    assert found == {
        "lock_timeout": str(settings.db_lock_timeout_ms),
        "statement_timeout": str(settings.db_statement_timeout_ms),
    }


def test_cancel_behind_a_held_subscription_lock_answers_503_fast(
    client, buyer, catalog, stripe_emulator, short_lock_timeout, other_connection
):
    created = client.post(
        "/v1/customer/subscription/create",
        json={"price_id": str(catalog.free_monthly.id)},
        headers=buyer.headers,
    )
    assert created.status_code == 201, created.get_json()
    subscription_id = created.get_json()["id"]
    _lock_rows(other_connection, "subscriptions", subscription_id)

    started = time.monotonic()
    response = client.post(
        f"/v1/customer/subscriptions/{subscription_id}/cancel",
        json={"at_period_end": False},
        headers=buyer.headers,
    )
    elapsed = time.monotonic() - started

    assert response.status_code == 503, response.get_json()
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["code"] == "database_busy"
    assert response.headers["Retry-After"] == "1"
    assert elapsed < 10, elapsed  # the lock wait ends at the timeout, not when the lock is freed

    # Once the lock is gone, the client's retry goes through (the Stripe call replays).
    other_connection.rollback()
    retried = client.post(
        f"/v1/customer/subscriptions/{subscription_id}/cancel",
        json={"at_period_end": False},
        headers=buyer.headers,
    )
    assert retried.status_code == 200, retried.get_json()
    assert retried.get_json()["status"] == "canceled"


def test_a_task_behind_a_held_checkout_lock_fails_with_a_retryable_error(
    app_context, buyer, catalog, short_lock_timeout, other_connection
):
    checkout = open_checkout_row(buyer, catalog.monthly)
    db.session.execute(
        text("UPDATE checkout_sessions SET status = 'pending' WHERE id = :id"), {"id": checkout.id}
    )
    db.session.commit()
    db.session.remove()
    _lock_rows(other_connection, "checkout_sessions", checkout.id)

    started = time.monotonic()
    with pytest.raises(OperationalError) as raised:
        stripe_steps.prepare_checkout(checkout.id)
    assert time.monotonic() - started < 10
    assert is_contention(raised.value)
    assert is_transient(raised.value)  # the task retries it with backoff


def test_a_runaway_statement_is_canceled_as_contention(app_context):
    with pytest.raises(OperationalError) as raised:
        db.session.execute(text("SET LOCAL statement_timeout = 100; SELECT pg_sleep(5)"))
    db.session.rollback()
    assert is_contention(raised.value)
