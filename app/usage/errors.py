"""The problems usage metering answers with."""

from __future__ import annotations

from app.errors import ApiError, Conflict, NotFound


class FeatureNotFound(NotFound):
    code = "feature_not_found"
    title = "Feature not found"


class CustomerNotFound(NotFound):
    code = "customer_not_found"
    title = "Customer not found"


class FeatureNotMetered(ApiError):
    status = 422
    code = "feature_not_metered"
    title = "Feature is not a usage quota"


class TimestampOutsidePeriod(ApiError):
    status = 422
    code = "timestamp_outside_period"
    title = "Timestamp outside the current period"


class CustomerRequired(ApiError):
    status = 422
    code = "customer_required"
    title = "Which customer?"


class IdempotencyKeyReused(Conflict):
    code = "idempotency_key_reused"
    title = "Idempotency key already used for other usage"
