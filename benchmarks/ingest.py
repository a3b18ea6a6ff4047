"""Ingestion throughput: scan events from a log into a queryable index.

    python -m benchmarks.ingest --backend kafka|embedded --format packed|json
                                [--bootstrap HOST:PORT] [--events N] [--json]

Events carry valid signed person tokens (a pool of persons, random venues and times).
embedded: every record is submitted to the in-process log at once; the clock runs from
the first submit until the worker has acknowledged the last (verified, appended, fsynced).
kafka: the records are first produced to a fresh topic (kafka-python, acks=all; timed on
its own as `produce_per_s`), then a worker in this process consumes them into the index;
`checkins_per_s` is the consuming side (log -> decoded -> verified -> durable index),
`end_to_end_per_s` is events over produce time plus consume time. With --concurrent a
producer process sends while the worker consumes, and one clock runs from the first send
until the last event is durable: `checkins_per_s` and `end_to_end_per_s` are both that.
`consume_cpu_us_per_event` is this process's CPU time (the worker, kafka-python's IO
thread; not the broker's, nor the producer's) over the consuming clock, per event: a
figure less bent by other work on the machine than the wall clock. The index is opened
as `qrtrace worker` opens it (--head-limit to change that). Kernels are warmed on a
throwaway index first; each run ends with one trace to show the index answers. Prints
one flat JSON object with --json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import uuid

import numpy as np

from api.keystore import load_keyring
from decoder import issue_token
from ingest.embedded import EmbeddedLog
from ingest.events import ScanBatch, ScanEvent
from ingest.wire import FORMAT_HEADER, encode_json, encode_packed
from ingest.worker import Worker
from tracing.index import CheckinIndex

T0 = 1_764_000_000
PERSONS = 50_000
VENUES = 5_000


def make_events(keyring, n: int, seed: int = 1) -> ScanBatch:
    """n scan events with valid tokens of a pool of persons."""
    rng = np.random.default_rng(seed)
    pool = min(PERSONS, n)
    tokens = np.array([issue_token("person", p + 1, keyring).encode() for p in range(pool)],
                      dtype="S43")
    person = rng.integers(0, pool, n)
    return ScanBatch(rng.integers(1, VENUES + 1, n).astype(np.uint64), np.ones(n, np.uint64),
                     np.arange(n, dtype=np.uint64), T0 + rng.integers(0, 14 * 86_400, n),
                     np.zeros(n, np.int64), tokens[person])


def make_records(batch: ScanBatch, fmt: str, per_record: int) -> list[tuple[bytes, list]]:
    """(value, headers) records: packed batches of `per_record`, or one JSON per event."""
    n = len(batch)
    if fmt == "packed":
        headers = [(FORMAT_HEADER, b"packed-v1")]
        return [(encode_packed(batch.take(np.arange(i, min(i + per_record, n)))), headers)
                for i in range(0, n, per_record)]
    headers = [(FORMAT_HEADER, b"json")]
    return [(encode_json(ScanEvent(int(v), 1, int(s), int(t), tok.decode())), headers)
            for v, s, t, tok in zip(batch.venue.tolist(), batch.seq.tolist(),
                                    batch.t_in.tolist(), batch.token.tolist(), strict=True)]


def run_embedded(index, keyring, records, max_records) -> tuple[float, Worker]:
    log = EmbeddedLog()
    worker = Worker(log, index, keyring, max_records=max_records, poll_timeout_s=0.05)
    import threading
    stop = threading.Event()
    runner = threading.Thread(target=worker.run, args=(stop,), kwargs={"report_every_s": 3600})
    runner.start()
    began = time.perf_counter()
    futures = [log.submit(value, headers) for value, headers in records]
    for future in futures:
        future.result()
    seconds = time.perf_counter() - began
    stop.set()
    runner.join()
    log.close()
    return seconds, worker


def _produce(bootstrap: str, topic: str, records, done=None, go=None) -> float:
    """Produce `records` (kafka-python, acks=all) and flush; returns the seconds taken.
    In a process of its own: waits for the `go` event first (its start-up is off the
    clock) and puts the seconds in the `done` queue."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20,
                             batch_size=1 << 20, max_request_size=16 << 20)
    if go is not None:
        done.put("ready")
        go.wait()
    began = time.perf_counter()
    for i, (value, headers) in enumerate(records):
        producer.send(topic, value, key=str(i % VENUES).encode(), headers=headers)
    producer.flush()
    seconds = time.perf_counter() - began
    producer.close()
    if done is not None:
        done.put(seconds)
    return seconds


def run_kafka(index, keyring, records, max_records, bootstrap, offsets, concurrent=False
              ) -> dict:
    """Produce `records` to a fresh topic and consume them into `index`: one after the
    other (the clock of each on its own), or at once (`concurrent`: the producer in a
    process of its own, as check-in points are; one clock from its first send until the
    worker has made the last event durable). Returns the figures and the worker."""
    import multiprocessing

    from ingest.kafka_log import KafkaLog, ensure_topics

    topic = f"qrtrace.scans.bench-{uuid.uuid4().hex[:8]}"
    ensure_topics(bootstrap, topic, partitions=1)
    out = {}
    if not concurrent:
        out["produce_s"] = _produce(bootstrap, topic, records)
    log = KafkaLog(bootstrap, offsets, topic=topic, group=topic + "-bench")
    worker = Worker(log, index, keyring, max_records=max_records, poll_timeout_s=0.5)
    while not log.ready():
        log.poll(1, 0.2)  # join the group first: the clock measures moving records
        if log.ready():
            break
    if concurrent:  # spawned, not forked: this process runs threads (kafka-python's IO)
        context = multiprocessing.get_context("spawn")
        done, go = context.Queue(), context.Event()
        producer = context.Process(target=_produce, args=(bootstrap, topic, records, done, go))
        producer.start()
        assert done.get() == "ready"
    began, cpu = time.perf_counter(), time.process_time()
    if concurrent:
        go.set()
    while worker.metrics.records_in < len(records):
        worker.run_once()
    out["consume_s"] = time.perf_counter() - began
    out["consume_cpu_s"] = time.process_time() - cpu
    if concurrent:
        out["produce_s"] = done.get()
        producer.join()
    log.close()
    out["worker"] = worker
    return out


def main(argv: list[str] | None = None) -> int:
    """Run one measurement and print it; returns 0."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", choices=("embedded", "kafka"), default="embedded")
    p.add_argument("--format", choices=("packed", "json"), default="packed")
    p.add_argument("--bootstrap", default=os.environ.get("QRTRACE_KAFKA"))
    p.add_argument("--events", type=int, help="default: 2,000,000 packed, 100,000 JSON")
    p.add_argument("--per-record", type=int, default=10_000, help="events per packed record")
    p.add_argument("--concurrent", action="store_true",
                   help="kafka: produce (in another process) while the worker consumes, one "
                        "clock for both; default: produce everything, then consume")
    p.add_argument("--head-limit", type=int, default=1 << 20,
                   help="rows in the index's head before it merges (default: the index's "
                        "default, as `qrtrace worker` runs it)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if args.backend == "kafka" and not args.bootstrap:
        p.error("--backend kafka needs --bootstrap HOST:PORT (or QRTRACE_KAFKA)")
    n = args.events or (2_000_000 if args.format == "packed" else 100_000)
    with tempfile.TemporaryDirectory(prefix="qrtrace-bench-") as tmp:
        keyring = load_keyring(tmp)
        batch = make_events(keyring, n)
        records = make_records(batch, args.format, args.per_record)
        max_records = 64 if args.format == "packed" else 20_000
        with CheckinIndex.open(f"{tmp}/warm") as warm:  # compile the kernels off the clock
            run_embedded(warm, keyring, make_records(batch.take(np.arange(min(n, 2000))),
                                                     args.format, 1000), max_records)
        with CheckinIndex.open(f"{tmp}/index", head_limit=args.head_limit) as index:
            result = {"backend": args.backend, "format": args.format, "events": n,
                      "records": len(records)}
            if args.backend == "embedded":
                seconds, worker = run_embedded(index, keyring, records, max_records)
                result.update(seconds=round(seconds, 3), checkins_per_s=round(n / seconds))
            else:
                got = run_kafka(index, keyring, records, max_records, args.bootstrap,
                                f"{tmp}/offsets.json", concurrent=args.concurrent)
                worker = got["worker"]
                produce_s, consume_s = got["produce_s"], got["consume_s"]
                result.update(mode="concurrent" if args.concurrent else "produce-then-consume",
                              produce_s=round(produce_s, 3), consume_s=round(consume_s, 3),
                              produce_per_s=round(n / produce_s),
                              consume_cpu_us_per_event=round(got["consume_cpu_s"] / n * 1e6, 2))
                if args.concurrent:  # one clock: first send -> last event durable
                    result.update(checkins_per_s=round(n / consume_s),
                                  end_to_end_per_s=round(n / consume_s))
                else:
                    result.update(checkins_per_s=round(n / consume_s),
                                  end_to_end_per_s=round(n / (produce_s + consume_s)))
            m = worker.metrics
            began = time.perf_counter()
            index.trace(1, T0, T0 + 14 * 86_400)
            result.update(events_in=m.events_in, checkins_added=m.checkins_added,
                          duplicates=m.duplicates, rejected=sum(m.rejected.values()),
                          first_trace_ms=round((time.perf_counter() - began) * 1000, 1),
                          load_1m=round(os.getloadavg()[0], 2), python=platform.python_version())
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>18}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
