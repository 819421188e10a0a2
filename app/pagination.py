"""Keyset pagination for `{"data": [...], "has_more": bool}` lists (`?limit=` 1–100, default 20).

Newest first, like Stripe; `starting_after` names the last object of the previous page. An
unknown or foreign `starting_after` yields an empty page rather than an error that would reveal
whether the id exists elsewhere.
"""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import Field
from sqlalchemy import Select, and_, or_, select, tuple_

from app.api import QueryModel
from app.db import db


class ListQuery(QueryModel):
    limit: int = Field(default=20, ge=1, le=100)
    starting_after: uuid.UUID | None = None


def paginate(
    stmt: Select[Any], model: Any, query: ListQuery, organization_id: uuid.UUID
) -> tuple[list[Any], bool]:
    """Apply newest-first ordering, the cursor and the limit to `stmt` (which selects `model`).

    The cursor is looked up within the caller's organization only, so another organization's
    id behaves exactly like an unknown one.
    """
    if query.starting_after is not None:
        cursor = db.session.execute(
            select(model.created_at, model.id).where(
                model.id == query.starting_after, model.organization_id == organization_id
            )
        ).first()
        if cursor is None:
            return [], False
        stmt = stmt.where(
            or_(
                model.created_at < cursor.created_at,
                and_(model.created_at == cursor.created_at, model.id < cursor.id),
            )
        )
    stmt = stmt.order_by(tuple_(model.created_at, model.id).desc()).limit(query.limit + 1)
    rows = list(db.session.execute(stmt).scalars().unique())
    return rows[: query.limit], len(rows) > query.limit
