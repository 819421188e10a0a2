"""Invoices and invoice payments: the subscription side of a payment.

Subscriptions create invoices here; finalizing one with an amount due opens a PaymentIntent
whose outcome (reported through the PaymentIntent hooks) pays or fails the invoice and moves
the subscription's status.
"""

from __future__ import annotations

from typing import Any

from . import objects
from .errors import invalid
from .params import DAY, Params, StripeObject
from .payment_intents import PaymentIntents

# subscription statuses nothing happens to any more
TERMINAL_SUBSCRIPTION_STATUSES = ("canceled", "incomplete_expired")
# a failed renewal is retried this long after the attempt
PAYMENT_RETRY_DELAY = 3 * DAY


def subscription_id_of(invoice: StripeObject) -> str | None:
    details = (invoice["parent"] or {}).get("subscription_details") or {}
    subscription_id: str | None = details.get("subscription")
    return subscription_id


class Invoices(PaymentIntents):
    INCLUDABLE_FIELDS = frozenset({("invoice", "confirmation_secret"), ("invoice", "payments")})

    def _include_field(self, obj: StripeObject, key: str) -> Any:
        if key == "confirmation_secret":
            pi = self.objects.get(self.payment_intent_of_invoice.get(obj["id"], ""))
            if pi is None or obj["status"] in ("paid", "void", "draft"):
                return None
            return {"client_secret": pi["client_secret"], "type": "payment_intent"}
        payment_ids = self.invoice_payment_ids.get(obj["id"], [])
        return {
            "object": "list",
            "data": [self.objects[payment_id] for payment_id in reversed(payment_ids)],
            "has_more": False,
            "url": f"/v1/invoices/{obj['id']}/payments",
        }

    # ----------------------------------------------------------------- API
    def op_invoices_retrieve(self, invoice_id: str | None, params: Params) -> StripeObject:
        return self._require("invoice", invoice_id, "invoice")

    def op_invoices_list(self, _id: str | None, params: Params) -> dict[str, Any]:
        customer, subscription = params.get("customer"), params.get("subscription")
        status = params.get("status")
        return self._list(
            "invoice",
            params,
            "/v1/invoices",
            lambda invoice: (
                (not customer or invoice["customer"] == customer)
                and (not subscription or subscription_id_of(invoice) == subscription)
                and (not status or invoice["status"] == status)
            ),
        )

    def op_invoices_void(self, invoice_id: str | None, params: Params) -> StripeObject:
        invoice = self._require("invoice", invoice_id, "invoice")
        if invoice["status"] != "open":
            raise invalid(
                f"You can only void an open invoice; this invoice is {invoice['status']}."
            )
        self._void_invoice(invoice)
        return invoice

    def _void_invoice(self, invoice: StripeObject) -> None:
        """Void an open invoice and cancel its PaymentIntent: nothing can pay it any more."""
        now = self.now()
        invoice.update(status="void", amount_remaining=0, next_payment_attempt=None)
        invoice["status_transitions"]["voided_at"] = now
        self.emit("invoice.voided", invoice)
        pi = self.objects.get(self.payment_intent_of_invoice.get(invoice["id"], ""))
        if pi is not None and pi["status"] != "succeeded":
            pi.update(
                status="canceled",
                canceled_at=now,
                cancellation_reason="void_invoice",
                next_action=None,
            )
            self.emit("payment_intent.canceled", pi)
        for invoice_payment_id in self.invoice_payment_ids.get(invoice["id"], []):
            invoice_payment = self.objects[invoice_payment_id]
            invoice_payment["status"] = "canceled"
            invoice_payment["status_transitions"]["canceled_at"] = now

    def op_invoice_payments_list(self, _id: str | None, params: Params) -> dict[str, Any]:
        invoice_id = params.get("invoice")
        payment: dict[str, Any] = (
            params["payment"] if isinstance(params.get("payment"), dict) else {}
        )
        pi_id = payment.get("payment_intent")
        status = params.get("status")
        return self._list(
            "invoice_payment",
            params,
            "/v1/invoice_payments",
            lambda invoice_payment: (
                (not invoice_id or invoice_payment["invoice"] == invoice_id)
                and (not pi_id or invoice_payment["payment"].get("payment_intent") == pi_id)
                and (not status or invoice_payment["status"] == status)
            ),
        )

    def op_invoice_payments_retrieve(
        self, invoice_payment_id: str | None, params: Params
    ) -> StripeObject:
        return self._require("invoice_payment", invoice_payment_id, "invoice_payment")

    # ----------------------------------------------------------------- creating and paying
    def _create_invoice(self, sub: StripeObject, reason: str, start: int, end: int) -> StripeObject:
        """A draft invoice for ``sub``'s items over [start, end]; reason "trial" bills $0."""
        customer = self.objects[sub["customer"]]
        invoice_id = objects.new_id("in")
        number = f"{customer['invoice_prefix']}-{customer['next_invoice_sequence']:04d}"
        customer["next_invoice_sequence"] += 1
        invoice = objects.invoice(invoice_id, self.now(), customer, sub, reason, start, end, number)
        lines = [
            objects.line_item(objects.new_id("il"), invoice_id, sub["id"], item, start, end)
            for item in sub["items"]["data"]
        ]
        total = 0 if reason == "trial" else sum(line["amount"] for line in lines)
        if reason == "trial":
            for line in lines:
                line["amount"] = line["subtotal"] = 0
                line["description"] = "Trial period for " + line["description"]
            reason = "subscription_create"
        invoice["billing_reason"] = reason
        invoice["lines"]["data"] = lines
        invoice.update(
            amount_due=total,
            amount_remaining=total,
            subtotal=total,
            subtotal_excluding_tax=total,
            total=total,
            total_excluding_tax=total,
        )
        self._save(invoice)
        sub["latest_invoice"] = invoice_id
        return invoice

    def _finalize_invoice(self, invoice: StripeObject, sub: StripeObject) -> StripeObject | None:
        """Open ``invoice``: a $0 one is paid at once (→ None), else its PaymentIntent."""
        now = self.now()
        invoice["status"] = "open"
        invoice["status_transitions"]["finalized_at"] = now
        invoice["effective_at"] = now
        if invoice["amount_due"] == 0:
            self.emit("invoice.finalized", invoice)
            self._mark_invoice_paid(invoice)
            return None
        save_card = sub["payment_settings"]["save_default_payment_method"] == "on_subscription"
        description = (
            "Subscription creation"
            if invoice["billing_reason"] == "subscription_create"
            else "Subscription update"
        )
        pi = objects.payment_intent(
            objects.new_id("pi"),
            now,
            {
                "amount": invoice["amount_due"],
                "currency": invoice["currency"],
                "customer": invoice["customer"],
                "description": description,
                "setup_future_usage": "off_session" if save_card else None,
                # Without `payment_settings[payment_method_types]` the invoice offers the
                # Dashboard's payment methods, redirect-based ones included.
                "allowed_payment_method_types": sub["payment_settings"]["payment_method_types"],
            },
        )
        self._save(pi)
        invoice_payment = self._save(
            objects.invoice_payment(objects.new_id("inpay"), now, invoice, pi["id"])
        )
        self.invoice_of_payment_intent[pi["id"]] = invoice["id"]
        self.payment_intent_of_invoice[invoice["id"]] = pi["id"]
        self.invoice_payment_ids.setdefault(invoice["id"], []).append(invoice_payment["id"])
        self.emit("invoice.finalized", invoice)
        self.emit("payment_intent.created", pi)
        return pi

    def _mark_invoice_paid(self, invoice: StripeObject) -> None:
        invoice.update(
            status="paid",
            amount_paid=invoice["amount_due"],
            amount_remaining=0,
            attempted=True,
            next_payment_attempt=None,
        )
        invoice["status_transitions"]["paid_at"] = self.now()
        self.emit("invoice.paid", invoice)
        self.emit("invoice.payment_succeeded", invoice)

    def _charge_invoice(self, invoice: StripeObject, sub: StripeObject) -> None:
        """Attempt the invoice's PaymentIntent off-session with the default payment method."""
        pi = self.objects[self.payment_intent_of_invoice[invoice["id"]]]
        customer = self.objects[sub["customer"]]
        pm_id = (
            sub["default_payment_method"] or customer["invoice_settings"]["default_payment_method"]
        )
        if not pm_id:
            self._invoice_payment_failed(invoice)
            return
        if pi["status"] == "requires_action":
            pi.update(status="requires_payment_method", next_action=None)
        self._attempt_payment(pi, self.objects[pm_id], off_session=True)

    # ----------------------------------------------------------------- payment outcomes
    def _after_payment_succeeded(self, pi: StripeObject, pm: StripeObject) -> None:
        invoice_id = self.invoice_of_payment_intent.get(pi["id"])
        if invoice_id:
            self._invoice_payment_succeeded(self.objects[invoice_id], pi, pm)

    def _after_payment_failed(self, pi: StripeObject) -> None:
        invoice_id = self.invoice_of_payment_intent.get(pi["id"])
        if invoice_id:
            self._invoice_payment_failed(self.objects[invoice_id])

    def _invoice_payment_succeeded(
        self, invoice: StripeObject, pi: StripeObject, pm: StripeObject
    ) -> None:
        invoice["attempt_count"] += 1
        self._mark_invoice_paid(invoice)
        self.objects[invoice["customer"]]["delinquent"] = False
        sub = self.objects.get(subscription_id_of(invoice) or "")
        if sub is not None and sub["status"] not in TERMINAL_SUBSCRIPTION_STATUSES:
            previous: dict[str, Any] = {}
            if sub["status"] in ("incomplete", "past_due", "unpaid"):
                previous["status"] = sub["status"]
                sub["status"] = "active"
            save_card = sub["payment_settings"]["save_default_payment_method"] == "on_subscription"
            if save_card and sub["default_payment_method"] != pm["id"]:
                previous["default_payment_method"] = sub["default_payment_method"]
                sub["default_payment_method"] = pm["id"]
            if previous:
                self.emit("customer.subscription.updated", sub, previous)
        for invoice_payment_id in self.invoice_payment_ids.get(invoice["id"], []):
            invoice_payment = self.objects[invoice_payment_id]
            if invoice_payment["payment"].get("payment_intent") == pi["id"]:
                invoice_payment.update(status="paid", amount_paid=pi["amount"])
                invoice_payment["status_transitions"]["paid_at"] = self.now()
                self.emit("invoice_payment.paid", invoice_payment)

    def _invoice_payment_failed(self, invoice: StripeObject) -> None:
        """A failed renewal makes an active subscription past_due, a past_due one unpaid."""
        invoice["attempt_count"] += 1
        invoice["attempted"] = True
        self.objects[invoice["customer"]]["delinquent"] = True
        sub = self.objects.get(subscription_id_of(invoice) or "")
        new_status = None
        if sub is not None and invoice["billing_reason"] != "subscription_create":
            if sub["status"] in ("active", "trialing"):
                new_status = "past_due"
            elif sub["status"] == "past_due":
                new_status = "unpaid"
        will_retry = new_status == "past_due"
        invoice["next_payment_attempt"] = self.now() + PAYMENT_RETRY_DELAY if will_retry else None
        self.emit("invoice.payment_failed", invoice)
        if sub is not None and new_status:
            previous = {"status": sub["status"]}
            sub["status"] = new_status
            self.emit("customer.subscription.updated", sub, previous)
