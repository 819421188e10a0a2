"""Deliver the emulator's events to our webhook endpoint and process them, deterministically.

The emulator delivers webhooks on its own schedule; a test that asserts what an event *does*
wants it delivered now, in the order Stripe emitted it. `StripeEventRelay.deliver()` fetches
every event not yet relayed (oldest first, through the real `stripe` client), signs it with the
app's webhook secret, POSTs it to `/stripe/webhooks` (verification, the inbox) and runs the
stored event through `process_stored_event` — the function the Celery task runs.
"""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient

from app.webhooks.service import process_stored_event
from tests.support.emulator import EmulatorProcess
from tests.support.stripe_webhooks import signature_header

WEBHOOK_SECRET = "whsec_test_billingos"


class StripeEventRelay:
    def __init__(self, emulator: EmulatorProcess, client: FlaskClient) -> None:
        self.emulator = emulator
        self.stripe = emulator.client()
        self.client = client
        self.relayed: list[str] = []

    def pending(self) -> list[dict[str, Any]]:
        seen = set(self.relayed)
        return [e for e in self.emulator.events() if e["id"] not in seen]

    def deliver(self) -> list[str]:
        """Relay and process every new event; returns their types in order."""
        types: list[str] = []
        for record in self.pending():
            # The body exactly as the API returned it (Stripe signs the bytes it sends).
            payload = self.stripe.v1.events.retrieve(record["id"]).last_response.body
            header = signature_header(payload, WEBHOOK_SECRET)
            response = self.client.post(
                "/stripe/webhooks",
                data=payload,
                headers={"Stripe-Signature": header, "Content-Type": "application/json"},
            )
            assert response.status_code == 200, response.get_json()
            process_stored_event(record["id"])
            self.relayed.append(record["id"])
            types.append(record["type"])
        return types

    def skip(self) -> None:
        """Forget the events emitted so far (they described setup the test does not assert)."""
        self.relayed.extend(e["id"] for e in self.pending())
