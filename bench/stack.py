"""The BillingOS stack as the Procfile runs it, on free ports, against the harness's own data.

`Stack` creates and migrates its own database (`billingos_bench` by default, dropped at the
end), uses its own Redis db index (flushed before and after), and starts gunicorn (gevent, via
gunicorn.conf.py), Celery workers (`celery -A tasks.worker worker`), the Stripe emulator and the
baseline webhook app — every one registered with the `ProcessRegistry`, so all of them are
killed on any exit. It also seeds an organization, a catalog and buyers through the CLI and the
API, the way a merchant would.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import make_url

from app.config import RATE_LIMIT_DEFAULTS
from bench.procs import ROOT, VENV_BIN, Managed, ProcessRegistry, free_port, wait_for_port
from tests.support.database import drop_database, recreate_database

WEBHOOK_SECRET = "whsec_bench_" + "0" * 8  # replaced per run in Stack.__init__
STRIPE_KEY = "sk_test_billingos_bench"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


@dataclass
class HttpAnswer:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


def http(
    method: str,
    url: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    timeout: float = 15.0,
    raw: bytes | None = None,
) -> HttpAnswer:
    """One plain HTTP call (for setup and checks, not for load)."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    if not url.startswith("http://"):
        raise ValueError(f"the harness only speaks plain HTTP to its own processes: {url}")
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 — http only
    if data is not None and raw is None:
        request.add_header("Content-Type", "application/json")
    for key, value in (headers or {}).items():
        request.add_header(key, value)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            payload = response.read()
            status, hdrs = response.status, dict(response.headers)
    except urllib.error.HTTPError as exc:
        payload, status, hdrs = exc.read(), exc.code, dict(exc.headers)
    try:
        parsed: Any = json.loads(payload) if payload else None
    except ValueError:
        parsed = payload.decode(errors="replace")
    return HttpAnswer(status, parsed, hdrs)


def migrate(url: str) -> None:
    subprocess.run(
        [str(VENV_BIN / "alembic"), "-x", f"url={url}", "upgrade", "head"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "DATABASE_URL": url},
        check=True,
        capture_output=True,
    )


@dataclass
class Seed:
    organization_id: str
    secret_key: str
    one_time_price_id: str | None
    recurring_price_id: str | None
    product_ids: list[str]
    buyers: list[dict[str, str]]  # {"token", "customer_id", "external_id"}


class Stack:
    def __init__(
        self,
        registry: ProcessRegistry,
        *,
        database_url: str,
        redis_url: str,
        label: str = "bench",
        keep_database: bool = False,
    ) -> None:
        self.registry = registry
        self.database_url = database_url
        self.redis_url = redis_url
        self.label = label
        self.webhook_secret = "whsec_" + secrets.token_hex(16)
        self.emulator_url: str | None = None
        self.emulator: Managed | None = None
        self.keep_database = keep_database

    # ------------------------------------------------------------------ environment
    def env(self, **extra: str) -> dict[str, str]:
        env = {
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "BILLINGOS_ENV": self.label,
            "SECRET_KEY": "bench-" + self.label,
            "STRIPE_SECRET_KEY": STRIPE_KEY,
            "STRIPE_PUBLISHABLE_KEY": "pk_test_billingos_bench",
            "STRIPE_WEBHOOK_SECRET": self.webhook_secret,
            # The per-buyer checkout rate limit protects production from abuse; a load test is
            # abuse by design, so it is lifted here (and only here).
            "CHECKOUT_RATE_LIMIT": "1000000000",
            **{f"RATE_LIMIT_{name.upper()}": "1000000000/second" for name in RATE_LIMIT_DEFAULTS},
            # Likewise the open-stream caps: the websocket figure holds 10,000 streams of one token.
            "REALTIME_MAX_STREAMS_PER_TOKEN": "1000000000",
            "REALTIME_MAX_STREAMS_PER_CUSTOMER": "1000000000",
            "LOG_LEVEL": "WARNING",
            # Access logs are off for the stack and the baseline alike (same config for both).
            "ACCESS_LOG": "0",
            # The Postgres server is shared (100 connections): every bench process, baselines
            # alike, pools 5 (+5 overflow) per process.
            "DB_POOL_SIZE": "5",
            "FLASK_APP": "app:create_app",
        }
        if self.emulator_url:
            env["STRIPE_API_BASE"] = self.emulator_url
        env.pop("CELERY_BROKER_URL", None)
        env.update(extra)
        return env

    def prepare_data(self) -> None:
        log(f"database {make_url(self.database_url).database}: create + migrate (alembic)")
        recreate_database(self.database_url)
        if not self.keep_database:
            self.registry.on_close(lambda: drop_database(self.database_url))
        migrate(self.database_url)
        self.flush_redis()
        self.registry.on_close(self.flush_redis)

    def flush_redis(self) -> None:
        import redis

        # A private redis-server the harness already stopped has nothing left to flush.
        with contextlib.suppress(redis.ConnectionError):
            redis.Redis.from_url(self.redis_url).flushdb()

    # ------------------------------------------------------------------ processes
    def start_emulator(self, extra_args: list[str] | None = None) -> str | None:
        """`python -m stripe_emulator` on a free port; None if the emulator is not there yet."""
        if not (ROOT / "stripe_emulator" / "__main__.py").exists():
            return None
        port = free_port()
        self.emulator = self.registry.start(
            "emulator",
            [sys.executable, "-m", "stripe_emulator", "--host", "127.0.0.1", "--port", str(port)]
            + (extra_args or []),
        )
        wait_for_port(port, 30, self.emulator)
        self.emulator_url = f"http://127.0.0.1:{port}"
        return self.emulator_url

    def start_web(
        self,
        name: str = "web",
        wsgi: str = "app.wsgi:app",
        workers: int = 2,
        port: int | None = None,
        high_nofile: bool = False,
        extra_env: dict[str, str] | None = None,
    ) -> tuple[Managed, int]:
        """gunicorn with gunicorn.conf.py (gevent workers), as the Procfile's `web` line."""
        port = port or free_port()
        env = self.env(PORT=str(port), HOST="127.0.0.1", WEB_CONCURRENCY=str(workers))
        env.update(extra_env or {})
        proc = self.registry.start(
            name,
            [str(VENV_BIN / "gunicorn"), "--config", "gunicorn.conf.py", wsgi],
            env,
            high_nofile=high_nofile,
        )
        wait_for_port(port, 60, proc)
        self._wait_http(f"http://127.0.0.1:{port}/healthz", proc)
        return proc, port

    def _wait_http(self, url: str, proc: Managed, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not proc.running:
                raise RuntimeError(f"{proc.name} exited:\n{proc.tail()}")
            try:
                if http("GET", url, timeout=2).status < 500:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"{url} did not answer")

    def start_worker(
        self,
        name: str = "worker",
        app: str = "tasks.worker",
        concurrency: int = 2,
        queues: str | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> Managed:
        """`celery -A tasks.worker worker` (prefork), as the Procfile's `worker` line."""
        argv = [
            str(VENV_BIN / "celery"), "-A", app, "worker", "--loglevel", "INFO",
            "--concurrency", str(concurrency), "-n", f"{name}-{uuid.uuid4().hex[:6]}@%h",
            "--without-gossip", "--without-mingle", "--without-heartbeat",
        ]  # fmt: skip
        if queues:
            argv += ["-Q", queues]
        proc = self.registry.start(name, argv, self.env(**(extra_env or {})))
        proc.wait_for_log("ready.", timeout=90)
        return proc

    # ------------------------------------------------------------------ seed
    def seed(self, base_url: str, buyers: int = 20) -> Seed:
        """An organization (CLI), a catalog and buyers (API), like a merchant's first day."""
        out = subprocess.run(
            # The harness speaks the 2026-11-27 contract (snake_case bodies, problem+json).
            [
                str(VENV_BIN / "flask"),
                "billingos",
                "create-org",
                f"Bench {self.label}",
                "--api-version",
                "2026-11-27",
                "--json",
            ],
            cwd=ROOT,
            env={**os.environ, **self.env(), "PYTHONPATH": str(ROOT)},
            check=True,
            capture_output=True,
            text=True,
        )
        org = json.loads(out.stdout.strip().splitlines()[-1])
        auth = {"Authorization": f"Bearer {org['secret_key']}"}
        one_time = http(
            "POST",
            f"{base_url}/v1/products",
            {
                "name": "Export pack",
                "features": [{"key": "export", "name": "Export"}],
                "prices": [{"amount": 2900, "currency": "usd"}],
            },
            auth,
        )
        recurring = http(
            "POST",
            f"{base_url}/v1/products",
            {
                "name": "Pro",
                "features": [{"key": "pro", "name": "Pro"}],
                "prices": [{"amount": 1200, "currency": "usd", "interval": "month"}],
            },
            auth,
        )
        if one_time.status != 201 or recurring.status != 201:
            raise RuntimeError(f"seeding products failed: {one_time.body} {recurring.body}")
        seeded = []
        for i in range(buyers):
            answer = http(
                "POST",
                f"{base_url}/v1/session-tokens",
                {
                    "customer": {"external_id": f"bench_user_{i}", "email": f"u{i}@example.com"},
                    "expires_in": 86400,
                },
                auth,
            )
            if answer.status != 201:
                raise RuntimeError(f"session token: {answer.status} {answer.body}")
            seeded.append(
                {
                    "token": answer.body["token"],
                    "customer_id": answer.body["customer"]["id"],
                    "external_id": f"bench_user_{i}",
                }
            )
        return Seed(
            organization_id=org["organization_id"],
            secret_key=org["secret_key"],
            one_time_price_id=one_time.body["prices"][0]["id"],
            recurring_price_id=recurring.body["prices"][0]["id"],
            product_ids=[one_time.body["id"], recurring.body["id"]],
            buyers=seeded,
        )

    # ------------------------------------------------------------------ emulator control
    def emulator_call(self, method: str, path: str, body: Any = None) -> HttpAnswer:
        if not self.emulator_url:
            raise RuntimeError("the emulator is not running")
        return http(method, self.emulator_url + path, body, timeout=60)

    def stripe_client(self) -> Any:
        import stripe

        return stripe.StripeClient(
            STRIPE_KEY,
            base_addresses={"api": self.emulator_url},
            http_client=stripe.RequestsClient(timeout=30),
            max_network_retries=2,
        )


def redis_url_with_db(base: str, index: int) -> str:
    head = base.rsplit("/", 1)[0] if base.count("/") > 2 else base
    return f"{head}/{index}"
