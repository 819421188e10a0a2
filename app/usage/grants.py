"""Grants: which usage-limited features a customer holds now, with their limits and periods.

Read through the entitlement cache (body `GRANTS`), so they are exactly as coherent as
entitlements: after a downgrade commits, no read sees the old limit.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

import redis
from sqlalchemy import text
from sqlalchemy.orm import Session

from app.catalog.schemas import LIMITED_TYPES
from app.db import db
from app.entitlements.cache import CACHE_TTL_SECONDS, GRANTS
from app.entitlements.service import entitlement_cache
from app.usage.schemas import (
    FeatureGrant,
    FeatureGrantList,
    GrantSource,
)
from models.base import utcnow
from models.catalog import UNLIMITED

log = logging.getLogger(__name__)

USAGE_QUOTA = "usage_quota"
NUMERIC_LIMIT = "numeric_limit"


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
