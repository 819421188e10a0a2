"""Exactly-once effects under at-least-once delivery: concurrent duplicates, racing workers,
a worker killed mid-task, and a broker that is down while Stripe delivers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from sqlalchemy import select, text

from app.db import db
from app.webhooks import service
from models import CheckoutSession, PaymentIntent, StripeEvent
from models.stripe_event import PENDING, PROCESSED
from tasks.stripe_events import process_event
from tests.support.processes import free_port, wait_until
from tests.support.stripe_webhooks import envelope, signature_header
from tests.webhooks.conftest import (
    count,
    inbox,
    inbox_count,
    open_checkout,
    post_webhook,
    process,
    queued_event_ids,
    stripe_fixture,
    succeeded_payment_intent,
)


@contextmanager
def inbox_row_locked(stripe_event_id: str) -> Iterator[None]:
    """Hold the event's inbox row lock from another connection, as a slow worker would."""
    assert db.engine is not None
    with db.engine.connect() as connection:
        transaction = connection.begin()
        connection.execute(
            select(StripeEvent.id)
            .where(StripeEvent.stripe_event_id == stripe_event_id)
            .with_for_update()
        )
        try:
            yield
        finally:
            transaction.rollback()


def backends_waiting_on_a_lock() -> int:
    assert db.engine is not None
    with db.engine.connect() as connection:
        return int(
            connection.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND wait_event_type = 'Lock' AND query ILIKE '%stripe_events%'"
                )
            ).scalar_one()
        )


def process_event_outcomes(worker_log: str) -> list[str] | None:
    """What each `stripe.process_event` run returned, once two have finished."""
    # Log lines are JSON; Celery puts what the task returned (its repr) under data.return_value.
    outcomes = [
        json.loads(line)["data"]["return_value"]
        for line in worker_log.splitlines()
        if "stripe.process_event[" in line and " succeeded in " in line
    ]
    return outcomes if len(outcomes) >= 2 else None


def assert_paid_once(checkout_id) -> None:  # type: ignore[no-untyped-def]
    db.session.expire_all()
    checkout = db.session.get(CheckoutSession, checkout_id)
    assert checkout.status == "succeeded"
    # pending → open was the test's setup; one change since: the payment.
    assert checkout.version == 2
    assert count(PaymentIntent) == 1


def test_same_event_delivered_ten_times_concurrently_has_one_effect(
    start_web_server, webhook_secret, shop
):
    server = start_web_server()
    checkout = open_checkout(shop, shop.one_time)
    event = envelope("payment_intent.succeeded", succeeded_payment_intent(checkout))
    payload = json.dumps(event)

    def deliver(_: int) -> tuple[int, dict]:
        # Each delivery signs anew, as Stripe's retries do.
        return post_webhook(server, payload, signature_header(payload, webhook_secret))

    with ThreadPoolExecutor(max_workers=10) as pool:
        answers = list(pool.map(deliver, range(10)))

    assert [status for status, _ in answers] == [200] * 10
    assert sorted(body["stored"] for _, body in answers) == [False] * 9 + [True]
    assert inbox_count() == 1
    queued = queued_event_ids()
    assert queued == [event["id"]]
    for stripe_event_id in queued:
        process(stripe_event_id)
    assert_paid_once(checkout.id)


def test_same_event_processed_by_two_workers_at_once_has_one_effect(start_worker, post_event, shop):
    checkout = open_checkout(shop, shop.one_time)
    event = envelope("payment_intent.succeeded", succeeded_payment_intent(checkout))
    post_event(event)  # the endpoint's own message
    process_event.apply_async(args=[event["id"]])  # and a duplicate (a sweep, a redelivery)

    with inbox_row_locked(event["id"]):
        worker = start_worker(concurrency=2)
        # Both tasks are inside process_event, blocked on the row lock: truly concurrent.
        wait_until(lambda: backends_waiting_on_a_lock() == 2, timeout=60)

    wait_until(lambda: inbox(event["id"]).status == PROCESSED, timeout=60)
    outcomes = wait_until(lambda: process_event_outcomes(worker.log()), timeout=60)
    assert sorted(outcomes) == ["'already_done'", "'processed'"]
    assert_paid_once(checkout.id)
    assert inbox(event["id"]).attempts == 1


def test_worker_killed_mid_task_is_processed_once_after_redelivery(start_worker, post_event, shop):
    checkout = open_checkout(shop, shop.one_time)
    event = envelope("payment_intent.succeeded", succeeded_payment_intent(checkout))
    post_event(event)

    with inbox_row_locked(event["id"]):
        doomed = start_worker(concurrency=1)
        wait_until(lambda: backends_waiting_on_a_lock() == 1, timeout=60)
        doomed.kill()  # SIGKILL to the whole process group, mid-task
    # Its connection is gone, its transaction rolled back: nothing happened.
    wait_until(lambda: backends_waiting_on_a_lock() == 0, timeout=30)
    assert inbox(event["id"]).status == PENDING
    db.session.expire_all()
    assert db.session.get(CheckoutSession, checkout.id).status == "open"

    # The message died with the worker; the sweeper finds the stored, unprocessed event.
    start_worker(concurrency=1)
    requeued = service.requeue_unprocessed_events(db.session(), older_than_seconds=0)
    db.session.commit()
    assert requeued == [event["id"]]

    wait_until(lambda: inbox(event["id"]).status == PROCESSED, timeout=60)
    assert_paid_once(checkout.id)


def test_redis_down_events_are_stored_answered_and_processed_after_it_returns(
    start_web_server, webhook_secret, shop
):
    nobody = f"redis://127.0.0.1:{free_port()}/0"
    server = start_web_server(env={"REDIS_URL": nobody, "CELERY_BROKER_URL": nobody})
    checkout = open_checkout(shop, shop.one_time)
    checkout_id = checkout.id
    events = [
        envelope("payment_intent.succeeded", succeeded_payment_intent(checkout)),
        envelope("invoice.paid", stripe_fixture("invoice")),
        envelope("charge.refunded", stripe_fixture("charge")),
    ]
    for event in events:
        payload = json.dumps(event)
        status, body = post_webhook(server, payload, signature_header(payload, webhook_secret))
        assert (status, body) == (200, {"received": True, "stored": True})

    ids = [event["id"] for event in events]
    assert [inbox(i).status for i in ids] == [PENDING] * 3
    assert queued_event_ids() == []

    # Redis is back (the test's own broker): the sweeper sends what the web could not.
    requeued = service.requeue_unprocessed_events(db.session(), older_than_seconds=0)
    db.session.commit()
    assert sorted(requeued) == sorted(ids)
    assert sorted(queued_event_ids()) == sorted(ids)
    for stripe_event_id in queued_event_ids():
        assert process(stripe_event_id) == "processed"
    assert [inbox(i).status for i in ids] == [PROCESSED] * 3
    assert_paid_once(checkout_id)


def test_sweeper_leaves_fresh_and_backing_off_events_alone(post_event, app_context):
    fresh = envelope("invoice.paid", stripe_fixture("invoice"))
    post_event(fresh)
    # Just stored: its own task is (probably) on its way.
    assert service.requeue_unprocessed_events(db.session()) == []
    db.session.execute(
        StripeEvent.__table__.update()
        .where(StripeEvent.stripe_event_id == fresh["id"])
        .values(attempts=2, updated_at=text("now() - interval '2 minutes'"))
    )
    # Waiting out a retry backoff (attempts > 0, touched 2 minutes ago): not yet.
    assert service.requeue_unprocessed_events(db.session()) == []
    db.session.execute(
        StripeEvent.__table__.update()
        .where(StripeEvent.stripe_event_id == fresh["id"])
        .values(updated_at=text("now() - interval '10 minutes'"))
    )
    assert service.requeue_unprocessed_events(db.session()) == [fresh["id"]]
    db.session.commit()


def test_prune_deletes_only_old_finished_events(post_event, app_context):
    old_done = envelope("invoice.paid", stripe_fixture("invoice"))
    old_failed = envelope("invoice.paid", stripe_fixture("invoice"))
    recent_done = envelope("invoice.paid", stripe_fixture("invoice"))
    for event in (old_done, old_failed, recent_done):
        post_event(event)
    table = StripeEvent.__table__
    db.session.execute(table.update().values(status=PROCESSED))
    db.session.execute(
        table.update()
        .where(table.c.stripe_event_id.in_([old_done["id"], old_failed["id"]]))
        .values(received_at=text("now() - interval '31 days'"))
    )
    db.session.execute(
        table.update().where(table.c.stripe_event_id == old_failed["id"]).values(status="failed")
    )
    db.session.commit()

    assert service.prune_processed_events(db.session()) == 1
    db.session.commit()
    assert inbox(old_done["id"]) is None
    assert inbox(old_failed["id"]) is not None
    assert inbox(recent_done["id"]) is not None
