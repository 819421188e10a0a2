"""A reverse proxy that adds Stripe's network latency in front of the emulator.

The emulator answers in about a millisecond; Stripe takes a few hundred. Code that holds a row
lock across a Stripe call looks fine at 1 ms and deadlocks at 200 ms, so concurrency tests send
the app's Stripe traffic (`STRIPE_API_BASE`) through this proxy. Loopback only.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests

# Hop-by-hop headers (RFC 9110 §7.6.1) and those the proxy recomputes.
_SKIPPED_HEADERS = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "te", "trailer"}
)


class LatencyProxy:
    def __init__(self, upstream: str, delay_seconds: float) -> None:
        self.upstream = upstream.rstrip("/")
        self.delay_seconds = delay_seconds
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {
                    k: v for k, v in self.headers.items() if k.lower() not in _SKIPPED_HEADERS
                }
                time.sleep(proxy.delay_seconds)
                answer = requests.request(
                    self.command,
                    proxy.upstream + self.path,
                    data=body,
                    headers=headers,
                    timeout=60,
                    allow_redirects=False,
                )
                self.send_response(answer.status_code)
                for name, value in answer.headers.items():
                    if name.lower() not in _SKIPPED_HEADERS | {"content-encoding"}:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            do_GET = do_POST = do_DELETE = _forward

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> LatencyProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
