"""Customers: created on first sight of a merchant's user id, their own billing (the Stripe billing
portal), and the merchant's view of one."""

from __future__ import annotations

import hashlib
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from app.auth import CustomerPrincipal
from app.customers.schemas import CustomerDetailOut, CustomerIn, CustomerOut, PortalSessionOut
from app.db import db
from app.entitlements.service import list_entitlements
from app.errors import Conflict, NotFound
from app.pagination import ListQuery
from app.stripe_gateway import StripeGatewayError, get_gateway
from app.subscriptions.schemas import subscription_out
from app.subscriptions.service import list_customer_subscriptions, stripe_failure
from models import Customer, Subscription

# The most subscriptions a customer detail embeds: the largest page any list serves.
DETAIL_SUBSCRIPTIONS = 100

# Stripe does not return an expiry on portal sessions; its guide says an unused session URL
# expires after five minutes (https://docs.stripe.com/customer-management/integrate-customer-portal).
PORTAL_SESSION_LIFETIME = timedelta(minutes=5)
# Requests for the same customer and return URL within this window share one portal session, so
# a double click or a client retry does not create a second one.
PORTAL_IDEMPOTENCY_WINDOW_SECONDS = 60


class NoBillingAccount(Conflict):
    code = "no_billing_account"
    title = "No billing account yet"


class CustomerNotFound(NotFound):
    code = "customer_not_found"
    title = "Customer not found"


def upsert_customer(organization_id: uuid.UUID, data: CustomerIn) -> Customer:
    """The customer with this `external_id`, created on first sight; email/name refreshed."""
    stmt = insert(Customer).values(
        id=uuid.uuid4(),
        organization_id=organization_id,
        external_id=data.external_id,
        email=data.email,
        name=data.name,
    )
    update: dict[str, Any] = {"updated_at": func.now()}
    if data.email is not None:
        update["email"] = stmt.excluded.email
    if data.name is not None:
        update["name"] = stmt.excluded.name
    customer_id = db.session.execute(
        stmt.on_conflict_do_update(
            constraint="uq_customers_organization_id_external_id", set_=update
        ).returning(Customer.id)
    ).scalar_one()
    customer = db.session.execute(
        select(Customer).where(Customer.id == customer_id).execution_options(populate_existing=True)
    ).scalar_one()
    return customer


def customer_out(customer: Customer) -> CustomerOut:
    return CustomerOut(
        id=str(customer.id),
        external_id=customer.external_id,
        email=customer.email,
        name=customer.name,
    )


def create_portal_session(principal: CustomerPrincipal, return_url: str | None) -> PortalSessionOut:
    """A Stripe billing portal session for the token's customer.

    The portal manages what Stripe knows about the customer (cards, invoices, plans), so a
    customer who has never reached Stripe — never started a checkout or a subscription — has
    nothing to manage yet: 409 `no_billing_account`.
    """
    stripe_customer_id = db.session.execute(
        select(Customer.stripe_customer_id).where(Customer.id == principal.customer_id)
    ).scalar_one()
    # The request's connection goes back to the pool before Stripe is called: a slow Stripe
    # must not hold Postgres connections (or the read's transaction) open.
    db.session.remove()
    if stripe_customer_id is None:
        raise NoBillingAccount(
            "This customer has no billing account yet: the portal becomes available after "
            "their first checkout or subscription."
        )
    window = int(time.time()) // PORTAL_IDEMPOTENCY_WINDOW_SECONDS
    url_digest = hashlib.sha256((return_url or "").encode()).hexdigest()[:16]
    try:
        portal = get_gateway().create_billing_portal_session(
            stripe_customer_id=stripe_customer_id,
            return_url=return_url,
            idempotency_key=f"customer:{principal.customer_id}:portal:{window}:{url_digest}",
        )
    except StripeGatewayError as error:
        raise stripe_failure(error) from None
    created = datetime.fromtimestamp(int(portal.created), tz=UTC)
    return PortalSessionOut(url=portal.url, expires_at=created + PORTAL_SESSION_LIFETIME)


def get_customer_by_external_id(
    session: Session, organization_id: uuid.UUID, external_id: str
) -> Customer:
    customer = session.execute(
        select(Customer).where(
            Customer.organization_id == organization_id, Customer.external_id == external_id
        )
    ).scalar_one_or_none()
    if customer is None:
        raise CustomerNotFound("No customer with this external_id.")
    return customer


def customer_detail(
    session: Session, organization_id: uuid.UUID, external_id: str
) -> CustomerDetailOut:
    """The merchant's view: the customer, their newest subscriptions, what they may use now.

    At most `DETAIL_SUBSCRIPTIONS` subscriptions are embedded (`subscriptions_has_more` says
    whether there are more; page through them with the customer's subscription list).
    Entitlements are one per feature key the customer holds, bounded by the catalog.
    """
    customer = get_customer_by_external_id(session, organization_id, external_id)
    subscriptions, has_more = list_customer_subscriptions(
        organization_id, customer.id, ListQuery(limit=DETAIL_SUBSCRIPTIONS)
    )
    return CustomerDetailOut(
        id=str(customer.id),
        external_id=customer.external_id,
        email=customer.email,
        name=customer.name,
        subscriptions=[subscription_out(s) for s in subscriptions],
        subscriptions_has_more=has_more,
        entitlements=list_entitlements(customer.id),
    )


def customer_subscriptions(
    session: Session, organization_id: uuid.UUID, external_id: str, query: ListQuery
) -> tuple[list[Subscription], bool]:
    customer = get_customer_by_external_id(session, organization_id, external_id)
    return list_customer_subscriptions(organization_id, customer.id, query)
