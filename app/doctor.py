"""`flask billingos doctor`: is this deployment able to take payments? Each check says why not.

Checks, in order: configuration (keys and secrets plausible for the mode), Postgres (reachable,
schema at the newest migration), Redis (broker and real-time/cache), Stripe (an authenticated
call through the gateway) and the webhook endpoint Stripe delivers to. A problem is a line in
plain words; a warning is worth reading but does not fail the run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from app.config import Settings

if TYPE_CHECKING:
    from app.stripe_gateway import StripeGateway

OK = "ok"
WARN = "warn"
FAIL = "FAIL"

WEBHOOK_PATH = "/stripe/webhooks"
ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Finding:
    check: str
    status: str
    message: str


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)

    def add(self, check: str, status: str, message: str) -> None:
        self.findings.append(Finding(check, status, message))

    @property
    def healthy(self) -> bool:
        return all(f.status != FAIL for f in self.findings)


def _mode(key: str) -> str | None:
    for mode in ("test", "live"):
        if f"_{mode}_" in key:
            return mode
    return None


def check_configuration(settings: Settings, report: Report) -> None:
    secret = settings.stripe_secret_key
    if not secret.startswith(("sk_test_", "sk_live_", "rk_test_", "rk_live_")):
        report.add("configuration", FAIL, "STRIPE_SECRET_KEY is not a Stripe secret key (sk_…).")
    elif _mode(secret) == "live" and not settings.is_production:
        report.add(
            "configuration",
            FAIL,
            "STRIPE_SECRET_KEY is a live key but BILLINGOS_ENV is not production: real cards "
            "would be charged by a development setup.",
        )
    elif _mode(secret) == "test" and settings.is_production:
        report.add("configuration", WARN, "STRIPE_SECRET_KEY is a test key in production.")
    publishable = settings.stripe_publishable_key
    if not publishable.startswith(("pk_test_", "pk_live_")):
        report.add("configuration", FAIL, "STRIPE_PUBLISHABLE_KEY is not a publishable key (pk_…).")
    elif _mode(publishable) != _mode(secret):
        report.add(
            "configuration",
            FAIL,
            "STRIPE_PUBLISHABLE_KEY and STRIPE_SECRET_KEY belong to different modes (test/live).",
        )
    if settings.stripe_webhook_secret and not settings.stripe_webhook_secret.startswith("whsec_"):
        report.add(
            "configuration",
            FAIL,
            "STRIPE_WEBHOOK_SECRET is not a webhook signing secret (whsec_…): every delivery "
            "would be refused.",
        )
    # Missing or published secrets never get this far: `create_app` refuses them at start-up
    # (`Settings.secret_problems`) with the same words, before any command runs.
    if not any(f.check == "configuration" for f in report.findings):
        report.add("configuration", OK, f"mode {settings.env}, Stripe {_mode(secret)} keys")


def check_database(settings: Settings, report: Report) -> None:
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from sqlalchemy import create_engine, text

    engine = create_engine(settings.database_url, hide_parameters=True)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
            current = set(MigrationContext.configure(connection).get_current_heads())
    except Exception as error:
        report.add(
            "database",
            FAIL,
            f"cannot connect to Postgres at {engine.url.render_as_string(hide_password=True)}: "
            f"{_first_line(error)}",
        )
        return
    finally:
        engine.dispose()
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    heads = set(ScriptDirectory.from_config(config).get_heads())
    if not current:
        report.add("database", FAIL, "the schema was never migrated: run `alembic upgrade head`.")
    elif current != heads:
        report.add(
            "database",
            FAIL,
            f"the schema is at {', '.join(sorted(current))}, the code expects "
            f"{', '.join(sorted(heads))}: run `alembic upgrade head`.",
        )
    else:
        report.add("database", OK, f"reachable, migrations at head ({', '.join(sorted(heads))})")


def check_redis(settings: Settings, report: Report) -> None:
    import redis

    urls = {"broker": settings.broker_url, "redis": settings.redis_url}
    for name, url in urls.items():
        if name == "redis" and url == settings.broker_url:
            continue
        client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3)
        try:
            client.ping()
        except Exception as error:
            what = "the Celery broker" if name == "broker" else "Redis (real-time, cache)"
            report.add(
                name,
                FAIL,
                f"cannot reach {what}: {_first_line(error)}. Tasks would not be enqueued; "
                "webhooks would wait in the inbox for the sweeper.",
            )
        else:
            report.add(name, OK, "reachable")
        finally:
            client.close()


def check_stripe(settings: Settings, report: Report) -> None:
    from app.stripe_gateway import InvalidStripeRequest, StripeGateway, StripeGatewayError

    # A gateway of its own: no library retries, so a down Stripe is reported in seconds.
    gateway = StripeGateway(
        replace(settings, stripe_max_network_retries=0, stripe_read_timeout=10.0)
    )
    try:
        gateway.check_credentials()
    except InvalidStripeRequest as error:
        report.add(
            "stripe", FAIL, f"Stripe refused our key (HTTP {error.http_status}): {error.message}"
        )
        return
    except StripeGatewayError as error:
        report.add(
            "stripe", FAIL, f"Stripe is unreachable or failing: {_first_line(error.message)}"
        )
        return
    report.add("stripe", OK, f"authenticated at {settings.stripe_api_base or 'api.stripe.com'}")
    check_webhook_endpoint(gateway, report)


def check_webhook_endpoint(gateway: StripeGateway, report: Report) -> None:
    from app.stripe_gateway import InvalidStripeRequest, StripeGatewayError
    from app.webhooks.service import HANDLED_EVENT_TYPES

    try:
        endpoints = gateway.list_webhook_endpoints()
    except InvalidStripeRequest as error:
        if error.http_status == 404:
            report.add(
                "webhooks",
                WARN,
                "this Stripe API does not list webhook endpoints; check by hand that one "
                f"points at {WEBHOOK_PATH}.",
            )
            return
        report.add("webhooks", FAIL, f"cannot list webhook endpoints: {error.message}")
        return
    except StripeGatewayError as error:
        report.add("webhooks", FAIL, f"cannot list webhook endpoints: {error.message}")
        return
    ours = [
        e
        for e in endpoints
        if getattr(e, "status", None) == "enabled"
        and str(getattr(e, "url", "")).endswith(WEBHOOK_PATH)
    ]
    if not ours:
        report.add(
            "webhooks",
            FAIL,
            f"no enabled Stripe webhook endpoint points at …{WEBHOOK_PATH}: payments would "
            "settle only through the reconciler, minutes late.",
        )
        return
    for endpoint in ours:
        enabled = set(getattr(endpoint, "enabled_events", None) or [])
        missing = set() if "*" in enabled else set(HANDLED_EVENT_TYPES) - enabled
        if missing:
            report.add(
                "webhooks",
                FAIL,
                f"{endpoint.url} does not send {', '.join(sorted(missing))}.",
            )
            return
    report.add("webhooks", OK, f"{ours[0].url} receives every event BillingOS handles")


def _first_line(error: BaseException | str) -> str:
    text = str(error).strip().splitlines()
    return text[0].rstrip(".") if text else type(error).__name__


CHECKS: tuple[Callable[[Settings, Report], None], ...] = (
    check_configuration,
    check_database,
    check_redis,
    check_stripe,
)


def run(settings: Settings) -> Report:
    import logging

    # Alembic narrates how it reads the schema; the report is what matters here.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    report = Report()
    for check in CHECKS:
        check(settings, report)
    return report


def lines(report: Report) -> Iterator[str]:
    for finding in report.findings:
        yield f"{finding.status:<4}  {finding.check:<13} {finding.message}"
