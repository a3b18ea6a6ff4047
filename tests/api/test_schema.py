"""Schemathesis over the whole OpenAPI document of a real `qrtrace serve`, with every check.

Every phase of `st run` (coverage, fuzzing, stateful; examples when the schema has any)
runs through the programmatic engine, with every built-in check on: no 5xx, every status
code documented, every body matching its schema and content type, headers as declared,
schema-valid data accepted and schema-invalid data refused, `ignored_auth` (the same call
without a token, or with a made-up one, is refused), and 405 with an exact `Allow` for an
undeclared method. `max_response_time` stays off: it needs a limit, and a test does not
time (the benchmarks do; on two shared cores a limit would only make the test flaky).

The server runs with --no-rate-limits: the generated traffic would otherwise meet 429s
(documented, but they would hide the routes' own answers). Fixtures are made over the API
first (venues, a device, an official, a personal token, a check-in, case 1), so that
authenticated calls reach real code. Each operation gets a token of the role it needs.

Where a check cannot hold for a principled reason, SCHEMA_CANNOT_SAY names the operation,
the extra statuses allowed and why; nothing else is excluded. Two checks have nothing to
work on here: `object_level_authorization` compares several identities of one role (the
officials' jurisdictions are the refusal matrix's job, tests/api/test_route_auth.py), and
`use_after_free` / `ensure_resource_availability` need links between operations that
create and read one resource (the stateful phase runs, with what schemathesis infers).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import pytest
import schemathesis
from schemathesis.engine import Status, events, from_schema

from tests.api.conftest import LiveServer, start_server

NOW = int(time.time())
PACKED_TYPE = "application/vnd.qrtrace.packed-v1"
COMMUNE = "Hoài Đức/Đức Thượng"
VENUE = 1
MAX_EXAMPLES = 25

# The role whose token each protected path needs, by prefix.
ROLE_BY_PREFIX = {
    "/v1/me": "official",  # any role
    "/v1/scan": "device",  # /v1/scan and /v1/scans...
    "/v1/frames": "device",
    "/v1/checkouts": "device",
    "/v1/cases": "official",
    "/v1/reports": "official",
    "/v1/admin": "admin",
}

# positive_data_acceptance expects these for schema-valid data...
# (410: a case the run's own POST .../close closed answers so from then on.)
ACCEPTED = ["2xx", "3xx", "401", "403", "404", "409", "410", "429", "5xx"]
# ...and also the statuses named here, only on these operations: what makes their request
# acceptable lies beyond JSON Schema.
SCHEMA_CANNOT_SAY = {
    "POST /v1/cases": (["422"], "`to` after `from` and at most 60 days later (two fields), "
                                "and a personal token whose MAC verifies (a secret)"),
    "GET /v1/reports/adoption": (["422"], "`to` on or after `from`, at most 366 days "
                                          "(two query parameters), days the index holds "
                                          "(none to come, none past the retention period)"),
    "POST /v1/scans/packed": (["400"], "packed-v1 is a binary layout (magic, header, "
                                       "fixed-width rows): any byte string fits the "
                                       "schema's string/binary"),
}
# Checks that must have run at least once for the run to mean anything.
MUST_RUN = {"not_a_server_error", "status_code_conformance", "content_type_conformance",
            "response_headers_conformance", "response_schema_conformance",
            "negative_data_rejection", "positive_data_acceptance", "ignored_auth",
            "unsupported_method"}

# The packed body goes out as the bytes generated.
schemathesis.serializer.alias(PACKED_TYPE, "application/octet-stream")


def role_for(path: str) -> str:
    """The role a protected path needs. Raises LookupError for a path no prefix names."""
    for prefix, role in ROLE_BY_PREFIX.items():
        if path.startswith(prefix):
            return role
    raise LookupError(f"{path} is protected but ROLE_BY_PREFIX names no role for it")


@dataclass
class Principals:
    """The tokens the run authenticates with, kept valid: when a generated request revokes
    one of them (DELETE /v1/admin/devices/{id}), a fresh one takes its place."""

    server: LiveServer
    tokens: dict[str, str] = field(default_factory=dict)
    ids: dict[str, int] = field(default_factory=dict)

    def provision(self) -> None:
        """Venues, a device, an official, a personal token, a check-in and case 1."""
        s = self.server
        venues = [{"venue": v, "name": f"Chợ {v}", "village": "Thôn Đông",
                   "commune": "Đức Thượng", "district": "Hoài Đức", "category": "market"}
                  for v in (VENUE, 2)]
        _ok(s.put("/v1/admin/venues", json={"venues": venues}))
        self.tokens["admin"] = s.admin_token
        self.renew("device")
        self.renew("official")
        person = _ok(s.post("/v1/admin/tokens", json={"kind": "person", "id": 11}))["token"]
        _ok(s.post("/v1/admin/tokens", json={"kind": "venue", "id": VENUE}))
        _ok(s.post("/v1/scan", token=self.tokens["device"],
                   json={"token": person, "time": NOW - 3600, "seq": 1}))
        case = _ok(s.post("/v1/cases", token=self.tokens["official"], json={
            "person": person, "from": NOW - 86400, "to": NOW, "purpose": "schema test"}))
        assert case["id"] == 1

    def renew(self, role: str) -> None:
        """A new device (at VENUE) or official (of COMMUNE) token."""
        if role == "device":
            made = _ok(self.server.post("/v1/admin/devices",
                                        json={"name": "kiosk", "venue": VENUE}))
        else:
            made = _ok(self.server.post("/v1/admin/officials",
                                        json={"name": "official", "jurisdiction": COMMUNE}))
        self.tokens[role] = made["token"]
        self.ids[role] = made["principal"]["id"]

    def after(self, case, response) -> None:
        """Renew a token that the request just revoked."""
        if case.method.upper() != "DELETE" or response.status_code != 200:
            return
        for role in ("device", "official"):
            if case.path == f"/v1/admin/{role}s/{{{role}_id}}" \
                    and str(case.path_parameters.get(f"{role}_id")) == str(self.ids[role]):
                self.renew(role)


def _ok(response) -> dict:
    assert response.status_code < 300, response.text
    return response.json()


@pytest.fixture(scope="module")
def principals(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("schema") / "data",
                          extra=("--no-rate-limits",))
    try:
        found = Principals(server)
        found.provision()
        yield found
    finally:
        server.stop()


def load_schema(principals: Principals):
    """The served OpenAPI document, every check on, a token of the right role per call."""
    config = schemathesis.Config.from_dict({
        "generation": {"max-examples": MAX_EXAMPLES, "database": "none"},
        "checks": {"enabled": True,
                   "positive_data_acceptance": {"expected-statuses": ACCEPTED}},
        "cache": {"enabled": False},
        "request-timeout": 60,
        "workers": 1,
        "operations": [{"include-name": name, "checks": {
            "positive_data_acceptance": {"expected-statuses": [*ACCEPTED, *also]}}}
            for name, (also, _why) in SCHEMA_CANNOT_SAY.items()],
    })
    schema = schemathesis.openapi.from_url(principals.server.url + "/openapi.json",
                                           config=config)

    @schema.auth(refresh_interval=None)
    class RoleToken:
        """The bearer token of the role the operation needs (none for the open ones)."""

        def get(self, case, context):
            if not context.operation.definition.raw.get("security"):
                return None
            return principals.tokens[role_for(context.operation.path)]

        def set(self, case, data, context):
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}

    @schema.hook("after_call")
    def renew_revoked(context, case, response):
        principals.after(case, response)

    return schema


@dataclass
class RunResult:
    failures: list[str] = field(default_factory=list)
    calls: int = 0
    checks: set[str] = field(default_factory=set)


def run_all_phases(schema) -> RunResult:
    """Run the engine; every failure as text with how the case was made and a curl."""
    result = RunResult()
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            recorder = event.recorder
            result.calls += len(recorder.interactions)
            for case_id, checks in recorder.checks.items():
                for check in checks:
                    result.checks.add(check.name)
                    if check.status == Status.FAILURE and check.failure_info is not None:
                        failure = check.failure_info.failure
                        made = _how_made(recorder.cases[case_id].value)
                        result.failures.append(
                            f"{recorder.label}: {check.name}: {failure.title} ({made})\n"
                            f"    {failure.message}\n    {check.failure_info.code_sample}")
        elif isinstance(event, events.NonFatalError):
            result.failures.append(f"{event.label}: error: {event.info.format()}")
        elif isinstance(event, events.FatalError):
            raise event.exception
        elif isinstance(event, events.EngineFinished):
            result.failures.extend(f"after the run: {f.title}: {f.message}"
                                   for f in event.failures)
    return result


def _how_made(case) -> str:
    meta = case.meta
    if meta is None:
        return "explicit"
    return f"{meta.phase.name.value}, {meta.generation.mode.value}"


def test_every_operation_conforms_to_the_schema(principals):
    schema = load_schema(principals)
    run = run_all_phases(schema)
    assert not run.failures, (f"{len(run.failures)} failures (seed {schema.config.seed}):\n"
                              + "\n".join(sorted(set(run.failures))))
    assert run.checks >= MUST_RUN, f"checks that never ran: {MUST_RUN - run.checks}"
    assert run.calls > 20 * len(list(schema.get_all_operations()))
