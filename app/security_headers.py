"""Security headers on every response, errors included.

Nothing BillingOS serves is meant to be framed (a framed API page is only ever clickjacking), so
the default forbids it; a page that must be framed elsewhere (an embeddable checkout) declares
its own frame rule with `allow_framing`, which the default then leaves alone.

HSTS goes only on responses to requests that arrived over TLS. Behind a proxy that terminates
TLS, gunicorn takes `X-Forwarded-Proto` into the request's scheme only from the addresses in
FORWARDED_ALLOW_IPS, so a client cannot fake it.
"""

from __future__ import annotations

from flask import Flask, Response, request

HSTS = "max-age=31536000"
_NO_FRAMING = "frame-ancestors 'none'"
_CSP = "Content-Security-Policy"


def allow_framing(response: Response, *origins: str) -> Response:
    """Let `origins` (e.g. "https://shop.example") frame this one response."""
    response.headers[_CSP] = "frame-ancestors " + (" ".join(origins) or "'none'")
    response.headers.pop("X-Frame-Options", None)
    return response


def default_headers(secure: bool) -> list[tuple[str, str]]:
    """The headers `register_security_headers` gives a response that sets none of its own,
    for a response built below Flask (app/webhooks/ingest.py)."""
    headers = [
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "no-referrer"),
        (_CSP, _NO_FRAMING),
        ("X-Frame-Options", "DENY"),
    ]
    return [*headers, ("Strict-Transport-Security", HSTS)] if secure else headers


def register_security_headers(app: Flask) -> None:
    @app.after_request
    def _secure(response: Response) -> Response:
        headers = response.headers
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "no-referrer")
        if _CSP not in headers:
            headers[_CSP] = _NO_FRAMING
            # For browsers that predate CSP's frame-ancestors.
            headers["X-Frame-Options"] = "DENY"
        if request.is_secure:
            headers.setdefault("Strict-Transport-Security", HSTS)
        return response
