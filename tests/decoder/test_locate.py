"""The finder-pattern locator: codes found at any rotation and polarity, nothing found
where there is nothing, and the located reads never give a wrong text."""

from __future__ import annotations

import numpy as np
import pytest
import zxingcpp
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFilter

from decoder import FrameDecoder, FrameStatus
from decoder._locate_kernels import halve
from decoder.locate import crop_pixels, locate
from decoder.passes import LOCATE_FIRST
from tests.decoder.samples import needs_samples, sample_corpus, zxing_default_texts

TOKEN = "QT1PABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789$%*+-"  # the shape of a check-in token



def scene(angle: float, inverted: bool = False, module: int = 4, seed: int = 0,
          shape: tuple[int, int] = (480, 640)) -> tuple[np.ndarray, tuple[float, float]]:
    """A token's code turned by `angle` degrees on a textured background, and where
    its centre is."""
    code = np.asarray(zxingcpp.create_barcode(TOKEN, zxingcpp.BarcodeFormat.QRCode,
                                              ec_level="M").to_image(scale=module))
    if inverted:
        code = 255 - code  # a phone screen in dark mode
    turned = np.asarray(Image.fromarray(code).rotate(angle, Image.BILINEAR, expand=True,
                                                     fillcolor=int(code[0, 0])))
    rng = np.random.default_rng(seed)
    height, width = shape
    frame = rng.normal(128, 30, (height // 8 + 1, width // 8 + 1)).clip(0, 255)
    frame = np.asarray(Image.fromarray(frame.astype(np.uint8)).resize((width, height)))
    frame = frame.copy()
    h, w = turned.shape
    y, x = int(rng.integers(0, height - h)), int(rng.integers(0, width - w))
    frame[y:y + h, x:x + w] = turned
    return frame, (x + w / 2, y + h / 2)


def contains(box: tuple[int, int, int, int], point: tuple[float, float]) -> bool:
    x0, y0, x1, y1 = box
    return x0 <= point[0] < x1 and y0 <= point[1] < y1


@pytest.mark.parametrize("inverted", [False, True], ids=["printed", "screen"])
@pytest.mark.parametrize("angle", range(0, 360, 30))
def test_a_code_is_located_and_read_from_its_crop_at_any_rotation(angle, inverted):
    frame, centre = scene(angle, inverted, seed=angle)
    located = locate(frame)
    assert located.codes, "no code located"
    assert contains(located.codes[0].box, centre)  # the best-fitting triple is the code
    assert located.codes[0].inverted is inverted
    with FrameDecoder(workers=1, cascade=LOCATE_FIRST) as decoder:
        [result] = decoder.decode([frame])
    assert result.texts == [TOKEN]
    assert result.stage == 0  # read from the crop, not by a whole-frame pass


@pytest.mark.parametrize("module", [4, 6, 12])
def test_codes_of_any_size_are_located_with_their_module_size(module):
    frame, centre = scene(20, module=module, shape=(720, 1280))
    found = [region for region in locate(frame).codes if contains(region.box, centre)]
    assert found, "no region holds the code"
    smallest = min(found, key=lambda r: (r.box[2] - r.box[0]) * (r.box[3] - r.box[1]))
    assert smallest.module == pytest.approx(module, rel=0.35)


@pytest.mark.parametrize("module", [2, 3])
def test_small_codes_in_an_hd_frame_are_read(module):
    frame, _ = scene(20, module=module, shape=(720, 1280))
    with FrameDecoder(workers=1) as decoder:
        [result] = decoder.decode([frame])
    assert result.texts == [TOKEN]


def test_two_codes_give_two_regions():
    left, left_centre = scene(10, shape=(480, 320), seed=1)
    right, right_centre = scene(300, inverted=True, shape=(480, 320), seed=2)
    frame = np.hstack([left, right])
    regions = locate(frame).codes
    assert len(regions) == 2
    right_centre = (right_centre[0] + 320, right_centre[1])
    assert {contains(r.box, left_centre) for r in regions} == {True, False}
    assert {contains(r.box, right_centre) for r in regions} == {True, False}


@pytest.mark.parametrize("kind", ["flat", "noise", "gradient", "stripes", "checkerboard"])
def test_frames_without_a_code_give_no_code_region(kind):
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:480, 0:640]
    frame = {
        "flat": np.full((480, 640), 128.0),
        "noise": rng.normal(128, 40, (480, 640)),
        "gradient": xx / 640 * 255,
        "stripes": np.where((xx // 6) % 2 == 0, 30, 220),
        "checkerboard": np.where(((xx // 9) + (yy // 9)) % 2 == 0, 30, 220),
    }[kind]
    frame = frame.clip(0, 255).astype(np.uint8)
    if kind != "noise":  # strong pixel noise makes tiny 1:1:3:1:1 runs by chance
        assert locate(frame).codes == []
    with FrameDecoder(workers=1) as decoder:
        [result] = decoder.decode([frame])
    assert result.status is FrameStatus.NO_CODE and result.texts == []


def test_a_code_below_hundreds_of_finder_like_marks_is_located_and_read():
    # Print, logos or a patterned cloth above the code: each mark is a finder pattern
    # of its own. Those found first must not crowd out the code's patterns further down.
    mark = np.full((7, 7), 0, np.uint8)
    mark[1:6, 1:6] = 255
    mark[2:5, 2:5] = 0
    mark = np.kron(mark, np.ones((2, 2), np.uint8))
    frame = np.full((720, 1280), 200, np.uint8)
    for y in range(10, 150, 24):
        for x in range(10, 1260, 24):
            frame[y:y + 14, x:x + 14] = mark
    code = np.asarray(zxingcpp.create_barcode(TOKEN, zxingcpp.BarcodeFormat.QRCode,
                                              ec_level="M").to_image(scale=5))
    frame[400:400 + code.shape[0], 500:500 + code.shape[1]] = code
    centre = (500 + code.shape[1] / 2, 400 + code.shape[0] / 2)
    located = locate(frame)
    assert any(contains(region.box, centre) for region in located.codes)
    with FrameDecoder(workers=1) as decoder:
        [result] = decoder.decode([frame])
    assert result.texts == [TOKEN]


def print_faint(frame: np.ndarray, rng: np.random.Generator, *, ink: float, paper: float,
                module: int, angle: float, noise: float) -> np.ndarray:
    """`frame` (float32, 480x640) with a token printed faintly on it (ink and paper grey
    levels, `module` pixels a module) and turned `angle` degrees, at a random place,
    under sensor noise of `noise` grey levels."""
    code = np.asarray(zxingcpp.create_barcode(TOKEN, zxingcpp.BarcodeFormat.QRCode,
                                              ec_level="M").to_image(scale=module))
    code = (ink + (paper - ink) * (code / 255.0)).astype(np.float32)
    turned = np.asarray(Image.fromarray(code, mode="F").rotate(
        angle, Image.BILINEAR, expand=True, fillcolor=paper))
    h, w = turned.shape
    y, x = int(rng.integers(0, 480 - h)), int(rng.integers(0, 640 - w))
    frame[y:y + h, x:x + w] = turned
    frame += rng.normal(0, noise, frame.shape)
    return frame.clip(0, 255).astype(np.uint8)


def faint_scene(seed: int) -> np.ndarray:
    """A token printed faintly (ink 19 grey levels under the paper: low-contrast print, a
    dim corner) and turned 15 degrees, on a background of strong contrast, with a little
    sensor noise."""
    rng = np.random.default_rng(seed)
    frame = rng.uniform(60, 200, (480 // 16 + 1, 640 // 16 + 1)).astype(np.float32)
    frame = np.asarray(Image.fromarray(frame, mode="F").resize((640, 480))).copy()
    return print_faint(frame, rng, ink=126, paper=145, module=6, angle=15, noise=1.5)


def noisy_scene(seed: int, noise: float = 8.0) -> np.ndarray:
    """A token printed large and faint (modules of 7 pixels, ink 25 grey levels under
    the paper) and turned 12 degrees, under sensor noise of `noise` grey levels."""
    frame = np.full((480, 640), 125, np.float32)
    return print_faint(frame, np.random.default_rng(seed), ink=100, paper=125, module=7,
                       angle=12, noise=noise)


def _assert_located_and_read_as_zxing_defaults_read(frame: np.ndarray) -> None:
    assert zxing_default_texts(frame) == {TOKEN}
    assert locate(frame).codes, "no code located"
    with FrameDecoder(workers=1) as decoder:
        [result] = decoder.decode([frame])
    assert result.texts == [TOKEN]


@pytest.mark.parametrize("seed", range(6))
def test_a_faint_code_is_located_and_read_as_zxing_defaults_read_it(seed):
    # A finder's rings must stand out from its dark parts by 20 grey levels where the
    # neighbourhood has that much contrast, but by a share of it where it has less: held
    # to 20 levels, the scan located the code in one of these six frames, and three were
    # read (by the robust pass); on a third frame generator's low-contrast prints, 173
    # codes against zxing-cpp's defaults' 186, the rest mostly no_code.
    _assert_located_and_read_as_zxing_defaults_read(faint_scene(seed))


@pytest.mark.parametrize("seed", range(4))
def test_a_large_faint_code_under_noise_is_located_and_read_as_zxing_defaults_read_it(seed):
    # At full size the noise breaks the code's runs into pieces of a few pixels: no scan
    # found a finder pattern and the frame was no_code, where zxing-cpp's defaults read
    # it. Halved, the noise is half as strong, and the half-size scan finds the code.
    _assert_located_and_read_as_zxing_defaults_read(noisy_scene(seed))


@pytest.mark.parametrize("shape", [(42, 42), (43, 85), (83, 42), (480, 640), (721, 1281)])
def test_an_image_halved_holds_the_rounded_means_of_its_2x2_boxes(shape):
    # What the half-size scan and the scan of frames over SCAN_MAX_SIDE look at; an odd
    # last row or column is left out.
    gray = np.random.default_rng(sum(shape)).integers(0, 256, shape, dtype=np.uint8)
    h, w = shape[0] // 2 * 2, shape[1] // 2 * 2
    boxes = gray[:h, :w].astype(np.int64).reshape(h // 2, 2, w // 2, 2).sum(axis=(1, 3))
    np.testing.assert_array_equal(halve(gray), ((boxes + 2) // 4).astype(np.uint8))


@pytest.mark.parametrize(("corner", "sigma"),
                         [("top_left", 2.5), ("top_right", 2.5), ("bottom_left", 2.0)])
def test_a_second_code_with_a_blurred_finder_is_read_next_to_a_sharp_one(corner, sigma):
    # The pattern is blurred until the scan misses it, so the second code is no triple;
    # the crops around the two patterns left over must read it.
    other = "QT1PZYXWVUTSRQPONMLKJIHGFEDCBA9876543210-+*%$"
    first, second = (np.asarray(zxingcpp.create_barcode(
        text, zxingcpp.BarcodeFormat.QRCode, ec_level="M").to_image(scale=4))
        for text in (TOKEN, other))
    frame = np.full((480, 640), 190, np.uint8)
    frame[40:40 + first.shape[0], 30:30 + first.shape[1]] = first
    y, x = 200, 330
    frame[y:y + second.shape[0], x:x + second.shape[1]] = second
    size = 7 * 4 + 8  # the finder pattern and a module around it
    near, far = 12, second.shape[0] - 12 - size
    top, left = {"top_left": (near, near), "top_right": (near, far),
                 "bottom_left": (far, near)}[corner]
    patch = frame[y + top:y + top + size, x + left:x + left + size]
    patch[:] = np.asarray(Image.fromarray(patch).filter(ImageFilter.GaussianBlur(sigma)))
    assert len(locate(frame).codes) == 1
    with FrameDecoder(workers=1) as decoder:
        [result] = decoder.decode([frame])
    assert sorted(result.texts) == sorted([TOKEN, other])


def test_locate_refuses_what_is_not_a_grey_image():
    with pytest.raises(ValueError, match="2-D uint8"):
        locate(np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(ValueError, match="2-D uint8"):
        locate(np.zeros((100, 100), np.float32))


@settings(max_examples=300, deadline=None)
@given(st.integers(21, 300), st.integers(21, 300), st.data(), st.booleans(),
       st.integers(1, 9), st.sampled_from(["noise", "binary", "bright"]))
def test_a_crop_is_what_numpy_and_pillow_make_of_it(height, width, data, inverted, shrink,
                                                    kind):
    rng = np.random.default_rng(height * 1000 + width)
    if kind == "noise":
        gray = rng.integers(0, 256, (height, width), dtype=np.uint8)
    elif kind == "binary":
        gray = np.where(rng.random((height, width)) < 0.5, 0, 255).astype(np.uint8)
    else:  # sums near the top of the range, where rounding goes wrong first
        gray = rng.integers(240, 256, (height, width), dtype=np.uint8)
    x0 = data.draw(st.integers(0, width - 1))
    x1 = data.draw(st.integers(x0 + 1, width))
    y0 = data.draw(st.integers(0, height - 1))
    y1 = data.draw(st.integers(y0 + 1, height))
    expected = gray[y0:y1, x0:x1]
    expected = 255 - expected if inverted else expected
    if shrink > 1:
        expected = np.asarray(Image.fromarray(np.ascontiguousarray(expected)).reduce(shrink))
    crop = crop_pixels(gray, (x0, y0, x1, y1), inverted, shrink)
    assert crop.flags.c_contiguous
    np.testing.assert_array_equal(crop, expected)


def test_crop_pixels_refuses_a_box_outside_the_image():
    gray = np.zeros((50, 60), np.uint8)
    for box in [(0, 0, 61, 10), (-1, 0, 10, 10), (5, 5, 5, 10)]:
        with pytest.raises(ValueError, match="cannot crop"):
            crop_pixels(gray, box, False)


@needs_samples
@pytest.mark.parametrize("turns", [1, 2, 3], ids=["90", "180", "270"])
def test_turned_sample_photos_read_as_well_as_zxing_defaults_and_never_wrongly(turns):
    corpus = sample_corpus()
    photos = [np.ascontiguousarray(np.rot90(np.asarray(Image.open(p).convert("L")), turns))
              for p, _ in corpus]
    with FrameDecoder(cascade=LOCATE_FIRST) as decoder:
        results = decoder.decode(photos)
    ours = baseline = 0
    for (image, expected), pixels, result in zip(corpus, photos, results, strict=True):
        reference = zxing_default_texts(pixels)
        ours += expected in result.texts
        baseline += expected in reference
        wrong = set(result.texts) - {expected} - reference
        assert not wrong, f"{image.name}: wrong text {wrong}"
    assert ours >= baseline, f"read {ours} of {len(corpus)}, zxing-cpp defaults read {baseline}"


@settings(max_examples=25, deadline=None)
@given(angle=st.floats(0, 360), seed=st.integers(0, 2**16), cut=st.floats(0.0, 0.6),
       blur=st.floats(0.0, 2.5))
def test_damaged_or_cut_codes_never_read_as_another_text(angle, seed, cut, blur):
    frame, _ = scene(angle, seed=seed)
    frame = frame.copy()
    width = frame.shape[1]
    frame[:, int(width * (1 - cut)):] = 128  # part of the frame, maybe of the code, lost
    if blur:
        frame = np.asarray(Image.fromarray(frame).filter(ImageFilter.GaussianBlur(blur)))
    with FrameDecoder(workers=1) as decoder:
        [result] = decoder.decode([frame])
    assert result.texts in ([], [TOKEN])


def first_fit_clusters(hits: np.ndarray) -> list[list[float]]:
    """The clustering rule, plainly: each hit joins the first cluster made that it fits
    (same polarity, sizes within 2x, centre within 0.3 of the larger size plus a pixel),
    moving its centre and size to the mean of its hits; else it starts a cluster."""
    clusters: list[list[float]] = []
    for x, y, width, height, polarity in hits.tolist():
        size = (width + height) / 2.0
        for c in clusters:
            if c[3] != polarity or size > 2 * c[2] or c[2] > 2 * size:
                continue
            reach = 0.3 * max(c[2], size) + 1.0
            if (c[0] - x) ** 2 + (c[1] - y) ** 2 <= reach * reach:
                n = c[4]
                c[0], c[1] = (c[0] * n + x) / (n + 1), (c[1] * n + y) / (n + 1)
                c[2], c[4] = (c[2] * n + size) / (n + 1), n + 1
                break
        else:
            clusters.append([float(x), float(y), size, float(polarity), 1.0])
    return clusters


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 1500), st.sampled_from([8, 40, 200]))
def test_hits_cluster_by_the_first_fit_rule_however_many(seed: int, n: int,
                                                        spread: int) -> None:
    """The kernel files clusters in a grid so that clutter's thousands of hits cost no
    more than a few; the clusters are still exactly the plain rule's, in its order:
    hits scattered over a frame, crowded into a few patterns, of sizes from 7 pixels to
    a large code's."""
    from decoder import _locate_kernels as kernels

    rng = np.random.default_rng(seed)
    centres = rng.integers(0, [1280, 720], (max(1, n // spread), 2))
    which = rng.integers(0, len(centres), n)
    hits = np.empty((n, 5), np.int64)
    hits[:, :2] = np.clip(centres[which] + rng.integers(-6, 7, (n, 2)), 0, [1279, 719])
    size = rng.choice([7, 14, 30, 90, 300], n)
    hits[:, 2] = size + rng.integers(0, 5, n)
    hits[:, 3] = size + rng.integers(0, 5, n)
    hits[:, 4] = rng.integers(0, 2, n)
    clusters = np.empty((4096, 5), np.float64)
    k = kernels.cluster_hits(hits, n, clusters)
    assert clusters[:k].tolist() == first_fit_clusters(hits)
