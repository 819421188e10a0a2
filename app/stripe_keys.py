"""Per-resource idempotency keys that a stored Stripe failure cannot lock out.

Stripe saves the result of any request that started executing, 500s included, and replays it
for 24 hours to every request with the same key
(https://docs.stripe.com/api/idempotent_requests). A key derived from the resource alone
(`customer:{id}:create`, `price:{id}:mirror`) would make every retry of that resource replay
the same 500 for a day. So the key carries a generation counted in Postgres: generation 0 is
the plain key, and the generation moves on only after an attempt whose answer Stripe stored as
a failure — never after a timeout or a dropped connection, whose request may have succeeded
and must be retried under the same key to get its object back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert

from app.db import db
from app.stripe_gateway import TransientStripeError
from models import IdempotencyGeneration

T = TypeVar("T")


def key_for(scope: str, generation: int) -> str:
    return scope if generation == 0 else f"{scope}:{generation}"


def current_generation(scope: str) -> int:
    with db.transaction() as session:
        value = session.execute(
            select(IdempotencyGeneration.generation).where(IdempotencyGeneration.scope == scope)
        ).scalar_one_or_none()
    return int(value or 0)


def advance_generation(scope: str, seen: int) -> None:
    """Move `scope` past generation `seen` (concurrent callers that saw `seen` move it once)."""
    with db.transaction() as session:
        statement = insert(IdempotencyGeneration).values(scope=scope, generation=seen + 1)
        session.execute(
            statement.on_conflict_do_update(
                index_elements=[IdempotencyGeneration.scope],
                set_={"generation": seen + 1},
                where=IdempotencyGeneration.generation == seen,
            )
        )


def with_renewable_key(scope: str, call: Callable[[str], T]) -> T:
    """Run `call(idempotency_key)`; after a stored failure the next run gets a fresh key."""
    generation = current_generation(scope)
    try:
        return call(key_for(scope, generation))
    except TransientStripeError as error:
        if error.stored:
            advance_generation(scope, generation)
        raise
