"""PaymentIntents and what a payment leaves behind: charges and refunds.

A PaymentIntent an invoice created reports its outcome through ``_after_payment_succeeded``
and ``_after_payment_failed``; the invoicing family overrides them to settle the invoice.
"""

from __future__ import annotations

from typing import Any

from . import objects
from .errors import StripeError, invalid
from .params import Params, StripeObject, apply_metadata, parse_bool, parse_int, snapshot
from .payment_methods import (
    AUTHENTICATION_REQUIRED,
    CONFIRMABLE_STATUSES,
    DECLINES,
    PaymentMethods,
    card_error_doc_url,
)

_FINAL_STATUSES = ("succeeded", "canceled", "processing")
_UPDATABLE_TEXT_FIELDS = (
    "description",
    "receipt_email",
    "setup_future_usage",
    "shipping",
    "statement_descriptor",
    "statement_descriptor_suffix",
    "transfer_group",
)
AUTHENTICATION_FAILED_MESSAGE = (
    "We are unable to authenticate your payment method. Please choose a different payment "
    "method and try again."
)


def check_client_secret(intent: StripeObject, params: Params, label: str) -> None:
    if params.get("client_secret") and params["client_secret"] != intent["client_secret"]:
        raise invalid(
            "The client_secret provided does not match the client_secret "
            f"associated with the {label}.",
            "client_secret",
        )


def parse_off_session(params: Params) -> bool:
    value = params.get("off_session")
    if isinstance(value, (str, bool)):
        return parse_bool(value, "off_session")
    return bool(value)


class PaymentIntents(PaymentMethods):
    # ----------------------------------------------------------------- hooks for invoicing
    def _after_payment_succeeded(self, pi: StripeObject, pm: StripeObject) -> None:
        """Called once ``pi`` has been paid with ``pm``."""

    def _after_payment_failed(self, pi: StripeObject) -> None:
        """Called once an attempt to pay ``pi`` has failed (declined or not authenticated)."""

    # ----------------------------------------------------------------- payment_intents
    def op_payment_intents_create(self, _id: str | None, params: Params) -> StripeObject:
        amount = parse_int(params["amount"], "amount")
        if amount < 50 and amount != 0:
            raise invalid(
                "Amount must be at least $0.50 usd", "amount", "amount_too_small", store=False
            )
        if params.get("capture_method") == "manual":
            raise invalid(
                "capture_method=manual is not supported by the emulator.",
                "capture_method",
                store=False,
            )
        if params.get("customer"):
            self._require("customer", params["customer"], "customer", "customer")
        pi = objects.payment_intent(objects.new_id("pi"), self.now(), params)
        return self._create_intent(pi, params, self._confirm_payment_intent)

    def op_payment_intents_retrieve(self, pi_id: str | None, params: Params) -> StripeObject:
        pi = self._require("payment_intent", pi_id, "payment_intent")
        check_client_secret(pi, params, "PaymentIntent")
        return pi

    def op_payment_intents_update(self, pi_id: str | None, params: Params) -> StripeObject:
        pi = self._require("payment_intent", pi_id, "payment_intent")
        if pi["status"] in _FINAL_STATUSES:
            raise invalid(
                f"This PaymentIntent's status is {pi['status']}; it cannot be updated.",
                None,
                "payment_intent_unexpected_state",
            )
        if "amount" in params:
            pi["amount"] = parse_int(params["amount"], "amount")
        if "currency" in params:
            pi["currency"] = str(params["currency"]).lower()
        if "customer" in params:
            if params["customer"]:
                self._require("customer", params["customer"], "customer", "customer")
            pi["customer"] = params["customer"] or None
        for key in _UPDATABLE_TEXT_FIELDS:
            if key in params:
                pi[key] = params[key] or None
        if params.get("payment_method"):
            pm = self._resolve_payment_method(params["payment_method"], "payment_method")
            pi["payment_method"] = pm["id"]
            if pi["status"] == "requires_payment_method":
                pi["status"] = "requires_confirmation"
        if "metadata" in params:
            apply_metadata(pi, params["metadata"])
        return pi

    def op_payment_intents_confirm(self, pi_id: str | None, params: Params) -> StripeObject:
        pi = self._require("payment_intent", pi_id, "payment_intent")
        return self._confirm_payment_intent(pi, params)

    def op_payment_intents_cancel(self, pi_id: str | None, params: Params) -> StripeObject:
        pi = self._require("payment_intent", pi_id, "payment_intent")
        if pi["status"] in _FINAL_STATUSES:
            raise invalid(
                "You cannot cancel this PaymentIntent because it has a status of "
                f"{pi['status']}. Only a PaymentIntent with one of the following statuses may "
                "be canceled: requires_payment_method, requires_capture, requires_confirmation, "
                "requires_action, processing.",
                None,
                "payment_intent_unexpected_state",
                extra={"payment_intent": snapshot(pi)},
            )
        if pi["id"] in self.invoice_of_payment_intent:
            raise invalid(
                "You cannot cancel this PaymentIntent because it was created by an invoice.",
                None,
                "payment_intent_unexpected_state",
            )
        pi.update(
            status="canceled",
            canceled_at=self.now(),
            next_action=None,
            cancellation_reason=params.get("cancellation_reason") or "requested_by_customer",
        )
        self.emit("payment_intent.canceled", pi)
        return pi

    def op_payment_intents_list(self, _id: str | None, params: Params) -> dict[str, Any]:
        customer = params.get("customer")
        return self._list(
            "payment_intent",
            params,
            "/v1/payment_intents",
            (lambda pi: pi["customer"] == customer) if customer else None,
        )

    def _confirm_payment_intent(self, pi: StripeObject, params: Params) -> StripeObject:
        if pi["status"] not in CONFIRMABLE_STATUSES:
            raise invalid(
                f"This PaymentIntent's status is {pi['status']}, but it must be one of "
                "requires_payment_method, requires_confirmation, requires_action to be "
                "confirmed.",
                None,
                "payment_intent_unexpected_state",
                extra={"payment_intent": snapshot(pi)},
            )
        pm = self._payment_method_to_confirm(
            pi,
            params,
            "You cannot confirm this PaymentIntent because it's missing a payment "
            "method. To confirm the PaymentIntent with "
            f"{pi['customer'] or 'a customer'}, specify a payment method attached "
            "to this customer along with the customer ID.",
        )
        for key in ("receipt_email", "setup_future_usage", "shipping"):
            if key in params:
                pi[key] = params[key] or None
        if self._attempt_payment(pi, pm, parse_off_session(params)) == "failed":
            error = pi["last_payment_error"]
            raise StripeError(
                402,
                error["type"],
                error["message"],
                code=error["code"],
                decline_code=error.get("decline_code"),
                extra={
                    "charge": error.get("charge"),
                    "payment_intent": snapshot(pi),
                    "payment_method": error.get("payment_method"),
                },
            )
        return pi

    def _attempt_payment(self, pi: StripeObject, pm: StripeObject, off_session: bool) -> str:
        """Charge ``pm`` for ``pi``: returns "succeeded", "requires_action" or "failed"."""
        scenario = self._card_scenario(pm)
        pi["payment_method"] = pm["id"]
        if scenario == "3ds":
            if not off_session:
                pi.update(
                    status="requires_action",
                    last_payment_error=None,
                    next_action=objects.next_action_3ds(pi["id"], self.base_url),
                )
                self.emit("payment_intent.requires_action", pi)
                return "requires_action"
            return self._fail_payment(pi, pm, AUTHENTICATION_REQUIRED)
        decline = DECLINES.get(scenario)
        if decline is not None:
            return self._fail_payment(pi, pm, decline)
        self._succeed_payment(pi, pm)
        return "succeeded"

    def _succeed_payment(self, pi: StripeObject, pm: StripeObject) -> None:
        charge = self._save(objects.charge(objects.new_id("ch"), self.now(), pi, pm, True, None))
        pi.update(
            status="succeeded",
            amount_received=pi["amount"],
            latest_charge=charge["id"],
            next_action=None,
            last_payment_error=None,
            payment_method=pm["id"],
        )
        self.emit("charge.succeeded", charge)
        self.emit("payment_intent.succeeded", pi)
        if self._card_scenario(pm) == "dispute":
            # Stripe's dispute test card: the cardholder disputes the payment right away.
            charge["disputed"] = True
            dispute = objects.dispute(objects.new_id("dp"), self.now(), charge)
            self.emit("charge.dispute.created", self._save(dispute))
        if pi["customer"] and pi["setup_future_usage"] and pm["customer"] is None:
            self._attach_payment_method(pm, pi["customer"])
        self._after_payment_succeeded(pi, pm)

    def _fail_payment(
        self, pi: StripeObject, pm: StripeObject, decline: tuple[str, str, str]
    ) -> str:
        code, decline_code, message = decline
        charge = self._save(
            objects.charge(objects.new_id("ch"), self.now(), pi, pm, False, decline)
        )
        pi.update(
            status="requires_payment_method",
            latest_charge=charge["id"],
            next_action=None,
            payment_method=None,
            last_payment_error={
                "advice_code": "try_again_later" if code == "card_declined" else None,
                "charge": charge["id"],
                "code": code,
                "decline_code": decline_code,
                "doc_url": card_error_doc_url(code),
                "message": message,
                "network_advice_code": None,
                "network_decline_code": None,
                "param": None,
                "payment_method": snapshot(pm),
                "type": "card_error",
            },
        )
        self.emit("charge.failed", charge)
        self.emit("payment_intent.payment_failed", pi)
        self._after_payment_failed(pi)
        return "failed"

    def authenticate_payment_intent(self, pi_id: str, outcome: object) -> StripeObject:
        """Control API: finish (or fail) the 3-D Secure step of ``pi_id``."""
        pi, pm, authenticated = self._awaiting_authentication(
            "payment_intent", pi_id, "PaymentIntent", outcome
        )
        if authenticated:
            self._succeed_payment(pi, pm)
        else:
            pi.update(
                status="requires_payment_method",
                next_action=None,
                payment_method=None,
                last_payment_error={
                    "code": "payment_intent_authentication_failure",
                    "doc_url": card_error_doc_url("payment_intent_authentication_failure"),
                    "message": AUTHENTICATION_FAILED_MESSAGE,
                    "payment_method": snapshot(pm),
                    "type": "invalid_request_error",
                },
            )
            self.emit("payment_intent.payment_failed", pi)
            self._after_payment_failed(pi)
        return pi

    # ----------------------------------------------------------------- charges and refunds
    def op_charges_retrieve(self, charge_id: str | None, params: Params) -> StripeObject:
        return self._require("charge", charge_id, "charge")

    def _charge_to_refund(self, params: Params) -> StripeObject:
        if params.get("charge"):
            return self._require("charge", params["charge"], "charge", "charge")
        if params.get("payment_intent"):
            pi = self._require(
                "payment_intent", params["payment_intent"], "payment_intent", "payment_intent"
            )
            if pi["status"] != "succeeded" or not pi["latest_charge"]:
                raise invalid(
                    f"This PaymentIntent ({pi['id']}) does not have a successful charge to refund.",
                    "payment_intent",
                )
            return self.objects[pi["latest_charge"]]
        raise invalid(
            "One of the following params should be provided for this request: "
            "payment_intent or charge.",
            None,
            "parameter_missing",
            store=False,
        )

    def op_refunds_create(self, _id: str | None, params: Params) -> StripeObject:
        charge = self._charge_to_refund(params)
        if charge["status"] != "succeeded":
            raise invalid("This charge cannot be refunded.", "charge")
        remaining = charge["amount"] - charge["amount_refunded"]
        if remaining <= 0:
            raise invalid(
                f"Charge {charge['id']} has already been refunded.",
                None,
                "charge_already_refunded",
            )
        amount = parse_int(params["amount"], "amount") if "amount" in params else remaining
        if amount <= 0 or amount > remaining:
            raise invalid(
                f"Refund amount ({amount}) is greater than unrefunded amount on "
                f"charge ({remaining})",
                "amount",
                "amount_too_large",
            )
        refund = objects.refund(objects.new_id("re"), self.now(), charge, amount, params)
        apply_metadata(refund, params.get("metadata"))
        self._save(refund)
        previous = {
            "amount_refunded": charge["amount_refunded"],
            "refunded": charge["refunded"],
            "refunds": snapshot(charge["refunds"]),
        }
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] >= charge["amount"]
        charge["refunds"] = dict(charge["refunds"], data=[refund, *charge["refunds"]["data"]])
        self.emit("refund.created", refund)
        self.emit("charge.refunded", charge, previous)
        self.emit(
            "refund.updated",
            refund,
            {"destination_details": {"card": {"reference": None, "reference_status": "pending"}}},
        )
        if self.card_scenarios.get(charge["payment_method"]) == "refund_fail":
            self._fail_refund(refund, charge)
        return refund

    def _fail_refund(self, refund: StripeObject, charge: StripeObject) -> None:
        """Stripe's refund-failure test card: the refund fails after it was created; the
        money stays with the merchant and the charge no longer counts it as refunded."""
        refund.update(status="failed", failure_reason="expired_or_canceled_card")
        charge["amount_refunded"] -= refund["amount"]
        charge["refunded"] = False
        self.emit("charge.refund.updated", refund, {"status": "succeeded"})
        self.emit("refund.failed", refund, {"status": "succeeded"})

    def op_disputes_retrieve(self, dispute_id: str | None, params: Params) -> StripeObject:
        return self._require("dispute", dispute_id, "dispute")

    def close_dispute(self, dispute_id: str, outcome: object) -> StripeObject:
        """Control API: the card network decides a dispute (`won` or `lost`)."""
        dispute = self._require("dispute", dispute_id, "dispute")
        if outcome not in ("won", "lost"):
            raise invalid('outcome must be "won" or "lost"', "outcome")
        if dispute["status"] in ("won", "lost"):
            raise invalid(f"Dispute {dispute_id} is already {dispute['status']}.")
        previous = {"status": dispute["status"]}
        dispute["status"] = outcome
        self.emit("charge.dispute.closed", dispute, previous)
        return dispute

    def op_refunds_retrieve(self, refund_id: str | None, params: Params) -> StripeObject:
        return self._require("refund", refund_id, "refund")
