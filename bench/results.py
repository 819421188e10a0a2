"""The rows of the benchmark table and the files they are written to.

Every figure is either measured (a value, its same-run baseline, the ratio, the goal and whether
it was met) or explicitly "not available: <why>" — never a made-up number.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.stats import ratio

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "bench" / "results"


@dataclass
class Figure:
    key: str
    title: str
    unit: str
    goal: str
    value: float | None = None
    baseline: float | None = None
    baseline_label: str = "—"
    passed: bool | None = None
    reason: str | None = None  # set when the figure could not be measured
    details: dict[str, Any] = field(default_factory=dict)
    # Cores the load generator itself used while this figure was measured (1.0 = one core).
    loadgen_cpu: float | None = None
    # A second same-run reference shown beside the baseline (no ratio, no verdict of its own).
    second_baseline: float | None = None
    second_baseline_label: str = ""

    @property
    def available(self) -> bool:
        return self.reason is None

    @property
    def ratio(self) -> float | None:
        return ratio(self.value, self.baseline)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["available"] = self.available
        out["ratio"] = self.ratio
        return out


def not_available(key: str, title: str, unit: str, goal: str, why: str) -> Figure:
    return Figure(key=key, title=title, unit=unit, goal=goal, reason=f"not available: {why}")


def at_least(threshold: float) -> Callable[[float], bool]:
    return lambda value: value >= threshold


def at_most(threshold: float) -> Callable[[float], bool]:
    return lambda value: value <= threshold


def machine_info() -> dict[str, Any]:
    memory_kib = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_kib = int(line.split()[1])
    except OSError:
        pass
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return {
        "cores": os.cpu_count(),
        "memory_mib": memory_kib // 1024,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_model": _cpu_model(),
        "load_average_at_start": list(os.getloadavg()),
        "git_commit": commit or None,
    }


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "—"
    text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}"
    return f"{text} {unit}".strip()


def _verdict(figure: Figure) -> str:
    if not figure.available:
        return "skipped"
    if figure.passed is None:
        return "—"
    return "✅ met" if figure.passed else "❌ not met"


def markdown_table(figures: Iterable[Figure]) -> str:
    lines = [
        "| figure | measured | baseline (same run) | ratio | goal | result | load generator CPU |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for f in figures:
        if not f.available:
            reason = (f.reason or "").replace("|", "/").replace("\n", " ")
            lines.append(f"| {f.title} | {reason} | — | — | {f.goal} | skipped | — |")
            continue
        baseline = (
            f"{_fmt(f.baseline, f.unit)} ({f.baseline_label})"
            if f.baseline is not None
            else f.baseline_label
        )
        if f.second_baseline is not None:
            baseline += f"; {_fmt(f.second_baseline, f.unit)} ({f.second_baseline_label})"
        ratio_text = f"{f.ratio:.2f}×" if f.ratio is not None else "—"
        cpu = f"{f.loadgen_cpu:.2f} cores" if f.loadgen_cpu is not None else "—"
        lines.append(
            f"| {f.title} | {_fmt(f.value, f.unit)} | {baseline} | {ratio_text} | {f.goal} "
            f"| {_verdict(f)} | {cpu} |"
        )
    return "\n".join(lines) + "\n"


def write_results(
    figures: list[Figure],
    *,
    machine: dict[str, Any],
    run: dict[str, Any],
    directory: Path = RESULTS_DIR,
    name: str = "latest",
) -> tuple[Path, Path]:
    """Write `<name>.json` (everything) and `<name>.md` (the table) and return their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    generated_at = datetime.now(UTC).isoformat(timespec="seconds")
    document = {
        "generated_at": generated_at,
        "machine": machine,
        "run": run,
        "figures": [f.as_dict() for f in figures],
    }
    json_path = directory / f"{name}.json"
    json_path.write_text(json.dumps(document, indent=2, sort_keys=False) + "\n")
    md_path = directory / f"{name}.md"
    cpu_note = (
        f"{machine.get('cores')} cores, {machine.get('memory_mib')} MiB, "
        f"Python {machine.get('python')}, {machine.get('cpu_model') or 'unknown CPU'}"
    )
    md_path.write_text(
        f"<!-- generated by `make bench` at {generated_at}; do not edit by hand -->\n"
        f"Machine: {cpu_note}; mode: {run.get('mode')}; duration {run.get('seconds', 0):.0f} s.\n\n"
        + markdown_table(figures)
    )
    return json_path, md_path


def splice_into(document: Path, generated: str, name: str) -> bool:
    """Replace the text between `<!-- {name}:start -->` and `<!-- {name}:end -->` in `document`.

    The results sections of BENCHMARKS.md and RELIABILITY.md are generated, never hand-typed:
    each full run writes its table there. Returns False if the markers are absent.
    """
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    try:
        text = document.read_text()
    except OSError:
        return False
    if start not in text or end not in text:
        return False
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    document.write_text(f"{head}{start}\n{generated.rstrip()}\n{end}{tail}")
    return True
