"""Shared fixtures: a migrated test database on real Postgres, a Redis of its own, the app.

Every pytest process (the only one, or each `pytest -n N` worker) owns its database, its
redis-server and its ports, derived from the run and worker ids (tests/support/isolation.py), so
two suites on one machine never drop each other's data and `make run`'s data is never touched.
TEST_DATABASE_URL / TEST_REDIS_URL still choose a database / Redis explicitly.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from tests.support.isolation import TestRun, current_redis_url
from tests.support.processes import PrivateRedis
from tests.support.stripe_target import RealStripe, real_stripe_key

RUN = TestRun.current()
TEST_DATABASE_URL = RUN.database_url()

# `make test-stripe` with a Stripe test key: the contract tests talk to Stripe itself.
REAL_STRIPE_KEY = real_stripe_key()

# Subprocesses started by tests (workers, gunicorn, the CLI) inherit these; REDIS_URL is set
# once this process's Redis runs (pytest_configure).
os.environ["DATABASE_URL"] = TEST_DATABASE_URL
os.environ.pop("CELERY_BROKER_URL", None)
os.environ.setdefault("BILLINGOS_ENV", "test")
os.environ["STRIPE_SECRET_KEY"] = REAL_STRIPE_KEY or "sk_test_billingos"
os.environ["STRIPE_PUBLISHABLE_KEY"] = "pk_test_billingos"
os.environ["STRIPE_WEBHOOK_SECRET"] = "whsec_test_billingos"

_private_redis: PrivateRedis | None = None


def pytest_configure(config: pytest.Config) -> None:
    global _private_redis
    config.addinivalue_line(
        "markers",
        "emulator_only(reason): asserts emulator behaviour that real Stripe cannot be driven "
        "into from a test (skipped by `make test-stripe` against Stripe test mode)",
    )
    if getattr(config.option, "dist", "no") != "no" and not RUN.is_xdist_worker:
        return  # the xdist controller runs no test: its workers start their own Redis
    url, _private_redis = RUN.start_redis()
    os.environ["REDIS_URL"] = url


def pytest_unconfigure(config: pytest.Config) -> None:
    if _private_redis is not None:
        _private_redis.stop()


def pytest_runtest_setup(item: pytest.Item) -> None:
    marker = item.get_closest_marker("emulator_only")
    if REAL_STRIPE_KEY and marker is not None:
        pytest.skip(f"emulator only: {marker.args[0] if marker.args else 'control API'}")


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """This process's database, created and migrated for the session and dropped after it."""
    from tests.support.database import drop_database, migrate, recreate_database

    recreate_database(TEST_DATABASE_URL)
    migrate(TEST_DATABASE_URL)
    yield TEST_DATABASE_URL
    from app.db import db

    if db.engine is not None:
        db.engine.dispose()
    drop_database(TEST_DATABASE_URL)


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
    return redis.Redis.from_url(current_redis_url())


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
    redis.Redis.from_url(current_redis_url()).flushdb()


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


METRICS_TOKEN = "scrape-me-1234"


@pytest.fixture()
def metrics_token(app: Flask) -> Iterator[str]:
    """`/metrics` configured with a bearer token (it is not served without one)."""
    import dataclasses

    settings = app.config["BILLINGOS"]
    app.config["BILLINGOS"] = dataclasses.replace(settings, metrics_token=METRICS_TOKEN)
    yield METRICS_TOKEN
    app.config["BILLINGOS"] = settings
