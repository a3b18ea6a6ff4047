"""End to end against the real broker: another client's records become traced check-ins;
poison records land in the dead-letter topic with their reason."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
from kafka import KafkaConsumer, TopicPartition

from ingest.events import ScanBatch, ScanEvent
from ingest.wire import encode_json, encode_packed
from tests.ingest.conftest import console_produce
from tests.ingest.helpers import T0, events_for, forged, keyring_of, person_token
from tracing.index import CheckinIndex

PURPOSE = ("--purpose", "test")  # a trace says why it is run (audited)

QRTRACE = [sys.executable, "-m", "api.cli"]
DAY = 86_400


def read_topic(bootstrap: str, topic: str, expect: int, timeout_ms: int = 15000) -> list:
    """Every record of partition 0 of `topic` (stops after `expect` or the timeout)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             consumer_timeout_ms=timeout_ms)
    consumer.assign([TopicPartition(topic, 0)])
    out = []
    for message in consumer:
        out.append(message)
        if len(out) >= expect:
            break
    consumer.close()
    return out


def run_worker(bootstrap, topic, data, idle_exit=6.0, group="group", extra=()):
    done = subprocess.run(
        [*QRTRACE, "worker", "--kafka", bootstrap, "--data", str(data), "--topic", topic,
         "--group", f"{topic}-{group}", "--idle-exit", str(idle_exit), "--report", "1",
         *extra],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    return [line for line in lines if line["message"] == "metrics"][-1]


def test_console_producer_scans_are_traced_and_poison_goes_to_the_dlq(
        kafka_bootstrap, topic, tmp_path):
    data = tmp_path / "data"
    keyring = keyring_of(data)
    # persons 1 and 2 share venue 10 for 50 minutes; 3 is at venue 11; 4 meets 2 later
    visits = [(1, 10, T0, T0 + 3600), (2, 10, T0 + 600, 0), (3, 11, T0, 0),
              (4, 12, T0 + 7200, 0), (2, 12, T0 + 7000, 0)]
    events = events_for(keyring, visits)
    lines = [f"qrtrace-format:json\t{e.venue}\t{encode_json(e).decode()}" for e in events]
    poison = [
        "qrtrace-format:json\t10\t{\"venue\": 10, \"seq\": 1}",
        "qrtrace-format:avro\t10\tAAAA",
        "qrtrace-format:json\t10\t" + encode_json(
            ScanEvent(10, 9, 9, T0, forged(person_token(keyring, 5)))).decode(),
    ]
    console_produce(kafka_bootstrap, topic, lines + poison)
    metrics = run_worker(kafka_bootstrap, topic, data)
    assert metrics["checkins_added"] == 5 and metrics["rejected"] == 3

    traced = subprocess.run(
        [*QRTRACE, "trace", *PURPOSE, "--data", str(data), "--case", "1", "--from", str(T0),
         "--to", str(T0 + 86400), "--json"], capture_output=True, text=True, timeout=120)
    assert traced.returncode == 0, traced.stderr
    contacts = {c["person"]: c["level"] for c in json.loads(traced.stdout)["contacts"]}
    assert contacts == {2: 1, 4: 2}

    dead = read_topic(kafka_bootstrap, topic + ".dlq", expect=3)
    reasons = sorted(dict(m.headers)["qrtrace-reason"].decode() for m in dead)
    assert len(reasons) == 3
    assert reasons[0].startswith("format: unknown format")
    assert reasons[1].startswith("json: device")
    assert reasons[2] == "token: bad_mac"
    assert all(dict(m.headers)["qrtrace-source"].decode().startswith(topic) for m in dead)


def test_a_dead_letter_too_large_for_its_topic_goes_without_its_value(
        kafka_bootstrap, tmp_path):
    """A review's poison record was larger than its dead-letter topic takes: the send
    failed unseen and the offsets went on (the record lost), or, past the client's own
    limit, the worker crashed on it at every start (its partition stuck). It now goes to
    the DLQ without its value, a header naming its length, and the scans behind it are
    indexed."""
    import uuid

    from kafka import KafkaProducer
    from kafka.admin import KafkaAdminClient, NewTopic

    topic = f"qrtrace.scans.test-{uuid.uuid4().hex[:12]}"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    admin.create_topics([NewTopic(topic, 1, 1), NewTopic(
        topic + ".dlq", 1, 1, topic_configs={"max.message.bytes": "5000"})])
    admin.close()
    data = tmp_path / "data"
    keyring = keyring_of(data)
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    json_header = [("qrtrace-format", b"json")]
    producer.send(topic, b"x" * 8000, key=b"10", headers=json_header, partition=0)
    for event in events_for(keyring, [(1, 10, T0, 0), (2, 10, T0 + 600, 0)]):
        producer.send(topic, encode_json(event), key=b"10", headers=json_header, partition=0)
    producer.flush()
    producer.close()
    metrics = run_worker(kafka_bootstrap, topic, data)
    assert metrics["checkins_added"] == 2 and metrics["rejected"] == 1
    [dead] = read_topic(kafka_bootstrap, topic + ".dlq", expect=1)
    headers = dict(dead.headers)
    assert dead.value == b"" and headers["qrtrace-truncated"] == b"8000"
    assert headers["qrtrace-reason"].startswith(b"json:")
    assert headers["qrtrace-source"] == f"{topic}/0/0".encode()
    assert run_worker(kafka_bootstrap, topic, data)["records_in"] == 0  # offsets saved


def test_a_restarted_worker_resumes_from_its_saved_offsets(kafka_bootstrap, topic, tmp_path):
    from kafka import KafkaProducer

    data = tmp_path / "data"
    keyring = keyring_of(data)
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    first = events_for(keyring, [(p, 20, T0 + p, 0) for p in range(1, 101)])
    producer.send(topic, encode_packed(ScanBatch.of(first)), key=b"20",
                  headers=[("qrtrace-format", b"packed-v1")])
    producer.flush()
    assert run_worker(kafka_bootstrap, topic, data)["checkins_added"] == 100
    second = events_for(keyring, [(p, 21, T0 + p, 0) for p in range(1, 51)])
    for e in second:
        producer.send(topic, encode_json(e), key=b"21", headers=[("qrtrace-format", b"json")])
    producer.flush()
    producer.close()
    # another group has no committed offsets: the offsets file alone resumes the worker
    again = run_worker(kafka_bootstrap, topic, data, group="other")
    assert again["records_in"] == 50 and again["checkins_added"] == 50
    assert again["duplicates"] == 0


def test_a_topic_deleted_and_made_again_is_read_from_its_start(kafka_bootstrap, topic,
                                                               tmp_path):
    """The offsets file kept the old topic's offsets: a worker skipped the new topic's
    records up to them. Kafka gives a topic made again a new id, which the file now keeps."""
    from kafka import KafkaProducer
    from kafka.admin import KafkaAdminClient
    from kafka.errors import KafkaError

    from ingest.kafka_log import ensure_topics

    data = tmp_path / "data"
    keyring = keyring_of(data)

    def send(venue: int, records: int) -> None:
        producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
        for r in range(records):  # one key: one partition, one offset a record
            batch = events_for(keyring, [(p, venue, T0 + p, 0)
                                         for p in range(10 * r + 1, 10 * r + 11)])
            producer.send(topic, encode_packed(ScanBatch.of(batch)), key=b"20",
                          headers=[("qrtrace-format", b"packed-v1")])
        producer.flush()
        producer.close()

    send(20, 3)
    assert run_worker(kafka_bootstrap, topic, data)["checkins_added"] == 30
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    admin.delete_topics([topic, topic + ".dlq"])
    admin.close()
    deadline = time.monotonic() + 60
    while True:  # the deletion finishes in the background
        try:
            ensure_topics(kafka_bootstrap, topic, partitions=3)
            consumer = KafkaConsumer(bootstrap_servers=kafka_bootstrap)
            made = consumer.partitions_for_topic(topic)
            consumer.close()
            if made and len(made) == 3:
                break
        except KafkaError:
            pass
        assert time.monotonic() < deadline, "the topic was not made again"
        time.sleep(1)
    send(21, 5)
    done = subprocess.run(
        [*QRTRACE, "worker", "--kafka", kafka_bootstrap, "--data", str(data), "--topic", topic,
         "--group", f"{topic}-group", "--idle-exit", "6", "--report", "1"],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    metrics = [line for line in lines if line["message"] == "metrics"][-1]
    assert metrics["checkins_added"] == 50, metrics  # all five records, not the last two
    assert any(line["message"].startswith("topic recreated") for line in lines), done.stderr


def test_a_worker_purges_its_folder_by_the_retention_period_it_is_given(
        kafka_bootstrap, topic, tmp_path):
    """`qrtrace worker --retention-days 10`: check-ins older than ten days leave every
    file of the worker's folder (no server purges it); newer ones and new scans stay."""
    from kafka import KafkaProducer

    data = tmp_path / "data"
    keyring = keyring_of(data)
    now = int(time.time())
    with CheckinIndex.open(data / "index") as index:  # 21 days, as a new folder gets
        index.append(np.array([1, 2], np.uint64), np.array([30, 30], np.uint64),
                     np.array([now - 15 * DAY, now - 5 * DAY]), np.zeros(2, np.int64))
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    for e in events_for(keyring, [(3, 30, now - 3600, 0)]):
        producer.send(topic, encode_json(e), key=b"30", headers=[("qrtrace-format", b"json")])
    producer.flush()
    producer.close()
    metrics = run_worker(kafka_bootstrap, topic, data,
                         extra=("--retention-days", "10", "--purge-every", "0.5"))
    assert metrics["purged"] == 1 and metrics["checkins_added"] == 1
    with CheckinIndex.open(data / "index") as index:
        person, *_ = index.checkins()
        assert sorted(person.tolist()) == [2, 3] and index.retention_days == 10
    files = b"".join(f.read_bytes() for f in (data / "index").rglob("*") if f.is_file())
    for width in (np.uint32, np.int64):  # as the segments and the write-ahead log hold it
        assert width(now - 15 * DAY).tobytes() not in files
    bad = subprocess.run([*QRTRACE, "worker", "--kafka", kafka_bootstrap, "--data", str(data),
                          "--retention-days", "0"], capture_output=True, text=True,
                         timeout=60)
    assert bad.returncode == 2 and "--retention-days" in bad.stderr


def test_a_worker_verifies_with_the_servers_key_file_and_sees_its_rotation(
        kafka_bootstrap, topic, tmp_path):
    """`qrtrace worker --keys FILE --revoked FILE` with the server's files: scans signed
    with the key the server rotates to while the worker runs are check-ins, and those of
    a person revoked meanwhile are dead letters; a folder without a key ring is refused
    (a worker making its own keys would reject every scan)."""
    from kafka import KafkaProducer

    from api.keystore import rotate_key
    from api.registry import Registry
    from api.revocations import export_revocations

    server, data = tmp_path / "server", tmp_path / "worker"
    keyring = keyring_of(server)
    refused = subprocess.run([*QRTRACE, "worker", "--kafka", kafka_bootstrap, "--data",
                              str(data), "--topic", topic], capture_output=True, text=True,
                             timeout=60)
    assert refused.returncode == 2 and "no key ring" in refused.stderr
    assert not (data / "keys.json").exists()

    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)

    def send(ring, visits):
        for e in events_for(ring, visits):
            producer.send(topic, encode_json(e), key=str(e.venue).encode(),
                          headers=[("qrtrace-format", b"json")])
        producer.flush()

    send(keyring, [(p, 40, T0 + p, 0) for p in range(1, 11)])
    log = tmp_path / "worker.log"
    with open(log, "wb") as out:
        worker = subprocess.Popen(
            [*QRTRACE, "worker", "--kafka", kafka_bootstrap, "--data", str(data), "--topic",
             topic, "--group", f"{topic}-keys", "--keys", str(server / "keys.json"),
             "--revoked", str(server / "revoked.json"), "--idle-exit", "8", "--report",
             "0.5"], stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while _last_metrics(log).get("checkins_added", 0) < 10:  # the old key's scans in
            assert worker.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        rotated = rotate_key(server)
        assert rotated.active != keyring.active
        registry = Registry(server)  # what POST /v1/admin/tokens/revoke does
        try:
            registry.revoke_token_id("person", 3)
            export_revocations(server, registry)
        finally:
            registry.close()
        send(rotated, [(p, 41, T0 + p, 0) for p in range(1, 11)])
        assert worker.wait(timeout=90) == 0
    finally:
        worker.kill()
        producer.close()
    metrics = _last_metrics(log)
    assert metrics["checkins_added"] == 19 and metrics["rejected"] == 1, metrics
    assert metrics["rejected.token: revoked"] == 1
    assert "key ring reloaded" in log.read_text()
    [dead] = read_topic(kafka_bootstrap, topic + ".dlq", expect=1)
    assert dict(dead.headers)["qrtrace-reason"] == b"token: revoked"


def _last_metrics(log) -> dict:
    """The last metrics line a worker wrote to `log` ({} before any)."""
    lines = [json.loads(line) for line in log.read_text().splitlines()
             if line.startswith("{")]
    metrics = [line for line in lines if line["message"] == "metrics"]
    return metrics[-1] if metrics else {}


def _partition(venue: int, partitions: int = 3) -> int:
    """The partition kafka-python's default partitioner gives a venue's key."""
    from kafka.partitioner.default import murmur2

    return (murmur2(str(venue).encode()) & 0x7FFFFFFF) % partitions


def _assignments(log) -> list[int] | None:
    """A worker's latest assignment, from its JSON log lines (None before any)."""
    latest = None
    for line in log.read_text().splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            if entry["message"] == "assigned":
                latest = entry["partitions"]
    return latest


def test_two_workers_shards_are_traced_as_one_index(kafka_bootstrap, topic, tmp_path):
    """Two workers share the topic's partitions, each indexing its venues into its own
    folder; `qrtrace trace --data A --data B` answers as one index: the case's visit at
    one worker's venue ends at its check-in at the other's, and an F1 person met at the
    second meets an F2 person at the first."""
    import shutil
    import time

    from kafka import KafkaProducer

    folders = [tmp_path / "a", tmp_path / "b"]
    keyring = keyring_of(folders[0])
    folders[1].mkdir()
    shutil.copy(folders[0] / "keys.json", folders[1] / "keys.json")  # workers share keys
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    workers = []
    for data, log in zip(folders, logs, strict=True):
        with open(log, "wb") as out:
            workers.append(subprocess.Popen(
                [*QRTRACE, "worker", "--kafka", kafka_bootstrap, "--data", str(data),
                 "--topic", topic, "--group", f"{topic}-shards", "--idle-exit", "12",
                 "--report", "1"], stderr=out, stdout=subprocess.DEVNULL))
    try:
        deadline = time.monotonic() + 90
        while True:  # both in the group, the three partitions split between them
            held = [_assignments(log) for log in logs]
            if all(held) and sorted(held[0] + held[1]) == [0, 1, 2]:
                break
            assert time.monotonic() < deadline, f"no split of the partitions: {held}"
            time.sleep(0.5)
        venue_a = next(v for v in range(10, 40) if _partition(v) in held[0])
        venue_b = next(v for v in range(10, 40) if _partition(v) in held[1])
        visits = [
            (1, venue_a, T0, 0), (1, venue_b, T0 + 1200, 0),  # the case leaves a for b
            (2, venue_a, T0 + 1500, 0),  # after the case left: not F1 (F2 through 3)
            (3, venue_a, T0 + 300, 0),   # 15 minutes with the case: F1
            (4, venue_b, T0 + 1300, 0),  # with the case at b: F1
            (4, venue_a, T0 + 3800, 0), (5, venue_a, T0 + 3900, 0),  # 4 meets 5: F2
        ]
        producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
        for e in events_for(keyring, visits):
            producer.send(topic, encode_json(e), key=str(e.venue).encode(),
                          headers=[("qrtrace-format", b"json")])
        producer.flush()
        producer.close()
        for worker in workers:
            assert worker.wait(timeout=120) == 0
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
    window = ["--case", "1", "--from", str(T0), "--to", str(T0 + 86400), "--json"]

    def traced(*datas):
        folders = [a for d in datas for a in ("--data", str(d))]
        done = subprocess.run([*QRTRACE, "trace", *PURPOSE, *folders, *window],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return {c["person"]: c["level"] for c in json.loads(done.stdout)["contacts"]}

    assert traced(*folders) == {3: 1, 4: 1, 2: 2, 5: 2}
    alone = traced(folders[0])  # one shard alone: the case never left for b
    assert alone[2] == 1 and alone.get(4) != 1


def test_worker_and_serve_name_a_bad_option_before_reaching_for_kafka(tmp_path):
    """A review's `--max-records 0` crashed with a traceback after joining the group,
    `--idle-exit -1` exited at once, `--kafka 127.0.0.1` said only 'Unable to bootstrap'
    and `--kafka http://host:port` was taken silently."""
    data = str(tmp_path / "data")
    for command, extra, words in (
            ("worker", ("--kafka", "127.0.0.1:9", "--max-records", "0"), "--max-records"),
            ("worker", ("--kafka", "127.0.0.1:9", "--idle-exit", "-1"), "--idle-exit"),
            ("worker", ("--kafka", "127.0.0.1"), "HOST:PORT"),
            ("serve", ("--kafka", "http://127.0.0.1:9092"), "HOST:PORT")):
        done = subprocess.run([*QRTRACE, command, "--data", data, *extra],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 2, (extra, done.stderr[-2000:])
        assert words in done.stderr and "Traceback" not in done.stderr, done.stderr[-2000:]


def test_serve_names_an_unreachable_broker_not_its_data_folder(tmp_path):
    """A review waited 33 s for `serve --kafka` at a closed port, then read 'cannot open
    the data folder': the folder was fine, the broker was not there."""
    done = subprocess.run([*QRTRACE, "serve", "--data", str(tmp_path / "data"),
                           "--kafka", "127.0.0.1:9", "--port", "0"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "cannot reach Kafka at 127.0.0.1:9" in done.stderr, done.stderr[-2000:]
    assert "data folder" not in done.stderr and "Traceback" not in done.stderr
