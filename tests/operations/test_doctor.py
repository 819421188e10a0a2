"""`flask billingos doctor` against the real services and the Stripe emulator."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

from sqlalchemy import create_engine, text

from tests.support.processes import ROOT
from tests.support.server import free_port


def doctor(**env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flask", "--app", "app:create_app", "billingos", "doctor"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def findings(result: subprocess.CompletedProcess[str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in result.stdout.splitlines():
        status, check, _message = line.split(maxsplit=2)
        found.setdefault(check, []).append(status)
    return found


class TestDoctor:
    def test_a_healthy_setup_passes(self, database_url: str, stripe_emulator: Any) -> None:
        result = doctor(STRIPE_API_BASE=stripe_emulator.url)
        assert result.returncode == 0, result.stdout + result.stderr
        found = findings(result)
        for check in ("database", "broker", "stripe"):
            assert found[check] == ["ok"], result.stdout
        assert "FAIL" not in result.stdout
        # The emulator has no webhook-endpoint API: said, not failed.
        assert found["webhooks"] == ["warn"]

    def test_broken_settings_are_named_in_plain_words(
        self, database_url: str, stripe_emulator: Any
    ) -> None:
        result = doctor(
            STRIPE_API_BASE=stripe_emulator.url,
            STRIPE_SECRET_KEY="sk_live_billingos",
            BILLINGOS_MODE="live",
            CELERY_BROKER_URL=f"redis://127.0.0.1:{free_port()}/0",
        )
        assert result.returncode == 1
        assert "STRIPE_SECRET_KEY is a live key but BILLINGOS_ENV is not production" in (
            result.stdout
        )
        assert "cannot reach the Celery broker" in result.stdout
        # The emulator, like Stripe in test mode, refuses a live key.
        assert "Stripe refused our key (HTTP 401)" in result.stdout
        assert findings(result)["database"] == ["ok"]

    def test_stripe_down_and_an_unmigrated_database(self, database_url: str) -> None:
        server, name = database_url.rsplit("/", 1)
        empty_name = f"{name}_doctor_empty"
        admin = create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{empty_name}"'))
            connection.execute(text(f'CREATE DATABASE "{empty_name}"'))
        try:
            result = doctor(
                STRIPE_API_BASE=f"http://127.0.0.1:{free_port()}",
                DATABASE_URL=f"{server}/{empty_name}",
            )
        finally:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{empty_name}"'))
            admin.dispose()
        assert result.returncode == 1
        assert "the schema was never migrated: run `alembic upgrade head`" in result.stdout
        assert "Stripe is unreachable or failing" in result.stdout
