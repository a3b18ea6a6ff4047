"""The `qrtrace` console script's decoder commands, run as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

QRTRACE = Path(sys.executable).with_name("qrtrace")


def qrtrace(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(QRTRACE), *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=120)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    if not QRTRACE.exists():
        pytest.fail(f"the console script is not installed at {QRTRACE}")
    return tmp_path_factory.mktemp("cli")


def test_an_issued_code_decodes_back_to_its_token(workdir):
    issued = qrtrace("issue", "venue", "42", "--data", "data", "--png", "v.png", "--svg", "v.svg",
                     "--json", cwd=workdir)
    assert issued.returncode == 0, issued.stderr
    token = json.loads(issued.stdout)["token"]
    assert token.startswith("QT1V")
    assert (workdir / "v.svg").read_text().lstrip().startswith(("<?xml", "<svg"))

    decoded = qrtrace("decode", "v.png", "--json", cwd=workdir)
    assert decoded.returncode == 0, decoded.stderr
    [image] = json.loads(decoded.stdout)["images"]
    assert image == {"path": "v.png", "status": "ok", "texts": [token], "detail": ""}


def test_keys_are_created_private_and_reused(workdir):
    first = qrtrace("issue", "person", "5", "--data", "keys", cwd=workdir)
    second = qrtrace("issue", "person", "5", "--data", "keys", cwd=workdir)
    assert first.returncode == second.returncode == 0
    assert first.stdout == second.stdout  # same key, same token
    assert (workdir / "keys" / "keys.json").stat().st_mode & 0o077 == 0


@pytest.mark.parametrize(("args", "message"), [
    (("issue", "person", "abc"), "ID must be a whole number (digits 0-9), got 'abc'"),
    (("issue", "venue", str(2**64)), "ID must be in 0..2**64-1"),
])
def test_bad_arguments_get_one_line_naming_the_problem(workdir, args, message):
    result = qrtrace(*args, "--data", "data", cwd=workdir)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_decode_reports_unreadable_files_and_keeps_going(workdir):
    (workdir / "junk.png").write_bytes(b"not a png")
    qrtrace("issue", "person", "9", "--data", "data", "--png", "p.png", cwd=workdir)
    result = qrtrace("decode", "junk.png", "missing.png", "p.png", cwd=workdir)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith("junk.png\tunreadable_input\tnot a readable image")
    assert lines[1] == "missing.png\tunreadable_input\tcannot read file: No such file or directory"
    assert lines[2].startswith("p.png\tok\tQT1P")


def test_demo_reads_its_own_frames_and_refuses_the_forgery(workdir):
    result = qrtrace("demo", "--data", "demo", "--json", cwd=workdir)
    assert result.returncode == 0, result.stderr
    frames = json.loads(result.stdout)["frames"]
    identities = [(f["kind"], f["id"]) for f in frames]
    assert identities[:4] == [("person", 7), ("person", 8), ("person", 9), ("person", 10)]
    forged, empty = frames[4], frames[5]
    assert forged["frame_status"] == "ok" and forged["token"] == "bad_mac" and forged["id"] is None
    assert empty["frame_status"] == "no_code"
    assert len(list((workdir / "demo" / "demo").glob("frame-*.png"))) == 6


def test_issue_writes_the_format_its_flag_names_and_takes_ids_of_plain_digits(workdir):
    done = qrtrace("issue", "person", "12", "--data", "data", "--svg", "flag.png",
                   "--png", "flag.svg", cwd=workdir)
    assert done.returncode == 0, done.stderr
    assert (workdir / "flag.png").read_text().lstrip().startswith(("<?xml", "<svg"))
    assert (workdir / "flag.svg").read_bytes().startswith(b"\x89PNG")
    for ident in (" 12 ", "12_345", "\u0661\u0662\u0663", "9" * 5000):
        refused = qrtrace("issue", "person", ident, "--data", "data", cwd=workdir)
        assert refused.returncode == 2 and "ID must be" in refused.stderr, ident
        assert len(refused.stderr) < 200
    past = qrtrace("issue", "person", "12", "--data", "data", "--expires", "2020-01-01",
                   cwd=workdir)
    assert past.returncode == 2 and "is not after today" in past.stderr


def test_decode_names_what_is_not_an_image_file_and_escapes_what_codes_hold(workdir):
    import os

    os.mkfifo(workdir / "pipe.png")
    (workdir / "empty").mkdir()
    forged = "LINE1\nfake.png\tok\tINJECTED"
    from api.qrimage import qr_png

    (workdir / "forge.png").write_bytes(qr_png(forged))
    result = qrtrace("decode", "pipe.png", "forge.png", cwd=workdir)
    lines = result.stdout.splitlines()
    assert lines[0] == "pipe.png\tunreadable_input\tnot a regular file (a pipe, a device or " \
        "a socket)"
    assert lines[1] == "forge.png\tok\tLINE1\\nfake.png\\tok\\tINJECTED"
    assert len(lines) == 3  # and the summary: no forged row
    empty = qrtrace("decode", "empty", cwd=workdir)
    assert empty.returncode == 2 and "no image files" in empty.stderr
    # beside an image, an empty folder and a broken link get a line each, not silence;
    # a frame's several texts are separate columns
    (workdir / "two").mkdir()
    (workdir / "two" / "gone.png").symlink_to(workdir / "nowhere.png")
    from tests.decoder.test_frames import on_canvas, png_bytes, qr_image

    (workdir / "two" / "both.png").write_bytes(png_bytes(on_canvas(qr_image("A B"),
                                                                   qr_image("C"))))
    mixed = qrtrace("decode", "empty", "two", cwd=workdir)
    rows = sorted(line.split("\t") for line in mixed.stdout.splitlines()[:-1])
    assert rows == [["empty", "unreadable_input", "this folder holds no image file (.bmp, "
                     ".gif, .jpeg, .jpg, .png, .tif, .tiff, .webp)"],
                    ["two/both.png", "ok", "A B", "C"],
                    ["two/gone.png", "unreadable_input", "cannot read file: No such file or "
                     "directory"]], mixed.stdout
    assert mixed.returncode == 1


def test_issue_writes_a_private_qr_code_or_one_to_stdout(workdir):
    """A personal token's QR code is a credential: it was written 0644 while graphs were
    0600; and `--png -` made a file named '-' instead of writing to stdout."""
    import io

    from PIL import Image

    from decoder import decode_frames

    done = qrtrace("issue", "person", "77", "--data", "keys", "--png", "p77.png", cwd=workdir)
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    assert (workdir / "p77.png").stat().st_mode & 0o777 == 0o600
    piped = subprocess.run([str(QRTRACE), "issue", "person", "77", "--data", "keys", "--png",
                            "-"], cwd=workdir, capture_output=True, timeout=120)
    assert piped.returncode == 0 and not (workdir / "-").exists()
    assert piped.stderr.decode().strip() == token  # the picture alone on stdout
    picture = np.asarray(Image.open(io.BytesIO(piped.stdout)).convert("L"))
    assert decode_frames([picture])[0].texts == [token]
    both = qrtrace("issue", "person", "77", "--data", "keys", "--png", "-", "--svg", "-",
                   cwd=workdir)
    assert both.returncode == 2 and "only one of --png and --svg" in both.stderr
