"""The only module that talks to Stripe.

Every call goes through one `stripe.StripeClient` per process (no global `stripe.api_key`), with
the API version pinned in configuration, explicit connect/read timeouts and an explicit
`max_network_retries`. Every write carries a deterministic idempotency key derived from our own
ids, so a retried task (or a library retry after a timeout) gets Stripe's stored answer instead
of making a second object (https://docs.stripe.com/api/idempotent_requests). Every object we
create carries `billingos_organization_id` metadata, and `billingos_checkout_id` when a checkout
caused it, so any Stripe object can be traced back to our rows.

Callers never see `stripe` exceptions: they get the small vocabulary below and decide from it
whether to retry (`TransientStripeError`) or record a permanent outcome (`PaymentDeclined`,
`InvalidStripeRequest`).

Other domains append their methods in marked sections at the end of `StripeGateway`.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import stripe
from stripe.params import (
    CustomerCreateParams,
    EventListParams,
    PaymentIntentCancelParams,
    PaymentIntentConfirmParams,
    PaymentIntentCreateParams,
    PriceCreateParams,
    ProductCreateParams,
    RefundCreateParams,
    SetupIntentConfirmParams,
    SubscriptionCancelParams,
    SubscriptionCreateParams,
    SubscriptionUpdateParams,
)

from app.config import Settings
from app.metrics import observe_stripe_call

log = logging.getLogger(__name__)

T = TypeVar("T")

ORGANIZATION_METADATA = "billingos_organization_id"
CHECKOUT_METADATA = "billingos_checkout_id"
CUSTOMER_METADATA = "billingos_customer_id"
PRODUCT_METADATA = "billingos_product_id"
PRICE_METADATA = "billingos_price_id"
SUBSCRIPTION_METADATA = "billingos_subscription_id"

# The object types `StripeGateway.retrieve_object` can fetch again at our API version.
REFETCHABLE_OBJECT_TYPES = frozenset(
    {
        "payment_intent",
        "setup_intent",
        "subscription",
        "invoice",
        "charge",
        "refund",
        "dispute",
        "checkout.session",
    }
)

# Which payment methods our intents accept: cards and the wallets that pay with one (Apple Pay,
# Google Pay). BillingOS confirms intents server-side and the embedded checkout never leaves
# the app, so no payment method may need a full-page redirect: Stripe refuses to confirm an
# intent that allows redirects unless a `return_url` comes with the confirmation. One-time
# PaymentIntents say so with `allow_redirects: never`; a subscription's invoices and its
# trial SetupIntent take their payment method types from `payment_settings`.
CARD_PAYMENT_METHOD_TYPES: list[str] = ["card"]


# --------------------------------------------------------------------------- error vocabulary


class StripeGatewayError(Exception):
    """Base of everything the gateway raises."""

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        http_status: int | None = None,
        stripe_object: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.http_status = http_status
        # The PaymentIntent / SetupIntent Stripe attached to the error, when it did.
        self.stripe_object = stripe_object


class TransientStripeError(StripeGatewayError):
    """Connection failure, timeout, 5xx, 409 (concurrent idempotent request) or rate limit.

    Safe to retry with the same idempotency key: Stripe either never did the work or replays it.
    `stored` says Stripe saved this failure as the key's answer (a 500, or a replay of one):
    retrying under that key can only replay it.
    """

    stored: bool = False


class PaymentDeclined(StripeGatewayError):
    """A card error (HTTP 402): the buyer must try another payment method. Never retried."""

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        decline_code: str | None = None,
        http_status: int | None = None,
        stripe_object: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message, code=code, http_status=http_status, stripe_object=stripe_object)
        self.decline_code = decline_code

    def as_checkout_error(self) -> dict[str, str | None]:
        return {"code": self.code, "decline_code": self.decline_code, "message": self.message}


class InvalidStripeRequest(StripeGatewayError):
    """Stripe refused the request as such (400/404, idempotency mismatch, bad credentials).

    Retrying the same request cannot succeed.
    """

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        http_status: int | None = None,
        stripe_object: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message, code=code, http_status=http_status, stripe_object=stripe_object)
        self.param = param


def _error_object(error: stripe.StripeError) -> dict[str, Any] | None:
    details = error.error
    if details is None:
        return None
    for key in ("payment_intent", "setup_intent"):
        obj = getattr(details, key, None)
        if obj:
            return obj.to_dict()
    return None


def translate_error(error: stripe.StripeError) -> StripeGatewayError:
    """Map the library's exceptions (https://docs.stripe.com/api/errors) onto our vocabulary."""
    details = error.error
    message = (details.message if details is not None else None) or str(
        error.user_message or "Stripe request failed"
    )
    code = error.code
    status = error.http_status
    obj = _error_object(error)
    if isinstance(error, stripe.CardError):
        return PaymentDeclined(
            message,
            code=code,
            decline_code=details.decline_code if details is not None else None,
            http_status=status,
            stripe_object=obj,
        )
    if isinstance(error, (stripe.APIConnectionError, stripe.RateLimitError)):
        return TransientStripeError(message, code=code, http_status=status)
    if isinstance(error, stripe.APIError):
        # 5xx, 409 "a request with this idempotency key is in progress", or an unparseable body.
        transient = TransientStripeError(message, code=code, http_status=status)
        replayed = (error.headers or {}).get("Idempotent-Replayed") == "true"
        transient.stored = status == 500 or (replayed and (status or 0) >= 500)
        return transient
    if isinstance(error, stripe.IdempotencyError):
        return InvalidStripeRequest(message, code="idempotency_error", http_status=status)
    if isinstance(error, stripe.InvalidRequestError):
        return InvalidStripeRequest(
            message,
            code=code,
            param=details.param if details is not None else None,
            http_status=status,
            stripe_object=obj,
        )
    # Authentication/permission errors are a configuration problem: retrying will not help.
    return InvalidStripeRequest(message, code=code or "stripe_error", http_status=status)


# --------------------------------------------------------------------------- helpers


def payment_intent_id_from_client_secret(client_secret: str) -> str:
    """The PaymentIntent (or SetupIntent) id is the part of a client secret before `_secret_`."""
    return client_secret.split("_secret_", 1)[0]


def prepare_key(checkout_id: uuid.UUID) -> str:
    """The key of the intent (or subscription) a checkout creates."""
    return f"checkout:{checkout_id}:prepare"


def customer_create_key(customer_id: uuid.UUID) -> str:
    """Derived from the customer, not the checkout: two concurrent checkouts of the same buyer
    send the same request and get the same Stripe customer."""
    return f"customer:{customer_id}:create"


def _metadata(organization_id: uuid.UUID | str, **extra: str | None) -> dict[str, str]:
    metadata = {ORGANIZATION_METADATA: str(organization_id)}
    metadata.update({k: str(v) for k, v in extra.items() if v is not None})
    return metadata


# --------------------------------------------------------------------------- one per process

_gateway: StripeGateway | None = None
_gateway_key: tuple[Any, ...] | None = None
_gateway_lock = threading.Lock()


def _settings_key(settings: Settings) -> tuple[Any, ...]:
    return (
        settings.stripe_secret_key,
        settings.stripe_api_base,
        settings.stripe_api_version,
        settings.stripe_max_network_retries,
        settings.stripe_connect_timeout,
        settings.stripe_read_timeout,
    )


def get_gateway(settings: Settings | None = None) -> StripeGateway:
    """The process's gateway (its HTTP connection pool is reused across requests and tasks).

    Without `settings`, the current Flask app's settings are used (tasks run in an app context).
    """
    global _gateway, _gateway_key
    if settings is None:
        from flask import current_app

        settings = current_app.config["BILLINGOS"]
    assert settings is not None
    key = _settings_key(settings)
    gateway = _gateway
    if gateway is not None and _gateway_key == key:
        return gateway
    with _gateway_lock:
        if _gateway is None or _gateway_key != key:
            _gateway = StripeGateway(settings)
            _gateway_key = key
        return _gateway


# --------------------------------------------------------------------------- the gateway


class StripeGateway:
    def __init__(self, settings: Settings) -> None:
        base_addresses: dict[str, str] = {}
        if settings.stripe_api_base:
            base_addresses["api"] = settings.stripe_api_base.rstrip("/")
        self.client = stripe.StripeClient(
            settings.stripe_secret_key,
            stripe_version=settings.stripe_api_version,
            base_addresses=base_addresses,  # type: ignore[arg-type]
            # https://docs.stripe.com/error-low-level#idempotency: the library retries
            # connection errors and 409/5xx with the same idempotency key.
            max_network_retries=settings.stripe_max_network_retries,
            http_client=stripe.RequestsClient(
                timeout=(settings.stripe_connect_timeout, settings.stripe_read_timeout)
            ),
        )

    @staticmethod
    def _call(fn: Callable[[], T]) -> T:
        # Every method calls Stripe through here, so its name labels the call's metrics.
        operation = sys._getframe(1).f_code.co_name
        started = time.perf_counter()
        error: BaseException | None = None
        try:
            return fn()
        except stripe.StripeError as stripe_error:
            error = translate_error(stripe_error)
            raise error from None
        except BaseException as other:
            error = other
            raise
        finally:
            observe_stripe_call(operation, time.perf_counter() - started, error)

    # ------------------------------------------------------------------ customers

    def create_customer(
        self,
        *,
        customer_id: uuid.UUID,
        organization_id: uuid.UUID,
        external_id: str,
        email: str | None,
        name: str | None,
        idempotency_key: str | None = None,
    ) -> stripe.Customer:
        """Create the Stripe customer of one of our customers (key: `customer_create_key`)."""
        params: CustomerCreateParams = {
            "metadata": _metadata(
                organization_id,
                **{CUSTOMER_METADATA: str(customer_id)},
                billingos_external_id=external_id,
            )
        }
        if email:
            params["email"] = email
        if name:
            params["name"] = name
        return self._call(
            lambda: self.client.v1.customers.create(
                params=params,
                options={"idempotency_key": idempotency_key or customer_create_key(customer_id)},
            )
        )

    def find_customer(self, customer_id: uuid.UUID) -> stripe.Customer | None:
        """The Stripe customer made for our customer, found by metadata (a recovery path)."""
        result = self._call(
            lambda: self.client.v1.customers.search(
                params={"query": f"metadata['{CUSTOMER_METADATA}']:'{customer_id}'", "limit": 1}
            )
        )
        return result.data[0] if result.data else None

    def ensure_customer(
        self,
        *,
        customer_id: uuid.UUID,
        organization_id: uuid.UUID,
        external_id: str,
        email: str | None,
        name: str | None,
        stripe_customer_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> str:
        """The Stripe customer id of our customer: the stored one, or a newly created one."""
        if stripe_customer_id:
            return stripe_customer_id
        try:
            return self.create_customer(
                customer_id=customer_id,
                organization_id=organization_id,
                external_id=external_id,
                email=email,
                name=name,
                idempotency_key=idempotency_key,
            ).id
        except InvalidStripeRequest as error:
            # The same key with other parameters (the email changed within 24 h): the customer
            # exists already, so find it instead of making a second one.
            if error.code != "idempotency_error":
                raise
            found = self.find_customer(customer_id)
            if found is None:
                raise
            return found.id

    # ------------------------------------------------------------------ catalog

    def create_product(
        self,
        *,
        product_id: uuid.UUID,
        organization_id: uuid.UUID,
        name: str,
        description: str | None,
        idempotency_key: str | None = None,
    ) -> stripe.Product:
        params: ProductCreateParams = {
            "name": name,
            "metadata": _metadata(organization_id, **{PRODUCT_METADATA: str(product_id)}),
        }
        if description:
            params["description"] = description
        return self._call(
            lambda: self.client.v1.products.create(
                params=params,
                options={"idempotency_key": idempotency_key or f"product:{product_id}:mirror"},
            )
        )

    def create_price(
        self,
        *,
        price_id: uuid.UUID,
        organization_id: uuid.UUID,
        stripe_product_id: str,
        amount: int,
        currency: str,
        interval: str | None,
        idempotency_key: str | None = None,
    ) -> stripe.Price:
        params: PriceCreateParams = {
            "product": stripe_product_id,
            "unit_amount": amount,
            "currency": currency,
            "metadata": _metadata(organization_id, **{PRICE_METADATA: str(price_id)}),
        }
        if interval is not None:
            params["recurring"] = {"interval": interval}
        return self._call(
            lambda: self.client.v1.prices.create(
                params=params,
                options={"idempotency_key": idempotency_key or f"price:{price_id}:mirror"},
            )
        )

    # ------------------------------------------------------------------ payment intents

    def create_payment_intent(
        self,
        *,
        idempotency_key: str | None = None,
        checkout_id: uuid.UUID,
        organization_id: uuid.UUID,
        stripe_customer_id: str,
        amount: int,
        currency: str,
        description: str | None = None,
        receipt_email: str | None = None,
    ) -> stripe.PaymentIntent:
        """The PaymentIntent of a one-time checkout (`checkout:{id}:prepare`)."""
        params: PaymentIntentCreateParams = {
            "amount": amount,
            "currency": currency,
            "customer": stripe_customer_id,
            # The Payment Element offers what the merchant's dashboard enables, minus
            # anything that would redirect the buyer out of the app.
            "automatic_payment_methods": {"enabled": True, "allow_redirects": "never"},
            "metadata": _metadata(organization_id, **{CHECKOUT_METADATA: str(checkout_id)}),
        }
        if description:
            params["description"] = description
        if receipt_email:
            params["receipt_email"] = receipt_email
        return self._call(
            lambda: self.client.v1.payment_intents.create(
                params=params,
                options={"idempotency_key": idempotency_key or prepare_key(checkout_id)},
            )
        )

    def retrieve_payment_intent(self, stripe_payment_intent_id: str) -> stripe.PaymentIntent:
        return self._call(lambda: self.client.v1.payment_intents.retrieve(stripe_payment_intent_id))

    def confirm_payment_intent(
        self,
        stripe_payment_intent_id: str,
        *,
        idempotency_key: str,
        payment_method: str | None = None,
        confirmation_token: str | None = None,
    ) -> stripe.PaymentIntent:
        """Confirm server-side; a decline raises PaymentDeclined carrying the PaymentIntent."""
        params: PaymentIntentConfirmParams = {}
        if confirmation_token:
            params["confirmation_token"] = confirmation_token
        elif payment_method:
            params["payment_method"] = payment_method
        return self._call(
            lambda: self.client.v1.payment_intents.confirm(
                stripe_payment_intent_id,
                params=params,
                options={"idempotency_key": idempotency_key},
            )
        )

    def cancel_payment_intent(
        self, stripe_payment_intent_id: str, *, idempotency_key: str, reason: str = "abandoned"
    ) -> stripe.PaymentIntent:
        params: PaymentIntentCancelParams = {"cancellation_reason": reason}
        return self._call(
            lambda: self.client.v1.payment_intents.cancel(
                stripe_payment_intent_id,
                params=params,
                options={"idempotency_key": idempotency_key},
            )
        )

    # ------------------------------------------------------------------ setup intents

    def retrieve_setup_intent(self, stripe_setup_intent_id: str) -> stripe.SetupIntent:
        return self._call(lambda: self.client.v1.setup_intents.retrieve(stripe_setup_intent_id))

    def confirm_setup_intent(
        self,
        stripe_setup_intent_id: str,
        *,
        idempotency_key: str,
        payment_method: str | None = None,
        confirmation_token: str | None = None,
    ) -> stripe.SetupIntent:
        params: SetupIntentConfirmParams = {}
        if confirmation_token:
            params["confirmation_token"] = confirmation_token
        elif payment_method:
            params["payment_method"] = payment_method
        return self._call(
            lambda: self.client.v1.setup_intents.confirm(
                stripe_setup_intent_id,
                params=params,
                options={"idempotency_key": idempotency_key},
            )
        )

    # ------------------------------------------------------------------ subscriptions

    def create_subscription(
        self,
        *,
        idempotency_key: str | None = None,
        checkout_id: uuid.UUID,
        organization_id: uuid.UUID,
        stripe_customer_id: str,
        stripe_price_id: str,
        quantity: int = 1,
        trial_period_days: int | None = None,
    ) -> stripe.Subscription:
        """The subscription of a recurring checkout (`checkout:{id}:prepare`).

        Without a trial: `payment_behavior=default_incomplete` leaves it `incomplete` with an
        open first invoice whose `confirmation_secret` the buyer confirms; the card is then
        saved on the subscription (https://docs.stripe.com/billing/subscriptions/build-subscriptions).
        With a trial: it starts `trialing` and its `pending_setup_intent` collects the card
        without a charge (https://docs.stripe.com/billing/subscriptions/trials).
        """
        params: SubscriptionCreateParams = {
            "customer": stripe_customer_id,
            "items": [{"price": stripe_price_id, "quantity": quantity}],
            "payment_behavior": "default_incomplete",
            "payment_settings": {
                "save_default_payment_method": "on_subscription",
                "payment_method_types": list(CARD_PAYMENT_METHOD_TYPES),
            },
            "metadata": _metadata(organization_id, **{CHECKOUT_METADATA: str(checkout_id)}),
        }
        if trial_period_days:
            params["trial_period_days"] = trial_period_days
            params["expand"] = ["pending_setup_intent", "latest_invoice"]
        else:
            params["expand"] = ["latest_invoice.confirmation_secret"]
        return self._call(
            lambda: self.client.v1.subscriptions.create(
                params=params,
                options={"idempotency_key": idempotency_key or prepare_key(checkout_id)},
            )
        )

    def retrieve_subscription(
        self, stripe_subscription_id: str, *, expand: list[str] | None = None
    ) -> stripe.Subscription:
        return self._call(
            lambda: self.client.v1.subscriptions.retrieve(
                stripe_subscription_id, params={"expand": expand} if expand else None
            )
        )

    def update_subscription(
        self,
        stripe_subscription_id: str,
        params: SubscriptionUpdateParams,
        *,
        idempotency_key: str,
    ) -> stripe.Subscription:
        return self._call(
            lambda: self.client.v1.subscriptions.update(
                stripe_subscription_id, params=params, options={"idempotency_key": idempotency_key}
            )
        )

    def cancel_subscription(
        self, stripe_subscription_id: str, *, idempotency_key: str, comment: str | None = None
    ) -> stripe.Subscription:
        """Cancel at once; `comment` lands in `cancellation_details` (and its webhooks)."""
        params: SubscriptionCancelParams = {}
        if comment:
            params["cancellation_details"] = {"comment": comment}
        return self._call(
            lambda: self.client.v1.subscriptions.cancel(
                stripe_subscription_id, params=params, options={"idempotency_key": idempotency_key}
            )
        )

    # ------------------------------------------------------------------ invoices

    def retrieve_invoice(
        self, stripe_invoice_id: str, *, expand: list[str] | None = None
    ) -> stripe.Invoice:
        return self._call(
            lambda: self.client.v1.invoices.retrieve(
                stripe_invoice_id, params={"expand": expand} if expand else None
            )
        )

    def void_invoice(self, stripe_invoice_id: str, *, idempotency_key: str) -> stripe.Invoice:
        """Void an open invoice; Stripe cancels its PaymentIntent, so it can no longer be paid.

        Canceling a subscription does not do this: its open invoice stays payable.
        """
        return self._call(
            lambda: self.client.v1.invoices.void_invoice(
                stripe_invoice_id, options={"idempotency_key": idempotency_key}
            )
        )

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

    # ------------------------------------------------------------------ refunds

    def retrieve_charge(self, stripe_charge_id: str) -> stripe.Charge:
        return self._call(lambda: self.client.v1.charges.retrieve(stripe_charge_id))

    def refund_payment_intent(
        self, stripe_payment_intent_id: str, *, idempotency_key: str, reason: str, comment: str
    ) -> stripe.Refund:
        """Refund whatever is left of a payment (`reason` is Stripe's code, `comment` ours)."""
        params: RefundCreateParams = {
            "payment_intent": stripe_payment_intent_id,
            "reason": reason,
            "metadata": {"billingos_reason": comment},
        }
        return self._call(
            lambda: self.client.v1.refunds.create(
                params=params, options={"idempotency_key": idempotency_key}
            )
        )

    # ================================================================== billing portal and
    # subscription management (issue 7) — append methods below this line.

    def create_direct_subscription(
        self,
        *,
        idempotency_key: str,
        organization_id: uuid.UUID,
        customer_id: uuid.UUID,
        price_id: uuid.UUID,
        stripe_customer_id: str,
        stripe_price_id: str,
        trial_period_days: int | None,
        subscription_id: uuid.UUID | None = None,
    ) -> stripe.Subscription:
        """A subscription that owes nothing today, created without a checkout (issue 7).

        `subscription_id` is our row made for it beforehand (metadata `billingos_subscription_id`).

        A free price: Stripe finalizes a $0 first invoice as paid and the subscription is
        `active` at once. A trial without a card: `trialing`, and when the trial ends with no
        payment method Stripe cancels it instead of billing it
        (https://docs.stripe.com/billing/subscriptions/trials#create-free-trials-without-payment).
        """
        params: SubscriptionCreateParams = {
            "customer": stripe_customer_id,
            "items": [{"price": stripe_price_id}],
            "payment_settings": {"payment_method_types": list(CARD_PAYMENT_METHOD_TYPES)},
            "metadata": _metadata(
                organization_id,
                **{
                    CUSTOMER_METADATA: str(customer_id),
                    PRICE_METADATA: str(price_id),
                    SUBSCRIPTION_METADATA: str(subscription_id) if subscription_id else None,
                },
            ),
        }
        if trial_period_days:
            params["trial_period_days"] = trial_period_days
            params["trial_settings"] = {"end_behavior": {"missing_payment_method": "cancel"}}
        return self._call(
            lambda: self.client.v1.subscriptions.create(
                params=params, options={"idempotency_key": idempotency_key}
            )
        )

    def create_billing_portal_session(
        self, *, stripe_customer_id: str, return_url: str | None, idempotency_key: str
    ) -> stripe.billing_portal.Session:
        """A Stripe-hosted portal session where the customer manages cards, plans and invoices.

        https://docs.stripe.com/customer-management/integrate-customer-portal — the session URL
        is short-lived and single-customer, so one is created per request.
        """
        params: stripe.params.billing_portal.SessionCreateParams = {"customer": stripe_customer_id}
        if return_url:
            params["return_url"] = return_url
        return self._call(
            lambda: self.client.v1.billing_portal.sessions.create(
                params=params, options={"idempotency_key": idempotency_key}
            )
        )

    # ------------------------------------------------------------------ operations (doctor)

    def check_credentials(self) -> None:
        """The cheapest authenticated call: proves the key works and Stripe answers."""
        self._call(lambda: self.client.v1.customers.list(params={"limit": 1}))

    def list_webhook_endpoints(self) -> list[stripe.WebhookEndpoint]:
        return list(
            self._call(lambda: self.client.v1.webhook_endpoints.list(params={"limit": 100})).data
        )
