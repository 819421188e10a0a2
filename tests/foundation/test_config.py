from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from app.config import ConfigError, Settings, normalize_database_url


def test_heroku_postgres_urls_are_accepted():
    assert normalize_database_url("postgres://u:p@h:5432/d") == "postgresql+psycopg2://u:p@h:5432/d"
    assert normalize_database_url("postgresql://h/d") == "postgresql+psycopg2://h/d"


SAFE = {
    "STRIPE_SECRET_KEY": "sk_test_51RealLookingKey",
    "STRIPE_WEBHOOK_SECRET": "whsec_" + "7" * 32,
}


def test_local_defaults():
    settings = Settings.from_env({"BILLINGOS_ENV": "test"})
    assert settings.database_url.endswith("@127.0.0.1:5432/billingos")
    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    assert settings.port == 5000
    assert settings.stripe_api_version == "2026-10-28.endive"
    assert settings.secret_problems() == []


@pytest.mark.parametrize("mode", ["development", "staging", "production"])
@pytest.mark.parametrize("name", ["STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET"])
def test_every_mode_refuses_a_missing_secret(mode, name):
    env = {**SAFE, "BILLINGOS_ENV": mode, "STRIPE_PUBLISHABLE_KEY": "pk_test_x"}
    del env[name]
    with pytest.raises(ConfigError, match=f"missing required setting {name}"):
        Settings.from_env(env).require_safe_secrets()
    Settings.from_env({**env, name: SAFE[name]}).require_safe_secrets()


def test_an_unset_mode_is_not_the_test_suite():
    with pytest.raises(ConfigError, match="STRIPE_WEBHOOK_SECRET"):
        Settings.from_env({}).require_safe_secrets()


@pytest.mark.parametrize("published", ["whsec_billingos_dev", "whsec_test_billingos"])
def test_a_published_webhook_secret_is_refused(published):
    settings = Settings.from_env({**SAFE, "STRIPE_WEBHOOK_SECRET": published})
    with pytest.raises(ConfigError, match="STRIPE_WEBHOOK_SECRET is a published default"):
        settings.require_safe_secrets()


def test_the_emulator_key_is_refused_against_stripe_but_not_the_emulator():
    env = {**SAFE, "STRIPE_SECRET_KEY": "sk_test_billingos_emulator"}
    with pytest.raises(ConfigError, match="STRIPE_SECRET_KEY is a placeholder"):
        Settings.from_env(env).require_safe_secrets()
    local = {**env, "STRIPE_API_BASE": "http://127.0.0.1:12111"}
    Settings.from_env(local).require_safe_secrets()


@pytest.mark.parametrize("live_key", ["sk_live_51abc", "rk_live_51abc"])
def test_a_live_key_outside_production_is_refused(live_key):
    env = {**SAFE, "STRIPE_SECRET_KEY": live_key}
    with pytest.raises(ConfigError, match="live key but BILLINGOS_ENV is not production"):
        Settings.from_env(env).require_safe_secrets()
    production = {
        **env,
        "BILLINGOS_ENV": "production",
        "BILLINGOS_MODE": "live",
        "STRIPE_PUBLISHABLE_KEY": "pk_live_x",
    }
    Settings.from_env(production).require_safe_secrets()


def test_production_also_needs_the_publishable_key():
    env = {**SAFE, "BILLINGOS_ENV": "production"}
    with pytest.raises(ConfigError, match="missing required setting STRIPE_PUBLISHABLE_KEY"):
        Settings.from_env(env).require_safe_secrets()


def test_every_problem_is_named_on_one_line():
    with pytest.raises(ConfigError) as stopped:
        Settings.from_env({"STRIPE_SECRET_KEY": "sk_live_x"}).require_safe_secrets()
    message = str(stopped.value)
    assert "\n" not in message
    assert "STRIPE_WEBHOOK_SECRET" in message and "live key" in message


def _bare_env(**extra: str) -> dict[str, str]:
    # No BILLINGOS_ENV and no secrets: what a deploy that forgot them looks like.
    return {"PATH": "/usr/bin:/bin", "PYTHONPATH": ".", **extra}


def test_missing_secret_stops_start_up_with_one_line():
    code = "from app import create_app; create_app()"
    result = subprocess.run(
        [sys.executable, "-c", code], env=_bare_env(), capture_output=True, text=True
    )
    assert result.returncode != 0
    assert result.stderr.strip() == (
        "BillingOS: missing required setting STRIPE_WEBHOOK_SECRET; "
        "missing required setting STRIPE_SECRET_KEY"
    )


def _entry_point(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)


def test_gunicorn_refuses_to_start_without_secrets():
    # Checked in the master: a worker failing to boot would be respawned forever.
    result = _entry_point(
        [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "app.wsgi:app"],
        _bare_env(PORT="0", STRIPE_SECRET_KEY="sk_live_abc"),
    )
    assert result.returncode != 0
    assert "STRIPE_SECRET_KEY is a live key" in result.stderr
    assert "Booting worker" not in result.stderr


def test_celery_worker_refuses_to_start_without_secrets():
    celery = str(Path(sys.executable).parent / "celery")
    result = _entry_point(
        [celery, "-A", "tasks.worker", "worker"],
        _bare_env(STRIPE_SECRET_KEY="sk_test_51x"),
    )
    assert result.returncode != 0
    assert "missing required setting STRIPE_WEBHOOK_SECRET" in result.stderr


def test_bad_integer_is_a_clear_error():
    with pytest.raises(ConfigError, match="PORT must be an integer"):
        Settings.from_env({"PORT": "eighty"})
