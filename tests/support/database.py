"""Test and bench databases: created fresh by running the migrations, emptied between tests,
dropped at the end (the bench harness uses the same create/drop)."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from psycopg2 import sql
from sqlalchemy.engine import make_url

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


def truncate_all(engine) -> None:  # type: ignore[no-untyped-def]
    with engine.begin() as conn:
        conn.exec_driver_sql(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE")
