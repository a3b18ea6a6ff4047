"""Benchmark of the co-location index against what an analyst would do with DuckDB.

    python -m benchmarks.tracing --checkins 10000000 [--cases 200] [--json] [--plot FILE]

One run, on one machine:
1. simulate N check-ins (tracing.simulate's column generator; not timed);
2. build: append them into a fresh CheckinIndex in a temporary folder, then compact
   (`build_s`, `build_checkins_per_s`; `build_user_s` and `build_sys_s` its CPU time,
   `load_average_1m_build` the load when it ended), after a small build of 1.5M
   check-ins that compiles or loads the kernels (`warmup_s`, not counted);
   `bytes_per_checkin` counts every file of the folder (segments, views, log, dwell,
   manifest) over the distinct check-ins;
3. reopen from disk until the first query is answered (`reopen_s`; of which
   `open_only_s` opens the folder and `first_query_ms` answers, loading cached kernels);
   then W F1 queries of other cases (`--warmup-queries`, 200 by default), not counted
   below but reported (`warmup_f1_p50_ms`, `warmup_f1_p99_ms`): the index as a server
   that has answered a few queries sees it. Just after an open, or after the build
   has filled the caches with other data, the first hundred traces at 10M are slower
   (a p50 of 82 us over the first 50, 45 us from the 100th on, with no page faults):
   the CPU caches and TLB are still empty of the index's hot parts (DuckDB's table,
   below, is in memory and built just before its timed queries);
4. F1 (depth 1) and F2 (depth 2) latency over K random cases (a person and a check-in of
   theirs, window from one day before to two days after it), p50 and p99; and the
   CPU time of the same queries (`f1_cpu_p99_ms`...), which a busy machine does not
   stretch. `f1_p50_ms` and the like time `CheckinIndex.trace` alone: it returns the
   answer as numpy columns (contact persons, levels, exposed_at, evidence rows, zones),
   and builds the Contact, Evidence and Zone tuples only when `.contacts` or `.zones`
   is first read. The traces run back to back (as DuckDB's queries do, below);
   `f1_contacts_p50_ms`, `f1_contacts_p99_ms` (and `f2_...`) add to each trace's time
   the first reads of its `.contacts` and `.zones`, tuples built, timed after all the
   traces: what a caller that wants them all pays. Tuple building holds the cyclic GC
   off, and the first allocation after the pause pays the collection that was due: at
   10M that pass (tens of ms when it reaches the oldest generation) lands in whichever
   timer allocates first, which is why a few `f2_contacts` outliers are traces of
   modest size;
5. a batch of 1,000 such cases through `trace_many` (depth 1, and depth 2 when cheap;
   answers as columns, no tuples built);
6. DuckDB: the same check-ins in a table, visit ends computed in SQL (duplicates merged,
   LEAD over each person's distinct check-in times, venue dwell), materialised once and
   not timed (`duckdb_prepare_s`) which favours DuckDB; then the F1 query as a self-join
   per case (`duckdb_f1_p50_ms`, its rows fetched with fetchall(): Python tuples of the
   distinct contact persons), over the first `--duckdb-cases` (default 200: all the
   timed cases at 10M) until its 120 s budget runs out; `duckdb_ratio` = DuckDB F1 p50 /
   our F1 p50 over the same cases (columns, no tuples; `f1_p50_ms` when DuckDB ran them
   all), and `duckdb_contacts_ratio` = DuckDB F1 p50 / `f1_contacts_p50_ms`
   (our tuples built, evidence included, which DuckDB's query does not return). The F1 person
   sets must match ours: `duckdb_mismatches` counts cases where they differ. For
   reference, `duckdb_inline_f1_p50_ms` (3 cases by default) is the one-off query that computes the
   visit ends itself, as an analyst without a prepared table would run it.
`queries_steal_share` is the share of the machine's CPU time, from the warm-up queries
of step 3 to the end of step 5, that the hypervisor took from this VM
(benchmarks/environment.py): it tells a run slowed by a host taking its CPUs from one
that was not (on this host, the slow tracing runs had ~0: their drift is memory).
Progress goes to stderr; `--json` prints one flat JSON object on stdout; `--plot FILE`
(.svg or .png) also draws the latencies of F1, F2 and DuckDB's F1 as distributions.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks import charts
from benchmarks.environment import cpu_ticks, describe, steal_share
from tracing import simulate
from tracing.index import CheckinIndex
from tracing.model import ContactRule
from tracing.venues import VenueTable

DAY = 86400
RULE = ContactRule()  # min_overlap 10 min, linger 0, default dwell 60 min
# The latency goals (p99, at 100M check-ins), drawn on the chart.
GOALS_MS = {"F1 p99 goal (100M)": 1.0, "F2 p99 goal (100M)": 50.0}

VISITS_QUERY = """
WITH dedup AS (
    SELECT person, venue, t_in, max(t_out) AS t_out FROM checkins GROUP BY person, venue, t_in
), starts AS (
    SELECT person, t_in,
           lead(t_in) OVER (PARTITION BY person ORDER BY t_in) AS next_in
    FROM (SELECT DISTINCT person, t_in FROM dedup)
)
SELECT d.person, d.venue, d.t_in,
       CASE WHEN d.t_out > 0 THEN d.t_out
            ELSE least(d.t_in + coalesce(w.dwell, {default_dwell}),
                       coalesce(s.next_in, 9223372036854775807)) END AS t_end
FROM dedup d
JOIN starts s ON s.person = d.person AND s.t_in = d.t_in
LEFT JOIN dwell w ON w.venue = d.venue
"""
VISITS_SQL = "CREATE TABLE visits AS " + VISITS_QUERY

F1_SQL = """
SELECT DISTINCT o.person
FROM visits c JOIN visits o ON o.venue = c.venue
WHERE c.person = $case AND o.person <> $case
  AND c.t_in < $to AND c.t_end > $from AND c.t_end > c.t_in
  AND least(o.t_end, least(c.t_end, $to) + $linger)
      - greatest(o.t_in, greatest(c.t_in, $from)) >= $min_overlap
"""


def _sql_params(case: int, lo: int, hi: int, rule: ContactRule) -> dict:
    """The named parameters of the DuckDB F1 queries for one case."""
    return {"case": case, "from": lo, "to": hi, "linger": rule.linger,
            "min_overlap": rule.effective_min_overlap}


def _machine() -> dict:
    """The run's environment as flat fields (the JSON output is one flat object)."""
    info = describe("benchmarks.tracing")
    del info["versions"]
    return info


def log(message: str) -> None:
    """Progress on stderr."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def folder_bytes(folder: Path) -> int:
    """Bytes of every file under `folder`."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def percentile_ms(seconds: list[float], q: float) -> float:
    """The q-th percentile of `seconds`, in milliseconds."""
    return round(float(np.percentile(np.array(seconds) * 1000, q)), 4)


def sample_cases(c: simulate.Checkins, k: int, seed: int, stream: int = 11
                 ) -> tuple[np.ndarray, ...]:
    """k cases: the person of a random check-in, window [t_in - 1 day, t_in + 2 days);
    another `stream` gives other cases from the same seed."""
    rng = np.random.default_rng([seed, stream])
    rows = rng.integers(0, len(c), k)
    t = c.t_in[rows]
    return c.person[rows], t - DAY, t + 2 * DAY


WARMUP_CHECKINS = 1_500_000  # more than a head holds: the same bulk path as the big build


def build(c: simulate.Checkins, town: simulate.Town, folder: Path) -> tuple[float, dict]:
    """Append everything into a fresh index in `folder` and compact; returns seconds, stats
    (with the build's user and system CPU seconds: on a shared machine the steadier
    figure)."""
    ids, dwell = VenueTable(town.venues()).resolved_dwell()
    before = resource.getrusage(resource.RUSAGE_SELF)
    began = time.perf_counter()
    with CheckinIndex.open(folder, create=True) as idx:
        idx.set_venue_dwell(ids, dwell)
        idx.append(c.person, c.venue, c.t_in, c.t_out)
        idx.compact()
        elapsed = time.perf_counter() - began
        after = resource.getrusage(resource.RUSAGE_SELF)
        stats = idx.stats()
        stats["len"] = len(idx)
    stats["user_s"] = after.ru_utime - before.ru_utime
    stats["sys_s"] = after.ru_stime - before.ru_stime
    return elapsed, stats


def time_queries(idx: CheckinIndex, cases, froms, tos, rule: ContactRule):
    """Seconds per trace, CPU seconds per trace (this thread's), seconds per trace with
    its Contact, Evidence and Zone tuples built (the trace's seconds plus the first reads
    of `.contacts` and `.zones`), and each trace's contacts' person ids (a numpy array,
    which the GC does not track).

    The traces run back to back, as DuckDB's queries do, and their tuples are built
    afterwards, each result's timed on its own: built between traces, the tuples of one
    answer pushed the index out of the caches and made the next trace ~12 us slower at
    10M (measured in one process, alternating blocks of 100 traces).

    Only the person ids are kept once the tuples are built, as a caller that answers a
    query and lets it go (the API) keeps nothing: 500 whole results held here were
    116,000 live tuples, and the collections they caused ran inside later queries (CPU:
    a young-generation pass of about 2 ms every 45 queries, a full one of 50-60 ms
    once), and made the F1 p99 at 1M 2.2 ms of CPU instead of 0.96 ms. Between the two
    loops the results hold only the kernel's numpy answers (no tuples)."""
    seconds, cpu, results = [], [], []
    for case, lo, hi in zip(cases.tolist(), froms.tolist(), tos.tolist(), strict=True):
        # the CPU clock is a system call (~0.7 us here): read outside the wall interval
        began_cpu = time.thread_time()
        began = time.perf_counter()
        result = idx.trace(case, lo, hi, rule=rule)
        answered = time.perf_counter()
        cpu.append(time.thread_time() - began_cpu)
        seconds.append(answered - began)
        results.append(result)
    with_tuples, persons = [], []
    for i, trace_s in enumerate(seconds):
        result, results[i] = results[i], None
        began = time.perf_counter()
        result.contacts, result.zones  # noqa: B018 (the tuples are built on first read)
        with_tuples.append(trace_s + time.perf_counter() - began)
        persons.append(result.contact_persons)
        del result
    return seconds, cpu, with_tuples, persons


def duckdb_f1(
    c: simulate.Checkins,
    town: simulate.Town,
    cases,
    froms,
    tos,
    rule: ContactRule,
    limit_s: float,
    inline_cases: int = 3,
    memory_gb: int = 8,
) -> dict:
    """DuckDB's F1 per case: {"prepare_s", "seconds": [...], "persons": [set, ...],
    "inline_seconds": [...]} (the last for the query that computes visit ends itself)."""
    import duckdb

    con = duckdb.connect()
    # A bound, so that DuckDB spills to disk rather than crowding out a shared machine.
    con.execute(f"SET memory_limit = '{memory_gb}GB'")
    con.execute(f"SET temp_directory = '{tempfile.gettempdir()}/qrtrace-bench-duckdb'")
    ids, dwell = VenueTable(town.venues()).resolved_dwell()
    began = time.perf_counter()
    src = {"person": c.person, "venue": c.venue, "t_in": c.t_in, "t_out": c.t_out}
    dw = {"venue": ids, "dwell": dwell}
    con.register("src", src)
    con.register("dw", dw)
    con.execute("CREATE TABLE checkins AS SELECT * FROM src")
    con.execute("CREATE TABLE dwell AS SELECT * FROM dw")
    con.execute(VISITS_SQL.format(default_dwell=rule.default_dwell))
    prepare = time.perf_counter() - began
    # The same query with the visit ends computed inside it, as a one-off analysis would.
    inline = (
        "WITH visits AS (" + VISITS_QUERY.format(default_dwell=rule.default_dwell) + ")" + F1_SQL
    )
    inline_seconds = []
    for case, lo, hi in list(zip(cases.tolist(), froms.tolist(), tos.tolist(), strict=True))[
        :inline_cases
    ]:
        params = _sql_params(case, lo, hi, rule)
        t0 = time.perf_counter()
        con.execute(inline, params).fetchall()
        inline_seconds.append(time.perf_counter() - t0)
    seconds, persons = [], []
    budget_end = time.perf_counter() + limit_s
    for case, lo, hi in zip(cases.tolist(), froms.tolist(), tos.tolist(), strict=True):
        params = _sql_params(case, lo, hi, rule)
        t0 = time.perf_counter()
        rows = con.execute(F1_SQL, params).fetchall()
        seconds.append(time.perf_counter() - t0)
        persons.append({int(r[0]) for r in rows})
        if time.perf_counter() > budget_end and len(seconds) >= 5:
            break
    con.close()
    return {
        "prepare_s": prepare,
        "seconds": seconds,
        "persons": persons,
        "inline_seconds": inline_seconds,
    }


def run(
    n: int,
    k: int,
    batch: int,
    seed: int,
    duckdb_cases: int,
    skip_duckdb: bool,
    duckdb_memory_gb: int = 8,
    duckdb_inline_cases: int = 3,
    warmup_queries: int = 200,
    plot: Path | None = None,
) -> dict:
    """Measure everything; returns the flat result dict. With `plot`, also draws the
    latency distributions into that file (benchmarks.charts)."""
    out: dict = {
        "checkins": n,
        **_machine(),
    }
    log(f"simulating {n:,} check-ins")
    t0 = time.perf_counter()
    c, town = simulate.checkins_for_count(n, seed=seed)
    out.update(
        simulate_s=round(time.perf_counter() - t0, 2),
        people=town.people,
        venues=len(town.venue_category),
    )
    with tempfile.TemporaryDirectory(prefix="qrtrace-bench-") as tmp:
        # the build's kernels compiled (first use of a checkout) or loaded from numba's
        # cache by a small build first, so that build_s is the build's own time
        log("warming the build's kernels on a small index")
        began = time.perf_counter()
        build(*simulate.checkins_for_count(WARMUP_CHECKINS, seed=seed + 1), Path(tmp) / "warm")
        out["warmup_s"] = round(time.perf_counter() - began, 2)
        folder = Path(tmp) / "index"
        log("building the index")
        build_s, stats = build(c, town, folder)
        out.update(
            build_s=round(build_s, 3),
            build_checkins_per_s=round(len(c) / build_s),
            build_user_s=round(stats["user_s"], 2),
            build_sys_s=round(stats["sys_s"], 2),
            load_average_1m_build=round(os.getloadavg()[0], 2),
            distinct_checkins=stats["len"],
            index_stats_bytes_per_checkin=round(stats.get("bytes_per_checkin", 0.0), 2),
            disk_bytes=folder_bytes(folder),
        )
        out["bytes_per_checkin"] = round(out["disk_bytes"] / max(stats["len"], 1), 2)
        log(f"built in {build_s:.2f} s; {out['bytes_per_checkin']} bytes per check-in")
        cases, froms, tos = sample_cases(c, max(k, batch), seed)
        began = time.perf_counter()
        idx = CheckinIndex.open(folder, create=False)
        opened = time.perf_counter()
        idx.trace(int(cases[0]), int(froms[0]), int(tos[0]), rule=RULE)
        out["reopen_s"] = round(time.perf_counter() - began, 4)
        out["open_only_s"] = round(opened - began, 4)
        out["first_query_ms"] = round((time.perf_counter() - opened) * 1000, 3)
        try:
            began = time.perf_counter()
            idx.trace(
                int(cases[1 % len(cases)]),
                int(froms[1 % len(cases)]),
                int(tos[1 % len(cases)]),
                rule=RULE,
            )
            out["second_query_ms"] = round((time.perf_counter() - began) * 1000, 3)
            f1_rule = ContactRule(depth=1)
            ticks = cpu_ticks()  # the host's steal over the query phases, reported below
            if warmup_queries:
                log(f"{warmup_queries} warm-up F1 queries of other cases (not counted)")
                warm = sample_cases(c, warmup_queries, seed, stream=12)
                other = ~np.isin(warm[0], cases)  # none of the persons timed below
                warm_s = time_queries(idx, *(a[other] for a in warm), f1_rule)[0]
                out.update(warmup_queries=warmup_queries,
                           warmup_f1_p50_ms=percentile_ms(warm_s, 50),
                           warmup_f1_p99_ms=percentile_ms(warm_s, 99))
            log(f"F1 and F2 over {k} cases")
            f1_s, f1_cpu, f1_tuples, f1_res = time_queries(idx, cases[:k], froms[:k],
                                                           tos[:k], f1_rule)
            f2_s, f2_cpu, f2_tuples, f2_res = time_queries(idx, cases[:k], froms[:k],
                                                           tos[:k], RULE)
            out.update(
                f1_p50_ms=percentile_ms(f1_s, 50),
                f1_p99_ms=percentile_ms(f1_s, 99),
                f2_p50_ms=percentile_ms(f2_s, 50),
                f2_p99_ms=percentile_ms(f2_s, 99),
                f1_contacts_p50_ms=percentile_ms(f1_tuples, 50),
                f1_contacts_p99_ms=percentile_ms(f1_tuples, 99),
                f2_contacts_p50_ms=percentile_ms(f2_tuples, 50),
                f2_contacts_p99_ms=percentile_ms(f2_tuples, 99),
                # CPU time per query apart: on a shared machine the wall-clock tail is
                # mostly queries that waited for a core (preempted mid-query)
                f1_cpu_p50_ms=percentile_ms(f1_cpu, 50),
                f1_cpu_p99_ms=percentile_ms(f1_cpu, 99),
                f2_cpu_p99_ms=percentile_ms(f2_cpu, 99),
                f1_mean_contacts=round(float(np.mean([len(r) for r in f1_res])), 1),
                f2_mean_contacts=round(float(np.mean([len(r) for r in f2_res])), 1),
                cases=k,
            )
            log(f"batch of {batch} cases (trace_many)")
            began = time.perf_counter()
            idx.trace_many(cases[:batch], froms[:batch], tos[:batch], f1_rule)
            out["batch1000_s"] = round(time.perf_counter() - began, 4)
            out["batch_size"] = batch
            if float(np.mean(f2_s)) * batch < 10:  # skip when it would take minutes
                began = time.perf_counter()
                idx.trace_many(cases[:batch], froms[:batch], tos[:batch], RULE)
                out["batch1000_f2_s"] = round(time.perf_counter() - began, 4)
            out["queries_steal_share"] = steal_share(ticks, cpu_ticks())
        finally:
            idx.close()
    latencies = {"F1, ours": f1_s, "F2, ours": f2_s}
    if not skip_duckdb:
        m = min(duckdb_cases, k)
        log(f"DuckDB F1 self-join over up to {m} cases")
        duck = duckdb_f1(
            c,
            town,
            cases[:m],
            froms[:m],
            tos[:m],
            ContactRule(depth=1),
            limit_s=120,
            inline_cases=duckdb_inline_cases,
            memory_gb=duckdb_memory_gb,
        )
        done = len(duck["seconds"])
        latencies["F1, DuckDB self-join"] = duck["seconds"]
        ours = [set(r.tolist()) for r in f1_res[:done]]
        mismatches = [int(cases[i]) for i in range(done) if ours[i] != duck["persons"][i]]
        duck_p50 = percentile_ms(duck["seconds"], 50)
        out.update(
            duckdb_prepare_s=round(duck["prepare_s"], 2),
            duckdb_cases=done,
            duckdb_f1_p50_ms=duck_p50,
            duckdb_f1_p99_ms=percentile_ms(duck["seconds"], 99),
            duckdb_ratio=round(duck_p50 / percentile_ms(f1_s[:done], 50), 1),
            duckdb_contacts_ratio=round(duck_p50 / percentile_ms(f1_tuples[:done], 50), 1),
            duckdb_mismatches=len(mismatches),
            duckdb_mismatch_cases=" ".join(map(str, mismatches[:10])),  # flat: no lists
        )
        if duck["inline_seconds"]:
            inline_p50 = percentile_ms(duck["inline_seconds"], 50)
            out.update(
                duckdb_inline_f1_p50_ms=inline_p50,
                duckdb_inline_ratio=round(inline_p50 / out["f1_p50_ms"], 1),
            )
    if plot is not None:
        title = (f"Trace latency over {n:,} check-ins, {k} cases; {out['cpu']}, "
                 f"{out['usable_cores']} cores; {out['date'][:16]}")
        goals = dict(GOALS_MS)
        if "duckdb_f1_p50_ms" in out:  # where our F1 p50 must be for the 1,000x goal
            goals["1,000x under DuckDB's F1 p50"] = out["duckdb_f1_p50_ms"] / 1000
        written = charts.latency_chart(plot, latencies, title, goals)
        log(f"chart written to {written}")
    out["load_average_1m_end"] = round(os.getloadavg()[0], 2)
    out["peak_rss_gb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
    return out


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse arguments, measure, print."""
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.tracing",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--checkins", type=int, default=1_000_000, help="check-ins to simulate")
    p.add_argument("--cases", type=int, default=200, help="cases for latency percentiles")
    p.add_argument("--batch", type=int, default=1000, help="cases in the trace_many batch")
    p.add_argument("--duckdb-cases", type=int, default=200,
                   help="cases run through DuckDB (the first of --cases; it stops after "
                        "120 s): duckdb_ratio compares the p50s over these cases")
    p.add_argument("--no-duckdb", action="store_true", help="skip the DuckDB comparison")
    p.add_argument(
        "--duckdb-memory",
        type=int,
        default=8,
        metavar="GB",
        help="DuckDB's memory limit (it spills beyond); default 8",
    )
    p.add_argument(
        "--duckdb-inline-cases",
        type=int,
        default=3,
        help="cases for the one-off query that computes visit ends (default 3)",
    )
    p.add_argument(
        "--warmup-queries",
        type=int,
        default=200,
        help="F1 queries of other cases before the timed ones (default 200; 0: none)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print one flat JSON object")
    p.add_argument("--plot", metavar="FILE",
                   help="also draw the latency distributions into FILE (.svg or .png)")
    args = p.parse_args(argv)
    if args.plot:
        try:
            args.plot = charts.check_path(args.plot)
        except ValueError as exc:
            p.error(str(exc))
    if args.checkins < 1000 or args.cases < 2 or args.batch < 1 or args.warmup_queries < 0:
        p.error("--checkins must be at least 1000, --cases at least 2, --batch at least 1,"
                " --warmup-queries at least 0")
    out = run(
        args.checkins,
        args.cases,
        args.batch,
        args.seed,
        args.duckdb_cases,
        args.no_duckdb,
        args.duckdb_memory,
        args.duckdb_inline_cases,
        args.warmup_queries,
        args.plot,
    )
    if args.json:
        print(json.dumps(out))
    else:
        width = max(len(key) for key in out)
        for key, value in out.items():
            print(f"{key:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
