"""Checkout scenarios: the API in-process, a real Celery worker, the Stripe emulator over HTTP."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import update

from app.db import db
from models import CheckoutSession
from models.base import utcnow
from tests.factories import Buyer
from tests.support.billing import Catalog, catalog  # noqa: F401 (fixture)
from tests.support.processes import wait_until

__all__ = ["Catalog", "backdate", "create", "fetch", "wait_until"]


@pytest.fixture()
def worker(
    request: pytest.FixtureRequest,
    stripe_emulator: Any,
    app: Any,
    start_worker: Callable[..., Any],
) -> Iterator[Any]:
    """A real worker talking to the (freshly reset) emulator; its log is shown on failure."""
    process = start_worker(concurrency=2)
    yield process
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print("---- worker log ----\n" + process.log()[-6000:])


def fetch(checkout_id: Any) -> CheckoutSession:
    """The checkout as committed right now."""
    db.session.remove()
    checkout = db.session.get(CheckoutSession, checkout_id)
    assert checkout is not None
    return checkout


def create(
    client: FlaskClient,
    buyer: Buyer,
    price_id: Any,
    *,
    wait: int | None = None,
    headers: dict[str, str] | None = None,
    **body: Any,
) -> Any:
    all_headers = {**buyer.headers, **(headers or {})}
    if wait is not None:
        all_headers["Prefer"] = f"wait={wait}"
    return client.post(
        "/v1/checkout/create", json={"price_id": str(price_id), **body}, headers=all_headers
    )


def open_checkout(client: FlaskClient, buyer: Buyer, price_id: Any) -> dict[str, Any]:
    """A checkout that is `open` (waits for `checkout.prepare`)."""
    response = create(client, buyer, price_id, wait=10)
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["status"] == "open" and body["client_secret"]
    return body  # type: ignore[no-any-return]


def confirm(client: FlaskClient, buyer: Buyer, client_secret: str, card: str) -> Any:
    return client.post(
        f"/v1/checkout/{client_secret}/confirm",
        json={"payment_method_id": card},
        headers=buyer.headers,
    )


def status_of(client: FlaskClient, buyer: Buyer, checkout_id: str) -> dict[str, Any]:
    response = client.get(f"/v1/checkout/{checkout_id}/status", headers=buyer.headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()  # type: ignore[no-any-return]


def settle(
    client: FlaskClient, buyer: Buyer, checkout_id: str, timeout: float = 30.0
) -> dict[str, Any]:
    """Wait until the checkout leaves `processing`; return its status body."""

    def settled() -> dict[str, Any] | None:
        body = status_of(client, buyer, checkout_id)
        return None if body["status"] in ("pending", "processing") else body

    return wait_until(settled, timeout=timeout, what=f"checkout {checkout_id} to settle")  # type: ignore[no-any-return]


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Any:
    # Lets the `worker` fixture see whether the test failed (and print the worker's log).
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


def backdate(checkout_id: Any) -> None:
    """Make a checkout overdue (its hour is up)."""
    db.session.remove()
    db.session.execute(
        update(CheckoutSession)
        .where(CheckoutSession.id == checkout_id)
        .values(expires_at=utcnow() - timedelta(seconds=1))
    )
    db.session.commit()
