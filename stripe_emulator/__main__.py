"""``python -m stripe_emulator --host 127.0.0.1 --port 12111 [--webhook-url URL ...]``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

from .engine import Engine
from .http_server import serve
from .server import App
from .webhooks import DEFAULT_RETRY_DELAYS, Dispatcher


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m stripe_emulator", description="Stateful in-memory Stripe API emulator."
    )
    ap.add_argument("--host", default="127.0.0.1", help="bind address (default: loopback)")
    ap.add_argument("--port", type=int, default=12111, help="0 picks a free port")
    ap.add_argument(
        "--webhook-url",
        action="append",
        default=[],
        help="endpoint to deliver events to (repeatable); survives /_emulator/reset",
    )
    ap.add_argument(
        "--webhook-secret",
        action="append",
        default=[],
        help="whsec_... signing secret for the matching --webhook-url",
    )
    ap.add_argument(
        "--webhook-retry-delays",
        default=",".join(str(d) for d in DEFAULT_RETRY_DELAYS),
        help="comma-separated seconds between delivery attempts (bounded)",
    )
    ap.add_argument(
        "--webhook-timeout",
        type=float,
        default=10.0,
        help="seconds before a delivery attempt counts as timed out",
    )
    ap.add_argument(
        "--webhook-concurrency",
        type=int,
        default=1,
        help="parallel deliveries per endpoint (1 keeps emission order)",
    )
    ap.add_argument(
        "--max-events",
        type=int,
        default=100_000,
        help="events kept in memory (oldest dropped first)",
    )
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    delays = [float(x) for x in args.webhook_retry_delays.split(",") if x.strip()]
    dispatcher = Dispatcher(delays, args.webhook_timeout, args.webhook_concurrency)
    engine = Engine(max_events=args.max_events, on_event=dispatcher.on_event)
    app = App(engine, dispatcher)
    for i, url in enumerate(args.webhook_url):
        secret = args.webhook_secret[i] if i < len(args.webhook_secret) else None
        ep = dispatcher.add_endpoint(url, secret, permanent=True)
        if secret is None:
            print(f"stripe_emulator: webhook secret for {url}: {ep.secret}", flush=True)

    def ready(port: int) -> None:
        print(f"stripe_emulator listening on http://{args.host}:{port}", flush=True)

    async def run() -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None  # asyncio.run runs this coroutine as a task
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, task.cancel)
        await serve(args.host, args.port, app, ready)

    with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
        asyncio.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
