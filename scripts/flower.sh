#!/usr/bin/env bash
# The Procfile's `flower`: Flower can revoke and terminate tasks, so it never listens open.
# With FLOWER_BASIC_AUTH (`user:password`, comma-separated for several) Flower itself reads it
# from the environment (kept off the command line, where `ps` would show it) and asks for it on
# every page; without it, Flower binds to 127.0.0.1 only, whatever FLOWER_ADDRESS says.
set -euo pipefail
port="${FLOWER_PORT:-5555}"
if [ -n "${FLOWER_BASIC_AUTH:-}" ]; then
  exec celery -A tasks.worker flower --port="$port"
fi
unset FLOWER_BASIC_AUTH
exec celery -A tasks.worker flower --port="$port" --address=127.0.0.1
