"""The one declared table of Stripe operations the emulator serves.

Each entry names the HTTP method and path, the parameter names the emulator accepts (every one
of them must be a real parameter of that operation: ``typed_params`` names the ``stripe.params``
TypedDict that is the reference, and a test checks the table against it), and the required
ones. Parameters not listed are answered with 400 ``parameter_unknown``, like Stripe does for
names it does not know. Some accepted parameters are stored/echoed but have no behaviour; the
README says which.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Operation:
    name: str  # "<resource>.<verb>", also the engine handler name ("op_" + name with "_")
    method: str
    path: str  # "{id}" marks the object id segment
    params: frozenset[str]
    typed_params: str  # dotted name under stripe.params
    required: tuple[str, ...] = ()

    @property
    def handler_name(self) -> str:
        return "op_" + self.name.replace(".", "_")


def _op(
    name: str,
    method: str,
    path: str,
    typed: str,
    params: str = "",
    required: tuple[str, ...] = (),
) -> Operation:
    names = frozenset(params.split()) | {"expand"}
    return Operation(name, method, path, names, typed, tuple(required))


_LIST = "limit starting_after ending_before created"

OPERATIONS: tuple[Operation, ...] = (
    # customers
    _op(
        "customers.create",
        "POST",
        "/v1/customers",
        "CustomerCreateParams",
        "email name description metadata phone address shipping payment_method invoice_settings "
        "preferred_locales balance invoice_prefix next_invoice_sequence tax_exempt",
    ),
    _op(
        "customers.search",
        "GET",
        "/v1/customers/search",
        "CustomerSearchParams",
        "query limit page",
        required=("query",),
    ),
    _op("customers.retrieve", "GET", "/v1/customers/{id}", "CustomerRetrieveParams"),
    _op(
        "customers.update",
        "POST",
        "/v1/customers/{id}",
        "CustomerUpdateParams",
        "email name description metadata phone address shipping invoice_settings "
        "preferred_locales balance invoice_prefix next_invoice_sequence tax_exempt",
    ),
    _op("customers.list", "GET", "/v1/customers", "CustomerListParams", _LIST + " email"),
    # products and prices
    _op(
        "products.create",
        "POST",
        "/v1/products",
        "ProductCreateParams",
        "id name active description metadata images url unit_label statement_descriptor "
        "tax_code shippable",
        required=("name",),
    ),
    _op("products.retrieve", "GET", "/v1/products/{id}", "ProductRetrieveParams"),
    _op(
        "products.update",
        "POST",
        "/v1/products/{id}",
        "ProductUpdateParams",
        "name active description metadata images url unit_label statement_descriptor tax_code "
        "shippable default_price",
    ),
    _op("products.list", "GET", "/v1/products", "ProductListParams", _LIST + " active ids"),
    _op(
        "prices.create",
        "POST",
        "/v1/prices",
        "PriceCreateParams",
        "currency unit_amount unit_amount_decimal product product_data recurring nickname "
        "lookup_key metadata active tax_behavior billing_scheme transfer_lookup_key",
        required=("currency",),
    ),
    _op("prices.retrieve", "GET", "/v1/prices/{id}", "PriceRetrieveParams"),
    _op(
        "prices.update",
        "POST",
        "/v1/prices/{id}",
        "PriceUpdateParams",
        "active metadata nickname lookup_key tax_behavior transfer_lookup_key",
    ),
    _op(
        "prices.list",
        "GET",
        "/v1/prices",
        "PriceListParams",
        _LIST + " active product type currency lookup_keys",
    ),
    # payment methods
    _op(
        "payment_methods.create",
        "POST",
        "/v1/payment_methods",
        "PaymentMethodCreateParams",
        "type card billing_details metadata allow_redisplay",
    ),
    _op(
        "payment_methods.retrieve", "GET", "/v1/payment_methods/{id}", "PaymentMethodRetrieveParams"
    ),
    _op(
        "payment_methods.attach",
        "POST",
        "/v1/payment_methods/{id}/attach",
        "PaymentMethodAttachParams",
        "customer",
        required=("customer",),
    ),
    # payment intents
    _op(
        "payment_intents.create",
        "POST",
        "/v1/payment_intents",
        "PaymentIntentCreateParams",
        "amount currency customer description metadata payment_method confirm "
        "confirmation_token automatic_payment_methods capture_method setup_future_usage "
        "receipt_email statement_descriptor statement_descriptor_suffix off_session return_url "
        "confirmation_method shipping payment_method_options use_stripe_sdk "
        "error_on_requires_action mandate_data transfer_group allowed_payment_method_types",
        required=("amount", "currency"),
    ),
    _op(
        "payment_intents.retrieve",
        "GET",
        "/v1/payment_intents/{id}",
        "PaymentIntentRetrieveParams",
        "client_secret",
    ),
    _op(
        "payment_intents.update",
        "POST",
        "/v1/payment_intents/{id}",
        "PaymentIntentUpdateParams",
        "amount currency customer description metadata payment_method receipt_email "
        "setup_future_usage shipping statement_descriptor statement_descriptor_suffix "
        "capture_method payment_method_options transfer_group",
    ),
    _op(
        "payment_intents.confirm",
        "POST",
        "/v1/payment_intents/{id}/confirm",
        "PaymentIntentConfirmParams",
        "payment_method confirmation_token return_url off_session receipt_email "
        "setup_future_usage shipping use_stripe_sdk error_on_requires_action mandate_data "
        "payment_method_options capture_method",
    ),
    _op(
        "payment_intents.cancel",
        "POST",
        "/v1/payment_intents/{id}/cancel",
        "PaymentIntentCancelParams",
        "cancellation_reason",
    ),
    _op(
        "payment_intents.list",
        "GET",
        "/v1/payment_intents",
        "PaymentIntentListParams",
        _LIST + " customer",
    ),
    # setup intents
    _op(
        "setup_intents.create",
        "POST",
        "/v1/setup_intents",
        "SetupIntentCreateParams",
        "customer payment_method confirm confirmation_token usage metadata description "
        "automatic_payment_methods return_url use_stripe_sdk mandate_data payment_method_options "
        "allowed_payment_method_types",
    ),
    _op(
        "setup_intents.retrieve",
        "GET",
        "/v1/setup_intents/{id}",
        "SetupIntentRetrieveParams",
        "client_secret",
    ),
    _op(
        "setup_intents.confirm",
        "POST",
        "/v1/setup_intents/{id}/confirm",
        "SetupIntentConfirmParams",
        "payment_method confirmation_token return_url use_stripe_sdk mandate_data "
        "payment_method_options",
    ),
    # confirmation tokens
    _op(
        "confirmation_tokens.create",
        "POST",
        "/v1/test_helpers/confirmation_tokens",
        "test_helpers.ConfirmationTokenCreateParams",
        "payment_method return_url setup_future_usage shipping",
    ),
    _op(
        "confirmation_tokens.retrieve",
        "GET",
        "/v1/confirmation_tokens/{id}",
        "ConfirmationTokenRetrieveParams",
    ),
    # subscriptions
    _op(
        "subscriptions.create",
        "POST",
        "/v1/subscriptions",
        "SubscriptionCreateParams",
        "customer items payment_behavior payment_settings trial_period_days trial_end "
        "default_payment_method metadata cancel_at_period_end collection_method description "
        "off_session proration_behavior currency trial_settings trial_from_plan",
        required=("customer",),
    ),
    _op("subscriptions.retrieve", "GET", "/v1/subscriptions/{id}", "SubscriptionRetrieveParams"),
    _op(
        "subscriptions.update",
        "POST",
        "/v1/subscriptions/{id}",
        "SubscriptionUpdateParams",
        "cancel_at_period_end default_payment_method metadata description items "
        "proration_behavior payment_behavior payment_settings trial_end off_session "
        "cancellation_details",
    ),
    _op(
        "subscriptions.cancel",
        "DELETE",
        "/v1/subscriptions/{id}",
        "SubscriptionCancelParams",
        "cancellation_details invoice_now prorate",
    ),
    _op(
        "subscriptions.list",
        "GET",
        "/v1/subscriptions",
        "SubscriptionListParams",
        _LIST + " customer status price",
    ),
    # invoices
    _op("invoices.retrieve", "GET", "/v1/invoices/{id}", "InvoiceRetrieveParams"),
    _op(
        "invoices.list",
        "GET",
        "/v1/invoices",
        "InvoiceListParams",
        _LIST + " customer subscription status",
    ),
    _op("invoices.void", "POST", "/v1/invoices/{id}/void", "InvoiceVoidInvoiceParams"),
    _op(
        "invoice_payments.list",
        "GET",
        "/v1/invoice_payments",
        "InvoicePaymentListParams",
        _LIST + " invoice payment status",
    ),
    _op(
        "invoice_payments.retrieve",
        "GET",
        "/v1/invoice_payments/{id}",
        "InvoicePaymentRetrieveParams",
    ),
    # charges and refunds
    _op("charges.retrieve", "GET", "/v1/charges/{id}", "ChargeRetrieveParams"),
    _op(
        "refunds.create",
        "POST",
        "/v1/refunds",
        "RefundCreateParams",
        "payment_intent charge amount reason metadata",
    ),
    _op("refunds.retrieve", "GET", "/v1/refunds/{id}", "RefundRetrieveParams"),
    _op("disputes.retrieve", "GET", "/v1/disputes/{id}", "DisputeRetrieveParams"),
    # billing portal
    _op(
        "billing_portal_sessions.create",
        "POST",
        "/v1/billing_portal/sessions",
        "billing_portal.SessionCreateParams",
        "customer return_url locale configuration",
        required=("customer",),
    ),
    # events
    _op("events.retrieve", "GET", "/v1/events/{id}", "EventRetrieveParams"),
    _op(
        "events.list",
        "GET",
        "/v1/events",
        "EventListParams",
        _LIST + " type types delivery_success",
    ),
)


def build_router(
    operations: tuple[Operation, ...] = OPERATIONS,
) -> Callable[[str, str], tuple[Operation, str | None] | None]:
    """Return ``match(method, path) -> (Operation, object_id) | None``."""
    table: dict[tuple[str, int], list[tuple[list[str], Operation]]] = {}
    for op in operations:
        segs = op.path.strip("/").split("/")
        table.setdefault((op.method, len(segs)), []).append((segs, op))
    for candidates in table.values():
        # literal segments win over "{id}" (/v1/customers/search before /v1/customers/{id})
        candidates.sort(key=lambda c: sum(s == "{id}" for s in c[0]))

    def match(method: str, path: str) -> tuple[Operation, str | None] | None:
        segs = path.strip("/").split("/")
        for tmpl, op in table.get((method, len(segs)), ()):
            obj_id = None
            for t, s in zip(tmpl, segs, strict=False):
                if t == "{id}":
                    obj_id = s
                elif t != s:
                    break
            else:
                return op, obj_id
        return None

    return match
