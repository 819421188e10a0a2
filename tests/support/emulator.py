"""Run the Stripe emulator as a subprocess for tests, and drive its control API.

Typical use (see tests/emulator/conftest.py for fixtures)::

    emu = EmulatorProcess().start()          # python -m stripe_emulator on a free port
    client = emu.client()                    # stripe.StripeClient pointed at it
    pi = client.v1.payment_intents.create(params={"amount": 1000, "currency": "usd"})
    emu.requests(path="/v1/payment_intents")  # what the emulator received
    emu.reset()                              # forget all state between tests
    emu.stop()

Control calls use plain HTTP (urllib); the Stripe API is only ever used through the real
``stripe`` library. Nothing here imports the emulator package itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import Any

import stripe

from tests.support.processes import free_port

# Creation parameters of a Payment/SetupIntent that a test confirms server-side with a card:
# Stripe refuses to confirm an intent that allows redirects unless a `return_url` comes along.
CARDS_ONLY: dict[str, Any] = {
    "automatic_payment_methods": {"enabled": True, "allow_redirects": "never"}
}

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TEST_API_KEY = "sk_test_emulator"


class EmulatorError(RuntimeError):
    """A control-API call failed."""


class EmulatorExited(EmulatorError):
    """The emulator process ended before it answered."""


class EmulatorProcess:
    """A ``python -m stripe_emulator`` subprocess on a free loopback port.

    ``extra_args`` are passed to the emulator CLI, e.g.
    ``["--webhook-retry-delays", "0.05,0.1", "--webhook-timeout", "1"]``.
    """

    def __init__(
        self,
        port: int | None = None,
        extra_args: list[str] | None = None,
        python: str = sys.executable,
        cwd: str = ROOT,
    ) -> None:
        self._own_port = port is None
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.extra_args = list(extra_args or [])
        self.python = python
        self.cwd = cwd
        self.proc: subprocess.Popen | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self, timeout: float = 15.0) -> EmulatorProcess:
        for attempt in range(1, 4):
            try:
                return self._start(timeout)
            except EmulatorExited:
                # Most likely another process (a parallel test run) bound our free port first.
                if attempt == 3 or not self._own_port:
                    raise
                self.port = free_port()
                self.url = f"http://127.0.0.1:{self.port}"
        raise AssertionError("unreachable")

    def _start(self, timeout: float) -> EmulatorProcess:
        cmd = [
            self.python,
            "-m",
            "stripe_emulator",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            *self.extra_args,
        ]
        self.proc = subprocess.Popen(cmd, cwd=self.cwd, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise EmulatorExited(f"emulator exited with {self.proc.returncode}")
            try:
                self._call("GET", "/_emulator/health", timeout=0.5)
                return self
            except (OSError, EmulatorError):
                time.sleep(0.05)
        self.stop()
        raise EmulatorError(f"emulator did not answer on {self.url} within {timeout}s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __enter__(self) -> EmulatorProcess:
        return self.start() if self.proc is None else self

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ Stripe client
    def client(
        self,
        api_key: str = TEST_API_KEY,
        max_network_retries: int | None = None,
        timeout: float | tuple[float, float] = 10.0,
        **kwargs: Any,
    ) -> stripe.StripeClient:
        """A ``stripe.StripeClient`` talking to this emulator (keep-alive RequestsClient)."""
        return stripe.StripeClient(
            api_key,
            base_addresses={"api": self.url},
            max_network_retries=max_network_retries,
            http_client=stripe.RequestsClient(timeout=timeout),
            **kwargs,
        )

    # ------------------------------------------------------------------ control API
    def _call(self, method: str, path: str, body: dict | None = None, timeout: float = 10.0) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(  # noqa: S310
            self.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise EmulatorError(f"{method} {path}: {exc.code} {exc.read()[:500]!r}") from None

    def reset(self) -> None:
        """Forget all objects, events, requests, faults, chaos and endpoints (not CLI ones)."""
        self._call("POST", "/_emulator/reset", {})

    def requests(self, path: str | None = None, method: str | None = None) -> list[dict]:
        """Requests received by the Stripe API (``path`` is a prefix filter)."""
        q = "&".join(f"{k}={v}" for k, v in (("path", path), ("method", method)) if v)
        return self._call("GET", "/_emulator/requests" + (f"?{q}" if q else ""))["data"]

    def events(self, type: str | None = None) -> list[dict]:
        """Emitted events (oldest first) with their delivery attempts per endpoint."""
        return self._call("GET", "/_emulator/events" + (f"?type={type}" if type else ""))["data"]

    def set_faults(
        self,
        kind: str,
        rate: float = 1.0,
        paths: list[str] | None = None,
        methods: list[str] | None = None,
        count: int | None = None,
        timeout_seconds: float | None = None,
    ) -> dict:
        """Fail matching /v1 requests: kind is error_500 | rate_limit | timeout | reset.

        ``count`` limits the rule to the next N matching requests; ``timeout_seconds`` is how
        long a ``timeout`` fault holds the connection before closing it unanswered.
        """
        rule: dict[str, Any] = {"kind": kind, "rate": rate}
        if paths is not None:
            rule["paths"] = paths
        if methods is not None:
            rule["methods"] = methods
        if count is not None:
            rule["count"] = count
        if timeout_seconds is not None:
            rule["timeout_seconds"] = timeout_seconds
        return self._call("POST", "/_emulator/faults", rule)

    def clear_faults(self) -> None:
        self._call("DELETE", "/_emulator/faults")

    def webhook_chaos(
        self,
        duplicate_rate: float | None = None,
        shuffle: bool | None = None,
        delay_ms: float | None = None,
        enabled: bool | None = None,
    ) -> dict:
        """Duplicate / reorder / delay deliveries; ``enabled=False`` pauses delivery."""
        body = {
            k: v
            for k, v in (
                ("duplicate_rate", duplicate_rate),
                ("shuffle", shuffle),
                ("delay_ms", delay_ms),
                ("enabled", enabled),
            )
            if v is not None
        }
        return self._call("POST", "/_emulator/webhook_chaos", body)

    def webhook_settings(self, **settings: Any) -> dict:
        """retry_delays=[s, ...], timeout_seconds=s, concurrency=n, enabled=bool."""
        return self._call("POST", "/_emulator/webhook_settings", settings)

    def pause_webhooks(self) -> None:
        self._call("POST", "/_emulator/webhooks/pause", {})

    def resume_webhooks(self) -> None:
        self._call("POST", "/_emulator/webhooks/resume", {})

    def register_webhook(
        self,
        url: str,
        secret: str | None = None,
        enabled_events: list[str] | None = None,
        api_version: str | None = None,
    ) -> dict:
        body: dict[str, Any] = {"url": url}
        if api_version:
            body["api_version"] = api_version
        if secret:
            body["secret"] = secret
        if enabled_events:
            body["enabled_events"] = enabled_events
        return self._call("POST", "/_emulator/webhook_endpoints", body)

    def roll_webhook_secret(
        self, endpoint_id: str, secret: str | None = None, expires_in: float = 86400
    ) -> dict:
        """Stripe's "roll secret": the old secret keeps signing for `expires_in` seconds."""
        body: dict[str, Any] = {"expires_in": expires_in}
        if secret:
            body["secret"] = secret
        return self._call("POST", f"/_emulator/webhook_endpoints/{endpoint_id}/roll", body)

    def close_dispute(self, dispute_id: str, outcome: str) -> dict:
        """The card network decides a dispute: "won" or "lost"."""
        return self._call("POST", f"/_emulator/disputes/{dispute_id}/close", {"outcome": outcome})

    def authenticate(self, kind: str, obj_id: str, outcome: str = "succeed") -> dict:
        """Finish 3-D Secure: kind is "payment_intent(s)" or "setup_intent(s)"."""
        kind = kind if kind.endswith("s") else kind + "s"
        return self._call("POST", f"/_emulator/{kind}/{obj_id}/authenticate", {"outcome": outcome})

    def advance_clock(self, seconds: float) -> dict:
        """Move the emulator's clock forward and run what Stripe would do by then."""
        return self._call("POST", "/_emulator/clock/advance", {"seconds": seconds})

    def now(self) -> int:
        return self._call("GET", "/_emulator/clock")["now"]

    def set_payment_method(self, subscription_id: str, payment_method: str) -> dict:
        """Make future charges of a subscription use ``payment_method`` (magic ids allowed)."""
        return self._call(
            "POST",
            f"/_emulator/subscriptions/{subscription_id}/payment_method",
            {"payment_method": payment_method},
        )


class WebhookReceiver:
    """A small local HTTP server that records webhook deliveries (for tests).

    ``fail_first`` answers 500 to that many deliveries first; ``status_for`` may be a callable
    ``(body: dict) -> int`` choosing the status per delivery. ``received`` lists
    ``{"headers", "payload" (str), "event" (dict), "status"}`` in arrival order.
    """

    def __init__(self, fail_first: int = 0, status_for=None) -> None:
        import http.server
        import threading

        self.received: list[dict[str, Any]] = []
        self.fail_first = fail_first
        self.status_for = status_for
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                payload = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                text = payload.decode()
                event = json.loads(text)
                with receiver.lock:
                    failing = receiver.fail_first > 0
                    if failing:
                        receiver.fail_first -= 1
                if failing:
                    status = 500
                elif receiver.status_for is not None:
                    status = receiver.status_for(event)  # may be slow: outside the lock
                else:
                    status = 200
                with receiver.lock:
                    receiver.received.append(
                        {
                            "headers": dict(self.headers),
                            "payload": text,
                            "event": event,
                            "status": status,
                        }
                    )
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/webhooks"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def ok(self) -> list[dict[str, Any]]:
        """Deliveries answered 2xx."""
        with self.lock:
            return [r for r in self.received if 200 <= r["status"] < 300]

    def wait_for(self, predicate, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Wait until ``predicate(received)`` is true; returns the received list."""
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                snapshot = list(self.received)
            if predicate(snapshot) or time.monotonic() > deadline:
                return snapshot
            time.sleep(0.02)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
