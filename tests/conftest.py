"""Shared fixtures: a migrated test database on real Postgres, a Redis db of its own, the app.

`make test` never touches the `make run` data: the database is `billingos_test` and Redis db 15,
unless TEST_DATABASE_URL / TEST_REDIS_URL say otherwise (to run two suites side by side).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from tests.support.stripe_target import RealStripe, real_stripe_key

TEST_DATABASE_URL = os.environ.get(
    "TEST_DATABASE_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/billingos_test"
)
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")

# `make test-stripe` with a Stripe test key: the contract tests talk to Stripe itself.
REAL_STRIPE_KEY = real_stripe_key()

# Subprocesses started by tests (workers, gunicorn, the CLI) inherit these.
os.environ["DATABASE_URL"] = TEST_DATABASE_URL
os.environ["REDIS_URL"] = TEST_REDIS_URL
os.environ.pop("CELERY_BROKER_URL", None)
os.environ.setdefault("BILLINGOS_ENV", "test")
os.environ["STRIPE_SECRET_KEY"] = REAL_STRIPE_KEY or "sk_test_billingos"
os.environ["STRIPE_PUBLISHABLE_KEY"] = "pk_test_billingos"
os.environ["STRIPE_WEBHOOK_SECRET"] = "whsec_test_billingos"


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "emulator_only(reason): asserts emulator behaviour that real Stripe cannot be driven "
        "into from a test (skipped by `make test-stripe` against Stripe test mode)",
    )


def pytest_runtest_setup(item: pytest.Item) -> None:
    marker = item.get_closest_marker("emulator_only")
    if REAL_STRIPE_KEY and marker is not None:
        pytest.skip(f"emulator only: {marker.args[0] if marker.args else 'control API'}")


@pytest.fixture(scope="session")
def database_url() -> str:
    from tests.support.database import migrate, recreate_database

    recreate_database(TEST_DATABASE_URL)
    migrate(TEST_DATABASE_URL)
    return TEST_DATABASE_URL


@pytest.fixture(scope="session")
def _emulator_process():  # type: ignore[no-untyped-def]
    """One Stripe emulator for the session; the app (and every worker) talks to it."""
    from tests.support.emulator import EmulatorProcess

    if REAL_STRIPE_KEY:
        yield RealStripe(REAL_STRIPE_KEY)
        return
    emulator = EmulatorProcess().start()
    os.environ["STRIPE_API_BASE"] = emulator.url
    yield emulator
    emulator.stop()


@pytest.fixture()
def stripe_emulator(_emulator_process):  # type: ignore[no-untyped-def]
    """The session's emulator, reset to an empty Stripe before the test."""
    _emulator_process.reset()
    return _emulator_process


@pytest.fixture(scope="session")
def app(database_url: str, _emulator_process) -> Flask:  # type: ignore[no-untyped-def]
    from app import create_app
    from app.config import Settings

    return create_app(Settings.from_env())


@pytest.fixture(scope="session")
def redis_client() -> redis.Redis:
    return redis.Redis.from_url(TEST_REDIS_URL)


@pytest.fixture(autouse=True)
def _clean_state(request: pytest.FixtureRequest) -> Iterator[None]:
    """Empty every table and the test Redis db after each test that used the database."""
    yield
    if "app" not in request.fixturenames:
        return
    from app.db import db
    from tests.support.database import truncate_all

    db.session.remove()
    assert db.engine is not None
    truncate_all(db.engine)
    redis.Redis.from_url(TEST_REDIS_URL).flushdb()


@pytest.fixture()
def app_context(app: Flask) -> Iterator[None]:
    with app.app_context():
        yield


@pytest.fixture()
def client(app: Flask, app_context: None) -> FlaskClient:
    return app.test_client()


@pytest.fixture()
def merchant(app_context: None):  # type: ignore[no-untyped-def]
    from tests.factories import make_merchant

    return make_merchant()


@pytest.fixture()
def buyer(merchant):  # type: ignore[no-untyped-def]
    from tests.factories import make_buyer

    return make_buyer(merchant)


@pytest.fixture()
def start_worker(database_url: str):  # type: ignore[no-untyped-def]
    """Start real Celery workers (`start_worker(concurrency=2, env={...})`); stopped after."""
    from tests.support.processes import start_celery_worker

    started = []

    def start(**kwargs):  # type: ignore[no-untyped-def]
        worker = start_celery_worker(**kwargs)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()
