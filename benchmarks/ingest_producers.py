"""Producers and CPU meters for benchmarks.ingest: a fleet of producer processes that
send while the worker consumes, and what each process (and the broker) spent.

Producers are processes of their own, as check-in points are: kafka-python processes
(`python`: packed batches, or JSON), or Kafka's own Java console producer from the broker's
jars (`java`: JSON lines with their header and key, what most producing systems run: the
Java client). Each is started and made ready off the clock; `Fleet.go()` starts every one
at once and the clock with it.
"""

from __future__ import annotations

import os
import resource
import subprocess
import threading
import time
from pathlib import Path

from api.workers import die_with_parent
from benchmarks.environment import cpu_ticks

ROOT = Path(__file__).resolve().parents[1]
KAFKA_LIBS = ROOT / ".cache" / "kafka" / "libs"
TICK = os.sysconf("SC_CLK_TCK")


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a live process (its threads included); 0 if gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def children_cpu_s() -> float:
    """User + system CPU seconds of this process's children that have been waited for."""
    use = resource.getrusage(resource.RUSAGE_CHILDREN)
    return use.ru_utime + use.ru_stime


def machine_busy_s() -> float:
    """CPU seconds the whole machine has been busy (every core, every process), not
    counting the time the hypervisor took from it (steal: see environment.cpu_ticks)."""
    return cpu_ticks()[0] / TICK


def listener_pid(port: int) -> int | None:
    """The pid of the process listening on TCP `port` (the broker), or None."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if parts[3] == "0A" and int(parts[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{parts[9]}]")
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                    return int(pid)
        except OSError:
            continue
    return None


def _python_producer(bootstrap, topic, records, done, go) -> None:
    """One kafka-python producer process: connects, says ready, waits for `go`, sends
    `records` ((value, headers, key) each) with acks=all, flushes; puts its seconds."""
    from kafka import KafkaProducer

    die_with_parent()  # a benchmark that dies must not leave producers holding its pipes
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5,
                             batch_size=1 << 20, max_request_size=16 << 20)
    producer.partitions_for(topic)  # metadata fetched off the clock
    done.put("ready")
    go.wait()
    began = time.perf_counter()
    for value, headers, key in records:
        producer.send(topic, value, key=key, headers=headers)
    producer.flush()
    done.put(time.perf_counter() - began)
    producer.close()


class Fleet:
    """`count` producer processes of one `kind`, each sending its share of `records`."""

    def __init__(self, kind: str, count: int, bootstrap: str, topic: str, records):
        self.kind = kind
        self.children_before = children_cpu_s()
        shares = [records[i::count] for i in range(count)]
        self.procs: list = []
        if kind == "python":
            import multiprocessing
            # spawned, not forked: the benchmark runs threads (kafka-python's IO)
            context = multiprocessing.get_context("spawn")
            self.done, self._go = context.Queue(), context.Event()
            for share in shares:
                proc = context.Process(target=_python_producer,
                                       args=(bootstrap, topic, share, self.done, self._go))
                proc.start()
                self.procs.append(proc)
            for _ in shares:
                if self.done.get(timeout=120) != "ready":
                    raise RuntimeError("a producer failed to start")
        elif kind == "java":
            self.lines = [b"".join(_console_line(*r) for r in share) for share in shares]
            for _ in shares:
                self.procs.append(subprocess.Popen(_console_command(bootstrap, topic),
                                                   stdin=subprocess.PIPE,
                                                   stdout=subprocess.DEVNULL,
                                                   preexec_fn=die_with_parent))
            _wait_idle([p.pid for p in self.procs])
        else:
            raise ValueError(f"unknown producer kind {kind!r}")
        self.cpu_at_go = sum(process_cpu_s(p.pid) for p in self.procs)
        self.began = 0.0
        self.seconds: list[float] = []

    def go(self) -> None:
        """Start every producer now."""
        self.began = time.perf_counter()
        if self.kind == "python":
            self._go.set()
            return
        self._feeders = [threading.Thread(target=_feed, args=(p, lines, self.seconds,
                                                               self.began), daemon=True)
                         for p, lines in zip(self.procs, self.lines, strict=True)]
        for feeder in self._feeders:
            feeder.start()

    def failure(self) -> str | None:
        """Why a producer stopped before sending everything (it exited with an error),
        or None while none has."""
        for proc in self.procs:
            code = proc.poll() if self.kind == "java" else proc.exitcode
            if code not in (None, 0):
                return f"a {self.kind} producer exited with {code} (its errors are above)"
        return None

    def finish(self) -> tuple[float, float]:
        """Wait for every producer to end; returns (seconds until the last one had sent
        and flushed everything, their CPU seconds from `go` on)."""
        if self.kind == "python":
            for proc in self.procs:
                self.seconds.append(self.done.get(timeout=600))
                proc.join()
        else:
            for feeder in self._feeders:
                feeder.join()
            for proc in self.procs:
                if proc.wait(timeout=600) != 0:
                    raise RuntimeError(f"the console producer exited with {proc.returncode}")
        cpu = children_cpu_s() - self.children_before - self.cpu_at_go
        return max(self.seconds), cpu


def _console_line(value: bytes, headers, key: bytes) -> bytes:
    head = b",".join(k.encode() + b":" + v for k, v in headers)
    return head + b"\t" + key + b"\t" + value + b"\n"


def _console_command(bootstrap: str, topic: str) -> list[str]:
    """Kafka's console producer: headers, key and value per line, acks=all, batches of up
    to 1 MB sent after at most 5 ms."""
    # C1 only: the optimising compiler's threads cost more CPU than they saved over a
    # run of a few seconds (14 against 17-21 us of producer CPU per event, 06:42-06:44)
    return ["java", "-Xmx512m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
            "-cp", f"{KAFKA_LIBS}/*",
            "org.apache.kafka.tools.ConsoleProducer", "--bootstrap-server", bootstrap,
            "--topic", topic, "--request-required-acks", "all", "--timeout", "5",
            "--max-partition-memory-bytes", str(1 << 20),
            "--property", "parse.key=true", "--property", "parse.headers=true",
            "--property", "key.separator=\t", "--property", "headers.delimiter=\t"]


def _wait_idle(pids: list[int], settle_s: float = 0.6, limit_s: float = 60.0) -> None:
    """Wait until the JVMs have started and sit idle (reading their empty stdin): their
    CPU time stops growing."""
    deadline = time.monotonic() + limit_s
    last, still_since = -1.0, time.monotonic()
    time.sleep(0.5)
    while time.monotonic() < deadline:
        now_cpu = sum(process_cpu_s(pid) for pid in pids)
        if now_cpu != last:
            last, still_since = now_cpu, time.monotonic()
        elif time.monotonic() - still_since >= settle_s:
            return
        time.sleep(0.1)


def _feed(proc, lines: bytes, seconds: list, began: float) -> None:
    """Write a console producer's lines, close its input, and note when it has sent all
    (it flushes and exits at the end of its input)."""
    view = memoryview(lines)
    for at in range(0, len(view), 1 << 20):
        proc.stdin.write(view[at:at + (1 << 20)])
    proc.stdin.close()
    proc.wait()
    seconds.append(time.perf_counter() - began)
