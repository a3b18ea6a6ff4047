"""What a benchmark ran on: CPU, cores, load, Python and library versions, date, command."""

from __future__ import annotations

import datetime as dt
import os
import platform
import shlex
import sys
from importlib import metadata


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, else what platform knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def describe(module: str, packages: tuple[str, ...] = ()) -> dict[str, object]:
    """The machine and the run, as a dict of plain values.

    module: the benchmark's module name, for the command line it was run with.
    packages: distributions whose versions to record, under "versions" ("absent" when
    not installed).
    """
    versions = {}
    for dist in packages:
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "absent"
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "versions": versions,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": f"python -m {module} " + shlex.join(sys.argv[1:]),
    }


def cpu_ticks() -> tuple[int, int, int]:
    """The whole machine's CPU time so far, in clock ticks (/proc/stat's first line), as
    (busy, idle, steal): busy = user + nice + system + irq + softirq; idle = idle +
    iowait; steal = time the hypervisor gave this VM's virtual CPUs to others while they
    had work. (0, 0, 0) where /proc/stat cannot be read."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            values = [int(v) for v in stat.readline().split()[1:9]]
    except (OSError, ValueError):
        return 0, 0, 0
    user, nice, system, idle, iowait, irq, softirq, steal = values + [0] * (8 - len(values))
    return user + nice + system + irq + softirq, idle + iowait, steal


def steal_share(before: tuple[int, int, int], after: tuple[int, int, int]) -> float:
    """Of the machine's CPU time between two cpu_ticks() readings, the share the
    hypervisor took (steal), 0 to 1. On a shared VM, a run whose virtual CPUs were
    taken from it for tens of milliseconds at a time shows it here, and its latency
    tail with it."""
    spent = [a - b for a, b in zip(after, before, strict=True)]
    total = sum(spent)
    return round(spent[2] / total, 3) if total > 0 else 0.0
