"""Stripe reads made outside a transaction and handed to the one that needs them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from app.db import db
from app.stripe_gateway import TransientStripeError

T = TypeVar("T")


# --------------------------------------------------------------------------- Stripe reads


# `session.info` key of the Stripe objects read for the current transaction (see `fetched`).
STRIPE_READS_KEY = "billingos.stripe_reads"


@dataclass(frozen=True)
class StripeRead:
    # What the locked rows looked like when the read was asked for: the copy is used only while
    # they still look the same, i.e. nothing was applied between the read and its use.
    guard: Any
    value: Any


class NeedsStripe(Exception):
    """A transaction needs Stripe's current state of an object: roll back, read it, run again."""

    def __init__(self, key: tuple[str, str], guard: Any, read: Callable[[], Any]) -> None:
        super().__init__(f"needs a fresh read of {key[0]} {key[1]}")
        self.key = key
        self.guard = guard
        self.read = read

    def perform(self) -> StripeRead:
        """The Stripe call itself: run it with no transaction open."""
        return StripeRead(self.guard, self.read())


def fetched(session: Session, key: tuple[str, str], guard: Any, read: Callable[[], Any]) -> Any:
    """Stripe's state of `key`, read before this transaction while the rows matched `guard`.

    Raises `NeedsStripe` when there is no such read: the caller rolls back, performs it, stores
    the result in `session.info[STRIPE_READS_KEY]` of the next attempt and runs again.
    """
    reads: dict[tuple[str, str], StripeRead] = session.info.get(STRIPE_READS_KEY) or {}
    found = reads.get(key)
    if found is not None and found.guard == guard:
        return found.value
    raise NeedsStripe(key, guard, read)


def transaction_with_stripe_reads(work: Callable[[Session], T], *, rounds: int) -> T:
    """Run `work(session)` in a transaction, again after each Stripe read it lacked.

    Each `NeedsStripe` it raises rolls its transaction back and is answered by a Stripe call
    made with no transaction open; after `rounds` reads the objects are still moving, and
    `ObjectsKeptMoving` asks the caller to try again later.
    """
    reads: dict[tuple[str, str], StripeRead] = {}
    for _ in range(rounds):
        try:
            with db.transaction() as session:
                session.info[STRIPE_READS_KEY] = reads
                return work(session)
        except NeedsStripe as need:
            reads[need.key] = need.perform()
    raise ObjectsKeptMoving(f"Stripe objects kept changing over {rounds} reads; retry later.")


class ObjectsKeptMoving(TransientStripeError):
    """The rows changed under every read: a transient condition, retried like a Stripe outage."""
