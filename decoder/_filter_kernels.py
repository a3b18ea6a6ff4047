"""Numba kernels of the rescue copies: a bicubic resize (the 2x copy), a Gaussian blur, an
unsharp mask, each giving pixel for pixel what Pillow gives for a mode "L" image.

The rescues (decoder.passes) were Pillow calls, and on cluttered frames the copies cost
more than zxing-cpp's reading of them: over 800 kiosk frames, 1.07 of the 2x rescue's
1.37 ms a frame went to `Image.resize` and the conversions around it, 0.24 of 0.28 ms to
`GaussianBlur`. The same arithmetic here (Pillow's fixed-point coefficients, its
rounding, its edge handling) gives the same bytes, so that zxing-cpp reads exactly what
it read before, in a fraction of the time, and without holding the GIL at any step
(Pillow holds it while arrays become images and images arrays).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

# Pillow's resampling keeps 22 fractional bits: 8 for the result, 2 for overshoot.
_PRECISION_BITS = 22
_BICUBIC_SUPPORT = 2.0


@njit(nogil=True, cache=True, inline="always")
def _bicubic(x):
    """Keys' cubic convolution with a = -0.5, as Pillow's BICUBIC filter."""
    a = -0.5
    x = abs(x)
    if x < 1.0:
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    if x < 2.0:
        return (((x - 5.0) * x + 8.0) * x - 4.0) * a
    return 0.0


@njit(nogil=True, cache=True)
def _resample_coefficients(in_size, out_size):
    """For each output pixel, the first input pixel it reads, how many, and their
    fixed-point weights: Pillow's `precompute_coeffs` and `normalize_coeffs_8bpc`."""
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = _BICUBIC_SUPPORT * filterscale
    ksize = math.ceil(support) * 2 + 1
    starts = np.empty(out_size, np.int64)
    counts = np.empty(out_size, np.int64)
    weights = np.zeros((out_size, ksize), np.int64)
    real = np.empty(ksize, np.float64)
    one = float(1 << _PRECISION_BITS)
    for xx in range(out_size):
        centre = (xx + 0.5) * scale
        first = max(int(centre - support + 0.5), 0)  # int() truncates, as C's cast
        count = min(int(centre + support + 0.5), in_size) - first
        total = 0.0
        for x in range(count):
            real[x] = _bicubic((x + first - centre + 0.5) / filterscale)
            total += real[x]
        for x in range(count):
            w = real[x] / total if total != 0.0 else real[x]
            weights[xx, x] = int(w * one - 0.5) if w < 0 else int(w * one + 0.5)
        starts[xx] = first
        counts[xx] = count
    return starts, counts, weights


@njit(nogil=True, cache=True)
def _resample_columns(image, out_height):
    """`image` resampled to `out_height` rows with Pillow's bicubic coefficients, into 8
    bits. Row by row, all columns at once: loops that LLVM vectorises (int32 holds the
    sums)."""
    h, w = image.shape
    starts, counts, weights = _resample_coefficients(h, out_height)
    result = np.empty((out_height, w), np.uint8)
    sums = np.empty(w, np.int32)
    for yy in range(out_height):
        sums[:] = np.int32(1 << (_PRECISION_BITS - 1))
        first = starts[yy]
        for y in range(counts[yy]):
            weight = np.int32(weights[yy, y])
            source = image[first + y]
            for x in range(w):
                sums[x] += np.int32(source[x]) * weight
        out = result[yy]
        for x in range(w):
            out[x] = np.uint8(min(np.int32(255), max(np.int32(0), sums[x] >> _PRECISION_BITS)))
    return result


@njit(nogil=True, cache=True)
def resize_bicubic(gray, width, height):
    """`gray` resized to `width` x `height` as Pillow's `Image.resize((width, height),
    Image.BICUBIC)`: a horizontal pass into 8 bits (here on the transposed image, so that
    it too runs down columns), then a vertical one; the vertical one first, as Pillow
    orders them, when the height shrinks by more than twice what the width does."""
    h, w = gray.shape
    if h - height > 0 and h - height > (w - width) * 2:
        tall = _resample_columns(gray, height)
        return np.ascontiguousarray(_resample_columns(np.ascontiguousarray(tall.T), width).T)
    wide = np.ascontiguousarray(_resample_columns(np.ascontiguousarray(gray.T), width).T)
    return _resample_columns(wide, height)


def gaussian_box_radius(radius: float, passes: int = 3) -> np.float32:
    """The box radius whose `passes` box blurs make a Gaussian blur of `radius`, in
    single precision as Pillow's `_gaussian_blur_radius` computes it."""
    f = np.float32
    sigma2 = f(radius) * f(radius) / f(passes)
    big_l = f(math.sqrt(12.0 * float(sigma2) + 1.0))
    small_l = f(math.floor((float(big_l) - 1.0) / 2.0))
    a = (f(2) * small_l + f(1)) * (small_l * (small_l + f(1)) - f(3) * sigma2)
    a /= f(6) * (sigma2 - (small_l + f(1)) * (small_l + f(1)))
    return small_l + a


@njit(nogil=True, cache=True)
def _box_blur_columns(image, radius, ww, fw, passes):
    """`passes` box blurs down every column of `image` (Pillow's ImagingLineBoxBlur8
    along each): a window of 2 radius + 1 pixels weighted `ww` and the two pixels beyond
    it `fw` (the radius's fraction), 24-bit fixed point, the first and last pixels
    repeated beyond the ends. Row by row, all columns at once, so that LLVM vectorises
    the loops. In place."""
    h, w = image.shape
    last = h - 1
    edge_a = min(radius + 1, h)
    # uint32 as in Pillow, whose sums stay under 2**32
    ww = np.uint32(ww)
    fw = np.uint32(fw)
    half = np.uint32(1 << 23)
    source = np.empty((h, w), np.uint8)
    acc = np.empty(w, np.uint32)
    for _ in range(passes):
        source[:] = image
        for x in range(w):
            acc[x] = np.uint32(source[0, x]) * np.uint32(radius + 1) \
                + np.uint32(source[last, x]) * np.uint32(radius - edge_a + 1)
        for y in range(edge_a - 1):
            row = source[y]
            for x in range(w):
                acc[x] += np.uint32(row[x])
        for y in range(h):
            add = source[min(y + radius, last)]
            far = source[min(y + radius + 1, last)]
            leave = source[max(y - radius - 1, 0)]
            out = image[y]
            for x in range(w):
                # numba widens uint32 arithmetic to 64 bits; each result is cut back
                # to uint32, as Pillow keeps it
                total = np.uint32(acc[x] - np.uint32(leave[x]) + np.uint32(add[x]))
                acc[x] = total
                bulk = np.uint32(total * ww + (np.uint32(leave[x]) + np.uint32(far[x])) * fw
                                 + half)
                out[x] = np.uint8(bulk >> np.uint32(24))


@njit(nogil=True, cache=True)
def box_blur(gray, radius, ww, fw, passes):
    """Pillow's ImagingBoxBlur of a 2-D uint8 image with the same radius both ways
    (`radius` its whole part, `ww` and `fw` its weights): `passes` blurs along the rows
    (here down the columns of the transposed image), then as many along the columns.
    A new array."""
    across = np.ascontiguousarray(gray.T)
    _box_blur_columns(across, radius, ww, fw, passes)
    out = np.ascontiguousarray(across.T)
    _box_blur_columns(out, radius, ww, fw, passes)
    return out


@njit(nogil=True, cache=True)
def unsharp(gray, blurred, percent, threshold):
    """Pillow's ImagingUnsharpMask after its blur: where a pixel differs from the
    blurred one by more than `threshold`, push it away by `percent` of the difference
    (C's division, which truncates towards zero). A new array."""
    h, w = gray.shape
    # what each difference (-255..255) adds to a pixel: a table, since a division in the
    # loop would keep it from vectorising
    push = np.zeros(511, np.int32)
    for diff in range(-255, 256):
        if abs(diff) > threshold:
            step = abs(diff) * percent // 100
            push[diff + 255] = step if diff > 0 else -step
    out = np.empty((h, w), np.uint8)
    for y in range(h):
        row = gray[y]
        soft = blurred[y]
        target = out[y]
        for x in range(w):
            value = np.int32(row[x]) + push[np.int32(row[x]) - np.int32(soft[x]) + 255]
            target[x] = np.uint8(min(np.int32(255), max(np.int32(0), value)))
    return out
