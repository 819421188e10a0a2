"""Test and bench databases: created fresh by running the migrations, emptied between tests,
dropped at the end (the bench harness uses the same create/drop)."""

from __future__ import annotations

import time

from alembic import command
from alembic.config import Config
from psycopg2 import sql
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from models import Base
from scripts.ensure_database import admin_connection


def _admin(url: str, *statements: str) -> None:
    """Run `statements` (each with one `{}` for the database name) on the server's `postgres` db."""
    name = sql.Identifier(make_url(url).database)
    with admin_connection(url) as admin, admin.cursor() as cur:
        for statement in statements:
            cur.execute(sql.SQL(statement).format(name))


def recreate_database(url: str) -> None:
    _admin(url, "DROP DATABASE IF EXISTS {} WITH (FORCE)", "CREATE DATABASE {}")


def drop_database(url: str) -> None:
    _admin(url, "DROP DATABASE IF EXISTS {} WITH (FORCE)")


def alembic_config(url: str) -> Config:
    config = Config("alembic.ini")
    config.attributes["url"] = url
    config.attributes["configure_logger"] = False
    return config


def migrate(url: str) -> None:
    command.upgrade(alembic_config(url), "head")


TABLES = ", ".join(table.name for table in Base.metadata.sorted_tables)
_TRUNCATE_ATTEMPTS = 5


def truncate_all(engine) -> None:  # type: ignore[no-untyped-def]
    """Empty every table between tests.

    A worker or server a test started may still be finishing a transaction (a sweeper, a late
    webhook): TRUNCATE's exclusive locks can then deadlock with its row locks, and Postgres
    aborts one side. Giving up would leave the next test the previous one's rows (stale Stripe
    ids, "No such price"), so retry until the straggler is done.
    """
    for attempt in range(1, _TRUNCATE_ATTEMPTS + 1):
        try:
            with engine.begin() as conn:
                conn.exec_driver_sql(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE")
            return
        except OperationalError:
            if attempt == _TRUNCATE_ATTEMPTS:
                raise
            time.sleep(0.2 * attempt)
