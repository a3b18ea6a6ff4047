"""Fixtures shared by the test packages: a real Kafka broker, the one in QRTRACE_KAFKA,
else one started with scripts/kafka for this session (and stopped at its end)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """HOST:PORT of a running broker."""
    if os.environ.get("QRTRACE_KAFKA"):
        yield os.environ["QRTRACE_KAFKA"]
        return
    started = subprocess.run([ROOT / "scripts" / "kafka", "start"], capture_output=True,
                             text=True, timeout=600)
    if started.returncode != 0:
        pytest.fail(f"scripts/kafka start failed:\n{started.stderr[-3000:]}")
    try:
        yield started.stdout.strip().splitlines()[-1]
    finally:
        subprocess.run([ROOT / "scripts" / "kafka", "stop"], capture_output=True, timeout=120)
