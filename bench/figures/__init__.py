"""One module per row of the benchmark table; each exposes `measure(ctx) -> list[Figure]`.

A figure whose feature is absent (an endpoint answers 404, a task never runs) returns a
"not available: <why>" row instead of a number, and starts working once the feature lands.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Flask

from bench.loadgen import LoadResult, run_load
from bench.procs import Managed
from bench.stack import Seed, Stack, http, log


class FeatureMissing(Exception):
    """A figure cannot be measured because the feature it measures is not there (yet)."""


@dataclass
class Durations:
    """Seconds per measurement; `quick` shrinks them to prove the harness runs end to end."""

    saturation: float
    latency: float
    sweep_step: float
    samples: int  # event-processing events, webhook → client samples
    websockets: int

    @classmethod
    def for_mode(cls, quick: bool) -> Durations:
        if quick:
            return cls(saturation=2, latency=2, sweep_step=1, samples=150, websockets=200)
        return cls(saturation=10, latency=10, sweep_step=4, samples=2000, websockets=10_000)


@dataclass
class BenchContext:
    stack: Stack
    seed: Seed
    web_port: int
    baseline_port: int | None
    durations: Durations
    loadgen_processes: int
    app: Flask
    quick: bool
    # The raw-stack ingest baseline (bench/raw_webhook_app.py), when it started.
    raw_port: int | None = None
    # Servers only webhook_ingest uses (the baselines): stopped after it, so their Postgres
    # connections are free for the figures after it (the server is shared).
    ingest_baselines: list[Managed] = field(default_factory=list)
    # BillingOS's ingest saturation (events/s) once webhook_ingest measured it this run.
    ingest_saturation: float | None = None
    plots: dict[str, Any] = field(default_factory=dict)  # data for bench.plots
    workers: list[Managed] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    # ------------------------------------------------------------------ workers
    def start_workers(self, extra_env: dict[str, str] | None = None) -> None:
        if not self.workers:
            self.workers.append(
                self.stack.start_worker("worker", concurrency=2, extra_env=extra_env)
            )

    def stop_workers(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.workers = []

    def purge_queues(self, *queues: str) -> None:
        """Drop queued Celery messages a figure left behind (e.g. ingest with no worker)."""
        import redis

        client = redis.Redis.from_url(self.stack.redis_url)
        for queue in queues or ("celery",):
            client.delete(queue)
        client.delete("unacked", "unacked_index")

    # ------------------------------------------------------------------ load
    def load(self, port: int, **spec: Any) -> LoadResult:
        spec.setdefault("timeout", 10.0)
        return run_load({"host": "127.0.0.1", "port": port, **spec}, self.loadgen_processes)

    def buyer_auth(self) -> list[str]:
        return [f"Bearer {b['token']}" for b in self.seed.buyers]

    def require_endpoint(
        self, method: str, path: str, *, ok: tuple[int, ...], **kwargs: Any
    ) -> None:
        answer = http(method, self.base_url + path, **kwargs)
        if answer.status not in ok:
            raise FeatureMissing(f"{method} {path.split('?')[0]} answered {answer.status}")

    # ------------------------------------------------------------------ data
    def create_open_checkouts(
        self,
        count: int,
        *,
        with_payment_intent: bool,
        succeeded_in_stripe: bool = True,
        own_customers: bool = False,
    ) -> list[dict[str, Any]]:
        """Open checkouts as `checkout.prepare` leaves them, each with a real emulator intent.

        Created directly (not through `POST /v1/checkout/create`) so that figures about what
        happens *after* a checkout is open do not depend on, or pay for, creating it.
        By default the checkouts are spread over the seeded buyers (who have session tokens);
        with `own_customers` each belongs to a new customer of its own (no token), as when
        many different people buy at once.
        Returns [{"checkout_id", "token", "payment_intent": <Stripe object dict> | None}].
        """
        from concurrent.futures import ThreadPoolExecutor

        from app.db import db
        from models import CheckoutSession, Customer, PaymentIntent

        price_id = self.seed.one_time_price_id
        product_id = self.seed.product_ids[0]
        buyers = self.seed.buyers
        plans: list[dict[str, Any]] = [
            {"checkout_id": uuid.uuid4(), "buyer": buyers[i % len(buyers)]} for i in range(count)
        ]
        if own_customers:
            with self.app.app_context():
                for plan in plans:
                    customer = Customer(
                        id=uuid.uuid4(),
                        organization_id=uuid.UUID(self.seed.organization_id),
                        external_id=f"bench_buyer_{plan['checkout_id']}",
                    )
                    db.session.add(customer)
                    plan["buyer"] = {"customer_id": str(customer.id), "token": None}
                db.session.commit()
                db.session.remove()
        if with_payment_intent:
            if not self.stack.emulator_url:
                raise FeatureMissing("the Stripe emulator is not running")
            client = self.stack.stripe_client()

            def create_intent(plan: dict[str, Any]) -> None:
                params: dict[str, Any] = {
                    "amount": 2900,
                    "currency": "usd",
                    "automatic_payment_methods": {"enabled": True, "allow_redirects": "never"},
                    "metadata": {
                        "billingos_organization_id": self.seed.organization_id,
                        "billingos_checkout_id": str(plan["checkout_id"]),
                    },
                }
                if succeeded_in_stripe:
                    params.update(payment_method="pm_card_visa", confirm=True)
                intent = client.v1.payment_intents.create(params=params)
                plan["payment_intent"] = intent.to_dict()

            with ThreadPoolExecutor(max_workers=8) as pool:
                list(pool.map(create_intent, plans))
        expires_at = datetime.now(UTC) + timedelta(hours=1)
        with self.app.app_context():
            for plan in plans:
                intent = plan.get("payment_intent")
                checkout = CheckoutSession(
                    id=plan["checkout_id"],
                    organization_id=uuid.UUID(self.seed.organization_id),
                    customer_id=uuid.UUID(plan["buyer"]["customer_id"]),
                    product_id=uuid.UUID(product_id),
                    price_id=uuid.UUID(price_id) if price_id else None,
                    idempotency_key=f"bench:{plan['checkout_id']}",
                    status="open",
                    amount=2900,
                    currency="usd",
                    intent_type="payment",
                    client_secret=intent["client_secret"]
                    if intent
                    else f"bench_secret_{uuid.uuid4().hex}",
                    stripe_payment_intent_id=intent["id"] if intent else None,
                    expires_at=expires_at,
                )
                db.session.add(checkout)
                if intent:
                    db.session.flush()
                    db.session.add(
                        PaymentIntent(
                            organization_id=checkout.organization_id,
                            customer_id=checkout.customer_id,
                            checkout_session_id=checkout.id,
                            stripe_payment_intent_id=intent["id"],
                            amount=2900,
                            currency="usd",
                            status="requires_payment_method",
                        )
                    )
            db.session.commit()
            db.session.remove()
        return [
            {
                "checkout_id": str(p["checkout_id"]),
                "token": p["buyer"]["token"],
                "payment_intent": p.get("payment_intent"),
            }
            for p in plans
        ]

    def checkout_statuses(self, checkout_ids: list[str]) -> dict[str, int]:
        from sqlalchemy import func, select

        from app.db import db
        from models import CheckoutSession

        with self.app.app_context():
            rows = db.session.execute(
                select(CheckoutSession.status, func.count())
                .where(CheckoutSession.id.in_([uuid.UUID(c) for c in checkout_ids]))
                .group_by(CheckoutSession.status)
            ).all()
            db.session.remove()
        return {status: n for status, n in rows}


def progress(message: str) -> None:
    log(message)
