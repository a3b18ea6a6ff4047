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
