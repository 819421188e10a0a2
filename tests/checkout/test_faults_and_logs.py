"""Network failures between us and Stripe, and secrets in logs."""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

import pytest

from tests.checkout.conftest import Catalog, confirm, create, fetch, status_of, wait_until
from tests.factories import Buyer


def _open(client: Any, buyer: Buyer, checkout_id: str) -> dict[str, Any]:
    return wait_until(  # type: ignore[no-any-return]
        lambda: (body := status_of(client, buyer, checkout_id))["status"] == "open" and body,
        timeout=90,
        what=f"checkout {checkout_id} to open",
    )


class TestNetworkFaults:
    @pytest.mark.parametrize("kind", ["error_500", "timeout", "reset"])
    def test_every_checkout_converges_with_one_intent_each(
        self, client: Any, buyer: Buyer, catalog: Catalog, worker: Any, stripe_emulator: Any,
        kind: str,
    ) -> None:  # fmt: skip
        # `timeout` and `reset` do the work and lose the answer: only idempotency keys keep a
        # retry from making a second object.
        stripe_emulator.set_faults(kind, rate=0.3, timeout_seconds=0.3)
        prices = [catalog.one_time, catalog.one_time, catalog.one_time, catalog.monthly]
        checkout_ids = [
            create(client, buyer, price.id, headers={"Idempotency-Key": f"{kind}-{n}"}).get_json()[
                "id"
            ]
            for n, price in enumerate(prices)
        ]
        for checkout_id in checkout_ids:
            opened = _open(client, buyer, checkout_id)
            assert (
                confirm(client, buyer, opened["client_secret"], "pm_card_visa").status_code == 202
            )
        for checkout_id in checkout_ids:
            wait_until(
                lambda cid=checkout_id: status_of(client, buyer, cid)["status"] == "succeeded",
                timeout=90,
                what=f"checkout {checkout_id} to succeed",
            )

        stripe_emulator.clear_faults()
        assert any(r["fault"] == kind for r in stripe_emulator.requests())
        stripe = stripe_emulator.client()
        intents = stripe.v1.payment_intents.list(params={"limit": 100}).data
        per_checkout = Counter(
            i.metadata["billingos_checkout_id"]
            for i in intents
            if "billingos_checkout_id" in i.metadata
        )
        assert per_checkout == {cid: 1 for cid in checkout_ids[:3]}
        subscriptions = stripe.v1.subscriptions.list(params={"limit": 100}).data
        assert [s.metadata["billingos_checkout_id"] for s in subscriptions] == [checkout_ids[3]]
        # The subscription's first invoice is its only other PaymentIntent.
        assert len(intents) == 4
        assert len(stripe.v1.customers.list(params={"limit": 100}).data) == 1
        for checkout_id in checkout_ids:
            row = fetch(checkout_id)
            assert row.status == "succeeded"
            assert row.prepare_attempts >= 1 and row.confirm_attempts >= 1

    def test_stripe_down_ends_in_a_visible_failure(
        self, client: Any, buyer: Buyer, catalog: Catalog, stripe_emulator: Any,
        start_worker: Any,
    ) -> None:  # fmt: skip
        # Without the library's own retries, so only the task's bounded attempts are counted.
        start_worker(concurrency=2, env={"STRIPE_MAX_NETWORK_RETRIES": "0"})
        stripe_emulator.set_faults("error_500", rate=1.0)
        checkout_id = create(client, buyer, catalog.one_time.id).get_json()["id"]
        failed = wait_until(
            lambda: (body := status_of(client, buyer, checkout_id))["status"] == "failed" and body,
            timeout=90,
            what="checkout to give up",
        )
        assert failed["last_error"]["code"] == "stripe_unavailable"
        assert fetch(checkout_id).prepare_attempts == 6


class TestSecretsInLogs:
    def test_client_secrets_never_reach_a_log(
        self, client: Any, buyer: Buyer, catalog: Catalog, stripe_emulator: Any,
        start_worker: Any, caplog: pytest.LogCaptureFixture,
    ) -> None:  # fmt: skip
        caplog.set_level(logging.DEBUG)
        worker = start_worker(concurrency=2, env={"LOG_LEVEL": "DEBUG"})
        secrets = []
        for price in (catalog.one_time, catalog.monthly, catalog.trial):
            checkout_id = create(client, buyer, price.id).get_json()["id"]
            opened = _open(client, buyer, checkout_id)
            secrets.append(opened["client_secret"])
            card = "pm_card_visa_chargeDeclined" if price is catalog.one_time else "pm_card_visa"
            confirm(client, buyer, opened["client_secret"], card)
            wait_until(
                lambda cid=checkout_id: (
                    status_of(client, buyer, cid)["status"] not in ("pending", "open", "processing")
                ),
                what="checkout to settle",
            )
        worker.stop()
        logs = worker.log() + caplog.text
        assert "checkout.confirm" in logs  # the log is really captured
        for secret in secrets:
            assert secret not in logs
        assert "_secret_" not in logs
        assert buyer.token not in logs
