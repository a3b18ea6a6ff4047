"""Kafka helpers for the ingest tests (the broker itself: tests/conftest.py)."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
KAFKA_LIBS = ROOT / ".cache" / "kafka" / "libs"


@pytest.fixture
def topic(kafka_bootstrap) -> str:
    """A fresh topic name (3 partitions, and its .dlq topic), made for one test."""
    from ingest.kafka_log import ensure_topics

    name = f"qrtrace.scans.test-{uuid.uuid4().hex[:12]}"
    ensure_topics(kafka_bootstrap, name, partitions=3)
    return name


def console_produce(bootstrap: str, topic: str, lines: list[str]) -> None:
    """Produce `lines` ("headers<TAB>key<TAB>value") with Kafka's own console producer."""
    cmd = ["java", "-Xmx256m", "-cp", f"{KAFKA_LIBS}/*", "org.apache.kafka.tools.ConsoleProducer",
           "--bootstrap-server", bootstrap, "--topic", topic,
           "--property", "parse.key=true", "--property", "parse.headers=true",
           "--property", "key.separator=\t", "--property", "headers.delimiter=\t"]
    done = subprocess.run(cmd, input="\n".join(lines) + "\n", capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
