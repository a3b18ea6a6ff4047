"""Faults: the worker is killed with SIGKILL again and again while scans flow; afterwards
the index holds exactly the valid check-ins (none lost, none doubled) and every poison
row is in the dead-letter topic.

QRTRACE_FAULT_KILLS (default 8) and QRTRACE_FAULT_EVENTS (default 100,000) scale it.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time

import numpy as np
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from decoder import verify_tokens
from ingest.wire import decode_packed, encode_packed
from tests.ingest.helpers import forged, keyring_of, random_batch
from tracing.index import CheckinIndex

KILLS = int(os.environ.get("QRTRACE_FAULT_KILLS", "8"))
EVENTS = int(os.environ.get("QRTRACE_FAULT_EVENTS", "100000"))
PER_RECORD = 100


def _poisoned(keyring, n, seed):
    batch, _ = random_batch(keyring, n, seed=seed, persons=20_000, venues=500)
    person = verify_tokens(batch.token, keyring).id
    rng = np.random.default_rng(seed + 1)
    poison = rng.random(n) < 0.01
    tokens = batch.token.copy()
    tokens[poison] = [forged(t.decode()).encode() for t in tokens[poison]]
    batch = type(batch)(batch.venue, batch.device, batch.seq, batch.t_in, batch.t_out, tokens)
    ok = ~poison
    valid = set(zip(person[ok].tolist(), batch.venue[ok].tolist(), batch.t_in[ok].tolist(),
                    strict=True))
    return batch, valid, set(batch.seq[poison].tolist())


def _saved_offsets(data, topic) -> int:
    path = data / "ingest" / "kafka-offsets.json"
    if not path.exists():
        return 0
    return sum(json.loads(path.read_bytes())["topics"].get(topic, {}).values())


def _worker(bootstrap, topic, data):
    return subprocess.Popen(
        [sys.executable, "-m", "api.cli", "worker", "--kafka", bootstrap, "--data", str(data),
         "--topic", topic, "--group", f"{topic}-group", "--max-records", "50", "--report", "60"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_killed_workers_lose_nothing_and_double_nothing(kafka_bootstrap, topic, tmp_path):
    data = tmp_path / "data"
    keyring = keyring_of(data)
    batch, valid, poison_seqs = _poisoned(keyring, EVENTS, seed=11)
    records = [encode_packed(batch.take(np.arange(i, min(i + PER_RECORD, EVENTS))))
               for i in range(0, EVENTS, PER_RECORD)]

    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, linger_ms=5)

    def produce(chunk):
        for i, value in chunk:
            producer.send(topic, value, key=str(i % 97).encode(),
                          headers=[("qrtrace-format", b"packed-v1")])
            time.sleep(0.01)  # a flow, not one burst
        producer.flush()

    rng = random.Random(5)
    numbered = list(enumerate(records))
    saved = 0
    for k in range(KILLS):
        flow = threading.Thread(target=produce, args=(numbered[k::KILLS],))
        flow.start()
        worker = _worker(kafka_bootstrap, topic, data)
        # kill it once it has saved some progress of its own (start-up time varies: a
        # fresh checkout compiles kernels), at a random moment among its batches
        deadline = time.monotonic() + 90
        while _saved_offsets(data, topic) <= saved and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(rng.uniform(0, 0.4))
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        flow.join()
        assert _saved_offsets(data, topic) > saved, f"worker life {k} saved nothing"
        saved = _saved_offsets(data, topic)
    producer.close()
    done = subprocess.run(
        [sys.executable, "-m", "api.cli", "worker", "--kafka", kafka_bootstrap,
         "--data", str(data), "--topic", topic, "--group", f"{topic}-group",
         "--idle-exit", "6"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]

    with CheckinIndex.open(data / "index") as index:
        person, venue, t_in, _ = index.checkins()
        stored = list(zip(person.tolist(), venue.tolist(), t_in.tolist(), strict=True))
        assert len(index) == len(stored)
    assert len(stored) == len(set(stored)), "a check-in is stored twice"
    lost, extra = valid - set(stored), set(stored) - valid
    assert not lost and not extra, f"lost {len(lost)}, extra {len(extra)}"

    consumer = KafkaConsumer(bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest",
                             consumer_timeout_ms=5000)
    consumer.assign([TopicPartition(topic + ".dlq", 0)])
    dead = set()
    for message in consumer:
        dead.update(decode_packed(message.value).batch.seq.tolist())
    consumer.close()
    assert dead == poison_seqs
