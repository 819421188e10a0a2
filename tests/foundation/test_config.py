from __future__ import annotations

import subprocess
import sys

import pytest

from app.config import ConfigError, Settings, normalize_database_url


def test_heroku_postgres_urls_are_accepted():
    assert normalize_database_url("postgres://u:p@h:5432/d") == "postgresql+psycopg2://u:p@h:5432/d"
    assert normalize_database_url("postgresql://h/d") == "postgresql+psycopg2://h/d"


def test_local_defaults():
    settings = Settings.from_env({})
    assert settings.database_url.endswith("@127.0.0.1:5432/billingos")
    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    assert settings.port == 5000
    assert settings.stripe_api_version == "2026-10-28.endive"


def test_production_needs_every_secret():
    env = {
        "BILLINGOS_ENV": "production",
        "SECRET_KEY": "s",
        "STRIPE_SECRET_KEY": "sk_test_x",
        "STRIPE_PUBLISHABLE_KEY": "pk_test_x",
    }
    with pytest.raises(ConfigError, match="missing required setting STRIPE_WEBHOOK_SECRET"):
        Settings.from_env(env)
    assert Settings.from_env({**env, "STRIPE_WEBHOOK_SECRET": "whsec_x"}).is_production


def test_missing_secret_stops_start_up_with_one_line():
    code = "from app import create_app; create_app()"
    env = {"BILLINGOS_ENV": "production", "PATH": "/usr/bin:/bin", "PYTHONPATH": "."}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert result.returncode != 0
    assert result.stderr.strip() == "BillingOS: missing required setting SECRET_KEY"


def test_bad_integer_is_a_clear_error():
    with pytest.raises(ConfigError, match="PORT must be an integer"):
        Settings.from_env({"PORT": "eighty"})
