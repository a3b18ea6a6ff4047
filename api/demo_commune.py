"""A demo commune for `qrtrace serve --demo`: loaded once into an empty data folder.

Đức Thượng commune (Hoài Đức district): villages with venues of every category, about
three weeks of check-ins from the simulator (tracing.simulate) ending today, QR points
posted at most venues (a check-in device each), a share of them that nobody scans (the
commune's complaint), venues without any QR point, two officials (the commune's and the
district's) and an open case.

Each start makes fresh sign-in tokens for the demo officials (the previous ones are
revoked): only hashes are stored, so a token can be shown only when it is made.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np

from api.cases import CaseRequest
from api.registry import OFFICIAL_VALID_DAYS
from api.service import Service
from tracing.simulate import build_town, iter_checkins

DISTRICT = "Hoài Đức"
COMMUNE = "Đức Thượng"
JURISDICTION = f"{DISTRICT}/{COMMUNE}"
PEOPLE, VENUES, DAYS = 6000, 300, 20  # four villages (one per 1,500 people)
SILENT_SHARE = 0.15      # venues with a QR point that nobody scans
NO_QR_SHARE = 0.10       # venues that never posted a QR point
COMMUNE_OFFICIAL = "Cán bộ y tế xã Đức Thượng (demo)"
DISTRICT_OFFICIAL = "Trung tâm y tế huyện Hoài Đức (demo)"
VALID_S = OFFICIAL_VALID_DAYS * 86400  # the demo's officials lapse as any official does


@dataclass(frozen=True)
class DemoTokens:
    """Sign-in tokens made at this start, and the demo case's id."""

    commune_official: str
    district_official: str
    case_id: int


def is_loaded(service: Service) -> bool:
    """True once the demo commune is in the data folder."""
    return any(p.name == COMMUNE_OFFICIAL for p in service.registry.principals("official"))


def load(service: Service, seed: int = 2021, progress=print) -> None:
    """Load the demo commune into `service`'s data folder (venues, devices, QR codes,
    check-ins, officials, an open case). Takes about ten seconds."""
    town = build_town(PEOPLE, VENUES, seed)
    venues = [replace(v, commune=COMMUNE, district=DISTRICT) for v in town.venues()]
    service.save_venues(venues)
    rng = np.random.default_rng(seed)
    ids = np.array([v.venue for v in venues], np.uint64)
    share = rng.random(len(ids))
    silent = ids[share < SILENT_SHARE]
    no_qr = ids[(share >= SILENT_SHARE) & (share < SILENT_SHARE + NO_QR_SHARE)]
    ring = service.keyring()
    today = int(time.time() // 86400)
    posted = (today - DAYS) * 86400  # the QR points are as old as the check-ins
    for venue in venues:
        if venue.venue in no_qr:
            continue
        service.registry.add_principal(f"Điểm quét {venue.name}", "device", venue=venue.venue,
                                       created=posted)
        service.registry.add_qr_point(venue.venue, ring.active, posted)  # its venue code
    loaded = 0
    for chunk in iter_checkins(town, DAYS + 1, today - DAYS):
        keep = ~np.isin(chunk.venue, np.concatenate([silent, no_qr])) & (
            chunk.t_in < time.time())
        service.index.append(chunk.person[keep], chunk.venue[keep], chunk.t_in[keep],
                             chunk.t_out[keep])
        loaded += int(keep.sum())
    progress(f"demo commune: {len(venues)} venues, {PEOPLE} people, {loaded} check-ins "
             f"over {DAYS} days; {len(silent)} venues with QR points nobody scans")
    official, _ = service.registry.add_principal(COMMUNE_OFFICIAL, "official",
                                                 jurisdiction=JURISDICTION, valid_s=VALID_S)
    service.registry.add_principal(DISTRICT_OFFICIAL, "official", jurisdiction=DISTRICT,
                                   valid_s=VALID_S)
    _open_case(service, official, today)


def _open_case(service: Service, official, today: int) -> None:
    """A worker with many check-ins in the last five days turns positive."""
    person, _, t_in, _ = service.index.checkins()
    t_to = int(time.time())
    t_from = t_to - 5 * 86400
    recent = (t_in >= t_from) & (t_in < t_to)
    people, visits = np.unique(person[recent], return_counts=True)
    chosen = int(people[np.argmax(visits)])
    service.cases.open(official, CaseRequest(
        person=chosen, t_from=t_from, t_to=t_to,
        purpose="Ca dương tính (demo): truy vết F1, F2"))


def sign_in_tokens(service: Service) -> DemoTokens:
    """Fresh tokens for the demo officials (earlier demo tokens are revoked)."""
    tokens = {}
    for name, jurisdiction in ((COMMUNE_OFFICIAL, JURISDICTION), (DISTRICT_OFFICIAL, DISTRICT)):
        for p in service.registry.principals("official"):
            if p.name == name and p.revoked is None:
                service.registry.revoke_principal(p.id)
        _, tokens[name] = service.registry.add_principal(name, "official",
                                                         jurisdiction=jurisdiction,
                                                         valid_s=VALID_S)
    cases = service.registry.cases(JURISDICTION)
    return DemoTokens(tokens[COMMUNE_OFFICIAL], tokens[DISTRICT_OFFICIAL],
                      cases[-1].id if cases else 0)

