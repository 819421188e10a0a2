"""The emulator's engine: every resource family composed into one object the server drives.

Each family is a class in its own module, layered on ``core.EngineCore`` (the object store,
events, clock, pagination and ``expand[]``):

- ``payment_methods.PaymentMethods``: payment methods, confirmation tokens, the test cards
- ``catalog.CustomersAndCatalog``: customers (and search), products, prices
- ``payment_intents.PaymentIntents``: payment intents, charges, refunds
- ``setup_intents.SetupIntents``: setup intents
- ``invoices.Invoices``: invoices and invoice payments (settled by PaymentIntent outcomes)
- ``subscription_lifecycle.SubscriptionLifecycle``: what the clock does to subscriptions
- ``subscriptions.Subscriptions``: the subscriptions API and the billing portal
- ``events.Events``: the events API

Every public ``op_*`` method implements one entry of ``operations.OPERATIONS``; it gets the
object id from the path (or None) and the decoded params, mutates state, emits events, and
returns the stored object (the server renders ``expand[]``) or raises ``StripeError``.
All calls happen under ``Engine.lock``.
"""

from __future__ import annotations

from .catalog import CustomersAndCatalog
from .core import EventRecord
from .events import Events
from .subscriptions import Subscriptions

__all__ = ["Engine", "EventRecord"]


class Engine(Subscriptions, CustomersAndCatalog, Events):
    """The whole emulated Stripe account."""
