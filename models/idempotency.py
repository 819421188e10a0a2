from __future__ import annotations

from sqlalchemy import Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base


class IdempotencyGeneration(Base):
    """How many times a per-resource Stripe idempotency key has been replaced.

    Stripe stores the answer of every request that started executing — a 500 included — and
    replays it for 24 hours under the same key. A key like `customer:{id}:create` would then
    replay the failure on every retry for a day; after a stored failure the next attempt uses
    `customer:{id}:create:{generation}` instead (see app/stripe_keys.py).
    """

    __tablename__ = "idempotency_generations"

    scope: Mapped[str] = mapped_column(String(200), primary_key=True)
    generation: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
