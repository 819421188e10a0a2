"""The billing portal pages a portal session's URL opens (``/p/session/{token}``)."""

from __future__ import annotations

import html

from .engine import Engine
from .responses import Response


def handle_portal(engine: Engine, method: str, path: str, body: bytes) -> Response:
    segs = path.strip("/").split("/")  # p / session / token [/ cancel / sub_id]
    with engine.lock:
        bps = engine.portal_session_for(segs[2]) if len(segs) >= 3 else None
        if bps is None:
            return Response(
                404,
                b"<html><body>Unknown or expired portal session.</body></html>",
                content_type="text/html; charset=utf-8",
            )
        if method == "POST" and len(segs) == 5 and segs[3] == "cancel":
            sub = engine.objects.get(segs[4])
            if sub is None or sub["customer"] != bps["customer"]:
                return Response(404, b"no such subscription", content_type="text/plain")
            engine.op_subscriptions_update(sub["id"], {"cancel_at_period_end": "true"})
            return Response(
                302, b"", (("Location", f"/p/session/{segs[2]}"),), content_type="text/plain"
            )
        cus = engine.objects[bps["customer"]]
        rows = []
        for sub in engine.customer_subscriptions(cus["id"]):
            item = sub["items"]["data"][0]
            action = ""
            if (
                sub["status"] in ("active", "trialing", "past_due")
                and not sub["cancel_at_period_end"]
            ):
                action = (
                    f'<form method="post" action="/p/session/{segs[2]}/cancel/'
                    f'{sub["id"]}"><button>Cancel plan</button></form>'
                )
            rows.append(
                f"<tr><td>{html.escape(sub['id'])}</td><td>{html.escape(sub['status'])}</td>"
                f"<td>{item['price']['unit_amount']} {item['price']['currency']}</td>"
                f"<td>{'cancels at period end' if sub['cancel_at_period_end'] else ''}</td>"
                f"<td>{action}</td></tr>"
            )
        ret = html.escape(bps["return_url"] or "#")
        page = (
            "<!doctype html><html><head><title>Billing portal (emulated)</title></head>"
            f"<body><h1>Billing portal</h1><p>Customer {html.escape(cus['id'])} "
            f"{html.escape(cus['email'] or '')}</p><table id='subscriptions'>"
            "<tr><th>subscription</th><th>status</th><th>price</th><th></th><th></th></tr>"
            f"{''.join(rows)}</table><p><a id='return' href='{ret}'>Return</a></p>"
            "</body></html>"
        )
    return Response(200, page.encode(), content_type="text/html; charset=utf-8")
