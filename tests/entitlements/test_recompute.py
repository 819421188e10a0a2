"""recompute_entitlements: grants derived from subscriptions and one-time purchases only."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, text

from app.db import db
from app.entitlements.service import recompute_entitlements
from models import Entitlement
from models.base import utcnow
from tests.factories import make_buyer, make_product
from tests.support.ownership import make_purchase, make_subscription


def _grants(customer_id) -> list[tuple[str, str, object]]:
    rows = db.session.execute(
        select(Entitlement).where(Entitlement.customer_id == customer_id)
    ).scalars()
    return sorted((r.feature_key, r.source, r.expires_at) for r in rows)


def _recompute(customer_id) -> bool:
    changed = recompute_entitlements(db.session(), customer_id)
    db.session.commit()
    return changed


@pytest.fixture(autouse=True, params=["prepared", "plain"])
def server_prepare(request):
    """Every scenario twice: with server-side PREPARE, and as plain SQL (DB_SERVER_PREPARE=0,
    behind a transaction pooler such as pgbouncer)."""
    before = db.server_prepare
    db.server_prepare = request.param == "prepared"
    yield db.server_prepare
    db.server_prepare = before


def _prepared_statements() -> int:
    return int(db.session.execute(text("SELECT count(*) FROM pg_prepared_statements")).scalar())


@pytest.fixture()
def pro(merchant):
    return make_product(
        merchant,
        name="Pro",
        features=[{"key": "pro", "name": "Pro"}, {"key": "export", "name": "Export"}],
        prices=[
            {"amount": 1200, "currency": "usd", "interval": "month"},
            {"amount": 12000, "currency": "usd", "interval": "year"},
            {"amount": 4900, "currency": "usd", "interval": "month", "trial_period_days": 14},
        ],
    )


@pytest.fixture()
def lifetime(merchant):
    return make_product(
        merchant,
        name="Lifetime export",
        features=[{"key": "export", "name": "Export"}],
        prices=[{"amount": 2900, "currency": "usd"}],
    )


class TestGrants:
    def test_monthly_subscription_grants_features_until_period_end(self, buyer, pro):
        end = utcnow() + timedelta(days=30)
        make_subscription(buyer.customer_id, pro.prices[0], period_end=end)
        assert _recompute(buyer.customer_id) is True
        assert _grants(buyer.customer_id) == [
            ("export", "subscription", end),
            ("pro", "subscription", end),
        ]

    def test_yearly_subscription_grants_until_the_year_ends(self, buyer, pro):
        end = utcnow() + timedelta(days=365)
        make_subscription(buyer.customer_id, pro.prices[1], period_end=end)
        _recompute(buyer.customer_id)
        assert {e for _k, _s, e in _grants(buyer.customer_id)} == {end}

    def test_trial_grants_until_the_trial_ends(self, buyer, pro):
        trial_end = utcnow() + timedelta(days=14)
        make_subscription(
            buyer.customer_id,
            pro.prices[2],
            status="trialing",
            trial_end=trial_end,
            period_end=trial_end,
        )
        _recompute(buyer.customer_id)
        assert [(k, e) for k, _s, e in _grants(buyer.customer_id)] == [
            ("export", trial_end),
            ("pro", trial_end),
        ]

    def test_one_time_purchase_grants_with_no_end(self, buyer, lifetime):
        make_purchase(buyer.customer_id, lifetime.prices[0])
        _recompute(buyer.customer_id)
        assert _grants(buyer.customer_id) == [("export", "purchase", None)]

    def test_unpaid_purchase_grants_nothing(self, buyer, lifetime):
        make_purchase(buyer.customer_id, lifetime.prices[0], status="requires_payment_method")
        assert _recompute(buyer.customer_id) is False
        assert _grants(buyer.customer_id) == []

    def test_subscription_invoice_payment_is_not_a_purchase(self, buyer, pro):
        # The first invoice's PaymentIntent of a monthly checkout succeeded, but what grants is
        # the subscription's status, not the payment.
        make_purchase(buyer.customer_id, pro.prices[0])
        _recompute(buyer.customer_id)
        assert _grants(buyer.customer_id) == []

    def test_past_due_keeps_access_while_stripe_retries(self, buyer, pro):
        make_subscription(buyer.customer_id, pro.prices[0], status="past_due")
        _recompute(buyer.customer_id)
        assert len(_grants(buyer.customer_id)) == 2

    def test_same_feature_from_two_sources_is_two_grants(self, buyer, pro, lifetime):
        make_subscription(buyer.customer_id, pro.prices[0])
        make_purchase(buyer.customer_id, lifetime.prices[0])
        _recompute(buyer.customer_id)
        assert [(k, s) for k, s, _e in _grants(buyer.customer_id)] == [
            ("export", "purchase"),
            ("export", "subscription"),
            ("pro", "subscription"),
        ]

    def test_other_customers_are_untouched(self, merchant, buyer, pro):
        other = make_buyer(merchant, external_id="user_2")
        make_subscription(other.customer_id, pro.prices[0])
        _recompute(other.customer_id)
        _recompute(buyer.customer_id)
        assert _grants(buyer.customer_id) == []
        assert len(_grants(other.customer_id)) == 2


class TestRevocation:
    @pytest.mark.parametrize("status", ["canceled", "unpaid", "incomplete_expired", "incomplete"])
    def test_subscription_leaving_the_entitling_statuses_revokes(self, buyer, pro, status):
        subscription = make_subscription(buyer.customer_id, pro.prices[0])
        _recompute(buyer.customer_id)
        subscription.status = status
        assert _recompute(buyer.customer_id) is True
        assert _grants(buyer.customer_id) == []

    def test_full_refund_revokes_the_purchase(self, buyer, lifetime):
        payment = make_purchase(buyer.customer_id, lifetime.prices[0])
        _recompute(buyer.customer_id)
        payment.amount_refunded = payment.amount
        assert _recompute(buyer.customer_id) is True
        assert _grants(buyer.customer_id) == []

    def test_partial_refund_keeps_the_purchase(self, buyer, lifetime):
        payment = make_purchase(buyer.customer_id, lifetime.prices[0])
        _recompute(buyer.customer_id)
        payment.amount_refunded = payment.amount // 2
        assert _recompute(buyer.customer_id) is False
        assert _grants(buyer.customer_id) == [("export", "purchase", None)]


class TestChanges:
    def test_nothing_changed_is_reported_as_such(self, buyer, pro):
        make_subscription(buyer.customer_id, pro.prices[0])
        assert _recompute(buyer.customer_id) is True
        assert _recompute(buyer.customer_id) is False

    def test_renewal_moves_the_expiry(self, buyer, pro):
        subscription = make_subscription(buyer.customer_id, pro.prices[0])
        _recompute(buyer.customer_id)
        renewed = subscription.current_period_end + timedelta(days=30)
        subscription.current_period_end = renewed
        assert _recompute(buyer.customer_id) is True
        assert {e for _k, _s, e in _grants(buyer.customer_id)} == {renewed}

    def test_rolled_back_recompute_leaves_the_rows(self, buyer, pro):
        subscription = make_subscription(buyer.customer_id, pro.prices[0])
        _recompute(buyer.customer_id)
        subscription.status = "canceled"
        recompute_entitlements(db.session(), buyer.customer_id)
        db.session.rollback()
        assert len(_grants(buyer.customer_id)) == 2


class TestBehindATransactionPooler:
    def test_plain_mode_leaves_no_prepared_statement_on_the_connection(
        self, buyer, lifetime, server_prepare
    ):
        make_purchase(buyer.customer_id, lifetime.prices[0])
        # This connection starts with no prepared statement, as a fresh one would.
        connection = db.session.connection()
        connection.exec_driver_sql("DEALLOCATE ALL")
        connection.connection.info.clear()
        assert recompute_entitlements(db.session(), buyer.customer_id) is True
        # Asked on the same connection, inside the transaction: a pooler in transaction mode
        # hands the next transaction another server connection, where a statement prepared on
        # this one would not exist.
        assert _prepared_statements() == (2 if server_prepare else 0)
        db.session.commit()
        assert _grants(buyer.customer_id) == [("export", "purchase", None)]
