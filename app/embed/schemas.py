"""What the hosted checkout page sends and reads."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from app.checkout.schemas import CheckoutOut
from app.request_models import RequestModel


class EmbedCheckoutOut(CheckoutOut):
    """The Checkout object (as the status endpoint and the streams send it) plus what the page
    displays and what `CHECKOUT_SUCCESS` carries."""

    product_name: str
    interval: str | None
    trial_days: int | None
    sdk_subscription: dict[str, Any] | None = Field(
        description="The subscription in the SDK's shape (camelCase), once the checkout made one."
    )


class EmbedConfirm(RequestModel):
    # The field name the SDK's own confirm call uses.
    paymentMethodId: str = Field(pattern=r"^pm_[A-Za-z0-9_]{1,250}$")
