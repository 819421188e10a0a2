"""Feature limits and usage metering.

Rules (documented for merchants in docs/usage.md):

- A customer's limit for a feature is the largest any of their grants gives (-1, unlimited,
  beats every number); a feature marked `additive` sums its grants instead.
- A `usage_quota` granted by a live subscription is counted over that subscription's billing
  period (`current_period_start`..`current_period_end`, moved by Stripe at each renewal, so
  the count restarts at renewal); otherwise over the calendar month (or year, the feature's
  `period`) in UTC. Among several subscriptions, the period of the one granting the largest
  limit counts. Usage is the sum of every period of the feature still open now, so usage
  recorded under one subscription's period keeps counting after a switch to another's.
- `track-usage` records only `usage_quota` features. A `numeric_limit` is a count the app owns
  (projects, seats): the app sends it as `?usage=` on check, and BillingOS stores none.
- An event's `timestamp` must fall inside the current period (and not more than
  `CLOCK_SKEW` ahead of the server): a closed period is never changed, and an event is never
  moved into a period it did not happen in, so anything else is refused (422).
- Exactly once: the ledger row's `(customer_id, idempotency_key)` is unique and the aggregate is
  updated by the same statement, only when the row was inserted.

Grants are read through the entitlement cache (app/entitlements/cache.py, body `GRANTS`), so
they are exactly as coherent as entitlements: after a downgrade commits, no read sees the old
limit. Consumption is read from `usage_aggregates` by primary key; the ledger is never scanned.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from app import realtime
from app.auth import CustomerPrincipal, MerchantPrincipal
from app.catalog.schemas import LIMITED_TYPES
from app.db import db, on_commit
from app.entitlements.cache import CACHE_TTL_SECONDS, GRANTS
from app.entitlements.schemas import FeatureAccessOut
from app.entitlements.service import entitlement_cache
from app.errors import ApiError, Conflict, NotFound
from app.usage.schemas import (
    FeatureGrant,
    FeatureGrantList,
    GrantSource,
    TrackUsageOut,
    UsageMetric,
    UsageMetricsOut,
)
from models import Customer, Feature, UsageAggregate
from models.base import utcnow
from models.catalog import UNLIMITED

log = logging.getLogger(__name__)

USAGE_QUOTA = "usage_quota"
NUMERIC_LIMIT = "numeric_limit"
# How far ahead of the server's clock a client timestamp may be (clock skew, not the future).
CLOCK_SKEW = timedelta(minutes=5)
# Ledger rows are kept this long (and their idempotency keys recognized) before rolling up.
LEDGER_RETENTION = timedelta(days=35)
ROLLUP_BATCH = 5000


class FeatureNotFound(NotFound):
    code = "feature_not_found"
    title = "Feature not found"


class CustomerNotFound(NotFound):
    code = "customer_not_found"
    title = "Customer not found"


class FeatureNotMetered(ApiError):
    status = 422
    code = "feature_not_metered"
    title = "Feature is not a usage quota"


class TimestampOutsidePeriod(ApiError):
    status = 422
    code = "timestamp_outside_period"
    title = "Timestamp outside the current period"


class CustomerRequired(ApiError):
    status = 422
    code = "customer_required"
    title = "Which customer?"


class IdempotencyKeyReused(Conflict):
    code = "idempotency_key_reused"
    title = "Idempotency key already used for other usage"


# --- grants: what a customer holds now, with limits and periods -------------------------------

_GRANTS_SQL = text(
    """
SELECT f.id AS feature_id, f.key, f.name, f.type, f.period, f.unit, f.additive,
       pf.limit_value, e.product_id, e.source, e.expires_at,
       s.current_period_start, s.current_period_end
FROM entitlements e
JOIN features f ON f.id = e.feature_id
LEFT JOIN product_features pf ON pf.product_id = e.product_id AND pf.feature_id = e.feature_id
LEFT JOIN subscriptions s ON s.id = e.subscription_id
WHERE e.customer_id = :customer_id AND (e.expires_at IS NULL OR e.expires_at > :now)
ORDER BY f.key, e.product_id, e.source
"""
)


def calendar_period(period: str | None, now: datetime) -> tuple[datetime, datetime]:
    """The UTC calendar month (or year) containing `now`."""
    now = now.astimezone(UTC)
    if period == "year":
        return datetime(now.year, 1, 1, tzinfo=UTC), datetime(now.year + 1, 1, 1, tzinfo=UTC)
    start = datetime(now.year, now.month, 1, tzinfo=UTC)
    end = datetime(now.year + now.month // 12, now.month % 12 + 1, 1, tzinfo=UTC)
    return start, end


def _rank(limit: int | None) -> float:
    # Unlimited outranks any number; a limited feature without a limit grants nothing (0).
    if limit == UNLIMITED:
        return float("inf")
    return float(limit or 0)


def combine_limits(limits: list[int | None], additive: bool) -> int:
    if any(limit == UNLIMITED for limit in limits):
        return UNLIMITED
    values = [limit or 0 for limit in limits]
    return sum(values) if additive else max(values, default=0)


def load_grants(session: Session, customer_id: uuid.UUID, now: datetime) -> list[FeatureGrant]:
    rows = session.execute(_GRANTS_SQL, {"customer_id": customer_id, "now": now}).all()
    by_feature: dict[uuid.UUID, list[Any]] = {}
    for row in rows:
        by_feature.setdefault(row.feature_id, []).append(row)
    grants = []
    for feature_rows in by_feature.values():
        first = feature_rows[0]
        limit: int | None = None
        period: tuple[datetime, datetime] | None = None
        if first.type in LIMITED_TYPES:
            limit = combine_limits([r.limit_value for r in feature_rows], first.additive)
        if first.type == USAGE_QUOTA:
            billing = [
                r
                for r in feature_rows
                if r.current_period_start is not None
                and r.current_period_end is not None
                and r.current_period_start <= now < r.current_period_end
            ]
            if billing:
                best = min(billing, key=lambda r: (-_rank(r.limit_value), r.current_period_start))
                period = (best.current_period_start, best.current_period_end)
            else:
                period = calendar_period(first.period, now)
        grants.append(
            FeatureGrant(
                feature_id=str(first.feature_id),
                feature_key=first.key,
                title=first.name,
                type=first.type,
                unit=first.unit,
                limit=limit,
                period_start=period[0] if period else None,
                period_end=period[1] if period else None,
                sources=[
                    GrantSource(
                        product_id=str(r.product_id), source=r.source, expires_at=r.expires_at
                    )
                    for r in feature_rows
                ],
            )
        )
    return grants


def _grants_ttl_ms(grants: list[FeatureGrant], now: datetime) -> int:
    # Never past the first moment a grant lapses or a period ends: both change the answer.
    ttl_ms = CACHE_TTL_SECONDS * 1000
    for grant in grants:
        ends = [s.expires_at for s in grant.sources] + [grant.period_end]
        for end in ends:
            if end is not None:
                ttl_ms = min(ttl_ms, int((end - now).total_seconds() * 1000))
    return ttl_ms


def feature_grants(customer_id: uuid.UUID, now: datetime | None = None) -> dict[str, FeatureGrant]:
    """The customer's grants by feature key: one Redis MGET when cached.

    Filled through a generation ticket taken before Postgres is read, exactly like the
    entitlement list, and voided by the same invalidation.
    """
    cache = entitlement_cache()
    now = now or utcnow()
    try:
        found = cache.lookup(customer_id, GRANTS)
    except redis.RedisError:
        log.warning("entitlement cache unavailable; reading grants from Postgres")
        return _keyed(load_grants(db.session(), customer_id, now))
    if found.body is not None:
        return _keyed(FeatureGrantList.model_validate_json(found.body).data)
    grants = load_grants(db.session(), customer_id, now)
    try:
        cache.fill(
            found.ticket,
            FeatureGrantList(data=grants).model_dump_json().encode(),
            _grants_ttl_ms(grants, now),
        )
    except redis.RedisError:
        log.warning("entitlement cache write-back failed")
    return _keyed(grants)


def _keyed(grants: list[FeatureGrant]) -> dict[str, FeatureGrant]:
    return {grant.feature_key: grant for grant in grants}


# --- tracking ------------------------------------------------------------------------------

# What other periods still open now add to a feature's usage (see `_consumed`).
_OTHER_OPEN_PERIODS = """
SELECT coalesce(sum(o.consumed), 0) FROM usage_aggregates o
WHERE o.customer_id = :customer_id AND o.feature_id = :feature_id
  AND o.period_start <> :period_start AND o.period_start <= :now AND o.period_end > :now"""

# One round trip: the ledger insert, and the aggregate upsert fed by its RETURNING, so the
# aggregate moves only when the event is new. A concurrent insert of the same key waits on the
# unique index and then inserts nothing, so a retry racing its original counts once.
_TRACK_SQL = text(
    f"""
WITH inserted AS (
    INSERT INTO usage_events (organization_id, customer_id, feature_id, idempotency_key,
                              quantity, occurred_at, period_start, period_end, metadata)
    VALUES (:organization_id, :customer_id, :feature_id, :idempotency_key, :quantity,
            :occurred_at, :period_start, :period_end, CAST(:metadata AS jsonb))
    ON CONFLICT ON CONSTRAINT uq_usage_events_customer_id_idempotency_key DO NOTHING
    RETURNING customer_id, feature_id, period_start, period_end, quantity
),
counted AS (
    INSERT INTO usage_aggregates AS a (customer_id, feature_id, period_start, period_end,
                                       consumed, version, updated_at)
    SELECT customer_id, feature_id, period_start, period_end, quantity, 1, now() FROM inserted
    ON CONFLICT (customer_id, feature_id, period_start) DO UPDATE
    SET consumed = a.consumed + EXCLUDED.consumed, version = a.version + 1,
        period_end = EXCLUDED.period_end, updated_at = EXCLUDED.updated_at
    RETURNING a.consumed, a.version
)
SELECT counted.version, counted.consumed + ({_OTHER_OPEN_PERIODS}) AS consumed FROM counted
"""
)

_ORIGINAL_SQL = text(
    """
SELECT e.feature_id, e.quantity, e.period_start, e.period_end
FROM usage_events e
WHERE e.customer_id = :customer_id AND e.idempotency_key = :idempotency_key
"""
)


@dataclass(frozen=True)
class UsageEventIn:
    feature_key: str
    quantity: int
    idempotency_key: str | None = None
    timestamp: datetime | None = None
    metadata: dict[str, Any] | None = None


def tracked_customer(
    principal: MerchantPrincipal | CustomerPrincipal, customer_external_id: str | None
) -> uuid.UUID:
    """Whose usage it is: a session token's own customer, or the one a secret key names."""
    if isinstance(principal, CustomerPrincipal):
        if customer_external_id is not None:
            raise CustomerRequired(
                "A session token tracks its own customer: omit customer_external_id."
            )
        return principal.customer_id
    if customer_external_id is None:
        raise CustomerRequired("With a secret key, name the customer_external_id.")
    return customer_by_external_id(principal.organization_id, customer_external_id)


def customer_by_external_id(organization_id: uuid.UUID, external_id: str) -> uuid.UUID:
    customer_id = db.session.execute(
        select(Customer.id).where(
            Customer.organization_id == organization_id, Customer.external_id == external_id
        )
    ).scalar_one_or_none()
    if customer_id is None:
        raise CustomerNotFound(f"No customer with external id {external_id!r}.")
    return customer_id


def _metered_feature(
    organization_id: uuid.UUID, customer_id: uuid.UUID, feature_key: str, now: datetime
) -> tuple[uuid.UUID, int | None, datetime, datetime]:
    """(feature id, limit, period start, period end) of a usage_quota for this customer."""
    grant = feature_grants(customer_id, now).get(feature_key)
    if grant is not None:
        if grant.type != USAGE_QUOTA:
            raise _not_metered(feature_key, grant.type)
        assert grant.period_start is not None and grant.period_end is not None
        return uuid.UUID(grant.feature_id), grant.limit, grant.period_start, grant.period_end
    # Not granted: still recorded (usage is a fact), over the calendar period, limit 0.
    feature = db.session.execute(
        select(Feature.id, Feature.type, Feature.period).where(
            Feature.organization_id == organization_id, Feature.key == feature_key
        )
    ).first()
    if feature is None:
        raise FeatureNotFound(f"No feature {feature_key!r}.")
    if feature.type != USAGE_QUOTA:
        raise _not_metered(feature_key, feature.type)
    start, end = calendar_period(feature.period, now)
    return feature.id, 0, start, end


def _not_metered(feature_key: str, feature_type: str) -> FeatureNotMetered:
    hint = (
        " Send the current count as ?usage= on /v1/features/check."
        if feature_type == NUMERIC_LIMIT
        else ""
    )
    return FeatureNotMetered(f"{feature_key!r} is a {feature_type}, not a usage_quota.{hint}")


def track_usage(
    organization_id: uuid.UUID,
    customer_id: uuid.UUID,
    event: UsageEventIn,
    now: datetime | None = None,
) -> TrackUsageOut:
    """Record one usage event exactly once; the caller commits (which publishes the total).

    `now` is the server's clock unless given (the period and the timestamp rule follow it).
    """
    now = now or utcnow()
    feature_id, limit, period_start, period_end = _metered_feature(
        organization_id, customer_id, event.feature_key, now
    )
    occurred_at = event.timestamp or now
    if occurred_at.tzinfo is None:
        occurred_at = occurred_at.replace(tzinfo=UTC)
    if not (period_start <= occurred_at < period_end) or occurred_at > now + CLOCK_SKEW:
        raise TimestampOutsidePeriod(
            f"timestamp {occurred_at.isoformat()} is outside the current period"
            f" [{period_start.isoformat()}, {period_end.isoformat()})."
        )
    idempotency_key = event.idempotency_key or f"auto_{uuid.uuid4().hex}"
    session = db.session()
    row = session.execute(
        _TRACK_SQL,
        {
            "organization_id": organization_id,
            "customer_id": customer_id,
            "feature_id": feature_id,
            "idempotency_key": idempotency_key,
            "quantity": event.quantity,
            "occurred_at": occurred_at,
            "period_start": period_start,
            "period_end": period_end,
            "metadata": json.dumps(event.metadata) if event.metadata is not None else None,
            "now": now,
        },
    ).first()
    if row is None:
        return _duplicate(customer_id, feature_id, idempotency_key, event, limit, now)
    out = _track_out(event, row.consumed, limit, period_start, period_end, duplicate=False)
    on_commit(session, lambda: realtime.publish_usage_updated(customer_id, out, row.version))
    return out


def _duplicate(
    customer_id: uuid.UUID,
    feature_id: uuid.UUID,
    idempotency_key: str,
    event: UsageEventIn,
    limit: int | None,
    now: datetime,
) -> TrackUsageOut:
    original = db.session.execute(
        _ORIGINAL_SQL, {"customer_id": customer_id, "idempotency_key": idempotency_key}
    ).one()
    if original.feature_id != feature_id or original.quantity != event.quantity:
        raise IdempotencyKeyReused(
            "This idempotency key was already used for a different feature or quantity."
        )
    consumed = _open_usage(customer_id, [feature_id], now).get(str(feature_id), 0)
    return _track_out(
        event,
        consumed,
        limit,
        original.period_start,
        original.period_end,
        duplicate=True,
    )


def _remaining(limit: int | None, consumed: int) -> int | None:
    if limit is None or limit == UNLIMITED:
        return None
    return max(limit - consumed, 0)


def _track_out(
    event: UsageEventIn,
    consumed: int,
    limit: int | None,
    period_start: datetime,
    period_end: datetime,
    *,
    duplicate: bool,
) -> TrackUsageOut:
    return TrackUsageOut(
        feature_key=event.feature_key,
        quantity=event.quantity,
        consumed=consumed,
        limit=limit,
        remaining=_remaining(limit, consumed),
        period_start=period_start.astimezone(UTC),
        period_end=period_end.astimezone(UTC),
        duplicate=duplicate,
    )


# --- reading -------------------------------------------------------------------------------


def _consumed(customer_id: uuid.UUID, grants: list[FeatureGrant], now: datetime) -> dict[str, int]:
    """Usage by feature id: the totals of every period still open now.

    Usually one period per feature. When the subscription whose period counts changes (the
    customer cancels the larger of two plans) the usage recorded in the other period still
    counts until that period ends, so a downgrade never wipes what was used.
    """
    quotas = [uuid.UUID(g.feature_id) for g in grants if g.type == USAGE_QUOTA]
    return _open_usage(customer_id, quotas, now)


def _open_usage(
    customer_id: uuid.UUID, feature_ids: list[uuid.UUID], now: datetime
) -> dict[str, int]:
    if not feature_ids:
        return {}
    rows = db.session.execute(
        select(UsageAggregate.feature_id, func.sum(UsageAggregate.consumed).label("consumed"))
        .where(
            UsageAggregate.customer_id == customer_id,
            UsageAggregate.feature_id.in_(feature_ids),
            UsageAggregate.period_start <= now,
            UsageAggregate.period_end > now,
        )
        .group_by(UsageAggregate.feature_id)
    )
    return {str(r.feature_id): int(r.consumed) for r in rows}


def _access(grant: FeatureGrant, consumed: int, usage: int | None) -> FeatureAccessOut:
    metadata: dict[str, Any] = {
        "type": grant.type,
        "sources": [s.model_dump(mode="json") for s in grant.sources],
    }
    if grant.type != "boolean_flag":
        metadata["unit"] = grant.unit
    if grant.type == USAGE_QUOTA:
        assert grant.period_start is not None and grant.period_end is not None
        usage = consumed
        metadata.update(
            period_start=grant.period_start.isoformat(),
            period_end=grant.period_end.isoformat(),
            remaining=_remaining(grant.limit, usage),
        )
    has_access = True
    if grant.limit is not None and grant.limit != UNLIMITED and usage is not None:
        has_access = usage < grant.limit
    return FeatureAccessOut(
        feature_key=grant.feature_key,
        has_access=has_access,
        limit=grant.limit,
        usage=usage if grant.type != "boolean_flag" else None,
        metadata=metadata,
    )


def check_feature(
    customer_id: uuid.UUID, feature_key: str, usage: int | None, now: datetime | None = None
) -> FeatureAccessOut:
    """Whether the customer may use the feature now: granted, and (a quota) not used up or (a
    numeric limit, given the app's `usage` count) below its limit."""
    now = now or utcnow()
    grant = feature_grants(customer_id, now).get(feature_key)
    if grant is None:
        return FeatureAccessOut(feature_key=feature_key, has_access=False)
    consumed = _consumed(customer_id, [grant], now).get(grant.feature_id, 0)
    return _access(grant, consumed, usage)


def feature_access_list(customer_id: uuid.UUID) -> list[FeatureAccessOut]:
    now = utcnow()
    grants = list(feature_grants(customer_id, now).values())
    consumed = _consumed(customer_id, grants, now)
    return [_access(g, consumed.get(g.feature_id, 0), None) for g in grants]


def usage_metrics(
    customer_id: uuid.UUID, feature_key: str | None, now: datetime | None = None
) -> UsageMetricsOut:
    now = now or utcnow()
    grants = [
        g
        for g in feature_grants(customer_id, now).values()
        if g.type == USAGE_QUOTA and (feature_key is None or g.feature_key == feature_key)
    ]
    consumed = _consumed(customer_id, grants, now)
    metrics = []
    for grant in grants:
        assert grant.period_start is not None and grant.period_end is not None
        used = consumed.get(grant.feature_id, 0)
        metrics.append(
            UsageMetric(
                feature_key=grant.feature_key,
                feature_title=grant.title,
                current_usage=used,
                consumed=used,
                limit=grant.limit,
                remaining=_remaining(grant.limit, used),
                unit=grant.unit,
                period_start=grant.period_start,
                period_end=grant.period_end,
            )
        )
    return UsageMetricsOut(metrics=metrics)


# --- rollup --------------------------------------------------------------------------------

# Moves a batch of old ledger rows of closed periods into daily rollups, atomically: the rows
# deleted are exactly the rows added, so running it twice (or concurrently: SKIP LOCKED) never
# counts a row twice. The aggregates already hold the period totals and are not touched.
_ROLLUP_SQL = text(
    """
WITH batch AS (
    SELECT id FROM usage_events
    WHERE period_end <= :now AND created_at < :cutoff
    ORDER BY period_end, created_at
    LIMIT :batch
    FOR UPDATE SKIP LOCKED
),
moved AS (
    DELETE FROM usage_events e USING batch WHERE e.id = batch.id
    RETURNING e.customer_id, e.feature_id, (e.occurred_at AT TIME ZONE 'UTC')::date AS day,
              e.quantity
),
rolled AS (
    INSERT INTO usage_rollups (customer_id, feature_id, day, quantity, events)
    SELECT customer_id, feature_id, day, sum(quantity), count(*) FROM moved
    GROUP BY customer_id, feature_id, day
    ON CONFLICT (customer_id, feature_id, day) DO UPDATE
    SET quantity = usage_rollups.quantity + EXCLUDED.quantity,
        events = usage_rollups.events + EXCLUDED.events
    RETURNING 1
)
SELECT (SELECT count(*) FROM moved)
"""
)


def roll_up_ledger(session: Session, now: datetime | None = None) -> int:
    """Roll up one batch of old ledger rows; returns how many rows moved (0: nothing left)."""
    now = now or utcnow()
    moved: int = session.execute(
        _ROLLUP_SQL, {"now": now, "cutoff": now - LEDGER_RETENTION, "batch": ROLLUP_BATCH}
    ).scalar_one()
    return moved
