"""The machine figures the benchmarks report beside their results."""

from __future__ import annotations

from benchmarks.environment import cpu_ticks, steal_share


def test_steal_share_is_the_stolen_part_of_all_time_spent():
    before = (1_000, 5_000, 40)
    after = (1_300, 5_600, 140)  # 300 busy, 600 idle, 100 stolen
    assert steal_share(before, after) == 0.1
    assert steal_share(before, before) == 0.0  # no time passed: no share, no error


def test_the_machine_ticks_only_grow():
    first = cpu_ticks()
    second = cpu_ticks()
    assert all(b >= a >= 0 for a, b in zip(first, second, strict=True))
    assert sum(second) > 0  # read from /proc/stat on Linux, where the benchmarks run
    assert 0.0 <= steal_share(first, second) <= 1.0
