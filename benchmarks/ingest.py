"""Ingestion throughput: scan events from producers into a durable, queryable index.

    python -m benchmarks.ingest --backend kafka|embedded --format packed|json
                                [--bootstrap HOST:PORT] [--events N]
                                [--arrival live|random] [--json]

Events carry valid signed person tokens (a pool of persons, random venues and times over
two weeks). They arrive in the order of their times, as check-in points send scans, with
1% uploaded up to six hours late (`--arrival live`, the default); `--arrival random`
replays them in no order, so that every event must be looked up among those stored (a
live event later than everything stored needs one comparison). What the clock covers:

- embedded: every record is submitted to the in-process log at once; the clock runs from
  the first submit until the worker has acknowledged the last (decoded, verified,
  appended, fsynced).
- kafka (default, `--mode concurrent`): producer processes (`--producers N` of
  `--producer java|python`; default: Kafka's own Java console producer for JSON,
  kafka-python for packed batches) send to a fresh topic while a worker in this process
  consumes it into the index. The producers are started and connected off the clock;
  one clock runs from the moment they are told to send until the worker has made the
  last event durable (verified, appended, fsynced, offsets saved and committed).
  `checkins_per_s` is events over that clock: producer to durable index, end to end.
  Before it, off the clock, `--broker-warmup` events (default: three times the run's) go
  the same way through a throwaway topic into a throwaway index: a broker that has just
  started spends its first seconds compiling its hot paths (the JVM's JIT) and sizing
  its heap, which a running broker did long ago (three runs of 2M packed events in a
  row on one fresh broker, each after a warm-up pass as large as itself, took 1.48,
  then 0.75, then 0.56 us of broker CPU an event: one such pass was not enough).
  `broker_warmup_per_s` reports that pass; `--broker-warmup 0` times a cold broker.
- kafka `--mode sequential`: everything is produced first (timed on its own,
  `produce_per_s`), then consumed (`checkins_per_s` is the consuming side alone).

CPU per event (user + system, from the kernel's accounting over the clock), less bent by
the other work on this 2-core machine than the wall clock: `worker_cpu_us_per_event`
(this process: the worker, kafka-python's IO thread, numba's threads),
`producer_cpu_us_per_event` (the producer processes), `broker_cpu_us_per_event` (the
process listening on the bootstrap port, when it can be found), and `machine_busy_cores`
(every process's CPU over the clock: 2.0 is both cores busy), and
`machine_steal_share` (the share of the machine's CPU time over the clock that the
hypervisor took: see benchmarks/environment.py). The index is opened as
`qrtrace worker` opens it (--head-limit to change that). Kernels are warmed on a
throwaway index first; each run ends with one trace to show the index answers. Prints
one flat JSON object with --json.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import os
import platform
import sys
import tempfile
import time
import uuid

import numpy as np

from api.keystore import load_keyring
from benchmarks.environment import cpu_ticks, steal_share
from benchmarks.ingest_producers import (
    Fleet,
    listener_pid,
    machine_busy_s,
    process_cpu_s,
)
from decoder import issue_token
from ingest.embedded import EmbeddedLog
from ingest.events import ScanBatch, ScanEvent
from ingest.kafka_records import warm_up
from ingest.wire import FORMAT_HEADER, encode_json, encode_packed
from ingest.worker import Worker
from tracing.index import CheckinIndex

# midnight UTC fifteen days ago: the two weeks of scans end yesterday, inside the
# retention period (the worker refuses older check-ins, as the API does)
T0 = (int(time.time()) // 86_400 - 15) * 86_400
PERSONS = 50_000
VENUES = 5_000


LATE_SHARE = 0.01        # live arrival: scans uploaded late by a device that was offline
LATE_MAX_S = 6 * 3600


def make_events(keyring, n: int, seed: int = 1, arrival: str = "live") -> ScanBatch:
    """n scan events with valid tokens of a pool of persons, at random venues over two
    weeks. `arrival` "live": in the order of their times, as check-in points send them,
    except LATE_SHARE of them uploaded up to LATE_MAX_S late; "random": in no order (a
    backlog replayed: every event is checked against everything stored)."""
    rng = np.random.default_rng(seed)
    pool = min(PERSONS, n)
    tokens = np.array([issue_token("person", p + 1, keyring).encode() for p in range(pool)],
                      dtype="S43")
    person = rng.integers(0, pool, n)
    t_in = T0 + rng.integers(0, 14 * 86_400, n)
    if arrival == "live":
        t_in.sort()
        late = np.flatnonzero(rng.random(n) < LATE_SHARE)
        t_in[late] = np.maximum(T0, t_in[late] - rng.integers(60, LATE_MAX_S, late.shape[0]))
    elif arrival != "random":
        raise ValueError(f"unknown arrival {arrival!r}")
    return ScanBatch(rng.integers(1, VENUES + 1, n).astype(np.uint64), np.ones(n, np.uint64),
                     np.arange(n, dtype=np.uint64), t_in, np.zeros(n, np.int64),
                     tokens[person])


def make_records(batch: ScanBatch, fmt: str, per_record: int) -> list[tuple[bytes, list, bytes]]:
    """(value, headers, key) records: packed batches of `per_record`, or one JSON per event
    keyed by its venue."""
    n = len(batch)
    if fmt == "packed":
        headers = [(FORMAT_HEADER, b"packed-v1")]
        return [(encode_packed(batch.take(np.arange(i, min(i + per_record, n)))), headers,
                 str(i // per_record % VENUES).encode()) for i in range(0, n, per_record)]
    headers = [(FORMAT_HEADER, b"json")]
    return [(encode_json(ScanEvent(int(v), 1, int(s), int(t), tok.decode())), headers,
             str(v).encode())
            for v, s, t, tok in zip(batch.venue.tolist(), batch.seq.tolist(),
                                    batch.t_in.tolist(), batch.token.tolist(), strict=True)]


class Meter:
    """CPU of this process, of the broker and of the whole machine over one clock."""

    def __init__(self, broker_pid: int | None = None):
        self.broker_pid = broker_pid

    def start(self) -> None:
        """Start the clock."""
        self.began, self.cpu = time.perf_counter(), time.process_time()
        self.busy, self.ticks = machine_busy_s(), cpu_ticks()
        self.broker = process_cpu_s(self.broker_pid) if self.broker_pid else 0.0

    def stop(self, n: int) -> dict:
        """Stop the clock; the figures for `n` events."""
        seconds = time.perf_counter() - self.began
        out = {"seconds": round(seconds, 3), "checkins_per_s": round(n / seconds),
               "worker_cpu_us_per_event": round((time.process_time() - self.cpu) / n * 1e6, 3),
               "machine_busy_cores": round((machine_busy_s() - self.busy) / seconds, 2),
               "machine_steal_share": steal_share(self.ticks, cpu_ticks())}
        if self.broker_pid:
            broker = process_cpu_s(self.broker_pid) - self.broker
            out["broker_cpu_us_per_event"] = round(broker / n * 1e6, 3)
        return out


def run_embedded(index, keyring, records, max_records) -> tuple[dict, Worker]:
    """Submit every record to an embedded log and wait until the worker acknowledged all."""
    log = EmbeddedLog()
    worker = Worker(log, index, keyring, max_records=max_records, poll_timeout_s=0.05)
    import threading
    stop = threading.Event()
    runner = threading.Thread(target=worker.run, args=(stop,), kwargs={"report_every_s": 3600})
    runner.start()
    meter = Meter()
    meter.start()
    futures = [log.submit(value, headers, key) for value, headers, key in records]
    for future in futures:
        future.result()
    figures = meter.stop(sum(_events(value) for value, _, _ in records))
    stop.set()
    runner.join()
    log.close()
    return figures, worker


def _events(value: bytes) -> int:
    return int.from_bytes(value[8:12], "little") if value[:4] == b"QRTP" else 1


STALL_S = 60  # a run that consumes nothing for this long stops with an error


def run_kafka(index, keyring, records, max_records, bootstrap, offsets, *, mode: str,
              producer: str, producers: int) -> tuple[dict, Worker]:
    """Produce `records` to a fresh topic and consume them into `index`, at once (`mode`
    concurrent: one clock from the producers' start until the last event is durable) or
    one after the other (sequential: a clock for each). Returns the figures and the
    worker."""
    from ingest.kafka_log import KafkaLog, ensure_topics

    n = sum(_events(value) for value, _, _ in records)
    topic = f"qrtrace.scans.bench-{uuid.uuid4().hex[:8]}"
    ensure_topics(bootstrap, topic, partitions=1)
    out: dict = {"mode": mode, "producer": producer, "producers": producers}
    fleet = Fleet(producer, producers, bootstrap, topic, records)
    if mode == "sequential":
        fleet.go()
        produce_s, produce_cpu = fleet.finish()
    log = KafkaLog(bootstrap, offsets, topic=topic, group=topic + "-bench")
    worker = Worker(log, index, keyring, max_records=max_records, poll_timeout_s=0.5)
    # join the group first (no records before the producers go). kafka-python 3.0.12's
    # poll spun inside ensure_coordinator_ready twice in ~40 runs here (manual commits
    # and a coordinator connection it thinks is coming: dpkp/kafka-python#2695): end the
    # run with its stacks rather than hang
    faulthandler.dump_traceback_later(120, exit=True)
    while not log.ready():
        log.poll(1, 0.2)
    faulthandler.cancel_dump_traceback_later()
    meter = Meter(listener_pid(int(bootstrap.rsplit(":", 1)[1])))
    meter.start()
    if mode == "concurrent":
        fleet.go()
    consumed, progress_at = 0, time.monotonic()
    while worker.metrics.records_in < len(records):
        worker.run_once()
        if worker.metrics.records_in > consumed:
            consumed, progress_at = worker.metrics.records_in, time.monotonic()
        elif (failure := fleet.failure()) or time.monotonic() - progress_at > STALL_S:
            raise RuntimeError(failure or f"no record came for {STALL_S} s: {consumed} of "
                               f"{len(records)} consumed")
    out.update(meter.stop(n))
    if mode == "concurrent":
        produce_s, produce_cpu = fleet.finish()
    log.close()
    out.update(produce_s=round(produce_s, 3), produce_per_s=round(n / produce_s),
               producer_cpu_us_per_event=round(produce_cpu / n * 1e6, 3))
    if mode == "sequential":
        out["end_to_end_per_s"] = round(n / (produce_s + out["seconds"]))
    return out, worker


def main(argv: list[str] | None = None) -> int:
    """Run one measurement and print it; returns 0."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", choices=("embedded", "kafka"), default="embedded")
    p.add_argument("--format", choices=("packed", "json"), default="packed")
    p.add_argument("--bootstrap", default=os.environ.get("QRTRACE_KAFKA"))
    p.add_argument("--events", type=int, help="default: 2,000,000 packed, 200,000 JSON")
    p.add_argument("--per-record", type=int, default=10_000, help="events per packed record")
    p.add_argument("--mode", choices=("concurrent", "sequential"), default="concurrent",
                   help="kafka: producers send while the worker consumes, one clock for "
                        "both (default); or produce everything, then consume")
    p.add_argument("--producer", choices=("java", "python"),
                   help="kafka: Kafka's Java console producer (JSON only) or kafka-python "
                        "(default: java for JSON, python for packed)")
    p.add_argument("--producers", type=int, default=1, help="kafka: producer processes")
    p.add_argument("--max-records", type=int, help="records per worker batch (default: 64 "
                   "packed, 20,000 JSON)")
    p.add_argument("--head-limit", type=int, default=1 << 20,
                   help="rows in the index's head before it merges (default: the index's "
                        "default, as `qrtrace worker` runs it)")
    p.add_argument("--arrival", choices=("live", "random"), default="live",
                   help="events in the order of their times with 1%% uploaded up to 6 h "
                        "late, as check-in points send them (default); or in random order "
                        "over the two weeks, a backlog replayed")
    p.add_argument("--broker-warmup", type=int, metavar="EVENTS",
                   help="kafka: events sent through a throwaway topic first, off the clock "
                        "(default: three times the run's; 0: none)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if args.backend == "kafka" and not args.bootstrap:
        p.error("--backend kafka needs --bootstrap HOST:PORT (or QRTRACE_KAFKA)")
    producer = args.producer or ("java" if args.format == "json" else "python")
    if producer == "java" and args.format == "packed":
        p.error("the console producer sends text lines: packed batches need --producer python")
    n = args.events or (2_000_000 if args.format == "packed" else 200_000)
    with tempfile.TemporaryDirectory(prefix="qrtrace-bench-") as tmp:
        keyring = load_keyring(tmp)
        batch = make_events(keyring, n, arrival=args.arrival)
        records = make_records(batch, args.format, args.per_record)
        max_records = args.max_records or (64 if args.format == "packed" else 20_000)
        with CheckinIndex.open(f"{tmp}/warm") as warm:  # load the kernels off the clock
            # a few batches as large as the run's: the head's key table grows, as it will;
            # then a merge, and batches checked against its base, as in the run (the
            # first such check loaded its kernel on the clock: ~0.2 s)
            warm_n = min(n, 200_000 if args.format == "packed" else 20_000)
            for half in (np.arange(warm_n // 2), np.arange(warm_n // 2, warm_n)):
                run_embedded(warm, keyring, make_records(batch.take(half), args.format,
                                                         args.per_record), max_records)
                warm.compact()
        warm_up()
        result = {"backend": args.backend, "format": args.format, "events": n,
                  "records": len(records), "arrival": args.arrival}
        broker_warmup = 3 * n if args.broker_warmup is None else args.broker_warmup
        if args.backend == "kafka" and broker_warmup > 0:
            warm_records = make_records(make_events(keyring, broker_warmup, seed=2,
                                                    arrival=args.arrival),
                                        args.format, args.per_record)
            with CheckinIndex.open(f"{tmp}/broker-warm", head_limit=args.head_limit) as warm:
                figures, _ = run_kafka(warm, keyring, warm_records, max_records,
                                       args.bootstrap, f"{tmp}/warm-offsets.json",
                                       mode=args.mode, producer=producer,
                                       producers=args.producers)
            result.update(broker_warmup_events=broker_warmup,
                          broker_warmup_per_s=figures["checkins_per_s"])
        with CheckinIndex.open(f"{tmp}/index", head_limit=args.head_limit) as index:
            if args.backend == "embedded":
                figures, worker = run_embedded(index, keyring, records, max_records)
            else:
                figures, worker = run_kafka(index, keyring, records, max_records,
                                            args.bootstrap, f"{tmp}/offsets.json",
                                            mode=args.mode, producer=producer,
                                            producers=args.producers)
            result.update(figures)
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
            print(f"{key:>26}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
