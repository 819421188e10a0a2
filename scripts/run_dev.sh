#!/usr/bin/env bash
# `make run`: seed the demo organization, then run every Procfile process (and, with no Stripe
# key configured, the local Stripe emulator wired to our webhook endpoint) under honcho.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
# Procfile commands (gunicorn, celery, python) come from the virtualenv.
export PATH="$PWD/.venv/bin:$PATH"
export PORT="${PORT:-5000}"
export FLOWER_PORT="${FLOWER_PORT:-5555}"
export PYTHONPATH="$PWD"
export FLASK_APP="app:create_app"
mkdir -p .run
export PROMETHEUS_MULTIPROC_DIR="${PROMETHEUS_MULTIPROC_DIR:-$PWD/.run/prometheus}"
rm -rf "$PROMETHEUS_MULTIPROC_DIR" && mkdir -p "$PROMETHEUS_MULTIPROC_DIR"

# The app refuses to start without its secrets: generate the development ones (kept across
# restarts in an untracked file).
# shellcheck source=scripts/dev_secrets.sh
source scripts/dev_secrets.sh .run/secrets.env

procfile=.run/Procfile
grep -v '^release:' Procfile > "$procfile"

stripe_mode="Stripe (STRIPE_SECRET_KEY)"
if [ -z "${STRIPE_SECRET_KEY:-}" ]; then
  port="${STRIPE_EMULATOR_PORT:-12111}"
  export STRIPE_SECRET_KEY="sk_test_billingos_emulator"
  export STRIPE_PUBLISHABLE_KEY="${STRIPE_PUBLISHABLE_KEY:-pk_test_billingos_emulator}"
  export STRIPE_API_BASE="http://127.0.0.1:${port}"
  export STRIPE_WEBHOOK_SECRET="${STRIPE_WEBHOOK_SECRET:-$DEV_STRIPE_WEBHOOK_SECRET}"
  echo "emulator: python -m stripe_emulator --host 127.0.0.1 --port ${port} --webhook-url http://127.0.0.1:${PORT}/stripe/webhooks --webhook-secret \$STRIPE_WEBHOOK_SECRET" >> "$procfile"
  stripe_mode="local Stripe emulator at ${STRIPE_API_BASE} (control API: ${STRIPE_API_BASE}/_emulator/requests)"
fi

seed=$($BIN/flask billingos seed-demo --json)
token=$($BIN/flask billingos session-token --json)
secret_key=$(printf '%s' "$seed" | $BIN/python -c 'import json,sys; print(json.load(sys.stdin)["secret_key"])')
session_token=$(printf '%s' "$token" | $BIN/python -c 'import json,sys; print(json.load(sys.stdin)["token"])')

flower_access="this machine only"
if [ -n "${FLOWER_BASIC_AUTH:-}" ]; then flower_access="basic auth from FLOWER_BASIC_AUTH"; fi

cat <<BANNER

  BillingOS is starting
  ─────────────────────
  API            http://127.0.0.1:${PORT}        (docs: http://127.0.0.1:${PORT}/docs)
  Readiness      http://127.0.0.1:${PORT}/readyz
  Demo app       http://127.0.0.1:${PORT}/demo     (a merchant's app: buy with card 4242 4242 4242 4242)
  Metrics        http://127.0.0.1:${PORT}/metrics   (Authorization: Bearer \$METRICS_TOKEN, in .run/secrets.env)
  Flower         http://127.0.0.1:${FLOWER_PORT}  (${flower_access})
  Stripe         ${stripe_mode}

  Demo secret key     ${secret_key}
  Demo session token  ${session_token}

  Try:  curl -s -H "Authorization: Bearer ${session_token}" http://127.0.0.1:${PORT}/v1/products

  Ctrl-C stops every process.

BANNER

exec $BIN/honcho -d . -f "$procfile" start
