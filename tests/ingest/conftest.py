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


class OwnBroker:
    """A broker of one test's own (scripts/kafka start NAME), which it may restart."""

    def __init__(self, name: str):
        self.name = name
        self.bootstrap = ""

    def _run(self, command: str) -> str:
        done = subprocess.run([ROOT / "scripts" / "kafka", command, self.name],
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"scripts/kafka {command} {self.name}:\n{done.stderr[-3000:]}"
        return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""

    def start(self) -> str:
        """Start it; returns HOST:PORT."""
        self.bootstrap = self._run("start")
        return self.bootstrap

    def restart(self) -> str:
        """Stop it cleanly and start it again, its data and port kept; returns HOST:PORT."""
        address = self._run("restart")
        assert address == self.bootstrap, f"restarted on {address}, not {self.bootstrap}"
        return address

    def stop(self) -> None:
        """Stop it and delete its data."""
        self._run("stop")


@pytest.fixture
def own_broker() -> OwnBroker:
    """A fresh broker for one test alone (its own port and data): restarting it disturbs
    no other test. Stopped, and its data deleted, when the test ends."""
    broker = OwnBroker(f"test-{uuid.uuid4().hex[:8]}")
    try:
        broker.start()
        yield broker
    finally:
        broker.stop()
