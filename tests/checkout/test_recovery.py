"""Nothing stays stuck: the reconciler drives a lost or failed checkout to a final state.

Each scenario loses something on the way (a Celery message, a permanent Stripe refusal), ages
the checkout past the reconciler's threshold, and runs the sweep exactly as the beat does:
claim a batch, then `checkout.reconcile` for each (in-process here, so no worker is needed).
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import update

from app.checkout.stripe_steps import prepare_checkout
from app.db import db
from app.webhooks import reconciliation
from models import CheckoutSession, ProductPrice
from models.base import utcnow
from tasks.checkout import reconcile
from tests.checkout.conftest import Catalog, confirm, create, fetch
from tests.factories import Buyer
from tests.support.billing import open_checkout_row

LONG_AGO = timedelta(minutes=10)


def _age(*checkout_ids: Any, ago: timedelta = LONG_AGO) -> None:
    """As if nothing had happened to these checkouts for ten minutes (or `ago`)."""
    db.session.execute(
        update(CheckoutSession)
        .where(CheckoutSession.id.in_(checkout_ids))
        .values(updated_at=utcnow() - ago)
    )
    db.session.commit()
    db.session.remove()


def _sweep() -> list[uuid.UUID]:
    """One beat run: claim the batch, then settle each claimed checkout."""
    with db.transaction() as session:
        claimed = reconciliation.stuck_checkout_ids(session)
    for checkout_id in claimed:
        reconcile.apply(args=[str(checkout_id)]).get()
    return claimed


class TestLostMessages:
    def test_a_pending_checkout_whose_prepare_message_was_lost_is_opened(
        self, client: Any, buyer: Buyer, catalog: Catalog, stripe_emulator: Any
    ) -> None:
        # No worker runs: the `checkout.prepare` message just sits in the broker, as if lost.
        checkout_id = uuid.UUID(create(client, buyer, catalog.one_time.id).get_json()["id"])
        assert fetch(checkout_id).status == "pending"
        _age(checkout_id)

        assert _sweep() == [checkout_id]

        assert fetch(checkout_id).status == "open"
        # The same key a first prepare would have sent: a run that did reach Stripe is reused.
        [created] = stripe_emulator.requests(path="/v1/payment_intents", method="POST")
        assert created["idempotency_key"] == f"checkout:{checkout_id}:prepare"

    def test_a_confirmation_that_never_reached_stripe_is_sent_again_and_succeeds(
        self, client: Any, buyer: Buyer, catalog: Catalog, stripe_emulator: Any
    ) -> None:
        checkout_id = uuid.UUID(create(client, buyer, catalog.one_time.id).get_json()["id"])
        prepare_checkout(checkout_id)
        opened = fetch(checkout_id)
        assert opened.status == "open"
        response = confirm(client, buyer, opened.client_secret, "pm_card_visa")
        assert response.status_code == 202, response.get_json()
        processing = fetch(checkout_id)
        assert processing.status == "processing"
        # ...and its `checkout.confirm` message is lost: Stripe never hears of it.
        assert stripe_emulator.requests(path="/v1/payment_intents/", method="POST") == []
        _age(checkout_id)

        assert _sweep() == [checkout_id]

        settled = fetch(checkout_id)
        assert settled.status == "succeeded"
        [sent] = [
            r
            for r in stripe_emulator.requests(path="/v1/payment_intents/", method="POST")
            if r["path"].endswith("/confirm")
        ]
        assert sent["idempotency_key"] == (
            f"checkout:{checkout_id}:confirm:{processing.confirmation}"
        )


class TestPermanentRefusal:
    def test_prepare_refused_by_stripe_fails_with_stripes_error(
        self, client: Any, buyer: Buyer, catalog: Catalog, stripe_emulator: Any
    ) -> None:
        # The price's Stripe mirror was deleted in the dashboard: Stripe answers 404
        # resource_missing to every attempt, so retrying can never help.
        db.session.execute(
            update(ProductPrice)
            .where(ProductPrice.id == catalog.monthly.id)
            .values(stripe_price_id="price_deleted_in_dashboard")
        )
        db.session.commit()
        checkout_id = uuid.UUID(create(client, buyer, catalog.monthly.id).get_json()["id"])
        _age(checkout_id)

        assert _sweep() == [checkout_id]

        failed = fetch(checkout_id)
        assert failed.status == "failed"
        assert failed.last_error is not None
        assert failed.last_error["code"] == "resource_missing"
        assert "price_deleted_in_dashboard" in failed.last_error["message"]
        assert _sweep() == []  # final: nothing left to do


class TestFairness:
    def test_more_stuck_checkouts_than_a_batch_are_all_reached(
        self, buyer: Buyer, catalog: Catalog
    ) -> None:
        total = reconciliation.BATCH_SIZE * 2 + 50
        ids = []
        for _ in range(total):
            checkout = open_checkout_row(buyer, catalog.one_time)
            ids.append(checkout.id)
        db.session.execute(
            update(CheckoutSession).where(CheckoutSession.id.in_(ids)).values(status="processing")
        )
        db.session.commit()
        _age(*ids)

        batches = []
        for _ in range(4):
            with db.transaction() as session:
                batches.append(reconciliation.stuck_checkout_ids(session))

        assert [len(b) for b in batches] == [100, 100, 50, 0]
        seen = [checkout_id for batch in batches for checkout_id in batch]
        assert sorted(seen) == sorted(ids)  # each once, none left behind

    def test_a_claimed_checkout_comes_back_after_the_threshold_oldest_seen_first(
        self, buyer: Buyer, catalog: Catalog
    ) -> None:
        first = open_checkout_row(buyer, catalog.one_time).id
        second = open_checkout_row(buyer, catalog.one_time).id
        db.session.execute(
            update(CheckoutSession)
            .where(CheckoutSession.id.in_([first, second]))
            .values(status="processing")
        )
        db.session.commit()
        _age(first, ago=LONG_AGO * 2)
        _age(second)
        with db.transaction() as session:
            assert reconciliation.stuck_checkout_ids(session, limit=1) == [first]
        later = utcnow() + timedelta(seconds=reconciliation.STUCK_AFTER_SECONDS + 1)
        with db.transaction() as session:
            # `second` was never handed out, so it goes before `first` comes round again.
            assert reconciliation.stuck_checkout_ids(session, now=later) == [second, first]
