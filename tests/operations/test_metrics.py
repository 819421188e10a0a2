"""Prometheus metrics: what operators alert on is measured, from web and worker processes."""

from __future__ import annotations

import json
import os
import re
import secrets
import uuid
from datetime import timedelta
from typing import Any

import pytest
import requests
import stripe
from celery import current_app as celery_app
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from app.db import db
from app.logging_setup import bound
from app.stripe_gateway import TransientStripeError, get_gateway
from tests.conftest import METRICS_TOKEN
from tests.factories import Buyer, make_product
from tests.operations.conftest import checkout_row, stored_event
from tests.support.processes import start_celery_worker, wait_until
from tests.support.server import free_port, start_web_server


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def scraped(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total


class TestWebMetrics:
    def test_latency_is_labelled_by_route_template_not_path(
        self, client: Any, buyer: Buyer, metrics_token: str
    ) -> None:
        route = "/v1/checkout/<uuid:checkout_id>/status"
        before = sample("billingos_http_requests_total", method="GET", route=route, status="404")
        for _ in range(3):
            client.get(f"/v1/checkout/{uuid.uuid4()}/status", headers=buyer.headers)
        assert (
            sample("billingos_http_requests_total", method="GET", route=route, status="404")
            == before + 3
        )
        assert sample("billingos_http_request_seconds_count", method="GET", route=route) >= 3
        # No raw path (with its id) became a label.
        body = client.get("/metrics", headers=bearer(metrics_token)).get_data(as_text=True)
        assert not re.search(r'route="[^"]*[0-9a-f]{8}-[0-9a-f]{4}-', body)

    def test_inbox_backlog_and_oldest_pending_age_are_read_at_scrape_time(
        self, client: Any, metrics_token: str
    ) -> None:
        stored_event("pending", timedelta(minutes=10))
        stored_event("pending", timedelta(seconds=5))
        stored_event("failed", timedelta(hours=1))
        stored_event("processed", timedelta(days=1))
        body = client.get("/metrics", headers=bearer(metrics_token)).get_data(as_text=True)
        assert scraped(body, "billingos_inbox_pending_events") == 2
        assert 600 <= scraped(body, "billingos_inbox_oldest_pending_seconds") < 700
        assert scraped(body, "billingos_inbox_failed_events") == 1

    def test_webhook_deliveries_are_counted(self, client: Any, app: Any) -> None:
        before = sample("billingos_webhooks_received_total", stored="true")
        duplicates = sample("billingos_webhooks_received_total", stored="false")
        payload = json.dumps(
            {
                "id": f"evt_{secrets.token_hex(8)}",
                "object": "event",
                "type": "customer.updated",
                "created": 1_700_000_000,
                "data": {"object": {"id": "cus_x", "object": "customer"}},
            }
        )
        header = stripe.WebhookSignature.generate_signature_header(
            payload, app.config["BILLINGOS"].stripe_webhook_secret
        )
        for _ in range(2):
            response = client.post(
                "/stripe/webhooks",
                data=payload,
                headers={"Stripe-Signature": header, "Content-Type": "application/json"},
            )
            assert response.status_code == 200
        assert sample("billingos_webhooks_received_total", stored="true") == before + 1
        assert sample("billingos_webhooks_received_total", stored="false") == duplicates + 1


class TestStripeMetrics:
    def test_each_gateway_operation_is_timed_and_its_errors_counted(
        self, app_context: None, stripe_emulator: Any
    ) -> None:
        gateway = get_gateway()
        ok = sample("billingos_stripe_requests_total", operation="create_customer", result="ok")
        gateway.create_customer(
            customer_id=uuid.uuid4(),
            organization_id=uuid.uuid4(),
            external_id="u1",
            email=None,
            name=None,
        )
        assert (
            sample("billingos_stripe_requests_total", operation="create_customer", result="ok")
            == ok + 1
        )
        assert sample("billingos_stripe_request_seconds_count", operation="create_customer") >= 1

        failed = sample(
            "billingos_stripe_requests_total",
            operation="retrieve_payment_intent",
            result="TransientStripeError",
        )
        stripe_emulator.set_faults("error_500", rate=1.0)
        try:
            with pytest.raises(TransientStripeError):
                gateway.retrieve_payment_intent("pi_missing")
        finally:
            stripe_emulator.clear_faults()
        assert (
            sample(
                "billingos_stripe_requests_total",
                operation="retrieve_payment_intent",
                result="TransientStripeError",
            )
            == failed + 1
        )


class TestCheckoutMetrics:
    def test_final_states_count_once_committed_and_reconciler_repairs_apart(
        self, merchant: Any, buyer: Buyer
    ) -> None:
        price = make_product(merchant, prices=[{"amount": 500, "currency": "usd"}]).prices[0]
        settled = sample("billingos_checkouts_settled_total", status="succeeded")
        repairs = sample("billingos_reconciler_repairs_total", kind="checkout_settled")

        rolled_back = checkout_row(buyer, price)
        rolled_back.transition("succeeded")
        db.session.rollback()
        assert sample("billingos_checkouts_settled_total", status="succeeded") == settled

        checkout_row(buyer, price).transition("succeeded")
        db.session.commit()
        assert sample("billingos_checkouts_settled_total", status="succeeded") == settled + 1
        assert sample("billingos_reconciler_repairs_total", kind="checkout_settled") == repairs

        with bound(task="checkout.reconcile"):
            checkout_row(buyer, price).transition("succeeded")
            db.session.commit()
        assert sample("billingos_checkouts_settled_total", status="succeeded") == settled + 2
        assert sample("billingos_reconciler_repairs_total", kind="checkout_settled") == repairs + 1


class TestMultiProcess:
    def test_gunicorn_workers_are_summed_in_one_scrape(self, app: Any) -> None:
        server = start_web_server(
            workers=2, env={"ACCESS_LOG": "0", "METRICS_TOKEN": METRICS_TOKEN}
        )
        try:
            for _ in range(20):
                assert requests.get(f"{server.url}/healthz", timeout=10).status_code == 200
            body = requests.get(
                f"{server.url}/metrics", headers=bearer(METRICS_TOKEN), timeout=10
            ).text
        finally:
            server.stop()
        counted = scraped(
            body, "billingos_http_requests_total", method="GET", route="/healthz", status="200"
        )
        # The readiness probe of the test harness adds its own /healthz calls.
        assert counted >= 20
        pids = {
            s.labels.get("pid")
            for family in text_string_to_metric_families(body)
            for s in family.samples
        }
        assert pids <= {None}, "multi-process samples are aggregated, not per pid"

    def test_worker_pool_processes_are_served_by_the_worker(self, app_context: None) -> None:
        port = free_port()
        worker = start_celery_worker(concurrency=2, env={"WORKER_METRICS_PORT": str(port)})
        try:
            event_ids = [stored_event("pending", timedelta(0)) for _ in range(4)]
            for event_id in event_ids:
                celery_app.send_task("stripe.process_event", args=(event_id,))
            # A task that fails: a checkout id that is not one.
            celery_app.send_task("checkout.reconcile", args=("not-a-uuid",))

            def metrics() -> str:
                return requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text

            def done() -> str | None:
                body = metrics()
                ok = scraped(
                    body, "billingos_tasks_total", task="stripe.process_event", outcome="success"
                )
                failed = scraped(
                    body, "billingos_tasks_total", task="checkout.reconcile", outcome="failure"
                )
                return body if ok == 4 and failed == 1 else None

            body = wait_until(done, timeout=60, what="the worker's metrics")
        finally:
            worker.stop()
        assert os.environ.get("PROMETHEUS_MULTIPROC_DIR") is None  # the worker set its own
        # BillingOS does not handle customer.updated: each is marked ignored.
        assert scraped(body, "billingos_webhook_events_processed_total", result="ignored") == 4
        assert scraped(body, "billingos_task_seconds_count", task="stripe.process_event") == 4
