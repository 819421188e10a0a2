"""Payment methods and confirmation tokens, with Stripe's test cards and what each one does."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from . import objects
from .core import EngineCore
from .errors import StripeError, invalid, missing
from .params import (
    Params,
    StripeObject,
    apply_metadata,
    missing_param,
    parse_bool,
    parse_int,
)

# card scenario -> (code, decline_code, message); "success" and "3ds" are not failures
DECLINES: dict[str, tuple[str, str, str]] = {
    "decline": ("card_declined", "generic_decline", "Your card was declined."),
    "insufficient": ("card_declined", "insufficient_funds", "Your card has insufficient funds."),
    "expired": ("expired_card", "expired_card", "Your card has expired."),
    "cvc": ("incorrect_cvc", "incorrect_cvc", "Your card's security code is incorrect."),
    "processing": (
        "processing_error",
        "processing_error",
        "An error occurred while processing your card. Try again in a little bit.",
    ),
}
# what a 3-D Secure card answers when charged off-session (nobody is there to authenticate)
AUTHENTICATION_REQUIRED = (
    "authentication_required",
    "authentication_required",
    "Your card was declined. This transaction requires authentication.",
)

# Stripe's documented test PaymentMethod ids -> (card number, scenario)
MAGIC_PAYMENT_METHODS: dict[str, tuple[str, str]] = {
    "pm_card_visa": ("4242424242424242", "success"),
    "pm_card_mastercard": ("5555555555554444", "success"),
    "pm_card_amex": ("378282246310005", "success"),
    "pm_card_visa_chargeDeclined": ("4000000000000002", "decline"),
    "pm_card_visa_chargeDeclinedInsufficientFunds": ("4000000000009995", "insufficient"),
    "pm_card_chargeDeclinedExpiredCard": ("4000000000000069", "expired"),
    "pm_card_chargeDeclinedIncorrectCvc": ("4000000000000127", "cvc"),
    "pm_card_chargeDeclinedProcessingError": ("4000000000000119", "processing"),
    "pm_card_threeDSecure2Required": ("4000000000003220", "3ds"),
    "pm_card_authenticationRequired": ("4000002760003184", "3ds"),
    "pm_card_authenticationRequiredOnSetup": ("4000002500003155", "3ds"),
    # succeed, then: the charge is disputed at once / a refund of it fails
    "pm_card_createDispute": ("4000000000000259", "dispute"),
    "pm_card_refundFail": ("4000000000005126", "refund_fail"),
}
# card number -> scenario
CARD_NUMBERS: dict[str, str] = {
    number: scenario for number, scenario in MAGIC_PAYMENT_METHODS.values()
}
CARD_NUMBERS["4000056655665556"] = "success"  # visa debit
CARD_NUMBERS["5555555555554444"] = "success"

# the statuses from which a PaymentIntent or SetupIntent can be confirmed
CONFIRMABLE_STATUSES = ("requires_payment_method", "requires_confirmation", "requires_action")


def card_error_doc_url(code: str) -> str:
    return "https://stripe.com/docs/error-codes/" + code.replace("_", "-")


class PaymentMethods(EngineCore):
    # ----------------------------------------------------------------- helpers for other families
    def _new_payment_method(
        self, number: str, scenario: str, billing_details: Any = None
    ) -> StripeObject:
        pm = objects.payment_method(objects.new_id("pm"), self.now(), number, billing_details)
        self.card_scenarios[pm["id"]] = scenario
        return self._save(pm)

    def _card_scenario(self, pm: StripeObject) -> str:
        return self.card_scenarios.get(pm["id"], "success")

    def _resolve_payment_method(self, value: object, param: str) -> StripeObject:
        """A stored PaymentMethod, or a fresh one for a magic test id (as Stripe does)."""
        value = str(value)
        obj = self.objects.get(value)
        if obj is not None and obj["object"] == "payment_method":
            return obj
        magic = MAGIC_PAYMENT_METHODS.get(value)
        if magic is not None:
            return self._new_payment_method(*magic)
        raise missing("PaymentMethod", value, param)

    def _attach_payment_method(self, pm: StripeObject, customer_id: str, emit: bool = True) -> None:
        if pm["customer"] == customer_id:
            return
        if pm["customer"] is not None:
            raise invalid(
                "The payment method you provided has already been attached to a customer.",
                "payment_method",
                "payment_method_unexpected_state",
            )
        pm["customer"] = customer_id
        if emit:
            self.emit("payment_method.attached", pm)

    def _payment_method_from_confirm_params(self, params: Params) -> StripeObject | None:
        if params.get("confirmation_token"):
            token = self._require(
                "confirmation_token",
                params["confirmation_token"],
                "ConfirmationToken",
                "confirmation_token",
            )
            return self.objects[self.confirmation_token_payment_methods[token["id"]]]
        if params.get("payment_method"):
            return self._resolve_payment_method(params["payment_method"], "payment_method")
        return None

    def _create_intent(
        self,
        intent: StripeObject,
        params: Params,
        confirm: Callable[[StripeObject, Params], StripeObject],
    ) -> StripeObject:
        """Finish creating a Payment/SetupIntent: card, metadata, event, then ``confirm=true``."""
        apply_metadata(intent, params.get("metadata"))
        if params.get("payment_method"):
            pm = self._resolve_payment_method(params["payment_method"], "payment_method")
            intent.update(payment_method=pm["id"], status="requires_confirmation")
        self._save(intent)
        self.emit(f"{intent['object']}.created", intent)
        if parse_bool(params.get("confirm", False), "confirm"):
            confirm(intent, params)
        return intent

    def _payment_method_to_confirm(
        self, intent: StripeObject, params: Params, missing_message: str
    ) -> StripeObject:
        """The card a Payment/SetupIntent confirmation uses: from the params, else its own."""
        self._require_return_url(intent, params)
        pm = self._payment_method_from_confirm_params(params)
        if params.get("confirmation_token"):
            # the token records what it confirmed: its payment_intent or setup_intent field
            self.objects[params["confirmation_token"]][intent["object"]] = intent["id"]
        if pm is None and intent["payment_method"]:
            pm = self.objects[intent["payment_method"]]
        if pm is None:
            raise invalid(missing_message, "payment_method", f"{intent['object']}_unexpected_state")
        return pm

    def _require_return_url(self, intent: StripeObject, params: Params) -> None:
        """Stripe refuses to confirm an intent that may redirect without a `return_url`.

        The URL may come with the confirmation or with the ConfirmationToken confirmed.
        """
        if not objects.redirects_allowed(intent) or params.get("return_url"):
            return
        if params.get("confirmation_token"):
            token = self.objects.get(str(params["confirmation_token"]))
            if token is not None and token.get("return_url"):
                return
        label = "Payment Intent" if intent["object"] == "payment_intent" else "Setup Intent"
        raise invalid(
            f"A `return_url` must be specified because this {label} is configured to "
            "automatically accept the payment methods enabled in the Dashboard, some of which "
            "may require a full page redirect to succeed. If you do not want to accept "
            "redirect-based payment methods, set `automatic_payment_methods[enabled]` to `true` "
            "and `automatic_payment_methods[allow_redirects]` to `never` when creating Setup "
            "Intents and Payment Intents.",
            "return_url",
            store=False,
        )

    def _awaiting_authentication(
        self, kind: str, intent_id: str, label: str, outcome: object
    ) -> tuple[StripeObject, StripeObject, bool]:
        """Control API: (intent, its card, whether 3-D Secure succeeds) for ``outcome``."""
        intent = self._require(kind, intent_id, kind)
        if intent["status"] != "requires_action":
            raise invalid(f"{label} {intent_id} is {intent['status']}, not requires_action.")
        if outcome not in ("succeed", "fail"):
            raise invalid('outcome must be "succeed" or "fail"', "outcome")
        return intent, self.objects[intent["payment_method"]], outcome == "succeed"

    # ----------------------------------------------------------------- payment_methods
    def op_payment_methods_create(self, _id: str | None, params: Params) -> StripeObject:
        if params.get("type") != "card":
            raise invalid(
                "The emulator supports only type=card PaymentMethods.",
                "type",
                "parameter_invalid_string" if params.get("type") else "parameter_missing",
                store=False,
            )
        card = params.get("card")
        if not isinstance(card, dict) or not (card.get("number") or card.get("token")):
            raise missing_param("card[number]")
        number = re.sub(r"\D", "", str(card.get("number") or "4242424242424242"))
        if card.get("token"):
            magic_id = str(card["token"]).replace("tok_", "pm_card_")
            if magic_id not in MAGIC_PAYMENT_METHODS:
                raise missing("token", str(card["token"]), "card[token]")
            number = MAGIC_PAYMENT_METHODS[magic_id][0]
        if len(number) < 12:
            raise StripeError(
                402,
                "card_error",
                "Your card number is incorrect.",
                code="incorrect_number",
                param="card[number]",
            )
        pm = self._new_payment_method(
            number, CARD_NUMBERS.get(number, "success"), params.get("billing_details")
        )
        if "exp_month" in card:
            pm["card"]["exp_month"] = parse_int(card["exp_month"], "card[exp_month]")
        if "exp_year" in card:
            pm["card"]["exp_year"] = parse_int(card["exp_year"], "card[exp_year]")
        if params.get("allow_redisplay"):
            pm["allow_redisplay"] = params["allow_redisplay"]
        apply_metadata(pm, params.get("metadata"))
        return pm

    def op_payment_methods_retrieve(self, pm_id: str | None, params: Params) -> StripeObject:
        if pm_id in MAGIC_PAYMENT_METHODS:
            return self._resolve_payment_method(pm_id, "payment_method")
        return self._require("payment_method", pm_id, "PaymentMethod")

    def op_payment_methods_attach(self, pm_id: str | None, params: Params) -> StripeObject:
        pm = self._resolve_payment_method(pm_id, "payment_method")
        self._require("customer", params["customer"], "customer", "customer")
        self._attach_payment_method(pm, params["customer"])
        return pm

    # ----------------------------------------------------------------- confirmation tokens
    def op_confirmation_tokens_create(self, _id: str | None, params: Params) -> StripeObject:
        if not params.get("payment_method"):
            raise missing_param("payment_method")
        pm = self._resolve_payment_method(params["payment_method"], "payment_method")
        token = self._save(
            objects.confirmation_token(objects.new_id("ctoken"), self.now(), pm, params)
        )
        self.confirmation_token_payment_methods[token["id"]] = pm["id"]
        return token

    def op_confirmation_tokens_retrieve(self, token_id: str | None, params: Params) -> StripeObject:
        return self._require("confirmation_token", token_id, "ConfirmationToken")
