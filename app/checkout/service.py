"""Checkout rules on the request path: create, confirm, read, list.

Nothing here calls Stripe: create inserts a `pending` checkout and enqueues `checkout.prepare`
after commit; confirm marks it `processing` under a row lock and enqueues `checkout.confirm`.
The Stripe work is in app/checkout/stripe_steps.py.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from app import jobs
from app.auth import CustomerPrincipal
from app.catalog.service import PriceNotFound
from app.checkout.schemas import (
    CheckoutConfirm,
    CheckoutCreate,
    CheckoutListQuery,
    PaymentListQuery,
)
from app.currencies import charge_amount_problem
from app.db import db
from app.errors import ApiError, Conflict, NotFound, ValidationFailed
from app.pagination import paginate
from models import CheckoutSession, Customer, PaymentIntent, Subscription
from models.base import sql_in_list, utcnow
from models.checkout import (
    CHECKOUT_TTL_SECONDS,
    EXPIRED,
    KEY_HOLDING_STATUSES,
    PENDING,
    PROCESSING,
)
from models.subscription import LIVE_STATUSES

# `Prefer: wait=N` (N seconds to wait for the client secret) is capped here: N ≤ 10 is the
# documented range, so a client asking for more gets 10, not a longer-held connection.
MAX_WAIT_SECONDS = 10
_POLL_FIRST_SECONDS = 0.01
_POLL_MAX_SECONDS = 0.1


class CheckoutNotFound(NotFound):
    code = "checkout_not_found"
    title = "Checkout not found"


class AlreadySubscribed(Conflict):
    code = "already_subscribed"
    title = "Already subscribed"


class IdempotencyKeyReused(ApiError):
    status = 422
    code = "idempotency_key_reused"
    title = "Idempotency key reused"


class CheckoutNotConfirmable(Conflict):
    code = "checkout_not_confirmable"
    title = "Checkout cannot be confirmed"


class CheckoutExpired(ApiError):
    status = 410
    code = "checkout_expired"
    title = "Checkout expired"


@dataclass(frozen=True)
class CreatedCheckout:
    checkout: CheckoutSession
    # False when the idempotency key named an existing checkout (a repeat).
    created: bool


# --------------------------------------------------------------------------- create


def default_idempotency_key(principal: CustomerPrincipal, price_id: str) -> str:
    """Without an `Idempotency-Key` header, one checkout per session token and price."""
    return f"session:{principal.session_token_id}:price:{price_id}"


def _live_checkout(
    session: Session, customer_id: uuid.UUID, idempotency_key: str
) -> CheckoutSession | None:
    return session.execute(
        select(CheckoutSession).where(
            CheckoutSession.customer_id == customer_id,
            CheckoutSession.idempotency_key == idempotency_key,
            CheckoutSession.status.in_(KEY_HOLDING_STATUSES),
        )
    ).scalar_one_or_none()


def request_hash(data: CheckoutCreate) -> str:
    """The digest an idempotency key is bound to: the request as validated, in canonical JSON
    (so key order and whitespace do not make a retry "different")."""
    canonical = json.dumps(data.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _repeat(checkout: CheckoutSession, data: CheckoutCreate, digest: str | None) -> CreatedCheckout:
    # Like Stripe: one key, one request. Reusing a client's key for another request is a client
    # bug, and answering with the first checkout would hide it. The default key (no header)
    # already names the price and promises one checkout per token and price, so `digest` is
    # None there and nothing else is compared. Rows from before digests were kept are compared
    # by price only.
    if digest is None:
        return CreatedCheckout(checkout, created=False)
    differs = (
        checkout.request_hash != digest
        if checkout.request_hash is not None
        else str(checkout.price_id) != data.price_id
    )
    if differs:
        raise IdempotencyKeyReused(
            "This Idempotency-Key was used for a different request; use a new key."
        )
    return CreatedCheckout(checkout, created=False)


# The whole create decision in one round trip (it is the SDK's hottest write): the key's live
# checkout, the price (it and its product active, in the organization), the live-subscription
# check and the insert. Every CTE reads the statement's one snapshot, in the order the rules
# apply: a live checkout under the key wins (a repeat, even if the price has since gone), then
# price_not_found, then already_subscribed. `ON CONFLICT DO NOTHING` on the partial unique index
# still waits for a concurrent uncommitted insert of the same key, so of twenty identical
# requests exactly one inserts; the others get no `inserted_id` and re-read the winner in a new
# statement (a new snapshot under READ COMMITTED), as before. Plain driver SQL: building and
# compiling the equivalent ORM statements cost more CPU than the rest of the request.
_KEY_HOLDING = sql_in_list(KEY_HOLDING_STATUSES)
_CREATE_SQL = f"""
WITH existing AS (
    SELECT id FROM checkout_sessions
    WHERE customer_id = %(customer_id)s::uuid AND idempotency_key = %(key)s
      AND status IN ({_KEY_HOLDING})
),
price AS (
    SELECT p.id, p.product_id, p.amount, p.currency
    FROM product_prices AS p JOIN products AS pr ON pr.id = p.product_id
    WHERE p.id = %(price_id)s::uuid AND p.organization_id = %(organization_id)s::uuid
      AND p.active IS true AND pr.active IS true
      AND NOT EXISTS (SELECT 1 FROM existing)
),
subscribed AS (
    SELECT 1 FROM subscriptions AS s JOIN price ON s.product_id = price.product_id
    WHERE s.customer_id = %(customer_id)s::uuid AND s.status IN ({sql_in_list(LIVE_STATUSES)})
    LIMIT 1
),
inserted AS (
    INSERT INTO checkout_sessions (
        id, organization_id, customer_id, product_id, price_id, session_token_id,
        idempotency_key, request_hash, status, version, amount, currency, quantity,
        customer_email, customer_name, metadata, expires_at, created_at, updated_at
    )
    SELECT %(id)s::uuid, %(organization_id)s::uuid, %(customer_id)s::uuid, price.product_id,
        price.id, %(session_token_id)s::uuid, %(key)s, %(request_hash)s, '{PENDING}', 1,
        price.amount * %(quantity)s, price.currency, %(quantity)s, %(customer_email)s,
        %(customer_name)s, %(metadata)s::jsonb, %(expires_at)s, %(now)s, %(now)s
    FROM price
    WHERE NOT EXISTS (SELECT 1 FROM subscribed)
    ON CONFLICT (customer_id, idempotency_key) WHERE status IN ({_KEY_HOLDING}) DO NOTHING
    RETURNING id
)
SELECT (SELECT id FROM existing) AS existing_id,
    price.product_id, price.amount, price.currency,
    EXISTS (SELECT 1 FROM subscribed) AS subscribed,
    (SELECT id FROM inserted) AS inserted_id
FROM (SELECT 1) AS one LEFT JOIN price ON true
"""


def create_checkout(
    principal: CustomerPrincipal, data: CheckoutCreate, idempotency_key: str | None
) -> CreatedCheckout:
    """Insert a `pending` checkout (or find the one this idempotency key already made).

    Twenty identical requests at once all try the insert; the partial unique index
    `uq_checkout_sessions_customer_idempotency_key` lets exactly one in, and the others read
    the winner's row (`ON CONFLICT DO NOTHING` waits for the winner's commit).

    A new checkout comes back as a transient object built from the values just inserted (no
    RETURNING of the whole row, no identity-map entry); load it by id to change it.
    """
    session = db.session()
    key = idempotency_key or default_idempotency_key(principal, data.price_id)
    digest = request_hash(data)
    bound = digest if idempotency_key is not None else None
    try:
        price_id = uuid.UUID(data.price_id)
    except ValueError:
        existing = _live_checkout(session, principal.customer_id, key)
        if existing is not None:
            return _repeat(existing, data, bound)
        raise PriceNotFound("No such price, or it is no longer for sale.") from None

    checkout_id = uuid.uuid4()
    now = utcnow()
    expires_at = now + timedelta(seconds=CHECKOUT_TTL_SECONDS)
    row = (
        session.connection()
        .exec_driver_sql(
            _CREATE_SQL,
            {
                "id": str(checkout_id),
                "organization_id": str(principal.organization_id),
                "customer_id": str(principal.customer_id),
                "session_token_id": str(principal.session_token_id),
                "price_id": str(price_id),
                "key": key,
                "request_hash": digest,
                "quantity": data.quantity,
                "customer_email": data.customer_email,
                "customer_name": data.customer_name,
                "metadata": json.dumps(data.metadata),
                "expires_at": expires_at,
                "now": now,
            },
        )
        .one()
    )
    existing_id, product_id, amount, currency, subscribed, inserted_id = row
    if existing_id is not None:
        existing = session.get(CheckoutSession, uuid.UUID(str(existing_id)))
        if existing is None:  # the row was seen in this transaction
            raise Conflict("A concurrent request with this idempotency key is in flight.")
        return _repeat(existing, data, bound)
    if product_id is None:
        raise PriceNotFound("No such price, or it is no longer for sale.")
    problem = charge_amount_problem(amount * data.quantity, currency)
    if problem is not None:
        # The insert (if it happened) rolls back with the request: nothing reaches Stripe.
        raise ValidationFailed(
            f"The checkout total (price amount x quantity) {problem}.",
            errors=[{"loc": ["body", "quantity"], "msg": problem, "type": "charge_amount"}],
        )
    if subscribed:
        raise AlreadySubscribed("You already have an active subscription to this product.")
    if inserted_id is None:
        winner = _live_checkout(session, principal.customer_id, key)
        if winner is None:  # the winner ended (expired) in between: rare, the client retries
            raise Conflict("A concurrent request with this idempotency key is in flight.")
        return _repeat(winner, data, bound)
    jobs.enqueue_after_commit(session, jobs.CHECKOUT_PREPARE, str(checkout_id))
    created = CheckoutSession(
        id=checkout_id,
        organization_id=principal.organization_id,
        customer_id=principal.customer_id,
        product_id=uuid.UUID(str(product_id)),
        price_id=price_id,
        session_token_id=principal.session_token_id,
        idempotency_key=key,
        request_hash=digest,
        status=PENDING,
        version=1,
        amount=amount,
        currency=currency,
        quantity=data.quantity,
        intent_type=None,
        client_secret=None,
        stripe_subscription_id=None,
        next_action=None,
        last_error=None,
        customer_email=data.customer_email,
        customer_name=data.customer_name,
        metadata_=data.metadata,
        expires_at=expires_at,
        created_at=now,
        updated_at=now,
    )
    return CreatedCheckout(created, created=True)


def wait_while_pending(checkout: CheckoutSession, seconds: float) -> CheckoutSession:
    """Wait up to `seconds` for `checkout.prepare` to open the checkout (`Prefer: wait=N`).

    Polls one indexed column on a pooled connection with no transaction held open, backing off
    from 10 ms to 100 ms; under gevent the sleep yields to other requests. Returns the checkout
    as loaded now (`checkout` may be the transient object `create_checkout` returned).
    """
    assert db.engine is not None
    deadline = time.monotonic() + min(seconds, MAX_WAIT_SECONDS)
    delay = _POLL_FIRST_SECONDS
    stmt = select(CheckoutSession.status).where(CheckoutSession.id == checkout.id)
    while time.monotonic() < deadline:
        with db.engine.connect() as conn:
            status = conn.execute(stmt).scalar_one()
        if status != PENDING:
            break
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 2, _POLL_MAX_SECONDS)
    loaded = db.session.get(CheckoutSession, checkout.id, populate_existing=True)
    if loaded is None:  # checkouts are never deleted
        raise CheckoutNotFound("No such checkout.")
    return loaded


# --------------------------------------------------------------------------- confirm


def confirm_checkout(
    principal: CustomerPrincipal, client_secret: str, data: CheckoutConfirm
) -> CheckoutSession:
    """Confirm the customer's checkout named by its client secret (the SDK's confirm)."""
    return _confirm(
        select(CheckoutSession).where(
            CheckoutSession.client_secret == client_secret,
            CheckoutSession.customer_id == principal.customer_id,
        ),
        data,
    )


def confirm_checkout_by_id(checkout_id: uuid.UUID, data: CheckoutConfirm) -> CheckoutSession:
    """Confirm the checkout named by its id alone (the hosted checkout page's confirm).

    The id is the page's capability: a random UUID4 handed only to the buyer's browser.
    """
    return _confirm(select(CheckoutSession).where(CheckoutSession.id == checkout_id), data)


def _confirm(query: Select[CheckoutSession], data: CheckoutConfirm) -> CheckoutSession:
    """Mark the checkout `processing` and enqueue `checkout.confirm`.

    The row lock makes a concurrent second confirm wait, then see `processing` and get 409: only
    one confirmation is ever sent to Stripe.
    """
    session = db.session()
    checkout = session.execute(query.with_for_update()).scalar_one_or_none()
    if checkout is None:
        raise CheckoutNotFound("No such checkout.")
    if checkout.status == EXPIRED or (checkout.is_confirmable and checkout.is_expired_at(utcnow())):
        raise CheckoutExpired("This checkout has expired; start a new one.")
    if not checkout.is_confirmable:
        raise CheckoutNotConfirmable(f"This checkout is {checkout.status} and cannot be confirmed.")
    changes: dict[str, object] = {"confirm_attempts": 0, "last_error": None, "next_action": None}
    if data.customer_email is not None:
        changes["customer_email"] = data.customer_email
    if data.customer_name is not None:
        changes["customer_name"] = data.customer_name
    checkout.transition(PROCESSING, **changes)
    # Kept so that a lost `checkout.confirm` message can be sent again by the reconciler.
    checkout.confirmation = checkout.version
    checkout.confirm_payment_method = data.payment_method_id
    checkout.confirm_confirmation_token = data.confirmation_token_id
    jobs.enqueue_after_commit(
        session,
        jobs.CHECKOUT_CONFIRM,
        str(checkout.id),
        checkout.version,
        data.payment_method_id,
        data.confirmation_token_id,
    )
    return checkout


# --------------------------------------------------------------------------- read


def get_customer_checkout(principal: CustomerPrincipal, checkout_id: uuid.UUID) -> CheckoutSession:
    checkout = db.session.execute(
        select(CheckoutSession).where(
            CheckoutSession.id == checkout_id,
            CheckoutSession.customer_id == principal.customer_id,
        )
    ).scalar_one_or_none()
    if checkout is None:
        raise CheckoutNotFound("No such checkout.")
    return checkout


def subscription_of(checkout: CheckoutSession) -> Subscription | None:
    if checkout.stripe_subscription_id is None:
        return None
    return db.session.execute(
        select(Subscription).where(Subscription.checkout_session_id == checkout.id)
    ).scalar_one_or_none()


def subscriptions_of(checkouts: list[CheckoutSession]) -> dict[uuid.UUID, Subscription]:
    ids = [c.id for c in checkouts if c.stripe_subscription_id is not None]
    if not ids:
        return {}
    rows = db.session.execute(
        select(Subscription).where(Subscription.checkout_session_id.in_(ids))
    ).scalars()
    return {row.checkout_session_id: row for row in rows if row.checkout_session_id is not None}


def etag(checkout: CheckoutSession) -> str:
    return f'"{checkout.id}.{checkout.version}"'


def etag_matches(if_none_match: str | None, current: str) -> bool:
    """RFC 9110 §13.1.2: weak comparison, a list of tags, or `*`."""
    if not if_none_match:
        return False
    for candidate in if_none_match.split(","):
        tag = candidate.strip()
        if tag == "*":
            return True
        if tag.startswith("W/"):
            tag = tag[2:]
        if tag == current:
            return True
    return False


# --------------------------------------------------------------------------- merchant lists


def get_merchant_checkout(
    organization_id: uuid.UUID, checkout_id: uuid.UUID
) -> tuple[CheckoutSession, str]:
    row = db.session.execute(
        select(CheckoutSession, Customer.external_id)
        .join(Customer, Customer.id == CheckoutSession.customer_id)
        .where(
            CheckoutSession.id == checkout_id,
            CheckoutSession.organization_id == organization_id,
        )
    ).first()
    if row is None:
        raise CheckoutNotFound("No such checkout.")
    return row[0], row[1]


def list_checkouts(
    organization_id: uuid.UUID, query: CheckoutListQuery
) -> tuple[list[CheckoutSession], dict[uuid.UUID, str], bool]:
    stmt = select(CheckoutSession).where(CheckoutSession.organization_id == organization_id)
    if query.status is not None:
        stmt = stmt.where(CheckoutSession.status == query.status)
    if query.customer_external_id is not None:
        stmt = stmt.join(Customer, Customer.id == CheckoutSession.customer_id).where(
            Customer.external_id == query.customer_external_id
        )
    checkouts, has_more = paginate(stmt, CheckoutSession, query, organization_id)
    return checkouts, _external_ids({c.customer_id for c in checkouts}), has_more


def list_payments(
    organization_id: uuid.UUID, query: PaymentListQuery
) -> tuple[list[PaymentIntent], dict[uuid.UUID, str], bool]:
    stmt = select(PaymentIntent).where(PaymentIntent.organization_id == organization_id)
    if query.status is not None:
        stmt = stmt.where(PaymentIntent.status == query.status)
    if query.customer_external_id is not None:
        stmt = stmt.join(Customer, Customer.id == PaymentIntent.customer_id).where(
            Customer.external_id == query.customer_external_id
        )
    payments, has_more = paginate(stmt, PaymentIntent, query, organization_id)
    return payments, _external_ids({p.customer_id for p in payments}), has_more


def _external_ids(customer_ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
    if not customer_ids:
        return {}
    rows = db.session.execute(
        select(Customer.id, Customer.external_id).where(Customer.id.in_(customer_ids))
    )
    return {row.id: row.external_id for row in rows}
