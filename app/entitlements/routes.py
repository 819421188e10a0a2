"""`/v1/features/…`: the React SDK's feature gates, answered from the entitlement cache.

Same cache, same coherence as `GET /v1/customer/entitlements` (app/entitlements/cache.py): a
revoked feature is never reported after its revocation committed. These routes exist in this one
shape in every API version. Usage metering is not built yet, so `track-usage` and
`usage-metrics` answer 404 rather than pretend to record or report anything.
"""

from __future__ import annotations

from flask import Blueprint
from flask.typing import ResponseReturnValue

from app.api import SESSION_TOKEN, json_response, operation
from app.auth import current_customer
from app.entitlements.schemas import (
    EntitlementOut,
    FeatureAccessList,
    FeatureAccessOut,
    FeatureCheckQuery,
)
from app.entitlements.service import list_entitlements
from app.errors import NotFound

bp = Blueprint("features", __name__)


class UsageNotAvailable(NotFound):
    code = "usage_not_available"
    title = "Usage metering is not available"


def _access(feature_key: str, grants: list[EntitlementOut]) -> FeatureAccessOut:
    metadata = {
        "sources": [
            {"product_id": grant.product_id, "source": grant.source, "expires_at": grant.expires_at}
            for grant in grants
        ]
    }
    return FeatureAccessOut(feature_key=feature_key, has_access=bool(grants), metadata=metadata)


def _by_feature(entitlements: list[EntitlementOut]) -> dict[str, list[EntitlementOut]]:
    grouped: dict[str, list[EntitlementOut]] = {}
    for entitlement in entitlements:
        grouped.setdefault(entitlement.feature_key, []).append(entitlement)
    return grouped


@bp.get("/v1/features/check")
@operation(
    summary="Whether this customer may use one feature now",
    auth=SESSION_TOKEN,
    query=FeatureCheckQuery,
    responses={200: FeatureAccessOut},
    tags=["entitlements"],
)
def check_feature(query: FeatureCheckQuery) -> ResponseReturnValue:
    grants = _by_feature(list_entitlements(current_customer().customer_id))
    return json_response(_access(query.feature_key, grants.get(query.feature_key, [])))


@bp.get("/v1/features/entitlements")
@operation(
    summary="Every feature this customer may use now",
    auth=SESSION_TOKEN,
    responses={200: FeatureAccessList},
    tags=["entitlements"],
)
def feature_entitlements() -> ResponseReturnValue:
    grants = _by_feature(list_entitlements(current_customer().customer_id))
    return json_response(
        FeatureAccessList(entitlements=[_access(key, found) for key, found in grants.items()])
    )


_NO_USAGE = "Usage metering is not available yet: no usage is recorded or reported."


@bp.post("/v1/features/track-usage")
@operation(
    summary="Record usage of a metered feature (not available yet: 404)",
    auth=SESSION_TOKEN,
    responses={},
    errors={404: "usage_not_available"},
    tags=["entitlements"],
)
def track_usage() -> ResponseReturnValue:
    raise UsageNotAvailable(_NO_USAGE)


@bp.get("/v1/features/usage-metrics")
@operation(
    summary="Usage of metered features (not available yet: 404)",
    auth=SESSION_TOKEN,
    responses={},
    errors={404: "usage_not_available"},
    tags=["entitlements"],
)
def usage_metrics() -> ResponseReturnValue:
    raise UsageNotAvailable(_NO_USAGE)
