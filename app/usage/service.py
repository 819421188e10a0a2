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
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, text

from app import realtime
from app.auth import CustomerPrincipal, MerchantPrincipal
from app.db import db, on_commit
from app.entitlements.schemas import FeatureAccessOut
from app.usage.errors import (
    CustomerNotFound,
    CustomerRequired,
    FeatureNotFound,
    FeatureNotMetered,
    IdempotencyKeyReused,
    TimestampOutsidePeriod,
)
from app.usage.grants import (
    NUMERIC_LIMIT,
    USAGE_QUOTA,
    calendar_period,
    feature_grants,
)
from app.usage.schemas import (
    FeatureGrant,
    TrackUsageOut,
    UsageMetric,
    UsageMetricsOut,
)
from models import Customer, Feature, UsageAggregate
from models.base import utcnow
from models.catalog import UNLIMITED

# How far ahead of the server's clock a client timestamp may be (clock skew, not the future).
CLOCK_SKEW = timedelta(minutes=5)


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
