"""A trace over several shards: index folders that each hold some venues' check-ins.

With Kafka, each worker indexes its partitions, a shard of the venues, into its own
data folder (the topic is keyed by venue). One trace needs them all: a person's visits
lie in every shard, and a visit without check-out ends at the person's next check-in at
any venue (DESIGN.md, rule 2), which may be in another shard. `trace_shards` scatters
each step to every shard and merges the answers, level by level:

1. presences: each shard gives the persons' visits clipped to the window, their ends
   cut by its own next check-ins (shard_kernels.presence_rows);
2. a visit without check-out takes the check-out of a copy of it in another shard, if
   one has it, and every visit still without one is cut again at the person's next
   check-in in any shard, the earliest (shard_kernels.visit_ends: one question for
   both);
3. overlaps: each shard gives its visits that overlap the presences by min_overlap at
   their ends as it knows them (shard_kernels.overlap_rows); step 2 finishes theirs,
   and the overlaps still long enough are the evidence.

Three questions a shard answers, over a snapshot (LocalShard) or over the network
(api/shard_client.RemoteShard, answered by `qrtrace shard`): two round trips per step,
four per level.

The answer is the one CheckinIndex.trace gives with every check-in in one index
(tests/tracing/test_shards.py compares them on random populations). A check-in held by
two shards (kafka_log.py describes the one window where a batch is indexed twice) counts
once; where the copies disagree on the check-out, the copy with one wins, as a
duplicate's check-out does in one index, and among those the longest.

    with ShardedIndex.open([dir_a, dir_b]) as shards:  # read-only followers
        result = shards.trace(case, window_from, window_to, rule)
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from tracing import shard_kernels, trace_kernels
from tracing.errors import InvalidQuery
from tracing.exposure import Snapshot
from tracing.model import ContactRule, TraceResult

__all__ = ["LocalShard", "ShardedIndex", "case_venues", "contact_presences",
           "trace_shards"]


class LocalShard:
    """A snapshot's answers to the three questions of a sharded trace, for one rule's
    default dwell (the kernels of shard_kernels). A shard elsewhere answers the same
    questions over the network (api/shard_client.py: RemoteShard.bind)."""

    def __init__(self, snapshot: Snapshot, default_dwell: int) -> None:
        self.snapshot = snapshot  # held: the table's addresses live as long as it does
        self.table = snapshot.table(default_dwell)

    def presence_rows(self, persons, lows, hi):
        """shard_kernels.presence_rows."""
        return shard_kernels.presence_rows(self.table, persons, lows, hi)

    def overlap_rows(self, venues, starts, ends, need):
        """shard_kernels.overlap_rows."""
        return shard_kernels.overlap_rows(self.table, venues, starts, ends, need)

    def visit_ends(self, persons, venues, times):
        """shard_kernels.visit_ends."""
        return shard_kernels.visit_ends(self.table, persons, venues, times)


def trace_shards(shards: Sequence, case: int, window_from: int, window_to: int,
                 rule: ContactRule) -> TraceResult:
    """Contacts and zones of `case` infectious in [window_from, window_to) by `rule`, over
    the check-ins of all the shards together (see the module docstring). A shard is a
    Snapshot, or anything with `bind(default_dwell)` that gives an object answering as
    LocalShard does (api/shard_client.RemoteShard). Raises InvalidQuery for a case outside
    uint64, an empty window or no shard; ShardUnavailable when a shard cannot answer."""
    if not shards:
        raise InvalidQuery("a trace over shards needs at least one shard")
    if not 0 <= case < 2**64:
        raise InvalidQuery(f"case {case} is not a person id (0 to 2**64 - 1)")
    if window_to <= window_from:
        raise InvalidQuery(f"the window [{window_from}, {window_to}) is empty")
    # asked one after another: asking them at once, a thread each, gave nothing with
    # two shard servers on this two-core machine (13.8 ms an F1 against 13.4)
    shards = _bind(shards, rule.default_dwell)
    need, linger = rule.effective_min_overlap, rule.linger
    found = np.array([case], np.uint64)
    pres_v, pres_s, pres_e = _presences(shards, found, np.array([window_from], np.int64),
                                        window_to, linger)
    answer = trace_kernels.empty_answer()
    for level in range(1, rule.depth + 1):
        if pres_v.shape[0] == 0:
            break
        p, v, s, e = _evidence(shards, pres_v, pres_s, pres_e, found, need)
        answer, new_persons, exposed_at = trace_kernels.add_level(
            answer, level, pres_v, pres_s, pres_e, p, v, s, e)
        if new_persons.shape[0] == 0:
            break
        if level < rule.depth:
            found = np.sort(np.concatenate((found, new_persons)))
            pres_v, pres_s, pres_e = _presences(shards, new_persons, exposed_at, window_to,
                                                linger)
    return TraceResult.from_answer(case, window_from, window_to, rule,
                                   trace_kernels.flat_answer(answer))


def case_venues(shards: Sequence, case: int, window_from: int, window_to: int,
                default_dwell: int) -> np.ndarray:
    """The sorted venue ids where `case` was present in [window_from, window_to) over all
    the shards (as trace_shards takes them): where an official may say the case was
    seen. Raises ShardUnavailable when a shard cannot answer."""
    venue, _, _ = _presences(_bind(shards, default_dwell), np.array([case], np.uint64),
                             np.array([window_from], np.int64), window_to, 0)
    return np.unique(venue.astype(np.uint64))


def _presences(shards: list, persons: np.ndarray, lows: np.ndarray, hi: int,
               linger: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The persons' presences over every shard: (venue, start, end + linger)."""
    return _presences_of(shards, persons, lows, hi, linger)[1:]


def _presences_of(shards: list, persons: np.ndarray, lows: np.ndarray, hi: int,
                  linger: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The persons' presences over every shard: (person, venue, start, end + linger)."""
    who, venue, start, end, t_in, explicit = _gather(
        [shard.presence_rows(persons, lows, hi) for shard in shards])
    keep = _one_copy((who, venue, t_in), explicit, end)
    who, venue, start, end, t_in, explicit = (a[keep] for a in
                                              (who, venue, start, end, t_in, explicit))
    explicit, end = _ended(shards, persons[who], venue, t_in, explicit, end, hi)
    present = start < end
    return (persons[who][present], venue[present], start[present],
            end[present] + linger)


def contact_presences(shards: Sequence, result: TraceResult
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Where the contacts of `result` that exposed a level below were, from their exposure
    to the window's end, over all the shards (as trace_shards takes them): the presences
    the trace met the next level on, as columns person, venue, start, end (+ linger).
    What tracing.graph needs to name who exposed whom. Raises ShardUnavailable when a
    shard cannot answer."""
    rule = result.rule
    above = [c for c in result.contacts if c.level < rule.depth]
    if not above:
        empty = np.zeros(0, np.int64)
        return np.zeros(0, np.uint64), empty, empty, empty
    persons = np.array([c.person for c in above], np.uint64)
    lows = np.array([c.exposed_at for c in above], np.int64)
    return _presences_of(_bind(shards, rule.default_dwell), persons, lows, result.window_to,
                         rule.linger)


def _bind(shards: Sequence, default_dwell: int) -> list:
    """Each shard as an object answering as LocalShard does: a Snapshot wrapped, a remote
    shard bound to the rule's default dwell."""
    return [LocalShard(s, default_dwell) if isinstance(s, Snapshot) else s.bind(default_dwell)
            for s in shards]


def _evidence(shards: list, pres_v, pres_s, pres_e, found: np.ndarray, need: int):
    """The overlaps with the presences by >= need seconds over every shard, of persons
    not in `found`, as rows (person, venue, start, end) for trace_kernels.add_level."""
    person, venue, start, end, t_in, at, explicit = _gather(
        [shard.overlap_rows(pres_v, pres_s, pres_e, need) for shard in shards])
    new = ~np.isin(person, found)
    person, venue, start, end, t_in, at, explicit = (
        a[new] for a in (person, venue, start, end, t_in, at, explicit))
    keep = _one_copy((at, person, venue, t_in), explicit, end)
    person, venue, start, end, t_in, at, explicit = (
        a[keep] for a in (person, venue, start, end, t_in, at, explicit))
    explicit, end = _ended(shards, person, venue, t_in, explicit, end, pres_e[at])
    long_enough = end - start >= need
    return (person[long_enough], venue[long_enough], start[long_enough],
            end[long_enough])


def _gather(answers: list[tuple]) -> tuple[np.ndarray, ...]:
    """The shards' answers (tuples of columns) as one tuple of columns."""
    if len(answers) == 1:
        return answers[0]
    return tuple(np.concatenate(columns) for columns in zip(*answers, strict=True))


def _one_copy(key: tuple[np.ndarray, ...], explicit: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Rows to keep: one per key (a check-in held by two shards comes twice), the copy
    with a check-out first, then the longest."""
    n = end.shape[0]
    if n < 2:
        return np.arange(n)
    order = np.lexsort((-end, -explicit, *reversed(key)))
    differs = np.zeros(n - 1, np.bool_)
    for column in key:
        ordered = column[order]
        differs |= ordered[1:] != ordered[:-1]
    first = np.concatenate(([True], differs))
    return np.sort(order[first])


def _ended(shards: list, persons: np.ndarray, venues: np.ndarray, t_in: np.ndarray,
           explicit: np.ndarray, end: np.ndarray, limit) -> tuple[np.ndarray, np.ndarray]:
    """(explicit, end) with each visit without check-out ended by what the other shards
    know: a copy of it with a check-out ends it there (the longest, capped at `limit`,
    as `end` is), as a duplicate's check-out does in one index (a shard leaves out a
    copy whose visit misses the window or the presence, so its copy elsewhere must ask);
    otherwise the person's next check-in in any shard does, where that comes first."""
    if len(shards) == 1:
        return explicit, end  # the shard's own copies and next check-ins already did
    implicit = np.flatnonzero(explicit == 0)
    if implicit.shape[0] == 0:
        return explicit, end
    longest = np.zeros(implicit.shape[0], np.int64)
    nxt = np.full(implicit.shape[0], np.iinfo(np.int64).max, np.int64)
    for shard in shards:
        length, theirs = shard.visit_ends(persons[implicit], venues[implicit], t_in[implicit])
        np.maximum(longest, length, out=longest)
        np.minimum(nxt, np.where(theirs >= 0, theirs, nxt), out=nxt)
    explicit, end = explicit.copy(), end.copy()
    out = longest > 0
    rows = implicit[out]
    explicit[rows] = 1
    end[rows] = np.minimum(t_in[rows] + longest[out], np.broadcast_to(limit, end.shape)[rows])
    rows = implicit[~out]
    end[rows] = np.minimum(end[rows], nxt[~out])
    return explicit, end


class ShardedIndex:
    """Index folders, and shards elsewhere, read together as one index: each folder
    through a read-only follower (tracing.follower: no lock taken, so a worker may be
    writing it), each remote shard (anything with `bind`, as api/shard_client.RemoteShard)
    asked over the network."""

    def __init__(self, followers: list, remotes: Sequence = ()) -> None:
        self.followers = followers
        self.remotes = list(remotes)

    @classmethod
    def open(cls, paths: Sequence[str | os.PathLike], remotes: Sequence = ()) -> ShardedIndex:
        """Follow the index in each folder of `paths` (refreshed on every trace), with the
        shards `remotes`. Raises StorageError for a folder without an index, InvalidQuery
        for no shard at all."""
        from tracing.follower import IndexFollower

        if not paths and not remotes:
            raise InvalidQuery("a sharded index needs at least one folder or shard")
        followers: list = []
        try:
            for path in paths:
                followers.append(IndexFollower.open(path, poll_s=None))
        except BaseException:
            for f in followers:
                f.close()
            raise
        return cls(followers, remotes)

    def trace(self, case: int, window_from: int, window_to: int,
              rule: ContactRule) -> TraceResult:
        """`trace_shards` over each folder's current data and the remote shards."""
        for f in self.followers:
            f.refresh()
        return trace_shards([*(f.snapshot() for f in self.followers), *self.remotes], case,
                            window_from, window_to, rule)

    def contact_presences(self, result: TraceResult) -> tuple[np.ndarray, ...]:
        """`contact_presences` over each folder's current data and the remote shards."""
        return contact_presences([*(f.snapshot() for f in self.followers), *self.remotes],
                                 result)

    def close(self) -> None:
        for f in self.followers:
            f.close()
        for r in self.remotes:
            r.close()

    def __enter__(self) -> ShardedIndex:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
