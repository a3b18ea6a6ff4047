"""Officials' cases: opening one, reading its exposure, zones and graph, each audited.

Queries read an index snapshot at most a second old (CaseService.snapshot), so that a
flow of scans does not force every query to trace afresh. An official sees only the
cases inside their jurisdiction (a commune, or a district and
its communes); every read of a case writes an audit entry (who, which case, purpose,
when) before the answer leaves. A case's trace is computed over the index's current
snapshot and kept until the index changes, so that an official paging through the
exposure, zones and graph of one case pays for one trace.

Errors::

    CaseError (Exception)
    ├── CaseNotFound       no such case
    ├── OutOfJurisdiction  the case (or the asked jurisdiction) is outside the official's
    └── BadCase            the request cannot open a case (the message names the field)
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from api.audit import AuditLog
from api.registry import Case, Principal, Registry, in_jurisdiction
from decoder import KeyRing, Kind, Status, verify_token
from tracing import exposure
from tracing.model import ContactRule, TraceResult

MAX_WINDOW_S = 60 * 86400


class CaseError(Exception):
    """The root of the errors a case request gets."""


class CaseNotFound(CaseError):
    """No case with this id."""


class OutOfJurisdiction(CaseError):
    """The case or jurisdiction lies outside the official's own."""


class BadCase(CaseError):
    """The request cannot open a case; the message names the field and the problem."""


@dataclass(frozen=True)
class CaseRequest:
    """What an official gives to open a case. `person` is a personal token or an id."""

    person: str | int
    t_from: int
    t_to: int
    purpose: str
    jurisdiction: str | None = None
    min_overlap: int = 600
    linger: int = 0
    depth: int = 2


class CaseService:
    """Opens and reads cases for officials (see the module docstring)."""

    def __init__(self, registry: Registry, index, audit: AuditLog, keyring, *,
                 default_dwell: int = 3600, cache_size: int = 64,
                 page_bytes: int = 256 * 1024 * 1024, max_staleness_s: float = 1.0) -> None:
        self.registry = registry
        self.index = index
        self.audit = audit
        self._keyring = keyring
        self.default_dwell = default_dwell
        # case id -> (snapshot, trace): a few, a town's F2 trace holds many contacts
        self._cache: OrderedDict[int, tuple[object, TraceResult]] = OrderedDict()
        self._cache_size = cache_size
        # (case id, kind) -> (snapshot, rendered bytes), up to page_bytes in all: what
        # officials re-read, kept for many more cases than their traces
        self._pages: OrderedDict[tuple[int, str], tuple[object, bytes]] = OrderedDict()
        self._page_bytes, self._page_budget = 0, page_bytes
        self.max_staleness_s = max_staleness_s
        self._snapshot: tuple[object, float] = (None, 0.0)
        self._lock = threading.Lock()

    def open(self, official: Principal, request: CaseRequest) -> Case:
        """Open a case; audited. Raises BadCase or OutOfJurisdiction."""
        person = self._person(request.person, self._keyring())
        if request.t_from >= request.t_to:
            raise BadCase(f"to ({request.t_to}) must be after from ({request.t_from})")
        if request.t_to - request.t_from > MAX_WINDOW_S:
            raise BadCase("the infectious window may span at most 60 days")
        jurisdiction = official.jurisdiction if request.jurisdiction is None \
            else request.jurisdiction.strip("/")
        if not in_jurisdiction(jurisdiction, official.jurisdiction):
            raise OutOfJurisdiction(
                f"jurisdiction {jurisdiction!r} is outside your own ({official.jurisdiction!r})")
        try:
            rule = ContactRule(min_overlap=request.min_overlap, linger=request.linger,
                               depth=request.depth, default_dwell=self.default_dwell)
        except ValueError as exc:
            raise BadCase(str(exc)) from None
        case = self.registry.open_case(
            person=person, t_from=request.t_from, t_to=request.t_to, purpose=request.purpose,
            jurisdiction=jurisdiction, min_overlap=rule.min_overlap, linger=rule.linger,
            depth=rule.depth, default_dwell=rule.default_dwell, opened_by=official.id)
        self._audit(official, "open_case", case)
        return case

    def get(self, official: Principal, case_id: int, action: str = "read_case") -> Case:
        """The case, if the official may see it; audited as `action`.
        Raises CaseNotFound or OutOfJurisdiction."""
        case = self.visible(official, self.registry.get_case(case_id), case_id)
        self._audit(official, action, case)
        return case

    def visible(self, official: Principal, case: Case | None, case_id: int) -> Case:
        """`case` (the registry's answer for `case_id`) if the official may see it; not
        audited. Raises CaseNotFound or OutOfJurisdiction."""
        if case is None:
            raise CaseNotFound(f"no case with id {case_id}")
        if not in_jurisdiction(case.jurisdiction, official.jurisdiction):
            raise OutOfJurisdiction(f"case {case_id} is outside your jurisdiction")
        return case

    async def audit_async(self, official: Principal, action: str, case: Case) -> None:
        """The audit entry of `action` on `case`, from an event loop (api/fastpath.py)."""
        await self.audit.record_async(**self._audit_fields(official, action, case))

    def list(self, official: Principal) -> list[Case]:
        """The cases the official may see, newest first; audited."""
        cases = self.registry.cases(official.jurisdiction)
        self.audit.record(actor=official.name, role=official.role, action="list_cases",
                          detail={"principal": official.id, "cases": len(cases)})
        return cases

    def trace(self, official: Principal, case_id: int, action: str) -> tuple[Case, TraceResult]:
        """The case and its trace over the current index; audited as `action`."""
        case = self.get(official, case_id, action)
        return case, self._trace(case, self.snapshot())

    def rendered(self, official: Principal, case_id: int, action: str, kind: str,
                 render) -> bytes:
        """`render(case, result) -> bytes` of the case's trace, made once per index
        snapshot and kind (officials re-read a case; at 10M check-ins a case's trace
        takes ~7.5 ms and its exposure page ~15 ms more to shape); audited as `action`."""
        return self.page(self.get(official, case_id, action), kind, render)

    def page(self, case: Case, kind: str, render) -> bytes:
        """`rendered` for a case already checked and audited."""
        snapshot = self.snapshot()
        key = (case.id, kind)
        with self._lock:
            page = self._pages.get(key)
            if page is not None and page[0] is snapshot:
                self._pages.move_to_end(key)
                return page[1]
        body = render(case, self._trace(case, snapshot))
        with self._lock:
            old = self._pages.pop(key, None)
            self._page_bytes += len(body) - (len(old[1]) if old else 0)
            self._pages[key] = (snapshot, body)
            while self._page_bytes > self._page_budget and len(self._pages) > 1:
                _, (_, dropped) = self._pages.popitem(last=False)
                self._page_bytes -= len(dropped)
        return body

    def page_if_ready(self, case: Case, kind: str) -> bytes | None:
        """The page `page` would return, if it is already made on the snapshot that
        queries read now; else None (and no snapshot or trace is made). Cheap and never
        blocks on the index, so an event loop may call it."""
        now = time.monotonic()
        with self._lock:
            held, taken = self._snapshot
            if held is None or now - taken >= self.max_staleness_s:
                return None
            page = self._pages.get((case.id, kind))
            if page is None or page[0] is not held:
                return None
            self._pages.move_to_end((case.id, kind))
            return page[1]

    def snapshot(self):
        """The index snapshot that queries read: a fresh one at most every
        `max_staleness_s` seconds. While scans flow, every append makes the index's
        snapshot stale; re-tracing and re-rendering every case on every query would then
        cost the full trace each time, so queries share one snapshot for up to a second."""
        now = time.monotonic()
        with self._lock:
            held, taken = self._snapshot
            if held is not None and now - taken < self.max_staleness_s:
                return held
        fresh = self.index.snapshot()
        with self._lock:
            self._snapshot = (fresh, now)
        return fresh

    def _trace(self, case: Case, snapshot):
        """The trace of `case` over `snapshot`, from the cache when made on it."""
        with self._lock:
            cached = self._cache.get(case.id)
            if cached is not None and cached[0] is snapshot:
                self._cache.move_to_end(case.id)
                return cached[1]
        rule = ContactRule(min_overlap=case.min_overlap, linger=case.linger, depth=case.depth,
                           default_dwell=case.default_dwell)
        with exposure.gc_paused():
            result = exposure.trace(snapshot, case.person, case.t_from, case.t_to, rule)
        with self._lock:
            self._cache[case.id] = (snapshot, result)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return result

    def _person(self, ref: str | int, keyring: KeyRing) -> int:
        if isinstance(ref, int):
            if not 0 <= ref < 2**64:
                raise BadCase(f"person: an id must be in [0, 2**64), got {ref}")
            return ref
        text = ref.strip()
        if text.isdigit():
            return self._person(int(text), keyring)
        checked = verify_token(text, keyring)
        # an expired or revoked personal token still names its holder
        if checked.status not in (Status.OK, Status.EXPIRED, Status.REVOKED):
            raise BadCase(f"person: not a valid personal token ({checked.reason})")
        if checked.kind is not Kind.PERSON:
            raise BadCase("person: this is a venue token, not a personal one")
        return checked.id

    def _audit(self, official: Principal, action: str, case: Case) -> None:
        self.audit.record(**self._audit_fields(official, action, case))

    @staticmethod
    def _audit_fields(official: Principal, action: str, case: Case) -> dict:
        return dict(actor=official.name, role=official.role, action=action, case=case.id,
                    purpose=case.purpose,
                    detail={"principal": official.id, "person": case.person,
                            "jurisdiction": case.jurisdiction})
