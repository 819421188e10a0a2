"""SQLAlchemy models: Postgres is the source of truth; Redis only caches and carries messages."""

from models.base import Base
from models.catalog import Feature, Product, ProductFeature, ProductPrice, product_features
from models.checkout import CheckoutSession, IllegalTransition
from models.customer import Customer, SessionToken
from models.entitlement import Entitlement
from models.idempotency import IdempotencyGeneration
from models.organization import ApiKey, Organization
from models.payment import PaymentIntent
from models.stripe_event import StripeEvent
from models.subscription import Subscription
from models.usage import UsageAggregate, UsageEvent, UsageRollup

__all__ = [
    "ApiKey",
    "Base",
    "CheckoutSession",
    "Customer",
    "Entitlement",
    "Feature",
    "IdempotencyGeneration",
    "IllegalTransition",
    "Organization",
    "PaymentIntent",
    "Product",
    "ProductFeature",
    "ProductPrice",
    "SessionToken",
    "StripeEvent",
    "Subscription",
    "UsageAggregate",
    "UsageEvent",
    "UsageRollup",
    "product_features",
]
