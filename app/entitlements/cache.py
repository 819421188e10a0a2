"""The Redis read-through cache behind `GET /v1/customer/entitlements`, the SDK's hottest call.

One key per customer holds the response body, ready to send; a second key holds the customer's
*generation*, a counter bumped after every committed change. The invariant: once the transaction
that revoked an entitlement has committed and its after-commit invalidation has run, no reader
is served the old list.

The race it closes: reader R misses, loads the rows from Postgres, and is slow to write them
back; meanwhile a writer commits a revocation and invalidates. A plain "SET after load" would put
R's stale rows into the cache *after* the invalidation, where they would stay until the TTL.
So a reader takes a `FillTicket` (the generation it saw) *before* it reads Postgres, and the
write-back is a compare-and-set in Lua: it only lands while the generation is still the one the
ticket holds. The writer's invalidation bumps the generation and deletes the body atomically
(MULTI), so any ticket taken before it is void.

The TTL is a backstop, not the mechanism: it bounds staleness if an after-commit invalidation is
ever lost (Redis unreachable at that moment, the writer's process killed between commit and
hook) to `CACHE_TTL_SECONDS`, and it never outlives the earliest `expires_at` in the body, so an
entitlement that lapses on its own is not served past its end.

Two bodies share one generation: the entitlement list (`LIST`) and the customer's feature grants
with their limits and usage periods (`GRANTS`, read by `/v1/features/check`, `usage-metrics` and
`track-usage`). One invalidation voids both, so a downgrade's lower limit is never shadowed by a
cached higher one.

The generation is the cache's own compare-and-set counter and nothing else. It may go backwards
(Redis restarted, flushed, the key evicted) — harmless here, since the body goes with it — so it
is never used to order anything outside the cache: real-time messages carry
`customers.entitlements_version` from Postgres.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

import redis

from app.redis_client import defer

# Backstop lifetime of a cached body (seconds); correctness comes from the generation. Short,
# because it is also how long a lost invalidation can serve a revoked entitlement.
CACHE_TTL_SECONDS = 60

LIST = "list"
GRANTS = "grants"
_BODY_KEYS = {
    LIST: "billingos:entitlements:{customer_id}",
    GRANTS: "billingos:entitlements:grants:{customer_id}",
}
_GENERATION_KEY = "billingos:entitlements:gen:{customer_id}"

# KEYS[1] body, KEYS[2] generation; ARGV[1] expected generation, ARGV[2] body, ARGV[3] TTL (ms).
_FILL_IF_GENERATION_UNCHANGED = """
local current = redis.call('GET', KEYS[2]) or '0'
if current ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
"""


def body_key(customer_id: uuid.UUID, kind: str = LIST) -> str:
    return _BODY_KEYS[kind].format(customer_id=customer_id)


def generation_key(customer_id: uuid.UUID) -> str:
    return _GENERATION_KEY.format(customer_id=customer_id)


@dataclass(frozen=True)
class FillTicket:
    """The generation a reader saw before loading from Postgres; its write-back must match it."""

    customer_id: uuid.UUID
    generation: bytes
    kind: str = LIST


@dataclass(frozen=True)
class CacheLookup:
    """One round trip's answer: the cached body if present, else a ticket to fill it."""

    body: bytes | None
    ticket: FillTicket


class EntitlementCache:
    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._fill = client.register_script(_FILL_IF_GENERATION_UNCHANGED)

    def lookup(self, customer_id: uuid.UUID, kind: str = LIST) -> CacheLookup:
        """The cached body and the current generation, in one MGET (the hot path's only call)."""
        body, generation = self.client.mget(
            body_key(customer_id, kind), generation_key(customer_id)
        )
        return CacheLookup(
            body=body,
            ticket=FillTicket(customer_id=customer_id, generation=generation or b"0", kind=kind),
        )

    def fill(self, ticket: FillTicket, body: bytes, ttl_ms: int) -> bool:
        """Store `body` unless the customer's entitlements changed since `ticket` was taken."""
        if ttl_ms <= 0:
            return False
        stored = self._fill(
            keys=[body_key(ticket.customer_id, ticket.kind), generation_key(ticket.customer_id)],
            args=[ticket.generation, body, ttl_ms],
        )
        return bool(stored)

    def invalidate(self, customer_id: uuid.UUID) -> int:
        """Void every outstanding ticket and drop the bodies; returns the new generation."""
        pipe = self.client.pipeline(transaction=True)
        self._invalidation(customer_id)(pipe)
        generation, _deleted = pipe.execute()
        return int(generation)

    def invalidate_after_commit(self, customer_id: uuid.UUID) -> None:
        """`invalidate`, in the after-commit round trip when there is one (app.redis_client)."""
        if not defer(self.client, self._invalidation(customer_id)):
            self.invalidate(customer_id)

    @staticmethod
    def _invalidation(customer_id: uuid.UUID) -> Callable[[redis.client.Pipeline], None]:
        def commands(pipe: redis.client.Pipeline) -> None:
            # In one MULTI: a reader never sees the new generation beside the old body.
            pipe.incr(generation_key(customer_id))
            pipe.delete(*(body_key(customer_id, kind) for kind in _BODY_KEYS))

        return commands
