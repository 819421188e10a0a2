"""Entitlements: which features a customer may use, derived from one place.

`recompute_entitlements` is the only writer of the `entitlements` table. Whoever changes what a
customer owns (a subscription's status or period, a one-time payment succeeding or being
refunded) calls it in the same transaction; it derives the grants from scratch and makes the
table match:

- a subscription in `ENTITLING_STATUSES` (trialing, active, past_due — Stripe keeps a past_due
  subscription alive while it retries the payment) grants its product's features until its
  trial or current period ends;
- a succeeded PaymentIntent of a checkout for a one-time price grants them with no end, until it
  is fully refunded;
- nothing else grants anything (canceled, unpaid, incomplete, incomplete_expired, paused).

When something changed it also bumps `customers.entitlements_version` (UPDATE … RETURNING, under
the same per-customer lock), reads the resulting list, and after the transaction commits
invalidates the customer's cache entry and publishes that list with that version on the
customer's real-time channel (`entitlements.updated`). The version lives in Postgres, not Redis:
a Redis restart, flush or eviction must never make it go backwards, or every open customer
stream would drop each new list as "older" than the one it holds.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import redis
from flask import current_app
from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from app import realtime
from app.db import db, on_commit
from app.entitlements.cache import CACHE_TTL_SECONDS, EntitlementCache
from app.entitlements.schemas import EntitlementList, EntitlementOut
from app.redis_client import get_redis
from models import (
    CheckoutSession,
    Customer,
    Entitlement,
    Feature,
    PaymentIntent,
    ProductPrice,
    Subscription,
    product_features,
)
from models.base import utcnow
from models.subscription import ENTITLING_STATUSES

log = logging.getLogger(__name__)

SUBSCRIPTION = "subscription"
PURCHASE = "purchase"

# Namespace of the per-customer advisory lock (pg_advisory_xact_lock(int, int)): "ENT".
_LOCK_NAMESPACE = 0x454E54


@dataclass(frozen=True)
class Grant:
    """One feature granted by one source (a subscription or a one-time payment)."""

    source: str
    source_id: uuid.UUID
    feature_id: uuid.UUID
    feature_key: str
    product_id: uuid.UUID
    expires_at: datetime | None

    @property
    def key(self) -> tuple[str, uuid.UUID, uuid.UUID]:
        return (self.source, self.feature_id, self.source_id)


def _lock_customer_entitlements(session: Session, customer_id: uuid.UUID) -> None:
    # Two transactions recomputing the same customer would both insert the same grant and one
    # would die on the unique constraint. An advisory lock serializes them without locking the
    # customer row that checkout tasks update; under READ COMMITTED, every statement after it
    # sees what the previous holder committed.
    key = int.from_bytes(customer_id.bytes[:4], "big", signed=True)
    session.execute(select(func.pg_advisory_xact_lock(_LOCK_NAMESPACE, key)))


def _subscription_expiry(
    status: str, period_end: datetime | None, trial_end: datetime | None
) -> datetime | None:
    # A trial grants until the trial ends; Stripe then either starts charging (a new period,
    # a `customer.subscription.updated`) or cancels it (missing payment method).
    if status == "trialing" and trial_end is not None:
        return trial_end
    return period_end


def derive_grants(
    session: Session, customer_id: uuid.UUID
) -> dict[tuple[str, uuid.UUID, uuid.UUID], Grant]:
    """Every grant the customer's subscriptions and payments justify right now."""
    grants: dict[tuple[str, uuid.UUID, uuid.UUID], Grant] = {}
    subscription_rows = session.execute(
        select(
            Subscription.id,
            Subscription.product_id,
            Subscription.status,
            Subscription.current_period_end,
            Subscription.trial_end,
            Feature.id.label("feature_id"),
            Feature.key.label("feature_key"),
        )
        .join(product_features, product_features.c.product_id == Subscription.product_id)
        .join(Feature, Feature.id == product_features.c.feature_id)
        .where(
            Subscription.customer_id == customer_id,
            Subscription.status.in_(ENTITLING_STATUSES),
        )
    )
    for row in subscription_rows:
        grant = Grant(
            source=SUBSCRIPTION,
            source_id=row.id,
            feature_id=row.feature_id,
            feature_key=row.feature_key,
            product_id=row.product_id,
            expires_at=_subscription_expiry(row.status, row.current_period_end, row.trial_end),
        )
        grants[grant.key] = grant

    purchase_rows = session.execute(
        select(
            PaymentIntent.id,
            CheckoutSession.product_id,
            Feature.id.label("feature_id"),
            Feature.key.label("feature_key"),
        )
        .join(CheckoutSession, CheckoutSession.id == PaymentIntent.checkout_session_id)
        .join(ProductPrice, ProductPrice.id == CheckoutSession.price_id)
        .join(product_features, product_features.c.product_id == CheckoutSession.product_id)
        .join(Feature, Feature.id == product_features.c.feature_id)
        .where(
            PaymentIntent.customer_id == customer_id,
            PaymentIntent.status == "succeeded",
            ProductPrice.type == "one_time",
            # A partial refund (a goodwill discount) keeps the purchase; a full one undoes it.
            PaymentIntent.amount_refunded < PaymentIntent.amount,
        )
    )
    for purchase in purchase_rows:
        grant = Grant(
            source=PURCHASE,
            source_id=purchase.id,
            feature_id=purchase.feature_id,
            feature_key=purchase.feature_key,
            product_id=purchase.product_id,
            expires_at=None,
        )
        grants[grant.key] = grant
    return grants


def _row_key(row: Entitlement) -> tuple[str, uuid.UUID, uuid.UUID]:
    source_id = row.subscription_id if row.source == SUBSCRIPTION else row.payment_intent_id
    assert source_id is not None  # the source_reference check constraint
    return (row.source, row.feature_id, source_id)


def recompute_entitlements(session: Session, customer_id: uuid.UUID) -> bool:
    """Make the customer's `entitlements` rows match their subscriptions and payments.

    Call it in the transaction that changed what the customer owns, after the change. Returns
    whether any row was inserted, updated or deleted; when one was, the customer's
    `entitlements_version` is bumped, and once the transaction commits (never before, never on
    rollback) the cache is invalidated and `entitlements.updated` is published with the list as
    this transaction left it and that version.
    """
    _lock_customer_entitlements(session, customer_id)
    organization_id = session.execute(
        select(Customer.organization_id).where(Customer.id == customer_id)
    ).scalar_one()
    wanted = derive_grants(session, customer_id)
    existing = {
        _row_key(row): row
        for row in session.execute(
            select(Entitlement).where(Entitlement.customer_id == customer_id)
        ).scalars()
    }

    changed = False
    for key, row in existing.items():
        grant = wanted.get(key)
        if grant is None:
            session.delete(row)
            changed = True
            continue
        if (row.expires_at, row.feature_key, row.product_id) != (
            grant.expires_at,
            grant.feature_key,
            grant.product_id,
        ):
            row.expires_at = grant.expires_at
            row.feature_key = grant.feature_key
            row.product_id = grant.product_id
            changed = True
    for key, grant in wanted.items():
        if key in existing:
            continue
        session.add(
            Entitlement(
                organization_id=organization_id,
                customer_id=customer_id,
                product_id=grant.product_id,
                feature_id=grant.feature_id,
                feature_key=grant.feature_key,
                source=grant.source,
                subscription_id=grant.source_id if grant.source == SUBSCRIPTION else None,
                payment_intent_id=grant.source_id if grant.source == PURCHASE else None,
                expires_at=grant.expires_at,
            )
        )
        changed = True

    if changed:
        session.flush()
        # Still under the advisory lock: versions are handed out in commit order, and the list
        # read next is exactly what this version will mean once committed.
        version = bump_entitlements_version(session, customer_id)
        entitlements = load_entitlements(session, customer_id)
        # After-commit hooks run inside the caller's commit, so in its (request or task) app
        # context; pushing a fresh context here would tear down the scoped session mid-commit.
        on_commit(session, lambda: announce_entitlements_change(customer_id, entitlements, version))
    return changed


def bump_entitlements_version(session: Session, customer_id: uuid.UUID) -> int:
    """Increment the customer's `entitlements_version` and return the new value."""
    version: int = session.execute(
        update(Customer)
        .where(Customer.id == customer_id)
        .values(entitlements_version=Customer.entitlements_version + 1)
        .returning(Customer.entitlements_version)
        # The ORM copy of the customer (if loaded) is refreshed from the RETURNING row.
        .execution_options(synchronize_session="fetch")
    ).scalar_one()
    return version


def entitlements_version(session: Session, customer_id: uuid.UUID) -> int:
    """The customer's committed entitlements version (0 before any grant ever changed)."""
    version: int = session.execute(
        select(Customer.entitlements_version).where(Customer.id == customer_id)
    ).scalar_one()
    return version


# --- reading -------------------------------------------------------------------------------


def _as_utc(value: datetime | None) -> datetime | None:
    return value.astimezone(UTC) if value is not None else None


def load_entitlements(
    session: Session, customer_id: uuid.UUID, now: datetime | None = None
) -> list[EntitlementOut]:
    """The customer's grants in force at `now` (an expired period no longer counts)."""
    now = now or utcnow()
    rows = session.execute(
        select(
            Entitlement.feature_key,
            Entitlement.product_id,
            Entitlement.source,
            Entitlement.expires_at,
        )
        .where(
            Entitlement.customer_id == customer_id,
            or_(Entitlement.expires_at.is_(None), Entitlement.expires_at > now),
        )
        .order_by(Entitlement.feature_key, Entitlement.product_id, Entitlement.source)
    )
    return [
        EntitlementOut(
            feature_key=row.feature_key,
            product_id=str(row.product_id),
            source=row.source,
            expires_at=_as_utc(row.expires_at),
        )
        for row in rows
    ]


def _cache_ttl_ms(entitlements: list[EntitlementOut], now: datetime) -> int:
    # Never keep a body past the first moment one of its grants lapses.
    ttl_ms = CACHE_TTL_SECONDS * 1000
    for entitlement in entitlements:
        if entitlement.expires_at is not None:
            ttl_ms = min(ttl_ms, int((entitlement.expires_at - now).total_seconds() * 1000))
    return ttl_ms


def _encode(entitlements: list[EntitlementOut]) -> bytes:
    return EntitlementList(data=entitlements).model_dump_json().encode()


def entitlement_cache() -> EntitlementCache:
    extensions = current_app.extensions
    cache = extensions.get("entitlement_cache")
    if cache is None:
        cache = extensions["entitlement_cache"] = EntitlementCache(get_redis())
    return cache


def entitlements_body(customer_id: uuid.UUID) -> bytes:
    """The `GET /v1/customer/entitlements` body: one Redis MGET when cached.

    On a miss the ticket is taken (in the same MGET) before Postgres is read, so a revocation
    committing in between voids the write-back (see app/entitlements/cache.py).
    """
    cache = entitlement_cache()
    try:
        found = cache.lookup(customer_id)
    except redis.RedisError:
        # Redis is a cache here, not the truth: answer from Postgres rather than fail.
        log.warning("entitlement cache unavailable; reading Postgres")
        return _encode(load_entitlements(db.session(), customer_id))
    if found.body is not None:
        return found.body
    now = utcnow()
    entitlements = load_entitlements(db.session(), customer_id, now)
    body = _encode(entitlements)
    try:
        cache.fill(found.ticket, body, _cache_ttl_ms(entitlements, now))
    except redis.RedisError:
        log.warning("entitlement cache write-back failed")
    return body


def list_entitlements(customer_id: uuid.UUID) -> list[EntitlementOut]:
    """The customer's entitlements as objects (merchant view, real-time snapshot)."""
    return EntitlementList.model_validate_json(entitlements_body(customer_id)).data


# --- after commit --------------------------------------------------------------------------


def announce_entitlements_change(
    customer_id: uuid.UUID, entitlements: list[EntitlementOut], version: int
) -> None:
    """Invalidate the cache, then publish the committed list with its version (after commit).

    The cache is only invalidated, not re-warmed: two writers' hooks may run in either order,
    and a re-warm with this writer's list could land after a newer writer's invalidation. The
    next reader fills it through a generation ticket instead (app/entitlements/cache.py).
    A failed invalidation is logged and does not stop the message: the body then lives until
    its TTL (`CACHE_TTL_SECONDS`), and the streams still get the new list.
    """
    try:
        entitlement_cache().invalidate(customer_id)
    except redis.RedisError as exc:
        log.warning(
            "entitlement cache not invalidated (%s); stale for at most %d s",
            type(exc).__name__,
            CACHE_TTL_SECONDS,
        )
    realtime.publish_entitlements_updated(customer_id, entitlements, version=version)
