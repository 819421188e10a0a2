"""Apply Stripe's truth to our rows.

One place turns a PaymentIntent, SetupIntent or Subscription — fresh from the API, or the
`data.object` of a webhook event (a plain dict) — into changes to `payment_intents`,
`subscriptions` and `checkout_sessions`. The checkout tasks, the webhook handlers and the
reconciler all call these functions, so the flow converges whichever of them hears first.

Rules every function here keeps:

- It locks the rows it changes (`SELECT … FOR UPDATE`) in the one lock order of the codebase
  (docs/architecture.md: inbox event, checkout, payment, subscription, then the customer's
  entitlements), so two appliers of the same news serialize instead of deadlocking.
- It never calls Stripe while it holds a lock. When it needs Stripe's current state, it asks
  `fetched()` for a copy read before the transaction began; if there is none (or the rows it
  guards moved since), `NeedsStripe` rolls the transaction back, the caller reads Stripe with no
  transaction open, and runs the whole transaction again (compare-and-set on row versions).
- It is idempotent: applying the same object twice changes nothing the second time (the
  checkout's `transition()` is a no-op for the same status and fields).
- It never regresses: Stripe delivers events at least once and in no particular order
  (https://docs.stripe.com/webhooks#event-ordering), so a late `processing` never overwrites
  `succeeded`, and a subscription state older than the one we hold is not applied — when the
  order cannot be told (event `created` has whole-second resolution), the subscription is
  re-fetched from Stripe instead (https://docs.stripe.com/webhooks#handle-events-asynchronously).
"""

from app.stripe_sync.checkouts import (
    checkout_error,
    move_checkout,
)
from app.stripe_sync.intents import (
    apply_payment_intent,
    apply_setup_intent,
)
from app.stripe_sync.objects import (
    CLOCK_SKEW,
    EXPIRY_CANCELLATION_COMMENT,
    EXPIRY_CANCELLATION_REASON,
    FINAL_PAYMENT_INTENT_STATUSES,
    StripeObject,
    as_dict,
)
from app.stripe_sync.reads import (
    STRIPE_READS_KEY,
    NeedsStripe,
    ObjectsKeptMoving,
    StripeRead,
    fetched,
    transaction_with_stripe_reads,
)
from app.stripe_sync.subscriptions import (
    apply_subscription,
    lock_subscription_rows,
)

__all__ = [
    "CLOCK_SKEW",
    "EXPIRY_CANCELLATION_COMMENT",
    "EXPIRY_CANCELLATION_REASON",
    "FINAL_PAYMENT_INTENT_STATUSES",
    "STRIPE_READS_KEY",
    "NeedsStripe",
    "ObjectsKeptMoving",
    "StripeObject",
    "StripeRead",
    "apply_payment_intent",
    "apply_setup_intent",
    "apply_subscription",
    "as_dict",
    "checkout_error",
    "fetched",
    "lock_subscription_rows",
    "move_checkout",
    "transaction_with_stripe_reads",
]
