"""Synthetic camera frames of QR check-in codes, with ground truth.

A frame imitates what a turnstile or phone camera delivers: a cluttered scene (shapes,
text-like print, patterns, sometimes a QR-like decoy) with zero, one or two token QR codes
on paper cards or phone screens (inverted: light modules on dark), seen in perspective at
any rotation and at sizes down to ~60 px; then uneven light (gradient, vignette, shadows,
glare), lens or motion blur, sensor noise, sometimes in-camera sharpening, and JPEG
compression. Every random choice comes from a generator seeded by (seed, frame index), so
one seed always gives the same frames, a longer run extends a shorter one, and another
seed gives a held-out set.

    frames = generate_frames(200, seed=7)
    for frame in frames:
        frame.image   # (h, w) uint8
        frame.texts   # frozenset of the texts that are in the frame
        frame.attrs   # how it was made: size, codes, blur, light, noise, JPEG, tags
        frame.jpeg    # the JPEG stream that image was decoded from, or None
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import zxingcpp

FRAME_SIZES: tuple[tuple[int, int], ...] = ((640, 480), (1280, 720))
# The QR alphanumeric set without the space, which scanners and people tend to trim.
TOKEN_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ$%*+-./:"
TOKEN_LENGTH = 45
SMALL_CODE_PX = 100  # a code whose side is below this is tagged "small"

_FONTS = (
    cv2.FONT_HERSHEY_SIMPLEX,
    cv2.FONT_HERSHEY_DUPLEX,
    cv2.FONT_HERSHEY_COMPLEX,
    cv2.FONT_HERSHEY_PLAIN,
)
_WORD_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


@dataclass(frozen=True)
class SynthFrame:
    """One synthetic camera frame and what it contains.

    `image` is a 2-D uint8 array (height, width); `texts` the set of texts encoded in
    the codes that are in it (empty for a frame with no code); `attrs` describes how it
    was made (plain values only: "size", "codes", "blur", "light", "noise_sigma",
    "jpeg_quality", "tags", ...); `jpeg` is the JPEG stream that `image` was decoded
    from when the frame went through compression, else None.
    """

    image: np.ndarray
    texts: frozenset[str]
    attrs: dict[str, Any]
    jpeg: bytes | None = None

    @property
    def tags(self) -> frozenset[str]:
        """Short labels for slicing results: "small", "inverted", "motion_blur", ..."""
        return frozenset(self.attrs["tags"])


def token_text(rng: np.random.Generator) -> str:
    """A random token-like text: "QT1", a kind letter (P or V), then QR alphanumerics.

    Takes a numpy Generator; returns a string of TOKEN_LENGTH characters.
    """
    body = rng.choice(list(TOKEN_ALPHABET), size=TOKEN_LENGTH - 4)
    return "QT1" + ("P" if rng.random() < 0.7 else "V") + "".join(body)


def generate_frames(
    n: int,
    seed: int = 0,
    *,
    sizes: Sequence[tuple[int, int]] = FRAME_SIZES,
    no_code_fraction: float = 0.15,
    two_code_fraction: float = 0.10,
    progress: Callable[[int, int], None] | None = None,
) -> list[SynthFrame]:
    """Generate `n` frames deterministically from `seed` (a non-negative int).

    `sizes` lists (width, height) pairs, one drawn per frame. About `no_code_fraction`
    of the frames hold no code and `two_code_fraction` hold two. `progress(done, n)` is
    called after each frame if given. Returns a list of SynthFrame; frame i depends only
    on (seed, i). Raises ValueError for a negative n or seed, or an empty `sizes`.
    """
    if n < 0 or seed < 0:
        raise ValueError(f"n and seed must be non-negative, got n={n}, seed={seed}")
    if not sizes:
        raise ValueError("sizes must list at least one (width, height)")
    frames = []
    for index in range(n):
        rng = np.random.default_rng([seed, index])
        width, height = sizes[int(rng.integers(len(sizes)))]
        draw = rng.random()
        n_codes = 0 if draw < no_code_fraction else 2 if draw > 1 - two_code_fraction else 1
        frames.append(_make_frame(rng, width, height, n_codes))
        if progress is not None:
            progress(index + 1, n)
    return frames


def _make_frame(rng: np.random.Generator, width: int, height: int, n_codes: int) -> SynthFrame:
    tags: set[str] = set()
    scene = _background(rng, width, height, tags)
    regions = _regions(width, height, n_codes)
    # Two codes share the frame: keep each whole card in its half so neither hides the other.
    codes = [_place_code(rng, scene, region, n_codes > 1, tags) for region in regions]
    radiance, light = _lighting(rng, scene, tags)
    for code in codes:
        if code["screen"] and rng.random() < 0.4:
            _add_glare(rng, radiance, code)
            tags.add("glare")
    radiance, blur = _optics(rng, radiance, tags)
    pixels, noise_sigma, sharpened = _sensor(rng, radiance, tags)
    image, jpeg, quality = _compress(rng, pixels, tags)
    tags.add("no_code" if n_codes == 0 else "two_codes" if n_codes == 2 else "one_code")
    attrs = {
        "size": (width, height),
        "codes": codes,
        "blur": blur,
        "light": light,
        "noise_sigma": noise_sigma,
        "sharpened": sharpened,
        "jpeg_quality": quality,
        "tags": sorted(tags),
    }
    return SynthFrame(image, frozenset(c["text"] for c in codes), attrs, jpeg)


def _regions(width: int, height: int, n_codes: int) -> list[tuple[int, int, int, int]]:
    """Disjoint (x0, y0, x1, y1) areas, one per code, so that two codes never overlap."""
    if n_codes == 0:
        return []
    if n_codes == 1:
        return [(0, 0, width, height)]
    return [(0, 0, width // 2, height), (width // 2, 0, width, height)]


def _background(rng: np.random.Generator, width: int, height: int, tags: set[str]) -> np.ndarray:
    """A cluttered reflectance map in [0, 1]: smooth base, shapes, print, patterns."""
    coarse = rng.uniform(0.15, 0.85, size=(int(rng.integers(3, 7)), int(rng.integers(4, 9))))
    bg = cv2.resize(coarse.astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC)
    for _ in range(int(rng.integers(8, 30))):
        _draw_shape(rng, bg)
    for _ in range(int(rng.integers(2, 12))):
        _draw_words(rng, bg, float(rng.uniform(0.3, 0.8) if rng.random() < 0.6 else 2.0))
    grain = rng.random((height // 3 + 1, width // 3 + 1), dtype=np.float32) - 0.5
    grain = cv2.resize(grain, (width, height), interpolation=cv2.INTER_LINEAR)
    bg += float(rng.uniform(0.04, 0.2)) * grain  # surface texture: carpet, concrete, fabric
    if rng.random() < 0.3:
        _draw_pattern(rng, bg)
        tags.add("pattern")
    if rng.random() < 0.15:
        _draw_decoy(rng, bg)
        tags.add("decoy")
    if rng.random() < 0.5:  # background out of the depth of field
        bg = cv2.GaussianBlur(bg, (0, 0), float(rng.uniform(0.7, 2.5)))
    return np.clip(bg, 0.0, 1.0)


def _point(rng: np.random.Generator, img: np.ndarray) -> tuple[int, int]:
    return int(rng.integers(img.shape[1])), int(rng.integers(img.shape[0]))


def _draw_shape(rng: np.random.Generator, img: np.ndarray) -> None:
    level = float(rng.uniform(0.03, 0.97))
    thickness = -1 if rng.random() < 0.6 else int(rng.integers(1, 5))
    kind = int(rng.integers(4))
    reach = max(img.shape) // 4
    x, y = _point(rng, img)
    if kind == 0:
        w, h = (int(v) for v in rng.integers(10, reach, size=2))
        cv2.rectangle(img, (x, y), (x + w, y + h), level, thickness)
    elif kind == 1:
        cv2.circle(img, (x, y), int(rng.integers(5, reach // 2)), level, thickness)
    elif kind == 2:
        cv2.line(img, (x, y), _point(rng, img), level, int(rng.integers(1, 7)))
    else:
        pts = np.array([_point(rng, img) for _ in range(int(rng.integers(3, 6)))], np.int32)
        cv2.fillConvexPoly(img, cv2.convexHull(pts), level)


def _draw_words(rng: np.random.Generator, img: np.ndarray, max_scale: float) -> None:
    """A few lines of random words, like a poster, a sign or a label."""
    font = _FONTS[int(rng.integers(len(_FONTS)))]
    scale = float(rng.uniform(0.3, max_scale))
    thickness = int(rng.integers(1, 4 if scale > 0.8 else 2))
    level = float(rng.uniform(0.0, 1.0))
    x, y = _point(rng, img)
    step = int(30 * scale) + 4
    ink = np.zeros(img.shape, np.uint8)  # OpenCV draws text on 8-bit images only
    for line in range(int(rng.integers(1, 8))):
        words = [
            "".join(rng.choice(list(_WORD_CHARS), size=int(rng.integers(2, 9))))
            for _ in range(int(rng.integers(1, 6)))
        ]
        org = (x, y + line * step)
        cv2.putText(ink, " ".join(words), org, font, scale, 255, thickness, cv2.LINE_AA)
    alpha = ink.astype(np.float32) / 255
    img *= 1 - alpha
    img += level * alpha


def _draw_pattern(rng: np.random.Generator, img: np.ndarray) -> None:
    """A patch of checkerboard, stripes or grid (tiles, fabric, a grate)."""
    h, w = img.shape
    pw, ph = int(rng.integers(w // 8, w // 3)), int(rng.integers(h // 8, h // 3))
    x0, y0 = int(rng.integers(0, w - pw)), int(rng.integers(0, h - ph))
    period = int(rng.integers(4, 24))
    yy, xx = np.mgrid[0:ph, 0:pw]
    kind = int(rng.integers(3))
    if kind == 0:
        mask = ((xx // period) + (yy // period)) % 2 == 0
    elif kind == 1:
        mask = (xx // period) % 2 == 0
    else:
        mask = (xx % period < 2) | (yy % period < 2)
    dark, light = sorted(rng.uniform(0.05, 0.95, size=2))
    img[y0 : y0 + ph, x0 : x0 + pw] = np.where(mask, dark, light)


def _draw_decoy(rng: np.random.Generator, img: np.ndarray) -> None:
    """A QR-like grid of random modules with no finder patterns (a sticker, a print)."""
    h, w = img.shape
    n = int(rng.integers(12, 30))
    module = int(rng.integers(2, 7))
    grid = rng.random((n, n)) < 0.5
    patch = np.kron(grid, np.ones((module, module), dtype=bool))
    side = patch.shape[0]
    if side >= min(h, w):
        return
    x0, y0 = int(rng.integers(0, w - side)), int(rng.integers(0, h - side))
    img[y0 : y0 + side, x0 : x0 + side] = np.where(patch, 0.1, 0.9)


def _code_side(rng: np.random.Generator, height: int) -> float:
    """The symbol's side in pixels: a quarter small, half medium, a quarter large."""
    draw = rng.random()
    if draw < 0.25:
        return float(rng.uniform(60, SMALL_CODE_PX))
    if draw < 0.75:
        return float(rng.uniform(SMALL_CODE_PX, max(SMALL_CODE_PX + 1, 0.35 * height)))
    return float(rng.uniform(0.35 * height, 0.65 * height))


def _project(points: np.ndarray, angle: float, tilt: float, axis: float, focal: float):
    """Rotate plane points by `angle`, tilt the plane by `tilt` about an in-plane axis
    at `axis`, and project them with a pinhole of focal length `focal` (radians, px)."""
    c, s = math.cos(angle), math.sin(angle)
    p = points @ np.array([[c, s], [-s, c]])
    u = np.array([math.cos(axis), math.sin(axis)])
    v = np.array([-u[1], u[0]])
    along, across = p @ u, p @ v
    depth = across * math.sin(tilt)
    xy = np.outer(along, u) + np.outer(across * math.cos(tilt), v)
    return xy * (focal / (focal + depth))[:, None]


def _place_code(
    rng: np.random.Generator,
    scene: np.ndarray,
    region: tuple[int, int, int, int],
    whole_card: bool,
    tags: set[str],
) -> dict[str, Any]:
    """Draw one code card into `scene`, its code and quiet zone (or, if `whole_card`,
    the whole card) inside `region`; return its attributes."""
    text = token_text(rng)
    modules = np.asarray(
        zxingcpp.create_barcode(text, zxingcpp.BarcodeFormat.QRCode, ec_level="M").to_image(
            scale=1, add_quiet_zones=False
        )
    )
    n = modules.shape[0]
    screen = rng.random() < 0.3
    inverted = screen and rng.random() < 0.6
    quiet = int(rng.integers(2, 5)) if rng.random() < 0.3 else 4
    margin = int(rng.integers(1, 6))
    x0, y0, x1, y1 = region
    side = min(_code_side(rng, scene.shape[0]), 0.9 * (x1 - x0), 0.9 * (y1 - y0))
    module_px = int(np.clip(round(side / n * 1.5), 4, 24))
    card = _card_pixels(rng, modules, quiet, margin, module_px, screen, inverted)
    angle = float(rng.uniform(0, 2 * math.pi))
    tilt = math.radians(float(rng.uniform(0, 25) if rng.random() < 0.75 else rng.uniform(25, 50)))
    axis = float(rng.uniform(0, 2 * math.pi))
    focal = float(rng.uniform(0.8, 1.4) * scene.shape[1])
    total = card.shape[0]
    centre = total / 2
    corners = np.array([[0, 0], [total, 0], [total, total], [0, total]], np.float64)
    half_code = (n / 2 + quiet) * module_px
    code_corners = centre + half_code * np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]])
    inside = corners if whole_card else code_corners
    for _ in range(20):
        unit = side / (n * module_px)  # frame px per card px before the tilt
        quad = _project((inside - centre) * unit, angle, tilt, axis, focal)
        lo, hi = quad.min(axis=0), quad.max(axis=0)
        if hi[0] - lo[0] < x1 - x0 - 4 and hi[1] - lo[1] < y1 - y0 - 4:
            break
        side *= 0.85
    cx = float(rng.uniform(x0 + 2 - lo[0], x1 - 2 - hi[0]))
    cy = float(rng.uniform(y0 + 2 - lo[1], y1 - 2 - hi[1]))
    dst = _project((corners - centre) * unit, angle, tilt, axis, focal) + np.array([cx, cy])
    homography = cv2.getPerspectiveTransform(corners.astype(np.float32), dst.astype(np.float32))
    shrink = module_px * n / side
    if shrink > 1:  # antialias before a downscaling warp, as a lens and sensor would
        card = cv2.GaussianBlur(card, (0, 0), 0.45 * shrink)
    size = (scene.shape[1], scene.shape[0])
    warped = cv2.warpPerspective(card, homography, size, flags=cv2.INTER_LINEAR)
    mask = cv2.warpPerspective(np.ones_like(card), homography, size, flags=cv2.INTER_LINEAR)
    scene *= 1 - mask
    scene += warped * mask
    tags.update({"screen"} if screen else set())
    tags.update({"inverted"} if inverted else set())
    tags.update({"small"} if side < SMALL_CODE_PX else set())
    tags.update({"steep"} if tilt > math.radians(25) else set())
    tags.update({"thin_quiet_zone"} if quiet < 4 else set())
    return {
        "text": text,
        "side_px": round(side, 1),
        "module_px": round(side / n, 2),
        "angle_deg": round(math.degrees(angle), 1),
        "tilt_deg": round(math.degrees(tilt), 1),
        "centre": (round(cx, 1), round(cy, 1)),
        "quiet_modules": quiet,
        "screen": screen,
        "inverted": inverted,
    }


def _card_pixels(
    rng: np.random.Generator,
    modules: np.ndarray,
    quiet: int,
    margin: int,
    module_px: int,
    screen: bool,
    inverted: bool,
) -> np.ndarray:
    """The code on its carrier, as reflectance: a paper card, or a phone screen in a
    dark bezel (light modules on dark when inverted)."""
    dark = modules < 128
    if inverted:
        dark = ~dark
    if screen:
        low, high = float(rng.uniform(0.02, 0.15)), float(rng.uniform(0.65, 1.0))
        surround = float(rng.uniform(0.0, 0.08))  # the bezel
    else:
        low, high = float(rng.uniform(0.03, 0.25)), float(rng.uniform(0.6, 0.95))
        surround = high
    code = np.pad(np.where(dark, low, high), quiet, constant_values=low if inverted else high)
    card = np.pad(code, margin, constant_values=surround).astype(np.float32)
    card = np.kron(card, np.ones((module_px, module_px), np.float32))
    return card


def _lighting(
    rng: np.random.Generator, scene: np.ndarray, tags: set[str]
) -> tuple[np.ndarray, list[str]]:
    """Scene radiance under uneven light: gradient, vignette, shadow, exposure."""
    h, w = scene.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    light = np.ones((h, w), np.float32)
    kinds = []
    if rng.random() < 0.5:
        a = float(rng.uniform(0, 2 * math.pi))
        ramp = (xx * math.cos(a) + yy * math.sin(a)) / math.hypot(w, h)
        ramp = (ramp - ramp.min()) / (ramp.max() - ramp.min())
        low = float(rng.uniform(0.35, 0.8))
        light *= low + (1.05 - low) * ramp
        kinds.append("gradient")
    if rng.random() < 0.5:
        r2 = ((xx - w / 2) ** 2 + (yy - h / 2) ** 2) / ((w / 2) ** 2 + (h / 2) ** 2)
        light *= 1 - float(rng.uniform(0.2, 0.6)) * r2
        kinds.append("vignette")
    if rng.random() < 0.3:
        shadow = np.zeros((h, w), np.float32)
        pts = np.array([_point(rng, scene) for _ in range(int(rng.integers(3, 6)))], np.int32)
        cv2.fillConvexPoly(shadow, cv2.convexHull(pts), 1.0)
        shadow = cv2.GaussianBlur(shadow, (0, 0), float(rng.uniform(3, 30)))
        light *= 1 - float(rng.uniform(0.3, 0.65)) * shadow
        kinds.append("shadow")
    gain = float(rng.uniform(0.55, 1.25))
    flare = float(rng.uniform(0.0, 0.08)) if rng.random() < 0.3 else 0.0
    if gain < 0.75:
        kinds.append("dim")
    if flare:
        kinds.append("flare")
    tags.update(kinds)
    return scene * light * gain + flare, kinds


def _add_glare(rng: np.random.Generator, radiance: np.ndarray, code: dict[str, Any]) -> None:
    """A soft specular highlight on a phone screen, near the code."""
    h, w = radiance.shape
    cx, cy = code["centre"]
    r = code["side_px"] / 2
    spot = np.zeros((h, w), np.float32)
    centre = (int(cx + rng.uniform(-r, r)), int(cy + rng.uniform(-r, r)))
    axes = (int(rng.uniform(0.2, 0.8) * r) + 1, int(rng.uniform(0.1, 0.4) * r) + 1)
    cv2.ellipse(spot, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1.0, -1)
    spot = cv2.GaussianBlur(spot, (0, 0), max(1.0, axes[1] / 2))
    radiance += float(rng.uniform(0.1, 0.35)) * spot


def _optics(
    rng: np.random.Generator, radiance: np.ndarray, tags: set[str]
) -> tuple[np.ndarray, dict[str, Any]]:
    """Defocus (Gaussian) or motion blur, or neither."""
    draw = rng.random()
    if draw < 0.3:
        return radiance, {"kind": "none"}
    if draw < 0.75:
        sigma = float(rng.uniform(0.5, 1.6) if rng.random() < 0.85 else rng.uniform(1.6, 3.0))
        tags.add("defocus")
        return cv2.GaussianBlur(radiance, (0, 0), sigma), {"kind": "gaussian", "sigma": sigma}
    length = int(rng.integers(3, 7) if rng.random() < 0.8 else rng.integers(7, 13))
    angle = float(rng.uniform(0, 180))
    kernel = np.zeros((length, length), np.float32)
    kernel[length // 2, :] = 1.0
    turn = cv2.getRotationMatrix2D(((length - 1) / 2, (length - 1) / 2), angle, 1.0)
    kernel = cv2.warpAffine(kernel, turn, (length, length))
    kernel /= kernel.sum()
    tags.add("motion_blur")
    blurred = cv2.filter2D(radiance, -1, kernel)
    return blurred, {"kind": "motion", "length_px": length, "angle_deg": round(angle, 1)}


def _sensor(
    rng: np.random.Generator, radiance: np.ndarray, tags: set[str]
) -> tuple[np.ndarray, float, bool]:
    """Shot and read noise, quantisation, and sometimes the ISP's unsharp mask."""
    signal = np.clip(radiance, 0, 1.2) * 255
    read = float(rng.uniform(1.0, 6.0))
    shot = float(rng.uniform(0.1, 0.5))
    noise = rng.standard_normal(signal.shape, dtype=np.float32)
    noisy = signal + noise * np.sqrt(read**2 + shot * signal)
    sharpened = bool(rng.random() < 0.3)
    if sharpened:
        soft = cv2.GaussianBlur(noisy, (0, 0), 1.2)
        noisy = noisy + float(rng.uniform(0.3, 1.0)) * (noisy - soft)
        tags.add("sharpened")
    if read > 4.5:
        tags.add("noisy")
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8), round(read, 2), sharpened


def _compress(
    rng: np.random.Generator, pixels: np.ndarray, tags: set[str]
) -> tuple[np.ndarray, bytes | None, int | None]:
    """JPEG round trip at quality 30-80 for most frames, as camera streams are."""
    if rng.random() < 0.2:
        return pixels, None, None
    quality = int(rng.integers(30, 81))
    ok, encoded = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("OpenCV could not encode a JPEG")
    tags.add("jpeg")
    if quality < 45:
        tags.add("jpeg_low")
    jpeg = encoded.tobytes()
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_GRAYSCALE)
    return image, jpeg, quality
