"""Parameter coercion and small value helpers shared by every resource family."""

from __future__ import annotations

import calendar
import datetime as dt
import json
from typing import Any

from .errors import StripeError, invalid

# A Stripe object as stored and served: the JSON shape, kept as plain dicts.
StripeObject = dict[str, Any]
# Decoded request parameters (form-encoded, nested a[b][0]= already unfolded).
Params = dict[str, Any]

DAY = 86400


def add_interval(ts: int, interval: str, count: int) -> int:
    """``ts`` moved on by ``count`` billing intervals; months clamp to the month's last day."""
    if interval == "day":
        return ts + count * DAY
    if interval == "week":
        return ts + count * 7 * DAY
    months = count * (12 if interval == "year" else 1)
    moment = dt.datetime.fromtimestamp(ts, dt.UTC)
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return int(moment.replace(year=year, month=month, day=day).timestamp())


def parse_bool(value: Any, param: str) -> bool:
    if value in (True, "true"):
        return True
    if value in (False, "false", ""):
        return False
    raise invalid(f"Invalid boolean: {value}", param, "parameter_invalid_boolean", store=False)


def parse_int(value: Any, param: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise invalid(
            f"Invalid integer: {value}", param, "parameter_invalid_integer", store=False
        ) from None


def snapshot(obj: Any) -> Any:
    """A deep copy through JSON: what a client would see at this instant."""
    return json.loads(json.dumps(obj))


def apply_metadata(obj: StripeObject, metadata: Any) -> None:
    """Merge ``metadata`` into ``obj`` the Stripe way: ``""`` clears all, a ``""`` value one key."""
    if metadata is None:
        return
    if metadata == "":
        obj["metadata"] = {}
        return
    if not isinstance(metadata, dict):
        raise invalid("Invalid metadata: must be an object", "metadata", store=False)
    merged = dict(obj["metadata"])
    for key, value in metadata.items():
        if len(str(key)) > 40:
            raise invalid(
                "Metadata keys can have up to 40 characters", f"metadata[{key}]", store=False
            )
        if value == "":
            merged.pop(key, None)
            continue
        if len(str(value)) > 500:
            raise invalid(
                "Metadata values can have up to 500 characters", f"metadata[{key}]", store=False
            )
        merged[key] = str(value)
    if len(merged) > 50:
        raise invalid("Metadata can have up to 50 keys", "metadata", store=False)
    obj["metadata"] = merged


def missing_param(param: str) -> StripeError:
    """The 400 for an absent required parameter (a validation error: never replayed)."""
    return invalid(f"Missing required param: {param}.", param, "parameter_missing", store=False)
