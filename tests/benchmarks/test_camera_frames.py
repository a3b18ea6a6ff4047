"""The held-out frame generator gives what it says: sizes, truth, JPEG, determinism."""

import numpy as np
import pytest

from benchmarks.camera_frames import generate_camera_frames
from tests.benchmarks.generator_checks import (
    assert_frames_depend_on_seed_and_index,
    assert_jpeg_bytes_are_the_image,
    zxing_defaults_read,
)


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
    assert_jpeg_bytes_are_the_image(frames)


def test_a_frame_depends_only_on_seed_and_index():
    assert_frames_depend_on_seed_and_index(generate_camera_frames, 3)


def test_negative_arguments_are_refused():
    with pytest.raises(ValueError):
        generate_camera_frames(-1)
    with pytest.raises(ValueError):
        generate_camera_frames(1, seed=-1)


def test_zxing_reads_most_codes_and_never_a_text_that_is_not_there(frames):
    found, expected = zxing_defaults_read(frames)
    assert 0.5 * expected <= found < expected  # readable, and not trivially so
