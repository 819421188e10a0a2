"""Speed benchmark of the Stripe emulator: PaymentIntent create+confirm pairs per second.

Starts ``python -m stripe_emulator`` on a free port, then runs N create+confirm pairs from
W client worker processes, each with its own keep-alive connection, twice:

* ``stripe``: through ``stripe.StripeClient`` (the real library, RequestsClient keep-alive);
* ``raw``: the same form-encoded requests over ``http.client`` keep-alive connections, which
  shows how much of the time is the stripe library rather than the emulator.

Prints a human summary and, last, one JSON line with the figures for a harness to collect.

    .venv/bin/python bench/emulator_bench.py [--pairs 3000] [--workers 2] [--mode both]
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import os
import resource
import socket
import subprocess
import sys
import time
import urllib.request
from urllib.parse import urlencode

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEY = "sk_test_bench"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _proc_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _stripe_worker(url: str, pairs: int, start_evt, out) -> None:
    import stripe

    client = stripe.StripeClient(
        KEY, base_addresses={"api": url}, http_client=stripe.RequestsClient(timeout=30)
    )
    pis = client.v1.payment_intents
    pis.create(params={"amount": 100, "currency": "usd"})  # warm the connection
    start_evt.wait()
    cpu0, t0 = _cpu(), time.perf_counter()
    ok = 0
    for _ in range(pairs):
        pi = pis.create(
            params={
                "amount": 1999,
                "currency": "usd",
                "automatic_payment_methods": {"enabled": True, "allow_redirects": "never"},
            }
        )
        pi = pis.confirm(pi.id, params={"payment_method": "pm_card_visa"})
        ok += pi.status == "succeeded"
    out.put({"wall": time.perf_counter() - t0, "cpu": _cpu() - cpu0, "ok": ok})


def _raw_worker(url: str, pairs: int, start_evt, out) -> None:
    host, port = url.split("//")[1].split(":")
    conn = http.client.HTTPConnection(host, int(port))
    headers = {
        "Authorization": f"Bearer {KEY}",
        "Content-Type": "application/x-www-form-urlencoded",
        "Stripe-Version": "2026-10-28.endive",
    }

    def post(path: str, params: dict) -> dict:
        conn.request("POST", path, urlencode(params), headers)
        resp = conn.getresponse()
        return json.loads(resp.read())

    post("/v1/payment_intents", {"amount": 100, "currency": "usd"})
    start_evt.wait()
    cpu0, t0 = _cpu(), time.perf_counter()
    ok = 0
    for _ in range(pairs):
        pi = post(
            "/v1/payment_intents",
            {"amount": 1999, "currency": "usd", "automatic_payment_methods[enabled]": "true"},
        )
        pi = post(f"/v1/payment_intents/{pi['id']}/confirm", {"payment_method": "pm_card_visa"})
        ok += pi["status"] == "succeeded"
    out.put({"wall": time.perf_counter() - t0, "cpu": _cpu() - cpu0, "ok": ok})


def run_mode(mode: str, url: str, server_pid: int, pairs: int, workers: int) -> dict:
    target = _stripe_worker if mode == "stripe" else _raw_worker
    ctx = mp.get_context("fork")
    start_evt, out = ctx.Event(), ctx.Queue()
    per = pairs // workers
    procs = [ctx.Process(target=target, args=(url, per, start_evt, out)) for _ in range(workers)]
    for p in procs:
        p.start()
    time.sleep(1.0)  # let workers import and warm up
    srv0 = _proc_cpu(server_pid)
    t0 = time.perf_counter()
    start_evt.set()
    results = [out.get(timeout=600) for _ in procs]
    wall = time.perf_counter() - t0
    srv_cpu = _proc_cpu(server_pid) - srv0
    for p in procs:
        p.join()
    done = per * workers
    ok = sum(r["ok"] for r in results)
    client_cpu = sum(r["cpu"] for r in results)
    return {
        "mode": mode,
        "pairs": done,
        "succeeded": ok,
        "workers": workers,
        "wall_s": round(wall, 3),
        "pairs_per_s": round(done / wall, 1),
        "requests_per_s": round(2 * done / wall, 1),
        "client_cpu_s": round(client_cpu, 3),
        "client_cpu_ms_per_pair": round(1000 * client_cpu / done, 3),
        "server_cpu_s": round(srv_cpu, 3),
        "server_cpu_ms_per_pair": round(1000 * srv_cpu / done, 3),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", type=int, default=3000)
    ap.add_argument("--workers", type=int, default=2, help="client processes")
    ap.add_argument("--mode", choices=("stripe", "raw", "both"), default="both")
    args = ap.parse_args()

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "stripe_emulator", "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(url + "/_emulator/health", timeout=1).read()  # noqa: S310
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise SystemExit("emulator did not start")
        results = []
        modes = ("stripe", "raw") if args.mode == "both" else (args.mode,)
        for mode in modes:
            urllib.request.urlopen(  # noqa: S310
                urllib.request.Request(url + "/_emulator/reset", b"{}", method="POST")  # noqa: S310
            ).read()
            r = run_mode(mode, url, server.pid, args.pairs, args.workers)
            results.append(r)
            print(
                f"[{mode:6}] {r['pairs']} pairs in {r['wall_s']} s: {r['pairs_per_s']} pairs/s "
                f"({r['requests_per_s']} req/s); client CPU {r['client_cpu_s']} s "
                f"({r['client_cpu_ms_per_pair']} ms/pair); emulator CPU {r['server_cpu_s']} s "
                f"({r['server_cpu_ms_per_pair']} ms/pair)"
            )
        print(
            json.dumps(
                {
                    "benchmark": "stripe_emulator_pi_create_confirm",
                    "cpus": os.cpu_count(),
                    "results": results,
                }
            )
        )
    finally:
        server.terminate()
        server.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
