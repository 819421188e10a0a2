"""The checkout state machine (models/checkout.py): legal moves bump `version`; illegal raise."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from app.stripe_sync import move_checkout
from models import CheckoutSession, IllegalTransition
from models.base import utcnow
from models.checkout import STATUSES, TERMINAL_STATUSES, TRANSITIONS


def _checkout(status: str = "pending") -> CheckoutSession:
    return CheckoutSession(
        id=uuid.uuid4(),
        status=status,
        version=1,
        amount=1000,
        currency="usd",
        expires_at=utcnow() + timedelta(hours=1),
    )


def test_happy_path_bumps_version_once_per_change() -> None:
    checkout = _checkout()
    assert checkout.transition("open", client_secret="pi_1_secret_x")
    assert checkout.transition("processing")
    assert checkout.transition("succeeded")
    assert (checkout.status, checkout.version) == ("succeeded", 4)
    assert checkout.completed_at is not None


def test_same_status_and_fields_is_a_no_op() -> None:
    checkout = _checkout("open")
    assert checkout.transition("open") is False
    assert checkout.version == 1
    assert checkout.transition("open", next_action=None) is False
    assert checkout.transition("open", last_error={"code": "x"}) is True
    assert checkout.version == 2


def test_a_declined_checkout_may_be_retried() -> None:
    checkout = _checkout("failed")
    assert checkout.can_transition("processing")
    checkout.transition("processing")
    assert checkout.status == "processing"


@pytest.mark.parametrize(
    ("current", "requested"),
    [
        ("pending", "succeeded"),
        ("pending", "processing"),
        ("processing", "expired"),  # Stripe may still be charging: the reconciler decides
        ("processing", "open"),
        ("succeeded", "failed"),
        ("succeeded", "processing"),
        ("expired", "open"),
        ("canceled", "succeeded"),
    ],
)
def test_illegal_transitions_are_refused(current: str, requested: str) -> None:
    checkout = _checkout(current)
    with pytest.raises(IllegalTransition):
        checkout.transition(requested)
    assert (checkout.status, checkout.version) == (current, 1)


def test_final_states_have_no_way_out() -> None:
    for status in TERMINAL_STATUSES:
        assert TRANSITIONS[status] == frozenset()
        checkout = _checkout(status)
        for other in STATUSES:
            if other != status:
                assert not checkout.can_transition(other)


def test_unknown_status_is_an_error() -> None:
    with pytest.raises(ValueError):
        _checkout().transition("paid")


def test_out_of_order_news_is_dropped_not_raised() -> None:
    # A late `requires_action` or `processing` (a slow webhook) after success changes nothing.
    checkout = _checkout("succeeded")
    assert (
        move_checkout(checkout, "requires_action", next_action={"type": "use_stripe_sdk"}) is False
    )
    assert move_checkout(checkout, "processing") is False
    assert (checkout.status, checkout.version, checkout.next_action) == ("succeeded", 1, None)
