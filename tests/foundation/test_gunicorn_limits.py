"""The real web server bounds request lines and headers, and the app answers long URLs itself."""

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
