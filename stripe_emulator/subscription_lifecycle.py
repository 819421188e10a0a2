"""What happens to subscriptions as the emulated clock moves: expiry, trials, renewals,
payment retries and cancellation at period end.

Each subscription has a billing schedule (``billing_schedules[sub_id]``): the ``anchor`` its
periods are counted from, the ``cycle`` number of the current period, and whether
``trial_will_end`` has been sent.
"""

from __future__ import annotations

from typing import Any

from .invoices import TERMINAL_SUBSCRIPTION_STATUSES, Invoices
from .params import DAY, StripeObject, add_interval, snapshot

# an incomplete subscription whose first invoice stays unpaid this long expires
INCOMPLETE_EXPIRY = 23 * 3600
# customer.subscription.trial_will_end is sent this long before a trial ends
TRIAL_WILL_END_NOTICE = 3 * DAY
# trial_settings.end_behavior.missing_payment_method: what a trial without a card ends in
TRIAL_END_BEHAVIORS = ("cancel", "pause", "create_invoice")
# run_due gives up after this many steps (a guard against a loop that never settles)
_MAX_STEPS = 10_000


class SubscriptionLifecycle(Invoices):
    def run_due(self) -> None:
        """Do what Stripe would have done by ``now()``; loops until nothing is due."""
        for _ in range(_MAX_STEPS):
            subscriptions = list(self.objects_by_type.get("subscription", {}).values())
            if not any(self._advance_subscription(sub) for sub in subscriptions):
                return

    def _advance_subscription(self, sub: StripeObject) -> bool:
        """Take the one step that is due for ``sub``, if any; True when something happened."""
        now = self.now()
        status = sub["status"]
        schedule = self.billing_schedules[sub["id"]]
        if status in TERMINAL_SUBSCRIPTION_STATUSES or status == "paused":
            return False
        if status == "incomplete":
            if now >= sub["created"] + INCOMPLETE_EXPIRY:
                self._expire_incomplete(sub)
                return True
            return False
        if status == "trialing":
            trial_end = sub["trial_end"]
            if not schedule["trial_will_end_sent"] and now >= trial_end - TRIAL_WILL_END_NOTICE:
                schedule["trial_will_end_sent"] = True
                self.emit("customer.subscription.trial_will_end", sub)
                return True
            if now >= trial_end:
                self._end_trial(sub)
                return True
            return False
        period_end = sub["items"]["data"][0]["current_period_end"]
        if now >= period_end:
            if sub["cancel_at_period_end"] or (sub["cancel_at"] and sub["cancel_at"] <= now):
                self._end_subscription(sub, period_end)
                return True
            self._renew(sub)
            return True
        if status == "past_due":
            invoice = self.objects.get(sub["latest_invoice"] or "")
            if (
                invoice is not None
                and invoice["status"] == "open"
                and invoice["next_payment_attempt"]
                and invoice["next_payment_attempt"] <= now
            ):
                invoice["next_payment_attempt"] = None
                self._charge_invoice(invoice, sub)
                return True
        return False

    def _end_subscription(self, sub: StripeObject, at: int) -> None:
        sub.update(status="canceled", ended_at=at, canceled_at=sub["canceled_at"] or at)
        sub["cancellation_details"]["reason"] = (
            sub["cancellation_details"]["reason"] or "cancellation_requested"
        )
        self.emit("customer.subscription.deleted", sub)

    @staticmethod
    def _set_period(sub: StripeObject, start: int, end: int) -> None:
        for item in sub["items"]["data"]:
            item["current_period_start"] = start
            item["current_period_end"] = end

    def _expire_incomplete(self, sub: StripeObject) -> None:
        """The first invoice was never paid: void it and cancel its PaymentIntent."""
        now = self.now()
        sub.update(status="incomplete_expired", ended_at=now)
        self.emit("customer.subscription.updated", sub, {"status": "incomplete"})
        invoice = self.objects.get(sub["latest_invoice"] or "")
        if invoice is not None and invoice["status"] == "open":
            self._void_invoice(invoice)

    def _end_trial(self, sub: StripeObject) -> None:
        trial_end = sub["trial_end"]
        if sub["cancel_at_period_end"]:
            self._end_subscription(sub, trial_end)
            return
        customer = self.objects[sub["customer"]]
        has_card = bool(
            sub["default_payment_method"] or customer["invoice_settings"]["default_payment_method"]
        )
        missing = sub["trial_settings"]["end_behavior"]["missing_payment_method"]
        if not has_card and missing == "cancel":
            # Stripe cancels instead of billing a card it does not have.
            self._end_subscription(sub, trial_end)
            return
        if not has_card and missing == "pause":
            previous = {"status": "trialing"}
            sub.update(status="paused", pause_collection=None)
            self.emit("customer.subscription.paused", sub)
            self.emit("customer.subscription.updated", sub, previous)
            return
        recurring = sub["items"]["data"][0]["price"]["recurring"]
        self.billing_schedules[sub["id"]].update(anchor=trial_end, cycle=1)
        end = add_interval(trial_end, recurring["interval"], recurring["interval_count"])
        previous = {
            "status": "trialing",
            "items": snapshot(sub["items"]),
            "latest_invoice": sub["latest_invoice"],
        }
        self._set_period(sub, trial_end, end)
        sub["status"] = "active"
        if sub["pending_setup_intent"]:
            previous["pending_setup_intent"] = sub["pending_setup_intent"]
            sub["pending_setup_intent"] = None
        self._bill_period(sub, trial_end, end, previous)

    def _renew(self, sub: StripeObject) -> None:
        recurring = sub["items"]["data"][0]["price"]["recurring"]
        schedule = self.billing_schedules[sub["id"]]
        schedule["cycle"] += 1
        start = sub["items"]["data"][0]["current_period_end"]
        # counted from the anchor so that month-end clamping does not drift the periods
        end = add_interval(
            schedule["anchor"],
            recurring["interval"],
            recurring["interval_count"] * schedule["cycle"],
        )
        if end <= start:
            end = add_interval(start, recurring["interval"], recurring["interval_count"])
        previous = {"items": snapshot(sub["items"]), "latest_invoice": sub["latest_invoice"]}
        self._set_period(sub, start, end)
        if sub["status"] == "unpaid":
            # Stripe leaves further invoices of an unpaid subscription as drafts: no charge
            self.emit("customer.subscription.updated", sub, previous)
            return
        self._bill_period(sub, start, end, previous)

    def _bill_period(
        self, sub: StripeObject, start: int, end: int, previous: dict[str, Any]
    ) -> None:
        invoice = self._create_invoice(sub, "subscription_cycle", start, end)
        self.emit("customer.subscription.updated", sub, previous)
        self.emit("invoice.created", invoice)
        if self._finalize_invoice(invoice, sub) is not None:
            self._charge_invoice(invoice, sub)
