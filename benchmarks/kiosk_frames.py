"""Kiosk frames: check-in codes as a venue's camera sees them, a third scene model.

The third generator of the frame benchmark (after benchmarks.synth_frames and
benchmarks.camera_frames), written apart from the decoder and from the other two. It
began as a scratch generator whose frames showed codes that zxing-cpp reads and
decode_frames misses, on low-contrast paper print above all; it is kept so that those
figures can be reproduced and the decoder checked on scenes it was not tuned on (the
locator's edge was chosen on seeds 1-4 and low-contrast seeds 101-102: others are). It
models a check-in kiosk at a venue's door: a cluttered lobby, a visitor's phone held up to
the camera or the venue's poster, sticker or table tent, under the venue's light. Each
frame is a function of ``(seed, index)`` only. The scene model, in the order a frame is
made, in linear light (white paper under the room's light reflects 1):

1. Background: a gradient with low-frequency texture (labelled wall, desk, counter or
   lobby in the attrs; the label does not change the drawing), sometimes tiles, and 2-8
   items of clutter: lines of text, checkerboards, other barcodes (Code 128, EAN-13,
   Data Matrix, Aztec, PDF417, Code 39), faces drawn as shapes, posters with print,
   rectangles, rings, stripes. Sometimes a bright window with mullions behind the scene
   (backlight, 4-12 times white).
2. Carriers (benchmarks.kiosk_carriers): 0, 1 or 2 check-in codes (version 2-4, EC level
   M), each on a phone (45%), a poster, a sticker or a table tent, seen by a pinhole
   camera (field of view 55-75 degrees) in a 3-D pose (any roll, tilt up to 50 degrees,
   modules of 1.5-12 px) and ray cast, flat or bent. Phones: emissive screens, dark mode
   (inverted), moire, bezel, hand and fingers. Paper: normal, faded or low-contrast print.
   Either: sometimes a fingertip over a few modules.
3. Light: sometimes a shadow (a straight edge or a blob) on everything that reflects, while
   screens emit their own light; specular glare, a stripe on a screen's glass or a blob on
   laminated paper; PWM banding on screens.
4. Camera: auto exposure on the mean, darker in low light; veiling glare with backlight;
   vignetting; a defocus disk or slight lens blur; a motion streak; rolling-shutter skew;
   shot and read noise (more in low light); the sRGB curve; sometimes sharpening; 8 bits;
   JPEG at quality 30-90 for 70% of frames.

``focus="low_contrast"`` makes every code paper with low-contrast print (ink at 45-65% of
the paper's reflectance), to measure that weakness on its own. Frames carry tags for the
benchmark's breakdown: the code count (``no_code``, ``one_code``, ``two_codes``), per code
``screen`` or ``paper``, ``small`` (side under 100 px), ``inverted``, ``steep`` (tilt over
25 degrees), ``moire``, ``occluded``, ``bent``, ``glare``, ``pwm_banding``,
``thin_quiet_zone``, ``faded``, ``low_contrast``; per frame ``shadow``, ``dim``,
``backlight``, ``defocus``, ``motion_blur``, ``rolling_shutter``, ``noisy`` (noise at mid
grey of 4.5 8-bit steps or more), ``sharpened``, ``jpeg``, ``jpeg_low`` (quality under 45).
"""

from __future__ import annotations

import math
import string
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np
import zxingcpp

from benchmarks.camera_frames import CameraFrame
from benchmarks.kiosk_carriers import TOKEN_ALPHABET, add_codes, text_lines

__all__ = ["FOCUSES", "generate_kiosk_frames", "kiosk_frame"]

FRAME_SIZES = ((640, 480), (1280, 720))
FOCUSES = ("low_contrast",)
SMALL_CODE_PX = 100  # a code whose side is shorter is tagged "small"
STEEP_TILT_DEG = 25.0
THIN_QUIET_ZONE_MODULES = 4
LOW_JPEG_QUALITY = 45
NOISY_SIGMA_8BIT = 4.5  # noise at mid grey, in 8-bit steps, from which a frame is "noisy"
MID_GREY = 0.18  # linear level that auto exposure aims the frame's mean at

# Two zeros in seven: of the half of the frames that draw a defocus, 5/7 are defocused.
DEFOCUS_RADII_PX = (0, 0, 0.5, 1.0, 1.5, 2.0, 3.0)
BACKGROUNDS = ("wall", "desk", "counter", "lobby")  # labels only: drawn alike
CLUTTER = ("text", "checker", "barcode", "face", "poster", "rect", "circle", "stripes")
OTHER_BARCODES = ("Code128", "EAN13", "DataMatrix", "Aztec", "PDF417", "Code39")


# ----------------------------------------------------------------------- background


def _paste(img: np.ndarray, patch: np.ndarray, centre: tuple[int, int], angle: float) -> np.ndarray:
    """`img` with `patch` rotated by `angle` degrees about its middle, centred at `centre`."""
    h, w = img.shape
    turn = cv2.getRotationMatrix2D((patch.shape[1] / 2, patch.shape[0] / 2), angle, 1.0)
    turn[:, 2] += (centre[0] - patch.shape[1] / 2, centre[1] - patch.shape[0] / 2)
    mask = cv2.warpAffine(np.ones_like(patch), turn, (w, h))
    warped = cv2.warpAffine(patch, turn, (w, h))
    return img * (1 - mask) + warped * mask


def _other_barcode(rng: np.random.Generator) -> tuple[str, np.ndarray | None]:
    """A symbol that is not a QR code, as reflectance (1 = white), or None if zxing-cpp
    cannot encode the text drawn."""
    kind = str(rng.choice(OTHER_BARCODES))
    if kind == "EAN13":
        text = "".join(rng.choice(list(string.digits), 12))
    elif kind == "Code39":
        text = "".join(rng.choice(list(string.ascii_uppercase + string.digits), 8))
    else:
        text = "".join(rng.choice(list(TOKEN_ALPHABET + "abcdefgh"), int(rng.integers(6, 30))))
    try:
        symbol = zxingcpp.create_barcode(text, getattr(zxingcpp.BarcodeFormat, kind))
    except ValueError:
        return kind, None
    img = np.array(symbol.to_image(scale=1)).astype(np.float32) / 255
    return kind, img[..., 0] if img.ndim == 3 else img


def _add_clutter(rng: np.random.Generator, img: np.ndarray, kind: str) -> tuple[np.ndarray, str]:
    """One item of clutter of `kind`, drawn into `img`; returns the image and the item's
    name."""
    h, w = img.shape
    x0, y0 = int(rng.uniform(0, w)), int(rng.uniform(0, h))
    if kind == "text":
        text_lines(rng, img, int(rng.integers(1, 6)), 0.0, 0.9)
    elif kind == "checker":
        cell = int(rng.integers(3, 30))
        cells = int(rng.integers(3, 14))
        board = (np.indices((cells, cells)).sum(0) % 2) * (rng.uniform(0.4, 0.9)) + 0.03
        board = np.kron(board.astype(np.float32), np.ones((cell, cell), np.float32))
        img = _paste(img, board, (x0, y0), rng.uniform(0, 360))
    elif kind == "barcode":
        symbology, symbol = _other_barcode(rng)
        kind = "barcode_" + symbology
        if symbol is not None:
            scale = rng.uniform(1.5, 6) * w / 640
            symbol = cv2.resize(symbol, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
            symbol = np.pad(symbol, 8, constant_values=1.0) * rng.uniform(0.6, 0.95)
            img = _paste(img, symbol, (x0, y0), rng.uniform(0, 360))
    elif kind == "face":
        _draw_face(rng, img, x0, y0)
    elif kind == "poster":
        pw, ph = int(rng.uniform(60, 250) * w / 640), int(rng.uniform(80, 300) * w / 640)
        cv2.rectangle(img, (x0, y0), (x0 + pw, y0 + ph), float(rng.uniform(0.5, 0.9)), -1)
        sheet = img[max(0, y0) : max(0, y0 + ph), max(0, x0) : max(0, x0 + pw)]
        if sheet.size:
            text_lines(rng, sheet, int(rng.integers(2, 8)), 0.0, 0.3)
    elif kind == "rect":
        corner = (x0 + int(rng.uniform(10, 200)), y0 + int(rng.uniform(10, 200)))
        cv2.rectangle(
            img, (x0, y0), corner, float(rng.uniform(0, 0.9)), int(rng.choice([-1, 2, 5]))
        )
    elif kind == "circle":
        cv2.circle(
            img,
            (x0, y0),
            int(rng.uniform(5, 80)),
            float(rng.uniform(0, 0.9)),
            int(rng.choice([-1, 2, 6])),
            cv2.LINE_AA,
        )
    else:  # stripes
        period = int(rng.integers(2, 12))
        sw, sh = int(rng.uniform(40, 200)), int(rng.uniform(40, 200))
        for k in range(0, sw, 2 * period):
            cv2.rectangle(
                img, (x0 + k, y0), (x0 + k + period - 1, y0 + sh), float(rng.uniform(0, 0.2)), -1
            )
    return img, kind


def _draw_face(rng: np.random.Generator, img: np.ndarray, x0: int, y0: int) -> None:
    """A face and shoulders drawn as shapes, centred at (x0, y0)."""
    h, w = img.shape
    r = int(rng.uniform(20, 90) * w / 640)
    skin = float(rng.uniform(0.2, 0.6))
    cv2.ellipse(img, (x0, y0), (r, int(r * 1.25)), 0, 0, 360, skin, -1, cv2.LINE_AA)
    cv2.ellipse(
        img,
        (x0, y0 - int(r * 0.9)),
        (int(r * 1.05), int(r * 0.6)),
        0,
        180,
        360,
        float(rng.uniform(0.02, 0.2)),
        -1,
        cv2.LINE_AA,
    )  # hair
    for side in (-1, 1):
        cv2.ellipse(
            img,
            (x0 + side * r // 3, y0 - r // 5),
            (max(2, r // 7), max(1, r // 12)),
            0,
            0,
            360,
            0.03,
            -1,
            cv2.LINE_AA,
        )
    cv2.ellipse(img, (x0, y0 + r // 2), (r // 3, r // 8), 0, 0, 180, 0.1, 2, cv2.LINE_AA)
    cv2.rectangle(
        img, (x0 - 2 * r, y0 + int(r * 1.2)), (x0 + 2 * r, h), float(rng.uniform(0.03, 0.5)), -1
    )


def _background(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, str, list[str]]:
    """The venue behind the codes, as reflectance: a gradient with low-frequency texture,
    sometimes tiles, then 2-8 items of clutter. Returns it, its kind and the items."""
    kind = str(rng.choice(BACKGROUNDS))
    base = rng.uniform(0.08, 0.5)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = base * (
        1 + rng.uniform(-0.5, 0.5) * (xx / w - 0.5) + rng.uniform(-0.5, 0.5) * (yy / h - 0.5)
    )
    texture = cv2.resize(
        rng.random((8, 8)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC
    )
    img *= 0.8 + 0.4 * texture
    items = []
    if rng.random() < 0.5:
        period = int(rng.integers(20, 120) * w / 640)
        grout = float(rng.uniform(0.02, 0.3))
        slant = rng.uniform(-0.3, 0.3)
        for k in range(-w, 2 * w, period):
            cv2.line(
                img, (k, 0), (int(k + slant * h), h), grout, int(rng.integers(1, 4)), cv2.LINE_AA
            )
        for k in range(0, h, period):
            cv2.line(
                img, (0, k), (w, int(k + slant * 30)), grout, int(rng.integers(1, 4)), cv2.LINE_AA
            )
        items.append("tiles")
    for _ in range(int(rng.integers(2, 9))):
        img, item = _add_clutter(rng, img, str(rng.choice(CLUTTER)))
        items.append(item)
    return img, kind, items


def _add_window(rng: np.random.Generator, scene: np.ndarray) -> np.ndarray:
    """A bright window with two mullions behind the scene: backlight."""
    h, w = scene.shape
    x0, y0 = int(rng.uniform(-0.2, 0.6) * w), int(rng.uniform(-0.3, 0.2) * h)
    ww, wh = int(rng.uniform(0.3, 0.8) * w), int(rng.uniform(0.3, 0.9) * h)
    window = np.zeros((h, w), np.float32)
    cv2.rectangle(window, (x0, y0), (x0 + ww, y0 + wh), 1.0, -1)
    for k in range(1, 3):
        cv2.line(window, (x0 + k * ww // 3, y0), (x0 + k * ww // 3, y0 + wh), 0.0, max(2, w // 100))
    return scene * (1 - window) + window * rng.uniform(4, 12)


# ---------------------------------------------------------------------------- light


def _shadow(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, float | None]:
    """The room light's field over the frame: 1, or in 30% of frames a soft shadow of a
    straight edge or a blob. Returns it and the shadow's depth (None: no shadow)."""
    light = np.ones((h, w), np.float32)
    if not rng.random() < 0.3:
        return light, None
    shade = np.zeros((h, w), np.float32)
    if str(rng.choice(["edge", "blob", "hand"])) == "edge":
        angle = rng.uniform(0, 2 * math.pi)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        across = (xx - w / 2 - rng.uniform(-0.3, 0.3) * w) * math.cos(angle) + (
            yy - h / 2 - rng.uniform(-0.3, 0.3) * h
        ) * math.sin(angle)
        shade = (across > 0).astype(np.float32)
    else:  # a blob: a hand's or a head's
        cv2.ellipse(
            shade,
            (int(rng.uniform(0, w)), int(rng.uniform(0, h))),
            (int(rng.uniform(0.1, 0.4) * w), int(rng.uniform(0.1, 0.4) * h)),
            rng.uniform(0, 180),
            0,
            360,
            1.0,
            -1,
        )
    shade = cv2.GaussianBlur(shade, (0, 0), float(rng.uniform(1, 25)))
    depth = float(rng.uniform(0.3, 0.75))
    light *= 1 - depth * shade
    return light, round(depth, 2)


def _code_side(corners: list[list[float]]) -> tuple[np.ndarray, float]:
    """The centre of a code's quadrilateral and the square root of its area."""
    pp = np.array(corners)
    d1, d2 = pp[2] - pp[0], pp[3] - pp[1]
    return pp.mean(0), math.sqrt(max(1.0, 0.5 * abs(d1[0] * d2[1] - d1[1] * d2[0])))


def _add_glare_and_banding(
    rng: np.random.Generator, scene: np.ndarray, screens: np.ndarray, codes: list[dict[str, Any]]
) -> np.ndarray:
    """Per code: a glare stripe on a screen's glass (35%) or a glare blob on laminated
    paper (30%); PWM banding on a screen (20%). Returns the scene."""
    h, w = scene.shape
    for code in codes:
        centre, side = _code_side(code["corners"])
        phone = code["carrier"] == "phone"
        code["glare"] = "none"
        if phone and rng.random() < 0.35:
            stripe = np.zeros((h, w), np.float32)
            a = math.radians(rng.uniform(0, 180))
            offset = rng.uniform(-0.6, 0.6) * side
            width = rng.uniform(0.08, 0.35) * side
            length = 3 * side
            mid = (
                centre[0] + offset * math.cos(a + math.pi / 2),
                centre[1] + offset * math.sin(a + math.pi / 2),
            )
            p0 = (mid[0] - length * math.cos(a), mid[1] - length * math.sin(a))
            p1 = (mid[0] + length * math.cos(a), mid[1] + length * math.sin(a))
            cv2.line(
                stripe, (int(p0[0]), int(p0[1])), (int(p1[0]), int(p1[1])), 1.0, max(1, int(width))
            )
            stripe = cv2.GaussianBlur(stripe, (0, 0), max(1.0, width / 3))
            strength = float(rng.uniform(0.2, 1.2))
            scene += stripe * strength * screens
            code.update(glare="stripe", glare_strength=round(strength, 2))
        elif not phone and rng.random() < 0.3:
            blob = np.zeros((h, w), np.float32)
            at = centre + rng.uniform(-0.5, 0.5, 2) * side
            cv2.ellipse(
                blob,
                (int(at[0]), int(at[1])),
                (int(rng.uniform(0.1, 0.5) * side), int(rng.uniform(0.05, 0.25) * side)),
                rng.uniform(0, 180),
                0,
                360,
                1.0,
                -1,
            )
            blob = cv2.GaussianBlur(blob, (0, 0), max(1.0, 0.05 * side))
            strength = float(rng.uniform(0.3, 1.5))
            scene += blob * strength
            code.update(glare="laminate", glare_strength=round(strength, 2))
        code["pwm_banding"] = False
        if phone and rng.random() < 0.2:
            period = rng.uniform(8, 60)
            rows = np.arange(h, dtype=np.float32)[:, None]
            band = 1 - rng.uniform(0.1, 0.4) * (
                0.5 + 0.5 * np.sin(2 * math.pi * rows / period + rng.uniform(0, 6))
            )
            scene = scene * (1 - screens + screens * band)
            code["pwm_banding"] = True
    return scene


# --------------------------------------------------------------------------- camera


def _srgb(linear: np.ndarray) -> np.ndarray:
    return np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * np.power(linear, 1 / 2.4) - 0.055)


def _disk(radius: float) -> np.ndarray:
    half = math.ceil(radius)
    yy, xx = np.mgrid[-half : half + 1, -half : half + 1].astype(np.float32)
    kernel = np.clip(radius + 0.5 - np.sqrt(xx**2 + yy**2), 0, 1)
    return kernel / kernel.sum()


def _streak(length: float, angle_deg: float) -> np.ndarray:
    size = math.ceil(length) | 1
    kernel = np.zeros((size, size), np.float32)
    cv2.line(kernel, (0, size // 2), (size - 1, size // 2), 1.0, 1, cv2.LINE_AA)
    turn = cv2.getRotationMatrix2D((size / 2 - 0.5, size / 2 - 0.5), angle_deg, 1.0)
    kernel = cv2.warpAffine(kernel, turn, (size, size))
    return kernel / max(kernel.sum(), 1e-6)


def _expose(
    rng: np.random.Generator,
    scene: np.ndarray,
    low_light: bool,
    backlight: bool,
    attrs: dict[str, Any],
) -> np.ndarray:
    """Auto exposure on the mean (scaled down in low light), veiling glare with backlight,
    vignetting."""
    h, w = scene.shape
    exposure = MID_GREY / max(float(np.mean(np.minimum(scene, 20))), 1e-3) * rng.uniform(0.6, 1.5)
    if low_light:
        exposure *= rng.uniform(0.4, 1.0)
    img = scene * exposure
    attrs["exposure"] = round(exposure, 3)
    attrs["haze"] = 0.0
    if backlight:
        haze = float(rng.uniform(0.02, 0.15))
        img = img + haze
        attrs["haze"] = round(haze, 3)
    vignette = float(rng.uniform(0, 0.6)) if rng.random() < 0.6 else 0.0
    if vignette > 0:
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        r2 = ((xx - w / 2) ** 2 + (yy - h / 2) ** 2) / ((w / 2) ** 2 + (h / 2) ** 2)
        img = img * (1 - vignette * r2)
    attrs["vignette"] = round(vignette, 2)
    return img


def _optics(
    rng: np.random.Generator, img: np.ndarray, codes: list[dict[str, Any]], attrs: dict[str, Any]
) -> np.ndarray:
    """Defocus disk (else slight lens blur), motion streak and rolling-shutter skew; the
    codes' recorded corners follow the skew."""
    h, w = img.shape
    defocus = 0.0
    if rng.random() < 0.5:
        defocus = float(rng.choice(DEFOCUS_RADII_PX) * rng.uniform(0.7, 1.3))
    defocus *= w / 640
    if defocus > 0.3:
        img = cv2.filter2D(img, -1, _disk(defocus), borderType=cv2.BORDER_REFLECT)
    else:
        img = cv2.GaussianBlur(img, (0, 0), 0.5)
    attrs["defocus_px"] = round(defocus, 2)
    motion = float(rng.uniform(1, 10)) if rng.random() < 0.3 else 0.0
    motion *= w / 640
    attrs["motion_angle_deg"] = None
    if motion > 0:
        angle = rng.uniform(0, 180)
        img = cv2.filter2D(img, -1, _streak(motion, angle), borderType=cv2.BORDER_REFLECT)
        attrs["motion_angle_deg"] = round(angle, 1)
    attrs["motion_px"] = round(motion, 2)
    skew = float(rng.uniform(-0.12, 0.12)) if rng.random() < 0.25 else 0.0
    if skew != 0:
        shear = np.array([[1, skew, -skew * h / 2], [0, 1, 0]], np.float32)
        img = cv2.warpAffine(
            img, shear, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
        )
        for code in codes:
            q = np.array(code["corners"])
            q[:, 0] += skew * (q[:, 1] - h / 2)
            code["corners"] = q.round(1).tolist()
    attrs["rolling_shutter"] = round(skew, 3)
    return img


def _sensor(
    rng: np.random.Generator, img: np.ndarray, low_light: bool, attrs: dict[str, Any]
) -> np.ndarray:
    """Shot and read noise, the sRGB curve and sometimes sharpening: linear -> uint8."""
    h, w = img.shape
    if low_light:
        photons = float(rng.uniform(40, 300))  # photons per unit of linear signal
        read = float(rng.uniform(0.01, 0.03))
    else:
        photons = float(rng.uniform(600, 5000))
        read = float(rng.uniform(0.002, 0.008))
    signal = np.clip(img, 0, 1.5)
    noise = rng.standard_normal((h, w)).astype(np.float32)
    img = signal + noise * np.sqrt(signal / photons + read * read).astype(np.float32)
    img = _srgb(np.clip(img, 0, 1))
    sigma = math.sqrt(MID_GREY / photons + read * read)
    probe = _srgb(np.array([MID_GREY - sigma, MID_GREY + sigma]))
    attrs.update(
        photons_per_unit=round(photons, 1),
        read_noise=round(read, 4),
        noise_sigma_8bit=round(float(probe[1] - probe[0]) / 2 * 255, 2),
    )
    attrs["sharpen"] = 0.0
    if rng.random() < 0.4:
        soft = cv2.GaussianBlur(img.astype(np.float32), (0, 0), float(rng.uniform(0.8, 2.0)))
        amount = float(rng.uniform(0.3, 1.2))
        img = img + amount * (img - soft)
        attrs["sharpen"] = round(amount, 2)
    return np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)


def _compress(
    rng: np.random.Generator, img: np.ndarray, attrs: dict[str, Any]
) -> tuple[np.ndarray, bytes | None]:
    """A JPEG round trip at quality 30-90 for 70% of frames; returns the image and bytes."""
    attrs["jpeg_quality"] = None
    if not rng.random() < 0.7:
        return img, None
    quality = int(rng.integers(30, 91))
    ok, encoded = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("OpenCV could not encode a JPEG")
    attrs["jpeg_quality"] = quality
    return cv2.imdecode(encoded, cv2.IMREAD_GRAYSCALE), encoded.tobytes()


# ---------------------------------------------------------------------------- frame


def _tags(codes: list[dict[str, Any]], attrs: dict[str, Any]) -> list[str]:
    tags = {("no_code", "one_code", "two_codes")[len(codes)]}
    for code in codes:
        tags.add("screen" if code["carrier"] == "phone" else "paper")
        named = {
            "small": code["side_px"] < SMALL_CODE_PX,
            "inverted": code["inverted"],
            "steep": code["tilt_deg"] > STEEP_TILT_DEG,
            "moire": code.get("moire", False),
            "occluded": code["occluded"],
            "bent": code["bent"],
            "glare": code["glare"] != "none",
            "pwm_banding": code["pwm_banding"],
            "thin_quiet_zone": code["quiet_zone_modules"] < THIN_QUIET_ZONE_MODULES,
            "faded": code.get("print") == "faded",
            "low_contrast": code.get("print") == "low_contrast",
        }
        tags.update(tag for tag, present in named.items() if present)
    quality = attrs["jpeg_quality"]
    named = {
        "shadow": attrs["shadow_depth"] is not None,
        "dim": attrs["low_light"],
        "backlight": attrs["backlight"],
        "defocus": attrs["defocus_px"] > 0.3,
        "motion_blur": attrs["motion_px"] > 0,
        "rolling_shutter": attrs["rolling_shutter"] != 0,
        "noisy": attrs["noise_sigma_8bit"] >= NOISY_SIGMA_8BIT,
        "sharpened": attrs["sharpen"] > 0,
        "jpeg": quality is not None,
        "jpeg_low": quality is not None and quality < LOW_JPEG_QUALITY,
    }
    tags.update(tag for tag, present in named.items() if present)
    return sorted(tags)


def kiosk_frame(seed: int, index: int, focus: str | None = None) -> CameraFrame:
    """Frame `index` of the stream `seed`, a function of (seed, index, focus) only; with
    `focus="low_contrast"` every code is on paper with low-contrast print.

    Raises ValueError for an unknown focus."""
    if focus is not None and focus not in FOCUSES:
        raise ValueError(f"focus must be None or one of {FOCUSES}, not {focus!r}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, index]))
    w, h = FRAME_SIZES[int(rng.random() < 0.45)]
    field_of_view = math.radians(rng.uniform(55, 75))
    f = (w / 2) / math.tan(field_of_view / 2)
    camera = np.array([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1.0]])
    draw = rng.random()
    n_codes = 0 if draw < 0.15 else (2 if draw < 0.27 else 1)
    scene, background, items = _background(rng, h, w)
    low_light = bool(rng.random() < 0.2)
    backlight = bool(rng.random() < 0.15)
    if backlight:
        scene = _add_window(rng, scene)
    codes, screens = add_codes(rng, scene, camera, n_codes, focus == "low_contrast")
    light, shadow_depth = _shadow(rng, h, w)
    scene = scene * (screens + (1 - screens) * light)  # screens emit; the rest reflects
    scene = _add_glare_and_banding(rng, scene, screens, codes)

    attrs: dict[str, Any] = {
        "seed": seed,
        "index": index,
        "focus": focus,
        "size": (w, h),
        "field_of_view_deg": round(math.degrees(field_of_view), 1),
        "background": background,
        "background_items": items,
        "low_light": low_light,
        "backlight": backlight,
        "shadow_depth": shadow_depth,
    }
    img = _expose(rng, scene, low_light, backlight, attrs)
    img = _optics(rng, img, codes, attrs)
    img = _sensor(rng, img, low_light, attrs)
    img, jpeg = _compress(rng, img, attrs)
    attrs["codes"] = codes
    attrs["tags"] = _tags(codes, attrs)
    return CameraFrame(img, frozenset(code["text"] for code in codes), attrs, jpeg)


def generate_kiosk_frames(
    n: int,
    seed: int = 1,
    focus: str | None = None,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> list[CameraFrame]:
    """`n` frames of the stream `seed` (frame i depends on seed, i and focus only), with
    `progress(done, n)` called after each. `focus="low_contrast"`: paper codes with
    low-contrast print only.

    Raises ValueError for a negative `n` or `seed`, or an unknown focus."""
    if n < 0 or seed < 0:
        raise ValueError(f"n and seed must be non-negative, not n={n}, seed={seed}")
    if focus is not None and focus not in FOCUSES:
        raise ValueError(f"focus must be None or one of {FOCUSES}, not {focus!r}")
    frames = []
    for i in range(n):
        frames.append(kiosk_frame(seed, i, focus))
        if progress is not None:
            progress(i + 1, n)
    return frames
