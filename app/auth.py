"""Credentials: merchants' secret keys (`bos_sk_…`) and the SDK's session tokens (`bos_st_…`).

Both are random strings with a recognisable prefix, stored only as their SHA-256 digest: they
carry ≥ 256 bits of entropy, so a fast digest is as safe as a slow one and keeps every request
cheap. The lookup is by digest (an index probe reveals nothing about the stored value), then
compared once more in constant time.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import g, request
from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy import or_, select, update
from sqlalchemy.exc import SQLAlchemyError

from app import credentials
from app.db import db
from app.errors import Forbidden, Unauthenticated
from app.redis_client import get_redis
from models import ApiKey, Customer, SessionToken
from models.base import utcnow

log = logging.getLogger(__name__)


def digest(credential: str) -> str:
    return hashlib.sha256(credential.encode()).hexdigest()


def generate_secret_key() -> str:
    return credentials.generate(credentials.SECRET_KEY)


def generate_session_token() -> str:
    return credentials.generate(credentials.SESSION_TOKEN)


class TokenExpired(Unauthenticated):
    code = "token_expired"
    title = "Token expired"


class OtherModeCredential(Unauthenticated):
    code = "wrong_mode"
    title = "Credential of the other mode"


class WrongCredential(Forbidden):
    code = "wrong_credential_type"
    title = "Wrong kind of credential"


@dataclass(frozen=True)
class MerchantPrincipal:
    organization_id: uuid.UUID
    api_key_id: uuid.UUID


@dataclass(frozen=True)
class CustomerPrincipal:
    organization_id: uuid.UUID
    customer_id: uuid.UUID
    session_token_id: uuid.UUID
    expires_at: datetime


def _bearer() -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, credential = header.partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        raise Unauthenticated("Send a credential as `Authorization: Bearer <key or token>`.")
    return credential.strip()


def resolve_secret_key(credential: str, now: datetime | None = None) -> MerchantPrincipal:
    if _kind(credential) != credentials.SECRET_KEY:
        raise Unauthenticated("The credential is not a valid secret key.")
    key_hash = digest(credential)
    # A rotated key works until its `expires_at` (the overlap window), a revoked one never.
    row = db.session.execute(
        select(ApiKey.id, ApiKey.organization_id, ApiKey.key_hash).where(
            ApiKey.key_hash == key_hash,
            ApiKey.revoked_at.is_(None),
            or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > (now or utcnow())),
        )
    ).first()
    if row is None or not hmac.compare_digest(row.key_hash, key_hash):
        raise Unauthenticated("The secret key is not valid.")
    return MerchantPrincipal(organization_id=row.organization_id, api_key_id=row.id)


# `last_used_at` is for a merchant deciding which key to retire: minutes of precision are
# plenty, and a write on every request would make every API call a write. Each process notes
# a key at most once per interval, and Redis lets one process of all write the row.
LAST_USED_INTERVAL_SECONDS = 300
_last_noted: dict[uuid.UUID, float] = {}


def note_key_use(api_key_id: uuid.UUID) -> None:
    clock = time.monotonic()
    if clock - _last_noted.get(api_key_id, -math.inf) < LAST_USED_INTERVAL_SECONDS:
        return
    _last_noted[api_key_id] = clock
    try:
        claimed = get_redis().set(
            f"bos:auth:key-used:{api_key_id}", 1, nx=True, ex=LAST_USED_INTERVAL_SECONDS
        )
        if not claimed:
            return
        assert db.engine is not None
        # Its own short transaction: the request's may roll back, or never commit.
        with db.engine.begin() as conn:
            conn.execute(
                update(ApiKey).where(ApiKey.id == api_key_id).values(last_used_at=utcnow())
            )
    except (RedisError, SQLAlchemyError) as error:
        log.warning("last use of an API key not recorded: %s", type(error).__name__)


# Session tokens are checked on every SDK call, including the hottest one (entitlements), so a
# valid token's principal is cached in Redis until the token expires. Revocation writes a
# tombstone after its transaction commits, and fills use SET NX, so a reader that loaded the
# row just before the revocation can never put the token back.
_TOKEN_CACHE_PREFIX = "bos:auth:st:"
_REVOKED = b"revoked"
_TOKEN_CACHE_MAX_SECONDS = 600


def _token_cache_key(token_hash: str) -> str:
    return _TOKEN_CACHE_PREFIX + token_hash


def _cache_get(token_hash: str) -> bytes | None:
    try:
        value: bytes | None = get_redis().get(_token_cache_key(token_hash))
        return value
    except RedisError:
        return None  # Postgres stays the source of truth.


def _cache_fill(token_hash: str, principal: CustomerPrincipal, now: datetime) -> None:
    ttl = int(min((principal.expires_at - now).total_seconds(), _TOKEN_CACHE_MAX_SECONDS))
    if ttl <= 0:
        return
    value = "|".join(
        (
            str(principal.organization_id),
            str(principal.customer_id),
            str(principal.session_token_id),
            principal.expires_at.isoformat(),
        )
    )
    with contextlib.suppress(RedisError):
        get_redis().set(_token_cache_key(token_hash), value, ex=ttl, nx=True)


def _cached_principal(value: bytes) -> CustomerPrincipal:
    organization_id, customer_id, token_id, expires_at = value.decode().split("|")
    return CustomerPrincipal(
        organization_id=uuid.UUID(organization_id),
        customer_id=uuid.UUID(customer_id),
        session_token_id=uuid.UUID(token_id),
        expires_at=datetime.fromisoformat(expires_at),
    )


def _check_expiry(principal: CustomerPrincipal, now: datetime) -> CustomerPrincipal:
    if now >= principal.expires_at:
        raise TokenExpired(
            "The session token has expired; ask the merchant's server for a new one."
        )
    return principal


def resolve_session_token(credential: str, now: datetime | None = None) -> CustomerPrincipal:
    if _kind(credential) != credentials.SESSION_TOKEN:
        raise Unauthenticated("The credential is not a valid session token.")
    now = now or utcnow()
    token_hash = digest(credential)
    cached = _cache_get(token_hash)
    if cached == _REVOKED:
        raise Unauthenticated("The session token is not valid.")
    if cached is not None:
        return _check_expiry(_cached_principal(cached), now)
    row = db.session.execute(
        select(
            SessionToken.id,
            SessionToken.organization_id,
            SessionToken.customer_id,
            SessionToken.token_hash,
            SessionToken.expires_at,
            SessionToken.revoked_at,
        ).where(SessionToken.token_hash == token_hash)
    ).first()
    if row is None or row.revoked_at is not None:
        raise Unauthenticated("The session token is not valid.")
    if not hmac.compare_digest(row.token_hash, token_hash):
        raise Unauthenticated("The session token is not valid.")
    principal = _check_expiry(
        CustomerPrincipal(
            organization_id=row.organization_id,
            customer_id=row.customer_id,
            session_token_id=row.id,
            expires_at=row.expires_at,
        ),
        now,
    )
    _cache_fill(token_hash, principal, now)
    return principal


def _kind(credential: str) -> str:
    """The credential's kind from its prefix; 401 for a credential of the other mode."""
    known = credentials.classify(credential)
    if known is None:
        raise Unauthenticated("The credential is neither a secret key nor a session token.")
    if known.mode != credentials.deployment_mode():
        raise OtherModeCredential(credentials.other_mode_message(known.mode))
    return known.kind


def authenticate_merchant() -> MerchantPrincipal:
    credential = _bearer()
    if _kind(credential) != "secret_key":
        raise WrongCredential("This endpoint is for the merchant's server: use a secret key.")
    principal = resolve_secret_key(credential)
    note_key_use(principal.api_key_id)
    g.merchant = principal
    g.customer = None
    g.organization_id = principal.organization_id
    return principal


def authenticate_customer(credential: str | None = None) -> CustomerPrincipal:
    credential = credential if credential is not None else _bearer()
    if _kind(credential) != "session_token":
        raise WrongCredential("This endpoint is for the SDK: use a session token.")
    principal = resolve_session_token(credential)
    g.customer = principal
    g.merchant = None
    g.organization_id = principal.organization_id
    return principal


def authenticate_any() -> MerchantPrincipal | CustomerPrincipal:
    credential = _bearer()
    if _kind(credential) == "secret_key":
        return authenticate_merchant()
    return authenticate_customer(credential)


def current_merchant() -> MerchantPrincipal:
    principal: MerchantPrincipal = g.merchant
    return principal


def current_customer() -> CustomerPrincipal:
    principal: CustomerPrincipal = g.customer
    return principal


def current_principal() -> MerchantPrincipal | CustomerPrincipal:
    return g.get("merchant") or g.customer


AUTHENTICATORS: dict[str, Callable[[], object]] = {
    "secret_key": authenticate_merchant,
    "session_token": authenticate_customer,
    "any": authenticate_any,
}


def issue_session_token(
    customer: Customer, expires_in: int, now: datetime | None = None
) -> tuple[str, SessionToken]:
    token = generate_session_token()
    row = SessionToken(
        organization_id=customer.organization_id,
        customer_id=customer.id,
        token_hash=digest(token),
        expires_at=(now or utcnow()) + timedelta(seconds=expires_in),
    )
    db.session.add(row)
    return token, row


def revoke_session_token(organization_id: uuid.UUID, token: str) -> SessionToken | None:
    """Mark the organization's token revoked (idempotently); None if it has no such token.

    The caller commits, then calls `forget_revoked_token` so the cached principal stops working
    at once; revoking again re-writes that marker, so a retry repairs a lost write.
    """
    row = db.session.execute(
        select(SessionToken).where(
            SessionToken.token_hash == digest(token),
            SessionToken.organization_id == organization_id,
        )
    ).scalar_one_or_none()
    if row is None:
        return None
    if row.revoked_at is None:
        row.revoked_at = utcnow()
    return row


def forget_revoked_token(row: SessionToken) -> None:
    """Replace the token's cached principal by a tombstone; raises RedisError if Redis is down."""
    remaining = int((row.expires_at - utcnow()).total_seconds())
    if remaining > 0:
        get_redis().set(
            _token_cache_key(row.token_hash), _REVOKED, ex=min(remaining, _TOKEN_CACHE_MAX_SECONDS)
        )


def revoked_token_hashes(client: Redis, token_hashes: list[str]) -> set[str]:
    """Which of these token digests carry a revocation tombstone, in one Redis MGET.

    For long-lived streams, which re-check their tokens while they run (a broadcast wakes
    thousands at once, so they are checked together). The client is the one taken when the
    stream opened: a stream's body runs outside the app context. Raises RedisError; callers
    treat an unreachable Redis as "not known to be revoked" — the stream still ends at expiry.
    """
    values = client.mget([_token_cache_key(h) for h in token_hashes])
    return {h for h, v in zip(token_hashes, values, strict=True) if v == _REVOKED}
