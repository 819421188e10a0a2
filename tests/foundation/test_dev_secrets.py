"""`make run` generates its own secrets (scripts/dev_secrets.sh) and keeps them across restarts."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

from app.config import Settings

_SHOW = (
    "import json, os; print(json.dumps({k: os.environ.get(k) for k in "
    "('METRICS_TOKEN', 'DEV_STRIPE_WEBHOOK_SECRET')}))"
)


def _start(secrets_file, **env):  # type: ignore[no-untyped-def]
    script = f'set -euo pipefail; source scripts/dev_secrets.sh "$1"; {sys.executable} -c "$2"'
    base = {"PATH": os.environ["PATH"], **env}
    out = subprocess.run(
        ["bash", "-c", script, "dev", str(secrets_file), _SHOW],
        env=base,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    values: dict[str, str] = json.loads(out)
    return values


def test_first_run_generates_secrets_the_app_accepts(tmp_path):
    secrets_file = tmp_path / "secrets.env"
    values = _start(secrets_file)
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    assert len(values["METRICS_TOKEN"]) == 48
    settings = Settings.from_env(
        {
            "STRIPE_SECRET_KEY": "sk_test_billingos_emulator",
            "STRIPE_API_BASE": "http://127.0.0.1:12111",
            "STRIPE_WEBHOOK_SECRET": values["DEV_STRIPE_WEBHOOK_SECRET"],
        }
    )
    assert settings.secret_problems() == []


def test_a_restart_keeps_the_same_secrets(tmp_path):
    secrets_file = tmp_path / "secrets.env"
    first = _start(secrets_file)
    assert _start(secrets_file) == first
    assert _start(tmp_path / "other.env") != first


def test_the_environment_wins_over_the_generated_token(tmp_path):
    assert _start(tmp_path / "s.env", METRICS_TOKEN="mine")["METRICS_TOKEN"] == "mine"
