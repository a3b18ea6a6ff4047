"""The held-out frame generator gives what it says: sizes, truth, JPEG, determinism."""

import pytest

from benchmarks.camera_frames import generate_camera_frames
from tests.benchmarks.generator_checks import (
    assert_code_tags_agree,
    assert_frames_depend_on_seed_and_index,
    assert_gray_frames_of_the_stated_size,
    assert_jpeg_bytes_are_the_image,
    zxing_defaults_read,
)


@pytest.fixture(scope="module")
def frames():
    return generate_camera_frames(40, seed=3)


def test_frames_are_grayscale_uint8_of_the_stated_size(frames):
    assert_gray_frames_of_the_stated_size(frames, 40)


def test_tags_agree_with_the_codes(frames):
    assert {len(frame.texts) for frame in frames} >= {0, 1}
    assert_code_tags_agree(frames)


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
