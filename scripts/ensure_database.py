"""Create the database named in DATABASE_URL (or argv[1]) if it does not exist yet."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg2
from psycopg2 import sql
from sqlalchemy.engine import make_url

from app.config import Settings, normalize_database_url


@contextmanager
def admin_connection(url: str) -> Iterator[Any]:
    """An autocommit connection to the `postgres` database of `url`'s server, to create or drop
    `url`'s database (which cannot be done from inside it)."""
    parsed = make_url(normalize_database_url(url))
    admin = psycopg2.connect(
        host=parsed.host or "127.0.0.1",
        port=parsed.port or 5432,
        user=parsed.username or "postgres",
        password=parsed.password,
        dbname="postgres",
    )
    admin.autocommit = True
    try:
        yield admin
    finally:
        admin.close()


def ensure_database(url: str) -> bool:
    name = make_url(normalize_database_url(url)).database
    with admin_connection(url) as admin, admin.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        if cur.fetchone():
            return False
        cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return True


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else Settings.from_env().database_url
    created = ensure_database(target)
    name = make_url(normalize_database_url(target)).database
    print(f"database {name}: {'created' if created else 'exists'}")
