"""Latency and throughput statistics, computed the same way for every figure and its baseline."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any


def percentile(samples: Sequence[float], q: float) -> float:
    """The q-th percentile (0–100) with linear interpolation between closest ranks.

    The same definition as numpy's default ("linear"), written out so the harness's numbers do
    not depend on which numpy is installed.
    """
    if not samples:
        raise ValueError("percentile of no samples")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} outside 0–100")
    ordered = sorted(samples)
    if len(ordered) == 1:
        return float(ordered[0])
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = math.ceil(rank)
    if low == high:
        return float(ordered[low])
    weight = rank - low
    return float(ordered[low] * (1 - weight) + ordered[high] * weight)


@dataclass(frozen=True)
class LatencySummary:
    """Milliseconds."""

    count: int
    mean: float
    p50: float
    p90: float
    p99: float
    max: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarize_latencies(samples_ms: Sequence[float]) -> LatencySummary:
    if not samples_ms:
        raise ValueError("no latency samples")
    return LatencySummary(
        count=len(samples_ms),
        mean=sum(samples_ms) / len(samples_ms),
        p50=percentile(samples_ms, 50),
        p90=percentile(samples_ms, 90),
        p99=percentile(samples_ms, 99),
        max=float(max(samples_ms)),
    )


def rate(count: int, seconds: float) -> float:
    """Events per second; 0 when nothing was timed."""
    return count / seconds if seconds > 0 else 0.0


def steady_rate(timestamps: Sequence[float], low: float = 0.1, high: float = 0.9) -> float:
    """Completions per second between the `low` and `high` quantiles of completion times.

    Trimming the head and tail removes warm-up (first tasks waiting for a worker) and the drain
    (the last few stragglers), so the figure is the sustained rate, not the ramp.
    """
    if len(timestamps) < 2:
        return 0.0
    ordered = sorted(timestamps)
    first = int((len(ordered) - 1) * low)
    last = int((len(ordered) - 1) * high)
    if last <= first:
        first, last = 0, len(ordered) - 1
    span = ordered[last] - ordered[first]
    return rate(last - first, span)


def ratio(value: float | None, baseline: float | None) -> float | None:
    if value is None or baseline is None or baseline == 0:
        return None
    return value / baseline
