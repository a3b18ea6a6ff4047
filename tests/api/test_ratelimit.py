"""Rate limits of check-in points: what a device, a venue or a person is refused, when they
may retry, and that a refused batch counts nothing."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from api.ratelimit import RateLimited, ScanLimiter, ScanLimits

HUGE = 10**9
A, B, C = 11, 22, 33


class FakeClock:
    """Server time that a test moves by hand."""

    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def ids(*persons: int) -> np.ndarray:
    return np.array(persons, dtype=np.uint64)


def limiter(clock: FakeClock, **limits) -> ScanLimiter:
    wide_open = dict(device_burst=HUGE, device_per_hour=HUGE, venue_burst=HUGE)
    return ScanLimiter(
        ScanLimits(**(wide_open | dict(venue_per_hour=HUGE) | limits)), clock, seed=7
    )


def refusal(limits: ScanLimiter, device: int, venue: int, persons: np.ndarray) -> RateLimited:
    with pytest.raises(RateLimited) as caught:
        limits.admit(device, venue, persons)
    return caught.value


def test_a_device_over_its_burst_waits_for_the_refill():
    clock = FakeClock()
    limits = limiter(clock, device_burst=100, device_per_hour=360)  # 0.1 scan a second
    limits.admit(1, 5, np.arange(100, dtype=np.uint64))
    refused = refusal(limits, 1, 5, np.arange(100, 110, dtype=np.uint64))
    assert (refused.scope, refused.retry_after) == ("device", 100)  # 10 scans at 0.1/s
    assert "device 1" in str(refused) and "retry in 100 s" in str(refused)
    limits.admit(2, 5, ids(A))  # another device at the same venue is not held back
    clock.now += 99
    assert refusal(limits, 1, 5, np.arange(10, dtype=np.uint64)).retry_after == 1
    clock.now += 1
    limits.admit(1, 5, np.arange(10, dtype=np.uint64))


def test_a_venue_is_limited_across_its_devices():
    clock = FakeClock()
    limits = limiter(clock, venue_burst=30, venue_per_hour=3600)
    limits.admit(1, 5, np.arange(20, dtype=np.uint64))
    refused = refusal(limits, 2, 5, np.arange(20, dtype=np.uint64))
    assert (refused.scope, refused.retry_after) == ("venue", 10)
    limits.admit(2, 6, np.arange(20, dtype=np.uint64))  # another venue is not


def test_a_batch_over_the_burst_can_never_pass_and_says_to_split_it():
    limits = limiter(FakeClock(), device_burst=100)
    refused = refusal(limits, 1, 5, np.arange(101, dtype=np.uint64))
    assert (refused.scope, refused.retry_after) == ("device", 3600)
    assert "exceeds the device burst of 100" in str(refused) and "split" in str(refused)
    limits.admit(1, 5, np.arange(100, dtype=np.uint64))  # the whole burst was still there


def test_a_refused_batch_counts_nothing():
    limits = limiter(FakeClock(), device_burst=61, device_per_hour=1)
    limits.admit(1, 5, ids(*[A] * 50))  # A at the person limit; 11 device scans left
    refused = refusal(limits, 1, 5, ids(*[B] * 10, A))
    assert refused.scope == "person" and refused.persons.tolist() == [A]
    limits.admit(1, 5, ids(*[B] * 11))  # the device's 11 scans were all still there
    assert refusal(limits, 1, 5, ids(C)).scope == "device"
    limits.admit(2, 5, ids(*[B] * 39))  # B has 11 + 39 = 50: the refused 10 did not count
    assert refusal(limits, 2, 5, ids(B)).scope == "person"


def test_the_51st_scan_of_a_person_in_an_hour_is_refused_then_passes_an_hour_on():
    clock = FakeClock()
    limits = limiter(clock)
    for device in range(50):  # across the venue's devices
        limits.admit(device, 1, ids(A))
    refused = refusal(limits, 99, 1, ids(A))
    assert refused.scope == "person" and refused.persons.tolist() == [A]
    assert "50 scans in the last hour" in str(refused)
    assert 3600 <= refused.retry_after <= 3600 + 3600 // 50 + 1  # about an hour
    limits.admit(99, 1, ids(B))  # others are not held back
    clock.now += 1800
    assert refusal(limits, 99, 1, ids(A)).scope == "person"
    clock.now += refused.retry_after - 1800
    limits.admit(99, 1, ids(A))
    clock.now += 2 * 3600  # two hours without scans: the whole allowance again
    limits.admit(99, 1, ids(*[A] * 50))
    assert refusal(limits, 99, 1, ids(A)).scope == "person"


def test_a_persons_count_is_kept_per_venue():
    """Counted over every venue, a refusal told a check-in point that a person had been
    scanned elsewhere in the hour (a privacy review's probe: 50 scans of a person, 429
    if and only if another venue had scanned them): each venue now counts its own."""
    limits = limiter(FakeClock())
    limits.admit(1, 5, ids(A))  # scanned at venue 5
    limits.admit(2, 6, ids(*[A] * 50))  # venue 6 learns nothing of it
    assert refusal(limits, 2, 6, ids(A)).scope == "person"
    limits.admit(1, 5, ids(*[A] * 49))  # venue 5's own count: 1 + 49
    assert refusal(limits, 1, 5, ids(A)).scope == "person"


def test_repeats_inside_one_batch_count():
    limits = limiter(FakeClock())
    limits.admit(1, 5, ids(*[A] * 49, B))
    limits.admit(1, 5, ids(A))
    assert refusal(limits, 1, 5, ids(A)).persons.tolist() == [A]
    refused = refusal(limits, 1, 5, ids(*[C] * 51))
    assert (refused.retry_after, refused.persons.tolist()) == (3600, [C])
    assert "appears 51 times in one hour of this batch's scans" in str(refused)
    limits.admit(1, 5, ids(*[C] * 50))  # the refused 51 did not count


def test_many_different_persons_do_not_limit_each_other():
    ids_ = np.random.default_rng(3).integers(0, 2**64 - 1, 100_000, dtype=np.uint64)
    limits = limiter(FakeClock())
    # Half the limit each: one neighbour per row (0.06% of them) shares a counter with a
    # person, so a refusal would need two in each row.
    for batch in range(23):
        limits.admit(batch, batch, ids_)
    limits.admit(0, 0, np.concatenate([ids_, ids_]))  # 25 each, two of them in one batch


def test_counts_near_the_counters_ceiling_never_wrap_to_small_ones():
    limits = limiter(FakeClock(), person_per_hour=65_534)
    limits.admit(1, 5, ids(*[A] * 65_534))
    assert refusal(limits, 1, 5, ids(A, A)).scope == "person"  # 65,536 would wrap to 0
    assert refusal(limits, 1, 5, ids(A)).scope == "person"


def test_threads_sharing_a_limiter_admit_exactly_the_limit():
    limits, admitted, refused = limiter(FakeClock()), [], []

    def scan(device: int) -> None:
        for _ in range(10):
            try:
                limits.admit(device, 5, ids(A))
                admitted.append(device)
            except RateLimited:
                refused.append(device)

    threads = [threading.Thread(target=scan, args=(device,)) for device in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert (len(admitted), len(refused)) == (50, 30)


def test_idle_devices_and_venues_are_forgotten_once_full_again():
    clock = FakeClock()
    limits = limiter(clock, device_burst=10, device_per_hour=3600, venue_burst=10)
    for device in range(1000):
        limits.admit(device, device, ids(A + device))
    assert limits.buckets == 2000
    clock.now += 10  # every bucket has refilled its scan
    limits.admit(0, 0, ids(A))
    assert limits.buckets == 2


def test_disabled_limits_admit_anything():
    limits = ScanLimiter(ScanLimits(device_burst=1, person_per_hour=1, enabled=False))
    for _ in range(3):
        limits.admit(1, 5, np.full(1_000_000, A, dtype=np.uint64))


def test_bad_limits_and_batches_are_refused_with_the_field_named():
    with pytest.raises(ValueError, match="person_per_hour"):
        ScanLimits(person_per_hour=0)
    with pytest.raises(ValueError, match="persons"):
        limiter(FakeClock()).admit(1, 5, np.array([1.5]))
    limiter(FakeClock()).admit(1, 5, ids())  # an empty batch is fine


def test_a_refund_gives_back_exactly_what_duplicates_took():
    clock = FakeClock()
    limits = limiter(clock, device_burst=60, device_per_hour=1, venue_burst=60,
                     venue_per_hour=1)
    at = limits.admit(1, 5, ids(*[A] * 40, B))
    limits.refund(1, 5, ids(*[A] * 30, B), at)  # a retried upload: 31 duplicates
    limits.admit(1, 5, ids(*[A] * 40))  # 50 of A counted now, 50 of the device's 60 used
    assert refusal(limits, 1, 5, ids(A)).scope == "person"
    assert refusal(limits, 1, 5, ids(*[C] * 11)).scope == "device"
    limits.admit(1, 5, ids(*[C] * 10))


def test_a_refund_after_the_window_turned_leaves_the_persons_counts():
    clock = FakeClock()
    limits = limiter(clock)
    at = limits.admit(1, 5, ids(*[A] * 50))
    clock.now += 3600  # A's 50 are now the previous window's, fading
    limits.refund(1, 5, ids(*[A] * 50), at)
    assert refusal(limits, 1, 5, ids(A)).scope == "person"


def test_a_persons_scans_count_by_the_hour_they_were_made_in():
    """A review's device uploaded a backlog: 60 check-ins of one person over ten days in
    one batch, refused as 'can never pass'; and 50 old scans of a person stopped them
    scanning anywhere for an hour. With the scans' times, each counts in its own hour."""
    clock = FakeClock()
    limits = limiter(clock)
    now = 1_794_000_000
    backlog = now - 4 * 3600 * np.arange(60, dtype=np.int64)  # one every four hours
    limits.admit(1, 5, ids(*[A] * 60), backlog)
    old = np.full(50, now - 5 * 86400)
    limits.admit(1, 5, ids(*[B] * 50), old)  # B's limit for that old hour is used up...
    limits.admit(2, 6, ids(B), np.array([now]))  # ... not for the hour B scans in now
    with pytest.raises(RateLimited, match=f"person {B} would pass|{B} among them"):
        limits.admit(3, 5, ids(B), np.array([now - 5 * 86400 + 60]))  # venue 5's count
    with pytest.raises(RateLimited, match="51 times in one hour of this batch's scans"):
        limits.admit(4, 8, ids(*[C] * 51), np.full(51, now))
