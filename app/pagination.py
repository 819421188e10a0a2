"""Keyset pagination for `{"data": [...], "has_more": bool}` lists (`?limit=` 1–100, default 20).

Every list endpoint pages: `?limit` 1-100 (default 20), so no request can ask for an unbounded
result. Newest first, like Stripe, unless a list has a natural reading order (the pricing
table's products, oldest first); `starting_after` names the last object of the previous page.
An unknown or foreign `starting_after` yields an empty page rather than an error that would
reveal whether the id exists elsewhere.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from pydantic import Field
from sqlalchemy import ColumnElement, Select, and_, or_, select, tuple_

from app.db import db
from app.request_models import QueryModel

MAX_PAGE_SIZE = 100


class ListQuery(QueryModel):
    limit: int = Field(default=20, ge=1, le=MAX_PAGE_SIZE)
    starting_after: uuid.UUID | None = None


def paginate(
    stmt: Select[Any],
    model: Any,
    query: ListQuery,
    organization_id: uuid.UUID,
    *,
    cursor_scope: Sequence[ColumnElement[bool]] = (),
    oldest_first: bool = False,
) -> tuple[list[Any], bool]:
    """Apply the ordering, the cursor and the limit to `stmt` (which selects `model`).

    The cursor is looked up within the caller's organization (and `cursor_scope`, e.g. one
    customer's rows) only, so an id from outside behaves exactly like an unknown one.
    """
    if query.starting_after is not None:
        cursor = db.session.execute(
            select(model.created_at, model.id).where(
                model.id == query.starting_after,
                model.organization_id == organization_id,
                *cursor_scope,
            )
        ).first()
        if cursor is None:
            return [], False
        if oldest_first:
            after = or_(
                model.created_at > cursor.created_at,
                and_(model.created_at == cursor.created_at, model.id > cursor.id),
            )
        else:
            after = or_(
                model.created_at < cursor.created_at,
                and_(model.created_at == cursor.created_at, model.id < cursor.id),
            )
        stmt = stmt.where(after)
    key = tuple_(model.created_at, model.id)
    stmt = stmt.order_by(key.asc() if oldest_first else key.desc()).limit(query.limit + 1)
    rows = list(db.session.execute(stmt).scalars().unique())
    return rows[: query.limit], len(rows) > query.limit
