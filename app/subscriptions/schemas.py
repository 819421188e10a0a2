from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from app.request_models import RequestModel
from models import Subscription
from models.subscription import SubscriptionStatus


class SubscriptionOut(BaseModel):
    id: str
    status: SubscriptionStatus
    product_id: str
    price_id: str
    current_period_end: datetime | None
    trial_end: datetime | None
    cancel_at_period_end: bool
    created_at: datetime


def subscription_out(subscription: Subscription) -> SubscriptionOut:
    return SubscriptionOut(
        id=str(subscription.id),
        status=subscription.status,
        product_id=str(subscription.product_id),
        price_id=str(subscription.price_id),
        current_period_end=subscription.current_period_end,
        trial_end=subscription.trial_end,
        cancel_at_period_end=subscription.cancel_at_period_end,
        created_at=subscription.created_at,
    )


class SubscriptionList(BaseModel):
    data: list[SubscriptionOut]
    has_more: bool = False


class SubscriptionCreate(RequestModel):
    price_id: str = Field(
        min_length=1, max_length=100, description="A free recurring price, or one with a trial."
    )


class SubscriptionCancel(RequestModel):
    at_period_end: bool = Field(
        default=True,
        description="true: keep access until the period ends, then end (Stripe's "
        "`cancel_at_period_end`). false: end now, revoking entitlements at once.",
    )
