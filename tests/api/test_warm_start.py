"""A server that answers is ready: no request waits for a numba kernel to be loaded.

numba reports every kernel it loads from (or saves to) its cache when NUMBA_DEBUG_CACHE
is set; a request that paid for one stalled every other request of its process."""

from __future__ import annotations

import base64
import datetime
import time

import numpy as np

from api.keystore import load_keyring
from api.qrimage import qr_png
from decoder import issue_token
from ingest.events import ScanBatch, ScanEvent
from ingest.wire import encode_packed
from tests.api.test_serve import setup_commune

NOW = int(time.time())
PACKED = {"Content-Type": "application/vnd.qrtrace.packed-v1"}


def kernel_loads(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("[cache] data")]


def test_no_request_loads_a_kernel(live_server):
    server = live_server(env={"NUMBA_DEBUG_CACHE": "1", "PYTHONUNBUFFERED": "1"})
    at_start = server.output()
    # the start loaded them (and shows that the debug output reaches the log)
    assert any("trace_kernels.trace" in line for line in kernel_loads(at_start))
    assert any("_locate_kernels.locate_finders" in line for line in kernel_loads(at_start))
    c = setup_commune(server)
    device, t, official = c["devices"][1], c["tokens"], c["official"]
    # check-in points: one scan, a batch, a packed batch of large ids, a frame, a check-out
    assert server.post("/v1/scan", token=device,
                       json={"token": t[11], "time": NOW - 7200}).status_code == 200
    r = server.post("/v1/scans", token=device, json={"scans": [
        {"token": t[12], "time": NOW - 7000}, {"token": t[13], "time": NOW - 6900}]})
    assert r.status_code == 200 and r.json()["accepted"] == 2, r.text
    ring = load_keyring(server.data)
    people = np.random.default_rng(1).integers(2**40, 2**62, 3000)
    # two days ago: not contacts of the case below (a graph of thousands is another test)
    events = [ScanEvent(0, 0, i, NOW - 2 * 86400 + i, issue_token("person", int(p), ring))
              for i, p in enumerate(people)]
    r = server.post("/v1/scans/packed", token=device, data=encode_packed(ScanBatch.of(events)),
                    headers=PACKED)
    assert r.status_code == 200 and r.json()["accepted"] == len(events), r.text
    frames = [{"image": base64.b64encode(qr_png(t[14])).decode(), "time": NOW - 6000,
               "seq": 1}]
    r = server.post("/v1/frames", token=c["devices"][2], json={"frames": frames})
    assert r.json()["results"][0]["status"] == "accepted", r.text
    r = server.post("/v1/checkouts", token=device, json={"token": t[11], "time": NOW - 3600})
    assert r.status_code == 200, r.text
    # officials: a case, its exposure, zones, graph and export, the adoption report
    r = server.post("/v1/cases", token=official, json={
        "person": t[11], "from": NOW - 86400, "to": NOW, "purpose": "positive PCR test"})
    assert r.status_code == 201, r.text
    case = r.json()["id"]
    exposure = server.get(f"/v1/cases/{case}/exposure", token=official).json()
    assert {x["person"] for x in exposure["contacts"]} >= {12, 13}
    for path in ("zones", "graph?format=json", "graph?format=graphml", "graph?format=svg",
                 "export.csv"):
        assert server.get(f"/v1/cases/{case}/{path}", token=official).status_code == 200
    today = datetime.datetime.now(datetime.UTC).date()
    days = f"from={today - datetime.timedelta(days=1)}&to={today}"
    for part in ("venues", "villages"):
        r = server.get(f"/v1/reports/adoption?{days}&part={part}", token=official)
        assert r.status_code == 200, r.text
    assert server.get("/v1/admin/audit/verify").json()["ok"]

    assert kernel_loads(server.output()[len(at_start):]) == []
