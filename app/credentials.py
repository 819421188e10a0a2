"""What a credential's prefix says: which kind it is and which mode (test or live) it belongs to.

The SDKs decide where to send a credential from its prefix alone: `@billingos/node` refuses a
secret key that does not start with `sk_test_` / `sk_live_`, and the React SDK treats
`bos_session_test_…` as sandbox and `bos_session_live_…` as production. A deployment runs in one
mode (`BILLINGOS_MODE`) and mints credentials of that mode only; the prefixes issued before the
SDK ones (`bos_sk_test_`, `bos_st_`, only ever minted by test deployments) stay valid.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from flask import current_app, has_app_context

TEST = "test"
LIVE = "live"
MODES = (TEST, LIVE)

SECRET_KEY = "secret_key"
SESSION_TOKEN = "session_token"

# 32 random bytes → 43 URL-safe characters.
_TOKEN_BYTES = 32


@dataclass(frozen=True)
class CredentialPrefix:
    prefix: str
    kind: str
    mode: str


_ISSUED = {
    (SECRET_KEY, TEST): CredentialPrefix("sk_test_", SECRET_KEY, TEST),
    (SECRET_KEY, LIVE): CredentialPrefix("sk_live_", SECRET_KEY, LIVE),
    (SESSION_TOKEN, TEST): CredentialPrefix("bos_session_test_", SESSION_TOKEN, TEST),
    (SESSION_TOKEN, LIVE): CredentialPrefix("bos_session_live_", SESSION_TOKEN, LIVE),
}
_LEGACY = (
    CredentialPrefix("bos_sk_test_", SECRET_KEY, TEST),
    CredentialPrefix("bos_st_", SESSION_TOKEN, TEST),
)
# No prefix is a prefix of another, so the first match is the only one.
PREFIXES = (*_ISSUED.values(), *_LEGACY)


def classify(credential: str) -> CredentialPrefix | None:
    for known in PREFIXES:
        if credential.startswith(known.prefix):
            return known
    return None


def deployment_mode() -> str:
    """The mode this process serves (`BILLINGOS_MODE`); test outside an application."""
    if not has_app_context():
        return TEST
    mode: str = current_app.config["BILLINGOS"].mode
    return mode


def generate(kind: str, mode: str | None = None) -> str:
    prefix = _ISSUED[(kind, mode or deployment_mode())].prefix
    return prefix + secrets.token_urlsafe(_TOKEN_BYTES)


def other_mode_message(credential_mode: str) -> str:
    settings = current_app.config["BILLINGOS"]
    host = settings.live_api_url if credential_mode == LIVE else settings.test_api_url
    return (
        f"This is a {credential_mode}-mode credential, but this host serves "
        f"{settings.mode} mode: send it to {host}."
    )
