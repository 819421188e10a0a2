"""`/v1/features/…`: the React SDK's feature gates, answered from the entitlement cache.

Same cache, same coherence as `GET /v1/customer/entitlements` (app/entitlements/cache.py): a
revoked feature is never reported after its revocation committed. These routes exist in this one
shape in every API version. Limits, quotas and usage: app/usage/service.py.
"""

from __future__ import annotations

from flask import Blueprint
from flask.typing import ResponseReturnValue

from app.api import ANY_CREDENTIAL, SESSION_TOKEN, json_response, operation
from app.auth import current_customer, current_principal
from app.db import db
from app.entitlements.schemas import (
    FeatureAccessList,
    FeatureAccessOut,
    FeatureCheckQuery,
)
from app.usage import service as usage
from app.usage.schemas import TrackUsageIn, TrackUsageOut, UsageMetricsOut, UsageMetricsQuery

bp = Blueprint("features", __name__)


@bp.get("/v1/features/check")
@operation(
    summary="Whether this customer may use one feature now",
    auth=SESSION_TOKEN,
    query=FeatureCheckQuery,
    responses={200: FeatureAccessOut},
    tags=["entitlements"],
)
def check_feature(query: FeatureCheckQuery) -> ResponseReturnValue:
    return json_response(
        usage.check_feature(current_customer().customer_id, query.feature_key, query.usage)
    )


@bp.get("/v1/features/entitlements")
@operation(
    summary="Every feature this customer may use now",
    auth=SESSION_TOKEN,
    responses={200: FeatureAccessList},
    tags=["entitlements"],
)
def feature_entitlements() -> ResponseReturnValue:
    return json_response(
        FeatureAccessList(entitlements=usage.feature_access_list(current_customer().customer_id))
    )


@bp.post("/v1/features/track-usage")
@operation(
    summary="Record usage of a usage_quota feature, exactly once per idempotency key",
    description="With a session token: the token's customer. With a secret key (your server):"
    " name the customer by `customer_external_id`. A retry with the same `idempotency_key`"
    " counts once and answers `duplicate: true`; a `timestamp` outside the current period is"
    " refused (422 timestamp_outside_period).",
    auth=ANY_CREDENTIAL,
    body=TrackUsageIn,
    responses={200: TrackUsageOut},
    errors={
        404: "feature_not_found",
        409: "idempotency_key_reused",
        422: "timestamp_outside_period",
    },
    tags=["entitlements"],
)
def track_usage(body: TrackUsageIn) -> ResponseReturnValue:
    principal = current_principal()
    customer_id = usage.tracked_customer(principal, body.customer_external_id)
    out = usage.track_usage(
        principal.organization_id,
        customer_id,
        usage.UsageEventIn(
            feature_key=body.feature_key,
            quantity=body.quantity,
            idempotency_key=body.idempotency_key,
            timestamp=body.timestamp,
            metadata=body.metadata,
        ),
    )
    db.session.commit()
    return json_response(out)


@bp.get("/v1/features/usage-metrics")
@operation(
    summary="This period's usage of the customer's usage_quota features, with their limits",
    auth=SESSION_TOKEN,
    query=UsageMetricsQuery,
    responses={200: UsageMetricsOut},
    tags=["entitlements"],
)
def usage_metrics(query: UsageMetricsQuery) -> ResponseReturnValue:
    return json_response(usage.usage_metrics(current_customer().customer_id, query.feature_key))
