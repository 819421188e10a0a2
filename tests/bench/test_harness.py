"""The bench harness's own pieces: statistics, result files, plots, the load generator, frames.

Fast (a few seconds) and free of the stack: the full `make bench` never runs in `make test`.
"""

from __future__ import annotations

import json
import random
import shutil
import signal
import struct
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy
import pytest
import stripe

from bench.figures.event_processing import completion_rate
from bench.loadgen import run_load
from bench.plots import write_plots
from bench.procs import ROOT, ProcessRegistry
from bench.results import Figure, markdown_table, not_available, write_results
from bench.stats import percentile, ratio, steady_rate, summarize_latencies
from bench.wsclient import decode_frame, encode_client_frame
from tests.support.stripe_webhooks import envelope, signature_header


class TestPercentile:
    def test_matches_numpy_linear_interpolation(self) -> None:
        rng = random.Random(7)
        samples = [rng.expovariate(1 / 3.0) for _ in range(1001)]
        for q in (0, 1, 50, 90, 99, 99.9, 100):
            assert percentile(samples, q) == pytest.approx(float(numpy.percentile(samples, q)))

    def test_single_sample_is_every_percentile(self) -> None:
        assert percentile([4.2], 99) == 4.2

    def test_no_samples_is_an_error_not_a_zero(self) -> None:
        with pytest.raises(ValueError):
            percentile([], 50)

    def test_summary_of_known_values(self) -> None:
        summary = summarize_latencies([float(i) for i in range(1, 101)])
        assert summary.count == 100
        assert summary.p50 == pytest.approx(50.5)
        assert summary.p99 == pytest.approx(99.01)
        assert summary.max == 100.0


class TestRates:
    def test_steady_rate_ignores_warm_up_and_drain(self) -> None:
        # A slow start, 1,000 completions at exactly 100/s, a straggler at the end.
        times = [0.0, 5.0] + [10.0 + i / 100 for i in range(1000)] + [60.0]
        assert steady_rate(times) == pytest.approx(100.0, rel=0.02)

    def test_completion_rate_interpolates_between_samples(self) -> None:
        samples = [(0.0, 0), (1.0, 0), (2.0, 100), (3.0, 200), (4.0, 300), (5.0, 400), (6.0, 400)]
        # 10% (40) at t=1.4, 90% (360) at t=4.6: 320 events in 3.2 s.
        assert completion_rate(samples, 400) == pytest.approx(100.0)

    def test_completion_rate_is_zero_when_never_finished(self) -> None:
        assert completion_rate([(0.0, 0), (1.0, 10)], 400) == 0.0

    def test_ratio_without_baseline_is_none(self) -> None:
        assert ratio(5.0, None) is None
        assert ratio(5.0, 0) is None
        assert ratio(5.0, 10.0) == 0.5


class TestResultFiles:
    def test_table_shows_value_baseline_ratio_and_verdict(self) -> None:
        figure = Figure(
            "webhook_ingest_throughput",
            "webhook ingest throughput",
            "events/s",
            goal="≥ 900 events/s",
            value=1200.0,
            baseline=1500.0,
            baseline_label="verify + insert + enqueue",
            passed=False,
            loadgen_cpu=0.4,
        )
        row = markdown_table([figure]).splitlines()[2]
        assert "1,200 events/s" in row
        assert "1,500 events/s (verify + insert + enqueue)" in row
        assert "0.80×" in row
        assert "not met" in row
        assert "0.40 cores" in row

    def test_a_missing_feature_is_a_row_that_says_why_and_has_no_number(self) -> None:
        figure = not_available("x", "entitlement reads", "req/s", "≥ 2,000", "GET answered 404")
        row = markdown_table([figure]).splitlines()[2]
        assert "not available: GET answered 404" in row
        assert "skipped" in row
        assert figure.value is None and figure.passed is None

    def test_write_results_writes_json_and_markdown(self, tmp_path) -> None:  # type: ignore[no-untyped-def]
        figures = [
            Figure("a", "A", "ms", goal="p99 ≤ 20 ms", value=3.0, baseline=2.0, passed=True),
            not_available("b", "B", "req/s", "≥ 1", "endpoint absent"),
        ]
        json_path, md_path = write_results(
            figures,
            machine={"cores": 2, "memory_mib": 1024},
            run={"mode": "quick"},
            directory=tmp_path,
        )
        document = json.loads(json_path.read_text())
        assert document["machine"]["cores"] == 2
        first, second = document["figures"]
        assert first["ratio"] == 1.5 and first["passed"] is True and first["available"] is True
        assert second["available"] is False and second["value"] is None
        assert "| A | 3.00 ms |" in md_path.read_text()

    def test_plots_are_written_as_png(self, tmp_path) -> None:  # type: ignore[no-untyped-def]
        paths = write_plots(
            {
                "webhook_latency": {"BillingOS": [1.0, 2.0, 3.0], "baseline": [0.5, 1.0]},
                "webhook_sweep": {"BillingOS": [(100.0, 100.0), (200.0, 180.0)]},
                "empty": {"BillingOS": []},
            },
            tmp_path,
        )
        assert sorted(p.name for p in paths) == ["webhook_latency.png", "webhook_sweep.png"]
        assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in paths)


class TestStripeSignature:
    def test_the_generated_signature_verifies_with_the_stripe_library(self) -> None:
        payload = json.dumps(envelope("payment_intent.succeeded", {"id": "pi_1"}, event_id="evt_1"))
        header = signature_header(payload, "whsec_test")
        event = stripe.Webhook.construct_event(payload, header, "whsec_test")
        assert event["id"] == "evt_1"

    def test_a_signature_for_another_secret_does_not_verify(self) -> None:
        payload = json.dumps(envelope("payment_intent.succeeded", {"id": "pi_1"}, event_id="evt_1"))
        with pytest.raises(stripe.SignatureVerificationError):
            stripe.Webhook.construct_event(payload, signature_header(payload, "whsec_a"), "whsec_b")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like gunicorn

    def do_GET(self) -> None:
        status = 200 if self.path == "/ok" else 404
        body = b'{"status":"ok"}'
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def http_server() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()


class TestLoadGenerator:
    def test_closed_loop_counts_answers_and_reports_its_cpu(self, http_server: int) -> None:
        result = run_load(
            {
                "host": "127.0.0.1",
                "port": http_server,
                "mode": "closed",
                "duration": 0.5,
                "connections": 4,
                "request": {"kind": "static", "path": "/ok"},
                "ok_statuses": [200],
            },
            processes=2,
        )
        assert result.ok > 0 and result.error_count == 0
        assert len(result.latencies_ms) == result.ok
        assert result.cpu_seconds > 0

    def test_open_loop_sends_the_scheduled_number_and_counts_errors(self, http_server: int) -> None:
        result = run_load(
            {
                "host": "127.0.0.1",
                "port": http_server,
                "mode": "open",
                "rate": 40,
                "duration": 0.5,
                "connections": 2,
                "request": {"kind": "static", "path": "/missing"},
                "ok_statuses": [200],
            },
            processes=1,
        )
        assert result.ok == 0
        assert result.errors == {"404": 20}


class TestWebsocketFrames:
    def test_a_masked_client_frame_decodes_to_its_payload(self) -> None:
        for size in (5, 300, 70_000):
            payload = bytes(random.Random(size).getrandbits(8) for _ in range(size))
            opcode, fin, decoded, _used = decode_frame(encode_client_frame(0x1, payload)) or (
                0,
                0,
                b"",
                0,
            )
            assert (opcode, fin, decoded) == (0x1, True, payload)

    def test_an_incomplete_frame_is_not_decoded(self) -> None:
        frame = bytes([0x81, 126]) + struct.pack("!H", 200) + b"x" * 100
        assert decode_frame(frame) is None
        assert decode_frame(frame + b"x" * 100) == (0x1, True, b"x" * 200, len(frame) + 100)


class TestResultsDirectory:
    def test_kept_logs_go_to_results_tmp_which_git_ignores(self, monkeypatch) -> None:  # type: ignore[no-untyped-def]
        monkeypatch.setenv("BENCH_KEEP_LOGS", "1")
        handlers = {
            sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
        }
        registry = ProcessRegistry("test")
        try:
            registry.close()
            assert registry.log_dir.is_dir(), "kept logs survive the harness"
            assert registry.log_dir.parent == ROOT / "bench" / "results" / "tmp"
            if not (ROOT / ".git").exists():
                pytest.skip("not a git checkout")
            ignored = subprocess.run(
                ["git", "check-ignore", "-q", str(registry.log_dir / "web.log")], cwd=ROOT
            )
            assert ignored.returncode == 0
        finally:
            shutil.rmtree(registry.log_dir, ignore_errors=True)
            for sig, handler in handlers.items():
                signal.signal(sig, handler)

    def test_final_results_are_tracked_and_the_fuzz_cache_is_ignored(self) -> None:
        if not (ROOT / ".git").exists():
            pytest.skip("not a git checkout")
        check = ["git", "check-ignore", "-q"]
        assert subprocess.run([*check, "bench/results/latest.json"], cwd=ROOT).returncode == 1
        assert subprocess.run([*check, ".schemathesis/x.json"], cwd=ROOT).returncode == 0
