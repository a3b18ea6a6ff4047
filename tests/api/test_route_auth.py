"""The refusal matrix: every protected operation of /openapi.json, as a running server
serves it, refuses callers who may not use it, and serves the one who may.

For each operation outside OPEN, with a minimally valid request (MINIMAL, keyed by
method and path; a new operation without an entry fails here, so a route added without
authentication cannot slip through):

    no token                          401 with WWW-Authenticate
    a token of each other role        403
    a revoked token                   401 with WWW-Authenticate
    the right role                    its success status

and for the operations on a case (and opening one in a given commune): an official of
another commune of the same district, and of another district, get 404 for a case (the
case list leaves it out) and 403 for opening one there, while an official of the case's
district is served.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from ingest.events import ScanBatch, ScanEvent
from ingest.wire import encode_packed
from tests.api.conftest import start_server

NOW = int(time.time())
DISTRICT = "Hoài Đức"
COMMUNE = f"{DISTRICT}/Đức Thượng"
OTHER_COMMUNE = f"{DISTRICT}/Kim Chung"
OTHER_DISTRICT = "Đan Phượng/Tân Hội"
VENUE = 1
ROLES = ("device", "official", "admin")

# Served to anyone: the operator's probes and scrapers. (/openapi.json, /docs, the page
# at / and /static/... are not operations of the schema.)
OPEN = {("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics")}


def _utc_today():
    """Today in UTC: never after the server's local (UTC+7) day."""
    return datetime.now(UTC).date()


@dataclass
class Fixtures:
    """What the minimal requests refer to, made over the API before the matrix runs."""

    tokens: dict[str, str]       # by role, plus "revoked device", "revoked official",
    #                              "district", "other commune", "other district"
    person_token: str
    case_id: int
    spare_device: int            # revoked by DELETE /v1/admin/devices/{device_id}
    spare_official: int
    old_key: int                 # live but not active: POST /v1/admin/keys/{key_id}/retire


@dataclass(frozen=True)
class Minimal:
    """A minimally valid request of one operation and who may make it."""

    roles: frozenset[str]
    request: Callable[[Fixtures], dict]   # path parameters and requests' keyword arguments
    ok: int = 200
    on_case: bool = False                 # jurisdiction applies


def _scan(fx: Fixtures) -> dict:
    return {"token": fx.person_token, "time": NOW - 60}


def _packed(fx: Fixtures) -> dict:
    body = encode_packed(ScanBatch.of([ScanEvent(0, 0, 1, NOW - 50, fx.person_token)]))
    return {"data": body, "headers": {"Content-Type": "application/vnd.qrtrace.packed-v1"}}


def _on_case(fx: Fixtures, **kw) -> dict:
    return {"path": {"case_id": fx.case_id}, **kw}


DEVICE, OFFICIAL, ADMIN = frozenset({"device"}), frozenset({"official"}), frozenset({"admin"})
MINIMAL: dict[tuple[str, str], Minimal] = {
    ("GET", "/v1/me"): Minimal(DEVICE | OFFICIAL | ADMIN, lambda fx: {}),
    ("POST", "/v1/scans"): Minimal(DEVICE, lambda fx: {"json": {"scans": [_scan(fx)]}}),
    ("POST", "/v1/scan"): Minimal(DEVICE, lambda fx: {"json": _scan(fx)}),
    ("POST", "/v1/scans/packed"): Minimal(DEVICE, _packed),
    ("POST", "/v1/frames"): Minimal(DEVICE, lambda fx: {"json": {"frames": [
        {"image": base64.b64encode(b"not a picture").decode(), "time": NOW - 40}]}}),
    ("POST", "/v1/checkouts"): Minimal(DEVICE, lambda fx: {"json": {
        "token": fx.person_token, "time": NOW - 30}}),
    ("GET", "/v1/cases"): Minimal(OFFICIAL, lambda fx: {}),
    ("POST", "/v1/cases"): Minimal(OFFICIAL, lambda fx: {"json": {
        "person": "11", "from": NOW - 86400, "to": NOW, "purpose": "refusal matrix",
        "jurisdiction": COMMUNE}}, ok=201, on_case=True),
    ("GET", "/v1/cases/{case_id}"): Minimal(OFFICIAL, _on_case, on_case=True),
    ("GET", "/v1/cases/{case_id}/exposure"): Minimal(OFFICIAL, _on_case, on_case=True),
    ("GET", "/v1/cases/{case_id}/zones"): Minimal(OFFICIAL, _on_case, on_case=True),
    ("GET", "/v1/cases/{case_id}/graph"): Minimal(OFFICIAL, _on_case, on_case=True),
    ("GET", "/v1/cases/{case_id}/export.csv"): Minimal(OFFICIAL, _on_case, on_case=True),
    ("POST", "/v1/cases/{case_id}/close"): Minimal(OFFICIAL, _on_case, on_case=True),
    ("GET", "/v1/reports/adoption"): Minimal(OFFICIAL | ADMIN, lambda fx: {"params": {
        "from": str(_utc_today() - timedelta(days=7)), "to": str(_utc_today())}}),
    ("GET", "/v1/admin/venues"): Minimal(ADMIN, lambda fx: {}),
    ("PUT", "/v1/admin/venues"): Minimal(ADMIN, lambda fx: {"json": {"venues": [
        {"venue": 3, "name": "Nhà văn hoá", "commune": "Đức Thượng",
         "district": DISTRICT}]}}),
    ("GET", "/v1/admin/devices"): Minimal(ADMIN, lambda fx: {}),
    ("POST", "/v1/admin/devices"): Minimal(ADMIN, lambda fx: {"json": {
        "name": "kiosk", "venue": VENUE}}, ok=201),
    ("DELETE", "/v1/admin/devices/{device_id}"): Minimal(ADMIN, lambda fx: {
        "path": {"device_id": fx.spare_device}}),
    ("GET", "/v1/admin/officials"): Minimal(ADMIN, lambda fx: {}),
    ("POST", "/v1/admin/officials"): Minimal(ADMIN, lambda fx: {"json": {
        "name": "official", "jurisdiction": COMMUNE}}, ok=201),
    ("DELETE", "/v1/admin/officials/{official_id}"): Minimal(ADMIN, lambda fx: {
        "path": {"official_id": fx.spare_official}}),
    ("POST", "/v1/admin/tokens"): Minimal(ADMIN, lambda fx: {"json": {
        "kind": "person", "id": 12}}, ok=201),
    ("GET", "/v1/admin/qr"): Minimal(ADMIN, lambda fx: {"params": {
        "text": fx.person_token}}),
    ("POST", "/v1/admin/tokens/revoke"): Minimal(ADMIN, lambda fx: {"json": {
        "kind": "person", "id": 99}}, ok=204),
    ("GET", "/v1/admin/keys"): Minimal(ADMIN, lambda fx: {}),
    ("POST", "/v1/admin/keys/rotate"): Minimal(ADMIN, lambda fx: {}),
    ("POST", "/v1/admin/keys/{key_id}/retire"): Minimal(ADMIN, lambda fx: {
        "path": {"key_id": fx.old_key}}),
    ("GET", "/v1/admin/audit"): Minimal(ADMIN, lambda fx: {}),
    ("GET", "/v1/admin/audit/verify"): Minimal(ADMIN, lambda fx: {}),
}


def _ok(response) -> dict:
    assert response.status_code < 300, response.text
    return response.json()


def _official(server, jurisdiction: str) -> dict:
    return _ok(server.post("/v1/admin/officials",
                           json={"name": f"official of {jurisdiction}",
                                 "jurisdiction": jurisdiction}))


def _device(server) -> dict:
    return _ok(server.post("/v1/admin/devices", json={"name": "kiosk", "venue": VENUE}))


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A running server with the fixtures made, and its /openapi.json."""
    server = start_server(tmp_path_factory.mktemp("refusals") / "data")
    try:
        _ok(server.put("/v1/admin/venues", json={"venues": [
            {"venue": VENUE, "name": "Chợ Đức Thượng", "commune": "Đức Thượng",
             "district": DISTRICT}]}))
        old_key = _ok(server.get("/v1/admin/keys"))["active"]
        _ok(server.post("/v1/admin/keys/rotate"))  # tokens below use the new key
        device, official = _device(server), _official(server, COMMUNE)
        revoked_device, revoked_official = _device(server), _official(server, COMMUNE)
        for path, made in (("devices", revoked_device), ("officials", revoked_official)):
            _ok(server.delete(f"/v1/admin/{path}/{made['principal']['id']}"))
        person = _ok(server.post("/v1/admin/tokens", json={"kind": "person", "id": 11}))
        _ok(server.post("/v1/scan", token=device["token"],
                        json={"token": person["token"], "time": NOW - 3600}))
        case = _ok(server.post("/v1/cases", token=official["token"], json={
            "person": "11", "from": NOW - 86400, "to": NOW, "purpose": "refusal matrix"}))
        fx = Fixtures(
            tokens={"device": device["token"], "official": official["token"],
                    "admin": server.admin_token,
                    "revoked device": revoked_device["token"],
                    "revoked official": revoked_official["token"],
                    "district": _official(server, DISTRICT)["token"],
                    "other commune": _official(server, OTHER_COMMUNE)["token"],
                    "other district": _official(server, OTHER_DISTRICT)["token"]},
            person_token=person["token"], case_id=case["id"],
            spare_device=_device(server)["principal"]["id"],
            spare_official=_official(server, COMMUNE)["principal"]["id"],
            old_key=old_key)
        yield server, fx, _ok(server.get("/openapi.json", token=None))
    finally:
        server.stop()


def _call(server, method: str, path: str, token: str | None, minimal: dict):
    kw = dict(minimal)
    url = path.format(**kw.pop("path", {}))
    return server.request(method, url, token=token, **kw)


def _refusals(server, fx: Fixtures, method: str, path: str, entry: Minimal) -> list[str]:
    """What this operation got wrong, one line each (empty when it refuses correctly)."""
    request = entry.request(fx)
    found = []

    def expect(who: str, token: str | None, status: int, challenge: bool = False) -> None:
        r = _call(server, method, path, token, request)
        if r.status_code != status:
            found.append(f"{method} {path}: {who}: {r.status_code}, not {status}: "
                         f"{r.text[:200]}")
        elif challenge and not r.headers.get("WWW-Authenticate", "").startswith("Bearer"):
            found.append(f"{method} {path}: {who}: 401 without WWW-Authenticate: Bearer")

    expect("no token", None, 401, challenge=True)
    for role in ROLES:
        if role not in entry.roles:
            expect(f"the {role}'s token", fx.tokens[role], 403)
    # Admins are never revoked over the API: a revoked official's token stands in.
    revoked = "revoked device" if "device" in entry.roles else "revoked official"
    expect(f"a {revoked} token", fx.tokens[revoked], 401, challenge=True)
    if entry.on_case:
        # another jurisdiction's case is answered as one that does not exist (a 403 told
        # an official which case ids exist in the whole country); opening a case in
        # another's jurisdiction is refused as such
        other = 404 if "{case_id}" in path else 403
        expect("an official of another commune", fx.tokens["other commune"], other)
        expect("an official of another district", fx.tokens["other district"], other)
        expect("the district's official", fx.tokens["district"], entry.ok)
    right = next(role for role in ROLES if role in entry.roles)
    expect(f"the {right}", fx.tokens[right], entry.ok)
    return found


def test_every_protected_operation_refuses_the_wrong_callers(served):
    server, fx, schema = served
    operations = [(method.upper(), path) for path, methods in schema["paths"].items()
                  for method in methods]
    # closing the fixture's case ends what its other routes show: it goes last
    protected = sorted((op for op in operations if op not in OPEN),
                       key=lambda op: op[1].endswith("/close"))
    problems = []
    for method, path in protected:
        entry = MINIMAL.get((method, path))
        if entry is None:
            problems.append(f"{method} {path}: no minimal request in MINIMAL; add one, "
                            "with the roles that may call it")
            continue
        problems += _refusals(server, fx, method, path, entry)
    assert not problems, "\n".join(problems)


def test_the_case_list_leaves_out_other_jurisdictions(served):
    server, fx, _ = served
    for who, sees in (("official", True), ("district", True), ("other commune", False),
                      ("other district", False)):
        ids = {c["id"] for c in _ok(server.get("/v1/cases", token=fx.tokens[who]))}
        assert (fx.case_id in ids) is sees, who


def test_every_operation_of_the_table_is_served(served):
    _, _, schema = served
    served_ops = {(m.upper(), p) for p, methods in schema["paths"].items() for m in methods}
    assert set(MINIMAL) <= served_ops, f"stale entries: {set(MINIMAL) - served_ops}"
    assert served_ops >= OPEN
