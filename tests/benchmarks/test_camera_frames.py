"""The held-out frame generator gives what it says: sizes, truth, JPEG, determinism."""

import cv2
import numpy as np
import pytest
import zxingcpp

from benchmarks.camera_frames import generate_camera_frames


@pytest.fixture(scope="module")
def frames():
    return generate_camera_frames(40, seed=3)


def test_frames_are_grayscale_uint8_of_the_stated_size(frames):
    assert len(frames) == 40
    for frame in frames:
        assert frame.image.dtype == np.uint8 and frame.image.ndim == 2
        width, height = frame.attrs["size"]
        assert frame.image.shape == (height, width)
        assert (width, height) in ((640, 480), (1280, 720))


def test_tags_agree_with_the_codes(frames):
    assert {len(frame.texts) for frame in frames} >= {0, 1}
    for frame in frames:
        count = len(frame.texts)
        assert len(frame.attrs["codes"]) == count
        assert ("no_code" in frame.tags) == (count == 0)
        assert ("two_codes" in frame.tags) == (count == 2)


def test_jpeg_bytes_decode_to_exactly_the_image(frames):
    compressed = [frame for frame in frames if frame.jpeg is not None]
    assert compressed and len(compressed) < len(frames)
    for frame in compressed[:5]:
        decoded = cv2.imdecode(np.frombuffer(frame.jpeg, np.uint8), cv2.IMREAD_GRAYSCALE)
        assert np.array_equal(decoded, frame.image)


def test_a_frame_depends_only_on_seed_and_index():
    first = generate_camera_frames(3, seed=11)
    longer = generate_camera_frames(5, seed=11)
    other = generate_camera_frames(3, seed=12)
    for a, b in zip(first, longer, strict=False):
        assert np.array_equal(a.image, b.image) and a.texts == b.texts
    assert not any(np.array_equal(a.image, c.image) for a, c in zip(first, other, strict=True))


def test_negative_arguments_are_refused():
    with pytest.raises(ValueError):
        generate_camera_frames(-1)
    with pytest.raises(ValueError):
        generate_camera_frames(1, seed=-1)


def test_zxing_reads_most_codes_and_never_a_text_that_is_not_there(frames):
    expected = found = 0
    for frame in frames:
        read = zxingcpp.read_barcodes(frame.image, formats=zxingcpp.BarcodeFormat.QRCode)
        texts = {code.text for code in read if code.valid}
        assert texts <= frame.texts
        expected += len(frame.texts)
        found += len(texts)
    assert 0.5 * expected <= found < expected  # readable, and not trivially so
