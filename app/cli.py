"""`flask billingos …`: organizations, the demo catalog, and a session token for trying it."""

from __future__ import annotations

import json
import re
import uuid

import click
from flask import current_app
from sqlalchemy import select

from app import settings_of
from app.api_keys import service as api_keys
from app.api_keys.schemas import MAX_OVERLAP_SECONDS, api_key_created, api_key_out
from app.catalog import service as catalog
from app.catalog.demo import DEMO_PRODUCTS
from app.catalog.schemas import ProductCreate
from app.customers.schemas import CustomerIn
from app.db import db
from app.organizations.schemas import ORIGIN_PATTERN
from app.organizations.service import create_organization, issue_secret_key, organization_named
from app.pagination import ListQuery
from app.session_tokens import service as session_tokens
from app.versions import KNOWN_VERSIONS, NEW_ORGANIZATION_VERSION
from models import Organization, Product

DEMO_ORGANIZATION = "BillingOS Demo"
# The React dev servers' default origins (Next.js / Create React App, Vite).
DEMO_ALLOWED_ORIGINS = ("http://localhost:3000", "http://localhost:5173")


@click.group("billingos")
def billingos_cli() -> None:
    """BillingOS administration."""


def _origins(values: tuple[str, ...]) -> tuple[str, ...]:
    for value in values:
        if not re.fullmatch(ORIGIN_PATTERN, value):
            raise click.BadParameter(f"{value!r} is not an origin like https://app.example.com")
    return values


def _print(payload: dict[str, object], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(payload))
    else:
        for key, value in payload.items():
            click.echo(
                f"{key}: {value if not isinstance(value, list | dict) else json.dumps(value)}"
            )


@billingos_cli.command("create-org")
@click.argument("name")
@click.option(
    "--api-version",
    type=click.Choice(KNOWN_VERSIONS),
    default=NEW_ORGANIZATION_VERSION,
    show_default=True,
    help="The version requests without X-BillingOS-Version are rendered in.",
)
@click.option(
    "--allowed-origin",
    "allowed_origins",
    multiple=True,
    callback=lambda _ctx, _param, values: _origins(values),
    help="A browser origin the SDK runs on, e.g. https://app.example.com (repeatable).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def create_org(
    name: str, api_version: str, allowed_origins: tuple[str, ...], as_json: bool
) -> None:
    """Create an organization and print its first secret key (shown only once)."""
    organization, secret_key = create_organization(name, api_version, allowed_origins)
    db.session.commit()
    _print(
        {
            "organization_id": str(organization.id),
            "secret_key": secret_key,
            "api_version": organization.api_version,
            "allowed_origins": list(organization.allowed_origins),
        },
        as_json,
    )


@billingos_cli.command("seed-demo")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def seed_demo(as_json: bool) -> None:
    """Create the demo organization and catalog if absent; print a fresh secret key for it.

    Keys are stored hashed, so an existing demo organization gets a new key each time.
    """
    organization = organization_named(DEMO_ORGANIZATION)
    if organization is None:
        organization, secret_key = create_organization(
            DEMO_ORGANIZATION, NEW_ORGANIZATION_VERSION, DEMO_ALLOWED_ORIGINS
        )
        for product in DEMO_PRODUCTS:
            catalog.create_product(organization.id, ProductCreate.model_validate(product))
    else:
        secret_key = issue_secret_key(organization.id)
        missing = [o for o in DEMO_ALLOWED_ORIGINS if o not in organization.allowed_origins]
        organization.allowed_origins = [*organization.allowed_origins, *missing]
    db.session.flush()
    products = db.session.execute(
        select(Product)
        .where(Product.organization_id == organization.id)
        .order_by(Product.created_at)
    ).scalars()
    product_list = [
        catalog.product_out(catalog.get_product(organization.id, p.id)).model_dump(mode="json")
        for p in products
    ]
    db.session.commit()
    _print(
        {
            "organization_id": str(organization.id),
            "secret_key": secret_key,
            "api_version": organization.api_version,
            "allowed_origins": list(organization.allowed_origins),
            "products": product_list,
        },
        as_json,
    )


@billingos_cli.command("session-token")
@click.option("--organization", "organization_name", default=DEMO_ORGANIZATION)
@click.option("--external-id", default="demo_user")
@click.option("--email", default="demo@example.com")
@click.option("--expires-in", default=86400, type=click.IntRange(60, 86400))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def session_token(
    organization_name: str, external_id: str, email: str, expires_in: int, as_json: bool
) -> None:
    """Mint a session token for a customer of an organization (for trying the SDK API)."""
    organization = organization_named(organization_name)
    if organization is None:
        raise click.ClickException(f"no organization named {organization_name!r}")
    token, row, customer = session_tokens.create_session_token(
        organization.id, CustomerIn(external_id=external_id, email=email), expires_in
    )
    db.session.commit()
    _print(
        {"token": token, "expires_at": row.expires_at.isoformat(), "customer_id": str(customer.id)},
        as_json,
    )


@billingos_cli.command("doctor")
def doctor() -> None:
    """Check configuration, Postgres, Redis, Stripe and the webhook endpoint (exit 1: a problem)."""
    from flask import current_app

    from app import doctor as checks
    from app import settings_of

    report = checks.run(settings_of(current_app))
    for line in checks.lines(report):
        click.echo(line)
    if not report.healthy:
        raise SystemExit(1)


# --- API keys --------------------------------------------------------------------------------


def _organization(reference: str) -> Organization:
    """An organization by id, or by name."""
    try:
        organization = db.session.get(Organization, uuid.UUID(reference))
    except ValueError:
        organization = organization_named(reference)
    if organization is None:
        raise click.ClickException(f"no organization {reference!r}")
    return organization


def _key_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise click.ClickException(f"not an API key id: {value!r}") from None


_ORGANIZATION = click.option(
    "--organization", "organization_ref", default=DEMO_ORGANIZATION, help="Id or name."
)
_JSON = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


@billingos_cli.group("api-keys")
def api_keys_cli() -> None:
    """An organization's secret keys: list, create, revoke, rotate."""


@api_keys_cli.command("list")
@_ORGANIZATION
@_JSON
def list_api_keys(organization_ref: str, as_json: bool) -> None:
    """The organization's newest 100 keys (never the secrets)."""
    organization = _organization(organization_ref)
    rows, _ = api_keys.list_keys(organization.id, ListQuery(limit=100))
    for row in rows:
        out = api_key_out(row)
        if as_json:
            click.echo(out.model_dump_json())
        else:
            used = out.last_used_at.isoformat() if out.last_used_at else "never"
            click.echo(f"{out.id}  {out.prefix}…  {out.status}  {out.name or ''}  used: {used}")


@api_keys_cli.command("create")
@_ORGANIZATION
@click.option("--name", default=None, help="A label for the key.")
@_JSON
def create_api_key(organization_ref: str, name: str | None, as_json: bool) -> None:
    """Create a key and print its secret (shown only once)."""
    organization = _organization(organization_ref)
    secret, row = api_keys.create_key(organization.id, name)
    db.session.commit()
    _print(api_key_created(row, secret).model_dump(mode="json"), as_json)


@api_keys_cli.command("revoke")
@click.argument("key_id")
@_ORGANIZATION
def revoke_api_key(key_id: str, organization_ref: str) -> None:
    """Stop a key at once."""
    organization = _organization(organization_ref)
    try:
        row = api_keys.revoke_key(organization.id, _key_id(key_id))
    except api_keys.ApiKeyNotFound as error:
        raise click.ClickException(error.detail) from None
    db.session.commit()
    click.echo(f"{row.id} revoked.")


@api_keys_cli.command("rotate")
@click.argument("key_id")
@_ORGANIZATION
@click.option(
    "--overlap-seconds",
    type=click.IntRange(0, MAX_OVERLAP_SECONDS),
    default=None,
    help="How long the old key keeps working (default: API_KEY_ROTATION_OVERLAP_SECONDS).",
)
@_JSON
def rotate_api_key(
    key_id: str, organization_ref: str, overlap_seconds: int | None, as_json: bool
) -> None:
    """Create a replacement key; the old one stops after the overlap window."""
    organization = _organization(organization_ref)
    if overlap_seconds is None:
        overlap_seconds = settings_of(current_app).api_key_rotation_overlap_seconds
    try:
        secret, new, old = api_keys.rotate_key(organization.id, _key_id(key_id), overlap_seconds)
    except (api_keys.ApiKeyNotFound, api_keys.ApiKeyNotRotatable) as error:
        raise click.ClickException(error.detail) from None
    db.session.commit()
    payload = api_key_created(new, secret).model_dump(mode="json")
    payload["old_key_expires_at"] = old.expires_at.isoformat() if old.expires_at else None
    _print(payload, as_json)


# --- Stripe webhook inbox (issue 5) ----------------------------------------------------------


@billingos_cli.group("events", invoke_without_command=True)
@click.option("--failed", "only_failed", is_flag=True, help="List events that gave up.")
@click.option("--limit", default=50, type=click.IntRange(1, 1000))
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines.")
@click.pass_context
def events(ctx: click.Context, only_failed: bool, limit: int, as_json: bool) -> None:
    """The Stripe webhook inbox: `events --failed`, `events replay ID`."""
    if ctx.invoked_subcommand is not None:
        return
    if not only_failed:
        click.echo(ctx.get_help())
        return
    from app.webhooks import service as webhooks

    rows = webhooks.failed_events(db.session(), limit=limit)
    for row in rows:
        entry = {
            "id": row.stripe_event_id,
            "type": row.type,
            "status": row.status,
            "attempts": row.attempts,
            "last_error": row.last_error,
            "received_at": row.received_at.isoformat(),
        }
        if as_json:
            click.echo(json.dumps(entry))
        else:
            click.echo(
                f"{entry['id']}  {entry['type']}  attempts={entry['attempts']}  "
                f"received={entry['received_at']}\n    {entry['last_error']}"
            )
    if not rows and not as_json:
        click.echo("No failed events.")


@events.command("replay")
@click.argument("event_id")
@click.option("--force", is_flag=True, help="Replay an event that was already processed.")
def replay_event(event_id: str, force: bool) -> None:
    """Process a stored event again (by Stripe event id `evt_…` or inbox row id)."""
    from app.errors import ApiError
    from app.webhooks import service as webhooks

    try:
        row = webhooks.replay_event(db.session(), event_id, force=force)
    except ApiError as error:
        db.session.rollback()
        raise click.ClickException(error.detail) from None
    db.session.commit()
    click.echo(f"{row.stripe_event_id} ({row.type}) queued for processing.")
