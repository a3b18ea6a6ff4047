"""The HTTP API under load: batch and single scans, and officials' exposure queries,
against the plain FastAPI-and-pydantic per-item path, in one run.

    python -m benchmarks.api [--checkins 10000000] [--seconds 10] [--workers N] [--json]

Prepares a data folder with a simulated commune of --checkins check-ins over the last two
weeks, 1,000 open cases, a device and an official; starts `qrtrace serve --no-rate-limits`
as its own process, and the peer (benchmarks/plain_api.py) as another; then loads them
from this process over loopback, in this order:
- exposure queries (GET /v1/cases/{id}/exposure, a page of --page contacts) at 1,000
  requests/s, open loop: over the 1,000 cases on the index as prepared (all in its base
  segment; each case traced once before, in the warm-up), plain and then asking for
  gzip as browsers do, then over --active-cases of
  them while single scans flow at 200/s (the index changes every second; each page is
  answered as made for 5 s, then made again by the server's background thread: see
  api/cases.py);
- packed batches (POST /v1/scans/packed, 50,000 scans each, four clients, as many
  check-in points post at once): check-ins/s, after untimed batches of 300,000
  check-ins of the same 100,000 persons a day earlier (a running server has seen them);
- JSON batches of 10,000 (POST /v1/scans) and, for the peer, /plain/scans;
- single scans (POST /v1/scan, and /plain/scan) with wrk, every body a new check-in.
The scan loads come after the queries because they grow the index and start background
merges.
Prints a table, or one flat JSON object with --json.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import requests

from benchmarks.environment import cpu_ticks, describe, steal_share
from benchmarks.loadgen import open_loop_get, wrk
from ingest.events import ScanBatch
from ingest.wire import encode_packed

JURISDICTION = "Bench/Commune"
PACKED_ROWS = 50_000
WARM_PACKED_ROWS = 300_000  # 95% of the packed phase's 100,000 persons seen once before


def prepare(data: Path, checkins: int, cases: int) -> dict:
    """Fill `data`: simulated check-ins, venues, a device, an official, open cases."""
    from api.cases import CaseRequest
    from api.ratelimit import ScanLimits
    from api.service import Service
    from api.settings import Settings
    from tracing.simulate import checkins_for_count

    today = int(time.time() // 86400)
    sim, town = checkins_for_count(checkins, seed=1, days=14, start_day=today - 14)
    service = Service(Settings(data=data, scan_limits=ScanLimits(enabled=False)))
    try:
        service.save_venues([replace(v, district="Bench", commune="Commune")
                             for v in town.venues()])
        future = sim.t_in < time.time()
        service.index.append(sim.person[future], sim.venue[future], sim.t_in[future],
                             sim.t_out[future])
        _, device = service.registry.add_principal("bench device", "device", venue=1)
        official, official_token = service.registry.add_principal(
            "bench official", "official", jurisdiction=JURISDICTION)
        now = int(time.time())
        recent = np.unique(sim.person[sim.t_in > now - 5 * 86400])
        chosen = np.random.default_rng(2).choice(recent, cases, replace=False)
        case_ids = [service.cases.open(official, CaseRequest(
            person=int(p), t_from=now - 5 * 86400, t_to=now, purpose="benchmark")).id
            for p in chosen]
        rows = len(service.index)
    finally:
        service.close()
    return {"device": device, "official": official_token, "cases": case_ids, "rows": rows}


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _prepared(ours: Path, args) -> dict:
    """prepare() into `ours`; with --keep DIR, prepared once into DIR and copied from it
    on later runs (a 10M-check-in commune takes minutes to simulate and load)."""
    import shutil

    if args.keep is None:
        return prepare(ours, args.checkins, args.cases)
    keep = Path(args.keep)
    done = keep / "prepared.json"
    if not done.exists():
        shutil.rmtree(keep, ignore_errors=True)
        info = prepare(keep / "data", args.checkins, args.cases)
        done.write_text(json.dumps({**info, "checkins": args.checkins}))
    info = json.loads(done.read_text())
    if info.pop("checkins") != args.checkins:
        raise SystemExit(f"{keep} holds another size; remove it or choose another folder")
    shutil.copytree(keep / "data", ours)
    return info


def start(args: list[str], url: str, env: dict, log: Path | None = None) -> subprocess.Popen:
    """Start a server process (its stdout and stderr to `log`, if given) and wait for it
    to answer."""
    with open(log or os.devnull, "wb") as sink:
        process = subprocess.Popen(args, env=env, stdout=sink, stderr=subprocess.STDOUT)
    for _ in range(600):
        if process.poll() is not None:
            raise RuntimeError(f"{args} exited with code {process.returncode} at start"
                               + (f":\n{_tail(log)}" if log else ""))
        try:
            requests.get(url, timeout=1)
            return process
        except requests.ConnectionError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"{args} did not start")


def scan_bodies(keyring, n: int, seed: int, days_before: int = 0
                ) -> tuple[list[str], np.ndarray]:
    """n (token, time) pairs that are new check-ins at one venue: a pool of persons (the
    same for a seed, whatever n >= 100,000) with distinct times in the last day, or in
    the day `days_before` days earlier."""
    from decoder import issue_token

    rng = np.random.default_rng(seed)
    pool = [issue_token("person", int(p), keyring)
            for p in rng.integers(1, 2**40, min(n, 100_000))]
    people = rng.integers(0, len(pool), n)
    times = (int(time.time()) - 86_000 - days_before * 86_400
             + rng.permutation(86_000 * 20)[:n] // 20)
    return [pool[i] for i in people], times


def post_all(url: str, token: str, bodies: list[bytes], content_type: str,
             clients: int = 4) -> tuple[float, int]:
    """POST every body (split over `clients` threads); (seconds, check-ins accepted)."""
    accepted = [0] * clients
    failures: list[str] = []

    def client(k: int) -> None:
        with requests.Session() as session:
            for body in bodies[k::clients]:
                r = session.post(url, data=body, timeout=600, headers={
                    "Authorization": f"Bearer {token}", "Content-Type": content_type})
                if r.status_code != 200:
                    failures.append(f"{r.status_code} {r.text[:300]}")
                    return
                accepted[k] += r.json()["accepted"]

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        raise RuntimeError(f"{url} refused a batch: {failures[0]}")
    return time.perf_counter() - started, sum(accepted)


def packed_bodies(keyring, n: int, seed: int, first_seq: int, days_before: int = 0
                  ) -> list[bytes]:
    """n new check-ins (scan_bodies) as packed-v1 bodies of PACKED_ROWS scans."""
    tokens, times = scan_bodies(keyring, n, seed, days_before)
    bodies = []
    for i in range(0, n, PACKED_ROWS):
        k = min(PACKED_ROWS, n - i)
        seq = np.arange(first_seq + i, first_seq + i + k, dtype=np.uint64)
        batch = ScanBatch(np.ones(k, np.uint64), np.ones(k, np.uint64), seq,
                          times[i:i + k].astype(np.int64), np.zeros(k, np.int64),
                          np.array(tokens[i:i + k], dtype="S43"))
        bodies.append(encode_packed(batch))
    return bodies


def json_batches(tokens, times, size: int) -> list[bytes]:
    """JSON scan batches of `size` items."""
    out = []
    for i in range(0, len(tokens), size):
        pairs = zip(tokens[i:i + size], times[i:i + size].tolist(), strict=True)
        scans = [{"token": tk, "time": t, "seq": i + j} for j, (tk, t) in enumerate(pairs)]
        out.append(json.dumps({"scans": scans}).encode())
    return out


def run(args) -> dict:
    from api.keystore import load_keyring

    out: dict = describe("benchmarks.api", ("fastapi", "uvicorn", "pydantic", "numba"))
    out.update(server_workers=args.workers, audit_fsync=args.audit_fsync)
    with tempfile.TemporaryDirectory(prefix="qrtrace-bench-api-") as folder:
        ours, plain = Path(folder) / "ours", Path(folder) / "plain"
        print(f"preparing {args.checkins:,} check-ins ...", file=sys.stderr)
        t = time.perf_counter()
        prep = _prepared(ours, args)
        plain_prep = prepare(plain, 10_000, 10)
        out["prepare_s"] = round(time.perf_counter() - t, 1)
        out["index_checkins"] = prep["rows"]
        env = {**os.environ, "QRTRACE_ADMIN_TOKEN": secrets.token_urlsafe(24)}
        port, plain_port = _free_port(), _free_port()
        url, plain_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{plain_port}"
        logs = [Path(folder) / "serve.log", Path(folder) / "plain.log"]
        servers = [
            start([sys.executable, "-m", "api.cli", "serve", "--data", str(ours), "--port",
                   str(port), "--no-rate-limits", "--workers", str(args.workers),
                   "--audit-fsync", args.audit_fsync],
                  url + "/healthz", env, logs[0]),
            start([sys.executable, "-m", "benchmarks.plain_api", "--data", str(plain),
                   "--port", str(plain_port)], plain_url + "/docs", env, logs[1])]
        try:
            measure(out, args, url, plain_url, prep, plain_prep,
                    load_keyring(ours), load_keyring(plain), servers[0].pid)
        finally:
            died = [(s, log) for s, log in zip(servers, logs, strict=True)
                    if s.poll() is not None]
            for server in servers:
                server.terminate()
                server.wait(timeout=30)
            for server, log in died:  # say so, with what it printed: nothing is hidden
                print(f"{server.args[2]} exited during the run with code {server.returncode};"
                      f" the end of its log:\n{_tail(log)}", file=sys.stderr)
        if died:
            raise SystemExit("a server exited during the run: its figures are not valid")
    return out


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"({exc})"


def _cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of process `pid` and its live children so far (Linux
    /proc: the followers of `qrtrace serve --workers N`)."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if entry == str(pid) or int(fields[1]) == pid:
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def _settle(pid: int, idle_cpu: float = 0.05, longest_s: float = 60.0) -> float:
    """Wait until the server (and its children) use under `idle_cpu` of a core over half
    a second, at most `longest_s`; returns the seconds waited."""
    began = time.perf_counter()
    while time.perf_counter() - began < longest_s:
        before = _cpu_seconds(pid)
        time.sleep(0.5)
        if _cpu_seconds(pid) - before < idle_cpu * 0.5:
            break
    return round(time.perf_counter() - began, 1)


def _exposure_run(out, name, server_pid, url, paths, headers, rate, seconds) -> dict:
    """One open-loop exposure run: its latencies, and the server's CPU per query."""
    before, ticks = _cpu_seconds(server_pid), cpu_ticks()
    result = open_loop_get(url, paths, headers, rate, seconds)
    cpu = _cpu_seconds(server_pid) - before
    out[f"exposure_{name}_steal_share"] = steal_share(ticks, cpu_ticks())
    out.update({f"exposure_{name}_{k}": v for k, v in result.items() if k != "statuses"})
    out[f"exposure_{name}_server_cpu_ms_per_query"] = round(
        cpu * 1000 / max(result["answered"], 1), 3)
    _progress(out, f"exposure_{name}")
    return result


def measure(out, args, url, plain_url, prep, plain_prep, ring, plain_ring,
            server_pid) -> None:
    device, plain_device = prep["device"], plain_prep["device"]
    seconds = args.seconds
    # exposure queries
    print("exposure queries ...", file=sys.stderr)
    paths = [f"/v1/cases/{c}/exposure?limit={args.page}" for c in prep["cases"]]
    headers = {"Authorization": f"Bearer {prep['official']}"}
    _warm_each_process(url, args.workers, paths, headers)
    quiet = _exposure_run(out, "quiet", server_pid, url, paths, headers, args.rate, seconds)
    # the same, asking for gzip as a browser does (the page's gzip form is made with it)
    zipped = _exposure_run(out, "gzip", server_pid, url, paths,
                           {**headers, "Accept-Encoding": "gzip"}, args.rate, seconds)
    paths = paths[:args.active_cases]
    stop = threading.Event()
    flow = threading.Thread(target=_trickle, args=(url, device, ring, stop), daemon=True)
    flow.start()
    busy = _exposure_run(out, "ingesting", server_pid, url, paths, headers, args.rate,
                         seconds)
    stop.set()
    flow.join()
    # the pages that the ingesting run queued for refresh are made by the server's
    # background thread (api/cases.py) at up to a quarter of a core: let it finish, so
    # that the scan loads below are measured alone
    out["settle_s"] = _settle(server_pid)
    out["exposure_page"] = args.page
    out["exposure_non_200"] = sum(n for run in (quiet, zipped, busy)
                                  for s, n in run["statuses"].items() if s != 200)
    # packed batches, after untimed ones of the same persons a day earlier: the server's
    # first packed request loads the kernels of that path, and a running server has seen
    # its commune's persons before (the first sight of a token costs a BLAKE2b and an
    # insert in the key ring's cache of verified tokens: decoder/tokens.py)
    print("packed batches ...", file=sys.stderr)
    post_all(url + "/v1/scans/packed", device,
             packed_bodies(ring, WARM_PACKED_ROWS, 1, 10**9, days_before=1),
             "application/vnd.qrtrace.packed-v1")  # four connections, as timed: every process
    took, accepted = post_all(url + "/v1/scans/packed", device,
                              packed_bodies(ring, args.packed_rows, 1, 0),
                              "application/vnd.qrtrace.packed-v1")
    out.update(packed_checkins_per_s=round(accepted / took), packed_accepted=accepted)
    _progress(out, "packed_")
    # JSON batches, ours and the peer's
    tokens, times = scan_bodies(ring, 100_000, 2)
    took, accepted = post_all(url + "/v1/scans", device, json_batches(tokens, times, 10_000),
                              "application/json")
    out["json_batch_checkins_per_s"] = round(accepted / took)
    tokens, times = scan_bodies(plain_ring, 4_000, 3)
    took, accepted = post_all(plain_url + "/plain/scans", plain_device,
                              json_batches(tokens, times, 1_000), "application/json")
    out["plain_batch_checkins_per_s"] = round(accepted / took)
    _progress(out, "json_batch", "plain_batch")
    # single scans with wrk
    print("single scans ...", file=sys.stderr)
    for name, target, token, keys in (("single", url + "/v1/scan", device, ring),
                                      ("plain_single", plain_url + "/plain/scan",
                                       plain_device, plain_ring)):
        tokens, times = scan_bodies(keys, 120_000, 4)
        bodies = [json.dumps({"token": tk, "time": int(t), "seq": i}).encode()
                  for i, (tk, t) in enumerate(zip(tokens, times, strict=True))]
        before, ticks = _cpu_seconds(server_pid), cpu_ticks()
        result = wrk(target, bodies, {"Authorization": f"Bearer {token}",
                                      "Content-Type": "application/json"}, seconds)
        out[f"{name}_steal_share"] = steal_share(ticks, cpu_ticks())
        if name == "single":  # the server's CPU per request: steadier than the rate
            out["single_server_cpu_us_per_request"] = round(
                (_cpu_seconds(server_pid) - before) * 1e6
                / max(result["requests_per_s"] * max(1, round(seconds)), 1), 1)
        out.update({f"{name}_requests_per_s": result["requests_per_s"],
                    f"{name}_p99": result["latency_p99"],
                    f"{name}_non_2xx": result["non_2xx"],
                    f"{name}_client_cpu_us_per_request":
                        result["client_cpu_us_per_request"]})
        _progress(out, name)


def _warm_each_process(url: str, processes: int, paths: list[str], headers: dict) -> None:
    """Trace every case once in each of the server's processes (told apart by /healthz;
    the kernel hands a new connection to any of them): kernels compiled, pages made.
    Each process is warmed on its own kept-alive connection right after it is found
    (an idle connection is closed by the server after 5 s)."""
    warmed: set[str] = set()
    deadline = time.monotonic() + 300  # followers may still be starting
    while len(warmed) < processes:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {sorted(warmed)} of {processes} processes answered")
        with requests.Session() as session:
            name = session.get(url + "/healthz", timeout=60).json().get("process", "writer")
            if name in warmed:
                continue
            for path in paths:
                session.get(url + path, headers=headers, timeout=600).raise_for_status()
            if session.get(url + "/healthz", timeout=60).json().get("process") == name:
                warmed.add(name)  # else the connection moved: warm again


def _progress(out: dict, *prefixes: str) -> None:
    """The figures measured so far, on stderr (a long run shows what it has)."""
    found = {k: v for k, v in out.items() if k.startswith(prefixes)}
    print("  " + json.dumps(found), file=sys.stderr, flush=True)


def _trickle(url: str, device: str, ring, stop: threading.Event, rate: float = 200) -> None:
    """Single scans at about `rate` a second until `stop`: the index changes all along."""
    tokens, times = scan_bodies(ring, 20_000, 5)
    with requests.Session() as session:
        for i, (tk, t) in enumerate(zip(tokens, times, strict=True)):
            if stop.is_set():
                return
            try:
                session.post(url + "/v1/scan", json={"token": tk, "time": int(t), "seq": i},
                             headers={"Authorization": f"Bearer {device}"}, timeout=60)
            except requests.RequestException as exc:
                print(f"trickle: {exc}", file=sys.stderr)
            time.sleep(1 / rate)


def main() -> None:
    """Parse the options, run, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkins", type=int, default=10_000_000)
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--packed-rows", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=1000.0, help="exposure queries/s")
    parser.add_argument("--page", type=int, default=500,
                        help="contacts per exposure page (the API's default: 500)")
    parser.add_argument("--active-cases", type=int, default=50,
                        help="cases queried while scans flow (default 50)")
    parser.add_argument("--keep", metavar="DIR",
                        help="prepare the commune once into DIR and reuse it on later runs")
    parser.add_argument("--audit-fsync", choices=("after-answer", "before-answer"),
                        default="after-answer",
                        help="`qrtrace serve --audit-fsync` (default: serve's default)")
    parser.add_argument("--workers", type=int, default=1,
                        help="server processes (`qrtrace serve --workers`, default 1)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    out = run(args)
    if args.json:
        print(json.dumps(out))
    else:
        for key, value in out.items():
            print(f"{key:40} {value}")


if __name__ == "__main__":
    main()
