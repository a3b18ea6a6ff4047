"""The frame generator gives what it says: sizes, dtype, truth, determinism."""

import numpy as np
import pytest
import zxingcpp

from benchmarks.synth_frames import TOKEN_ALPHABET, TOKEN_LENGTH, generate_frames

SMALL = ((320, 240),)


@pytest.fixture(scope="module")
def frames():
    return generate_frames(40, seed=3)


def test_frames_have_the_requested_sizes_and_are_grayscale_uint8(frames):
    assert len(frames) == 40
    for frame in frames:
        assert frame.image.dtype == np.uint8
        assert frame.image.ndim == 2
        width, height = frame.attrs["size"]
        assert frame.image.shape == (height, width)
        assert (width, height) in ((640, 480), (1280, 720))


def test_truth_matches_the_codes_drawn(frames):
    counts = {len(frame.texts) for frame in frames}
    assert counts <= {0, 1, 2}
    assert 0 in counts and 1 in counts
    for frame in frames:
        assert len(frame.texts) == len(frame.attrs["codes"])
        assert ("no_code" in frame.tags) == (not frame.texts)
        for text in frame.texts:
            assert len(text) == TOKEN_LENGTH
            assert text.startswith("QT1")
            assert set(text) <= set(TOKEN_ALPHABET)


def test_jpeg_bytes_decode_to_the_image(frames):
    compressed = [frame for frame in frames if frame.jpeg is not None]
    assert compressed
    for frame in compressed[:5]:
        assert frame.jpeg[:2] == b"\xff\xd8"
        assert 30 <= frame.attrs["jpeg_quality"] <= 80


def test_same_seed_same_frames_other_seed_other_frames():
    first = generate_frames(4, seed=11, sizes=SMALL)
    again = generate_frames(6, seed=11, sizes=SMALL)
    other = generate_frames(4, seed=12, sizes=SMALL)
    for a, b in zip(first, again, strict=False):
        assert np.array_equal(a.image, b.image)
        assert a.texts == b.texts
    assert not any(np.array_equal(a.image, c.image) for a, c in zip(first, other, strict=True))


def test_no_code_fraction_of_one_gives_frames_without_codes():
    frames = generate_frames(5, seed=1, sizes=SMALL, no_code_fraction=1.0)
    assert all(not frame.texts and not frame.attrs["codes"] for frame in frames)


def test_most_codes_are_readable_and_nothing_else_is(frames):
    expected = found = 0
    for frame in frames:
        texts = {
            code.text
            for code in zxingcpp.read_barcodes(frame.image, formats=zxingcpp.BarcodeFormat.QRCode)
        }
        assert texts <= frame.texts
        expected += len(frame.texts)
        found += len(texts)
    assert found >= 0.6 * expected
