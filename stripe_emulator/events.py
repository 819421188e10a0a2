"""The events API: retrieve and list the events the other families emitted."""

from __future__ import annotations

import re
from typing import Any

from .core import EngineCore, EventRecord, filter_created, paginate, parse_limit
from .errors import missing
from .params import Params, parse_bool


class Events(EngineCore):
    def op_events_retrieve(self, event_id: str | None, params: Params) -> dict[str, Any]:
        record = self.events.get(event_id or "")
        if record is None:
            raise missing("event", event_id or "")
        return self.event_dict(record)

    def op_events_list(self, _id: str | None, params: Params) -> dict[str, Any]:
        limit = parse_limit(params)
        types: list[Any] = params["types"] if isinstance(params.get("types"), list) else []
        if params.get("type"):
            types = [*types, params["type"]]
        # "*" in a type matches any run of characters, e.g. "invoice.*"
        patterns = [re.compile(re.escape(t).replace(r"\*", ".*") + "$") for t in types]
        delivery_success = (
            parse_bool(params["delivery_success"], "delivery_success")
            if "delivery_success" in params
            else None
        )

        def wanted(record: EventRecord) -> bool:
            if patterns and not any(pattern.match(record.type) for pattern in patterns):
                return False
            return delivery_success is None or record.delivered() == delivery_success

        records = [record for record in reversed(self.events.values()) if wanted(record)]
        created = params.get("created")
        records = filter_created(
            records, created if isinstance(created, dict) else None, lambda r: r.created
        )
        page, has_more = paginate(records, params, limit, "event", lambda r: r.id)
        return {
            "object": "list",
            "data": [self.event_dict(record) for record in page],
            "has_more": has_more,
            "url": "/v1/events",
        }
