"""Builders for Stripe objects, with exactly the keys of Stripe's own examples (fixtures3.json).

Values are what a fresh test-mode object has; the engine mutates them afterwards.
"""

from __future__ import annotations

import hashlib
import random
import string
from typing import Any

API_VERSION = "2026-10-28.endive"

_ALNUM = string.ascii_letters + string.digits
_rand = random.Random()


def new_id(prefix: str, n: int = 24) -> str:
    return f"{prefix}_1{''.join(_rand.choices(_ALNUM, k=n))}"


def secret(obj_id: str) -> str:
    return f"{obj_id}_secret_{''.join(_rand.choices(_ALNUM, k=25))}"


def empty_list(url: str) -> dict[str, Any]:
    return {"object": "list", "data": [], "has_more": False, "url": url}


def _address(src: Any = None) -> dict[str, Any]:
    src = src if isinstance(src, dict) else {}
    return {k: src.get(k) for k in ("city", "country", "line1", "line2", "postal_code", "state")}


def customer(cid: str, now: int, p: dict[str, Any]) -> dict[str, Any]:
    inv = p.get("invoice_settings") or {}
    return {
        "address": _address(p["address"]) if isinstance(p.get("address"), dict) else None,
        "balance": int(p.get("balance") or 0),
        "created": now,
        "currency": None,
        "default_source": None,
        "delinquent": False,
        "description": p.get("description") or None,
        "discount": None,
        "email": p.get("email") or None,
        "id": cid,
        "invoice_prefix": p.get("invoice_prefix")
        or "".join(_rand.choices("0123456789ABCDEF", k=8)),
        "invoice_settings": {
            "custom_fields": None,
            "default_payment_method": inv.get("default_payment_method") or None,
            "footer": None,
            "rendering_options": None,
        },
        "livemode": False,
        "metadata": {},
        "name": p.get("name") or None,
        "next_invoice_sequence": int(p.get("next_invoice_sequence") or 1),
        "object": "customer",
        "phone": p.get("phone") or None,
        "preferred_locales": list(p.get("preferred_locales") or []),
        "shipping": p.get("shipping") or None,
        "tax_exempt": p.get("tax_exempt") or "none",
        "test_clock": None,
    }


def product(pid: str, now: int, p: dict[str, Any]) -> dict[str, Any]:
    return {
        "active": p.get("active", True),
        "created": now,
        "default_price": None,
        "description": p.get("description") or None,
        "id": pid,
        "images": list(p.get("images") or []),
        "livemode": False,
        "marketing_features": [],
        "metadata": {},
        "name": p["name"],
        "object": "product",
        "package_dimensions": None,
        "shippable": p.get("shippable"),
        "statement_descriptor": p.get("statement_descriptor") or None,
        "tax_code": p.get("tax_code") or None,
        "unit_label": p.get("unit_label") or None,
        "updated": now,
        "url": p.get("url") or None,
        "type": "service",
    }


def price(pid: str, now: int, p: dict[str, Any], product_id: str) -> dict[str, Any]:
    rec = p.get("recurring")
    recurring = None
    if isinstance(rec, dict):
        recurring = {
            "interval": rec.get("interval", "month"),
            "interval_count": int(rec.get("interval_count") or 1),
            "meter": None,
            "usage_type": rec.get("usage_type") or "licensed",
            "trial_period_days": None,
        }
    amount = p.get("unit_amount")
    if amount is None and p.get("unit_amount_decimal") is not None:
        amount = int(float(p["unit_amount_decimal"]))
    amount = int(amount) if amount is not None else None
    return {
        "active": p.get("active", True),
        "billing_scheme": p.get("billing_scheme") or "per_unit",
        "created": now,
        "currency": p["currency"].lower(),
        "custom_unit_amount": None,
        "id": pid,
        "livemode": False,
        "lookup_key": p.get("lookup_key") or None,
        "metadata": {},
        "nickname": p.get("nickname") or None,
        "object": "price",
        "product": product_id,
        "recurring": recurring,
        "tax_behavior": p.get("tax_behavior") or "unspecified",
        "tiers_mode": None,
        "transform_quantity": None,
        "type": "recurring" if recurring else "one_time",
        "unit_amount": amount,
        "unit_amount_decimal": str(amount) if amount is not None else None,
    }


def plan_from_price(pr: dict[str, Any]) -> dict[str, Any]:
    rec = pr["recurring"] or {}
    return {
        "active": pr["active"],
        "amount": pr["unit_amount"],
        "amount_decimal": pr["unit_amount_decimal"],
        "billing_scheme": pr["billing_scheme"],
        "created": pr["created"],
        "currency": pr["currency"],
        "id": pr["id"],
        "interval": rec.get("interval"),
        "interval_count": rec.get("interval_count"),
        "livemode": False,
        "metadata": pr["metadata"],
        "meter": None,
        "nickname": pr["nickname"],
        "object": "plan",
        "product": pr["product"],
        "tiers_mode": None,
        "transform_usage": None,
        "trial_period_days": None,
        "usage_type": rec.get("usage_type", "licensed"),
    }


_BRANDS = {"4": "visa", "5": "mastercard", "3": "amex", "6": "discover"}


def payment_method(pmid: str, now: int, number: str, billing: dict | None = None) -> dict:
    brand = _BRANDS.get(number[:1], "visa")
    billing = billing if isinstance(billing, dict) else {}
    return {
        "allow_redisplay": "unspecified",
        "billing_details": {
            "address": _address(billing.get("address")),
            "email": billing.get("email") or None,
            "name": billing.get("name") or None,
            "phone": billing.get("phone") or None,
            "tax_id": None,
        },
        "card": {
            "brand": brand,
            "checks": {
                "address_line1_check": None,
                "address_postal_code_check": None,
                "cvc_check": "pass",
            },
            "country": "US",
            "display_brand": brand,
            "exp_month": 12,
            "exp_year": 2034,
            # Opaque like Stripe's: the same card, the same fingerprint, and no digits of it.
            "fingerprint": hashlib.sha256(number.encode()).hexdigest()[:16],
            "funding": "credit",
            "generated_from": None,
            "last4": number[-4:],
            "networks": {"available": [brand], "preferred": None},
            "three_d_secure_usage": {"supported": True},
            "wallet": None,
            "regulated_status": "unregulated",
        },
        "created": now,
        "customer": None,
        "id": pmid,
        "livemode": False,
        "metadata": {},
        "object": "payment_method",
        "type": "card",
        "customer_account": None,
    }


def payment_method_choice(p: dict[str, Any]) -> tuple[dict[str, Any] | None, list[str]]:
    """(`automatic_payment_methods`, `payment_method_types`) of a new Payment/SetupIntent.

    Since API version 2023-08-16 an intent created without a list of payment method types
    (`allowed_payment_method_types` in this API version) accepts the
    payment methods enabled in the Dashboard, redirect-based ones included
    (`allow_redirects` absent means `always`), unless the caller says `never`.
    """
    types = p.get("allowed_payment_method_types")
    apm = p.get("automatic_payment_methods")
    if isinstance(types, list) and types and not isinstance(apm, dict):
        return None, [str(t) for t in types]
    if isinstance(apm, dict):
        if apm.get("enabled") not in (True, "true"):
            return {"enabled": False}, [str(t) for t in types or ["card"]]
        if apm.get("allow_redirects") in ("always", "never"):
            return {"enabled": True, "allow_redirects": apm["allow_redirects"]}, ["card"]
    return {"enabled": True}, ["card"]


def redirects_allowed(intent: dict[str, Any]) -> bool:
    apm = intent.get("automatic_payment_methods")
    return bool(apm and apm.get("enabled") and apm.get("allow_redirects") != "never")


def payment_intent(piid: str, now: int, p: dict[str, Any]) -> dict[str, Any]:
    apm, types = payment_method_choice(p)
    return {
        "amount": int(p["amount"]),
        "amount_capturable": 0,
        "amount_details": {"tip": {}},
        "amount_received": 0,
        "application": None,
        "application_fee_amount": None,
        "automatic_payment_methods": apm,
        "canceled_at": None,
        "cancellation_reason": None,
        "capture_method": p.get("capture_method") or "automatic_async",
        "client_secret": secret(piid),
        "confirmation_method": p.get("confirmation_method") or "automatic",
        "created": now,
        "currency": p["currency"].lower(),
        "customer": p.get("customer") or None,
        "description": p.get("description") or None,
        "id": piid,
        "last_payment_error": None,
        "latest_charge": None,
        "livemode": False,
        "metadata": {},
        "next_action": None,
        "object": "payment_intent",
        "on_behalf_of": None,
        "payment_method": None,
        "payment_method_configuration_details": None,
        "payment_method_options": {
            "card": {
                "installments": None,
                "mandate_options": None,
                "network": None,
                "request_three_d_secure": "automatic",
            }
        },
        "payment_method_types": types,
        "processing": None,
        "receipt_email": p.get("receipt_email") or None,
        "review": None,
        "setup_future_usage": p.get("setup_future_usage") or None,
        "shipping": p.get("shipping") or None,
        "statement_descriptor": p.get("statement_descriptor") or None,
        "statement_descriptor_suffix": p.get("statement_descriptor_suffix") or None,
        "status": "requires_payment_method",
        "transfer_data": None,
        "transfer_group": p.get("transfer_group") or None,
        "source": None,
        "excluded_payment_method_types": None,
        "customer_account": None,
        "managed_payments": None,
    }


def setup_intent(siid: str, now: int, p: dict[str, Any]) -> dict[str, Any]:
    apm, types = payment_method_choice(p)
    return {
        "application": None,
        "automatic_payment_methods": apm,
        "cancellation_reason": None,
        "client_secret": secret(siid),
        "created": now,
        "customer": p.get("customer") or None,
        "description": p.get("description") or None,
        "flow_directions": None,
        "id": siid,
        "last_setup_error": None,
        "latest_attempt": None,
        "livemode": False,
        "mandate": None,
        "metadata": {},
        "next_action": None,
        "object": "setup_intent",
        "on_behalf_of": None,
        "payment_method": None,
        "payment_method_configuration_details": None,
        "payment_method_options": {
            "card": {
                "mandate_options": None,
                "network": None,
                "request_three_d_secure": "automatic",
            }
        },
        "payment_method_types": types,
        "single_use_mandate": None,
        "status": "requires_payment_method",
        "usage": p.get("usage") or "off_session",
        "excluded_payment_method_types": None,
    }


def next_action_3ds(obj_id: str, base_url: str) -> dict[str, Any]:
    return {
        "type": "use_stripe_sdk",
        "use_stripe_sdk": {
            "type": "three_d_secure_redirect",
            "stripe_js": f"{base_url}/_emulator/3ds/{obj_id}",
            "source": new_id("src"),
            "directory_server_encryption": {},
        },
    }


def charge(
    chid: str,
    now: int,
    pi: dict[str, Any],
    pm: dict[str, Any],
    ok: bool,
    failure: tuple[str, str, str] | None,
) -> dict[str, Any]:
    card = pm["card"]
    amount = pi["amount"]
    if ok:
        outcome = {
            "advice_code": None,
            "network_advice_code": None,
            "network_decline_code": None,
            "network_status": "approved_by_network",
            "reason": None,
            "risk_level": "normal",
            "seller_message": "Payment complete.",
            "type": "authorized",
        }
    else:
        _code, decline, _msg = failure or ("card_declined", "generic_decline", "")
        outcome = {
            "advice_code": "try_again_later",
            "network_advice_code": None,
            "network_decline_code": None,
            "network_status": "declined_by_network",
            "reason": decline,
            "risk_level": "normal",
            "seller_message": "The bank did not return any further details with this decline.",
            "type": "issuer_declined",
        }
    return {
        "amount": amount,
        "amount_captured": amount if ok else 0,
        "amount_refunded": 0,
        "application": None,
        "application_fee": None,
        "application_fee_amount": None,
        "balance_transaction": new_id("txn") if ok else None,
        "billing_details": pm["billing_details"],
        "calculated_statement_descriptor": "BILLINGOS",
        "captured": ok,
        "created": now,
        "currency": pi["currency"],
        "customer": pi["customer"],
        "description": pi["description"],
        "disputed": False,
        "failure_balance_transaction": None,
        "failure_code": None if ok else (failure[0] if failure else "card_declined"),
        "failure_message": None if ok else (failure[2] if failure else "Your card was declined."),
        "fraud_details": {},
        "id": chid,
        "livemode": False,
        "metadata": dict(pi["metadata"]),
        "object": "charge",
        "on_behalf_of": None,
        "outcome": outcome,
        "paid": ok,
        "payment_intent": pi["id"],
        "payment_method": pm["id"],
        "payment_method_details": {
            "card": {
                "amount_authorized": amount if ok else None,
                "brand": card["brand"],
                "checks": card["checks"],
                "country": card["country"],
                "exp_month": card["exp_month"],
                "exp_year": card["exp_year"],
                "fingerprint": card["fingerprint"],
                "funding": card["funding"],
                "last4": card["last4"],
                "network": card["brand"],
                "three_d_secure": None,
                "wallet": None,
                "authorization_code": "123456" if ok else None,
                "extended_authorization": {"status": "disabled"},
                "incremental_authorization": {"status": "unavailable"},
                "installments": None,
                "mandate": None,
                "multicapture": {"status": "unavailable"},
                "network_token": {"used": False},
                "network_transaction_id": "emu" + chid[-12:],
                "overcapture": {"maximum_amount_capturable": amount, "status": "unavailable"},
                "regulated_status": card["regulated_status"],
                "transaction_link_id": None,
            },
            "type": "card",
        },
        "receipt_email": pi["receipt_email"],
        "receipt_number": None,
        "receipt_url": None,
        "refunded": False,
        "refunds": empty_list(f"/v1/charges/{chid}/refunds"),
        "review": None,
        "shipping": pi["shipping"],
        "source_transfer": None,
        "statement_descriptor": pi["statement_descriptor"],
        "statement_descriptor_suffix": pi["statement_descriptor_suffix"],
        "status": "succeeded" if ok else "failed",
        "transfer_data": None,
        "transfer_group": pi["transfer_group"],
        "source": None,
    }


def refund(reid: str, now: int, ch: dict[str, Any], amount: int, p: dict[str, Any]) -> dict:
    return {
        "amount": amount,
        "balance_transaction": new_id("txn"),
        "charge": ch["id"],
        "created": now,
        "currency": ch["currency"],
        "destination_details": {
            "card": {
                "reference": None,
                "reference_status": "pending",
                "reference_type": "acquirer_reference_number",
                "type": "refund",
            },
            "type": "card",
        },
        "id": reid,
        "metadata": {},
        "object": "refund",
        "payment_intent": ch["payment_intent"],
        "reason": p.get("reason") or None,
        "receipt_number": None,
        "source_transfer_reversal": None,
        "status": "succeeded",
        "transfer_reversal": None,
        "customer": ch["customer"],
        "customer_account": None,
        "payment_method": ch["payment_method"],
    }


def dispute(dpid: str, now: int, ch: dict[str, Any]) -> dict[str, Any]:
    return {
        "amount": ch["amount"],
        "balance_transactions": [],
        "charge": ch["id"],
        "created": now,
        "currency": ch["currency"],
        "evidence": {},
        "evidence_details": {
            "due_by": now + 7 * 86400,
            "has_evidence": False,
            "past_due": False,
            "submission_count": 0,
        },
        "id": dpid,
        "is_charge_refundable": False,
        "livemode": False,
        "metadata": {},
        "object": "dispute",
        "payment_intent": ch["payment_intent"],
        "reason": "fraudulent",
        "status": "needs_response",
    }


def confirmation_token(ctid: str, now: int, pm: dict[str, Any], p: dict[str, Any]) -> dict:
    preview = {
        "allow_redisplay": pm["allow_redisplay"],
        "billing_details": pm["billing_details"],
        "customer": pm["customer"],
        "type": "card",
        "card": pm["card"],
        "customer_account": None,
    }
    return {
        "created": now,
        "expires_at": now + 12 * 3600,
        "id": ctid,
        "livemode": False,
        "mandate_data": None,
        "object": "confirmation_token",
        "payment_intent": None,
        "payment_method_options": None,
        "payment_method_preview": preview,
        "return_url": p.get("return_url") or None,
        "setup_future_usage": p.get("setup_future_usage") or None,
        "setup_intent": None,
        "shipping": p.get("shipping") or None,
        "use_stripe_sdk": True,
    }


def subscription_item(
    siid: str, now: int, sub_id: str, pr: dict, qty: int, meta: dict, start: int, end: int
) -> dict[str, Any]:
    return {
        "created": now,
        "discounts": [],
        "id": siid,
        "metadata": meta,
        "object": "subscription_item",
        "price": pr,
        "quantity": qty,
        "subscription": sub_id,
        "tax_rates": [],
        "plan": plan_from_price(pr),
        "current_period_end": end,
        "current_period_start": start,
        "billing_thresholds": None,
    }


def subscription(sid: str, now: int, customer_id: str, currency: str) -> dict[str, Any]:
    return {
        "application": None,
        "application_fee_percent": None,
        "automatic_tax": {"enabled": False, "liability": None, "disabled_reason": None},
        "billing_cycle_anchor": now,
        "billing_cycle_anchor_config": None,
        "cancel_at": None,
        "canceled_at": None,
        "cancellation_details": {"comment": None, "feedback": None, "reason": None},
        "collection_method": "charge_automatically",
        "created": now,
        "currency": currency,
        "customer": customer_id,
        "days_until_due": None,
        "default_payment_method": None,
        "default_source": None,
        "default_tax_rates": [],
        "description": None,
        "discounts": [],
        "ended_at": None,
        "id": sid,
        "invoice_settings": {
            "account_tax_ids": None,
            "issuer": {"type": "self"},
            "custom_fields": None,
            "description": None,
            "footer": None,
        },
        "items": empty_list(f"/v1/subscription_items?subscription={sid}"),
        "latest_invoice": None,
        "livemode": False,
        "metadata": {},
        "next_pending_invoice_item_invoice": None,
        "object": "subscription",
        "on_behalf_of": None,
        "pause_collection": None,
        "payment_settings": {
            "payment_method_options": None,
            "payment_method_types": None,
            "save_default_payment_method": "off",
        },
        "pending_invoice_item_interval": None,
        "pending_setup_intent": None,
        "pending_update": None,
        "schedule": None,
        "start_date": now,
        "status": "incomplete",
        "test_clock": None,
        "transfer_data": None,
        "trial_end": None,
        "trial_settings": {"end_behavior": {"missing_payment_method": "create_invoice"}},
        "trial_start": None,
        "cancel_at_period_end": False,
        "billing_thresholds": None,
        "billing_mode": {"type": "flexible", "flexible": {"proration_discounts": "included"}},
        "customer_account": None,
        "managed_payments": None,
        "billing_schedules": [],
    }


def line_item(ilid: str, inv_id: str, sub_id: str, si: dict, start: int, end: int) -> dict:
    pr = si["price"]
    amount = (pr["unit_amount"] or 0) * si["quantity"]
    return {
        "amount": amount,
        "currency": pr["currency"],
        "description": f"{si['quantity']} × {pr['nickname'] or pr['product']}",
        "discount_amounts": [],
        "discountable": True,
        "discounts": [],
        "id": ilid,
        "invoice": inv_id,
        "livemode": False,
        "metadata": {},
        "object": "line_item",
        "period": {"end": end, "start": start},
        "quantity": si["quantity"],
        "subscription": sub_id,
        "pretax_credit_amounts": [],
        "taxes": [],
        "parent": {
            "invoice_item_details": None,
            "subscription_item_details": {
                "invoice_item": None,
                "proration": False,
                "proration_details": {"credited_items": None},
                "subscription": sub_id,
                "subscription_item": si["id"],
            },
            "type": "subscription_item_details",
        },
        "pricing": {
            "price_details": {"price": pr["id"], "product": pr["product"]},
            "type": "price_details",
            "unit_amount_decimal": pr["unit_amount_decimal"],
        },
        "subtotal": amount,
        "quantity_decimal": str(si["quantity"]),
    }


def invoice(
    inv_id: str,
    now: int,
    cus: dict,
    sub: dict | None,
    reason: str,
    start: int,
    end: int,
    number: str,
) -> dict[str, Any]:
    parent = None
    if sub is not None:
        parent = {
            "quote_details": None,
            "subscription_details": {"metadata": dict(sub["metadata"]), "subscription": sub["id"]},
            "type": "subscription_details",
        }
    return {
        "account_country": "US",
        "account_name": "BillingOS (emulated)",
        "account_tax_ids": None,
        "amount_due": 0,
        "amount_paid": 0,
        "amount_remaining": 0,
        "amount_shipping": 0,
        "application": None,
        "attempt_count": 0,
        "attempted": False,
        "auto_advance": True,
        "automatic_tax": {
            "enabled": False,
            "liability": None,
            "status": None,
            "disabled_reason": None,
            "provider": None,
        },
        "billing_reason": reason,
        "collection_method": "charge_automatically",
        "created": now,
        "currency": sub["currency"] if sub else "usd",
        "custom_fields": None,
        "customer": cus["id"],
        "customer_address": cus["address"],
        "customer_email": cus["email"],
        "customer_name": cus["name"],
        "customer_phone": cus["phone"],
        "customer_shipping": cus["shipping"],
        "customer_tax_exempt": cus["tax_exempt"],
        "customer_tax_ids": [],
        "default_payment_method": None,
        "default_source": None,
        "default_tax_rates": [],
        "description": None,
        "discounts": [],
        "due_date": None,
        "effective_at": None,
        "ending_balance": None,
        "footer": None,
        "from_invoice": None,
        "hosted_invoice_url": None,
        "id": inv_id,
        "invoice_pdf": None,
        "issuer": {"type": "self"},
        "last_finalization_error": None,
        "latest_revision": None,
        "lines": empty_list(f"/v1/invoices/{inv_id}/lines"),
        "livemode": False,
        "metadata": {},
        "next_payment_attempt": None,
        "number": number,
        "object": "invoice",
        "on_behalf_of": None,
        "payment_settings": {
            "default_mandate": None,
            "payment_method_options": None,
            "payment_method_types": None,
        },
        "period_end": end,
        "period_start": start,
        "post_payment_credit_notes_amount": 0,
        "pre_payment_credit_notes_amount": 0,
        "receipt_number": None,
        "rendering": None,
        "shipping_cost": None,
        "shipping_details": None,
        "starting_balance": 0,
        "statement_descriptor": None,
        "status": "draft",
        "status_transitions": {
            "finalized_at": None,
            "marked_uncollectible_at": None,
            "paid_at": None,
            "voided_at": None,
        },
        "subtotal": 0,
        "subtotal_excluding_tax": 0,
        "test_clock": None,
        "total": 0,
        "total_discount_amounts": [],
        "total_excluding_tax": 0,
        "webhooks_delivered_at": None,
        "automatically_finalizes_at": None,
        "total_pretax_credit_amounts": [],
        "total_taxes": [],
        "amount_overpaid": 0,
        "parent": parent,
        "customer_account": None,
    }


def invoice_payment(ipid: str, now: int, inv: dict, pi_id: str) -> dict[str, Any]:
    return {
        "amount_paid": None,
        "amount_requested": inv["amount_due"],
        "created": now,
        "currency": inv["currency"],
        "id": ipid,
        "invoice": inv["id"],
        "is_default": True,
        "livemode": False,
        "object": "invoice_payment",
        "payment": {"payment_intent": pi_id, "type": "payment_intent"},
        "status": "open",
        "status_transitions": {"canceled_at": None, "paid_at": None},
    }


def portal_session(bpsid: str, now: int, customer_id: str, p: dict, url: str) -> dict:
    return {
        "configuration": p.get("configuration") or "bpc_1EmulatorDefaultConfig",
        "created": now,
        "customer": customer_id,
        "flow": None,
        "id": bpsid,
        "livemode": False,
        "locale": p.get("locale") or None,
        "object": "billing_portal.session",
        "on_behalf_of": None,
        "return_url": p.get("return_url") or None,
        "url": url,
        "customer_account": None,
    }


def event(
    evid: str,
    created: int,
    etype: str,
    obj: dict,
    previous: dict | None,
    request_id: str | None,
    idem_key: str | None,
    pending: int,
) -> dict[str, Any]:
    data: dict[str, Any] = {"object": obj}
    if previous is not None:
        data["previous_attributes"] = previous
    return {
        "api_version": API_VERSION,
        "created": created,
        "data": data,
        "id": evid,
        "livemode": False,
        "object": "event",
        "pending_webhooks": pending,
        "request": {"id": request_id, "idempotency_key": idem_key},
        "type": etype,
    }
