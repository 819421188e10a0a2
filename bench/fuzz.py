"""`make fuzz`: schemathesis against /openapi.json of a server this harness starts.

    python -m bench.fuzz [--max-examples N] [--max-time SECONDS]

Starts the stack (its own database `billingos_fuzz` and Redis db, gunicorn as the Procfile does,
one worker, the emulator), creates a merchant (secret key) and a buyer (session token), then runs
`schemathesis run` over EVERY operation four times — each credential in each API version
(`X-BillingOS-Version`, against that version's `/openapi.json?version=…`) — with the checks that
matter here: no 5xx (`not_a_server_error`) and no response outside the spec (status code,
content type, headers, body schema). Reports (JUnit XML, and a pytest file reproducing each
failure, to turn into a regression test) go to bench/results/fuzz/. Exit code: schemathesis's
(non-zero on any failure).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

from app.versions import KNOWN_VERSIONS
from bench.procs import ROOT, VENV_BIN, ProcessRegistry
from bench.results import RESULTS_DIR
from bench.stack import Stack, log

CHECKS = ",".join(
    (
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
    )
)
DEFAULT_DATABASE_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/billingos_fuzz"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/11"


def schemathesis_argv(
    base_url: str,
    credential: str,
    version: str,
    label: str,
    max_examples: int,
    max_time: int | None,
) -> list[str]:
    report_dir = RESULTS_DIR / "fuzz"
    argv = [
        str(VENV_BIN / "schemathesis"), "run", f"{base_url}/openapi.json?version={version}",
        "--url", base_url,
        "--header", f"Authorization: Bearer {credential}",
        "--header", f"X-BillingOS-Version: {version}",
        "--checks", CHECKS,
        "--max-examples", str(max_examples),
        "--seed", "20261127",
        "--workers", "2",
        "--request-timeout", "15",
        "--report", "junit,pytest",
        "--report-dir", str(report_dir),
        "--report-junit-path", str(report_dir / f"{label}.junit.xml"),
        # Not a .py file: it is material for regression tests in tests/, not a linted module.
        "--report-pytest-path", str(report_dir / f"regressions_{label}.pytest.txt"),
        "--output-sanitize", "true",
        "--no-color",
    ]  # fmt: skip
    if max_time:
        argv += ["--max-time", str(max_time)]
    return argv


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="schemathesis over the whole API (make fuzz)")
    parser.add_argument(
        "--max-examples", type=int, default=int(os.environ.get("FUZZ_EXAMPLES", "50"))
    )
    parser.add_argument(
        "--max-time", type=int, default=int(os.environ.get("FUZZ_MAX_TIME", "0")) or None
    )
    args = parser.parse_args(argv)
    registry = ProcessRegistry("fuzz")
    try:
        stack = Stack(
            registry,
            database_url=os.environ.get("FUZZ_DATABASE_URL", DEFAULT_DATABASE_URL),
            redis_url=os.environ.get("FUZZ_REDIS_URL", DEFAULT_REDIS_URL),
            label="fuzz",
        )
        stack.prepare_data()
        stack.start_emulator()
        _, port = stack.start_web("web", workers=2)
        stack.start_worker("worker", concurrency=2)
        base_url = f"http://127.0.0.1:{port}"
        seed = stack.seed(base_url, buyers=1)
        log(f"stack on {base_url}; fuzzing every operation as a merchant and as a buyer")
        worst = 0
        for version in KNOWN_VERSIONS:
            for kind, credential in (
                ("secret_key", seed.secret_key),
                ("session_token", seed.buyers[0]["token"]),
            ):
                label = f"{kind}_{version}"
                log(f"── schemathesis with a {kind.replace('_', ' ')}, API version {version}")
                argv = schemathesis_argv(
                    base_url, credential, version, label, args.max_examples, args.max_time
                )
                done = subprocess.run(argv, cwd=ROOT, check=False)
                log(f"   schemathesis ({label}) exited {done.returncode}")
                worst = worst or done.returncode
        return worst
    finally:
        registry.close()


if __name__ == "__main__":
    sys.exit(main())
