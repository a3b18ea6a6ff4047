"""`qrtrace shard`, a real server on loopback: sharded traces over the network answer as
one data folder holding everything, and only to the shard token."""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import subprocess
import sys
import time
from collections import Counter
from datetime import date

import numpy as np
import orjson
import pytest
import requests

from api.cases import CaseRequest
from api.service import Service
from api.settings import Secret, Settings
from api.shard_client import RemoteShard
from api.shard_wire import pack
from api.views import exposure_json
from tests.api.conftest import ROOT, free_port
from tests.api.test_cli_tracing import qrtrace
from tracing import CheckinIndex, ContactRule, simulate
from tracing.adoption import day_bounds, lockdown_comparison, venue_day_counts
from tracing.errors import ShardUnavailable
from tracing.follower import IndexFollower
from tracing.shards import trace_shards
from tracing.venues import VenueTable

PURPOSE = ("--purpose", "test")  # a trace says why it is run (audited)

TOKEN = "shd_" + secrets.token_urlsafe(24)
DAY = 86_400
EPOCH = date(1970, 1, 1).toordinal()


@pytest.fixture(scope="module")
def town(tmp_path_factory):
    """A simulated town in three data folders: all of it, and its venues split in two
    (odd venues in `far`, which a shard server answers for); a writer holds `far` open."""
    root = tmp_path_factory.mktemp("shards")
    today = int(time.time()) // DAY  # recent: a server's retention keeps them
    c, town = simulate.checkins_for_count(60_000, seed=5, days=4, start_day=today - 5)
    ids, dwell = VenueTable(town.venues()).resolved_dwell()
    parts = {"all": np.ones(len(c), bool), "near": c.venue % 2 == 0, "far": c.venue % 2 == 1}
    for name, mine in parts.items():
        with CheckinIndex.open(root / name / "index") as index:
            index.set_venue_dwell(ids, dwell)
            index.append(c.person[mine], c.venue[mine], c.t_in[mine], c.t_out[mine])
    # the officials' server knows every venue of the town, in the officials' commune:
    # a case is opened only for a person seen there
    VenueTable([dataclasses.replace(v, district="commune") for v in town.venues()]).save(
        root / "near")
    writer = CheckinIndex.open(root / "far" / "index")  # the worker's lock, held
    server, url = start_shard(root / "far", root / "shard.log")
    try:
        cases = [(int(c.person[i]), int(c.t_in[i]) - DAY, int(c.t_in[i]) + DAY)
                 for i in np.random.default_rng(1).integers(0, len(c), 5)]
        yield root, url, cases, writer
    finally:
        server.terminate()
        server.wait(timeout=20)
        writer.close()


def start_shard(data, log) -> tuple[subprocess.Popen, str]:
    """A `qrtrace shard` process over `data` on a free port, answering; and its URL."""
    port = free_port()
    with open(log, "wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "shard", "--data", str(data), "--port",
             str(port)], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, "QRTRACE_SHARD_TOKEN": TOKEN})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if requests.get(url + "/healthz", timeout=2).status_code == 200:
                return server, url
        except requests.ConnectionError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                raise RuntimeError(log.read_text()) from None
            time.sleep(0.2)


def test_trace_over_a_folder_and_a_shard_server_answers_as_one_folder(town):
    root, url, cases, _writer = town
    env_token = {"QRTRACE_SHARD_TOKEN": TOKEN}
    found = 0
    for case, lo, hi in cases:
        window = ["--case", str(case), "--from", str(lo), "--to", str(hi), "--json"]
        one = json.loads(qrtrace("trace", *PURPOSE, "--data", str(root / "all"), *window).stdout)
        done = subprocess.run(
            [sys.executable, "-m", "api.cli", "trace", *PURPOSE, "--data", str(root / "near"),
             "--shard", url, *window], capture_output=True, text=True, cwd=ROOT,
            env={**os.environ, **env_token}, timeout=120)
        assert done.returncode == 0, done.stderr
        two = json.loads(done.stdout)
        assert (two["contacts"], two["zones"]) == (one["contacts"], one["zones"])
        found += len(one["contacts"])
    assert found


def test_a_trace_over_shards_alone_is_audited_in_the_log_it_names(town, tmp_path):
    """With no data folder of its own, a trace has no audit log but the one --audit-log
    names: without it the trace is refused, with it the entry is there."""
    _root, url, cases, _writer = town
    case, lo, hi = cases[0]
    base = [sys.executable, "-m", "api.cli", "trace", *PURPOSE, "--shard", url, "--case", str(case),
            "--from", str(lo), "--to", str(hi), "--json"]
    env = {**os.environ, "QRTRACE_SHARD_TOKEN": TOKEN}
    done = subprocess.run(base, capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=120)
    assert done.returncode == 2 and done.stdout == "" and "--audit-log" in done.stderr
    log = tmp_path / "audit.log"
    done = subprocess.run([*base, "--audit-log", str(log), "--purpose", "cluster"],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    entry = json.loads(log.read_text())
    assert (entry["detail"]["person"], entry["purpose"], entry["detail"]["shards"]) == \
        (case, "cluster", [url])
    # the shard records what it was asked in its own folder's log, whatever log the
    # coordinator names: a review traced with --audit-log /tmp/throwaway.log and the
    # shard's folder showed nothing
    asked = [json.loads(line) for line in
             (_root / "far" / "audit" / "audit.log").read_text().splitlines()]
    first = [e for e in asked if e["action"] == "shard_presences"
             and e["detail"]["first_persons"] == [case]]
    assert first and first[-1]["role"] == "shard", asked[-5:]
    assert first[-1]["detail"]["peer"].startswith("127.0.0.1:")


def test_the_shard_sees_what_its_writer_appends(town):
    root, url, _cases, writer = town
    t = 1_700_000_000
    writer.append(np.array([7_000_001, 7_000_002], np.uint64), np.array([1, 1], np.uint64),
                  np.array([t, t + 60]), np.array([t + 3600, t + 3600]))
    shard = RemoteShard(url, TOKEN)
    try:
        time.sleep(0.3)  # the server's follower polls every 50 ms
        with IndexFollower.open(root / "near" / "index", poll_s=None) as near:
            result = trace_shards([near.snapshot(), shard], 7_000_001, t, t + 7200,
                                  ContactRule(depth=1))
    finally:
        shard.close()
    assert [(c.person, c.exposed_at) for c in result.contacts] == [(7_000_002, t + 60)]


def test_only_the_shard_token_is_answered_and_bad_bodies_are_named(town):
    _root, url, _cases, _writer = town
    one = {"venues": np.array([1], np.uint64), "times": np.array([0], np.int64),
           "default_dwell": 3600}
    body = pack(persons=np.array([1], np.uint64), **one)
    ask = url + "/v1/shard/ends"
    none = requests.post(ask, data=body, timeout=10)
    assert none.status_code == 401 and "a shard token is required" in none.json()["detail"]
    wrong = {"Authorization": "Bearer " + "x" * 40}
    refused = requests.post(ask, data=body, headers=wrong, timeout=10)
    assert refused.status_code == 401 and refused.json()["detail"].startswith(
        "wrong shard token")
    right = {"Authorization": f"Bearer {TOKEN}"}
    assert requests.post(ask, data=body, headers=right, timeout=10).status_code == 200
    bad = requests.post(ask, data=b"not a message", headers=right, timeout=10)
    assert bad.status_code == 400 and "not a shard message" in bad.json()["detail"]
    bad = requests.post(ask, data=body[:-1], headers=right, timeout=10)
    assert bad.status_code == 400 and "the message has" in bad.json()["detail"]
    short = pack(persons=np.array([1, 2], np.uint64), **one)
    bad = requests.post(ask, data=short, headers=right, timeout=10)
    assert bad.status_code == 400 and "same length" in bad.json()["detail"]
    wrong_type = pack(persons=np.array([1.5]), **one)
    bad = requests.post(ask, data=wrong_type, headers=right, timeout=10)
    assert bad.status_code == 400 and "persons: float64" in bad.json()["detail"]
    assert requests.post(url + "/v1/shard/cases", data=body, headers=right,
                         timeout=10).status_code == 404


def test_an_unreachable_or_refusing_shard_fails_the_trace_by_name(town):
    root, url, cases, _writer = town
    case, lo, hi = cases[0]
    dead = f"http://127.0.0.1:{free_port()}"
    with IndexFollower.open(root / "near" / "index", poll_s=None) as near:
        for shard, message in ((RemoteShard(dead, TOKEN), dead),
                               (RemoteShard(url, "y" * 30), "answered 401")):
            with pytest.raises(ShardUnavailable, match=message):
                trace_shards([near.snapshot(), shard], case, lo, hi, ContactRule())
            shard.close()
    done = subprocess.run(
        [sys.executable, "-m", "api.cli", "trace", *PURPOSE, "--data", str(root / "near"),
         "--shard", dead, "--case", str(case), "--from", str(lo), "--to", str(hi)],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
        env={**os.environ, "QRTRACE_SHARD_TOKEN": TOKEN})
    assert done.returncode == 2 and dead in done.stderr
    done = subprocess.run(
        [sys.executable, "-m", "api.cli", "trace", *PURPOSE, "--shard", url, "--case", "1",
         "--from", "0", "--to", "10"], capture_output=True, text=True, cwd=ROOT, timeout=120,
        env={k: v for k, v in os.environ.items() if k != "QRTRACE_SHARD_TOKEN"})
    assert done.returncode == 2 and "QRTRACE_SHARD_TOKEN" in done.stderr


def test_serve_traces_cases_over_its_index_and_a_shard(town, live_server):
    """`qrtrace serve --shard URL`: an official's exposure, its lockdown comparison and
    the adoption report cover the shard's venues, as the one folder holding everything
    answers."""
    root, url, cases, _writer = town
    server = live_server(data=root / "near", extra=("--shard", url),
                         env={"QRTRACE_SHARD_TOKEN": TOKEN})
    r = server.post("/v1/admin/officials", json={"name": "o", "jurisdiction": "commune"})
    official = r.json()["token"]
    with IndexFollower.open(root / "all" / "index", poll_s=None) as whole:
        found = 0
        for case, lo, hi in cases[:3]:
            r = server.post("/v1/cases", token=official, json={
                "person": str(case), "from": lo, "to": min(hi, int(time.time())),
                "purpose": "sharded trace test"})
            assert r.status_code == 201, r.text
            opened = r.json()
            exposure = server.get(f"/v1/cases/{opened['id']}/exposure?limit=50000",
                                  token=official).json()
            rule = ContactRule(**{k: v for k, v in exposure["rule"].items() if k != "name"})
            want = whole.trace(case, lo, min(hi, int(time.time())), rule)
            got = sorted((c["person"], c["level"], c["exposed_at"]) for c in exposure["contacts"])
            assert got == sorted((c.person, c.level, c.exposed_at) for c in want.contacts)
            found += len(want.contacts)
            # the villages of the server's venue table
            village = lockdown_comparison(whole.snapshot(), VenueTable.load(root / "near"),
                                          want)["village"]
            assert exposure["comparison"]["village"] == village
        assert found
        first, last = min(c[1] for c in cases) // DAY, max(c[2] for c in cases) // DAY
        report = server.get(f"/v1/reports/adoption?from={date.fromordinal(EPOCH + first)}"
                            f"&to={date.fromordinal(EPOCH + last)}")
        assert report.status_code == 200, report.text
        tz = 7 * 3600  # the server's default: UTC+7
        counts = venue_day_counts(whole.snapshot(), *day_bounds(first, last, tz), tz)
    per_venue = Counter()
    for venue, n in zip(counts.venue.tolist(), counts.checkins.tolist(), strict=True):
        per_venue[venue] += n
    got = {row["venue"]: row["checkins"] for row in report.json()["venues"] if row["checkins"]}
    assert got == dict(per_venue) and {v % 2 for v in got} == {0, 1}
    assert server.get("/readyz").status_code == 200


def test_serve_answers_503_and_is_not_ready_while_a_shard_is_down(town, live_server):
    """A trace missing a shard would be wrong: while the shard server is down, an
    official's exposure is refused with 503 naming it, and /readyz names it too."""
    root, _url, cases, _writer = town
    shard, url = start_shard(root / "far", root / "shard-2.log")
    try:
        server = live_server(data=root / "near", extra=("--shard", url),
                             env={"QRTRACE_SHARD_TOKEN": TOKEN})
        r = server.post("/v1/admin/officials", json={"name": "o", "jurisdiction": "commune"})
        official = r.json()["token"]
        case, lo, hi = cases[0]
        opened = server.post("/v1/cases", token=official, json={
            "person": str(case), "from": lo, "to": min(hi, int(time.time())),
            "purpose": "shard down test"}).json()
    finally:
        shard.terminate()
        shard.wait(timeout=20)
    r = server.get(f"/v1/cases/{opened['id']}/exposure", token=official)
    assert r.status_code == 503 and url in r.json()["detail"]
    assert r.headers["Retry-After"] == "5"
    r = server.get("/readyz")
    assert r.status_code == 503 and any(url in p for p in r.json()["problems"])


def test_a_page_made_before_its_shard_went_down_ages_out_to_503(town):
    """An exposure page already made is answered for a while, as pages are while scans
    flow; but over shards no snapshot here says it is still right, so once the shard
    that helped make it is down, the page ages out and the answer is ShardUnavailable
    (503), not the old page for ever."""
    root, _url, cases, _writer = town
    shard, url = start_shard(root / "far", root / "shard-3.log")
    service = Service(Settings(data=root / "near", shards=(url,), shard_token=Secret(TOKEN)))
    try:
        official, _ = service.registry.add_principal("o", "official", jurisdiction="commune")
        case, lo, hi = cases[0]
        opened = service.cases.open(official, CaseRequest(
            person=case, t_from=lo, t_to=min(hi, int(time.time())), purpose="ageing test"))
        pages = service.cases
        pages.max_staleness_s, pages.page_refresh_s, pages.page_max_age_s = 0.0, 0.0, 3.0

        def render(case, result) -> bytes:
            return exposure_json(service, case, result)

        first = pages.page(opened, "exposure", render)
        assert orjson.loads(first)["contacts"]
        shard.terminate()
        shard.wait(timeout=20)
        # the refresher's attempts fail (the shard is down): the page made stays, young
        assert pages.page(opened, "exposure", render) == first
        time.sleep(3.2)
        assert pages.page_if_ready(opened, "exposure", render) is None
        with pytest.raises(ShardUnavailable, match=url):
            pages.page(opened, "exposure", render)
    finally:
        service.close()
        if shard.poll() is None:
            shard.kill()
