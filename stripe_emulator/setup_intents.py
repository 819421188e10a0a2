"""SetupIntents: saving a card for later, with the same test-card outcomes as payments.

A SetupIntent a subscription is waiting for reports success through ``_after_setup_succeeded``;
the subscriptions family overrides it to make the card the subscription's default.
"""

from __future__ import annotations

from . import objects
from .errors import StripeError, invalid
from .params import Params, StripeObject, snapshot
from .payment_intents import AUTHENTICATION_FAILED_MESSAGE, check_client_secret
from .payment_methods import CONFIRMABLE_STATUSES, DECLINES, PaymentMethods, card_error_doc_url


class SetupIntents(PaymentMethods):
    def _after_setup_succeeded(self, si: StripeObject, pm: StripeObject) -> None:
        """Called once ``si`` has saved ``pm``."""

    def op_setup_intents_create(self, _id: str | None, params: Params) -> StripeObject:
        if params.get("customer"):
            self._require("customer", params["customer"], "customer", "customer")
        si = objects.setup_intent(objects.new_id("seti"), self.now(), params)
        return self._create_intent(si, params, self._confirm_setup_intent)

    def op_setup_intents_retrieve(self, si_id: str | None, params: Params) -> StripeObject:
        si = self._require("setup_intent", si_id, "setup_intent")
        check_client_secret(si, params, "SetupIntent")
        return si

    def op_setup_intents_confirm(self, si_id: str | None, params: Params) -> StripeObject:
        si = self._require("setup_intent", si_id, "setup_intent")
        return self._confirm_setup_intent(si, params)

    def _confirm_setup_intent(self, si: StripeObject, params: Params) -> StripeObject:
        if si["status"] not in CONFIRMABLE_STATUSES:
            raise invalid(
                f"This SetupIntent's status is {si['status']}; it cannot be confirmed.",
                None,
                "setup_intent_unexpected_state",
            )
        pm = self._payment_method_to_confirm(
            si,
            params,
            "You cannot confirm this SetupIntent because it's missing a payment method.",
        )
        si["payment_method"] = pm["id"]
        scenario = self._card_scenario(pm)
        if scenario == "3ds":
            si.update(
                status="requires_action",
                last_setup_error=None,
                next_action=objects.next_action_3ds(si["id"], self.base_url),
            )
            self.emit("setup_intent.requires_action", si)
            return si
        decline = DECLINES.get(scenario)
        if decline is not None:
            code, decline_code, message = decline
            si.update(
                status="requires_payment_method",
                payment_method=None,
                last_setup_error={
                    "code": code,
                    "decline_code": decline_code,
                    "message": message,
                    "doc_url": card_error_doc_url(code),
                    "payment_method": snapshot(pm),
                    "type": "card_error",
                },
            )
            self.emit("setup_intent.setup_failed", si)
            raise StripeError(
                402,
                "card_error",
                message,
                code=code,
                decline_code=decline_code,
                extra={"setup_intent": snapshot(si), "payment_method": snapshot(pm)},
            )
        self._succeed_setup(si, pm)
        return si

    def _succeed_setup(self, si: StripeObject, pm: StripeObject) -> None:
        if si["customer"]:
            self._attach_payment_method(pm, si["customer"])
        si.update(
            status="succeeded", next_action=None, last_setup_error=None, payment_method=pm["id"]
        )
        self.emit("setup_intent.succeeded", si)
        self._after_setup_succeeded(si, pm)

    def authenticate_setup_intent(self, si_id: str, outcome: object) -> StripeObject:
        """Control API: finish (or fail) the 3-D Secure step of ``si_id``."""
        si, pm, authenticated = self._awaiting_authentication(
            "setup_intent", si_id, "SetupIntent", outcome
        )
        if authenticated:
            self._succeed_setup(si, pm)
        else:
            si.update(
                status="requires_payment_method",
                next_action=None,
                payment_method=None,
                last_setup_error={
                    "code": "setup_intent_authentication_failure",
                    "message": AUTHENTICATION_FAILED_MESSAGE,
                    "payment_method": snapshot(pm),
                    "type": "invalid_request_error",
                },
            )
            self.emit("setup_intent.setup_failed", si)
        return si
