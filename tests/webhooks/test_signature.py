"""The Stripe-Signature check against signatures made by Stripe's own library."""

from __future__ import annotations

import time

import stripe

from app.webhooks.signature import is_signed

BODY = b'{"id": "evt_1", "object": "event", "type": "invoice.paid", "note": "caf\xc3\xa9"}'
SECRET = "whsec_current"


def header(body: bytes = BODY, secret: str = SECRET, timestamp: int | None = None) -> str:
    return stripe.WebhookSignature.generate_signature_header(body.decode(), secret, timestamp)


def test_a_signature_by_stripes_library_is_accepted():
    assert is_signed(BODY, header(), [SECRET], 300)


def test_any_of_several_secrets_may_match_during_a_rotation():
    assert is_signed(BODY, header(secret="whsec_new"), ["whsec_old", "whsec_new"], 300)
    assert not is_signed(BODY, header(secret="whsec_other"), ["whsec_old", "whsec_new"], 300)


def test_one_matching_v1_among_several_is_enough():
    good = header()
    timestamp = good.split(",")[0]
    assert is_signed(BODY, f"{timestamp},v1={'0' * 64},{good.split(',')[1]}", [SECRET], 300)


def test_a_changed_byte_fails():
    assert not is_signed(BODY.replace(b"paid", b"PAID"), header(), [SECRET], 300)


def test_older_than_the_tolerance_fails_and_within_it_passes():
    now = time.time()
    assert not is_signed(BODY, header(timestamp=int(now) - 301), [SECRET], 300, now=now)
    assert is_signed(BODY, header(timestamp=int(now) - 299), [SECRET], 300, now=now)


def test_missing_or_malformed_headers_fail():
    for bad in (None, "", "garbage", "t=abc,v1=00", "t=123", "v1=00", "t=1,v1=\u00e9"):
        assert not is_signed(BODY, bad, [SECRET], 300)
