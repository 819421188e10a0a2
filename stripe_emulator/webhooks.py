"""Asynchronous, signed, retried webhook delivery (with optional chaos), on the server's loop."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import random
import secrets
import ssl
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from .core import EventRecord

DEFAULT_RETRY_DELAYS = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0)


# The API version that moved an invoice's `subscription` to `parent.subscription_details`.
BASIL = "2025-03-31"


def render_for_version(payload: str, api_version: str | None) -> str:
    """An event as an endpoint pinned to `api_version` receives it.

    Stripe renders each event in the endpoint's API version. The emulator serves one shape,
    so an older endpoint gets that shape with its `api_version`, and — the difference that
    matters most — an invoice from before basil: a top-level `subscription`, no `parent`.
    """
    event = json.loads(payload)
    if not api_version or api_version == event["api_version"]:
        return payload
    event["api_version"] = api_version
    obj = event["data"]["object"]
    if api_version[:10] < BASIL and obj.get("object") == "invoice":
        details = (obj.pop("parent", None) or {}).get("subscription_details") or {}
        obj["subscription"] = details.get("subscription")
    return json.dumps(event)


# Stripe keeps a rolled secret valid for at most this long (24 h).
MAX_ROLL_EXPIRY_SECONDS = 24 * 3600


def sign(payload: str, secret: str | list[str], timestamp: int | None = None) -> str:
    """The ``Stripe-Signature`` header value for ``payload``: one ``v1`` per active secret."""
    t = int(time.time()) if timestamp is None else timestamp
    macs = [
        hmac.new(key.encode(), f"{t}.{payload}".encode(), hashlib.sha256).hexdigest()
        for key in ([secret] if isinstance(secret, str) else secret)
    ]
    return f"t={t}," + ",".join(f"v1={mac}" for mac in macs)


@dataclass
class Endpoint:
    id: str
    url: str
    secret: str
    enabled_events: list[str]
    permanent: bool = False  # registered on the command line: survives /_emulator/reset
    # After a roll, the old secret still signs (a second `v1=`) until it expires (wall clock).
    previous_secret: str | None = None
    previous_expires_at: float | None = None
    # The endpoint's API version (Stripe renders its events in it); None: the emulator's.
    api_version: str | None = None

    def signing_secrets(self) -> list[str]:
        expires = self.previous_expires_at
        if self.previous_secret and expires is not None and time.time() < expires:
            return [self.secret, self.previous_secret]
        return [self.secret]

    def roll(self, secret: str | None, expires_in: float) -> None:
        """Stripe's "roll secret": a new secret now, the old one kept for `expires_in` s."""
        self.previous_secret = self.secret
        self.previous_expires_at = time.time() + min(max(expires_in, 0), MAX_ROLL_EXPIRY_SECONDS)
        self.secret = secret or "whsec_" + secrets.token_hex(24)

    def wants(self, etype: str) -> bool:
        for pat in self.enabled_events:
            if pat == "*" or pat == etype or (pat.endswith(".*") and etype.startswith(pat[:-1])):
                return True
        return False

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "url": self.url,
            "secret": self.secret,
            "enabled_events": self.enabled_events,
            "permanent": self.permanent,
            "previous_secret_expires_at": self.previous_expires_at,
            "api_version": self.api_version,
        }


@dataclass
class Delivery:
    record: EventRecord
    endpoint: Endpoint
    duplicate: bool = False
    status: str = "pending"  # pending | succeeded | failed
    attempts: list[dict[str, Any]] = field(default_factory=list)
    generation: int = 0

    def public(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint.id,
            "url": self.endpoint.url,
            "duplicate": self.duplicate,
            "status": self.status,
            "attempts": self.attempts,
        }


class Dispatcher:
    def __init__(
        self,
        retry_delays: Iterable[float] = DEFAULT_RETRY_DELAYS,
        timeout: float = 10.0,
        concurrency: int = 1,
    ) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        # the command-line values, restored by reset()
        self.default_retry_delays = list(retry_delays)
        self.default_timeout = timeout
        self.default_concurrency = concurrency
        self.endpoints: list[Endpoint] = []
        self.generation = 0
        self.queues: dict[str, asyncio.Queue] = {}
        self.workers: list[asyncio.Task] = []
        self.paused: list[Delivery] = []
        self.rng = random.Random()
        self.reset(keep_permanent=True)

    # ------------------------------------------------------------------ configuration
    def reset(self, keep_permanent: bool = True) -> None:
        self.generation += 1
        for task in self.workers:
            task.cancel()
        self.workers = []
        self.queues = {}
        self.paused = []
        self.endpoints = [e for e in self.endpoints if e.permanent and keep_permanent]
        self.retry_delays = list(self.default_retry_delays)
        self.timeout = float(self.default_timeout)
        self.concurrency = int(self.default_concurrency)
        self.enabled = True
        self.chaos = {
            "duplicate_rate": 0.0,
            "shuffle": False,
            "delay_ms": 0,
            "shuffle_window_ms": 250,
        }

    def add_endpoint(
        self,
        url: str,
        secret: str | None = None,
        enabled_events: list[str] | None = None,
        permanent: bool = False,
        api_version: str | None = None,
    ) -> Endpoint:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"invalid webhook url: {url!r}")
        ep = Endpoint(
            id="we_" + secrets.token_hex(12),
            url=url,
            secret=secret or "whsec_" + secrets.token_hex(24),
            enabled_events=list(enabled_events or ["*"]),
            permanent=permanent,
            api_version=api_version,
        )
        self.endpoints.append(ep)
        return ep

    def remove_endpoints(self, endpoint_id: str | None = None) -> None:
        self.endpoints = [
            e for e in self.endpoints if endpoint_id is not None and e.id != endpoint_id
        ]

    def configure(self, body: dict[str, Any]) -> dict[str, Any]:
        if "retry_delays" in body:
            self.retry_delays = [float(x) for x in body["retry_delays"]]
        if "timeout_seconds" in body:
            self.timeout = float(body["timeout_seconds"])
        if "concurrency" in body:
            self.concurrency = max(1, int(body["concurrency"]))
        if "enabled" in body:
            self.set_enabled(bool(body["enabled"]))
        return self.settings()

    def settings(self) -> dict[str, Any]:
        return {
            "retry_delays": self.retry_delays,
            "timeout_seconds": self.timeout,
            "concurrency": self.concurrency,
            "enabled": self.enabled,
            "paused_deliveries": len(self.paused),
        }

    def set_chaos(self, body: dict[str, Any]) -> dict[str, Any]:
        for key in ("duplicate_rate", "delay_ms", "shuffle_window_ms"):
            if key in body:
                self.chaos[key] = float(body[key])
        if "shuffle" in body:
            self.chaos["shuffle"] = bool(body["shuffle"])
        if "enabled" in body:
            self.set_enabled(bool(body["enabled"]))
        return dict(self.chaos, enabled=self.enabled)

    def clear_chaos(self) -> None:
        self.chaos.update(duplicate_rate=0.0, shuffle=False, delay_ms=0)

    def set_enabled(self, enabled: bool) -> None:
        self.enabled = enabled
        if enabled:
            held, self.paused = self.paused, []
            for d in held:
                self._enqueue(d)

    # ------------------------------------------------------------------ delivery
    def _event_loop(self) -> asyncio.AbstractEventLoop:
        if self.loop is None:
            raise RuntimeError("the dispatcher is not attached to the server's event loop")
        return self.loop

    def on_event(self, record: EventRecord) -> int:
        """Called by the engine for each new event; returns the number of endpoints."""
        n = 0
        for ep in self.endpoints:
            if not ep.wants(record.type):
                continue
            n += 1
            self._schedule(Delivery(record, ep, generation=self.generation), first=True)
            if self.chaos["duplicate_rate"] and self.rng.random() < self.chaos["duplicate_rate"]:
                self._schedule(
                    Delivery(record, ep, duplicate=True, generation=self.generation), first=True
                )
        return n

    def _schedule(self, d: Delivery, first: bool = False, delay: float = 0.0) -> None:
        if first:
            d.record.deliveries.append(d)
            delay = self.chaos["delay_ms"] / 1000.0
            if self.chaos["shuffle"]:
                delay += self.rng.uniform(0, self.chaos["shuffle_window_ms"] / 1000.0)
        # always deferred: an API request never waits for delivery
        self._event_loop().call_later(delay, self._enqueue, d)

    def _enqueue(self, d: Delivery) -> None:
        if d.generation != self.generation:
            return
        if not self.enabled:
            self.paused.append(d)
            return
        q = self.queues.get(d.endpoint.id)
        if q is None:
            q = self.queues[d.endpoint.id] = asyncio.Queue()
            for _ in range(self.concurrency):
                self.workers.append(self._event_loop().create_task(self._worker(q)))
        q.put_nowait(d)

    async def _worker(self, q: asyncio.Queue) -> None:
        while True:
            d = await q.get()
            if d.generation != self.generation:
                continue
            if not self.enabled:
                self.paused.append(d)
                continue
            try:
                await self._attempt(d)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # never let a worker die
                d.attempts.append({"at": time.time(), "status": None, "error": repr(exc)})

    async def _attempt(self, d: Delivery) -> None:
        payload = render_for_version(d.record.payload, d.endpoint.api_version)
        header = sign(payload, d.endpoint.signing_secrets())
        started = time.time()
        status, error = None, None
        try:
            status = await self._post(d.endpoint.url, payload.encode(), header)
        except TimeoutError:
            error = "timeout"
        except OSError as exc:
            error = f"{type(exc).__name__}: {exc}"
        d.attempts.append(
            {
                "at": started,
                "status": status,
                "error": error,
                "duration_ms": round((time.time() - started) * 1000, 1),
            }
        )
        if d.generation != self.generation:
            return
        if status is not None and 200 <= status < 300:
            d.status = "succeeded"
            return
        n = len(d.attempts)
        if n <= len(self.retry_delays):
            self._event_loop().call_later(self.retry_delays[n - 1], self._enqueue, d)
        else:
            d.status = "failed"

    async def _post(self, url: str, body: bytes, signature: str) -> int:
        u = urlsplit(url)
        https = u.scheme == "https"
        port = u.port or (443 if https else 80)
        ctx = ssl.create_default_context() if https else None
        path = (u.path or "/") + (f"?{u.query}" if u.query else "")

        async def go() -> int:
            reader, writer = await asyncio.open_connection(u.hostname, port, ssl=ctx)
            try:
                head = (
                    f"POST {path} HTTP/1.1\r\nHost: {u.netloc}\r\n"
                    "User-Agent: Stripe/1.0 (+https://stripe.com/docs/webhooks)\r\n"
                    "Content-Type: application/json; charset=utf-8\r\n"
                    "Cache-Control: no-cache\r\nAccept: */*; q=0.5, application/xml\r\n"
                    f"Stripe-Signature: {signature}\r\nContent-Length: {len(body)}\r\n"
                    "Connection: close\r\n\r\n"
                )
                writer.write(head.encode() + body)
                await writer.drain()
                line = await reader.readline()
                parts = line.decode("latin-1").split()
                if len(parts) < 2 or not parts[1].isdigit():
                    raise ConnectionError(f"bad response status line {line[:80]!r}")
                # read the rest of the response so the receiver is not cut off mid-write
                length = None
                while True:
                    hline = await reader.readline()
                    if hline in (b"\r\n", b"\n", b""):
                        break
                    name, _, value = hline.decode("latin-1").partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value.strip() or 0)
                if length is not None:
                    await reader.readexactly(length)
                else:
                    while await reader.read(65536):
                        pass
                return int(parts[1])
            finally:
                writer.close()

        return await asyncio.wait_for(go(), self.timeout)
