"""Check-in codes on their carriers, for the kiosk frames (benchmarks.kiosk_frames).

A code (a check-in token as a QR code of version 2-4, EC level M) is shown on a phone or
printed on a poster, sticker or table tent; a pinhole camera sees the carrier in a 3-D
pose, and it is rendered into the scene by casting 2x2 rays a pixel onto a plane, or onto
a cylinder for a bent sticker, and sampling its texture where they meet it.

- A phone's screen emits 1-3 times white; dark mode shows the code inverted; a sub-pixel
  grid makes moire; app chrome carries text; a rounded dark bezel; a hand behind it and
  sometimes fingers over its edges.
- Paper has normal, faded or low-contrast print, blotchy where faded, with text in the
  margins of posters and tents.
- On either, a fingertip sometimes covers a few modules, never a finder pattern.

Every random draw comes from the caller's generator, in a fixed order: the frames are those
the scratch generator this began as made, and its figures were measured on.
"""

from __future__ import annotations

import math
import string
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import zxingcpp

__all__ = ["TOKEN_ALPHABET", "add_codes", "text_lines"]

TOKEN_ALPHABET = string.ascii_uppercase + string.digits
# Alphanumeric capacity at EC level M, and the shortest MAC drawn, by QR version.
TOKEN_CAPACITY = {2: 38, 3: 61, 4: 90}
MIN_MAC_LENGTH = {2: 12, 3: 20, 4: 32}
TOKEN_FIXED_CHARS = 17  # "P1:" + 10 digits + ":K" + key digit + ":"
RAYS_PER_PIXEL_SIDE = 2  # a carrier is rendered at 2x2 rays per frame pixel
CARRIERS = ("phone", "poster", "sticker", "table_tent")
CARRIER_WEIGHTS = (0.45, 0.2, 0.2, 0.15)
PAPER_CARRIERS = ("poster", "sticker", "table_tent")
CODE_SIDE_M = {"phone": 0.04, "poster": 0.12, "sticker": 0.05, "table_tent": 0.07}
PRINTS = ("normal", "faded", "low_contrast")
PRINT_WEIGHTS = (0.55, 0.25, 0.2)
TEXT_CHARS = TOKEN_ALPHABET + "     .,:-"
TEXT_FONTS = (0, 1, 2, 3, 4, 6, 7)  # cv2.FONT_HERSHEY_*, without the script fonts


# ---------------------------------------------------------------------------- codes


def _check_in_token(rng: np.random.Generator, version: int) -> str:
    """A check-in token "P1:<10 digits>:K<key>:<MAC>" that fills most of `version`."""
    longest = TOKEN_CAPACITY[version] - TOKEN_FIXED_CHARS
    length = int(rng.integers(min(MIN_MAC_LENGTH[version], longest), longest + 1))
    visitor = "".join(rng.choice(list(string.digits), 10))
    key = str(int(rng.integers(0, 10)))
    mac = "".join(rng.choice(list(TOKEN_ALPHABET), length))
    return f"P1:{visitor}:K{key}:{mac}"


def _qr_modules(text: str, version: int) -> np.ndarray:
    """Module matrix of `text` as a QR code of `version` at EC level M, True where dark."""
    symbol = zxingcpp.create_barcode(
        text, zxingcpp.BarcodeFormat.QRCode, ec_level="M", version=version
    )
    modules = np.array(symbol.to_image(scale=1))[4:-4, 4:-4] < 128  # without the quiet zone
    n = 17 + 4 * version
    if modules.shape != (n, n):
        raise RuntimeError(f"zxing-cpp made a {modules.shape} symbol for version {version}")
    return modules


# ------------------------------------------------------------------------- geometry


def _rotation(axis: tuple[float, float, float], angle: float) -> np.ndarray:
    """3x3 rotation by `angle` radians about `axis` (Rodrigues)."""
    a = np.asarray(axis, float)
    a = a / np.linalg.norm(a)
    cross = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + math.sin(angle) * cross + (1 - math.cos(angle)) * cross @ cross


def _project(camera: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Frame pixel coordinates of camera-space `points` (..., 3)."""
    p = points @ camera.T
    return p[..., :2] / p[..., 2:3]


@dataclass(frozen=True)
class _Surface:
    """A carrier's surface in camera space, in metres. Local coordinates (s, t): s across,
    t down. Flat, it is the plane through `position` spanned by the first two columns of
    `rotation`; bent, a cylinder of `bend_radius` whose axis runs along t, bulging toward
    the camera when the radius is positive."""

    rotation: np.ndarray  # columns: the s, t and normal directions
    position: np.ndarray  # the code's centre, (s, t) = (0, 0)
    bend_radius: float | None = None

    def point(self, s: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Camera-space points (..., 3) at local coordinates (s, t)."""
        s = np.asarray(s, float)
        t = np.asarray(t, float)
        if self.bend_radius is None:
            local = np.stack([s, t, np.zeros_like(s)], -1)
        else:
            r = self.bend_radius
            a = s / abs(r)
            local = np.stack([abs(r) * np.sin(a), t, -np.sign(r) * abs(r) * (1 - np.cos(a))], -1)
        return local @ self.rotation.T + self.position

    def intersect(self, rays: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Where rays from the camera's centre along `rays` (..., 3) meet the surface:
        local coordinates s and t, and whether they meet it in front of the camera."""
        to_local = self.rotation.T
        origin = -(to_local @ self.position)
        d = rays @ to_local.T
        if self.bend_radius is None:
            lam = -origin[2] / d[..., 2]
            p = origin + lam[..., None] * d
            return p[..., 0], p[..., 1], lam > 0
        r = self.bend_radius
        ra = abs(r)
        axis_z = -np.sign(r) * ra  # the cylinder: x^2 + (z - axis_z)^2 = ra^2
        ox, oz = origin[0], origin[2] - axis_z
        dx, dz = d[..., 0], d[..., 2]
        qa = dx * dx + dz * dz
        qb = 2 * (ox * dx + oz * dz)
        qc = ox * ox + oz * oz - ra * ra
        disc = qb * qb - 4 * qa * qc
        meets = disc >= 0
        sq = np.sqrt(np.maximum(disc, 0))
        best_s = np.full(dx.shape, np.nan)
        best_t = np.full(dx.shape, np.nan)
        best_lam = np.full(dx.shape, np.inf)
        for lam in ((-qb - sq) / (2 * qa), (-qb + sq) / (2 * qa)):
            px = ox + lam * dx
            pz = oz + lam * dz
            # the sheet is the part of the cylinder facing local z = 0
            on_sheet = (pz / (np.sign(r) * ra) > 0.2) & meets & (lam > 0)
            s = np.arctan2(px, pz * np.sign(r)) * ra
            t = origin[1] + lam * d[..., 1]
            take = on_sheet & (lam < best_lam)
            best_s = np.where(take, s, best_s)
            best_t = np.where(take, t, best_t)
            best_lam = np.where(take, lam, best_lam)
        return np.nan_to_num(best_s), np.nan_to_num(best_t), np.isfinite(best_lam)


@dataclass(frozen=True)
class _Texture:
    """A carrier's texture and how it lies on its surface."""

    values: np.ndarray  # float32 (h, w): reflectance of paper, radiance of a screen
    origin: tuple[float, float]  # texel (x, y) at the code's centre, (s, t) = (0, 0)
    texels_per_metre: float
    extent: tuple[float, float, float, float]  # s0, s1, t0, t1 of the whole carrier


def _placement(
    values: np.ndarray, code_x: int, code_y: int, n: int, texels_per_module: int, module_m: float
) -> _Texture:
    origin = (code_x + n * texels_per_module / 2.0, code_y + n * texels_per_module / 2.0)
    scale = texels_per_module / module_m
    extent = (
        -origin[0] / scale,
        (values.shape[1] - origin[0]) / scale,
        -origin[1] / scale,
        (values.shape[0] - origin[1]) / scale,
    )
    return _Texture(values, origin, scale, extent)


def _outline(surface: _Surface, extent: tuple[float, float, float, float]) -> np.ndarray:
    """Camera-space points along the edge of the carrier (9 a side, for bent ones)."""
    s0, s1, t0, t1 = extent
    es, et = np.linspace(s0, s1, 9), np.linspace(t0, t1, 9)
    edge = np.array([(a, b) for a in es for b in (t0, t1)] + [(b, a) for a in et for b in (s0, s1)])
    return surface.point(edge[:, 0], edge[:, 1])


def _render(
    frame: np.ndarray,
    camera: np.ndarray,
    surface: _Surface,
    texture: np.ndarray,
    placement: _Texture,
    outline: np.ndarray,
) -> np.ndarray | None:
    """Cast rays through the carrier's box in `frame` at 2x2 a pixel, sample `texture`
    where they meet the carrier, average, and blend into `frame` in place. Returns the
    carrier's coverage of each frame pixel, or None if it is outside the frame."""
    h, w = frame.shape
    corners = _project(camera, outline)
    x0 = int(max(0, math.floor(corners[:, 0].min()) - 2))
    x1 = int(min(w, math.ceil(corners[:, 0].max()) + 2))
    y0 = int(max(0, math.floor(corners[:, 1].min()) - 2))
    y1 = int(min(h, math.ceil(corners[:, 1].max()) + 2))
    if x1 <= x0 or y1 <= y0:
        return None
    ss = RAYS_PER_PIXEL_SIDE
    rows, cols = (y1 - y0) * ss, (x1 - x0) * ss
    ys = y0 + (np.arange(rows, dtype=np.float64) + 0.5) / ss
    xs = x0 + (np.arange(cols, dtype=np.float64) + 0.5) / ss
    rays = np.empty((rows, cols, 3))
    rays[..., 0] = ((xs - camera[0, 2]) / camera[0, 0])[None, :]
    rays[..., 1] = ((ys - camera[1, 2]) / camera[1, 1])[:, None]
    rays[..., 2] = 1.0
    s, t, valid = surface.intersect(rays)
    s0, s1, t0, t1 = placement.extent
    inside = valid & (s >= s0) & (s <= s1) & (t >= t0) & (t <= t1)
    map_x = (placement.origin[0] + s * placement.texels_per_metre).astype(np.float32)
    map_y = (placement.origin[1] + t * placement.texels_per_metre).astype(np.float32)
    values = cv2.remap(texture, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    alpha = inside.astype(np.float32)
    values = cv2.resize(values * alpha, (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA)
    alpha = cv2.resize(alpha, (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA)
    with np.errstate(invalid="ignore", divide="ignore"):
        colour = np.where(alpha > 1e-6, values / np.maximum(alpha, 1e-6), 0)
    box = frame[y0:y1, x0:x1]
    frame[y0:y1, x0:x1] = box * (1 - alpha) + colour * alpha
    coverage = np.zeros((h, w), np.float32)
    coverage[y0:y1, x0:x1] = alpha
    return coverage


def _pose(
    rng: np.random.Generator,
    camera: np.ndarray,
    frame_size: tuple[int, int],
    n: int,
    module_px: float,
    side_m: float,
    tilt: float,
    roll: float,
    region: tuple[float, float, float, float],
    bend_radius: float | None,
) -> _Surface | None:
    """A surface for a code of `n` modules and `side_m` metres, far enough for modules of
    about `module_px`, whose centre lies in region[0:2] horizontally and whose code and a
    4-module margin lie inside the frame and within region[2:4]; None after 40 tries."""
    w, h = frame_size
    f = camera[0, 0]
    depth = f * side_m / (module_px * n)
    axis_angle = rng.uniform(0, 2 * math.pi)
    rotation = _rotation((math.cos(axis_angle), math.sin(axis_angle), 0), tilt) @ _rotation(
        (0, 0, 1), roll
    )
    half = side_m / 2
    margin = side_m / n * 4
    ss = np.linspace(-half - margin, half + margin, 9)
    edge = np.array(
        [(a, b) for a in ss for b in (ss[0], ss[-1])]
        + [(b, a) for a in ss for b in (ss[0], ss[-1])]
    )
    for _ in range(40):
        cx = rng.uniform(region[0], region[1])
        cy = rng.uniform(0.15 * h, 0.85 * h)
        position = depth * np.array([(cx - camera[0, 2]) / f, (cy - camera[1, 2]) / f, 1.0])
        surface = _Surface(rotation, position, bend_radius)
        points = surface.point(edge[:, 0], edge[:, 1])
        if (points[:, 2] <= 0.05).any():
            continue
        pp = _project(camera, points)
        lo, hi = pp.min(0), pp.max(0)
        if (
            lo[0] > 4
            and hi[0] < w - 4
            and lo[1] > 4
            and hi[1] < h - 4
            and lo[0] >= region[2]
            and hi[0] <= region[3]
        ):
            return surface
    return None


def _code_corners(
    camera: np.ndarray, surface: _Surface, side_m: float, n: int
) -> tuple[np.ndarray, float, float]:
    """The code's corners in the frame (TL, TR, BR, BL), its module size in px (from the
    area) and its smallest module size (from the shortest side)."""
    half = side_m / 2
    corners = np.array([(-half, -half), (half, -half), (half, half), (-half, half)])
    pp = _project(camera, surface.point(corners[:, 0], corners[:, 1]))
    sides = [np.linalg.norm(pp[(i + 1) % 4] - pp[i]) for i in range(4)]
    area = 0.5 * abs(
        np.dot(pp[:, 0], np.roll(pp[:, 1], 1)) - np.dot(pp[:, 1], np.roll(pp[:, 0], 1))
    )
    return pp, math.sqrt(area) / n, min(sides) / n


# ------------------------------------------------------------------------- textures


def text_lines(
    rng: np.random.Generator, img: np.ndarray, lines: int, tone_a: float, tone_b: float
) -> None:
    """Blend `lines` lines of random text into float `img` in place, each at a random
    place, size and tone between `tone_a` and `tone_b`."""
    h, w = img.shape
    for _ in range(lines):
        text = "".join(rng.choice(list(TEXT_CHARS), int(rng.integers(5, 30))))
        font = int(rng.choice(TEXT_FONTS))
        scale = rng.uniform(0.4, 2.0) * w / 640
        thickness = int(rng.integers(1, 4))
        ink = np.zeros((h, w), np.uint8)
        cv2.putText(
            ink,
            text,
            (int(rng.uniform(-50, w)), int(rng.uniform(0, h + 20))),
            font,
            scale,
            255,
            thickness,
            cv2.LINE_AA,
        )
        alpha = ink.astype(np.float32) / 255
        tone = float(rng.uniform(min(tone_a, tone_b), max(tone_a, tone_b)))
        img[:] = img * (1 - alpha) + tone * alpha


def _code_texture(
    modules: np.ndarray, quiet: int, texels_per_module: int, dark: float, light: float
) -> tuple[np.ndarray, int]:
    """The code with `quiet` light modules around it; returns it and the code's offset."""
    n = modules.shape[0]
    side = (n + 2 * quiet) * texels_per_module
    tex = np.full((side, side), light, np.float32)
    off = quiet * texels_per_module
    big = np.kron(modules.astype(np.float32), np.ones((texels_per_module,) * 2, np.float32))
    tex[off : off + n * texels_per_module, off : off + n * texels_per_module] = np.where(
        big > 0.5, dark, light
    )
    return tex, off


def _paint_fingertip(
    rng: np.random.Generator,
    tex: np.ndarray,
    code_x: int,
    code_y: int,
    texels_per_module: int,
    n: int,
    skin: float,
) -> tuple[str, float]:
    """Paint a fingertip over the code's bottom-right corner or the middle of its bottom or
    right edge, away from the three finder patterns. Returns where, and the share of the
    code it covers."""
    where = str(rng.choice(["br_corner", "bottom_mid", "right_mid"]))
    if where == "br_corner":
        cx, cy = n - rng.uniform(0, 3), n - rng.uniform(0, 3)
        angle = rng.uniform(20, 70)
    elif where == "bottom_mid":
        cx, cy = rng.uniform(10, n - 10), n + rng.uniform(-1, 1.5)
        angle = rng.uniform(70, 110)
    else:
        cx, cy = n + rng.uniform(-1, 1.5), rng.uniform(10, n - 10)
        angle = rng.uniform(-20, 20)
    width = rng.uniform(3.0, 5.5)  # modules
    reach = rng.uniform(2.0, 5.0)  # how far the tip enters the code, in modules
    along = np.array([math.cos(math.radians(angle)), math.sin(math.radians(angle))])
    centre = np.array([cx, cy]) - along * reach + along * 12
    tpm = texels_per_module
    # cv2's shift=2: coordinates in quarter texels
    centre_q = (int((code_x + centre[0] * tpm) * 4), int((code_y + centre[1] * tpm) * 4))
    axes_q = (int(12 * tpm * 4), int(width / 2 * tpm * 4))
    mask = np.zeros(tex.shape, np.uint8)
    cv2.ellipse(mask, centre_q, axes_q, angle, 0, 360, 1, -1, lineType=cv2.LINE_AA, shift=2)
    covered = mask.astype(bool)
    tex[covered] = skin * (0.75 + 0.25 * rng.random())
    code = covered[code_y : code_y + n * tpm, code_x : code_x + n * tpm]
    return where, float(code.mean())


def _rounded_rect_mask(h: int, w: int, radius: int) -> np.ndarray:
    mask = np.zeros((h, w), np.uint8)
    r = int(max(0, min(radius, h // 2 - 1, w // 2 - 1)))
    cv2.rectangle(mask, (r, 0), (w - 1 - r, h - 1), 1, -1)
    cv2.rectangle(mask, (0, r), (w - 1, h - 1 - r), 1, -1)
    for cx, cy in ((r, r), (w - 1 - r, r), (r, h - 1 - r), (w - 1 - r, h - 1 - r)):
        cv2.circle(mask, (cx, cy), r, 1, -1)
    return mask.astype(bool)


def _phone_texture(
    rng: np.random.Generator, modules: np.ndarray, texels_per_module: int, record: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray, int, int, int]:
    """A phone showing the code: screen radiance with app chrome, moire and a fingertip,
    inside a dark bezel. Returns the texture, its rounded outline (True inside), the
    code's texel offset (x, y) and the texels per module."""
    n = modules.shape[0]
    tpm = texels_per_module
    dark_mode = rng.random() < 0.35
    record["inverted"] = bool(dark_mode)
    brightness = float(rng.uniform(1.0, 3.0))  # relative to white paper under the room light
    if dark_mode:  # dark modules are shown light
        dark = brightness * rng.uniform(0.6, 1.0)
        light = brightness * rng.uniform(0.01, 0.08)
    else:
        dark, light = brightness * rng.uniform(0.0, 0.04), brightness
    quiet = 4 + int(rng.integers(0, 3))
    record["quiet_zone_modules"] = quiet
    moire = rng.random() < 0.6
    record["moire"] = bool(moire)
    texels_per_pixel = 3  # texels per screen pixel, when the pixel grid is drawn
    if moire:
        tpm = int(rng.integers(5, 14)) * texels_per_pixel  # 5-13 screen pixels per module
    code, off = _code_texture(modules, quiet, tpm, dark, light)
    chrome_top = int(tpm * rng.uniform(6, 14))  # status bar and app header, then the foot
    chrome_bottom = int(tpm * rng.uniform(6, 16))
    screen = np.full((code.shape[0] + chrome_top + chrome_bottom, code.shape[1]), light, np.float32)
    screen[chrome_top : chrome_top + code.shape[0]] = code
    text_lines(rng, screen[: chrome_top - tpm], 2, dark * 0.5 + light * 0.5, dark)
    code_x, code_y = off, off + chrome_top
    if moire:
        grid_x = np.ones(screen.shape[1], np.float32)
        grid_x[::texels_per_pixel] = rng.uniform(0.35, 0.7)
        grid_y = np.ones(screen.shape[0], np.float32)
        grid_y[::texels_per_pixel] = rng.uniform(0.5, 0.85)
        screen *= grid_y[:, None] * grid_x[None, :]
    _maybe_fingertip(rng, screen, code_x, code_y, tpm, n, (0.2, 0.5), record)
    bezel = int(tpm * rng.uniform(1.0, 3.0))
    phone = np.full(
        (screen.shape[0] + 2 * bezel, screen.shape[1] + 2 * bezel),
        rng.uniform(0.01, 0.06),
        np.float32,
    )
    phone[bezel : bezel + screen.shape[0], bezel : bezel + screen.shape[1]] = screen
    outline = _rounded_rect_mask(*phone.shape, int(tpm * rng.uniform(2, 6)))
    return phone, outline, code_x + bezel, code_y + bezel, tpm


def _paper_texture(
    rng: np.random.Generator,
    modules: np.ndarray,
    texels_per_module: int,
    carrier: str,
    low_contrast_only: bool,
    record: dict[str, Any],
) -> tuple[np.ndarray, int, int]:
    """The code printed on a poster, sticker or table tent: reflectance with normal, faded
    or low-contrast ink, text in the margins, blotches and a fingertip. Returns the
    texture and the code's texel offset (x, y)."""
    n = modules.shape[0]
    tpm = texels_per_module
    paper = float(rng.uniform(0.6, 0.9) if carrier == "poster" else rng.uniform(0.65, 0.92))
    print_kind = str(rng.choice(PRINTS, p=PRINT_WEIGHTS))
    if low_contrast_only:
        print_kind = "low_contrast"
    record["print"] = print_kind
    if print_kind == "normal":
        ink = rng.uniform(0.03, 0.1)
    elif print_kind == "faded":
        ink = rng.uniform(0.2, 0.4)
    else:
        ink = paper * rng.uniform(0.45, 0.65)
    # a quiet zone is drawn for each kind, in this order, and the carrier's is kept
    quiet_by_carrier = {
        "poster": 4 + int(rng.integers(0, 8)),
        "sticker": int(rng.integers(2, 5)),
        "table_tent": 4 + int(rng.integers(0, 4)),
    }
    quiet = quiet_by_carrier[carrier]
    record["quiet_zone_modules"] = quiet
    tex, off = _code_texture(modules, quiet, tpm, ink, paper)
    code_x = code_y = off
    if carrier in ("poster", "table_tent"):  # a sheet larger than the code, text around it
        top, bottom, left, right = (int(tpm * rng.uniform(2, 20)) for _ in range(4))
        sheet = np.full(
            (tex.shape[0] + top + bottom, tex.shape[1] + left + right), paper, np.float32
        )
        sheet[top : top + tex.shape[0], left : left + tex.shape[1]] = tex
        if top > 3 * tpm:
            text_lines(rng, sheet[: top - tpm], 3, ink, ink + 0.2)
        if bottom > 3 * tpm:
            text_lines(rng, sheet[top + tex.shape[0] + tpm :], 3, ink, ink + 0.2)
        tex = sheet
        code_x += left
        code_y += top
    if print_kind != "normal":  # uneven fading: blotches where the ink is
        blotches = cv2.resize(
            rng.random((16, 16)).astype(np.float32), tex.shape[::-1], interpolation=cv2.INTER_CUBIC
        )
        tex = tex + (paper - tex) * 0.25 * blotches * (tex < paper * 0.9)
    _maybe_fingertip(rng, tex, code_x, code_y, tpm, n, (0.3, 0.6), record)
    return tex, code_x, code_y


def _maybe_fingertip(
    rng: np.random.Generator,
    tex: np.ndarray,
    code_x: int,
    code_y: int,
    texels_per_module: int,
    n: int,
    skin_range: tuple[float, float],
    record: dict[str, Any],
) -> None:
    """In a fifth of the carriers, a fingertip over part of the code."""
    record["occluded"] = False
    if rng.random() < 0.2:
        record["occluded"] = True
        skin = float(rng.uniform(*skin_range))
        record["finger_at"], record["finger_fraction"] = _paint_fingertip(
            rng, tex, code_x, code_y, texels_per_module, n, skin
        )


# ------------------------------------------------------------------------- carriers


def _add_code(
    rng: np.random.Generator,
    scene: np.ndarray,
    camera: np.ndarray,
    region: tuple[float, float, float, float],
    token: str,
    version: int,
    low_contrast_only: bool,
) -> tuple[dict[str, Any], np.ndarray | None] | None:
    """Render one code on its carrier into `scene` in place. Returns the code's record
    and, for a phone, its screen's coverage of the frame; None if it could not be placed."""
    h, w = scene.shape
    modules = _qr_modules(token, version)
    n = modules.shape[0]
    carrier = str(rng.choice(CARRIERS, p=CARRIER_WEIGHTS))
    if low_contrast_only and carrier == "phone":
        carrier = PAPER_CARRIERS[int(rng.integers(0, 3))]
    record: dict[str, Any] = {"text": token, "carrier": carrier, "version": version}
    module_px = float(math.exp(rng.uniform(math.log(1.5), math.log(12.0))))
    tilt = float(math.radians(rng.uniform(0, 50) if rng.random() < 0.8 else rng.uniform(0, 15)))
    roll = float(rng.uniform(0, 2 * math.pi))
    record["roll_deg"] = round(math.degrees(roll), 1)
    side_m = CODE_SIDE_M[carrier] * rng.uniform(0.8, 1.25)
    bend_radius = None
    if carrier == "sticker" and rng.random() < 0.6:
        bend_radius = float(side_m * rng.uniform(0.6, 2.5) * rng.choice([-1, 1]))
    record["bent"] = bend_radius is not None
    module_px = min(module_px, 0.85 * min(h, region[3] - region[2]) / (n + 8))  # it must fit
    surface = None
    for _ in range(6):  # closer and less tilted until it fits
        surface = _pose(rng, camera, (w, h), n, module_px, side_m, tilt, roll, region, bend_radius)
        if surface is not None:
            break
        module_px *= 0.85
        tilt *= 0.85
    if surface is None:
        return None
    record["tilt_deg"] = round(math.degrees(tilt), 1)
    # 1.5 texels for each ray across a module, and 4-40 texels a module
    tpm = int(np.clip(math.ceil(module_px * RAYS_PER_PIXEL_SIDE * 1.5), 4, 40))
    if carrier == "phone":
        tex, outline_mask, code_x, code_y, tpm = _phone_texture(rng, modules, tpm, record)
    else:
        record["inverted"] = False
        tex, code_x, code_y = _paper_texture(rng, modules, tpm, carrier, low_contrast_only, record)
    placement = _placement(tex, code_x, code_y, n, tpm, side_m / n)
    outline = _outline(surface, placement.extent)
    if (outline[:, 2] <= 0.01).any():
        return None
    screen = None
    if carrier == "phone":
        hand_skin = _add_hand(rng, scene, camera, outline)
        record["hand_skin"] = hand_skin
        alpha = outline_mask.astype(np.float32)
        screen = np.zeros_like(scene)
        covered = _render(screen, camera, surface, alpha, placement, outline)
        radiance = np.zeros_like(scene)
        _render(radiance, camera, surface, tex * alpha, placement, outline)
        if covered is None:
            return None
        scene[:] = scene * (1 - screen) + radiance
    elif _render(scene, camera, surface, tex, placement, outline) is None:
        return None
    corners, module_px_mean, module_px_min = _code_corners(camera, surface, side_m, n)
    record.update(
        module_px=round(float(module_px_mean), 2),
        module_px_min=round(float(module_px_min), 2),
        side_px=round(float(module_px_mean) * n, 1),
        corners=corners.round(1).tolist(),
    )
    if carrier == "phone" and rng.random() < 0.5:
        _add_fingers(rng, scene, camera, outline, module_px_mean, record["hand_skin"])
    return record, screen


def _add_hand(
    rng: np.random.Generator, scene: np.ndarray, camera: np.ndarray, outline: np.ndarray
) -> float:
    """A hand behind the phone, drawn before it; returns its tone rounded to 2 places (the
    fingers over the phone's edges take that rounded tone)."""
    pp = _project(camera, outline)
    centre = pp.mean(0)
    skin = float(rng.uniform(0.15, 0.55))
    extent = np.ptp(pp, 0)
    cv2.ellipse(
        scene,
        (int(centre[0]), int(centre[1] + extent[1] * 0.35)),
        (int(extent[0] * 0.7), int(extent[1] * 0.45)),
        float(rng.uniform(-30, 30)),
        0,
        360,
        skin,
        -1,
        cv2.LINE_AA,
    )
    return round(skin, 2)


def _add_fingers(
    rng: np.random.Generator,
    scene: np.ndarray,
    camera: np.ndarray,
    outline: np.ndarray,
    module_px: float,
    skin: float,
) -> None:
    """One or two fingers over the phone's edges, drawn over it."""
    pp = _project(camera, outline)
    for _ in range(int(rng.integers(1, 3))):
        k = int(rng.integers(0, len(pp)))
        cv2.ellipse(
            scene,
            (int(pp[k, 0]), int(pp[k, 1])),
            (int(max(3, module_px * 4)), int(max(2, module_px * 2))),
            float(rng.uniform(0, 180)),
            0,
            360,
            skin,
            -1,
            cv2.LINE_AA,
        )


def add_codes(
    rng: np.random.Generator,
    scene: np.ndarray,
    camera: np.ndarray,
    n_codes: int,
    low_contrast_only: bool,
) -> tuple[list[dict[str, Any]], np.ndarray]:
    """Draw `n_codes` codes (two: one in each half of the frame). Returns the records of
    those placed and the frame's screen coverage (where light is emitted, not reflected)."""
    h, w = scene.shape
    if n_codes == 2:
        regions = [(0.15 * w, 0.45 * w, 0, 0.5 * w), (0.55 * w, 0.85 * w, 0.5 * w, w)]
    else:
        regions = [(0.2 * w, 0.8 * w, 0, w)]
    codes: list[dict[str, Any]] = []
    screens = np.zeros((h, w), np.float32)
    for region in regions[:n_codes]:
        version = int(rng.integers(2, 5))
        token = _check_in_token(rng, version)
        if n_codes == 2:
            # A draw the scratch generator made and never used, kept so that the frames
            # stay those its figures were measured on.
            rng.random()
        added = _add_code(rng, scene, camera, region, token, version, low_contrast_only)
        if added is None:
            continue
        record, screen = added
        codes.append(record)
        if screen is not None:
            screens = np.maximum(screens, screen)
    return codes, screens
