"""`qrtrace serve --kafka`: scans posted to the API go through a real Kafka topic and are
indexed by the server's consumer; officials see them in a trace."""

from __future__ import annotations

import time
import uuid

import pytest

from tests.api.test_serve import NOW, setup_commune


@pytest.mark.parametrize("workers", [1, 3])
def test_scans_through_kafka_reach_the_index(live_server, kafka_bootstrap, workers):
    name = uuid.uuid4().hex[:10]
    server = live_server(extra=("--kafka", kafka_bootstrap, "--topic", f"qrtrace.scans.{name}",
                                "--group", f"qrtrace-index-{name}", "--workers", str(workers)))
    if workers > 1:  # a new connection per request: any of the processes answers each
        server.session.headers["Connection"] = "close"
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
    r = server.post("/v1/cases", token=c["official"], json={
        "person": t[11], "from": NOW - 86400, "to": NOW, "purpose": "positive test"})
    case_id = r.json()["id"]
    deadline = time.monotonic() + 60
    contacts = []
    while time.monotonic() < deadline and not contacts:
        exposure = server.get(f"/v1/cases/{case_id}/exposure", token=c["official"]).json()
        contacts = [x["person"] for x in exposure["contacts"]]
        time.sleep(0.5)
    assert contacts == [12]
    r = server.post("/v1/cases", token=c["official"], json={
        "person": t[14], "from": NOW - 86400, "to": NOW, "purpose": "positive test"})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # the single scan went through Kafka too
        zones = server.get(f"/v1/cases/{r.json()['id']}/zones", token=c["official"]).json()
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
    r = server.post("/v1/cases", token=c["official"], json={
        "person": "15", "from": NOW - 86400, "to": NOW, "purpose": "positive test"})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        exposure = server.get(f"/v1/cases/{r.json()['id']}/exposure",
                              token=c["official"]).json()
        if exposure["contacts"]:
            break
        time.sleep(0.5)
    assert [x["person"] for x in exposure["contacts"]] == [14]
    assert server.get("/readyz", token=None).json()["status"] == "ready"
