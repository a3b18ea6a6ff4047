"""`qrtrace serve --workers N`: several processes on one address behave as one service.

A real server with a writer and two followers. Each test reaches a chosen process by
keeping one connection per process (the kernel hands a new connection to any of them;
a kept-alive connection stays with the one that accepted it; /healthz names it). The
server closes a connection idle for 5 s, so every call first checks, on the same
connection, that it still reaches its process.
"""

from __future__ import annotations

import os
import re
import signal
import time

import pytest
import requests

from tests.api.test_serve import COMMUNE, NOW, setup_commune

PROCESSES = ("writer", "follower 1", "follower 2")


class ProcessSession(requests.Session):
    """A session whose connection reached the server process `name`."""

    name = ""


def connections(server, names=PROCESSES, timeout: float = 60.0) -> dict[str, ProcessSession]:
    """One kept-alive session per server process, by the name /healthz gives. The
    server is ready once one process answers; a follower may still be starting (for
    seconds on a busy machine), so this waits for it."""
    found: dict[str, ProcessSession] = {}
    deadline = time.monotonic() + timeout
    tries = 0
    while time.monotonic() < deadline:
        session = ProcessSession()
        session.name = session.get(server.url + "/healthz", timeout=30).json()["process"]
        tries += 1
        if session.name in found:
            session.close()
            if tries > 50:
                time.sleep(0.02)
        else:
            found[session.name] = session
        if set(found) >= set(names):
            return found
    raise AssertionError(f"only {sorted(found)} answered after {tries} connections "
                         f"in {timeout} s")


def call(server, session: ProcessSession, method, path, token="admin", **kw):
    """A request through `session`, which must still reach its process (if the server
    closed the idle connection, a new one is made until it does)."""
    for _ in range(400):
        if session.get(server.url + "/healthz", timeout=30).json()["process"] == session.name:
            break
        session.close()  # the next request opens a new connection
    else:
        raise AssertionError(f"no connection reached {session.name}")
    headers = dict(kw.pop("headers", {}))
    if token is not None:
        headers["Authorization"] = f"Bearer {server.admin_token if token == 'admin' else token}"
    return session.request(method, server.url + path, headers=headers, timeout=60, **kw)


def eventually(check, timeout: float = 30.0):
    """check() until it returns a true value (followers read what the writer wrote a
    moment later); that value, or the last one."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


@pytest.fixture
def server(live_server):
    return live_server(extra=("--workers", "3", "--device-burst", "40",
                              "--device-per-hour", "1"))


def test_every_process_answers_and_a_scan_is_stored_once_whichever_takes_it(server):
    c = setup_commune(server)
    by = connections(server)
    device, token = c["devices"][1], c["tokens"][11]
    statuses = []
    for name in PROCESSES:  # the same scan through each process: once, then duplicates
        r = call(server, by[name], "POST", "/v1/scan", token=device,
                 json={"token": token, "time": NOW - 3600, "seq": 1})
        assert r.status_code == 200, r.text
        statuses.append(r.json()["status"])
    assert statuses == ["accepted", "duplicate", "duplicate"]
    batch = [{"token": c["tokens"][p], "time": NOW - 3000 + p, "seq": p} for p in (12, 13)]
    first = call(server, by["follower 2"], "POST", "/v1/scans", token=device,
                 json={"scans": batch}).json()
    again = call(server, by["follower 1"], "POST", "/v1/scans", token=device,
                 json={"scans": batch}).json()
    assert (first["accepted"], again["duplicates"]) == (2, 2)
    for name in PROCESSES:  # every process counts the same three check-ins
        assert eventually(lambda n=name: call(server, by[n], "GET", "/readyz").json()
                          ["checkins"] == 3), name
    # the person's tokens revoked: once a process refuses new scans of them, the stored
    # scan sent again is still a duplicate there (the writer's index tells a follower)
    assert call(server, by["writer"], "POST", "/v1/admin/tokens/revoke",
                json={"kind": "person", "id": 11}).status_code == 204
    tries = iter(range(1000))
    for name in PROCESSES:
        assert eventually(lambda n=name: call(  # a new scan each try: a fresh one is refused
            server, by[n], "POST", "/v1/scan", token=device,
            json={"token": token, "time": NOW - next(tries)}).json().get("reason")
            == "token: revoked"), name
        r = call(server, by[name], "POST", "/v1/scan", token=device,
                 json={"token": token, "time": NOW - 3600, "seq": 1})
        assert r.json()["status"] == "duplicate", (name, r.text)


def test_rate_limits_count_the_scans_of_every_process(server):
    c = setup_commune(server)
    by = connections(server)
    device = c["devices"][1]
    for i in range(40):  # the device's burst, spread over the three processes
        name = PROCESSES[i % 3]
        r = call(server, by[name], "POST", "/v1/scan", token=device,
                 json={"token": c["tokens"][11 + i % 4], "time": NOW - 5000 + i})
        assert r.status_code == 200, (name, r.text)
    for name in PROCESSES:
        r = call(server, by[name], "POST", "/v1/scan", token=device,
                 json={"token": c["tokens"][11], "time": NOW - 100})
        assert r.status_code == 429, (name, r.text)
        assert int(r.headers["Retry-After"]) >= 1


def test_a_case_reads_the_same_from_every_process_and_every_read_is_audited(server):
    c = setup_commune(server)
    by = connections(server)
    t = c["tokens"]
    call(server, by["follower 1"], "POST", "/v1/scans", token=c["devices"][1], json={
        "scans": [{"token": t[11], "time": NOW - 7200}, {"token": t[12], "time": NOW - 7000}]})
    call(server, by["follower 2"], "POST", "/v1/scans", token=c["devices"][2], json={
        "scans": [{"token": t[12], "time": NOW - 3000}, {"token": t[13], "time": NOW - 2900}]})
    deadline = time.monotonic() + 10
    while True:  # follower 2 sees follower 1's scans within a second: the case opens then
        r = call(server, by["follower 2"], "POST", "/v1/cases", token=c["official"], json={
            "person": t[11], "from": NOW - 86400, "to": NOW, "purpose": "positive PCR test"})
        if r.status_code != 403 or time.monotonic() > deadline:
            break
        assert r.json()["reason"] == "not_seen_here", r.text
        time.sleep(0.2)
    assert r.status_code == 201, r.text
    case = r.json()["id"]
    reads = 0

    def exposure_of(name: str) -> dict | None:
        """The case's exposure as process `name` answers it, once it shows both scans
        (a process sees what another wrote within a second: the README's promise)."""
        nonlocal reads
        reads += 1
        exposure = call(server, by[name], "GET", f"/v1/cases/{case}/exposure",
                        token=c["official"]).json()
        levels = {p["person"]: p["level"] for p in exposure["contacts"]}
        return exposure if levels == {12: 1, 13: 2} else None

    for name in PROCESSES:
        exposure = eventually(lambda n=name: exposure_of(n), timeout=10)
        assert exposure is not None, name
        assert {v["venue"]: v["name"] for v in exposure["venues"]} == {1: "Chợ 1", 2: "Chợ 2"}
        assert exposure["case"]["jurisdiction"] == COMMUNE
    entries = call(server, by["follower 1"], "GET", "/v1/admin/audit?limit=1000").json()
    assert [e["action"] for e in entries if e["case"] == case] == \
        ["open_case"] + ["exposure"] * reads  # every read, whichever process answered
    verified = call(server, by["writer"], "GET", "/v1/admin/audit/verify").json()
    assert verified["ok"] and verified["entries"] == len(entries)
    # closed through one process: every process stops showing it (each keeps cases in
    # memory; another's closing reaches it within a second)
    r = call(server, by["follower 1"], "POST", f"/v1/cases/{case}/close", token=c["official"])
    assert r.status_code == 200, r.text
    for name in PROCESSES:
        assert eventually(lambda n=name: call(
            server, by[n], "GET", f"/v1/cases/{case}/exposure",
            token=c["official"]).status_code == 410, timeout=10), name


def test_a_checkout_finds_the_check_in_another_process_took(server):
    c = setup_commune(server)
    by = connections(server)
    device, token = c["devices"][1], c["tokens"][11]
    for took, closes in (("writer", "follower 1"), ("follower 1", "follower 2"),
                         ("follower 2", "writer")):
        at = NOW - 3600 * (1 + PROCESSES.index(took))
        assert call(server, by[took], "POST", "/v1/scan", token=device,
                    json={"token": token, "time": at}).json()["status"] == "accepted"
        r = call(server, by[closes], "POST", "/v1/checkouts", token=device,
                 json={"token": token, "time": at + 600})
        assert r.status_code == 200 and r.json()["status"] == "accepted", (took, r.text)


def test_admin_changes_in_one_process_reach_the_others(server):
    c = setup_commune(server)
    by = connections(server)
    device = c["devices"][1]
    # a venue renamed through a follower: every process names it so
    rows = [{"venue": 1, "name": "Chợ Mới", "village": "Thôn Đông", "commune": "Đức Thượng",
             "district": "Hoài Đức", "category": "market"}]
    assert call(server, by["follower 1"], "PUT", "/v1/admin/venues",
                json={"venues": rows}).status_code == 200
    for name in PROCESSES:
        names = eventually(lambda n=name: {
            v["venue"]: v["name"] for v in call(server, by[n], "GET", "/v1/admin/venues").json()
        }.get(1) == "Chợ Mới")
        assert names, name
    # a key rotated through a follower: tokens of the new key are good everywhere
    assert call(server, by["follower 2"], "POST", "/v1/admin/keys/rotate").status_code == 200
    fresh = call(server, by["follower 2"], "POST", "/v1/admin/tokens",
                 json={"kind": "person", "id": 77}).json()["token"]
    for i, name in enumerate(PROCESSES):
        assert eventually(lambda n=name, i=i: call(
            server, by[n], "POST", "/v1/scan", token=device,
            json={"token": fresh, "time": NOW - 900 + i}).json().get("status") == "accepted"), name
    # a device revoked through the writer is refused by every process
    devices = call(server, by["writer"], "GET", "/v1/admin/devices").json()
    first = next(d for d in devices if d["venue"] == 1)
    assert call(server, by["writer"], "DELETE",
                f"/v1/admin/devices/{first['id']}").status_code == 200
    for name in PROCESSES:
        assert eventually(lambda n=name: call(
            server, by[n], "POST", "/v1/scan", token=device,
            json={"token": c["tokens"][12], "time": NOW - 60}).status_code == 401), name


def test_metrics_count_the_requests_of_every_process(server):
    c = setup_commune(server)
    by = connections(server)
    for i, name in enumerate(PROCESSES):
        call(server, by[name], "POST", "/v1/scan", token=c["devices"][1],
             json={"token": c["tokens"][11 + i], "time": NOW - 600 + i})
    text = call(server, by["follower 2"], "GET", "/metrics", token=None).text
    accepted = re.search(r'^qrtrace_scans_total\{status="accepted"\} (\S+)$', text, re.M)
    assert accepted and float(accepted.group(1)) == 3.0, text[:2000]


def test_a_follower_that_dies_is_started_again(server):
    assert set(connections(server)) == set(PROCESSES)
    # the followers are the children of the writer, the process the test started
    children = _children(server.process.pid)
    assert len(children) == 2
    os.kill(children[0], signal.SIGKILL)
    assert eventually(lambda: len(set(_children(server.process.pid)) - {children[0]}) == 2,
                      timeout=60)
    writer = connections(server, names=("writer",))["writer"]
    ready = eventually(lambda: call(server, writer, "GET", "/readyz").status_code == 200,
                       timeout=120)
    assert ready, call(server, writer, "GET", "/readyz").text
    assert set(connections(server)) == set(PROCESSES)


def _children(pid: int) -> list[int]:
    """Live child processes of `pid` (from /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(entry))
    return sorted(found)
