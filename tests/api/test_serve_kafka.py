"""`qrtrace serve --kafka`: scans posted to the API go through a real Kafka topic and are
indexed by the server's consumer; officials see them in a trace."""

from __future__ import annotations

import time
import uuid

import pytest

from tests.api.test_serve import NOW, setup_commune


def open_once_indexed(server, official: str, person: str) -> int:
    """Open a case for `person` as soon as their check-in is indexed (it went through
    Kafka: a case opens for a person seen in the official's area only); its id."""
    deadline = time.monotonic() + 60
    while True:
        r = server.post("/v1/cases", token=official, json={
            "person": person, "from": NOW - 86400, "to": NOW, "purpose": "positive test"})
        if r.status_code == 201 or time.monotonic() > deadline:
            break
        assert r.status_code == 403 and r.json()["reason"] == "not_seen_here", r.text
        time.sleep(0.5)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def contacts_once_indexed(server, official: str, case_id: int) -> list:
    """The case's contacts as soon as there are any (the scans went through Kafka, and
    the index takes them a moment later), or [] after a minute."""
    deadline = time.monotonic() + 60
    while True:
        exposure = server.get(f"/v1/cases/{case_id}/exposure", token=official).json()
        contacts = [x["person"] for x in exposure["contacts"]]
        if contacts or time.monotonic() > deadline:
            return contacts
        time.sleep(0.5)


@pytest.mark.parametrize("workers", [1, 3])
def test_scans_through_kafka_reach_the_index(live_server, kafka_bootstrap, workers):
    name = uuid.uuid4().hex[:10]
    server = live_server(extra=("--kafka", kafka_bootstrap, "--topic", f"qrtrace.scans.{name}",
                                "--group", f"qrtrace-index-{name}", "--workers", str(workers)))
    if workers > 1:  # a new connection per request: any of the processes answers each
        server.session.headers["Connection"] = "close"
    # the topics serve made keep scans (personal tokens) as long as the index keeps
    # check-ins (21 days by default), not the broker's default week or forever
    from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    for made in (f"qrtrace.scans.{name}", f"qrtrace.scans.{name}.dlq"):
        described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, made)])
        assert described["topic"][made]["retention.ms"]["value"] == str(21 * 86_400_000)
    admin.close()
    c = setup_commune(server)
    t = c["tokens"]
    r = server.post("/v1/scans", token=c["devices"][1], json={"scans": [
        {"token": t[11], "time": NOW - 7200, "seq": 1},
        {"token": t[12], "time": NOW - 7100, "seq": 2},
        {"token": t[13][:-1] + ("0" if t[13][-1] != "0" else "1"), "time": NOW - 7000}]})
    assert r.status_code == 200, r.text
    # produced and acknowledged by the broker: accepted; the forged one never leaves
    assert [x["status"] for x in r.json()["results"]] == ["accepted", "accepted", "rejected"]
    one = server.post("/v1/scan", token=c["devices"][2], json={"token": t[14],
                                                               "time": NOW - 3600})
    assert one.json()["status"] == "accepted", one.text
    case_id = open_once_indexed(server, c["official"], t[11])
    assert contacts_once_indexed(server, c["official"], case_id) == [12]
    # the single scan went through Kafka too
    case_id = open_once_indexed(server, c["official"], t[14])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # another process may see the check-in a moment later
        zones = server.get(f"/v1/cases/{case_id}/zones", token=c["official"]).json()
        if zones["zones"]:
            break
        time.sleep(0.5)
    assert [z["venue"] for z in zones["zones"]] == [2]
    # after a key rotation, tokens of the new key reach the index through the worker too
    assert server.post("/v1/admin/keys/rotate").status_code == 200
    fresh = server.post("/v1/admin/tokens", json={"kind": "person", "id": 15}).json()["token"]
    one = server.post("/v1/scan", token=c["devices"][2], json={"token": fresh,
                                                               "time": NOW - 3500})
    assert one.json()["status"] == "accepted", one.text
    case_id = open_once_indexed(server, c["official"], "15")
    assert contacts_once_indexed(server, c["official"], case_id) == [14]
    assert server.get("/readyz", token=None).json()["status"] == "ready"


def test_a_large_packed_upload_goes_in_records_a_broker_takes(live_server, kafka_bootstrap):
    """A review posted 15,000 packed rows to a topic with Kafka's default 1 MB record
    limit: one record, refused; 500, and from then on every scan 500 (kafka-python's
    idempotent producer takes that refusal as fatal). The rows now go in records of
    10,000 at most, and a scan after them still goes through."""
    import numpy as np
    from kafka.admin import KafkaAdminClient, NewTopic

    from api.keystore import load_keyring
    from decoder import issue_token
    from ingest.events import ScanBatch
    from ingest.wire import encode_packed

    name = uuid.uuid4().hex[:10]
    topic = f"qrtrace.scans.{name}"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    admin.create_topics([NewTopic(topic, 1, 1, topic_configs={"max.message.bytes": "1048588"}),
                         NewTopic(topic + ".dlq", 1, 1)])
    admin.close()
    server = live_server(extra=("--kafka", kafka_bootstrap, "--topic", topic,
                                "--group", f"qrtrace-index-{name}", "--no-rate-limits"))
    c = setup_commune(server)
    ring = load_keyring(server.data)
    n = 25_000
    tokens = np.array([issue_token("person", 100_000 + i, ring).encode() for i in range(n)],
                      dtype="S43")
    batch = ScanBatch(np.ones(n, np.uint64), np.ones(n, np.uint64), np.arange(n, dtype=np.uint64),
                      np.full(n, NOW - 7200, np.int64), np.zeros(n, np.int64), tokens)
    r = server.post("/v1/scans/packed", token=c["devices"][1], data=encode_packed(batch),
                    headers={"Content-Type": "application/vnd.qrtrace.packed-v1"})
    assert r.status_code == 200, r.text[:500]
    assert r.json()["accepted"] == n
    one = server.post("/v1/scan", token=c["devices"][1], json={"token": c["tokens"][11],
                                                               "time": NOW - 60})
    assert one.json()["status"] == "accepted", one.text
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.get("/readyz", token=None).json().get("checkins") == n + 1:
            break
        time.sleep(0.5)
    assert server.get("/readyz", token=None).json().get("checkins") == n + 1


def test_scans_kafka_refuses_are_answered_503_and_readyz_says_why(live_server,
                                                                  kafka_bootstrap):
    """A broker that refuses the scans' records (a topic that takes none over 64 bytes):
    the check-in point is told to send again later and nothing is claimed stored;
    /readyz names the problem until Kafka takes scans again; the same scans sent again
    are accepted and reach the index."""
    from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic

    name = uuid.uuid4().hex[:10]
    topic = f"qrtrace.scans.{name}"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    admin.create_topics([NewTopic(topic, 1, 1, topic_configs={"max.message.bytes": "64"})])
    server = live_server(extra=("--kafka", kafka_bootstrap, "--topic", topic,
                                "--group", f"qrtrace-index-{name}"))
    deadline = time.monotonic() + 60
    while (ready := server.get("/readyz", token=None)).status_code != 200 \
            and time.monotonic() < deadline:
        time.sleep(0.5)
    assert ready.status_code == 200, ready.text
    c = setup_commune(server)
    t = c["tokens"]
    scans = {"scans": [{"token": t[11], "time": NOW - 7200, "seq": 1},
                       {"token": t[12], "time": NOW - 7100, "seq": 2}]}
    refused = server.post("/v1/scans", token=c["devices"][1], json=scans)
    assert refused.status_code == 503, refused.text
    assert refused.headers["Retry-After"] == "5"
    assert "Kafka did not take the last scans" in refused.json()["detail"]
    assert "send it again" in refused.json()["detail"]
    not_ready = server.get("/readyz", token=None)
    assert not_ready.status_code == 503
    assert any("Kafka did not take the last scans" in p and "TooLarge" in p
               for p in not_ready.json()["problems"]), not_ready.text
    # the operator lets the topic take the records: the next scans clear the problem
    admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic,
                                        configs={"max.message.bytes": "1048588"})])
    admin.close()
    deadline = time.monotonic() + 60
    while (again := server.post("/v1/scans", token=c["devices"][1], json=scans)).status_code \
            == 503 and time.monotonic() < deadline:  # the broker applies the change soon
        time.sleep(0.5)
    assert again.status_code == 200, again.text
    assert [x["status"] for x in again.json()["results"]] == ["accepted", "accepted"]
    assert server.get("/readyz", token=None).json()["status"] == "ready"
    case_id = open_once_indexed(server, c["official"], t[11])
    assert contacts_once_indexed(server, c["official"], case_id) == [12]
