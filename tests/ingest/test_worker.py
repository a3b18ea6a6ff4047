"""The worker over the embedded log: check-ins land in the index, bad items get reasons."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest

from decoder import issue_token
from ingest.embedded import EmbeddedLog
from ingest.events import ScanBatch, ScanEvent
from ingest.wire import FORMAT_HEADER, encode_json, encode_packed
from ingest.worker import Worker
from tests.ingest.helpers import T0, events_for, forged, keyring_of, person_token, random_batch
from tracing.index import CheckinIndex

JSON_H = [(FORMAT_HEADER, b"json")]
PACKED_H = [(FORMAT_HEADER, b"packed-v1")]
DAY = 86_400


@pytest.fixture
def setup(tmp_path):
    keyring = keyring_of(tmp_path)
    index = CheckinIndex.open(tmp_path / "index")
    log = EmbeddedLog()
    yield log, index, keyring, Worker(log, index, keyring, poll_timeout_s=0)
    log.close()
    index.close()


def _stored(index) -> set:
    person, venue, t_in, _ = index.checkins()
    return set(zip(person.tolist(), venue.tolist(), t_in.tolist(), strict=True))


def test_json_scans_become_checkins_that_trace_finds(setup):
    log, index, keyring, worker = setup
    events = events_for(keyring, [(1, 10, T0, T0 + 3600), (2, 10, T0 + 600, 0),
                                  (3, 11, T0, 0)])
    futures = [log.submit(encode_json(e), JSON_H) for e in events]
    worker.run_once()
    assert all(f.result(timeout=1) >= 0 for f in futures)
    assert _stored(index) == {(1, 10, T0), (2, 10, T0 + 600), (3, 11, T0)}
    contacts = index.trace(1, T0, T0 + 7200).to_dict()["contacts"]
    assert [c["person"] for c in contacts] == [2]
    assert worker.metrics.checkins_added == 3 and not worker.metrics.rejected


def test_a_packed_batch_is_one_append_and_retries_are_duplicates(setup):
    log, index, keyring, worker = setup
    batch, keys = random_batch(keyring, 3000)
    log.submit(encode_packed(batch), PACKED_H)
    log.submit(encode_packed(batch), PACKED_H)  # an offline batch uploaded again
    worker.run_once()
    assert _stored(index) == keys
    assert worker.metrics.checkins_added == len(keys)
    assert worker.metrics.duplicates == 2 * 3000 - len(keys)


def test_bad_records_and_rows_get_reasons_and_never_stop_the_batch(setup):
    log, index, keyring, worker = setup
    good = events_for(keyring, [(1, 10, T0, 0), (2, 10, T0 + 60, 0)])
    bad_mac = ScanEvent(10, 1, 5, T0, forged(person_token(keyring, 3)))
    venue_token = ScanEvent(10, 1, 6, T0, issue_token("venue", 10, keyring))
    backwards = ScanEvent(10, 1, 7, T0, person_token(keyring, 4), None, T0 - 1)
    packed = ScanBatch.of([good[1], bad_mac])
    log.submit(encode_json(good[0]), JSON_H)
    log.submit(b"{not json", JSON_H)
    log.submit(b"\x00\x01", [(FORMAT_HEADER, b"avro")])
    log.submit(encode_json(venue_token), JSON_H)
    log.submit(encode_json(backwards), JSON_H)
    log.submit(encode_packed(packed), PACKED_H)
    outcome = worker.run_once()
    assert outcome.records == 6 and outcome.added == 2
    assert _stored(index) == {(1, 10, T0), (2, 10, T0 + 60)}
    reasons = [reason for _, reason in log.dead_letters]
    assert len(reasons) == 5
    assert any(r.startswith("json: not a JSON") for r in reasons)
    assert any("unknown format" in r for r in reasons)
    assert "token: bad_mac" in reasons
    assert "time: t_out not after t_in" in reasons
    assert "token: not a person token" in reasons
    assert sum(worker.metrics.rejected.values()) == 5
    # the packed dead letter holds only the refused row
    dead = next(r for r, reason in log.dead_letters if reason == "token: bad_mac")
    assert len(dead.value) == 16 + 83


def test_refused_rows_of_several_packed_records_go_back_to_their_own_record(setup):
    from ingest.wire import decode_packed

    log, index, keyring, worker = setup
    first = events_for(keyring, [(1, 20, T0, 0), (2, 20, T0, 0)])
    third = events_for(keyring, [(3, 21, T0, 0), (4, 21, T0, 0), (5, 21, T0, 0)])
    forged_row = ScanEvent(21, 1, 9, T0 + 5, forged(person_token(keyring, 6)))
    cut = encode_packed(ScanBatch.of(events_for(keyring, [(7, 22, T0, 0)])))[:-1]
    futures = [log.submit(encode_packed(ScanBatch.of(first)), PACKED_H),
               log.submit(cut, PACKED_H),
               log.submit(encode_packed(ScanBatch.of([third[0], forged_row, *third[1:]])),
                          PACKED_H),
               log.submit(encode_json(events_for(keyring, [(8, 23, T0, 0)])[0]), JSON_H)]
    outcome = worker.run_once()
    assert outcome.records == 4 and outcome.added == 6
    assert all(f.result(timeout=1) >= 0 for f in futures)
    assert _stored(index) == {(1, 20, T0), (2, 20, T0), (3, 21, T0), (4, 21, T0),
                              (5, 21, T0), (8, 23, T0)}
    dead = {record.offset: (record, reason) for record, reason in log.dead_letters}
    assert sorted(dead) == [1, 2]
    assert dead[1][1].startswith("packed: ") and dead[1][0].value == cut
    record, reason = dead[2]
    assert reason == "token: bad_mac"
    assert decode_packed(record.value).batch.events() == [forged_row]


def test_camera_frames_are_decoded_to_tokens(setup):
    from api.qrimage import qr_png

    log, index, keyring, worker = setup
    frame = qr_png(person_token(keyring, 42), scale=4)
    log.submit(encode_json(ScanEvent(10, 3, 1, T0, None, frame)), JSON_H)
    log.submit(encode_json(ScanEvent(10, 3, 2, T0, None, b"not an image")), JSON_H)
    worker.run_once()
    assert _stored(index) == {(42, 10, T0)}
    [(_, reason)] = log.dead_letters
    assert reason == "frame: unreadable_input (not a readable image: no known image format " \
        "(PNG, JPEG, WebP, BMP, GIF, PPM or TIFF) in these bytes)"
    assert worker.metrics.as_dict()["rejected.frame: unreadable_input"] == 1


def test_a_frame_showing_two_people_stores_both_and_a_venue_code_adds_nothing(setup):
    import io

    from PIL import Image

    from api.qrimage import qr_png

    log, index, keyring, worker = setup
    venue = issue_token("venue", 10, keyring)
    codes = [np.asarray(Image.open(io.BytesIO(qr_png(text, scale=4))).convert("L"))
             for text in (person_token(keyring, 42), venue, person_token(keyring, 43))]
    frame = np.full((400, 1000), 255, np.uint8)
    for k, code in enumerate(codes):
        frame[20:20 + code.shape[0], 20 + 320 * k:20 + 320 * k + code.shape[1]] = code
    png = io.BytesIO()
    Image.fromarray(frame).save(png, "PNG")
    log.submit(encode_json(ScanEvent(10, 3, 1, T0, None, png.getvalue())), JSON_H)
    outcome = worker.run_once()
    assert _stored(index) == {(42, 10, T0), (43, 10, T0)}
    assert outcome.added == 2 and log.dead_letters == []


def test_producers_wait_for_durable_acknowledgement(setup):
    log, index, keyring, worker = setup
    stop = threading.Event()
    runner = threading.Thread(target=worker.run, args=(stop,), kwargs={"report_every_s": 60})
    runner.start()
    try:
        events = events_for(keyring, [(p, 7, T0 + p, 0) for p in range(1, 200)])
        futures = [log.submit(encode_json(e), JSON_H) for e in events]
        for f in futures:
            f.result(timeout=20)
        assert len(_stored(index)) == 199
    finally:
        stop.set()
        runner.join()


def test_ingest_command_reads_json_lines_and_packed_files(tmp_path, capsys):
    from api.cli import main

    data = tmp_path / "data"
    keyring = keyring_of(data)
    events = events_for(keyring, [(1, 10, T0, 0), (2, 10, T0 + 60, 0)])
    lines = tmp_path / "scans.jsonl"
    lines.write_bytes(b"\n".join(encode_json(e) for e in events) + b"\nnot json\n")
    assert main(["ingest", str(lines), "--data", str(data), "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["checkins_added"] == 2 and out["rejected"] == 1
    batch, keys = random_batch(keyring, 500, seed=3)
    packed = tmp_path / "scans.bin"
    packed.write_bytes(encode_packed(batch) * 2)
    assert main(["ingest", str(packed), "--data", str(data), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["events_in"] == 1000 and out["checkins_added"] == len(keys)
    with CheckinIndex.open(data / "index") as index:
        assert len(index) == 2 + len(keys)
    # a folder whose keys did not issue the tokens: refused, not a new key ring that
    # calls every scan forged
    elsewhere = tmp_path / "nope" / "deeper"
    assert main(["ingest", str(packed), "--data", str(elsewhere), "--json"]) == 2
    assert "holds no keys.json" in capsys.readouterr().err
    assert not (tmp_path / "nope").exists()


def test_ingest_command_names_the_lines_and_rows_it_refused(tmp_path, capsys):
    """A refused scan is named where its sender can find it: the file's line for JSON
    lines (blank lines counted), the batch and its rows for a packed file."""
    from api.cli import main

    data = tmp_path / "data"
    keyring = keyring_of(data)
    events = events_for(keyring, [(1, 10, T0, 0), (2, 10, T0 + 60, 0)])
    lines = tmp_path / "scans.jsonl"
    lines.write_bytes(encode_json(events[0]) + b"\n\n{\"venue\": 1}\n" + encode_json(events[1]))
    assert main(["ingest", str(lines), "--data", str(data)]) == 1
    out = capsys.readouterr().out
    assert "2 check-ins added" in out and "  line 3: " in out
    first, _ = random_batch(keyring, 10, seed=1)
    second, _ = random_batch(keyring, 10, seed=2)
    token = second.token.copy()
    for row in (2, 6):  # rows 3 and 7, as a person counts them
        token[row] = forged(token[row].decode()).encode()
    second = ScanBatch(second.venue, second.device, second.seq + 100, second.t_in,
                       second.t_out, token)
    packed = tmp_path / "scans.bin"
    packed.write_bytes(encode_packed(first) + encode_packed(second) + b"QRTP?")
    assert main(["ingest", str(packed), "--data", str(data), "--json"]) == 1
    refused = json.loads(capsys.readouterr().out)["rejected_records"]
    assert refused[0] == {"where": "batch 2", "rows": [3, 7], "reason": "token: bad_mac"}
    assert refused[1]["where"] == "batch 3" and "rows" in refused[1]
    assert refused[1]["rows"] is None and refused[1]["reason"].startswith("packed:")
    assert main(["ingest", str(packed), "--data", str(data)]) == 1
    assert "  batch 2, rows 3, 7: token: bad_mac" in capsys.readouterr().out


def _mixed_records(keyring, seed: int) -> list:
    """Packed batches of ~100 events (some rows forged, some times backwards), JSON
    events, and a few records that do not decode, in random order."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(40):
        kind = rng.integers(0, 10)
        if kind < 6:
            batch, _ = random_batch(keyring, int(rng.integers(1, 200)), seed=seed * 100 + k,
                                    persons=60, venues=5)
            token, t_out = batch.token.copy(), batch.t_out.copy()
            for row in rng.choice(len(batch), int(rng.integers(0, 4))):
                if rng.integers(0, 2):
                    token[row] = forged(token[row].decode()).encode()
                else:
                    t_out[row] = batch.t_in[row] - 1
            batch = ScanBatch(batch.venue, batch.device, batch.seq, batch.t_in, t_out, token)
            out.append((encode_packed(batch), PACKED_H))
        elif kind < 9:
            p, v = int(rng.integers(1, 60)), int(rng.integers(1, 5))
            out.append((encode_json(events_for(keyring, [(p, v, T0 + k, 0)])[0]), JSON_H))
        else:
            out.append((b"QRTP\x01" if rng.integers(0, 2) else b"{not json", PACKED_H))
    return out


@pytest.mark.parametrize("seed", range(4))
def test_a_poll_appended_in_parts_does_what_one_append_does(tmp_path, seed):
    """Parts of a few records each (prepared in a second thread) against the whole poll
    at once: the same index, counts, dead letters and acknowledgements."""
    keyring = keyring_of(tmp_path)
    records = _mixed_records(keyring, seed)
    seen = []
    for name, part_events in (("whole", 10**9), ("parts", 150)):
        log = EmbeddedLog()
        with CheckinIndex.open(tmp_path / name) as index:
            worker = Worker(log, index, keyring, poll_timeout_s=0, part_events=part_events)
            parts = worker._parts(_as_records(records))
            assert (len(parts) > 3) if name == "parts" else len(parts) == 1
            futures = [log.submit(value, headers) for value, headers in records]
            outcome = worker.run_once()
            assert all(f.result(timeout=5) >= 0 for f in futures)
            letters = sorted((r.offset, reason, r.value) for r, reason in log.dead_letters)
            seen.append((_stored(index), outcome.added, outcome.duplicates,
                         outcome.rejected, outcome.events, letters))
        log.close()
    assert seen[0] == seen[1]
    assert seen[0][3], "the input has refused rows"


def _as_records(records) -> list:
    from ingest.log import Record
    return [Record(value, headers) for value, headers in records]


def test_a_running_worker_deletes_check_ins_past_the_retention_period(tmp_path):
    """A Kafka worker's folder is a shard no server purges: the worker does, between
    batches, and keeps indexing."""
    keyring = keyring_of(tmp_path)
    now = int(time.time())
    with CheckinIndex.open(tmp_path / "index", retention_days=21) as index:
        index.append(np.array([1, 2, 3], np.uint64), np.full(3, 9, np.uint64),
                     np.array([now - 30 * DAY, now - 22 * DAY, now - 20 * DAY]),
                     np.zeros(3, np.int64))
        log = EmbeddedLog()
        worker = Worker(log, index, keyring, poll_timeout_s=0.01, purge_every_s=0.05)
        log.submit(encode_json(events_for(keyring, [(4, 9, now - 3600, 0)])[0]), JSON_H)
        worker.run(idle_exit_s=0.5)
        log.close()
        assert sorted(p for p, *_ in _stored(index)) == [3, 4]
        assert worker.metrics.purged == 2 and worker.metrics.checkins_added == 1
        with pytest.raises(ValueError, match="purge_every_s"):
            Worker(log, index, keyring, purge_every_s=0)


def test_times_in_the_future_or_past_the_retention_are_refused_as_the_api_does(setup):
    """A producer writing to the topic directly meets the API's time checks in the
    worker: every row ends as a check-in or a rejection with its reason."""
    log, index, keyring, worker = setup
    now = int(time.time())
    visits = [(1, 10, now - 3600, 0), (2, 10, now + 3600, 0), (3, 10, now - 22 * DAY, 0),
              (4, 10, now - 600, now + 3600), (5, 10, now + 60, 0)]
    log.submit(encode_packed(ScanBatch.of(events_for(keyring, visits))), PACKED_H)
    outcome = worker.run_once()
    assert sorted(p for p, *_ in _stored(index)) == [1, 5]  # 60 s ahead: clock skew
    assert outcome.rejected == {"time: check-in is in the future": 1,
                                "time: check-in is older than the retention period": 1,
                                "time: check-out is in the future": 1}
    assert [reason for _, reason in log.dead_letters] == [
        "time: check-in is in the future",
        "time: check-in is older than the retention period",
        "time: check-out is in the future"]
