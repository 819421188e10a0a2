"""PNG plots of a bench run: latency distributions and throughput vs. offered load."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display on a server
import matplotlib.pyplot as plt

from bench.stats import percentile

TITLES = {
    "webhook_latency": "Webhook ingest latency at ½ saturation",
    "status_latency": "Status latency: commit → websocket (200 updates/s)",
    "webhook_to_client": "Webhook → websocket `succeeded`",
    "checkout_create": "Checkout create at 200 req/s (Stripe excluded)",
    "entitlements": "Entitlement reads at ½ saturation",
    "sustained_backlog": "Sustained load (80% of ingest saturation, workers consuming): backlog",
    "two_nodes": "Webhook to node B → websocket on node A",
}


def latency_cdf(name: str, series: dict[str, list[float]], directory: Path) -> Path | None:
    """Cumulative distribution of latencies, one line per series, log-scaled milliseconds."""
    series = {label: values for label, values in series.items() if values}
    if not series:
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    for label, values in series.items():
        ordered = sorted(values)
        n = len(ordered)
        ax.plot(
            ordered,
            [(i + 1) / n for i in range(n)],
            label=(
                f"{label} (p50 {percentile(ordered, 50):.1f}, p99 {percentile(ordered, 99):.1f} ms)"
            ),
        )
    ax.set_xscale("log")
    ax.set_xlabel("latency (ms, log scale)")
    ax.set_ylabel("share of requests ≤ x")
    ax.axhline(0.99, color="grey", linewidth=0.5, linestyle="--")
    ax.set_title(TITLES.get(name, name))
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    path = directory / f"{name}.png"
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def throughput_vs_offered(
    name: str, series: dict[str, list[tuple[float, float]]], directory: Path
) -> Path | None:
    series = {label: points for label, points in series.items() if points}
    if not series:
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    top = 0.0
    for label, points in series.items():
        xs, ys = zip(*points, strict=True)
        ax.plot(xs, ys, marker="o", label=label)
        top = max(top, *xs, *ys)
    ax.plot(
        [0, top], [0, top], color="grey", linewidth=0.5, linestyle="--", label="served = offered"
    )
    ax.set_xlabel("offered load (events/s)")
    ax.set_ylabel("served (events/s)")
    ax.set_title("Webhook ingest: throughput vs. offered load")
    return _save(fig, ax, directory / f"{name}.png")


def over_time(
    name: str, series: dict[str, list[tuple[float, float]]], directory: Path
) -> Path | None:
    series = {label: points for label, points in series.items() if points}
    if not series:
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    for label, points in series.items():
        xs, ys = zip(*points, strict=True)
        ax.plot(xs, ys, label=label)
    ax.set_xlabel("seconds since the load started")
    ax.set_ylabel("events")
    ax.set_title(TITLES.get(name, name))
    return _save(fig, ax, directory / f"{name}.png")


def _save(fig: Any, ax: Any, path: Path) -> Path:
    ax.legend(fontsize=8)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_plots(data: dict[str, Any], directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for name, series in data.items():
        if name.endswith("_backlog"):
            path = over_time(name, series, directory)
        elif name.endswith("_sweep"):
            path = throughput_vs_offered(name, series, directory)
        else:
            path = latency_cdf(name, series, directory)
        if path is not None:
            written.append(path)
    return written
