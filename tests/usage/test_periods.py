"""Which period usage counts in: the subscription's billing period (reset when Stripe renews it)
or the calendar month."""

from __future__ import annotations

from datetime import UTC, datetime

from app.db import db
from app.usage import service as usage
from models import Subscription
from tests.support.billing import subscribe_with_card
from tests.usage.conftest import buy, check, track

DAY = 86400


class TestBillingPeriod:
    def test_the_quota_resets_when_stripe_renews_the_subscription(
        self, client, buyer, plans, relay, stripe_emulator
    ):
        subscription = subscribe_with_card(relay, buyer, plans.basic.prices[0])
        first_start = subscription.current_period_start
        assert track(client, buyer, 600, key="before-renewal").get_json()["consumed"] == 600

        stripe_emulator.advance_clock(32 * DAY)  # Stripe renews and charges the next period
        relay.deliver()
        db.session.remove()
        renewed = db.session.get(Subscription, subscription.id)
        assert renewed is not None and renewed.current_period_start > first_start

        # Read at the emulator's clock: the renewed period is "now" there.
        later = datetime.fromtimestamp(stripe_emulator.now(), UTC)
        fresh = usage.check_feature(buyer.customer_id, "api_calls", None, now=later)
        assert (fresh.usage, fresh.has_access, fresh.limit) == (0, True, 1000)
        assert fresh.metadata["period_start"] == renewed.current_period_start.isoformat()
        tracked = usage.track_usage(
            buyer.organization_id,
            buyer.customer_id,
            usage.UsageEventIn(feature_key="api_calls", quantity=3, idempotency_key="after"),
            now=later,
        )
        db.session.commit()
        assert tracked.consumed == 3 and tracked.period_start == renewed.current_period_start
        metric = usage.usage_metrics(buyer.customer_id, "api_calls", now=later).metrics[0]
        assert metric.consumed == 3
        # The first period keeps its own total: read at the real clock, still inside it.
        (before,) = usage.usage_metrics(buyer.customer_id, "api_calls").metrics
        assert before.consumed == 600


class TestCalendarPeriod:
    def test_a_purchased_quota_counts_per_calendar_month(self, client, buyer, plans):
        buy(buyer, plans.storage_pack)
        body = track(client, buyer, 20, feature_key="storage_gb").get_json()
        now = datetime.now(UTC)
        start, end = usage.calendar_period("month", now)
        assert datetime.fromisoformat(body["period_start"]) == start
        assert datetime.fromisoformat(body["period_end"]) == end
        assert check(client, buyer, "storage_gb")["usage"] == 20

    def test_calendar_periods(self):
        december = datetime(2026, 12, 15, 8, tzinfo=UTC)
        assert usage.calendar_period("month", december) == (
            datetime(2026, 12, 1, tzinfo=UTC),
            datetime(2027, 1, 1, tzinfo=UTC),
        )
        assert usage.calendar_period("year", december) == (
            datetime(2026, 1, 1, tzinfo=UTC),
            datetime(2027, 1, 1, tzinfo=UTC),
        )
        assert usage.calendar_period(None, datetime(2026, 2, 28, tzinfo=UTC))[1] == datetime(
            2026, 3, 1, tzinfo=UTC
        )
