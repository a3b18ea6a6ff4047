"""The rescue copies are Pillow's, pixel for pixel: zxing-cpp reads the same images as
before the copies were made by numba kernels (decoder.filters)."""

from __future__ import annotations

import numpy as np
import pytest
import zxingcpp
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFilter

from decoder import filters, passes


def pillow_double(image: np.ndarray) -> np.ndarray:
    height, width = image.shape
    return np.asarray(Image.fromarray(image).resize((2 * width, 2 * height), Image.BICUBIC))


def pillow_blur(image: np.ndarray, radius: float) -> np.ndarray:
    return np.asarray(Image.fromarray(image).filter(ImageFilter.GaussianBlur(radius)))


def pillow_unsharp(image: np.ndarray, radius: float, percent: int, threshold: int) -> np.ndarray:
    return np.asarray(Image.fromarray(image).filter(
        ImageFilter.UnsharpMask(radius, percent, threshold)))


def pillow_reduce(image: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(image).reduce(2))


@st.composite
def images(draw: st.DrawFn) -> np.ndarray:
    """Grey images from 1x1 up, of noise (every edge a clip), smooth ramps (the
    fixed-point rounding) or flat patches with hard steps (overshoot past 0 and 255)."""
    height = draw(st.integers(1, 90))
    width = draw(st.integers(1, 90))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kind = draw(st.sampled_from(["noise", "ramp", "steps"]))
    if kind == "noise":
        return rng.integers(0, 256, (height, width), dtype=np.uint8)
    if kind == "ramp":
        y, x = np.mgrid[:height, :width]
        slope = rng.uniform(-9, 9, 2)
        return np.clip(128 + slope[0] * y + slope[1] * x, 0, 255).astype(np.uint8)
    cell = draw(st.integers(1, 6))
    cells = rng.random((height // cell + 1, width // cell + 1)) < 0.5
    return np.where(cells, 0, 255).astype(np.uint8).repeat(cell, 0).repeat(cell, 1)[
        :height, :width].copy()


def assert_same(ours: np.ndarray, theirs: np.ndarray) -> None:
    assert ours.dtype == np.uint8
    assert ours.shape == theirs.shape
    differ = np.argwhere(ours != theirs)
    assert len(differ) == 0, f"{len(differ)} pixels differ, the first at {differ[0]}"


@settings(max_examples=150, deadline=None)
@given(images())
def test_the_2x_copy_is_pillows_bicubic_resize(image: np.ndarray) -> None:
    assert_same(filters.double_bicubic(image), pillow_double(image))


@settings(max_examples=150, deadline=None)
@given(images(), st.integers(1, 200), st.integers(1, 200))
def test_a_resized_copy_is_pillows_bicubic_resize(image: np.ndarray, width: int,
                                                  height: int) -> None:
    """Up or down, to any size."""
    assert_same(filters.resize_bicubic(image, width, height),
                np.asarray(Image.fromarray(image).resize((width, height), Image.BICUBIC)))


@settings(max_examples=150, deadline=None)
@given(images(), st.sampled_from([0.5, 1, 1.5, 2, 3, 7]))
def test_the_blurred_copy_is_pillows_gaussian_blur(image: np.ndarray, radius: float) -> None:
    assert_same(filters.gaussian_blur(image, radius), pillow_blur(image, radius))


@settings(max_examples=150, deadline=None)
@given(images(), st.sampled_from([1, 2, 3]), st.integers(50, 300), st.integers(0, 10))
def test_the_sharpened_copy_is_pillows_unsharp_mask(image: np.ndarray, radius: float,
                                                     percent: int, threshold: int) -> None:
    assert_same(filters.unsharp_mask(image, radius, percent, threshold),
                pillow_unsharp(image, radius, percent, threshold))


def test_the_rescue_copies_of_a_blurred_code_are_pillows() -> None:
    """A token's symbol, blurred and shrunk as a far camera sees it, and a strided view
    of it (a crop of a frame): every rescue copy is Pillow's."""
    code = zxingcpp.create_barcode("QRT1P00000000000000000000000000000000000000",
                                   zxingcpp.BarcodeFormat.QRCode, ec_level="M")
    symbol = np.asarray(code.to_image(scale=3, add_quiet_zones=True))
    frame = np.full((301, 403), 180, np.uint8)
    frame[40:40 + symbol.shape[0], 60:60 + symbol.shape[1]] = symbol
    frame = pillow_blur(frame, 1.5)
    for image in (frame, frame[7:250:1, 11:391]):
        assert_same(passes.double(image), pillow_double(np.ascontiguousarray(image)))
        assert_same(passes.smooth(image), pillow_blur(np.ascontiguousarray(image), 1))
        assert_same(passes.sharpen(image), pillow_unsharp(np.ascontiguousarray(image), 2, 160, 2))
        assert_same(passes.half(image), pillow_reduce(np.ascontiguousarray(image)))


def test_a_copy_of_something_other_than_a_grey_image_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="2-D uint8"):
        filters.double_bicubic(np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="float64"):
        filters.gaussian_blur(np.zeros((4, 4)), 1)
    with pytest.raises(ValueError, match="empty"):
        filters.unsharp_mask(np.zeros((0, 4), np.uint8), 2, 160, 2)
