"""Events, objects re-fetched by type, and the operational checks (doctor)."""

from __future__ import annotations

from typing import Any

import stripe
from stripe.params import (
    EventListParams,
)

from app.stripe_gateway.client import GatewayClient


class EventCalls(GatewayClient):
    # ------------------------------------------------------------------ any object, by type

    def retrieve_object(self, object_type: str, stripe_id: str) -> stripe.StripeObject | None:
        """An event's `data.object` fetched again at our pinned API version, for the object
        types BillingOS reads; None for any other type."""
        services: dict[str, Any] = {  # keys: REFETCHABLE_OBJECT_TYPES
            "payment_intent": self.client.v1.payment_intents,
            "setup_intent": self.client.v1.setup_intents,
            "subscription": self.client.v1.subscriptions,
            "invoice": self.client.v1.invoices,
            "charge": self.client.v1.charges,
            "refund": self.client.v1.refunds,
            "dispute": self.client.v1.disputes,
            "checkout.session": self.client.v1.checkout.sessions,
        }
        service = services.get(object_type)
        if service is None:
            return None
        found: stripe.StripeObject = self._call(lambda: service.retrieve(stripe_id))
        return found

    # ------------------------------------------------------------------ events

    def list_events(
        self,
        *,
        created_gte: int,
        created_lte: int | None = None,
        delivery_success: bool | None = None,
        starting_after: str | None = None,
        limit: int = 100,
    ) -> stripe.ListObject[stripe.Event]:
        """One page (newest first) of the events Stripe holds (it keeps them 30 days)."""
        created: dict[str, int] = {"gte": created_gte}
        if created_lte is not None:
            created["lte"] = created_lte
        params: EventListParams = {"created": created, "limit": limit}  # type: ignore[typeddict-item]
        if delivery_success is not None:
            params["delivery_success"] = delivery_success
        if starting_after:
            params["starting_after"] = starting_after
        return self._call(lambda: self.client.v1.events.list(params=params))

    # ------------------------------------------------------------------ operations (doctor)

    def check_credentials(self) -> None:
        """The cheapest authenticated call: proves the key works and Stripe answers."""
        self._call(lambda: self.client.v1.customers.list(params={"limit": 1}))

    def list_webhook_endpoints(self) -> list[stripe.WebhookEndpoint]:
        return list(
            self._call(lambda: self.client.v1.webhook_endpoints.list(params={"limit": 100})).data
        )
