"""Entitlements: which features a customer may use, derived from one place.

`recompute_entitlements` is the only writer of the `entitlements` table. Whoever changes what a
customer owns (a subscription's status or period, a one-time payment succeeding or being
refunded) calls it in the same transaction; it derives the grants from scratch and makes the
table match:

- a subscription in `ENTITLING_STATUSES` (trialing, active, past_due — Stripe keeps a past_due
  subscription alive while it retries the payment) grants its product's features until its
  trial or current period ends;
- a succeeded PaymentIntent of a checkout for a one-time price grants them with no end, until it
  is fully refunded or its dispute is lost;
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
from datetime import UTC, datetime

import redis
from flask import current_app
from sqlalchemy import Connection, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from app import realtime
from app.db import db, on_commit
from app.entitlements.cache import CACHE_TTL_SECONDS, EntitlementCache
from app.entitlements.schemas import EntitlementList, EntitlementOut
from app.redis_client import get_redis
from models import CheckoutSession, Customer, Entitlement, PaymentIntent, Subscription
from models.base import sql_in_list, utcnow
from models.subscription import ENTITLING_STATUSES

log = logging.getLogger(__name__)

SUBSCRIPTION = "subscription"
PURCHASE = "purchase"

# Namespace of the per-customer advisory lock (pg_advisory_xact_lock(int, int)): "ENT".
_LOCK_NAMESPACE = 0x454E54


# The grants a customer's subscriptions and payments justify right now, one row per
# (source, feature, source id). A subscription in ENTITLING_STATUSES grants until its trial (when
# trialing) or its current period ends; a succeeded one-time payment that is not fully refunded
# (a partial refund is a goodwill discount and keeps the purchase) grants with no end.
# $1 is the customer id, $2 the transaction's "now".
_ENTITLING_SQL = sql_in_list(sorted(ENTITLING_STATUSES))
_WANTED_GRANTS = f"""
wanted AS (
    SELECT DISTINCT ON (source, feature_id, source_id) *
    FROM (
        SELECT '{SUBSCRIPTION}' AS source, s.id AS source_id, f.id AS feature_id,
               f.key AS feature_key, s.product_id AS product_id,
               CASE WHEN s.status = 'trialing' AND s.trial_end IS NOT NULL THEN s.trial_end
                    ELSE s.current_period_end END AS expires_at
        FROM subscriptions s
        JOIN product_features pf ON pf.product_id = s.product_id
        JOIN features f ON f.id = pf.feature_id
        WHERE s.customer_id = $1 AND s.status IN ({_ENTITLING_SQL})
        UNION ALL
        SELECT '{PURCHASE}', pi.id, f.id, f.key, cs.product_id, NULL::timestamptz
        FROM payment_intents pi
        JOIN checkout_sessions cs ON cs.id = pi.checkout_session_id
        JOIN product_prices pp ON pp.id = cs.price_id
        JOIN product_features pf ON pf.product_id = cs.product_id
        JOIN features f ON f.id = pf.feature_id
        WHERE pi.customer_id = $1 AND pi.status = 'succeeded'
          AND pp.type = 'one_time' AND pi.amount_refunded < pi.amount
          AND pi.dispute_status IS DISTINCT FROM 'lost'
    ) AS grants
)"""

# An existing row `e` is the grant `w` when source, feature and source id match.
_SAME_GRANT = (
    "w.source = e.source AND w.feature_id = e.feature_id AND w.source_id ="
    f" CASE WHEN e.source = '{SUBSCRIPTION}' THEN e.subscription_id ELSE e.payment_intent_id END"
)

# The whole diff in one statement: delete rows no longer justified, update rows whose
# expiry/feature key/product moved, insert new grants; count what changed. Doing it in Postgres
# keeps the cost of an unchanged grant at an index probe instead of an ORM object, so a customer
# with a long purchase history no longer costs Python work per row on every event. The three
# data-modifying CTEs touch disjoint rows (unwanted / wanted and existing / wanted and missing)
# and all read the snapshot taken after the advisory lock was granted.
_SYNC_GRANTS = (
    "WITH"
    + _WANTED_GRANTS
    + f""",
deleted AS (
    DELETE FROM entitlements e
    WHERE e.customer_id = $1 AND NOT EXISTS (SELECT 1 FROM wanted w WHERE {_SAME_GRANT})
    RETURNING 1
),
updated AS (
    UPDATE entitlements e
    SET expires_at = w.expires_at, feature_key = w.feature_key, product_id = w.product_id,
        updated_at = $2
    FROM wanted w
    WHERE e.customer_id = $1 AND {_SAME_GRANT}
      AND (e.expires_at IS DISTINCT FROM w.expires_at OR e.feature_key <> w.feature_key
           OR e.product_id <> w.product_id)
    RETURNING 1
),
inserted AS (
    INSERT INTO entitlements (id, organization_id, customer_id, product_id, feature_id,
                              feature_key, source, subscription_id, payment_intent_id,
                              expires_at, created_at, updated_at)
    SELECT gen_random_uuid(), c.organization_id, c.id, w.product_id, w.feature_id,
           w.feature_key, w.source,
           CASE WHEN w.source = '{SUBSCRIPTION}' THEN w.source_id END,
           CASE WHEN w.source = '{PURCHASE}' THEN w.source_id END,
           w.expires_at, $2, $2
    FROM wanted w JOIN customers c ON c.id = $1
    WHERE NOT EXISTS (SELECT 1 FROM entitlements e WHERE e.customer_id = $1 AND {_SAME_GRANT})
    RETURNING 1
)
SELECT (SELECT count(*) FROM deleted) + (SELECT count(*) FROM updated)
       + (SELECT count(*) FROM inserted)"""
)

# Bump the version and read the list it stands for in one statement. The SELECT sees the diff's
# writes (an earlier statement of the same transaction); the advisory lock makes versions
# follow commit order. LEFT JOIN: a customer left with no grant still gets one row, carrying
# the version. Same order as `load_entitlements`.
_BUMP_AND_LIST = """
WITH bumped AS (
    UPDATE customers SET entitlements_version = entitlements_version + 1, updated_at = $2
    WHERE id = $1
    RETURNING entitlements_version
)
SELECT b.entitlements_version, e.feature_key, e.product_id, e.source, e.expires_at
FROM bumped b
LEFT JOIN entitlements e ON e.customer_id = $1 AND (e.expires_at IS NULL OR e.expires_at > $2)
ORDER BY e.feature_key, e.product_id, e.source
"""

# Server-side prepared statements, created once per database connection: planning the diff
# costs Postgres about a millisecond of CPU, several times its execution. They live as long as
# the connection (a rollback does not drop them); the pool clears a connection's `info` when it
# replaces the connection, so a new one is prepared again. Behind a pooler in transaction mode
# (pgbouncer) a connection is not a server session, so `db.server_prepare` is off there and the
# same statements are sent as plain SQL (planned each time).
_PREPARED_KEY = "billingos.entitlements.prepared"
_PREPARE = (
    f"PREPARE billingos_sync_grants(uuid, timestamptz) AS {_SYNC_GRANTS};"
    f" PREPARE billingos_bump_and_list(uuid, timestamptz) AS {_BUMP_AND_LIST}"
)
# The advisory lock and the diff travel in one round trip but are two statements: under READ
# COMMITTED each takes its own snapshot, so the diff sees what the previous holder committed.
# Lock key: two transactions recomputing the same customer would both insert the same grant
# and one would die on the unique constraint; an advisory lock serializes them without locking
# the customer row that checkout tasks update.
_LOCK = "SELECT pg_advisory_xact_lock(%(namespace)s, %(key)s);"


def _plain(statement: str) -> str:
    return statement.replace("$1", "%(customer_id)s::uuid").replace("$2", "%(now)s::timestamptz")


_PREPARED = (
    f"{_LOCK} EXECUTE billingos_sync_grants(%(customer_id)s, %(now)s)",
    "EXECUTE billingos_bump_and_list(%(customer_id)s, %(now)s)",
)
_PLAIN = (f"{_LOCK} {_plain(_SYNC_GRANTS)}", _plain(_BUMP_AND_LIST))


def _connection(session: Session) -> tuple[Connection, tuple[str, str]]:
    """The session's connection and the (lock and sync, bump and list) statements for it."""
    connection = session.connection()
    if not db.server_prepare:
        return connection, _PLAIN
    info = connection.connection.info
    if not info.get(_PREPARED_KEY):
        connection.exec_driver_sql(_PREPARE)
        info[_PREPARED_KEY] = True
    return connection, _PREPARED


def recompute_entitlements(session: Session, customer_id: uuid.UUID) -> bool:
    """Make the customer's `entitlements` rows match their subscriptions and payments.

    Call it in the transaction that changed what the customer owns, after the change. Returns
    whether any row was inserted, updated or deleted; when one was, the customer's
    `entitlements_version` is bumped, and once the transaction commits (never before, never on
    rollback) the cache is invalidated and `entitlements.updated` is published with the list as
    this transaction left it and that version. When nothing changed nothing is written,
    serialized or published.
    """
    # The statements below are plain SQL, which does not autoflush: the caller's pending
    # changes (the payment that just succeeded) must be in the database first.
    session.flush()
    connection, (lock_and_sync, bump_and_list) = _connection(session)
    now = utcnow()
    params = {
        "namespace": _LOCK_NAMESPACE,
        "key": int.from_bytes(customer_id.bytes[:4], "big", signed=True),
        "customer_id": str(customer_id),
        "now": now,
    }
    if not connection.exec_driver_sql(lock_and_sync, params).scalar_one():
        return False
    _forget_loaded_entitlements(session, customer_id)
    rows = connection.exec_driver_sql(bump_and_list, params).all()
    version: int = rows[0].entitlements_version
    _sync_loaded_customer(session, customer_id, version, now)
    entitlements = [
        EntitlementOut(
            feature_key=row.feature_key,
            product_id=str(row.product_id),
            source=row.source,
            expires_at=_as_utc(row.expires_at),
        )
        for row in rows
        if row.feature_key is not None
    ]
    # After-commit hooks run inside the caller's commit, so in its (request or task) app
    # context; pushing a fresh context here would tear down the scoped session mid-commit.
    on_commit(session, lambda: announce_entitlements_change(customer_id, entitlements, version))
    return True


def _forget_loaded_entitlements(session: Session, customer_id: uuid.UUID) -> None:
    # The diff ran in SQL: ORM copies of this customer's rows (rare: only a caller that read
    # them in this transaction) are expired so they reload, or vanish if deleted.
    for obj in list(session.identity_map.values()):
        if isinstance(obj, Entitlement) and obj.customer_id == customer_id:
            session.expire(obj)


def _sync_loaded_customer(
    session: Session, customer_id: uuid.UUID, version: int, now: datetime
) -> None:
    # Keep an ORM copy of the customer (if this session holds one) in step with the UPDATE,
    # as `synchronize_session="fetch"` would, without a flush of its own.
    customer = session.identity_map.get(session.identity_key(Customer, customer_id))
    if customer is not None:
        set_committed_value(customer, "entitlements_version", version)
        set_committed_value(customer, "updated_at", now)


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
        entitlement_cache().invalidate_after_commit(customer_id)
    except redis.RedisError as exc:
        log.warning(
            "entitlement cache not invalidated (%s); stale for at most %d s",
            type(exc).__name__,
            CACHE_TTL_SECONDS,
        )
    realtime.publish_entitlements_updated(customer_id, entitlements, version=version)


# --- merchant changes to what a feature grants ------------------------------------------------


def recompute_for_product(product_id: uuid.UUID) -> None:
    """Derive again the entitlements of everyone who owns this product (its features changed)."""
    session = db.session()
    owners = session.execute(
        select(Subscription.customer_id)
        .where(Subscription.product_id == product_id)
        .union(
            select(PaymentIntent.customer_id)
            .join(CheckoutSession, CheckoutSession.id == PaymentIntent.checkout_session_id)
            .where(CheckoutSession.product_id == product_id)
        )
    ).scalars()
    for customer_id in list(owners):
        if customer_id is not None:
            recompute_entitlements(session, customer_id)


def invalidate_feature_holders(feature_id: uuid.UUID) -> None:
    """After commit, drop the cached answers of every customer granted this feature."""
    session = db.session()
    holders = list(
        session.execute(
            select(Entitlement.customer_id).where(Entitlement.feature_id == feature_id).distinct()
        ).scalars()
    )

    def invalidate() -> None:
        cache = entitlement_cache()
        for customer_id in holders:
            try:
                cache.invalidate(customer_id)
            except redis.RedisError:
                log.warning(
                    "entitlement cache not invalidated; stale for at most %d s", CACHE_TTL_SECONDS
                )
                return

    on_commit(session, invalidate)
