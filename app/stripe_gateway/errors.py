"""The error vocabulary callers see instead of `stripe` exceptions: `TransientStripeError` (retry)
or a permanent outcome (`PaymentDeclined`, `InvalidStripeRequest`)."""

from __future__ import annotations

from typing import Any

import stripe


class StripeGatewayError(Exception):
    """Base of everything the gateway raises."""

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        http_status: int | None = None,
        stripe_object: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.http_status = http_status
        # The PaymentIntent / SetupIntent Stripe attached to the error, when it did.
        self.stripe_object = stripe_object


class TransientStripeError(StripeGatewayError):
    """Connection failure, timeout, 5xx, 409 (concurrent idempotent request) or rate limit.

    Safe to retry with the same idempotency key: Stripe either never did the work or replays it.
    `stored` says Stripe saved this failure as the key's answer (a 500, or a replay of one):
    retrying under that key can only replay it.
    """

    stored: bool = False


class PaymentDeclined(StripeGatewayError):
    """A card error (HTTP 402): the buyer must try another payment method. Never retried."""

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        decline_code: str | None = None,
        http_status: int | None = None,
        stripe_object: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message, code=code, http_status=http_status, stripe_object=stripe_object)
        self.decline_code = decline_code

    def as_checkout_error(self) -> dict[str, str | None]:
        return {"code": self.code, "decline_code": self.decline_code, "message": self.message}


class InvalidStripeRequest(StripeGatewayError):
    """Stripe refused the request as such (400/404, idempotency mismatch, bad credentials).

    Retrying the same request cannot succeed.
    """

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        http_status: int | None = None,
        stripe_object: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message, code=code, http_status=http_status, stripe_object=stripe_object)
        self.param = param


def _error_object(error: stripe.StripeError) -> dict[str, Any] | None:
    details = error.error
    if details is None:
        return None
    for key in ("payment_intent", "setup_intent"):
        obj = getattr(details, key, None)
        if obj:
            return obj.to_dict()
    return None


def translate_error(error: stripe.StripeError) -> StripeGatewayError:
    """Map the library's exceptions (https://docs.stripe.com/api/errors) onto our vocabulary."""
    details = error.error
    message = (details.message if details is not None else None) or str(
        error.user_message or "Stripe request failed"
    )
    code = error.code
    status = error.http_status
    obj = _error_object(error)
    if isinstance(error, stripe.CardError):
        return PaymentDeclined(
            message,
            code=code,
            decline_code=details.decline_code if details is not None else None,
            http_status=status,
            stripe_object=obj,
        )
    if isinstance(error, (stripe.APIConnectionError, stripe.RateLimitError)):
        return TransientStripeError(message, code=code, http_status=status)
    if isinstance(error, stripe.APIError):
        # 5xx, 409 "a request with this idempotency key is in progress", or an unparseable body.
        transient = TransientStripeError(message, code=code, http_status=status)
        replayed = (error.headers or {}).get("Idempotent-Replayed") == "true"
        transient.stored = status == 500 or (replayed and (status or 0) >= 500)
        return transient
    if isinstance(error, stripe.IdempotencyError):
        return InvalidStripeRequest(message, code="idempotency_error", http_status=status)
    if isinstance(error, stripe.InvalidRequestError):
        return InvalidStripeRequest(
            message,
            code=code,
            param=details.param if details is not None else None,
            http_status=status,
            stripe_object=obj,
        )
    # Authentication/permission errors are a configuration problem: retrying will not help.
    return InvalidStripeRequest(message, code=code or "stripe_error", http_status=status)


# --------------------------------------------------------------------------- helpers
