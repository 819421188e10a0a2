"""The Stripe side of a checkout: prepare, confirm, expire and reconcile.

These are the bodies of the `checkout.*` tasks (tasks/checkout.py adds the retry policy). Each
takes our ids, reads what it needs under a row lock, calls Stripe with no transaction open (a
slow Stripe must not hold Postgres locks), then applies Stripe's answer through
`app.stripe_sync` in a fresh transaction. Every step is safe to run twice: the state check at
the start makes a repeat a no-op, and the idempotency keys make a repeated Stripe call return
the first call's object.

Transient failures (`TransientStripeError`, database connection errors) propagate to the task,
which retries with backoff; each run is counted in `prepare_attempts` / `confirm_attempts`,
and past `MAX_ATTEMPTS` the checkout shows `failed` with `last_error.code = stripe_unavailable`
instead of staying `pending`/`processing` forever.
"""

from app.checkout.stripe_steps.attempts import (
    MAX_ATTEMPTS,
    attempts,
    give_up,
)
from app.checkout.stripe_steps.confirm import (
    confirm_checkout,
    refresh_checkout,
)
from app.checkout.stripe_steps.expire import (
    expire_checkout,
    overdue_checkout_ids,
)
from app.checkout.stripe_steps.prepare import (
    ensure_stripe_customer,
    prepare_checkout,
)
from app.checkout.stripe_steps.reconcile import (
    settle_stuck_checkout,
)

__all__ = [
    "MAX_ATTEMPTS",
    "attempts",
    "confirm_checkout",
    "ensure_stripe_customer",
    "expire_checkout",
    "give_up",
    "overdue_checkout_ids",
    "prepare_checkout",
    "refresh_checkout",
    "settle_stuck_checkout",
]
