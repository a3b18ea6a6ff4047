"""Officials' cases: opening one, reading its exposure, zones and graph, each audited.

Queries read an index snapshot at most a second old (CaseService.snapshot), so that a
flow of scans does not force every query to trace afresh. An official sees only the
cases inside their jurisdiction (a commune, or a district and
its communes); every read of a case writes an audit entry (who, which case, purpose,
when) before the answer leaves. A case's trace is computed over the index's current
snapshot and kept until the index changes, so that an official paging through the
exposure, zones and graph of one case pays for one trace. Exposure pages are kept as
rendered bytes; while scans flow, a page may be answered up to a few seconds behind the
newest scans while a background thread makes it again (CaseService._serve_page has the
bounds), and a retention purge drops them all.

Errors::

    CaseError (Exception)
    ├── CaseNotFound       no such case
    │   └── NotYourCase    another jurisdiction's case: answered as none (404), audited
    │                      with its reason
    ├── OutOfJurisdiction  a case asked for a person or jurisdiction outside the official's
    ├── CaseClosed         the case was closed
    └── BadCase            the request cannot open a case (the message names the field)
"""

from __future__ import annotations

import gzip
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from api.audit import AuditLog
from api.registry import Case, Principal, Registry, in_jurisdiction
from api.schemas import rfc3339_utc
from decoder import KeyRing, Kind, Status, verify_token
from tracing import exposure
from tracing.model import ContactRule, TraceResult
from tracing.shards import case_venues, contact_presences, trace_shards

MAX_WINDOW_S = 60 * 86400
MAX_AHEAD_S = 86400
SEEN_AT_MAX = 10  # venues named in an opening's audit record
logger = logging.getLogger(__name__)


class CaseError(Exception):
    """The root of the errors a case request gets. `reason`, when given, names the
    problem in a word the officials' page turns into its own language (the message is
    for API clients and logs)."""

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason


class CaseNotFound(CaseError):
    """No case with this id."""


class NotYourCase(CaseNotFound):
    """A case of another jurisdiction: answered as one that does not exist (a 403 told an
    official which case ids exist in the whole country); the audit names the reason."""

    def __init__(self, case_id: int) -> None:
        super().__init__(f"no case with id {case_id}")
        self.audit_reason = f"case {case_id} is outside your jurisdiction"


class OutOfJurisdiction(CaseError):
    """A case asked for in a jurisdiction, or for a person, outside the official's own
    (opening; reading another's case is NotYourCase)."""


class CaseClosed(CaseError):
    """The case was closed: what it shows of people's movements is no longer shown."""


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


@dataclass
class _Page:
    """A rendered page and its gzip form: the snapshot it was made on, and when it was
    last known to be made on the snapshot that queries read (time.monotonic())."""

    snapshot: object
    body: bytes
    gzipped: bytes
    checked: float

    @property
    def size(self) -> int:
        return len(self.body) + len(self.gzipped)


class CaseService:
    """Opens and reads cases for officials (see the module docstring)."""

    def __init__(self, registry: Registry, index, audit: AuditLog, keyring, *,
                 venues=None, default_dwell: int = 3600, cache_size: int = 8,
                 page_bytes: int = 256 * 1024 * 1024, max_staleness_s: float = 1.0,
                 page_refresh_s: float = 5.0, page_max_age_s: float = 60.0,
                 refresh_rest: float = 3.0, shards: list | None = None) -> None:
        self.registry = registry
        # shard servers (api/shard_client.RemoteShard) whose check-ins traces also cover:
        # their changes do not show in this index's snapshot, so with shards a kept trace
        # or page is current by its age only (max_staleness_s, page_refresh_s)
        self.shards = list(shards or ())
        self.index = index
        self.audit = audit
        self._keyring = keyring
        # the venue table (a callable, as the service reloads it): where a case's person
        # was seen decides which officials may open the case; None (tests of the cache
        # alone) skips that check
        self._venues = venues
        self.default_dwell = default_dwell
        # case id -> (snapshot, trace): a few (an official paging through one case's
        # exposure, zones and graph); a town's F2 trace is thousands of GC-tracked tuples
        self._cache: OrderedDict[int, tuple[object, TraceResult, float]] = OrderedDict()
        self._cache_size = cache_size
        # (case id, kind) -> _Page, up to page_bytes in all: what officials re-read, kept
        # for many more cases than their traces
        self._pages: OrderedDict[tuple[int, str], _Page] = OrderedDict()
        self._page_bytes, self._page_budget = 0, page_bytes
        self.max_staleness_s = max_staleness_s
        self.page_refresh_s, self.page_max_age_s = page_refresh_s, page_max_age_s
        self.refresh_rest = refresh_rest  # background refreshes take <= 1/(1+rest) of a core
        self._snapshot: tuple[object, float] = (None, 0.0)
        self._lock = threading.Lock()
        # pages to make again in the background: key -> (case, render), in order
        self._due: OrderedDict[tuple[int, str], tuple[Case, object]] = OrderedDict()
        self._wake = threading.Condition(self._lock)
        self._refresher: threading.Thread | None = None
        self._closed = False
        self._generation = 0  # counts forget_pages(): what was made before is not kept
        self._by_time: OrderedDict[int, tuple[object, tuple]] = OrderedDict()

    def open(self, official: Principal, request: CaseRequest) -> Case:
        """Open a case; audited. Raises BadCase or OutOfJurisdiction."""
        person = self._person(request.person, self._keyring())
        if request.t_from >= request.t_to:
            raise BadCase(f"to ({rfc3339_utc(request.t_to)}) must be after from "
                          f"({rfc3339_utc(request.t_from)})", "window_order")
        if request.t_to - request.t_from > MAX_WINDOW_S:
            raise BadCase("the infectious window may span at most 60 days", "window_span")
        if request.t_to > time.time() + MAX_AHEAD_S:
            # a case is traced over what happened: a window running into the future
            # would follow a person's movements as they are scanned
            raise BadCase(f"to ({rfc3339_utc(request.t_to)}) is more than a day from now",
                          "window_ahead")
        jurisdiction = official.jurisdiction if request.jurisdiction is None \
            else request.jurisdiction.strip("/")
        if not in_jurisdiction(jurisdiction, official.jurisdiction):
            self._refuse_open(official, request, person, OutOfJurisdiction(
                f"jurisdiction {jurisdiction!r} is outside your own ({official.jurisdiction!r})",
                "jurisdiction_outside"))
        try:
            rule = ContactRule(min_overlap=request.min_overlap, linger=request.linger,
                               depth=request.depth, default_dwell=self.default_dwell)
        except ValueError as exc:
            raise BadCase(str(exc)) from None
        seen_at = self._seen_in(person, request.t_from, request.t_to, jurisdiction)
        if seen_at is not None and not seen_at:
            # an official traces the people seen in their area, not anyone by id: the
            # case's own movements are the first thing a trace shows. A person seen
            # elsewhere and one seen nowhere get the same answer: two answers would tell
            # an official, person by person, whether someone was anywhere at a time
            self._refuse_open(official, request, person, OutOfJurisdiction(
                f"person {person} has no check-in at a venue of {jurisdiction!r} between "
                f"{rfc3339_utc(request.t_from)} and {rfc3339_utc(request.t_to)}: a case is "
                "opened by an official of a place where its person was seen (check-ins of "
                "devices that were offline count once they arrive)", "not_seen_here"))
        case = self.registry.open_case(
            person=person, t_from=request.t_from, t_to=request.t_to, purpose=request.purpose,
            jurisdiction=jurisdiction, min_overlap=rule.min_overlap, linger=rule.linger,
            depth=rule.depth, default_dwell=rule.default_dwell, opened_by=official.id)
        fields = self._audit_fields(official, "open_case", case)
        if seen_at:
            # the venues of the area that let the case open: a check-in point's upload
            # (backdated up to the retention period) is what an auditor checks first
            fields["detail"]["seen_at"] = seen_at
        self.audit.record(**fields)
        return case

    def _refuse_open(self, official: Principal, request: CaseRequest, person: int,
                     refusal: CaseError) -> None:
        """Audit a refused opening (who asked, for whom, why), then raise `refusal`."""
        self.audit.record(actor=official.name, role=official.role,
                          action="open_case_refused", purpose=request.purpose,
                          detail={"principal": official.id, "person": person,
                                  "jurisdiction": official.jurisdiction,
                                  "reason": str(refusal)})
        raise refusal

    def contact_presences(self, result: TraceResult) -> tuple[np.ndarray, ...]:
        """Where `result`'s contacts were after their exposure, over this index and its
        shards (tracing.shards.contact_presences): who exposed whom, for the graph."""
        return contact_presences([self.snapshot(), *self.shards], result)

    def _seen_in(self, person: int, t_from: int, t_to: int, jurisdiction: str
                 ) -> list[int] | None:
        """The venues inside `jurisdiction` where `person` was present in [t_from, t_to)
        (at most SEEN_AT_MAX of them), over this index and its shards; None when there
        is no venue table or no jurisdiction to check against (every case may open)."""
        if self._venues is None or not jurisdiction:
            return None
        venues = case_venues([self.snapshot(), *self.shards], person, t_from, t_to,
                             self.default_dwell)
        table = self._venues()
        inside = []
        for venue in venues.tolist():
            known = table.get(venue)
            if known is not None and in_jurisdiction(known.jurisdiction, jurisdiction):
                inside.append(int(venue))
                if len(inside) == SEEN_AT_MAX:
                    break
        return inside

    def get(self, official: Principal, case_id: int, action: str = "read_case") -> Case:
        """The case, if the official may see it; audited as `action`, and a refusal as
        `action` + "_refused" (an official probing other jurisdictions' cases shows in
        the log). Raises CaseNotFound (NotYourCase: another jurisdiction's)."""
        try:
            case = self.visible(official, self.registry.get_case(case_id), case_id, action)
        except CaseError as exc:
            self.audit.record(**self.refusal_fields(official, action, case_id, exc))
            raise
        self._audit(official, action, case)
        return case

    def close_case(self, official: Principal, case_id: int) -> Case:
        """Close the case: from now on its contacts, zones, graph and exports are refused
        (CaseClosed), to every official; the case itself stays listed. Audited; closing
        a closed case changes nothing. Raises CaseNotFound (NotYourCase)."""
        self.get(official, case_id, "close_case")
        case = self.registry.close_case(case_id, official.id)
        with self._lock:  # its pages and trace are not to be answered again
            self._cache.pop(case_id, None)
            for key in [k for k in self._pages if k[0] == case_id]:
                self._page_bytes -= self._pages.pop(key).size
            for key in [k for k in self._due if k[0] == case_id]:
                del self._due[key]
        return case

    @staticmethod
    def refusal_fields(official: Principal, action: str, case_id: int,
                       refusal: CaseError) -> dict:
        """The audit entry of a refused read of case `case_id` (its purpose is the case's,
        which the official was not shown: none is written)."""
        return dict(actor=official.name, role=official.role, action=f"{action}_refused",
                    case=case_id, detail={"principal": official.id,
                                          "jurisdiction": official.jurisdiction,
                                          "reason": getattr(refusal, "audit_reason",
                                                            str(refusal))})

    def visible(self, official: Principal, case: Case | None, case_id: int,
                action: str) -> Case:
        """`case` (the registry's answer for `case_id`) if the official may `action` it;
        not audited. A closed case is still read and closed, but shows nothing more.
        Raises CaseNotFound (NotYourCase for another jurisdiction's) or CaseClosed."""
        if case is None:
            raise CaseNotFound(f"no case with id {case_id}")
        if not in_jurisdiction(case.jurisdiction, official.jurisdiction):
            raise NotYourCase(case_id)
        if case.closed_at is not None and action not in ("read_case", "close_case"):
            raise CaseClosed(f"case {case_id} was closed at {rfc3339_utc(case.closed_at)}: "
                             "its contacts, zones and exports are no longer shown")
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

    def page(self, case: Case, kind: str, render, gzipped: bool = False) -> bytes:
        """`rendered` for a case already checked and audited; its gzip form (made with
        the page, once) if `gzipped`. A page made on an older snapshot is still answered
        while it is younger than page_max_age_s, and made again in the background once
        older than page_refresh_s (see `_serve_page`)."""
        snapshot = self.snapshot()
        with self._lock:
            page = self._serve_page(case, kind, render, snapshot)
        if page is None:
            page = self._make_page(case, kind, render, snapshot)
        return page.gzipped if gzipped else page.body

    def page_if_ready(self, case: Case, kind: str, render,
                      gzipped: bool = False) -> bytes | None:
        """The page `page` would answer without making one, or None (and then no
        snapshot or trace is made either). Cheap, never blocks on the index: an event
        loop may call it."""
        # current: the index's snapshot if nothing changed since it was built (a quiet
        # index: its pages stay current with no refresh queued), else the one queries
        # share if it is young enough, else none (a page may still be young)
        current = self.index.built_snapshot()
        with self._lock:
            if current is None:
                held, taken = self._snapshot
                if held is not None and time.monotonic() - taken < self.max_staleness_s:
                    current = held
            page = self._serve_page(case, kind, render, current)
        if page is None:
            return None
        return page.gzipped if gzipped else page.body

    def _serve_page(self, case: Case, kind: str, render, snapshot) -> _Page | None:
        """(lock held) The page of (case, kind) if it may be answered: made on
        `snapshot`, or made (or last found current) less than page_max_age_s ago.
        While scans flow, every second brings a new snapshot, and making every page
        afresh on each (a trace and a rendering, ~25 ms at 10M check-ins) would cost
        more CPU than the server has: so a page younger than page_refresh_s is answered
        as it is, and an older one is answered and queued to be made again by one
        background thread, at most once at a time. A page is thus at most about
        page_refresh_s behind the scans while the refresher keeps up, and never more
        than page_max_age_s: past that it is made before the answer."""
        key = (case.id, kind)
        page = self._pages.get(key)
        if page is None:
            return None
        if page.snapshot is snapshot and not self.shards:
            page.checked = time.monotonic()
        else:
            age = time.monotonic() - page.checked
            if age >= self.page_max_age_s:
                return None
            if age >= self.page_refresh_s and key not in self._due:
                self._due[key] = (case, render)
                self._start_refresher()
                self._wake.notify()
        self._pages.move_to_end(key)
        return page

    def _make_page(self, case: Case, kind: str, render, snapshot) -> _Page:
        generation = self._generation
        # a trace is thousands of tuples that the cyclic GC tracks (named tuples are never
        # untracked): made, rendered and freed with the GC held off, they never reach a
        # collection. Kept traces did: at 10M check-ins, each first collection after a
        # burst of pages scanned the traces kept and stopped the event loop for 50-200 ms.
        # A trace already kept (zones, graph, exports of the case) is used, not kept anew.
        with exposure.gc_paused():
            body = render(case, self._trace(case, snapshot, keep=False))
        # browsers ask for gzip: an exposure page shrinks about sevenfold (130 KB for 500
        # contacts), compressed once here instead of on every answer
        page = _Page(snapshot, body, gzip.compress(body, compresslevel=5, mtime=0),
                     time.monotonic())
        with self._lock:
            if generation != self._generation:  # made on data a purge has since removed
                return page
            old = self._pages.pop((case.id, kind), None)
            self._page_bytes += page.size - (old.size if old else 0)
            self._pages[case.id, kind] = page
            while self._page_bytes > self._page_budget and len(self._pages) > 1:
                _, dropped = self._pages.popitem(last=False)
                self._page_bytes -= dropped.size
        return page

    def _start_refresher(self) -> None:  # (lock held)
        if self._refresher is None and not self._closed:
            self._refresher = threading.Thread(target=self._refresh_loop, daemon=True,
                                               name="qrtrace-pages")
            self._refresher.start()

    def _refresh_loop(self) -> None:
        """Make the queued pages again, oldest request first, one at a time, resting
        `refresh_rest` times as long as each took: a page is Python work that holds the
        GIL, and the event loop answering queries must get it back quickly (a refresher
        running flat out held 1,000 queries/s down to 240/s)."""
        while True:
            with self._lock:
                while not self._due and not self._closed:
                    self._wake.wait()
                if self._closed:
                    return
                (case_id, kind), (case, render) = self._due.popitem(last=False)
            snapshot = self.snapshot()
            with self._lock:
                page = self._pages.get((case_id, kind))
            # over shards, this index's snapshot says nothing of theirs: made again (a
            # shard that cannot answer then leaves the page to age out, and a 503)
            if page is not None and not self.shards and (
                    page.snapshot is snapshot
                    or self._same_answer(case, page.snapshot, snapshot)):
                with self._lock:
                    page.snapshot, page.checked = snapshot, time.monotonic()
                continue
            started = time.monotonic()
            try:
                self._make_page(case, kind, render, snapshot)
            except Exception:  # the page stays as it was; a later request retries
                logger.exception("making case %d's %s page again failed", case_id, kind)
            rest = (time.monotonic() - started) * self.refresh_rest
            with self._lock:
                self._wake.wait_for(lambda: self._closed, timeout=rest)

    def _same_answer(self, case: Case, old, new) -> bool:
        """Whether `case` reads the same on snapshot `new` as on `old`, so that its page
        needs no new trace. The contact rule clips every presence, at every level, to the
        case's window and extends it by linger: a check-in at or after to + linger
        overlaps none, and where it ends someone's earlier visit, it ends it at or after
        that time, past every presence. The village count reads check-ins before `to`.
        So the answer stands if the base segment and the dwell table are the same and
        the overlay's rows before to + linger are too (new scans come at the present
        time; a case's window has ended before it was opened). A merge makes a new
        base: the page is then made again."""
        if old.base is not new.base or not (
                np.array_equal(old.dwell_venues, new.dwell_venues)
                and np.array_equal(old.dwell_seconds, new.dwell_seconds)):
            return False
        before = case.t_to + case.linger
        old_rows, new_rows = self._overlay_by_time(old), self._overlay_by_time(new)
        k = int(np.searchsorted(old_rows[0], before))
        if k != int(np.searchsorted(new_rows[0], before)):
            return False
        return all(np.array_equal(a[:k], b[:k]) for a, b in zip(old_rows, new_rows,
                                                                strict=True))

    def _overlay_by_time(self, snapshot) -> tuple[np.ndarray, ...]:
        """The overlay's rows as (t_in, person, venue, t_out), sorted in that order;
        made once per snapshot (a few recent ones are kept)."""
        key = id(snapshot)
        with self._lock:
            held = self._by_time.get(key)
            if held is not None and held[0] is snapshot:
                return held[1]
        person, venue, t_in, t_out = snapshot.overlay.decode()
        order = np.lexsort((t_out, venue, person, t_in))
        rows = (t_in[order], person[order], venue[order], t_out[order])
        with self._lock:
            self._by_time[key] = (snapshot, rows)
            while len(self._by_time) > 4:
                self._by_time.popitem(last=False)
        return rows

    def forget_pages(self) -> None:
        """Drop every page and trace made (after a retention purge: no answer may show
        a check-in that is gone)."""
        with self._lock:
            self._generation += 1
            self._pages.clear()
            self._page_bytes = 0
            self._cache.clear()
            self._due.clear()
            self._snapshot = (None, 0.0)

    def close(self) -> None:
        """Stop the background refresher (pending refreshes are dropped)."""
        with self._lock:
            self._closed = True
            self._wake.notify_all()
            refresher = self._refresher
        if refresher is not None:
            refresher.join(timeout=30)

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
            generation = self._generation
        fresh = self.index.snapshot()
        with self._lock:
            if generation == self._generation:  # else taken before a purge ended
                self._snapshot = (fresh, now)
        return fresh

    def _trace(self, case: Case, snapshot, keep: bool = True):
        """The trace of `case` over `snapshot`, from the cache when made on it; kept
        there if `keep`."""
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(case.id)
            if cached is not None and cached[0] is snapshot and (
                    not self.shards or now - cached[2] < self.max_staleness_s):
                self._cache.move_to_end(case.id)
                return cached[1]
        rule = ContactRule(min_overlap=case.min_overlap, linger=case.linger, depth=case.depth,
                           default_dwell=case.default_dwell)
        # columns: the tuples pause the GC themselves when a rendering first reads them
        if self.shards:  # raises ShardUnavailable (503) when one cannot answer
            result = trace_shards([snapshot, *self.shards], case.person, case.t_from,
                                  case.t_to, rule)
        else:
            result = exposure.trace(snapshot, case.person, case.t_from, case.t_to, rule)
        if not keep:
            return result
        with self._lock:
            self._cache[case.id] = (snapshot, result, now)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return result

    def _person(self, ref: str | int, keyring: KeyRing) -> int:
        if isinstance(ref, int):
            if not 0 <= ref < 2**64:
                raise BadCase(f"person: an id must be in [0, 2**64), got {ref}", "person_id")
            return ref
        text = ref.strip()
        # ASCII digits only: str.isdigit() also says yes to "²", which int() refuses
        if text.isascii() and text.isdigit():
            return self._person(int(text), keyring)
        checked = verify_token(text, keyring)
        # an expired or revoked personal token still names its holder
        if checked.status not in (Status.OK, Status.EXPIRED, Status.REVOKED):
            raise BadCase(f"person: not a valid personal token ({checked.reason})",
                          "person_token")
        if checked.kind is not Kind.PERSON:
            raise BadCase("person: this is a venue token, not a personal one", "venue_token")
        return checked.id

    def _audit(self, official: Principal, action: str, case: Case) -> None:
        self.audit.record(**self._audit_fields(official, action, case))

    @staticmethod
    def _audit_fields(official: Principal, action: str, case: Case) -> dict:
        return dict(actor=official.name, role=official.role, action=action, case=case.id,
                    purpose=case.purpose,
                    detail={"principal": official.id, "person": case.person,
                            "jurisdiction": case.jurisdiction})
