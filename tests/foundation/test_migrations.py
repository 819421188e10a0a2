"""The schema is built by the migrations, and they agree with the models."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from models import Base


def test_models_and_migrations_agree(database_url):
    engine = create_engine(database_url)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    engine.dispose()
    assert diff == [], f"models and migrations disagree: {diff}"


def test_duplicate_guards_exist(database_url):
    engine = create_engine(database_url)
    inspector = inspect(engine)
    unique_indexes = {
        (table, ix["name"])
        for table in ("checkout_sessions", "subscriptions")
        for ix in inspector.get_indexes(table)
        if ix["unique"]
    }
    assert ("checkout_sessions", "uq_checkout_sessions_customer_idempotency_key") in unique_indexes
    assert ("subscriptions", "uq_subscriptions_customer_id_product_id_live") in unique_indexes
    constraints = {c["name"] for c in inspector.get_unique_constraints("stripe_events")}
    assert "uq_stripe_events_stripe_event_id" in constraints
    sub_constraints = {c["name"] for c in inspector.get_unique_constraints("subscriptions")}
    assert "uq_subscriptions_checkout_session_id" in sub_constraints
    engine.dispose()


def test_downgrade_then_upgrade_round_trips(database_url):
    from alembic import command

    from tests.support.database import alembic_config, drop_database, recreate_database

    url = f"{database_url}_migrations"  # this run's and worker's, like the session's database
    recreate_database(url)
    try:
        config = alembic_config(url)
        command.upgrade(config, "head")
        command.downgrade(config, "base")
        command.upgrade(config, "head")
        engine = create_engine(url)
        assert "checkout_sessions" in inspect(engine).get_table_names()
        engine.dispose()
    finally:
        drop_database(url)
