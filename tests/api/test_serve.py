"""`qrtrace serve` as check-in points, officials and admins use it: a real server process
on loopback, called over HTTP."""

from __future__ import annotations

import base64
import gzip
import io
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from api.qrimage import qr_png
from ingest.events import ScanBatch, ScanEvent
from ingest.wire import encode_packed
from tests.api.conftest import ROOT, start_server

COMMUNE = "Hoài Đức/Đức Thượng"
NOW = int(time.time())


def setup_commune(server, venues=(1, 2)) -> dict:
    """Two venues in one commune, a device at each, an official, and personal tokens."""
    rows = [{"venue": v, "name": f"Chợ {v}", "village": "Thôn Đông", "commune": "Đức Thượng",
             "district": "Hoài Đức", "category": "market"} for v in venues]
    assert server.put("/v1/admin/venues", json={"venues": rows}).status_code == 200
    devices = {}
    for v in venues:
        r = server.post("/v1/admin/devices", json={"name": f"kiosk {v}", "venue": v})
        assert r.status_code == 201, r.text
        devices[v] = r.json()["token"]
    tokens = {}
    for person in (11, 12, 13, 14):
        r = server.post("/v1/admin/tokens", json={"kind": "person", "id": person})
        assert r.status_code == 201, r.text
        tokens[person] = r.json()["token"]
    return {"devices": devices, "official": _official_token(server, COMMUNE), "tokens": tokens}


def seen(server, c: dict, *persons: int) -> None:
    """A check-in of each of `persons` at venue 1 an hour ago: a case opens for a person
    seen in the official's area only."""
    for seq, person in enumerate(persons):
        token = c["tokens"].get(person) or server.post(
            "/v1/admin/tokens", json={"kind": "person", "id": person}).json()["token"]
        r = server.post("/v1/scan", token=c["devices"][1], json={
            "token": token, "time": NOW - 3600 + seq, "seq": 900 + seq})
        assert r.json()["status"] in ("accepted", "duplicate"), r.text


def _official_token(server, jurisdiction: str, name: str = "official") -> str:
    r = server.post("/v1/admin/officials", json={"name": name, "jurisdiction": jurisdiction})
    assert r.status_code == 201, r.text
    return r.json()["token"]


def forged(token: str) -> str:
    last = "0" if token[-1] != "0" else "1"
    return token[:-1] + last


@pytest.fixture
def server(live_server):
    return live_server()


def test_scans_get_a_result_each_and_a_retry_is_duplicate(server):
    c = setup_commune(server)
    device = c["devices"][1]
    scans = [{"token": c["tokens"][11], "time": NOW - 3600, "seq": 1},
             {"token": c["tokens"][12], "time": NOW - 3500, "seq": 2},
             {"token": forged(c["tokens"][13]), "time": NOW - 3400, "seq": 3},
             {"token": c["tokens"][14], "time": NOW + 86400, "seq": 4},
             {"token": "hello", "time": NOW - 100, "seq": 5}]
    first = server.post("/v1/scans", token=device, json={"scans": scans})
    assert first.status_code == 200, first.text
    body = first.json()
    assert [r["status"] for r in body["results"]] == [
        "accepted", "accepted", "rejected", "rejected", "rejected"]
    assert [r.get("reason") for r in body["results"][2:]] == [
        "token: bad_mac", "time: check-in is in the future", "token: malformed"]
    assert (body["accepted"], body["duplicates"], body["rejected"]) == (2, 0, 3)
    again = server.post("/v1/scans", token=device, json={"scans": scans}).json()
    assert [r["status"] for r in again["results"][:2]] == ["duplicate", "duplicate"]
    assert [r["seq"] for r in again["results"]] == [1, 2, 3, 4, 5]


def test_a_revoked_personal_token_no_longer_checks_in_here_or_at_kafka_workers(server):
    """An admin revokes person 12's tokens: its scans are refused with that reason, and
    DATA/revoked.json, which Kafka workers read, lists it."""
    c = setup_commune(server)
    device = c["devices"][1]
    scan = {"token": c["tokens"][12], "time": NOW - 3600, "seq": 1}
    assert server.post("/v1/scans", token=device, json={"scans": [scan]}).json()[
        "results"][0]["status"] == "accepted"
    exported = json.loads((server.data / "revoked.json").read_text())
    assert (exported["person"], exported["venue"]) == ([], [])
    r = server.post("/v1/admin/tokens/revoke", json={"kind": "person", "id": 12})
    assert r.status_code == 204, r.text
    later = [{**scan, "time": NOW - 600, "seq": 2},
             {"token": c["tokens"][11], "time": NOW - 600, "seq": 3}]
    results = server.post("/v1/scans", token=device, json={"scans": later}).json()["results"]
    assert [(x["status"], x.get("reason")) for x in results] == [
        ("rejected", "token: revoked"), ("accepted", None)]
    exported = json.loads((server.data / "revoked.json").read_text())
    assert (exported["person"], exported["venue"]) == ([12], [])
    # the scan stored before the revocation, uploaded again (a retry): a duplicate, so
    # that the device does not take its stored check-in for a lost one
    retry = server.post("/v1/scans", token=device, json={"scans": [scan]}).json()
    assert [(x["status"], x.get("reason")) for x in retry["results"]] == [("duplicate", None)]


def test_the_venue_comes_from_the_device_not_the_request(server):
    c = setup_commune(server)
    r = server.post("/v1/scan", token=c["devices"][2],
                    json={"token": c["tokens"][11], "time": NOW - 600, "venue": 1})
    assert r.status_code == 422  # unknown fields are refused, not silently used
    assert "venue" in r.text
    r = server.post("/v1/scan", token=c["devices"][2],
                    json={"token": c["tokens"][11], "time": NOW - 600})
    assert r.json()["status"] == "accepted"


def test_packed_batch_then_retry(server):
    c = setup_commune(server)
    n = 2000
    rng = np.random.default_rng(1)
    people = rng.integers(1, 10**9, n)
    from api.keystore import load_keyring
    from decoder import issue_token

    ring = load_keyring(server.data)
    events = [ScanEvent(999, 999, i, NOW - 7200 + i, issue_token("person", int(p), ring))
              for i, p in enumerate(people)]
    events[5] = ScanEvent(999, 999, 5, NOW - 7200, forged(events[5].token))
    body = encode_packed(ScanBatch.of(events))
    headers = {"Content-Type": "application/vnd.qrtrace.packed-v1"}
    r = server.post("/v1/scans/packed", token=c["devices"][1], data=body, headers=headers)
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["accepted"], out["duplicates"], out["rejected"]) == (n - 1, 0, 1)
    assert out["rejected_rows"] == [{"row": 5, "reason": "token: bad_mac"}]
    out = server.post("/v1/scans/packed", token=c["devices"][1], data=body,
                      headers=headers).json()
    assert (out["accepted"], out["duplicates"]) == (0, n - 1)
    bad = server.post("/v1/scans/packed", token=c["devices"][1], data=b"QRTP" + b"\0" * 20,
                      headers=headers)
    assert bad.status_code == 400 and "packed" in bad.json()["detail"]


def test_camera_frames_are_decoded_and_stored(server):
    c = setup_commune(server)
    frames = [{"image": base64.b64encode(qr_png(c["tokens"][12])).decode(), "time": NOW - 60,
               "seq": 1},
              {"image": base64.b64encode(qr_png("not a token at all")).decode(),
               "time": NOW - 60, "seq": 2},
              {"image": "%%%", "time": NOW - 60, "seq": 3},
              {"image": base64.b64encode(b"a text file").decode(), "time": NOW - 60,
               "seq": 5}]
    r = server.post("/v1/frames", token=c["devices"][1], json={"frames": frames})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert results[0]["status"] == "accepted"
    assert results[1] == {"seq": 2, "status": "rejected", "reason": "frame: no token found",
                          "frame": 1}
    assert results[2]["reason"] == "frame: image is not base64"
    assert results[3]["reason"].startswith(
        "frame: unreadable_input (not a readable image: no known image format")
    # a JPEG, as a phone's camera sends it, of another person
    jpeg = io.BytesIO()
    Image.open(io.BytesIO(qr_png(c["tokens"][13]))).convert("L").save(jpeg, "JPEG",
                                                                      quality=80)
    r = server.post("/v1/frames", token=c["devices"][1], json={"frames": [
        {"image": base64.b64encode(jpeg.getvalue()).decode(), "time": NOW - 50, "seq": 4}]})
    assert r.json()["results"] == [{"seq": 4, "status": "accepted", "reason": None,
                                    "frame": 0}], r.text


def test_a_frame_over_4k_is_refused_before_it_is_decoded(server):
    """A blank 5,000 px square is a few kilobytes of PNG and seconds of CPU to search."""
    c = setup_commune(server)
    png = io.BytesIO()
    Image.new("L", (5000, 5000), 255).save(png, "PNG")
    r = server.post("/v1/frames", token=c["devices"][1], json={"frames": [
        {"image": base64.b64encode(png.getvalue()).decode(), "time": NOW - 30}]})
    [result] = r.json()["results"]
    assert result["reason"].startswith("frame: too_large"), result
    assert "over the cap of 8,294,400" in result["reason"]


def test_a_frame_showing_several_people_stores_each_and_a_venue_poster_adds_nothing(server):
    """A family at the counter: two people's cards and the venue's own poster in one
    frame. Each person is a check-in (the poster is not a person and not a reason to
    reject the frame); posted again, both are duplicates."""
    c = setup_commune(server)
    venue = server.post("/v1/admin/tokens", json={"kind": "venue", "id": 1}).json()["token"]
    codes = [np.asarray(Image.open(io.BytesIO(qr_png(text, scale=4))).convert("L"))
             for text in (venue, c["tokens"][11], c["tokens"][14])]
    frame = np.full((400, 1000), 255, np.uint8)
    for k, code in enumerate(codes):
        frame[20:20 + code.shape[0], 20 + 320 * k:20 + 320 * k + code.shape[1]] = code
    png = io.BytesIO()
    Image.fromarray(frame).save(png, "PNG")
    body = {"frames": [{"image": base64.b64encode(png.getvalue()).decode(),
                        "time": NOW - 40, "seq": 9}]}
    first = server.post("/v1/frames", token=c["devices"][1], json=body).json()
    assert (first["accepted"], first["duplicates"], first["rejected"]) == (2, 0, 0), first
    assert [(r["frame"], r["seq"]) for r in first["results"]] == [(0, 9), (0, 9)]
    again = server.post("/v1/frames", token=c["devices"][1], json=body).json()
    assert (again["accepted"], again["duplicates"]) == (0, 2), again


def test_checkout_closes_the_latest_visit(server):
    c = setup_commune(server)
    device, token = c["devices"][1], c["tokens"][11]
    missing = server.post("/v1/checkouts", token=device,
                          json={"token": token, "time": "2026-11-28T10:00:00+07:00"})
    assert missing.status_code == 404
    assert missing.json()["detail"] == \
        "no check-in of this person at this venue in the day before 2026-11-28T03:00:00Z"
    server.post("/v1/scan", token=device, json={"token": token, "time": NOW - 1800})
    r = server.post("/v1/checkouts", token=device, json={"token": token, "time": NOW - 60})
    assert r.status_code == 200 and r.json()["status"] == "accepted", r.text



def test_a_visit_lasts_a_day_at_the_most(server):
    """A forgotten check-out days later made a zone of days: refused, with the reason."""
    c = setup_commune(server)
    device, token = c["devices"][1], c["tokens"][12]
    long = server.post("/v1/scans", token=device, json={"scans": [
        {"token": token, "time": NOW - 9 * 86400, "check_out": NOW - 100, "seq": 1}]})
    assert long.json()["results"][0]["reason"] == "time: visit longer than a day", long.text
    server.post("/v1/scan", token=device, json={"token": token, "time": NOW - 3 * 86400})
    late = server.post("/v1/checkouts", token=device, json={"token": token, "time": NOW - 60})
    assert late.status_code == 404
    assert late.json()["detail"].startswith("no check-in of this person at this venue in the "
                                            "day before")


def test_a_checkout_never_makes_a_visit_and_an_earlier_one_says_it_changes_nothing(server):
    c = setup_commune(server)
    device, token, official = c["devices"][1], c["tokens"][11], c["official"]
    server.post("/v1/scan", token=device, json={"token": token, "time": NOW - 1800})
    made_up = server.post("/v1/checkouts", token=device, json={
        "token": token, "time": NOW - 60, "check_in": NOW - 7200})
    assert made_up.status_code == 404, made_up.text
    assert made_up.json()["detail"].startswith("no check-in of this person at this venue at ")
    named = server.post("/v1/checkouts", token=device, json={
        "token": token, "time": NOW - 60, "check_in": NOW - 1800})
    assert named.json()["status"] == "accepted", named.text
    earlier = server.post("/v1/checkouts", token=device, json={"token": token,
                                                                "time": NOW - 600})
    assert earlier.json()["status"] == "duplicate", earlier.text
    assert earlier.json()["reason"].startswith("the visit was checked out at ")
    # the case's own presence: one visit, from the scan to the later check-out
    case = server.post("/v1/cases", token=official, json={
        "person": 11, "from": NOW - 86400, "to": NOW, "purpose": "checkout test"}).json()
    zones = server.get(f"/v1/cases/{case['id']}/zones", token=official).json()
    assert [(z["start"], z["end"]) for z in zones["zones"]] == [(NOW - 1800, NOW - 60)], zones


@pytest.mark.parametrize("audit_fsync", ["after-answer", "before-answer"])
def test_official_traces_a_case_and_every_query_is_audited(live_server, audit_fsync):
    server = live_server(extra=("--audit-fsync", audit_fsync))
    c = setup_commune(server)
    device, t = c["devices"][1], c["tokens"]
    server.post("/v1/scans", token=device, json={"scans": [
        {"token": t[11], "time": NOW - 7200}, {"token": t[12], "time": NOW - 7000}]})
    server.post("/v1/scans", token=c["devices"][2], json={"scans": [
        {"token": t[12], "time": NOW - 3000}, {"token": t[13], "time": NOW - 2900}]})
    official = c["official"]
    r = server.post("/v1/cases", token=official, json={
        "person": t[11], "from": NOW - 86400, "to": NOW, "purpose": "positive PCR test"})
    assert r.status_code == 201, r.text
    case = r.json()
    assert case["person"] == 11 and case["jurisdiction"] == COMMUNE
    exposure = server.get(f"/v1/cases/{case['id']}/exposure", token=official).json()
    levels = {c["person"]: c["level"] for c in exposure["contacts"]}
    assert levels == {12: 1, 13: 2}
    assert exposure["counts"]["f1"] == 1 and exposure["counts"]["f2"] == 1
    assert exposure["rule"]["min_overlap"] == 600
    assert {v["venue"] for v in exposure["venues"]} == {1, 2}
    assert exposure["contacts_total"] == 2
    second = server.get(f"/v1/cases/{case['id']}/exposure?offset=1&limit=1",
                        token=official).json()
    assert [c["person"] for c in second["contacts"]] == [13]
    assert second["contacts_total"] == 2 and second["counts"] == exposure["counts"]
    graphml = server.get(f"/v1/cases/{case['id']}/graph?format=graphml", token=official)
    assert graphml.status_code == 200 and "<graphml" in graphml.text
    csv_text = server.get(f"/v1/cases/{case['id']}/export.csv", token=official).text
    assert csv_text.splitlines()[0].startswith("person")
    entries = server.get("/v1/admin/audit?limit=1000").json()
    reads = [e for e in entries if e["case"] == case["id"]]
    assert [e["action"] for e in reads] == ["open_case", "exposure", "exposure",
                                            "graph_graphml", "export_contacts"]
    assert all(e["purpose"] == "positive PCR test" and e["actor"] == "official"
               for e in reads)
    # reading the log is itself in it (it names persons and purposes)
    assert entries[-1]["action"] == "read_audit" and entries[-1]["role"] == "admin"
    verified = server.get("/v1/admin/audit/verify").json()
    assert verified["ok"] and verified["entries"] == len(entries)


def test_an_exposure_page_comes_gzipped_to_who_asks_and_plain_to_the_rest(server):
    c = setup_commune(server)
    device, t = c["devices"][1], c["tokens"]
    for person in range(20, 48):
        t[person] = server.post("/v1/admin/tokens", json={"kind": "person", "id": person}
                                ).json()["token"]
    server.post("/v1/scans", token=device, json={"scans": [
        {"token": t[p], "time": NOW - 7200 + p} for p in [11, *range(20, 48)]]})
    case = server.post("/v1/cases", token=c["official"], json={
        "person": t[11], "from": NOW - 86400, "to": NOW, "purpose": "test"}).json()
    path = f"/v1/cases/{case['id']}/exposure"
    plain = server.get(path, token=c["official"], headers={"Accept-Encoding": "identity"},
                       stream=True)
    assert "content-encoding" not in plain.headers
    assert plain.headers["vary"].lower() == "accept-encoding"
    raw_plain = plain.raw.read()
    packed = server.get(path, token=c["official"], headers={"Accept-Encoding": "gzip"},
                        stream=True)
    assert packed.headers["content-encoding"] == "gzip"
    raw_packed = packed.raw.read()  # as sent, not decoded
    assert len(raw_packed) < len(raw_plain) / 2
    assert gzip.decompress(raw_packed) == raw_plain
    assert len(json.loads(raw_plain)["contacts"]) == 28
    refused = server.get(path, token=c["official"], headers={"Accept-Encoding": "gzip;q=0"})
    assert "content-encoding" not in refused.headers


def test_digits_that_are_not_ascii_are_refused_with_422_not_a_server_error(server):
    # "²²".isdigit() is true and int("²²") raises: schemathesis found a 500 here
    c = setup_commune(server)
    seen(server, c, 11)
    r = server.post("/v1/cases", token=c["official"], json={
        "person": "\u00b2\u00b2", "from": NOW - 86400, "to": NOW, "purpose": "test"})
    assert r.status_code == 422, r.text
    assert "person" in r.text
    case = server.post("/v1/cases", token=c["official"], json={
        "person": "11", "from": NOW - 86400, "to": NOW, "purpose": "test"}).json()
    r = server.get(f"/v1/cases/{case['id']}/exposure?offset=\u00b2", token=c["official"])
    assert r.status_code == 422 and "offset" in r.text
    # a blank offset was read as the default (a schema fuzzer's `offset=&limit=1`)
    for query, name in (("offset=--5", "offset"), ("limit=" + "9" * 5000, "limit"),
                        ("offset=&limit=1", "offset")):
        r = server.get(f"/v1/cases/{case['id']}/exposure?{query}", token=c["official"])
        assert r.status_code == 422, r.text
        assert r.json()["detail"][0]["loc"] == ["query", name], r.text


def test_a_case_opens_on_the_person_id_as_a_case_answers_it(server):
    """A case answers its person as a JSON integer; that integer opens a case as well as
    the token or the digits do (a string was required before), and anything else is
    named in the 422."""
    c = setup_commune(server)
    seen(server, c, 11, 2**64 - 1)
    window = {"from": NOW - 86400, "to": NOW, "purpose": "positive test"}
    by_token = server.post("/v1/cases", token=c["official"],
                           json={"person": c["tokens"][11], **window}).json()
    assert by_token["person"] == 11
    for person in (by_token["person"], "11", 11.0, 2**64 - 1):
        r = server.post("/v1/cases", token=c["official"], json={"person": person, **window})
        assert r.status_code == 201, (person, r.text)
        assert r.json()["person"] == int(person)
    for person in (-1, 2**64, 11.5, True, None, [11]):
        r = server.post("/v1/cases", token=c["official"], json={"person": person, **window})
        assert r.status_code == 422 and "person" in r.text, (person, r.text)
    r = server.post("/v1/cases", token=c["official"], json={
        "person": 11, "from": "2026-11-27T00:00:00+07:00", "to": "2026-11-20T00:00:00+07:00",
        "purpose": "a window backwards"})
    assert r.status_code == 422
    assert r.json()["detail"] == \
        "to (2026-11-19T17:00:00Z) must be after from (2026-11-26T17:00:00Z)"


def test_refusals_no_token_wrong_role_other_jurisdiction(server):
    c = setup_commune(server)
    seen(server, c, 11)
    r = server.post("/v1/cases", token=c["official"], json={
        "person": "11", "from": NOW - 86400, "to": NOW, "purpose": "positive test"})
    case_id = r.json()["id"]
    other = _official_token(server, "Hoài Đức/Kim Chung", "other commune")
    district = _official_token(server, "Hoài Đức", "district")
    assert server.get(f"/v1/cases/{case_id}", token=None).status_code == 401
    assert server.get(f"/v1/cases/{case_id}", token="qrt_official_nope").status_code == 401
    assert server.get(f"/v1/cases/{case_id}", token=c["devices"][1]).status_code == 403
    as_admin = server.get(f"/v1/cases/{case_id}")
    assert as_admin.status_code == 403
    assert as_admin.json()["detail"] == "this needs an official token, not an admin token"
    as_device = server.post("/v1/scan", token=c["official"], json={"token": "x", "time": NOW})
    assert as_device.json()["detail"] == "this needs a device token, not an official token"
    assert server.get(f"/v1/cases/{case_id}", token=other).status_code == 404  # as if none
    assert server.get(f"/v1/cases/{case_id}", token=district).status_code == 200
    assert server.get("/v1/cases", token=other).json() == []
    r = server.post("/v1/cases", token=other, json={
        "person": "11", "from": NOW - 86400, "to": NOW, "purpose": "positive test",
        "jurisdiction": COMMUNE})
    assert r.status_code == 403
    assert server.get(f"/v1/cases/{case_id}/exposure", token=other).status_code == 404
    assert server.get(f"/v1/cases/{case_id + 7}/zones", token=other).status_code == 404
    # the other commune's official probing shows in the audit log, refusals included
    probes = [e for e in server.get("/v1/admin/audit?limit=1000").json()
              if e["actor"] == "other commune"]
    assert [(e["action"], e["case"]) for e in probes] == [
        ("read_case_refused", case_id), ("list_cases", None), ("open_case_refused", None),
        ("exposure_refused", case_id), ("zones_refused", case_id + 7)]
    assert probes[2]["purpose"] == "positive test" and probes[2]["detail"]["person"] == 11
    # answered 404 as a missing case; the log keeps the reason
    assert probes[0]["detail"]["reason"] == f"case {case_id} is outside your jurisdiction"
    assert probes[4]["detail"]["reason"] == f"no case with id {case_id + 7}"
    assert server.post("/v1/scans", token=c["official"], json={"scans": [
        {"token": c["tokens"][11], "time": NOW}]}).status_code == 403
    assert server.get("/v1/admin/audit", token=c["official"]).status_code == 403
    # a revoked device stops at once
    device_id = server.get("/v1/admin/devices").json()[0]["id"]
    assert server.delete(f"/v1/admin/devices/{device_id}").status_code == 200
    assert server.post("/v1/scan", token=c["devices"][1], json={
        "token": c["tokens"][11], "time": NOW - 10}).status_code == 401


def test_an_official_opens_cases_only_for_people_seen_in_their_area(server):
    """A review traced a Đức Thượng resident from another district: an official's case
    now needs its person seen in the official's area in the window, and a window cannot
    run far into the future. A later review opened cases for persons seen nowhere (201)
    and was refused for persons seen elsewhere (403): by the answer, an official could
    tell whether anyone was anywhere at a time. Both are now the same refusal."""
    c = setup_commune(server)
    other = _official_token(server, "Đan Phượng/Tân Hội", "other district")
    district = _official_token(server, "Hoài Đức", "district")
    server.post("/v1/scan", token=c["devices"][1], json={"token": c["tokens"][11],
                                                          "time": NOW - 3600})
    window = {"from": NOW - 86400, "to": NOW, "purpose": "positive test"}
    refused = server.post("/v1/cases", token=other, json={"person": 11, **window})
    assert refused.status_code == 403, refused.text
    assert "person 11 has no check-in at a venue of 'Đan Phượng/Tân Hội'" in refused.text
    assert refused.json()["reason"] == "not_seen_here"  # the page says it in Vietnamese
    for official in (c["official"], district):
        assert server.post("/v1/cases", token=official,
                           json={"person": 11, **window}).status_code == 201
    # the opening's audit record names the venue of the area that let it open
    audit = server.get("/v1/admin/audit?limit=1000").json()  # oldest first
    opened = [e for e in audit if e["action"] == "open_case"]
    assert opened and all(e["detail"]["seen_at"] == [1] for e in opened), opened
    # nobody seen anywhere: refused with the same words as a person seen elsewhere
    nowhere = server.post("/v1/cases", token=other, json={"person": 12, **window})
    assert nowhere.status_code == 403 and nowhere.json()["reason"] == "not_seen_here"
    assert nowhere.json()["detail"] == refused.json()["detail"].replace("person 11",
                                                                        "person 12")
    ahead = server.post("/v1/cases", token=other, json={
        "person": 12, "from": NOW, "to": NOW + 30 * 86400, "purpose": "watch them"})
    assert ahead.status_code == 422 and "more than a day from now" in ahead.text
    assert ahead.json()["reason"] == "window_ahead"
    # ... but not one running on into the next hours: it would show where the person is
    # scanned from now on, anywhere, to an official of a place they were never seen in
    live = server.post("/v1/cases", token=other, json={
        "person": 12, "from": NOW - 300, "to": NOW + 23 * 3600, "purpose": "watch them"})
    assert live.status_code == 403 and live.json()["reason"] == "not_seen_here"
    assert server.post("/v1/cases", token=c["official"], json={
        "person": 11, "from": NOW - 7200, "to": NOW + 23 * 3600,
        "purpose": "positive test"}).status_code == 201  # seen in the area: it may
    for purpose in ("     ", "\u0000\u0001\u0002", "ok\u202e"):
        r = server.post("/v1/cases", token=c["official"], json={
            "person": 11, "from": NOW - 86400, "to": NOW, "purpose": purpose})
        assert r.status_code == 422 and "purpose" in r.text, (purpose, r.text)
    r = server.post("/v1/cases", token=c["official"], json={
        "person": 11, **window, "jurisdiction": "Hoài Đức/Kim Chung/../Đức Thượng"})
    assert r.status_code == 422 and "jurisdiction" in r.text, r.text


def test_the_adoption_report_covers_the_callers_jurisdiction_only(server):
    c = setup_commune(server)  # venues 1 and 2 in Đức Thượng
    rows = [{"venue": 3, "name": "Chợ Kim Chung", "village": "Thôn Bắc",
             "commune": "Kim Chung", "district": "Hoài Đức", "category": "market"},
            {"venue": 4, "name": "Chợ Vân Canh", "village": "Thôn Nam",
             "commune": "Vân Canh", "district": "Nam Từ Liêm", "category": "market"}]
    assert server.put("/v1/admin/venues", json={"venues": rows}).status_code == 200
    server.post("/v1/scan", token=c["devices"][1], json={"token": c["tokens"][11],
                                                         "time": NOW - 600})
    other = _official_token(server, "Hoài Đức/Kim Chung", "other commune")
    district = _official_token(server, "Hoài Đức", "district")
    day = time.strftime("%Y-%m-%d", time.gmtime(NOW - 600 + 7 * 3600))  # the scan's local day
    seen = {}
    for who, token in (("commune", c["official"]), ("other", other),
                       ("district", district), ("admin", "admin")):
        r = server.get(f"/v1/reports/adoption?from={day}&to={day}", token=token)
        assert r.status_code == 200, r.text
        seen[who] = {v["venue"]: v["checkins"] for v in r.json()["venues"]}
    assert seen["commune"] == {1: 1, 2: 0}
    assert seen["other"] == {3: 0}
    assert seen["district"] == {1: 1, 2: 0, 3: 0}
    assert seen["admin"] == {1: 1, 2: 0, 3: 0, 4: 0}


def test_serve_on_a_busy_port_says_so_at_once(tmp_path):
    """A review's serve on a port in use printed 'qrtrace serving ... on http://...' and
    then the bind error, after opening the index (and Kafka, 33 s when unreachable)."""
    import socket
    import subprocess
    import sys

    from tests.api.conftest import free_port

    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen(1)
        done = subprocess.run([sys.executable, "-m", "api.cli", "serve", "--data",
                               str(tmp_path / "data"), "--port", str(port)],
                              capture_output=True, text=True, timeout=120,
                              env={**os.environ, "QRTRACE_ADMIN_TOKEN": "t" * 32})
    assert done.returncode == 2, done.stderr[-2000:]
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "serving" not in done.stderr and not (tmp_path / "data").exists()


def test_a_closed_case_shows_no_more_movements_to_anyone(server):
    """A review found no way to close a case: every case stayed readable by its whole
    jurisdiction for good. Closing it ends its exposure, zones, graph and exports for
    every official (410); it stays listed, with who closed it and when, in the audit too."""
    c = setup_commune(server)
    t = c["tokens"]
    server.post("/v1/scans", token=c["devices"][1], json={"scans": [
        {"token": t[11], "time": NOW - 7200}, {"token": t[12], "time": NOW - 7000}]})
    district = _official_token(server, "Hoài Đức", "district")
    other = _official_token(server, "Đan Phượng", "other district")
    case = server.post("/v1/cases", token=c["official"], json={
        "person": t[11], "from": NOW - 86400, "to": NOW, "purpose": "positive test"}).json()
    reads = ("exposure", "zones", "graph?format=svg", "export.csv?part=contacts")
    for path in reads:
        assert server.get(f"/v1/cases/{case['id']}/{path}", token=district).status_code == 200
    assert server.post(f"/v1/cases/{case['id']}/close", token=other).status_code == 404
    closed = server.post(f"/v1/cases/{case['id']}/close", token=district)
    assert closed.status_code == 200, closed.text
    assert closed.json()["closed_at"] >= NOW and closed.json()["closed_by"] > 0
    for token in (c["official"], district):
        for path in reads:
            r = server.get(f"/v1/cases/{case['id']}/{path}", token=token,
                           headers={"Accept-Encoding": "gzip"})
            assert r.status_code == 410 and "was closed" in r.text, (path, r.text)
    listed = server.get("/v1/cases", token=c["official"]).json()
    assert [x["closed_at"] for x in listed if x["id"] == case["id"]] == \
        [closed.json()["closed_at"]]
    again = server.post(f"/v1/cases/{case['id']}/close", token=c["official"]).json()
    assert again["closed_at"] == closed.json()["closed_at"]  # the first closing stays
    actions = [e["action"] for e in server.get("/v1/admin/audit?limit=1000").json()
               if e["case"] == case["id"]]
    assert "close_case" in actions and "exposure_refused" in actions


def test_an_officials_jurisdiction_is_spelled_as_the_venues_spell_it(server):
    """A review typed the commune decomposed (NFD), with stray spaces, and in lower case:
    each official was created and saw nothing, with no word of why."""
    import unicodedata

    setup_commune(server)  # venues in Hoài Đức/Đức Thượng
    for typed in (unicodedata.normalize("NFD", COMMUNE), " Hoài  Đức /Đức Thượng ",
                  "hoài đức/đức thượng"):
        r = server.post("/v1/admin/officials", json={"name": "o", "jurisdiction": typed})
        assert r.status_code == 201, r.text
        assert r.json()["principal"]["jurisdiction"] == COMMUNE, typed
        assert r.json()["warning"] is None
        day = time.strftime('%Y-%m-%d', time.gmtime())  # never after the server's day
        report = server.get(f"/v1/reports/adoption?from={day}"
                            f"&to={day}", token=r.json()["token"])
        assert {v["venue"] for v in report.json()["venues"]} == {1, 2}, typed
    r = server.post("/v1/admin/officials", json={"name": "o", "jurisdiction": "Ba Vì"})
    assert r.status_code == 201 and "no venue lies in 'Ba Vì' yet" in r.json()["warning"]
    # an official's token lapses: 90 days unless the admin says otherwise
    made = r.json()["principal"]
    assert made["expires"] - made["created"] == 90 * 86400
    r = server.post("/v1/admin/officials", json={"name": "o", "jurisdiction": COMMUNE,
                                                 "valid_days": 7})
    assert r.json()["principal"]["expires"] - r.json()["principal"]["created"] == 7 * 86400
    assert server.post("/v1/admin/officials", json={
        "name": "o", "jurisdiction": COMMUNE, "valid_days": 0}).status_code == 422


def test_the_adoption_report_speaks_only_of_days_it_holds(server):
    """A review asked for days to come, and for days before the retention period: every
    venue showed as silent. And a kiosk set up today made its venue silent on every day
    before it too. Those days are refused, and QR points count from when they were posted."""
    c = setup_commune(server)  # venues 1 and 2, their kiosks set up now
    server.post("/v1/scan", token=c["devices"][1], json={"token": c["tokens"][11],
                                                         "time": NOW - 60})

    def local_day(days_ago: int) -> str:
        return time.strftime("%Y-%m-%d", time.gmtime(NOW + 7 * 3600 - days_ago * 86400))

    def report(first: str, last: str):
        return server.get(f"/v1/reports/adoption?from={first}&to={last}")

    today = report(local_day(0), local_day(0)).json()
    assert {v["venue"]: (v["qr_points"], v["silent"]) for v in today["venues"]} == {
        1: (1, False), 2: (1, True)}
    before = report(local_day(3), local_day(1)).json()  # before the kiosks existed
    assert {v["venue"]: (v["qr_points"], v["silent"]) for v in before["venues"]} == {
        1: (0, False), 2: (0, False)}
    ahead = report(local_day(0), local_day(-1))
    assert ahead.status_code == 422 and "is after today" in ahead.text
    assert ahead.json()["reason"] == "days_ahead"  # the page says it in Vietnamese
    purged = report(local_day(30), local_day(0))  # retention: 21 days
    assert purged.status_code == 422 and "retention: 21 days" in purged.text
    assert purged.json()["reason"] == "days_deleted"
    backwards = report(local_day(1), local_day(2))
    assert backwards.status_code == 422 and backwards.json()["reason"] == "days_order"
    assert report(local_day(20), local_day(0)).status_code == 200


def test_rate_limit_refuses_the_whole_batch_with_retry_after(live_server):
    server = live_server(extra=("--device-burst", "5", "--device-per-hour", "3600"))
    c = setup_commune(server)
    device = c["devices"][1]
    scans = [{"token": c["tokens"][11 + i % 4], "time": NOW - 1000 + i} for i in range(6)]
    r = server.post("/v1/scans", token=device, json={"scans": scans})
    # over the burst: it can never pass, and waiting would not help (no Retry-After)
    assert r.status_code == 413 and "split it" in r.text, r.text
    assert "Retry-After" not in r.headers
    r = server.post("/v1/scans", token=device, json={"scans": scans[:5]})
    assert r.status_code == 200, r.text
    # nothing of the refused batch was written: the same five are new now
    assert r.json()["accepted"] == 5
    r = server.post("/v1/scans", token=device, json={"scans": [{"token": c["tokens"][11],
                                                                "time": NOW - 10}]})
    assert r.status_code == 429, r.text  # the burst used up: this one can wait
    assert int(r.headers["Retry-After"]) >= 1


def test_a_retried_upload_takes_no_room_from_the_limits(live_server):
    server = live_server(extra=("--device-burst", "10", "--device-per-hour", "1"))
    c = setup_commune(server)
    device = c["devices"][1]
    first = [{"token": c["tokens"][11 + i % 4], "time": NOW - 1000 + i} for i in range(5)]
    assert server.post("/v1/scans", token=device, json={"scans": first}).json()["accepted"] == 5
    retry = server.post("/v1/scans", token=device, json={"scans": first}).json()
    assert retry["duplicates"] == 5
    more = [{"token": c["tokens"][11 + i % 4], "time": NOW - 500 + i} for i in range(5)]
    r = server.post("/v1/scans", token=device, json={"scans": more})
    assert r.status_code == 200 and r.json()["accepted"] == 5, r.text
    r = server.post("/v1/scans", token=device, json={"scans": [
        {"token": c["tokens"][11], "time": NOW - 100}]})
    assert r.status_code == 429  # the ten new check-ins did use the burst


def test_a_retried_upload_is_answered_duplicate_at_the_limits(live_server):
    """An upload stored whose answer was lost, sent again when the device's burst is spent
    and its persons are at their hourly limit: every scan comes back a duplicate, not 429.
    A retry that also carries a new scan is refused whole, as any batch over a limit."""
    server = live_server(extra=("--device-burst", "6", "--device-per-hour", "1",
                                "--person-per-hour", "3"))
    c = setup_commune(server)
    device = c["devices"][1]
    first = [{"token": c["tokens"][11 + i % 2], "time": NOW - 1000 + i} for i in range(6)]
    assert server.post("/v1/scans", token=device, json={"scans": first}).json()["accepted"] == 6
    for _ in range(2):
        r = server.post("/v1/scans", token=device, json={"scans": first})
        assert r.status_code == 200, r.text
        assert r.json()["duplicates"] == 6 and r.json()["accepted"] == 0
    r = server.post("/v1/scan", token=device, json=first[0])
    assert r.status_code == 200 and r.json()["status"] == "duplicate", r.text
    more = [*first, {"token": c["tokens"][13], "time": NOW - 10}]
    r = server.post("/v1/scans", token=device, json={"scans": more})
    assert r.status_code == 429 and "device" in r.text and "Retry-After" in r.headers


def test_person_rate_limit(live_server):
    server = live_server(extra=("--person-per-hour", "3"))
    c = setup_commune(server)
    device = c["devices"][1]
    token = c["tokens"][11]
    for i in range(3):
        r = server.post("/v1/scan", token=device, json={"token": token, "time": NOW - 900 + i})
        assert r.status_code == 200
    r = server.post("/v1/scan", token=device, json={"token": token, "time": NOW - 800})
    assert r.status_code == 429 and "Retry-After" in r.headers


def test_input_limits(server):
    c = setup_commune(server)
    device = c["devices"][1]
    r = server.post("/v1/scans", token=device, json={"scans": [
        {"token": "x" * 65, "time": NOW}]})
    assert r.status_code == 422
    r = server.post("/v1/scans", token=device, json={"scans": [
        {"token": c["tokens"][11], "time": "2026-11-25T08:00:00"}]})  # no offset
    assert r.status_code == 422
    big = b"{" + b" " * (33 * 1024 * 1024) + b"}"
    r = server.post("/v1/scans", token=device, data=big,
                    headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    r = server.post("/v1/admin/officials", json={"name": "x", "jurisdiction": "A",
                                                  "role": "admin"})
    assert r.status_code == 422  # no mass assignment
    # batch sizes: 10,000 scans and 32 frames at most, refused whole beyond
    scan = {"token": c["tokens"][11], "time": NOW - 60}
    r = server.post("/v1/scans", token=device, json={"scans": [scan] * 10_001})
    assert r.status_code == 422 and "10000" in r.text, r.text[:300]
    frame = {"image": base64.b64encode(qr_png(c["tokens"][11])).decode(), "time": NOW - 60}
    r = server.post("/v1/frames", token=device, json={"frames": [frame] * 33})
    assert r.status_code == 422 and "32" in r.text, r.text[:300]
    r = server.post("/v1/scan", token=device, data=b'{"token": "' + b"x" * 5000 + b'"}',
                    headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    # times: a scan older than the retention period (21 days) is rejected with the reason
    r = server.post("/v1/scans", token=device, json={"scans": [
        {"token": c["tokens"][12], "time": NOW - 22 * 86400, "seq": 1},
        {"token": c["tokens"][12], "time": NOW + 3600, "seq": 2}]})
    assert [(i["status"], i.get("reason")) for i in r.json()["results"]] == [
        ("rejected", "time: check-in is older than the retention period"),
        ("rejected", "time: check-in is in the future")]


def test_operations_endpoints(server):
    assert server.get("/healthz", token=None).json() == {"status": "ok", "process": "writer"}
    assert server.get("/readyz", token=None).status_code == 200
    c = setup_commune(server)
    server.post("/v1/scan", token=c["devices"][1], json={"token": "bad", "time": NOW})
    metrics = server.get("/metrics", token=None).text
    assert 'qrtrace_scans_total{status="rejected"} 1.0' in metrics
    assert "qrtrace_http_requests_total" in metrics
    schema = server.get("/openapi.json", token=None).json()
    assert "/v1/scans/packed" in schema["paths"]
    assert server.get("/docs", token=None).status_code == 200


def test_admin_token_is_created_once_and_printed_once(tmp_path):
    data = tmp_path / "data"
    first = start_server(data, admin_token=None)
    try:
        lines = first.output().splitlines()
        at = lines.index("An admin token was created (shown only this once; keep it safe):")
        token = lines[at + 1].strip()
        assert first.get("/v1/admin/keys", token=token).status_code == 200
    finally:
        first.stop()
    second = start_server(data, admin_token=None)
    try:
        assert "admin token was created" not in second.output()
        assert second.get("/v1/admin/keys", token=token).status_code == 200
    finally:
        second.stop()
    assert token not in (data / "registry.sqlite3").read_bytes().decode("latin-1")
    # once the operator sets QRTRACE_ADMIN_TOKEN, the printed one stops working (a
    # privacy review found both valid, for good)
    third = start_server(data, admin_token="t" * 32)
    try:
        assert third.get("/v1/admin/keys", token=token).status_code == 401
        assert third.get("/v1/admin/keys").status_code == 200
    finally:
        third.stop()


def test_a_short_admin_token_from_the_environment_works_with_a_warning(tmp_path):
    server = start_server(tmp_path / "data", admin_token="s3cret")
    try:
        assert "QRTRACE_ADMIN_TOKEN has 6 characters" in server.output()
        assert server.get("/v1/admin/keys").status_code == 200
        assert server.get("/v1/admin/keys", token="s3cre").status_code == 401
    finally:
        server.stop()


def test_an_admin_token_that_cannot_be_sent_is_refused_at_start(tmp_path):
    env = {**os.environ, "QRTRACE_ADMIN_TOKEN": "two words"}
    done = subprocess.run([sys.executable, "-m", "api.cli", "serve", "--data",
                           str(tmp_path / "data"), "--port", "9"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "QRTRACE_ADMIN_TOKEN may hold only printable ASCII" in done.stderr
