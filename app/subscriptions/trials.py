"""One trial per customer and product.

Stripe grants a trial to whoever a subscription is created for with `trial_period_days`; it
does not remember who had one. A customer who already had a trial of a product (any of our
subscriptions to it with a `trial_end`) gets none again, through a checkout (the subscription
is billed at once) as through a direct create (refused).
"""

from __future__ import annotations

import uuid

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from models import Subscription


def had_trial(session: Session, customer_id: uuid.UUID, product_id: uuid.UUID) -> bool:
    return bool(
        session.execute(
            select(
                exists().where(
                    Subscription.customer_id == customer_id,
                    Subscription.product_id == product_id,
                    Subscription.trial_end.is_not(None),
                )
            )
        ).scalar()
    )
