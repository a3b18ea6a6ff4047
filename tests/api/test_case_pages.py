"""Exposure pages while scans flow: an official gets the last page made at once, the new
contacts appear within the refresh bound, a page past its maximum age is made before the
answer, and a retention purge leaves no page showing what it deleted."""

from __future__ import annotations

import time

import numpy as np
import orjson
import pytest

from api.cases import CaseRequest
from api.service import Service
from api.settings import Settings
from api.views import exposure_json

H = 3600
CASE, VENUE = 1, 9


@pytest.fixture
def service(tmp_path):
    service = Service(Settings(data=tmp_path / "data"))
    yield service
    service.close()


def visit(service: Service, person: int, t_in: int) -> None:
    service.index.append(np.array([person], np.uint64), np.array([VENUE], np.uint64),
                         np.array([t_in], np.int64), np.array([t_in + H], np.int64))


def exposed(body: bytes) -> set[int]:
    return {c["person"] for c in orjson.loads(body)["contacts"]}


def opened(service: Service, now: int):
    official, _ = service.registry.add_principal("o", "official", jurisdiction="C")
    visit(service, CASE, now - 5 * H)
    visit(service, 2, now - 5 * H)  # F1 from the start
    case = service.cases.open(official, CaseRequest(
        person=CASE, t_from=now - 10 * H, t_to=now, purpose="test", depth=1))
    return official, case


def page(service: Service, case) -> bytes:
    return service.cases.page(case, "exposure", lambda c, r: exposure_json(service, c, r))


def test_a_new_contact_appears_after_the_refresh_and_the_old_page_answers_meanwhile(service):
    now = int(time.time())
    _, case = opened(service, now)
    cases = service.cases
    cases.max_staleness_s, cases.page_refresh_s, cases.page_max_age_s = 0.0, 0.0, 3600.0
    assert exposed(page(service, case)) == {2}
    visit(service, 3, now - 5 * H)  # a scan that makes person 3 an F1 contact
    answers = [exposed(page(service, case))]  # the page made before: no wait for a trace
    deadline = time.monotonic() + 30
    while answers[-1] != {2, 3} and time.monotonic() < deadline:
        time.sleep(0.01)
        answers.append(exposed(page(service, case)))
    assert answers[0] == {2}
    assert answers[-1] == {2, 3}  # made again in the background


def test_a_page_past_its_maximum_age_is_made_before_the_answer(service):
    now = int(time.time())
    _, case = opened(service, now)
    cases = service.cases
    cases.max_staleness_s, cases.page_max_age_s = 0.0, 0.0
    assert exposed(page(service, case)) == {2}
    visit(service, 3, now - 5 * H)
    assert exposed(page(service, case)) == {2, 3}


def test_a_quiet_index_keeps_answering_the_same_page(service):
    now = int(time.time())
    _, case = opened(service, now)
    cases = service.cases
    cases.max_staleness_s, cases.page_refresh_s = 0.0, 0.0
    first = page(service, case)
    assert cases.page_if_ready(case, "exposure", None) is first
    assert page(service, case) is first  # nothing changed: not traced or rendered again


def test_after_a_purge_no_page_shows_a_deleted_checkin(service):
    now = int(time.time())
    official, _ = opened(service, now)
    cases = service.cases
    cases.max_staleness_s, cases.page_refresh_s, cases.page_max_age_s = 0.0, 3600.0, 3600.0
    old = now - 30 * 86400
    visit(service, 4, old)
    visit(service, CASE, old)
    wide = cases.open(official, CaseRequest(person=CASE, t_from=old - H, t_to=now,
                                            purpose="test", depth=1))
    assert exposed(page(service, wide)) == {2, 4}
    assert service.index.purge(now) > 0  # what the service's retention thread does ...
    cases.forget_pages()  # ... followed by this
    assert cases.page_if_ready(wide, "exposure", None) is None
    assert exposed(page(service, wide)) == {2}
