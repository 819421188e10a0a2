"""Reading Stripe objects, fetched (`stripe.StripeObject`) or from a webhook (a plain dict)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import stripe

# A Stripe object as the gateway returns it (`stripe.StripeObject`, which in stripe-python 16 is
# no longer a dict) or as a webhook event carries it (a plain dict).
StripeObject = Mapping[str, Any] | stripe.StripeObject
Data = Mapping[str, Any]

# PaymentIntent statuses Stripe never leaves (https://docs.stripe.com/payments/paymentintents/lifecycle).
FINAL_PAYMENT_INTENT_STATUSES = frozenset({"succeeded", "canceled"})
# `cancellation_reason` we send when a checkout expires; a cancellation for any other reason
# (the merchant's dashboard, Stripe itself) cancels the checkout instead.
EXPIRY_CANCELLATION_REASON = "abandoned"
# The same for subscriptions, which have no reason code but a free-text comment.
EXPIRY_CANCELLATION_COMMENT = "billingos: checkout expired"
# How far Stripe's clock may be ahead of ours: a state we fetched ourselves is stamped this far
# into the future, so an event created around the fetch counts as "in doubt" and is re-fetched
# rather than trusted.
CLOCK_SKEW = timedelta(seconds=5)


# --------------------------------------------------------------------------- small readers


def as_dict(obj: StripeObject) -> Mapping[str, Any]:
    """A plain, recursive dict of a Stripe object (event payloads already are)."""
    if isinstance(obj, stripe.StripeObject):
        return obj.to_dict()
    return obj


def _id(value: Any) -> str | None:
    """An expandable field: either the id or the expanded object."""
    if value is None or isinstance(value, str):
        return value
    return str(value["id"])


def _timestamp(value: Any) -> datetime | None:
    if value is None:
        return None
    return datetime.fromtimestamp(int(value), tz=UTC)


def _uuid(value: Any) -> uuid.UUID | None:
    if not value:
        return None
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def _metadata(obj: Data) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def _plain(value: Any) -> Any:
    """A JSON-ready copy of a Stripe object (StripeObject subclasses dict, but nested)."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
