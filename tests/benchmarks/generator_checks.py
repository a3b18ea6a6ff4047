"""Checks every frame generator of the benchmark must pass (benchmarks.camera_frames,
benchmarks.kiosk_frames): the same assertions, written once."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import cv2
import numpy as np
import zxingcpp


def assert_gray_frames_of_the_stated_size(frames: Sequence, n: int) -> None:
    """`n` frames, each a 2-D uint8 image of its stated size, 640x480 or 1280x720."""
    assert len(frames) == n
    for frame in frames:
        assert frame.image.dtype == np.uint8 and frame.image.ndim == 2
        width, height = frame.attrs["size"]
        assert frame.image.shape == (height, width)
        assert (width, height) in ((640, 480), (1280, 720))


def assert_code_tags_agree(frames: Sequence) -> None:
    """Each frame's codes are its texts, tagged no_code or two_codes by their count."""
    for frame in frames:
        codes = frame.attrs["codes"]
        assert len(codes) == len(frame.texts)
        assert ("no_code" in frame.tags) == (not codes)
        assert ("two_codes" in frame.tags) == (len(codes) == 2)


def assert_jpeg_bytes_are_the_image(frames: Sequence) -> None:
    """Some frames, not all, carry JPEG bytes, and those decode to exactly the image."""
    compressed = [frame for frame in frames if frame.jpeg is not None]
    assert compressed and len(compressed) < len(frames)
    for frame in compressed[:5]:
        decoded = cv2.imdecode(np.frombuffer(frame.jpeg, np.uint8), cv2.IMREAD_GRAYSCALE)
        assert np.array_equal(decoded, frame.image)


def assert_frames_depend_on_seed_and_index(generate: Callable[..., list], n: int) -> None:
    """Frame i of a seed is the same in a longer run, and another seed's differs."""
    first = generate(n, seed=11)
    longer = generate(n + 1, seed=11)
    other = generate(n, seed=12)
    for a, b in zip(first, longer, strict=False):
        assert np.array_equal(a.image, b.image) and a.texts == b.texts
    assert not any(np.array_equal(a.image, c.image) for a, c in zip(first, other, strict=True))


def zxing_defaults_read(frames: Sequence) -> tuple[int, int]:
    """(codes zxing-cpp's defaults read, codes in the frames), asserting that it reads no
    text that is not in its frame."""
    expected = found = 0
    for frame in frames:
        read = zxingcpp.read_barcodes(frame.image, formats=zxingcpp.BarcodeFormat.QRCode)
        texts = {code.text for code in read if code.valid}
        assert texts <= frame.texts
        expected += len(frame.texts)
        found += len(texts)
    return found, expected
