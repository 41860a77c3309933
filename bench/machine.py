"""What the benchmarks report about the machine they ran on."""

from __future__ import annotations

import platform


def cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux), else what platform knows."""
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine() or "unknown"


def print_table(header: str, rows) -> None:
    """A markdown table: `header` (its head and rule lines), then one line per row of strings."""
    print(header)
    for r in rows:
        print("| " + " | ".join(r) + " |")
