"""The Stripe webhook inbox: verify, store once, process exactly once.

Receiving (the web process) must be fast and must never lose an event: verify the signature on
the raw body, insert the event into `stripe_events` (unique Stripe event id, so a redelivery is
a no-op), and enqueue `stripe.process_event` after the insert commits — only when the insert
happened. Stripe retries any non-2xx answer for days, so "stored" is the only thing a 200
promises; everything else happens in a worker.
https://docs.stripe.com/webhooks#acknowledge-events-immediately

Processing (a worker) locks the inbox row, applies the event through `handlers`, and marks it
processed in the same transaction, so the effect and the mark commit together: two workers
running the same event serialize on the row lock and the second finds it processed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from typing import cast as cast_type

import redis
from sqlalchemy import Connection, Table, bindparam, delete, or_, select, text, update
from sqlalchemy.orm import Session

from app import jobs
from app.db import db
from app.errors import ApiError, NotFound, ServiceUnavailable
from app.logging_setup import redact
from app.webhooks import signature
from models import StripeEvent
from models.base import utcnow
from models.stripe_event import FAILED, IGNORED, PENDING, PROCESSED

log = logging.getLogger(__name__)

# The event types BillingOS acts on; `handlers.HANDLERS` has one handler for each. Kept here so
# the web process, which only stores events, does not import the handlers (and through them
# stripe_sync, the gateway and the entitlements service).
HANDLED_EVENT_TYPES = frozenset(
    {
        "payment_intent.succeeded",
        "payment_intent.payment_failed",
        "payment_intent.canceled",
        "setup_intent.succeeded",
        "setup_intent.setup_failed",
        "invoice.paid",
        "invoice.payment_failed",
        "customer.subscription.created",
        "customer.subscription.updated",
        "customer.subscription.deleted",
        "checkout.session.completed",
        "charge.refunded",
        "charge.refund.updated",
        "charge.dispute.created",
        "charge.dispute.updated",
        "charge.dispute.closed",
    }
)
# Stripe's own default: a signature older than five minutes is a replay.
# https://docs.stripe.com/webhooks#replay-prevention
SIGNATURE_TOLERANCE_SECONDS = 300
# A poison event stops here, in a visible `failed` state, instead of retrying forever. With the
# backoff below, ten attempts span roughly ten minutes: a short Stripe or database outage heals
# by itself; a longer one leaves `failed` events for `flask billingos events replay`.
MAX_ATTEMPTS = 10
# The first retry waits about BASE seconds, doubling up to CAP (celeryconfig's visibility
# timeout is sized for this cap).
RETRY_BASE_SECONDS = 2.0
RETRY_CAP_SECONDS = 300.0
# An event still pending this long after it was stored (or last failed) has lost its task —
# the broker was down, or a worker died holding it — and the sweeper sends it again.
REQUEUE_AFTER_SECONDS = 60
# Stripe keeps events listable for 30 days; after that our copy is history nobody replays.
RETENTION_DAYS = 30

_MAX_ERROR_CHARS = 2000
# Stripe reads one event may take between attempts of its transaction: an invoice needs the
# invoice, its payments and its subscription; the rest is headroom for rows moving meanwhile.
MAX_STRIPE_READS = 12
# The table itself: the webhook insert is a Core statement (no ORM unit of work on the hot path).
_INBOX = cast_type(Table, StripeEvent.__table__)


class InvalidSignature(ApiError):
    status = 400
    code = "invalid_signature"
    title = "Invalid signature"


class InvalidPayload(ApiError):
    status = 400
    code = "invalid_payload"
    title = "Invalid payload"


class EventNotStored(ServiceUnavailable):
    """Postgres could not take the event: a 503 makes Stripe deliver it again later."""

    title = "Event not stored"


class EventNotFound(NotFound):
    code = "event_not_found"
    title = "Event not found"


class EventNotReplayable(ApiError):
    status = 409
    code = "event_not_replayable"
    title = "Event not replayable"


# ---------------------------------------------------------------------------- receiving


def verify_event(
    payload: bytes, signature_header: str | None, secrets: Sequence[str]
) -> dict[str, Any]:
    """The event in `payload`, once its `Stripe-Signature` proves Stripe sent it recently.

    The body must be UTF-8 (Stripe signs the text of the body); the HMAC-SHA256 of its raw
    bytes is checked against each of `secrets` in turn — one match is enough, so a secret can
    be rotated without dropping events; several `v1=` signatures allowed, 300 s tolerance. The
    body is parsed only after it is authenticated.
    https://docs.stripe.com/webhooks#verify-manually
    """
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidPayload("The body is not UTF-8.") from None
    if not signature.is_signed(payload, signature_header, secrets, SIGNATURE_TOLERANCE_SECONDS):
        raise InvalidSignature("The Stripe-Signature header does not match the body.")
    try:
        event = json.loads(text)
    except ValueError:
        raise InvalidPayload("The body is not JSON.") from None
    if not _is_event_envelope(event):
        raise InvalidPayload("The body is not a Stripe event.")
    return event


def _is_event_envelope(event: Any) -> bool:
    if not isinstance(event, dict):
        return False
    data = event.get("data")
    return (
        isinstance(event.get("id"), str)
        and bool(event["id"])
        and isinstance(event.get("type"), str)
        and bool(event["type"])
        and event.get("object", "event") == "event"
        and isinstance(data, dict)
        and isinstance(data.get("object"), dict)
    )


# The request path's one statement. Plain SQL, compiled once: at a thousand events a second the
# cost of building and caching an ORM/Core construct per request is visible next to the insert.
_STORE_EVENT = text(
    "INSERT INTO stripe_events (id, stripe_event_id, type, api_version, livemode, object_id,"
    " event_created_at, payload, status, attempts, received_at, created_at, updated_at)"
    " VALUES (:id, :stripe_event_id, :type, :api_version, :livemode, :object_id,"
    " :event_created_at, CAST(:payload AS jsonb), :status, 0, now(), now(), now())"
    " ON CONFLICT (stripe_event_id) DO NOTHING RETURNING id"
)


def store_event(connection: Connection, event: dict[str, Any], raw_payload: bytes) -> bool:
    """Insert `event` into the inbox; True when it is new, False for a redelivery.

    One `INSERT … ON CONFLICT DO NOTHING RETURNING id`: the unique Stripe event id decides,
    race-free, which of several concurrent deliveries is the first. Events of types we do not
    handle are stored as `ignored` (an audit trail) and never enqueued. The payload goes in as
    the raw text cast to jsonb, so it is not re-serialized in Python. The caller commits, then
    calls `enqueue_processing` when this returned True and `is_handled(event)`.
    """
    obj = event["data"]["object"]
    object_id = obj.get("id")
    created = event.get("created")
    row = connection.execute(
        _STORE_EVENT,
        {
            "id": uuid.uuid4(),
            "stripe_event_id": event["id"],
            "type": event["type"][:100],
            "api_version": event.get("api_version"),
            "livemode": bool(event.get("livemode")),
            "object_id": object_id if isinstance(object_id, str) else None,
            "event_created_at": (
                datetime.fromtimestamp(created, UTC) if isinstance(created, int) else None
            ),
            "payload": raw_payload.decode("utf-8"),
            "status": PENDING if is_handled(event) else IGNORED,
        },
    ).first()
    return row is not None


def is_handled(event: dict[str, Any]) -> bool:
    return event["type"] in HANDLED_EVENT_TYPES


def enqueue_processing(stripe_event_id: str, client: redis.Redis | None = None) -> None:
    """Send `stripe.process_event` for a stored event; call only after the insert committed.

    If the broker is unreachable the event stays `pending` in the inbox and the sweeper
    (`maintenance.requeue_unprocessed_events`) sends it later, so Stripe still gets its 200.
    """
    try:
        jobs.publish(jobs.STRIPE_PROCESS_EVENT, stripe_event_id, client=client)
    except Exception:
        log.warning("could not enqueue %s; the sweeper will", stripe_event_id, exc_info=True)


# ---------------------------------------------------------------------------- processing


@dataclass(frozen=True)
class ProcessingResult:
    """What `process_stored_event` did; `note` says why an event had no effect."""

    outcome: str  # processed | already_done | ignored | missing
    note: str | None = None
    # The event's API version when it was not ours (its object was re-fetched at ours).
    other_api_version: str | None = None


@dataclass(frozen=True)
class FailureRecord:
    attempts: int
    status: str

    @property
    def gave_up(self) -> bool:
        return self.status == FAILED


# Built once: it runs for every event, and building it cost about as much CPU as running it.
_LOCK_EVENT = (
    select(StripeEvent)
    .where(StripeEvent.stripe_event_id == bindparam("stripe_event_id"))
    .with_for_update()
    .execution_options(populate_existing=True)
)


def _lock_event(session: Session, stripe_event_id: str) -> StripeEvent | None:
    return session.execute(_LOCK_EVENT, {"stripe_event_id": stripe_event_id}).scalar_one_or_none()


# The processing path reads and marks the inbox row with Core statements, built once: no ORM
# object, identity-map entry or unit-of-work flush per event.
_LOCK_EVENT_ROW = (
    select(_INBOX.c.id, _INBOX.c.type, _INBOX.c.status, _INBOX.c.payload)
    .where(_INBOX.c.stripe_event_id == bindparam("stripe_event_id"))
    .with_for_update()
)
_MARK_EVENT = (
    update(_INBOX)
    .where(_INBOX.c.id == bindparam("row_id"))
    .values(
        status=bindparam("status"),
        attempts=_INBOX.c.attempts + bindparam("attempted"),
        processed_at=bindparam("processed_at"),
        last_error=bindparam("note"),
        updated_at=bindparam("now"),
    )
)


def process_stored_event(stripe_event_id: str) -> ProcessingResult:
    """Apply one stored event exactly once.

    The row lock serializes concurrent runs of the same event (a duplicate task, a redelivery
    after a worker died, the sweeper); the handler's writes and the `processed` mark share one
    transaction, so either both commit or neither does and the event is tried again.

    Stripe is never called inside that transaction: a handler that needs an object's current
    state rolls the attempt back, the object is read with no transaction (and so no lock and no
    pooled connection) held, and the attempt runs again with it
    (`stripe_sync.transaction_with_stripe_reads`).
    """
    from app.stripe_sync import transaction_with_stripe_reads
    from app.webhooks.handlers import count_version_mismatch

    result = transaction_with_stripe_reads(
        lambda session: _process_once(session, stripe_event_id), rounds=MAX_STRIPE_READS
    )
    if result.other_api_version:
        # Counted here, once: a Stripe read runs the attempt's transaction again.
        count_version_mismatch(result.other_api_version)
    return result


def _process_once(session: Session, stripe_event_id: str) -> ProcessingResult:
    from app.webhooks.handlers import HANDLERS, at_our_version

    row = session.execute(_LOCK_EVENT_ROW, {"stripe_event_id": stripe_event_id}).first()
    if row is None:
        return ProcessingResult("missing")
    if row.status in (PROCESSED, IGNORED):
        return ProcessingResult("already_done")
    now = utcnow()
    handler = HANDLERS.get(row.type)
    if handler is None:
        session.execute(
            _MARK_EVENT,
            {
                "row_id": row.id,
                "status": IGNORED,
                "attempted": 0,
                "processed_at": None,
                "note": None,
                "now": now,
            },
        )
        return ProcessingResult("ignored")
    event = at_our_version(session, row.payload)
    note = handler(session, event)
    # An event about an object that is not ours is done, not failed: the note (kept in
    # `last_error`, the inbox's one free-text column) tells an operator why it changed
    # nothing. The handler's ORM changes flush before this statement (autoflush).
    session.execute(
        _MARK_EVENT,
        {
            "row_id": row.id,
            "status": PROCESSED,
            "attempted": 1,
            "processed_at": utcnow(),
            "note": note,
            "now": now,
        },
    )
    if note:
        log.info("stripe event %s (%s): %s", stripe_event_id, row.type, note)
    other_version = row.payload.get("api_version") if event is not row.payload else None
    return ProcessingResult("processed", note, other_api_version=other_version)


def record_processing_failure(
    stripe_event_id: str, error: BaseException, *, permanent: bool
) -> FailureRecord | None:
    """Count a failed attempt; the last allowed one (or a permanent error) marks it `failed`.

    Runs in its own transaction because the attempt's own transaction has rolled back.
    Returns None when there is nothing to record (the row is gone or already done).
    """
    with db.transaction() as session:
        row = _lock_event(session, stripe_event_id)
        if row is None or row.status in (PROCESSED, IGNORED):
            return None
        row.attempts += 1
        row.last_error = describe_error(error)
        if permanent or row.attempts >= MAX_ATTEMPTS:
            row.status = FAILED
        return FailureRecord(row.attempts, row.status)


def describe_error(error: BaseException) -> str:
    # Stripe's messages can quote request parameters; redact() masks anything secret-shaped.
    return redact(f"{type(error).__name__}: {error}")[:_MAX_ERROR_CHARS]


def retry_countdown(attempts: int, *, jitter: float) -> float:
    """Exponential backoff with jitter (`jitter` in [0, 1), drawn by the caller).

    "Equal jitter": half the exponential delay plus a random share of the other half, so
    retries of events that failed together (Stripe was down) spread out instead of returning
    as a herd. https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/
    """
    delay = min(RETRY_CAP_SECONDS, RETRY_BASE_SECONDS * 2 ** max(0, attempts - 1))
    return delay / 2 + delay / 2 * jitter


# ---------------------------------------------------------------------------- operations


def failed_events(session: Session, limit: int = 100) -> list[StripeEvent]:
    return list(
        session.execute(
            select(StripeEvent)
            .where(StripeEvent.status == FAILED)
            .order_by(StripeEvent.received_at)
            .limit(limit)
        ).scalars()
    )


def find_event(session: Session, event_ref: str) -> StripeEvent | None:
    """An inbox row by Stripe event id (`evt_…`) or by our own row id."""
    condition = StripeEvent.stripe_event_id == event_ref
    with contextlib.suppress(ValueError):
        condition = or_(condition, StripeEvent.id == uuid.UUID(event_ref))
    return session.execute(
        select(StripeEvent).where(condition).with_for_update()
    ).scalar_one_or_none()


def replay_event(session: Session, event_ref: str, *, force: bool = False) -> StripeEvent:
    """Give an event a fresh set of attempts and enqueue it after commit.

    Failed and pending events replay as they are; a processed event only with `force` (handlers
    are idempotent and stripe_sync never regresses, so a forced replay can only catch up).
    """
    row = find_event(session, event_ref)
    if row is None:
        raise EventNotFound(f"No stored Stripe event {event_ref}.")
    if row.type not in HANDLED_EVENT_TYPES:
        raise EventNotReplayable(f"{row.type} events are not handled by BillingOS.")
    if row.status == PROCESSED and not force:
        raise EventNotReplayable(f"{row.stripe_event_id} is already processed (use --force).")
    if row.payload_scrubbed_at is not None:
        raise EventNotReplayable(
            f"{row.stripe_event_id}'s payload was removed by retention; it cannot be replayed."
        )
    row.status = PENDING
    row.attempts = 0
    row.last_error = None
    row.processed_at = None
    jobs.enqueue_after_commit(session, jobs.STRIPE_PROCESS_EVENT, row.stripe_event_id)
    return row


def requeue_unprocessed_events(
    session: Session,
    *,
    older_than_seconds: float = REQUEUE_AFTER_SECONDS,
    limit: int = 500,
    now: datetime | None = None,
) -> list[str]:
    """Enqueue again events that are stored but still pending after a while.

    The web process enqueues after commit, but the broker may have been down, or a worker may
    have died holding the message; the unique inbox row is the durable record, so sending it
    twice is harmless (the row lock and the `processed` mark make the second run a no-op).
    An event waiting out a retry backoff is left alone until the backoff cap has passed.
    """
    now = now or utcnow()
    fresh_cutoff = now - timedelta(seconds=older_than_seconds)
    retry_cutoff = now - timedelta(seconds=older_than_seconds + RETRY_CAP_SECONDS)
    ids = list(
        session.execute(
            select(StripeEvent.stripe_event_id)
            .where(
                StripeEvent.status == PENDING,
                or_(
                    (StripeEvent.attempts == 0) & (StripeEvent.updated_at <= fresh_cutoff),
                    StripeEvent.updated_at <= retry_cutoff,
                ),
            )
            .order_by(StripeEvent.received_at)
            .limit(limit)
        ).scalars()
    )
    if ids:
        # Touch them so the next sweep does not send them again while they are queued.
        session.execute(
            update(StripeEvent)
            .where(StripeEvent.stripe_event_id.in_(ids))
            .values(updated_at=now)
            .execution_options(synchronize_session=False)
        )
        for stripe_event_id in ids:
            jobs.enqueue_after_commit(session, jobs.STRIPE_PROCESS_EVENT, stripe_event_id)
    return ids


def prune_processed_events(
    session: Session,
    *,
    older_than_days: int = RETENTION_DAYS,
    batch_size: int = 5000,
    now: datetime | None = None,
) -> int:
    """Delete up to `batch_size` processed or ignored events older than `older_than_days`.

    Failed and pending events stay until an operator deals with them. Batched so one run never
    holds a long lock on the inbox the web process is inserting into.
    """
    cutoff = (now or utcnow()) - timedelta(days=older_than_days)
    batch = (
        select(StripeEvent.id)
        .where(StripeEvent.status.in_((PROCESSED, IGNORED)), StripeEvent.received_at < cutoff)
        .limit(batch_size)
        .scalar_subquery()
    )
    result = session.execute(
        delete(StripeEvent)
        .where(StripeEvent.id.in_(batch))
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
