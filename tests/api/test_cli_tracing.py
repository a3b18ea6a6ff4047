"""The real `qrtrace` console script: simulate, import, trace (JSON and table), errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

PURPOSE = ("--purpose", "test")  # a trace says why it is run (audited)

T = 1_638_322_200  # 2021-12-01T08:30:00+07:00
CASE, FRIEND, LATER, STRANGER = 900_001, 900_002, 900_003, 900_004
VENUE = 5  # a venue of the simulated town


def _script() -> list[str]:
    script = Path(sys.executable).parent / "qrtrace"
    return [str(script)] if script.exists() else [
        sys.executable, "-c", "import sys; from api.cli import main; sys.exit(main())"]


def qrtrace(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run([*_script(), *args], capture_output=True, text=True, timeout=120)
    if check and done.returncode != 0:
        raise AssertionError(f"qrtrace {args} failed:\n{done.stderr}")
    return done


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """A data folder with a simulated town plus a hand-made case and its contacts."""
    root = tmp_path_factory.mktemp("cli")
    checkins, venues = root / "checkins.csv", root / "venues.csv"
    qrtrace("simulate", "--people", "300", "--venues", "30", "--days", "2", "--seed", "4",
            "--start", "2021-12-01", "--out", str(checkins), "--venues-out", str(venues),
            "--no-progress")
    with open(checkins, "a", encoding="utf-8") as fh:
        fh.write(f"{CASE},{VENUE},2021-12-01T08:30:00+07:00,2021-12-01T09:30:00+07:00\n")
        fh.write(f"{FRIEND},{VENUE},{T + 600},{T + 3000}\n")  # 40 min with the case
        fh.write(f"{FRIEND},{VENUE},{T + 600},\n")  # a duplicate upload
        fh.write(f"{LATER},{VENUE},{T + 2400},{T + 5400}\n")  # 20 min with case and friend
        fh.write(f"{STRANGER},{VENUE},{T + 3540},{T + 7200}\n")  # 1 min with the case
        fh.write(f"{STRANGER},{VENUE},2021-12-01T09:00:00,\n")  # naive time: rejected
        fh.write("bad,row\n")
    done = qrtrace("import", "--data", str(root / "data"), str(checkins), "--venues",
                   str(venues), "--json", "--no-progress")
    summary = json.loads(done.stdout)
    assert summary["loaded"] + summary["duplicates"] + summary["rejected"] == summary["rows"]
    assert summary["rejected"] == 2 and summary["duplicates"] >= 1
    assert summary["rejected_rows"][0]["reason"].endswith(
        "has no UTC offset (write e.g. +07:00 or Z)")
    assert "line" in summary["rejected_rows"][1]
    assert "line" in done.stderr  # the bad rows are also named on stderr
    return root / "data"


def test_trace_json_has_the_documented_shape_and_the_known_contact(data):
    done = qrtrace("trace", *PURPOSE, "--data", str(data), "--case", str(CASE),
                   "--from", "2021-12-01T00:00:00+07:00", "--to", str(T + 86400), "--json")
    result = json.loads(done.stdout)
    assert {"rule", "contacts", "zones", "query_ms", "first_query_ms"} <= result.keys()
    assert result["query_ms"] > 0 and result["first_query_ms"] > 0
    assert result["rule"]["min_overlap"] == 600 and result["rule"]["depth"] == 2
    contacts = {c["person"]: c for c in result["contacts"]}
    friend = contacts[FRIEND]
    assert friend["level"] == 1 and friend["exposed_at"] == T + 600
    assert friend["evidence"] == [{"venue": VENUE, "start": T + 600, "end": T + 3000,
                                   "minutes": 40.0}]
    assert contacts[LATER]["level"] == 1
    assert STRANGER not in contacts or contacts[STRANGER]["level"] == 2
    for c in result["contacts"]:
        assert set(c) == {"person", "level", "exposed_at", "evidence"}
    zone = next(z for z in result["zones"] if z["level"] == 0 and z["venue"] == VENUE)
    assert set(zone) == {"venue", "level", "start", "end", "exposed"}
    assert zone["start"] <= T and zone["end"] >= T + 3600 and zone["exposed"] >= 2


def test_trace_rule_options_and_table(data, tmp_path):
    done = qrtrace("trace", *PURPOSE, "--data", str(data), "--case", str(CASE), "--from", str(T),
                   "--to", str(T + 3600), "--depth", "1", "--min-overlap", "30", "--json")
    persons = {c["person"] for c in json.loads(done.stdout)["contacts"]}
    assert FRIEND in persons and LATER not in persons  # 20 min < 30 min
    graphml = tmp_path / "g.graphml"
    table = qrtrace("trace", *PURPOSE, "--data", str(data), "--case", str(CASE), "--from", str(T),
                    "--to", str(T + 3600), "--graphml", str(graphml)).stdout
    assert "2021-12-01 08:40" in table  # the friend's exposure, in UTC+7
    assert str(FRIEND) in table and graphml.read_text().startswith("<?xml")


def test_trace_writes_a_graph_to_standard_output(data, tmp_path):
    """`--graph-json -` pipes the graph (into jq, say): stdout holds the graph alone, the
    trace's table goes to stderr, and no file named '-' is made."""
    window = ["--case", str(CASE), "--from", str(T), "--to", str(T + 3600)]
    done = subprocess.run([*_script(), "trace", *PURPOSE, "--data", str(data), *window,
                           "--graph-json", "-"], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    nodes = {n["id"] for n in json.loads(done.stdout)["nodes"]}
    assert {f"p{CASE}", f"p{FRIEND}", f"v{VENUE}"} <= nodes
    assert "2021-12-01 08:40" in done.stderr and not (tmp_path / "-").exists()
    both = qrtrace("trace", *PURPOSE, "--data", str(data), *window, "--svg", "-", "--graphml", "-",
                   check=False)
    assert both.returncode == 2 and "only one of" in both.stderr


def test_trace_reads_a_folder_that_a_running_writer_holds(data, tmp_path):
    """A server or worker keeps its index open (and locked) all day; an official's
    `qrtrace trace` on the same folder still answers, and sees what it appends."""
    import shutil

    from tracing import CheckinIndex

    data = Path(shutil.copytree(data, tmp_path / "data"))
    window = ["--case", str(CASE), "--from", str(T), "--to", str(T + 86400), "--json"]
    with CheckinIndex.open(data / "index") as writer:
        writer.append([CASE + 10], [VENUE], [T + 900], [T + 2700])  # 30 min with the case
        done = qrtrace("trace", *PURPOSE, "--data", str(data), *window)
        persons = {c["person"] for c in json.loads(done.stdout)["contacts"]}
        assert {FRIEND, CASE + 10} <= persons


def test_trace_over_shards_answers_as_one_folder(tmp_path):
    """Check-ins split by venue into two data folders, as two Kafka workers would hold
    them: `trace --data A --data B` gives what one folder with all of them gives."""
    checkins, venues = tmp_path / "all.csv", tmp_path / "venues.csv"
    qrtrace("simulate", "--people", "200", "--venues", "20", "--days", "2", "--seed", "9",
            "--start", "2021-12-01", "--out", str(checkins), "--venues-out", str(venues),
            "--no-progress")
    header, *rows = checkins.read_text(encoding="utf-8").splitlines()
    venue_at = header.split(",").index("venue")
    for shard in (0, 1):
        part = [r for r in rows if int(r.split(",")[venue_at]) % 2 == shard]
        (tmp_path / f"{shard}.csv").write_text("\n".join([header, *part]) + "\n")
    for name in ("all", "0", "1"):
        qrtrace("import", "--data", str(tmp_path / f"d{name}"), str(tmp_path / f"{name}.csv"),
                "--venues", str(venues), "--no-progress")
    cases = sorted({int(r.split(",")[header.split(",").index("person")]) for r in rows})[:6]
    found = 0
    for case in cases:
        window = ["--case", str(case), "--from", "2021-12-01T00:00:00+07:00",
                  "--to", "2021-12-03T00:00:00+07:00", "--json"]
        one = json.loads(qrtrace("trace", *PURPOSE, "--data", str(tmp_path / "dall"),
                                 *window).stdout)
        two = json.loads(qrtrace("trace", *PURPOSE, "--data", str(tmp_path / "d0"), "--data",
                                 str(tmp_path / "d1"), *window).stdout)
        assert (two["contacts"], two["zones"]) == (one["contacts"], one["zones"])
        found += len(one["contacts"])
    assert found  # the cases have contacts to compare


@pytest.mark.parametrize(("args", "message"), [
    (["--from", "2021-12-01T08:00:00", "--to", "2"], "has no UTC offset"),
    (["--from", "5", "--to", "5"], "is not after"),
    (["--from", "1", "--to", "2", "--tz", "Mars"], "not an offset"),
    (["--from", "1", "--to", "2", "--min-overlap", "-3"], "from 0 to 1440 minutes"),
    (["--from", "1", "--to", "2", "--linger", "inf"], "--linger must be from 0 to 1440"),
    (["--from", "1", "--to", "2", "--dwell-default", "0"], "--dwell-default must be from 1"),
    (["--from", "1", "--to", "253402300799"], "within the times the index stores"),
])
def test_trace_bad_input_is_one_clear_line(data, capsys, args, message):
    from api.cli import main  # in-process: the script's error path is the same main()

    assert main(["trace", *PURPOSE, "--data", str(data), "--case", str(CASE), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_missing_folder_and_file_are_clear_errors(tmp_path, capsys):
    from api.cli import main

    assert main(["trace", *PURPOSE, "--data", str(tmp_path / "none"), "--case", "1", "--from", "1",
                 "--to", "2"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["import", "--data", str(tmp_path / "d"), str(tmp_path / "x.csv")]) == 2
    assert "x.csv does not exist" in capsys.readouterr().err
    (tmp_path / "d").mkdir()
    assert main(["trace", *PURPOSE, "--data", str(tmp_path / "d"), "--case", "1", "--from", "1",
                 "--to", "2"]) == 2
    assert "no index yet" in capsys.readouterr().err


def test_a_trace_is_audited_in_its_folder_before_it_answers(data):
    """A trace on the command line reads citizens' movements as an official's query does:
    it leaves an entry in the folder's audit log (the server's), chained to the rest."""
    from api.audit import AuditLog, audit_path

    log = audit_path(data)
    before = log.read_text().count("\n") if log.exists() else 0
    window = ("--data", str(data), "--case", str(CASE), "--from", str(T), "--to", str(T + 86400),
              "--depth", "1", "--json")
    # like an official's case, a trace says why it is run (a review's ran with none)
    for purpose in ((), ("--purpose", "  "), ("--purpose", "ok\u202e")):
        refused = qrtrace("trace", *window, *purpose, check=False)
        assert refused.returncode == 2 and "--purpose" in refused.stderr, refused.stderr
    qrtrace("trace", *window, "--purpose", "PCR positive")
    lines = log.read_text().splitlines()
    assert len(lines) == before + 1
    entry = json.loads(lines[-1])
    # the person under detail.person, as the API's entries name theirs ("case" would be
    # a case id there: a review read the person's id as a case's)
    assert (entry["role"], entry["action"], entry["case"], entry["purpose"]) == \
        ("command_line", "trace", None, "PCR positive")
    assert entry["detail"]["person"] == CASE
    assert entry["actor"].endswith(f"(uid {os.geteuid()})")
    assert entry["detail"]["from"] == T and entry["detail"]["depth"] == 1
    assert oct(log.stat().st_mode & 0o777) == "0o600"
    with AuditLog(log) as opened:
        assert opened.verify().ok


def test_a_trace_that_cannot_be_audited_is_refused(tmp_path):
    """No audit entry, no trace: a folder whose audit log is not one answers nothing."""
    from api.audit import audit_path

    folder = tmp_path / "data"
    qrtrace("simulate", "--people", "50", "--venues", "5", "--days", "1", "--seed", "1",
            "--start", "2021-12-01", "--out", str(tmp_path / "c.csv"), "--no-progress")
    qrtrace("import", "--data", str(folder), str(tmp_path / "c.csv"), "--no-progress")
    audit_path(folder).parent.mkdir(mode=0o700, exist_ok=True)
    audit_path(folder).write_text("not an audit log\n")
    done = qrtrace("trace", *PURPOSE, "--data", str(folder), "--case", "1", "--from", str(T),
                   "--to", str(T + 86400), "--json", check=False)
    assert done.returncode == 2 and done.stdout == ""
    assert "cannot write the audit log, so the trace is refused" in done.stderr


_line = st.one_of(
    st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(0, 5_000_000_000),
              st.one_of(st.just(""), st.integers(0, 5_000_000_000).map(str)))
    .map(lambda r: f"{r[0]},{r[1]},{r[2]},{r[3]}"),
    st.sampled_from(["", "1,2", "x,1,2,", "1,1,2021-12-01T08:00:00,", "1,1,-5,",
                     "2,2,2021-12-01T08:00:00+07:00,2021-12-01T07:00:00+07:00"]),
)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(_line, min_size=1, max_size=40))
def test_import_accounts_for_every_row(tmp_path, capsys, lines):
    """loaded + duplicates + rejected == rows, whatever the rows (index limits included)."""
    from api.cli import main

    folder = tmp_path / uuid.uuid4().hex
    folder.mkdir()
    source = folder / "c.csv"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert main(["import", "--data", str(folder / "data"), str(source), "--json",
                 "--no-progress"]) in (0, 1)
    summary = json.loads(capsys.readouterr().out)
    assert summary["rows"] == sum(1 for line in lines if line)
    assert summary["loaded"] + summary["duplicates"] + summary["rejected"] == summary["rows"]
    assert all(r["line"] >= 1 and r["reason"] for r in summary["rejected_rows"])


def test_import_warns_of_rows_the_next_purge_deletes_and_of_rows_in_the_future(tmp_path):
    import time

    now = int(time.time())
    source = tmp_path / "c.csv"
    source.write_text(f"person,venue,check_in,check_out\n1,1,{T},\n2,1,{now - 3600},\n"
                      f"3,1,{now + 30 * 86400},\n", encoding="utf-8")
    done = qrtrace("import", "--data", str(tmp_path / "data"), str(source), "--json",
                   "--no-progress")
    summary = json.loads(done.stdout)
    assert (summary["loaded"], summary["older_than_retention"], summary["in_the_future"]) \
        == (3, 1, 1)
    assert "1 rows are older than the retention period (21 days)" in done.stderr
    assert "1 rows check in more than a day from now" in done.stderr


def test_a_venue_dwell_over_a_day_is_a_rejected_row_and_never_breaks_the_folder(tmp_path):
    source, venues = tmp_path / "c.csv", tmp_path / "v.csv"
    source.write_text(f"person,venue,check_in,check_out\n1,6,{T},\n", encoding="utf-8")
    venues.write_text("venue,name,village,category,dwell_minutes\n"
                      "6,Chợ,Thôn Đông,market,99999999999999999999\n7,Quán,Thôn Đông,cafe,30\n",
                      encoding="utf-8")
    done = qrtrace("import", "--data", str(tmp_path / "data"), str(source), "--venues",
                   str(venues), "--json", "--no-progress")
    summary = json.loads(done.stdout)
    assert summary["venues"] == 1 and summary["venues_rejected"] == 1
    assert "dwell_minutes 99999999999999999999 is over a day (1440)" in done.stderr
    # the folder's table holds only the good row: a later import with it still works
    again = qrtrace("import", "--data", str(tmp_path / "data"), str(source), "--venues",
                    str(venues), "--json", "--no-progress")
    assert json.loads(again.stdout)["duplicates"] == 1


@pytest.mark.parametrize(("args", "message"), [
    (["--seed", "-1"], "--seed must be 0 or more"),
    (["--start", "1960-01-01"], "within the times the index stores"),
    (["--people", "99999999999"], "--people must be from 1 to 50,000,000"),
])
def test_simulate_bad_input_is_one_clear_line(tmp_path, capsys, args, message):
    from api.cli import main

    out = tmp_path / "s.csv"
    assert main(["simulate", "--people", "10", "--venues", "3", "--days", "1", "--out",
                 str(out), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()
