"""The real web server (gunicorn, as the Procfile runs it): request limits and the TLS signal.

gunicorn bounds request lines and headers, and the app still answers long URLs itself; HSTS is
sent only when a trusted proxy says the request came over TLS.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from tests.support.server import WebServer, start_web_server


@pytest.fixture(scope="module")
def server(database_url: str) -> Iterator[WebServer]:
    web = start_web_server(workers=1, env={"ACCESS_LOG": "0"})
    yield web
    web.stop()


def _raw(server: WebServer, request: bytes) -> tuple[int, bytes]:
    # A raw socket: HTTP clients refuse to send what these tests send.
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as conn:
        conn.sendall(request)
        response = b""
        while b"\r\n\r\n" not in response:
            chunk = conn.recv(65536)
            if not chunk:
                break
            response += chunk
    status = int(response.split(b" ", 2)[1])
    return status, response


def _get(path: str, headers: str = "") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: x\r\n{headers}Connection: close\r\n\r\n".encode()


def test_a_long_url_within_gunicorns_limit_is_a_problem_from_the_app(server):
    status, response = _raw(server, _get("/healthz?x=" + "a" * 8100))
    assert status == 414
    assert b"application/problem+json" in response


def test_a_request_line_past_the_limit_never_reaches_the_app(server):
    status, response = _raw(server, _get("/healthz?x=" + "a" * 100_000))
    assert status in (400, 414)
    # gunicorn's own answer: the app would have said problem+json.
    assert b"application/problem+json" not in response


def test_an_oversized_header_is_refused(server):
    status, _ = _raw(server, _get("/healthz", "X-Big: " + "b" * 10_000 + "\r\n"))
    assert status in (400, 431)


def test_too_many_headers_are_refused(server):
    many = "".join(f"X-H{i}: v\r\n" for i in range(100))
    status, _ = _raw(server, _get("/healthz", many))
    assert status in (400, 431)
    assert _raw(server, _get("/healthz", "X-One: v\r\n"))[0] == 200


def _forwarded_https() -> bytes:
    return _get("/healthz", "X-Forwarded-Proto: https\r\n")


def test_hsts_when_a_trusted_proxy_says_tls(server):
    # The test server's default FORWARDED_ALLOW_IPS trusts 127.0.0.1, where this test connects from.
    _, response = _raw(server, _forwarded_https())
    assert b"Strict-Transport-Security: max-age=31536000" in response
    _, plain = _raw(server, _get("/healthz"))
    assert b"Strict-Transport-Security" not in plain


def test_no_hsts_when_an_untrusted_client_claims_tls(database_url):
    web = start_web_server(workers=1, env={"ACCESS_LOG": "0", "FORWARDED_ALLOW_IPS": "10.9.9.9"})
    try:
        status, response = _raw(web, _forwarded_https())
    finally:
        web.stop()
    assert b"Strict-Transport-Security" not in response
    assert status in (200, 400)  # gunicorn may also refuse the untrusted header outright
