"""`make chaos`: exactly-once under failure, reconciled against the Stripe emulator's truth.

    python -m bench.chaos [--quick]

Everything runs against PRIVATE instances the harness starts and removes itself — a
`redis-server` on a free port and a PostgreSQL cluster made with `initdb` in a temp dir (never
the machine's shared Postgres 5432 / Redis 6379) — plus the emulator (webhooks pointed at the
stack), gunicorn (2 gevent workers), two Celery worker instances and beat.

While it runs:
- 10,000 signed webhook deliveries arrive (30% duplicates, shuffled, 5% with a tampered
  signature), each retried like Stripe retries (backoff on 5xx / connection errors);
- 200 checkouts are bought through the API (create → open → confirm with `pm_card_visa`),
  each call retried with the same `Idempotency-Key` like an SDK would;
- 20 clients send 10,000 usage events (`POST /v1/features/track-usage`, 20% of them repeating
  an idempotency key already sent), each retried with its key until answered;
- the emulator fails 20% of its /v1 requests (error_500, stored_500, timeout, reset in equal
  shares; a stored_500 is replayed to every retry under its idempotency key, as Stripe does);
- some `checkout.confirm` messages are lost: with the workers down, queued and unacknowledged
  confirm messages are deleted from the broker, so only the sweepers can end those checkouts;
- a worker is SIGKILLed every few seconds (and restarted, as a supervisor would), Redis is
  restarted once, Postgres is restarted once, a gunicorn worker is SIGKILLed once.

Then it reconciles: deliveries sent / acknowledged / rejected (exactly the tampered ones),
events processed, effects applied (exactly one per event; none for tampered events), checkouts
converged, PaymentIntents per checkout (exactly one, from the emulator's request log), usage
aggregates equal to the distinct events' quantities (none lost, none counted twice), lost 0,
duplicated 0, and every 5xx answered while a dependency was down retried to success. It writes
bench/results/chaos.json and chaos.md and exits 1 on any loss or duplication (2 if a feature
it needs is missing, so nothing could be verified).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from bench.figures import BenchContext, Durations
from bench.procs import ROOT, Managed, ProcessRegistry, children_of, free_port, wait_for_port
from bench.results import RESULTS_DIR, machine_info, splice_into
from bench.stack import Stack, log
from tests.support.stripe_webhooks import envelope, signature_header

BUDGET_SECONDS = 14 * 60


# ----------------------------------------------------------------------------- private services
class PrivateRedis:
    """`redis-server` on a free port with append-only persistence, like a managed Redis."""

    def __init__(self, registry: ProcessRegistry, directory: Path) -> None:
        self.registry = registry
        self.directory = directory
        self.port = free_port()
        self.proc: Managed | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = self.registry.start(
            "redis",
            [
                shutil.which("redis-server") or "redis-server",
                "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
                "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
            ],
        )  # fmt: skip
        wait_for_port(self.port, 20, self.proc)

    def restart(self) -> float:
        """SIGTERM (Redis writes its AOF and exits), then start again; returns the downtime."""
        assert self.proc is not None
        down = time.monotonic()
        self.proc.stop(timeout=10)
        self.start()
        return time.monotonic() - down


class PrivatePostgres:
    """A throwaway PostgreSQL cluster (`initdb` in a temp dir, run as the `postgres` user)."""

    def __init__(self, registry: ProcessRegistry, directory: Path) -> None:
        self.registry = registry
        self.directory = directory
        self.data = directory / "pgdata"
        self.port = free_port()
        self.proc: Managed | None = None
        self.bin = self._bin_dir()

    @staticmethod
    def _bin_dir() -> Path:
        candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
        if not candidates:
            raise RuntimeError("no PostgreSQL binaries under /usr/lib/postgresql/*/bin")
        return candidates[-1].parent

    def url(self, database: str) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{database}"

    def _user(self) -> str | None:
        # initdb and postgres refuse to run as root; use the distribution's `postgres` user.
        return "postgres" if os.geteuid() == 0 else None

    def init(self) -> None:
        if self._user():
            shutil.chown(self.directory, user="postgres")
        import subprocess

        subprocess.run(
            [str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust",
             "--no-sync", "-E", "UTF8"],
            check=True,
            capture_output=True,
            user=self._user(),
        )  # fmt: skip

    def start(self) -> None:
        self.proc = self.registry.start(
            "postgres",
            [
                str(self.bin / "postgres"), "-D", str(self.data), "-p", str(self.port),
                "-k", str(self.directory), "-c", "listen_addresses=127.0.0.1",
                "-c", "max_connections=300", "-c", "fsync=off", "-c", "full_page_writes=off",
            ],
            user=self._user(),
        )  # fmt: skip
        wait_for_port(self.port, 30, self.proc)
        self._wait_ready()

    def _wait_ready(self) -> None:
        import psycopg2

        deadline = time.monotonic() + 30
        while True:
            try:
                psycopg2.connect(
                    host="127.0.0.1", port=self.port, user="postgres", dbname="postgres"
                ).close()
                return
            except psycopg2.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def restart(self) -> float:
        """Fast shutdown (SIGINT: abort sessions, checkpoint), then start; returns the downtime."""
        assert self.proc is not None
        down = time.monotonic()
        if self.proc.pid is not None:
            os.kill(self.proc.pid, signal.SIGINT)  # the postmaster only: it stops its children
        if self.proc.proc is not None:
            self.proc.proc.wait(timeout=30)
        self.start()
        return time.monotonic() - down


# ----------------------------------------------------------------------------- bookkeeping
@dataclass
class Window:
    what: str
    start: float
    end: float | None = None

    def covers(self, t: float, grace: float = 5.0) -> bool:
        return self.start <= t <= (self.end if self.end is not None else float("inf")) + grace


@dataclass
class Delivery:
    index: int
    event_id: str
    payload: str
    tampered: bool
    duplicate: bool
    attempts: list[tuple[float, int | str]] = field(default_factory=list)

    @property
    def final(self) -> int | str | None:
        return self.attempts[-1][1] if self.attempts else None


@dataclass
class Purchase:
    index: int
    checkout_id: str | None = None
    status: str | None = None
    calls: list[tuple[float, str, int | str]] = field(default_factory=list)
    error: str | None = None


def _retrying(
    fn: Any, record: Any, deadline: float, retry_on_4xx: tuple[int, ...] = ()
) -> requests.Response | None:
    """Call `fn()` until it answers below 500 (and not in `retry_on_4xx`); exponential backoff."""
    delay = 0.25
    while time.monotonic() < deadline:
        try:
            response = fn()
            record(response.status_code)
            if response.status_code < 500 and response.status_code not in retry_on_4xx:
                return response
        except requests.RequestException as exc:
            record(type(exc).__name__)
        time.sleep(delay + random.random() * delay)
        delay = min(delay * 2, 4.0)
    return None


@dataclass
class UsageSend:
    token: str
    customer_id: str
    key: str
    quantity: int
    final: int | str | None = None


USAGE_FEATURE = "chaos_calls"
USAGE_CLIENTS = 20


# ----------------------------------------------------------------------------- the run
class ChaosRun:
    def __init__(self, quick: bool) -> None:
        self.quick = quick
        self.deliveries_total = 1000 if quick else 10_000
        self.purchases_total = 20 if quick else 200
        self.usage_total = 1000 if quick else 10_000
        self.send_seconds = 30 if quick else 110
        self.kill_every = 3.0 if quick else 5.0
        self.lost_confirm_budget = 3 if quick else 10
        self.lost_confirms = 0
        self.registry = ProcessRegistry("chaos")
        self.tmp = Path(tempfile.mkdtemp(prefix="billingos-chaos-data-"))
        self.registry.on_close(lambda: shutil.rmtree(self.tmp, ignore_errors=True))
        self.windows: list[Window] = []
        self.events: list[str] = []
        self.started = time.monotonic()
        self.web: Managed | None = None
        self.workers: list[Managed] = []

    # ---------------------------------------------------------------- start
    def start(self) -> BenchContext:
        from app import create_app
        from app.config import Settings

        log(f"private PostgreSQL cluster (initdb) and redis-server in {self.tmp}")
        self.pg = PrivatePostgres(self.registry, self.tmp)
        self.pg.init()
        self.pg.start()
        (self.tmp / "redis").mkdir()
        self.redis = PrivateRedis(self.registry, self.tmp / "redis")
        self.redis.start()
        log(f"  postgres :{self.pg.port}, redis :{self.redis.port}")
        self.stack = Stack(
            self.registry,
            database_url=self.pg.url("billingos_chaos"),
            redis_url=self.redis.url,
            label="chaos",
            keep_database=True,  # the whole cluster is removed at the end
        )
        self.stack.prepare_data()
        self.web_port = free_port()
        # The emulator's own webhooks are wired to the stack only once the harness's objects
        # exist (see `run`): the intents it creates for its deliveries must be confirmed by
        # the harness's events alone, or the effects could not be attributed.
        emulator = self.stack.start_emulator(
            ["--webhook-retry-delays", "0.5,1,2,4,8,8,8,8,8,8", "--webhook-timeout", "5"]
        )
        if emulator is None:
            raise MissingFeature("the Stripe emulator (python -m stripe_emulator) is not there")
        self.web, _ = self.stack.start_web("web", port=self.web_port, workers=2)
        # Short visibility timeout: a SIGKILLed worker's unacknowledged task comes back quickly.
        extra = {"CELERY_VISIBILITY_TIMEOUT": "60"}
        self.workers = [
            self.stack.start_worker(f"worker{i}", concurrency=2, extra_env=extra) for i in (1, 2)
        ]
        beat_schedule = self.tmp / "celerybeat-schedule"
        self.registry.start(
            "beat",
            [sys.executable, "-m", "celery", "-A", "tasks.worker", "beat", "--loglevel", "INFO",
             "--schedule", str(beat_schedule)],
            self.stack.env(**extra),
        )  # fmt: skip
        base = f"http://127.0.0.1:{self.web_port}"
        self.seed = self.stack.seed(base, buyers=20)
        app = create_app(Settings.from_env(self.stack.env()))
        return BenchContext(
            stack=self.stack,
            seed=self.seed,
            web_port=self.web_port,
            baseline_port=None,
            durations=Durations.for_mode(True),
            loadgen_processes=1,
            app=app,
            quick=self.quick,
        )

    def check_features(self, ctx: BenchContext) -> None:
        from bench.figures.webhook_ingest import check_available

        check_available(ctx)
        ctx.require_endpoint(
            "POST",
            "/v1/checkout/create",
            ok=(200, 201, 202),
            body={"price_id": self.seed.one_time_price_id},
            headers={"Authorization": ctx.buyer_auth()[0], "Idempotency-Key": "chaos-probe"},
        )

    # ---------------------------------------------------------------- deliveries
    def build_deliveries(self, ctx: BenchContext) -> tuple[list[Delivery], list[dict], list[dict]]:
        tampered_n = int(self.deliveries_total * 0.05)
        duplicates_n = int(self.deliveries_total * 0.30)
        unique_n = self.deliveries_total - tampered_n - duplicates_n
        log(f"creating {unique_n + tampered_n} open checkouts with succeeded PaymentIntents")
        targets = ctx.create_open_checkouts(unique_n, with_payment_intent=True)
        # A tampered event names a real intent that has NOT succeeded: if BillingOS ever
        # applied one, its checkout would leave `open`, and its id would be in the inbox.
        decoys = ctx.create_open_checkouts(
            tampered_n, with_payment_intent=True, succeeded_in_stripe=False
        )
        deliveries: list[Delivery] = []
        for target in targets:
            event = envelope(
                "payment_intent.succeeded",
                target["payment_intent"],
                event_id=f"evt_chaos_{uuid.uuid4().hex[:20]}",
            )
            target["event_id"] = event["id"]
            deliveries.append(Delivery(0, event["id"], json.dumps(event), False, False))
        for original in (
            random.sample(deliveries[:unique_n], duplicates_n) if duplicates_n <= unique_n else []
        ):
            deliveries.append(Delivery(0, original.event_id, original.payload, False, True))
        for decoy in decoys:
            claimed = {**decoy["payment_intent"], "status": "succeeded"}
            event = envelope(
                "payment_intent.succeeded",
                claimed,
                event_id=f"evt_tampered_{uuid.uuid4().hex[:16]}",
            )
            decoy["event_id"] = event["id"]
            deliveries.append(Delivery(0, event["id"], json.dumps(event), True, False))
        random.shuffle(deliveries)
        for i, delivery in enumerate(deliveries):
            delivery.index = i
        return deliveries, targets, decoys

    def send(self, delivery: Delivery, deadline: float, session: requests.Session) -> None:
        url = f"http://127.0.0.1:{self.web_port}/stripe/webhooks"

        def post() -> requests.Response:
            header = signature_header(delivery.payload, self.stack.webhook_secret)
            if delivery.tampered:
                # Same length, different MAC: what an attacker without the secret can do.
                t, v1 = header.split(",v1=")
                header = f"{t},v1={v1[::-1]}"
            return session.post(
                url,
                data=delivery.payload.encode(),
                headers={"Content-Type": "application/json", "Stripe-Signature": header},
                timeout=10,
            )

        _retrying(post, lambda s: delivery.attempts.append((time.monotonic(), s)), deadline)

    # ---------------------------------------------------------------- purchases
    def buy(self, purchase: Purchase, token: str, deadline: float) -> None:
        base = f"http://127.0.0.1:{self.web_port}"
        session = requests.Session()
        auth = {"Authorization": f"Bearer {token}"}

        def note(what: str) -> Any:
            return lambda s: purchase.calls.append((time.monotonic(), what, s))

        created = _retrying(
            lambda: session.post(
                f"{base}/v1/checkout/create",
                json={"price_id": self.seed.one_time_price_id},
                headers={**auth, "Idempotency-Key": f"chaos-{purchase.index}", "Prefer": "wait=5"},
                timeout=15,
            ),
            note("create"),
            deadline,
            retry_on_4xx=(429,),
        )
        if created is None or created.status_code not in (200, 201, 202):
            purchase.error = f"create: {created.status_code if created is not None else 'gave up'}"
            return
        purchase.checkout_id = created.json()["id"]
        checkout = self._poll(
            session, base, auth, purchase, deadline, lambda c: c.get("client_secret")
        )
        if checkout is None:
            purchase.error = "never open"
            return
        secret = checkout["client_secret"]
        confirmed = _retrying(
            lambda: session.post(
                f"{base}/v1/checkout/{secret}/confirm",
                json={"payment_method_id": "pm_card_visa"},
                headers=auth,
                timeout=15,
            ),
            note("confirm"),
            deadline,
        )
        if confirmed is None or confirmed.status_code not in (202, 409):
            purchase.error = (
                f"confirm: {confirmed.status_code if confirmed is not None else 'gave up'}"
            )
        final = self._poll(
            session, base, auth, purchase, deadline,
            lambda c: c.get("status") in ("succeeded", "failed", "expired", "canceled"),
        )  # fmt: skip
        purchase.status = final["status"] if final else None

    def _poll(
        self, session: requests.Session, base: str, auth: dict[str, str], purchase: Purchase,
        deadline: float, done: Any,
    ) -> dict[str, Any] | None:  # fmt: skip
        while time.monotonic() < deadline:
            try:
                response = session.get(
                    f"{base}/v1/checkout/{purchase.checkout_id}/status", headers=auth, timeout=10
                )
                purchase.calls.append((time.monotonic(), "status", response.status_code))
                if response.status_code == 200:
                    body = response.json()
                    purchase.status = body.get("status")
                    if done(body):
                        return body
            except requests.RequestException as exc:
                purchase.calls.append((time.monotonic(), "status", type(exc).__name__))
            time.sleep(0.5)
        return None

    # ---------------------------------------------------------------- the monkey
    def monkey(self, stop: threading.Event, duration: float) -> None:
        plan = [
            (duration * 0.15, "lost-confirm", self._lose_confirm_messages),
            (duration * 0.25, "redis", self._restart_redis),
            (duration * 0.50, "postgres", self._restart_postgres),
            (duration * 0.75, "web", self._kill_web_worker),
        ]
        begin = time.monotonic()
        next_kill = begin + self.kill_every
        turn = 0
        while not stop.is_set():
            now = time.monotonic()
            if plan and now - begin >= plan[0][0]:
                _, what, action = plan.pop(0)
                window = Window(what, time.monotonic())
                self.windows.append(window)
                try:
                    action()
                finally:
                    window.end = time.monotonic()
                self.events.append(f"{what} back after {window.end - window.start:.1f} s")
                log(f"  chaos: {self.events[-1]}")
            if now >= next_kill:
                index = turn % len(self.workers)
                turn += 1
                worker = self.workers[index]
                worker.kill()  # SIGKILL to the whole group: the parent and its pool children
                self.events.append(f"SIGKILL worker{index + 1}")
                self.workers[index] = self.stack.start_worker(
                    f"worker{index + 1}",
                    concurrency=2,
                    extra_env={"CELERY_VISIBILITY_TIMEOUT": "60"},
                )
                next_kill = time.monotonic() + self.kill_every
            stop.wait(0.2)

    def _lose_confirm_messages(self) -> None:
        """Lose `checkout.confirm` messages for good: stop the workers, delete the confirm
        messages queued or held unacknowledged in the broker for a few seconds, restart."""
        import redis

        log("  chaos: losing checkout.confirm messages")
        for worker in self.workers:
            worker.kill()
        client = redis.Redis.from_url(self.redis.url)
        deadline, lost = time.monotonic() + 4.0, 0

        def is_confirm(raw: bytes | str) -> bool:
            try:
                message = json.loads(raw)
            except ValueError:
                return False
            if isinstance(message, list):  # the unacked hash keeps [message, exchange, key]
                message = message[0] if message else {}
            headers = message.get("headers") if isinstance(message, dict) else None
            return isinstance(headers, dict) and headers.get("task") == "checkout.confirm"

        while time.monotonic() < deadline and lost < self.lost_confirm_budget:
            for raw in client.lrange("celery", 0, -1):
                if is_confirm(raw) and client.lrem("celery", 1, raw):
                    lost += 1
            for tag, raw in client.hgetall("unacked").items():
                if is_confirm(raw) and client.hdel("unacked", tag):
                    client.zrem("unacked_index", tag)
                    lost += 1
            time.sleep(0.1)
        self.lost_confirms += lost
        extra = {"CELERY_VISIBILITY_TIMEOUT": "60"}
        self.workers = [
            self.stack.start_worker(f"worker{i}", concurrency=2, extra_env=extra) for i in (1, 2)
        ]
        self.events.append(f"{lost} checkout.confirm message(s) lost")

    def _restart_redis(self) -> None:
        log("  chaos: restarting Redis")
        self.redis.restart()

    def _restart_postgres(self) -> None:
        log("  chaos: restarting Postgres")
        self.pg.restart()

    def _kill_web_worker(self) -> None:
        assert self.web is not None and self.web.pid is not None
        victims = children_of(self.web.pid)
        if victims:
            log(f"  chaos: SIGKILL gunicorn worker {victims[0]}")
            os.kill(victims[0], signal.SIGKILL)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and len(children_of(self.web.pid)) < 2:
                time.sleep(0.1)

    # ---------------------------------------------------------------- main flow
    def run(self) -> int:
        ctx = self.start()
        try:
            self.check_features(ctx)
        except Exception as exc:
            raise MissingFeature(str(exc)) from exc
        ctx.purge_queues("celery")
        deliveries, targets, decoys = self.build_deliveries(ctx)
        self.stack.emulator_call(
            "POST",
            "/_emulator/webhook_endpoints",
            {
                "url": f"http://127.0.0.1:{self.web_port}/stripe/webhooks",
                "secret": self.stack.webhook_secret,
            },
        )
        # Rules are tried in order, so each rate is its share of what the earlier ones left.
        share = 0.2 / 4
        kinds = ("error_500", "stored_500", "timeout", "reset")
        faults = [
            {"kind": kind, "rate": share / (1 - i * share), "timeout_seconds": 2.0}
            for i, kind in enumerate(kinds)
        ]
        self.stack.emulator_call("POST", "/_emulator/faults", {"rules": faults})
        log(
            f"faults on: 20% of emulator /v1 requests; "
            f"{len(deliveries)} deliveries over ~{self.send_seconds} s"
        )
        stop = threading.Event()
        chaos_started = time.monotonic()
        monkey = threading.Thread(target=self.monkey, args=(stop, self.send_seconds), daemon=True)
        monkey.start()
        # Every call is retried until this deadline; then whatever has not converged is lost.
        give_up = chaos_started + self.send_seconds + (90 if self.quick else 300)
        purchases = [Purchase(i) for i in range(self.purchases_total)]
        buyers = self.seed.buyers
        interval = self.send_seconds / len(deliveries)
        usage_sends = self.build_usage_sends()
        with (
            ThreadPoolExecutor(max_workers=24) as senders,
            ThreadPoolExecutor(max_workers=10) as shoppers,
            ThreadPoolExecutor(max_workers=USAGE_CLIENTS) as trackers,
        ):
            shop = [
                shoppers.submit(self.buy, p, buyers[p.index % len(buyers)]["token"], give_up)
                for p in purchases
            ]
            shop += [
                trackers.submit(self.track, usage_sends[i::USAGE_CLIENTS], give_up)
                for i in range(USAGE_CLIENTS)
            ]
            local = threading.local()

            def send(delivery: Delivery) -> None:
                if not hasattr(local, "session"):
                    local.session = requests.Session()
                self.send(delivery, give_up, local.session)

            futures = []
            for i, delivery in enumerate(deliveries):
                pause = chaos_started + i * interval - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                futures.append(senders.submit(send, delivery))
                if i and i % max(1, len(deliveries) // 10) == 0:
                    acked = sum(1 for d in deliveries if d.final == 200)
                    log(f"  {i}/{len(deliveries)} deliveries sent, {acked} acknowledged")
            for future in futures + shop:
                future.result()
        stop.set()
        monkey.join(timeout=120)
        self.stack.emulator_call("DELETE", "/_emulator/faults")
        log("senders done, faults off; waiting for every event and checkout to converge")
        report = self.reconcile(
            ctx, deliveries, targets, decoys, purchases, converge_until=time.monotonic() + 180
        )
        report.update(self._usage_truth(ctx, usage_sends))
        report["lost"] += report["usage_lost"]
        report["duplicated"] += report["usage_double_counted"]
        return self.publish(report)

    # ---------------------------------------------------------------- usage metering
    def build_usage_sends(self) -> list[UsageSend]:
        """Distinct events, then 20% more sends repeating one of them (same key and quantity)."""
        http_answer = self.stack_http(
            "POST",
            "/v1/products",
            {
                "name": "Metered",
                "features": [
                    {"key": USAGE_FEATURE, "name": "Calls", "type": "usage_quota", "limit": -1}
                ],
                "prices": [{"amount": 900, "currency": "usd", "interval": "month"}],
            },
        )
        if http_answer.status != 201:
            raise MissingFeature(f"a usage_quota feature could not be defined: {http_answer.body}")
        rng = random.Random(15)
        buyers = self.seed.buyers
        distinct = [
            UsageSend(
                buyers[i % len(buyers)]["token"],
                buyers[i % len(buyers)]["customer_id"],
                f"chaos-{i}",
                rng.randint(1, 9),
            )
            for i in range(int(self.usage_total * 0.8))
        ]
        repeats = [
            UsageSend(o.token, o.customer_id, o.key, o.quantity)
            for o in (rng.choice(distinct) for _ in range(self.usage_total - len(distinct)))
        ]
        sends = distinct + repeats
        rng.shuffle(sends)
        return sends

    def stack_http(self, method: str, path: str, body: Any) -> Any:
        from bench.stack import http

        return http(
            method,
            f"http://127.0.0.1:{self.web_port}{path}",
            body,
            {"Authorization": f"Bearer {self.seed.secret_key}"},
        )

    def track(self, sends: list[UsageSend], deadline: float) -> None:
        """One client: its events spread over the chaos window, each retried with its key."""
        session = requests.Session()
        url = f"http://127.0.0.1:{self.web_port}/v1/features/track-usage"
        pace = self.send_seconds / max(1, len(sends))
        for send in sends:
            body = {
                "feature_key": USAGE_FEATURE,
                "quantity": send.quantity,
                "idempotency_key": send.key,
            }
            answer = _retrying(
                lambda body=body, send=send: session.post(
                    url, json=body, headers={"Authorization": f"Bearer {send.token}"}, timeout=10
                ),
                lambda _status: None,
                deadline,
            )
            send.final = answer.status_code if answer is not None else "gave up"
            time.sleep(pace)

    def _usage_truth(self, ctx: BenchContext, sends: list[UsageSend]) -> dict[str, Any]:
        from sqlalchemy import func, select

        from app.db import db
        from models import Feature, UsageAggregate

        expected: dict[str, int] = defaultdict(int)
        for customer_id, quantity in {s.key: (s.customer_id, s.quantity) for s in sends}.values():
            expected[customer_id] += quantity
        with ctx.app.app_context():
            rows = db.session.execute(
                select(UsageAggregate.customer_id, func.sum(UsageAggregate.consumed))
                .join(Feature, Feature.id == UsageAggregate.feature_id)
                .where(Feature.key == USAGE_FEATURE)
                .group_by(UsageAggregate.customer_id)
            ).all()
            db.session.remove()
        actual = {str(customer_id): int(total) for customer_id, total in rows}
        customers = set(expected) | set(actual)
        return {
            "usage_sends": len(sends),
            "usage_distinct_events": len({s.key for s in sends}),
            "usage_expected_total": sum(expected.values()),
            "usage_aggregated_total": sum(actual.values()),
            "usage_unanswered": sum(1 for s in sends if s.final != 200),
            "usage_lost": sum(max(0, expected[c] - actual.get(c, 0)) for c in customers),
            "usage_double_counted": sum(max(0, actual.get(c, 0) - expected[c]) for c in customers),
        }

    # ---------------------------------------------------------------- reconciliation
    def reconcile(
        self, ctx: BenchContext, deliveries: list[Delivery], targets: list[dict],
        decoys: list[dict],
        purchases: list[Purchase], converge_until: float,
    ) -> dict[str, Any]:  # fmt: skip
        target_ids = [t["checkout_id"] for t in targets]
        valid_event_ids = {t["event_id"] for t in targets}

        def converged() -> bool:
            if ctx.checkout_statuses(target_ids).get("succeeded", 0) < len(target_ids):
                return False
            return self._database_truth(ctx, targets, decoys, valid_event_ids)[
                "events_processed"
            ] >= len(valid_event_ids)

        while time.monotonic() < converge_until and not converged():
            time.sleep(1.0)
        db = self._database_truth(ctx, targets, decoys, valid_event_ids)
        emulator = self._emulator_truth(purchases)
        tampered = {d.index for d in deliveries if d.tampered}
        rejected = {d.index for d in deliveries if d.final == 400}
        acknowledged = sum(1 for d in deliveries if d.final == 200)
        unanswered = [d.index for d in deliveries if d.final not in (200, 400)]
        five_xx = [
            (d, t) for d in deliveries for t, s in d.attempts if not isinstance(s, int) or s >= 500
        ]
        during_outage = [(d, t) for d, t in five_xx if any(w.covers(t) for w in self.windows)]
        retried_ok = all(d.final in (200, 400) for d, _ in five_xx)
        bought = [p for p in purchases if p.checkout_id]
        converged_checkouts = sum(1 for p in purchases if p.status == "succeeded")
        lost = (len(valid_event_ids) - db["events_processed"]) + (len(target_ids) - db["effects"])
        lost += len(unanswered) + (len(purchases) - converged_checkouts)
        duplicated = db["duplicate_effects"] + emulator["extra_payment_intents"]
        return {
            "deliveries_sent": len(deliveries),
            "unique_events": len(valid_event_ids),
            "duplicate_deliveries": sum(1 for d in deliveries if d.duplicate),
            "tampered_deliveries": len(tampered),
            "acknowledged": acknowledged,
            "rejected": len(rejected),
            "rejected_exactly_tampered": rejected == tampered,
            "unanswered": len(unanswered),
            "events_processed": db["events_processed"],
            "effects_applied": db["effects"],
            "effects_on_tampered_events": db["decoy_effects"],
            "duplicate_effects": db["duplicate_effects"],
            "checkouts_bought": len(purchases),
            "checkouts_created": len(bought),
            "checkouts_converged": converged_checkouts,
            "checkout_errors": Counter(p.error for p in purchases if p.error),
            "payment_intents_per_checkout": emulator["per_checkout"],
            "extra_payment_intents": emulator["extra_payment_intents"],
            "emulator_events": emulator["events"],
            "emulator_events_delivered": emulator["delivered"],
            "5xx_or_connection_errors": len(five_xx),
            "5xx_while_dependency_down": len(during_outage),
            "5xx_each_retried_to_success": retried_ok,
            "confirm_messages_lost_on_purpose": self.lost_confirms,
            "lost": lost,
            "duplicated": duplicated,
            "chaos": self.events,
            "windows": [
                {"what": w.what, "seconds": (w.end or w.start) - w.start} for w in self.windows
            ],
        }

    def _database_truth(
        self, ctx: BenchContext, targets: list[dict], decoys: list[dict], valid_event_ids: set[str]
    ) -> dict[str, int]:
        from sqlalchemy import func, select

        from app.db import db
        from models import CheckoutSession, Entitlement, PaymentIntent, StripeEvent

        with ctx.app.app_context():
            session = db.session
            processed = session.execute(
                select(func.count()).where(
                    StripeEvent.stripe_event_id.in_(valid_event_ids),
                    StripeEvent.status.in_(("processed", "ignored")),
                )
            ).scalar_one()
            stored_tampered = session.execute(
                select(func.count()).where(
                    StripeEvent.stripe_event_id.in_([d["event_id"] for d in decoys])
                )
            ).scalar_one()
            target_uuids = [uuid.UUID(t["checkout_id"]) for t in targets]
            effects = session.execute(
                select(func.count()).where(
                    CheckoutSession.id.in_(target_uuids), CheckoutSession.status == "succeeded"
                )
            ).scalar_one()
            decoy_effects = session.execute(
                select(func.count()).where(
                    CheckoutSession.id.in_([uuid.UUID(d["checkout_id"]) for d in decoys]),
                    CheckoutSession.status != "open",
                )
            ).scalar_one()
            grants = session.execute(
                select(PaymentIntent.checkout_session_id, func.count(Entitlement.id))
                .join(Entitlement, Entitlement.payment_intent_id == PaymentIntent.id)
                .where(PaymentIntent.checkout_session_id.in_(target_uuids))
                .group_by(PaymentIntent.checkout_session_id)
            ).all()
            session.remove()
        return {
            "events_processed": int(processed),
            "effects": int(effects),
            "decoy_effects": int(decoy_effects) + int(stored_tampered),
            "duplicate_effects": sum(max(0, n - 1) for _, n in grants),
        }

    def _emulator_truth(self, purchases: list[Purchase]) -> dict[str, Any]:
        """PaymentIntents the emulator really created per checkout (replays and 500s excluded)."""
        rows = self.stack.emulator_call(
            "GET", "/_emulator/requests?path=/v1/payment_intents&method=POST"
        ).body["data"]
        created: dict[str, int] = defaultdict(int)
        for row in rows:
            if row["path"] != "/v1/payment_intents" or row.get("replayed"):
                continue
            if row.get("fault") == "error_500" or (row.get("status") or 0) >= 400:
                continue
            metadata = (row.get("params") or {}).get("metadata") or {}
            checkout_id = metadata.get("billingos_checkout_id")
            if checkout_id:
                created[checkout_id] += 1
        ours = [p.checkout_id for p in purchases if p.checkout_id]
        per_checkout = Counter(created.get(c, 0) for c in ours)
        events = self.stack.emulator_call("GET", "/_emulator/events").body["data"]
        return {
            "per_checkout": {str(k): v for k, v in sorted(per_checkout.items())},
            "extra_payment_intents": sum(max(0, created.get(c, 0) - 1) for c in ours),
            "events": len(events),
            "delivered": sum(1 for e in events if e.get("delivered")),
        }

    # ---------------------------------------------------------------- output
    def publish(self, report: dict[str, Any]) -> int:
        ok = (
            report["lost"] == 0
            and report["duplicated"] == 0
            and report["rejected_exactly_tampered"]
            and report["effects_on_tampered_events"] == 0
            and report["5xx_each_retried_to_success"]
        )
        report["passed"] = ok
        table = chaos_table(report)
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        name = "chaos-quick" if self.quick else "chaos"  # a quick run never replaces the results
        (RESULTS_DIR / f"{name}.json").write_text(
            json.dumps(
                {"machine": machine_info(), "mode": "quick" if self.quick else "full",
                 "seconds": time.monotonic() - self.started, "report": report},
                indent=2, default=str,
            ) + "\n"
        )  # fmt: skip
        (RESULTS_DIR / f"{name}.md").write_text(
            f"<!-- generated by `make chaos` ({'quick' if self.quick else 'full'}); "
            "do not edit by hand -->\n" + table
        )
        if not self.quick:
            splice_into(ROOT / "RELIABILITY.md", table, "results")
        print(table, flush=True)
        log("PASSED: nothing lost, nothing duplicated" if ok else "FAILED: see the table")
        return 0 if ok else 1


def chaos_table(report: dict[str, Any]) -> str:
    def row(what: str, value: Any, expected: str = "") -> str:
        return f"| {what} | {value} | {expected} |"

    per = report["payment_intents_per_checkout"]
    lines = [
        "| what | measured | expected |",
        "| --- | --- | --- |",
        row("webhook deliveries sent", f"{report['deliveries_sent']:,}",
            f"{report['unique_events']:,} events + {report['duplicate_deliveries']:,} duplicates "
            f"+ {report['tampered_deliveries']:,} tampered"),
        row("acknowledged (200)", f"{report['acknowledged']:,}",
            f"{report['deliveries_sent'] - report['tampered_deliveries']:,}"),
        row("rejected (400)", f"{report['rejected']:,}",
            f"exactly the {report['tampered_deliveries']:,} tampered: "
            f"{'yes' if report['rejected_exactly_tampered'] else 'NO'}"),
        row("events processed", f"{report['events_processed']:,}", f"{report['unique_events']:,}"),
        row("effects applied", f"{report['effects_applied']:,}",
            f"exactly one per event ({report['unique_events']:,}); tampered: "
            f"{report['effects_on_tampered_events']}"),
        row("checkouts bought through the API",
            f"{report['checkouts_converged']}/{report['checkouts_bought']} converged",
            f"{report['checkouts_bought']} succeeded"),
        row("PaymentIntents per checkout", ", ".join(f"{k}: {v}" for k, v in per.items()) or "—",
            "exactly 1 for every checkout"),
        row("checkout.confirm messages lost on purpose",
            report.get("confirm_messages_lost_on_purpose", 0),
            "their checkouts still end succeeded (sweepers)"),
        row("5xx / connection errors answered", report["5xx_or_connection_errors"], ""),
        row("… while a dependency was down", report["5xx_while_dependency_down"],
            f"each retried to success: {'yes' if report['5xx_each_retried_to_success'] else 'NO'}"),
        row("emulator events delivered",
            f"{report['emulator_events_delivered']}/{report['emulator_events']}", "all"),
        row("usage events sent (20% repeated keys)", f"{report['usage_sends']:,}",
            f"{report['usage_distinct_events']:,} distinct; unanswered: "
            f"{report['usage_unanswered']}"),
        row("usage aggregated (sum of quantities)", f"{report['usage_aggregated_total']:,}",
            f"{report['usage_expected_total']:,} (lost {report['usage_lost']}, double-counted "
            f"{report['usage_double_counted']})"),
        row("lost", report["lost"], "0"),
        row("duplicated", report["duplicated"], "0"),
        row("chaos", "; ".join(e for e in report["chaos"] if not e.startswith("SIGKILL"))
            + f"; {sum(e.startswith('SIGKILL') for e in report['chaos'])} worker SIGKILLs", ""),
    ]  # fmt: skip
    return "\n".join(lines) + "\n"


class MissingFeature(Exception):
    pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="BillingOS chaos run (make chaos)")
    parser.add_argument(
        "--quick", action="store_true", default=os.environ.get("CHAOS_QUICK") == "1"
    )
    args = parser.parse_args(argv)
    run = ChaosRun(args.quick)
    try:
        return run.run()
    except MissingFeature as exc:
        log(f"not available: {exc} — nothing could be verified")
        return 2
    finally:
        log("stopping every process the harness started, removing the private cluster")
        run.registry.close()


if __name__ == "__main__":
    sys.exit(main())
