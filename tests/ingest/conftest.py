"""A real Kafka broker for the ingest tests: the one in QRTRACE_KAFKA, else one started
with scripts/kafka for this session (and stopped at its end)."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
KAFKA_LIBS = ROOT / ".cache" / "kafka" / "libs"


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
