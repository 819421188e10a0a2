"""Log lines: JSON from every process, tagged with the ids they concern, and free of secrets.

A purchase, a decline, Stripe's webhooks and a crashing event go through the real web server
(gunicorn), a real Celery worker and beat; every line each process wrote is then read back.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import tempfile
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import stripe
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from app.db import db
from app.logging_setup import (
    JsonLineFormatter,
    RedactingFilter,
    bound,
    current_context,
    sane_request_id,
)
from tests.factories import make_buyer, make_merchant, make_product
from tests.support.processes import ManagedProcess, wait_until
from tests.support.server import WebServer, start_web_server

EMAIL = "jane.buyer@example.org"
CARD_NUMBER = "4242424242424242"
WEBHOOK_SECRET = "whsec_test_billingos"


def _celery(*command: str) -> list[str]:
    # -q: no start-up banner, so every line a process writes is a log line.
    return [sys.executable, "-m", "celery", "-q", "-A", "tasks.worker", *command]


@pytest.fixture()
def processes(app: Any, stripe_emulator: Any) -> Iterator[dict[str, ManagedProcess]]:
    env = {"LOG_LEVEL": "INFO", "STRIPE_API_BASE": stripe_emulator.url}
    schedule = tempfile.mkdtemp(prefix="billingos-beat-")
    worker = ManagedProcess(
        _celery(
            "worker", "--loglevel", "INFO", "-c", "2", "-n", f"logs-{uuid.uuid4().hex[:6]}@%h",
            "--without-gossip", "--without-mingle", "--without-heartbeat",
        ),
        env=env,
        name="worker",
    ).start()  # fmt: skip
    beat = ManagedProcess(
        _celery("beat", "--loglevel", "INFO", "--schedule", f"{schedule}/schedule"),
        env=env,
        name="beat",
    ).start()
    started: dict[str, ManagedProcess] = {"worker": worker, "beat": beat}
    try:
        worker.wait_for_log("ready.", timeout=60)
        beat.wait_for_log("Sending due task", timeout=60)
        started["web"] = start_web_server(workers=2, env={**env, "ACCESS_LOG": "1"})
        yield started
    finally:
        for process in started.values():
            process.stop()


# Celery prints this from its SIGTERM handler, where logging is not safe to call.
SIGNAL_HANDLER_OUTPUT = re.compile(r"worker: (Warm|Cold) shutdown \(MainProcess\)")


def _lines(process: ManagedProcess) -> list[dict[str, Any]]:
    parsed = []
    for line in process.log().splitlines():
        if not line.strip() or SIGNAL_HANDLER_OUTPUT.fullmatch(line):
            continue
        try:
            parsed.append(json.loads(line))
        except ValueError:
            pytest.fail(f"{process.name} wrote a line that is not JSON: {line!r}")
    return parsed


def _signed_post(server: WebServer, payload: bytes, request_id: str) -> requests.Response:
    header = stripe.WebhookSignature.generate_signature_header(payload.decode(), WEBHOOK_SECRET)
    return requests.post(
        f"{server.url}/stripe/webhooks",
        data=payload,
        headers={
            "Stripe-Signature": header,
            "Content-Type": "application/json",
            "X-Request-Id": request_id,
        },
        timeout=10,
    )


class TestLogLines:
    def test_every_process_logs_json_with_ids_and_no_secrets(
        self, app: Any, stripe_emulator: Any, processes: dict[str, ManagedProcess]
    ) -> None:
        web = processes["web"]
        with app.app_context():
            merchant = make_merchant()
            buyer = make_buyer(merchant, email=EMAIL)
            price = make_product(merchant, prices=[{"amount": 2900, "currency": "usd"}]).prices[0]
        headers = {**buyer.headers}

        def call(method: str, path: str, request_id: str, **kwargs: Any) -> requests.Response:
            return requests.request(
                method,
                f"{web.url}{path}",
                headers={**headers, "X-Request-Id": request_id, "Idempotency-Key": request_id},
                timeout=30,
                **kwargs,
            )

        outcomes: dict[str, dict[str, Any]] = {}
        client_secrets = []
        scenarios = (("purchase", "pm_card_visa"), ("decline", "pm_card_visa_chargeDeclined"))
        for name, card in scenarios:
            created = call(
                "POST",
                "/v1/checkout/create",
                f"req-{name}-create",
                json={"price_id": str(price.id)},
            )
            assert created.status_code in (201, 202), created.text
            assert created.headers["X-Request-Id"] == f"req-{name}-create"
            checkout_id = created.json()["id"]
            opened = wait_until(
                lambda cid=checkout_id, n=name: (
                    (body := call("GET", f"/v1/checkout/{cid}/status", f"req-{n}-poll").json())[
                        "status"
                    ]
                    == "open"
                    and body
                ),
                timeout=60,
                what="checkout to open",
            )
            client_secrets.append(opened["client_secret"])
            confirmed = call(
                "POST",
                f"/v1/checkout/{opened['client_secret']}/confirm",
                f"req-{name}-confirm",
                json={"payment_method_id": card},
            )
            assert confirmed.status_code == 202, confirmed.text
            outcomes[name] = wait_until(
                lambda cid=checkout_id, n=name: (
                    (body := call("GET", f"/v1/checkout/{cid}/status", f"req-{n}-poll").json())[
                        "status"
                    ]
                    in ("succeeded", "failed")
                    and body
                ),
                timeout=60,
                what="checkout to settle",
            )
        assert outcomes["purchase"]["status"] == "succeeded"
        assert outcomes["decline"]["status"] == "failed"

        # A card number sent where it does not belong is refused, and not logged either.
        refused = call(
            "POST",
            "/v1/checkout/create",
            "req-card-number",
            json={"price_id": str(price.id), "card": {"number": CARD_NUMBER, "email": EMAIL}},
        )
        assert refused.status_code == 422

        # Stripe's webhooks about the purchase (they carry the buyer's email and the client
        # secrets), signed and delivered to the web server.
        client = stripe_emulator.client()
        delivered = []
        for record in stripe_emulator.events():
            payload = client.v1.events.retrieve(record["id"]).last_response.body.encode()
            response = _signed_post(web, payload, f"req-webhook-{record['id']}")
            assert response.status_code == 200
            delivered.append(record["id"])
        assert delivered

        # A crash: a handled event whose payload breaks the handler's query. The database
        # error would quote its parameters (the email, a client secret) if it were allowed to.
        crash_id = f"evt_crash_{uuid.uuid4().hex[:12]}"
        crash = {
            "id": crash_id,
            "object": "event",
            "type": "payment_intent.succeeded",
            "created": 1_700_000_000,
            "api_version": "2026-10-28.endive",
            "livemode": False,
            "data": {"object": {"id": {"email": EMAIL, "client_secret": client_secrets[0]}}},
        }
        assert _signed_post(web, json.dumps(crash).encode(), "req-crash").status_code == 200

        def crash_logged() -> bool:
            return f"stripe event {crash_id} failed" in processes["worker"].log()

        wait_until(crash_logged, timeout=60, what="the crash to be logged")
        wait_until(
            lambda: processes["worker"].log().count('"stripe.process_event"') > len(delivered),
            timeout=60,
            what="the webhooks to be processed",
        )
        # Graceful stops (SIGTERM), as a platform stops processes; every line is written then.
        for process in processes.values():
            ManagedProcess.stop(process, timeout=30)

        lines = {name: _lines(process) for name, process in processes.items()}
        everything = "\n".join(process.log() for process in processes.values())

        # Nothing secret, personal or card-shaped, in any process.
        forbidden = [buyer.token, merchant.secret_key, EMAIL, CARD_NUMBER, WEBHOOK_SECRET]
        forbidden += client_secrets
        for secret in forbidden:
            assert secret not in everything, f"{secret[:12]}… reached a log"
        assert "_secret_" not in everything

        # Web: access lines carry the caller's request id.
        web_ids = {line.get("request_id") for line in lines["web"]}
        assert {"req-purchase-create", "req-decline-confirm", "req-crash"} <= web_ids

        # Worker: the tasks a request enqueued log under its request id, organization and
        # checkout; the event tasks under the event id.
        worker_lines = lines["worker"]
        confirm_lines = [
            line for line in worker_lines if line.get("request_id") == "req-purchase-confirm"
        ]
        assert confirm_lines, "no worker line carries the confirming request's id"
        assert all(line.get("task") == "checkout.confirm" for line in confirm_lines)
        assert any(
            line.get("organization_id") == str(merchant.id)
            and line.get("checkout_id")
            and line.get("task_id")
            for line in confirm_lines
        )
        crash_lines = [line for line in worker_lines if line.get("stripe_event_id") == crash_id]
        assert any(
            line["level"] == "ERROR"
            and line.get("request_id") == "req-crash"
            and "ProgrammingError" in line.get("exc_info", "")
            for line in crash_lines
        )

        # Beat: JSON too (every line parsed above), and it did log.
        assert any("Sending due task" in line["message"] for line in lines["beat"])


class TestRedaction:
    def _format(self, record: logging.LogRecord) -> dict[str, Any]:
        RedactingFilter().filter(record)
        return json.loads(JsonLineFormatter().format(record))  # type: ignore[no-any-return]

    def test_secrets_in_messages_extras_and_tracebacks_are_masked(self) -> None:
        try:
            raise ValueError(f"declined for {EMAIL} with pi_123_secret_abc")
        except ValueError:
            record = logging.LogRecord(
                "x", logging.ERROR, __file__, 1, "card %s token=%s", (CARD_NUMBER, "bos_st_abc"),
                sys.exc_info(),
            )  # fmt: skip
        record.customer = EMAIL
        record.data = {"args": [f"('{EMAIL}',)"]}
        line = self._format(record)
        text_of_line = json.dumps(line)
        for secret in (EMAIL, CARD_NUMBER, "bos_st_abc", "pi_123_secret_abc"):
            assert secret not in text_of_line
        assert "ValueError" in line["exc_info"]

    def test_request_ids_from_callers_must_be_short_tokens(self) -> None:
        assert sane_request_id("abc-123.x:y_z") == "abc-123.x:y_z"
        for bad in ("", "a" * 200, "two words", 'quote"', "new\nline", None):
            generated = sane_request_id(bad)
            assert generated != bad and len(generated) == 32

    def test_bound_ids_are_on_the_line(self) -> None:
        record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", None, None)
        from app.logging_setup import ContextFilter

        with bound(request_id="r1", checkout_id="c1", stripe_event_id="evt_1"):
            ContextFilter().filter(record)
        line = self._format(record)
        assert (line["request_id"], line["checkout_id"], line["stripe_event_id"]) == (
            "r1",
            "c1",
            "evt_1",
        )


class TestDatabaseErrors:
    def test_sqlalchemy_errors_do_not_quote_bound_parameters(self, app_context: None) -> None:
        with pytest.raises(DBAPIError) as raised:
            db.session.execute(text("SELECT 1 / 0 WHERE :value IS NOT NULL"), {"value": EMAIL})
        db.session.rollback()
        assert EMAIL not in str(raised.value)
        assert "hidden due to hide_parameters" in str(raised.value)


class TestRequestIdHeader:
    def test_the_request_id_is_echoed_or_generated(self, client: Any) -> None:
        assert (
            client.get("/healthz", headers={"X-Request-Id": "abc-1"}).headers["X-Request-Id"]
            == "abc-1"
        )
        generated = client.get("/healthz", headers={"X-Request-Id": "bad id!"}).headers[
            "X-Request-Id"
        ]
        assert generated != "bad id!" and len(generated) == 32
        # Also on an error answer.
        assert client.get("/no/such/route").headers["X-Request-Id"]

    def test_ids_bound_in_a_request_do_not_outlive_it(self, client: Any) -> None:
        # The test client runs requests in this thread: a leftover id would tag whatever this
        # thread logs or enqueues next.
        client.get("/healthz", headers={"X-Request-Id": "short-lived"})
        assert "request_id" not in current_context()
