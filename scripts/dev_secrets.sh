# Sourced by run_dev.sh: `source scripts/dev_secrets.sh FILE`. Generates the development
# secrets on first use and keeps them in FILE (mode 600, untracked), so a restart keeps the
# emulator's webhook signatures and a Prometheus scraper's token valid; then exports them,
# unless the environment already sets its own.
secrets_file="$1"
_random_hex() { head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
_remember_secret() {
  grep -q "^$1=" "$secrets_file" 2>/dev/null || echo "$1=$2" >> "$secrets_file"
}
(umask 077 && touch "$secrets_file")
_remember_secret DEV_STRIPE_WEBHOOK_SECRET "whsec_$(_random_hex)"
_remember_secret DEV_METRICS_TOKEN "$(_random_hex)"
# shellcheck disable=SC1090
source "$secrets_file"
export METRICS_TOKEN="${METRICS_TOKEN:-$DEV_METRICS_TOKEN}"
# Only the emulator uses it: with a real Stripe key, STRIPE_WEBHOOK_SECRET is Stripe's.
export DEV_STRIPE_WEBHOOK_SECRET
