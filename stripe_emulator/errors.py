"""Stripe-shaped errors."""

from __future__ import annotations

from typing import Any

_DOCS = "https://stripe.com/docs/error-codes/"


class StripeError(Exception):
    """An API error answered as ``{"error": {...}}`` with a Stripe status code."""

    def __init__(
        self,
        status: int,
        type_: str,
        message: str,
        code: str | None = None,
        param: str | None = None,
        decline_code: str | None = None,
        extra: dict[str, Any] | None = None,
        store_idempotent: bool = True,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.type = type_
        self.message = message
        self.code = code
        self.param = param
        self.decline_code = decline_code
        self.extra = extra or {}
        # validation errors (raised before execution) are not stored for idempotent replay
        self.store_idempotent = store_idempotent

    def body(self) -> dict[str, Any]:
        err: dict[str, Any] = {
            "type": self.type,
            "code": self.code,
            "decline_code": self.decline_code,
            "message": self.message,
            "param": self.param,
        }
        if self.code:
            err["doc_url"] = _DOCS + self.code.replace("_", "-")
        err.update(self.extra)
        return {"error": err}


def invalid(
    message: str,
    param: str | None = None,
    code: str | None = None,
    store: bool = True,
    extra: dict[str, Any] | None = None,
) -> StripeError:
    return StripeError(
        400,
        "invalid_request_error",
        message,
        code=code,
        param=param,
        extra=extra,
        store_idempotent=store,
    )


def missing(kind: str, obj_id: str, param: str = "id") -> StripeError:
    return StripeError(
        404,
        "invalid_request_error",
        f"No such {kind}: '{obj_id}'",
        code="resource_missing",
        param=param,
    )
