"""Card data stays between the buyer's browser and Stripe: none of it reaches our logs or
our database from the checkout page, and the client secret never reaches our logs."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import text

from app.db import db
from tests.browser.conftest import TEST_CVC, THREE_D_SECURE, VISA, Checkout
from tests.support.billing import Catalog


def _everything_stored() -> str:
    """Every row of every table of our database, as text."""
    db.session.remove()
    tables = db.session.execute(
        text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    ).scalars()
    dump = [
        str(row[0])
        for table in list(tables)
        for row in db.session.execute(text(f'SELECT t::text FROM "{table}" AS t'))
    ]
    return "\n".join(dump)


def test_no_card_number_cvc_or_client_secret_reaches_our_logs_or_database(
    open_in_browser: Any, catalog: Catalog, worker: Any
) -> None:
    paid: Checkout = open_in_browser(catalog.one_time.id)
    paid.pay(VISA)
    paid.wait_for_message("CHECKOUT_SUCCESS")
    challenged: Checkout = open_in_browser(catalog.monthly.id)
    challenged.pay(THREE_D_SECURE)
    challenged.wait_for_message("3DS_REQUIRED")
    challenged.frame.get_by_role("button", name="Complete authentication").click()
    challenged.wait_for_message("CHECKOUT_SUCCESS")

    logs = paid.server.log() + worker.log()
    stored = _everything_stored()
    assert "GET /embed/checkout/" in logs  # the access log is there to be searched
    numbers = [n.replace(" ", "") for n in (VISA, THREE_D_SECURE)]
    for haystack, where in ((logs, "logs"), (stored, "database")):
        for number in numbers:
            assert number not in haystack, f"card number in our {where}"
            at = haystack.find(number[-8:])
            assert at < 0, f"card digits in our {where}: {haystack[max(0, at - 200) : at + 50]}"
        assert not re.search(rf"\b{TEST_CVC}\b", haystack), f"CVC in our {where}"
    for checkout in (paid, challenged):
        assert checkout.client_secret not in logs
        assert checkout.client_secret.partition("_secret_")[2] not in logs
