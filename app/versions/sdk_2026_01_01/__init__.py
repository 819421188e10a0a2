"""API version 2026-01-01: the wire format of the existing SDKs, translated at the edge.

Each translator parses a request as `@billingos/sdk` / `@billingos/node` send it, runs the same
handler (or services) as 2026-11-27, and renders a superset of what those clients read: their
camelCase fields next to ours. Where a name collides (`status`), the SDK's value wins and ours
moves aside (`state`). Nothing here decides anything about a checkout, a token or an entitlement.
"""

from app.versions.sdk_2026_01_01 import (  # noqa: F401  (importing registers the translators)
    checkout,
    pricing_table,
    session_tokens,
)
