"""Subscriptions (create, update, cancel, list) and the billing portal that manages them."""

from __future__ import annotations

from typing import Any

from . import objects
from .errors import StripeError, invalid, missing
from .invoices import TERMINAL_SUBSCRIPTION_STATUSES
from .params import (
    DAY,
    Params,
    StripeObject,
    add_interval,
    apply_metadata,
    missing_param,
    parse_bool,
    parse_int,
    snapshot,
)
from .setup_intents import SetupIntents
from .subscription_lifecycle import TRIAL_END_BEHAVIORS, SubscriptionLifecycle

_PAYMENT_BEHAVIORS = (
    "allow_incomplete",
    "default_incomplete",
    "error_if_incomplete",
    "pending_if_incomplete",
)


class Subscriptions(SubscriptionLifecycle, SetupIntents):
    # ----------------------------------------------------------------- create
    def op_subscriptions_create(self, _id: str | None, params: Params) -> StripeObject:
        customer = self._require("customer", params["customer"], "customer", "customer")
        items = params.get("items")
        if not isinstance(items, list) or not items:
            raise missing_param("items")
        now = self.now()
        prices = self._recurring_prices(items)
        behavior = params.get("payment_behavior") or "allow_incomplete"
        if behavior not in _PAYMENT_BEHAVIORS:
            raise invalid(f"Invalid payment_behavior: {behavior}", "payment_behavior", store=False)
        sub = objects.subscription(
            objects.new_id("sub"), now, customer["id"], prices[0]["currency"]
        )
        apply_metadata(sub, params.get("metadata"))
        sub["description"] = params.get("description") or None
        payment_settings = params.get("payment_settings")
        if not isinstance(payment_settings, dict):
            payment_settings = {}
        if payment_settings.get("save_default_payment_method"):
            sub["payment_settings"]["save_default_payment_method"] = payment_settings[
                "save_default_payment_method"
            ]
        if isinstance(payment_settings.get("payment_method_types"), list):
            sub["payment_settings"]["payment_method_types"] = payment_settings[
                "payment_method_types"
            ]
        if params.get("default_payment_method"):
            pm = self._resolve_payment_method(
                params["default_payment_method"], "default_payment_method"
            )
            self._attach_payment_method(pm, customer["id"])
            sub["default_payment_method"] = pm["id"]
        trial_settings = params.get("trial_settings")
        end_behavior = (
            trial_settings.get("end_behavior") if isinstance(trial_settings, dict) else None
        )
        if isinstance(end_behavior, dict) and "missing_payment_method" in end_behavior:
            missing = end_behavior["missing_payment_method"]
            if missing not in TRIAL_END_BEHAVIORS:
                raise invalid(
                    f"Invalid trial_settings[end_behavior][missing_payment_method]: {missing}",
                    "trial_settings[end_behavior][missing_payment_method]",
                    store=False,
                )
            sub["trial_settings"]["end_behavior"]["missing_payment_method"] = missing
        trial_end = self._requested_trial_end(params, now)
        recurring = prices[0]["recurring"]
        if trial_end:
            end = trial_end
            sub.update(
                status="trialing", trial_start=now, trial_end=trial_end, billing_cycle_anchor=end
            )
        else:
            end = add_interval(now, recurring["interval"], recurring["interval_count"])
        for item, price in zip(items, prices, strict=False):
            metadata = item.get("metadata") if isinstance(item.get("metadata"), dict) else {}
            quantity = parse_int(item.get("quantity", 1), "quantity")
            sub["items"]["data"].append(
                objects.subscription_item(
                    objects.new_id("si", 14),
                    now,
                    sub["id"],
                    price,
                    quantity,
                    dict(metadata),
                    now,
                    end,
                )
            )
        if parse_bool(params.get("cancel_at_period_end", False), "cancel_at_period_end"):
            sub.update(cancel_at_period_end=True, cancel_at=end, canceled_at=now)
            sub["cancellation_details"]["reason"] = "cancellation_requested"
        self._save(sub)
        self.billing_schedules[sub["id"]] = {
            "anchor": trial_end or now,
            "cycle": 0,
            "trial_will_end_sent": False,
        }
        default_pm = (
            sub["default_payment_method"] or customer["invoice_settings"]["default_payment_method"]
        )
        if trial_end:
            self._start_trial(sub, default_pm, now, trial_end)
        else:
            self._bill_first_period(sub, default_pm, behavior, now)
        return sub

    def _recurring_prices(self, items: list[Any]) -> list[StripeObject]:
        prices = []
        for index, item in enumerate(items):
            param = f"items[{index}][price]"
            if not isinstance(item, dict) or not item.get("price"):
                raise missing_param(param)
            price = self._require("price", item["price"], "price", param)
            if price["recurring"] is None:
                raise invalid(f"The price specified ({price['id']}) is not recurring.", param)
            prices.append(price)
        return prices

    @staticmethod
    def _requested_trial_end(params: Params, now: int) -> int | None:
        if params.get("trial_period_days") not in (None, ""):
            days = parse_int(params["trial_period_days"], "trial_period_days")
            return now + days * DAY if days > 0 else None
        if params.get("trial_end") not in (None, "", "now"):
            trial_end = parse_int(params["trial_end"], "trial_end")
            if trial_end <= now:
                raise invalid("Invalid timestamp: must be in the future", "trial_end")
            return trial_end
        return None

    def _start_trial(
        self, sub: StripeObject, default_pm: str | None, now: int, trial_end: int
    ) -> None:
        """A paid $0 invoice, and a SetupIntent to collect a card when there is none."""
        invoice = self._create_invoice(sub, "trial", now, trial_end)
        si = None
        if not default_pm:
            si = objects.setup_intent(
                objects.new_id("seti"),
                now,
                {
                    "customer": sub["customer"],
                    "usage": "off_session",
                    "allowed_payment_method_types": sub["payment_settings"]["payment_method_types"],
                },
            )
            self._save(si)
            self.subscription_of_setup_intent[si["id"]] = sub["id"]
            sub["pending_setup_intent"] = si["id"]
        self.emit("customer.subscription.created", sub)
        self.emit("invoice.created", invoice)
        self._finalize_invoice(invoice, sub)
        if si is not None:
            self.emit("setup_intent.created", si)

    def _bill_first_period(
        self, sub: StripeObject, default_pm: str | None, behavior: str, now: int
    ) -> None:
        invoice = self._create_invoice(sub, "subscription_create", now, now)
        self.emit("customer.subscription.created", sub)
        self.emit("invoice.created", invoice)
        pi = self._finalize_invoice(invoice, sub)
        if pi is None:  # zero-amount first invoice
            sub["status"] = "active"
            self.emit("customer.subscription.updated", sub, {"status": "incomplete"})
            return
        if behavior == "default_incomplete":
            if default_pm:
                pi.update(payment_method=default_pm, status="requires_confirmation")
            return
        if not default_pm:
            return
        self._attempt_payment(pi, self.objects[default_pm], off_session=True)
        if behavior == "error_if_incomplete" and pi["status"] != "succeeded":
            error = pi["last_payment_error"] or {}
            raise StripeError(
                402,
                "card_error",
                error.get("message", "Payment failed"),
                code=error.get("code"),
                decline_code=error.get("decline_code"),
                extra={"payment_intent": snapshot(pi)},
            )

    # ----------------------------------------------------------------- read
    def op_subscriptions_retrieve(self, sub_id: str | None, params: Params) -> StripeObject:
        return self._require("subscription", sub_id, "subscription")

    def op_subscriptions_list(self, _id: str | None, params: Params) -> dict[str, Any]:
        customer, status, price = params.get("customer"), params.get("status"), params.get("price")

        def status_matches(sub: StripeObject) -> bool:
            if status == "all":
                return True
            if status:
                return bool(sub["status"] == status)
            return sub["status"] not in TERMINAL_SUBSCRIPTION_STATUSES

        return self._list(
            "subscription",
            params,
            "/v1/subscriptions",
            lambda sub: (
                status_matches(sub)
                and (not customer or sub["customer"] == customer)
                and (
                    not price or any(item["price"]["id"] == price for item in sub["items"]["data"])
                )
            ),
        )

    def customer_subscriptions(self, customer_id: str) -> list[StripeObject]:
        return [sub for sub in self._newest_first("subscription") if sub["customer"] == customer_id]

    # ----------------------------------------------------------------- update
    def op_subscriptions_update(self, sub_id: str | None, params: Params) -> StripeObject:
        sub = self._require("subscription", sub_id, "subscription")
        if sub["status"] in TERMINAL_SUBSCRIPTION_STATUSES:
            raise invalid(
                "A canceled subscription can only update its cancellation_details and metadata.",
                None,
            )
        previous: dict[str, Any] = {}
        if "cancel_at_period_end" in params:
            self._set_cancel_at_period_end(
                sub, parse_bool(params["cancel_at_period_end"], "cancel_at_period_end"), previous
            )
        if isinstance(params.get("cancellation_details"), dict):
            previous.setdefault("cancellation_details", dict(sub["cancellation_details"]))
            self._record_cancellation_details(sub, params)
        if "default_payment_method" in params:
            new_pm = None
            if params["default_payment_method"]:
                pm = self._resolve_payment_method(
                    params["default_payment_method"], "default_payment_method"
                )
                self._attach_payment_method(pm, sub["customer"])
                new_pm = pm["id"]
            if new_pm != sub["default_payment_method"]:
                previous["default_payment_method"] = sub["default_payment_method"]
                sub["default_payment_method"] = new_pm
        if "description" in params:
            previous["description"] = sub["description"]
            sub["description"] = params["description"] or None
        if "metadata" in params:
            previous["metadata"] = sub["metadata"]
            apply_metadata(sub, params["metadata"])
        payment_settings = params.get("payment_settings")
        if isinstance(payment_settings, dict) and payment_settings.get(
            "save_default_payment_method"
        ):
            previous["payment_settings"] = dict(sub["payment_settings"])
            sub["payment_settings"]["save_default_payment_method"] = payment_settings[
                "save_default_payment_method"
            ]
        if isinstance(params.get("items"), list):
            previous["items"] = snapshot(sub["items"])
            self._update_items(sub, params["items"])
        trial_moved = "trial_end" in params and sub["status"] == "trialing"
        if trial_moved:
            if params["trial_end"] == "now":
                trial_end = self.now()
            else:
                trial_end = parse_int(params["trial_end"], "trial_end")
            previous["trial_end"] = sub["trial_end"]
            sub["trial_end"] = trial_end
            for item in sub["items"]["data"]:
                item["current_period_end"] = trial_end
            self.billing_schedules[sub["id"]]["anchor"] = trial_end
        if previous:
            self.emit("customer.subscription.updated", sub, previous)
        if trial_moved:
            self.run_due()
        return sub

    def _set_cancel_at_period_end(
        self, sub: StripeObject, cancel: bool, previous: dict[str, Any]
    ) -> None:
        if cancel == sub["cancel_at_period_end"]:
            return
        previous.update(
            cancel_at_period_end=sub["cancel_at_period_end"],
            cancel_at=sub["cancel_at"],
            canceled_at=sub["canceled_at"],
            cancellation_details=dict(sub["cancellation_details"]),
        )
        if cancel:
            period_end = sub["items"]["data"][0]["current_period_end"]
            sub.update(cancel_at_period_end=True, cancel_at=period_end, canceled_at=self.now())
            sub["cancellation_details"]["reason"] = "cancellation_requested"
        else:
            sub.update(cancel_at_period_end=False, cancel_at=None, canceled_at=None)
            sub["cancellation_details"]["reason"] = None

    @staticmethod
    def _record_cancellation_details(sub: StripeObject, params: Params) -> None:
        details = params.get("cancellation_details")
        if not isinstance(details, dict):
            return
        for key in ("comment", "feedback"):
            if key in details:
                sub["cancellation_details"][key] = details[key] or None

    def _update_items(self, sub: StripeObject, items: list[Any]) -> None:
        """Add, change or delete subscription items (no proration)."""
        data = sub["items"]["data"]
        by_id = {item["id"]: item for item in data}
        first = data[0]
        for index, change in enumerate(items):
            if not isinstance(change, dict):
                continue
            if change.get("id"):
                item = by_id.get(change["id"])
                if item is None:
                    raise missing("subscription item", change["id"], f"items[{index}][id]")
                if change.get("deleted") in (True, "true"):
                    data.remove(item)
                    continue
            else:
                if not change.get("price"):
                    raise missing_param(f"items[{index}][price]")
                item = objects.subscription_item(
                    objects.new_id("si", 14),
                    self.now(),
                    sub["id"],
                    self.objects[change["price"]],
                    1,
                    {},
                    first["current_period_start"],
                    first["current_period_end"],
                )
                data.append(item)
            if change.get("price"):
                price = self._require("price", change["price"], "price", f"items[{index}][price]")
                item["price"] = price
                item["plan"] = objects.plan_from_price(price)
            if "quantity" in change:
                item["quantity"] = parse_int(change["quantity"], f"items[{index}][quantity]")
            if isinstance(change.get("metadata"), dict):
                apply_metadata(item, change["metadata"])
        if not data:
            raise invalid("A subscription must have at least one item.", "items")

    def _after_setup_succeeded(self, si: StripeObject, pm: StripeObject) -> None:
        sub_id = self.subscription_of_setup_intent.get(si["id"])
        if not sub_id:
            return
        sub = self.objects[sub_id]
        if sub["pending_setup_intent"] == si["id"]:
            previous = {
                "pending_setup_intent": si["id"],
                "default_payment_method": sub["default_payment_method"],
            }
            sub.update(pending_setup_intent=None, default_payment_method=pm["id"])
            self.emit("customer.subscription.updated", sub, previous)

    def set_subscription_payment_method(self, sub_id: str, pm_value: str) -> StripeObject:
        """Control API: make future charges of a subscription use ``pm_value``."""
        sub = self._require("subscription", sub_id, "subscription")
        pm = self._resolve_payment_method(pm_value, "payment_method")
        self._attach_payment_method(pm, sub["customer"])
        previous = {"default_payment_method": sub["default_payment_method"]}
        sub["default_payment_method"] = pm["id"]
        self.emit("customer.subscription.updated", sub, previous)
        return sub

    # ----------------------------------------------------------------- cancel
    def op_subscriptions_cancel(self, sub_id: str | None, params: Params) -> StripeObject:
        sub = self._require("subscription", sub_id, "subscription")
        if sub["status"] in TERMINAL_SUBSCRIPTION_STATUSES:
            raise invalid(
                f"This subscription is already {sub['status']}.", None, "resource_missing"
            )
        self._record_cancellation_details(sub, params)
        self._end_subscription(sub, self.now())
        return sub

    # ----------------------------------------------------------------- billing portal
    def op_billing_portal_sessions_create(self, _id: str | None, params: Params) -> StripeObject:
        customer = self._require("customer", params["customer"], "customer", "customer")
        token = objects.secret("bps")[len("bps_secret_") :]
        session = objects.portal_session(
            objects.new_id("bps"),
            self.now(),
            customer["id"],
            params,
            f"{self.base_url}/p/session/{token}",
        )
        self._save(session)
        self.portal_session_of_token[token] = session["id"]
        return session

    def portal_session_for(self, token: str) -> StripeObject | None:
        session_id = self.portal_session_of_token.get(token)
        return self.objects.get(session_id) if session_id else None
