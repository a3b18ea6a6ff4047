"""The filtered and rescaled copies that the rescue passes read, as Pillow makes them.

decoder.passes rescued codes with Pillow's `resize(BICUBIC)`, `GaussianBlur` and
`UnsharpMask`; these functions give the same pixels (tests/decoder/test_filters.py
compares them byte for byte) from numba kernels (decoder._filter_kernels), several times
faster and without the GIL. Each takes a 2-D uint8 array and returns a new one.
"""

from __future__ import annotations

import numpy as np

from decoder import _filter_kernels as kernels


def _gray(image: np.ndarray) -> np.ndarray:
    if image.ndim != 2 or image.dtype != np.uint8:
        raise ValueError(f"a 2-D uint8 array is needed, got {image.dtype} {image.shape}")
    if image.size == 0:
        raise ValueError(f"an empty image ({image.shape}) has nothing to filter")
    return np.ascontiguousarray(image)


def resize_bicubic(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """`image` at `width` x `height`: Pillow's `Image.resize((width, height), BICUBIC)`."""
    if width < 1 or height < 1:
        raise ValueError(f"cannot resize to {width}x{height}")
    return kernels.resize_bicubic(_gray(image), int(width), int(height))


def double_bicubic(image: np.ndarray) -> np.ndarray:
    """`image` twice as wide and high: Pillow's `Image.resize((2 w, 2 h), BICUBIC)`."""
    return resize_bicubic(image, 2 * image.shape[1], 2 * image.shape[0])


def gaussian_blur(image: np.ndarray, radius: float) -> np.ndarray:
    """Pillow's `ImageFilter.GaussianBlur(radius)`: three box blurs each way."""
    image = _gray(image)
    box = kernels.gaussian_box_radius(radius)
    if box == 0:
        return image.copy()
    whole = int(box)
    # Pillow's weights: the window's in single precision, truncated; the two pixels
    # beyond it share what is left of 2**24
    ww = int(np.float32(1 << 24) / (box * np.float32(2) + np.float32(1)))
    fw = ((1 << 24) - (2 * whole + 1) * ww) // 2
    return kernels.box_blur(image, whole, ww, fw, 3)


def unsharp_mask(image: np.ndarray, radius: float, percent: int, threshold: int) -> np.ndarray:
    """Pillow's `ImageFilter.UnsharpMask(radius, percent, threshold)`."""
    image = _gray(image)
    return kernels.unsharp(image, gaussian_blur(image, radius), percent, threshold)
