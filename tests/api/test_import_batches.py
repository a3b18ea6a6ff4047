"""`qrtrace import` gathers a file's rows for one append: growth, batches, line numbers."""

from __future__ import annotations

import io
import json

import numpy as np

from api.commands import import_
from ingest.runtime import index_path
from tracing import CheckinIndex, csvio


def _csv(rows: list[str]) -> bytes:
    return ("person,venue,check_in,check_out\n" + "\n".join(rows) + "\n").encode()


def test_collected_rows_keep_their_lines_across_chunks_and_growth():
    """Rows gathered from many small chunks, with blank and bad lines between them and
    columns that had to grow, keep their order and their file line numbers."""
    rows = []
    for i in range(300):
        rows.append(f"{i},{i % 7},{1_700_000_000 + i},")
        if i % 50 == 7:
            rows.append("")  # blank: not a row, but a line
        if i % 90 == 3:
            rows.append("x,1,2,")  # rejected by the parser
    chunks = csvio.read_checkins(io.BytesIO(_csv(rows)), chunk_bytes=256)
    batches = list(import_._collect(chunks, file_bytes=300))  # a far too small guess
    assert len(batches) == 1
    got = batches[0]
    person = got.batch()[0]
    assert person.tolist() == list(range(300))
    lines = [n for n, text in enumerate(["header", *rows], start=1)
             if text and not text.startswith("x")]
    assert [got.line(r) for r in range(got.n)] == lines[1:]
    assert got.rows == 300 + len([r for r in rows if r.startswith("x")])


def test_a_file_larger_than_a_batch_loads_in_several(tmp_path, monkeypatch, capsys):
    """Past MAX_BATCH rows the file loads in more than one append; a row the index
    refuses (a time past 2106) is reported with its own line, the rest load."""
    from api.cli import main

    monkeypatch.setattr(import_, "MAX_BATCH", 40)
    rows = [f"{i},{i % 5},{1_700_000_000 + 60 * i},{1_700_000_000 + 60 * i + 30}"
            for i in range(200)]
    rows[150] = f"150,1,{2**32 + 5},"
    source = tmp_path / "c.csv"
    source.write_bytes(_csv(rows))
    assert main(["import", "--data", str(tmp_path / "data"), str(source), "--json",
                 "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["rows"], summary["loaded"], summary["rejected"]) == (200, 199, 1)
    assert summary["rejected_rows"][0]["line"] == 152  # header, then row 0 on line 2
    with CheckinIndex.open(index_path(tmp_path / "data")) as index:
        person = index.checkins()[0]
    assert np.sort(person).tolist() == [i for i in range(200) if i != 150]
