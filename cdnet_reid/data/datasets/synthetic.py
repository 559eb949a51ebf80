"""``SyntheticReID``: a small, deterministic, procedurally drawn person re-ID dataset.

This is the built-in dataset used by the README demo: it needs no download and is generated
on first use (a couple of seconds on a laptop CPU) into ``<root>/SyntheticReID`` with exactly
the **Market-1501 layout and file naming**::

    <root>/SyntheticReID/
        bounding_box_train/0002_c1s1_000451_01.jpg   # <pid:04d>_c<cam, 1-based>s<seq>_<frame:06d>_<box:02d>.jpg
        query/...
        bounding_box_test/...                         # also holds distractors (pid 0000) and junk (pid -1)
        .complete                                     # JSON marker: generator version, arguments, counts

so the same parser logic (and any Market-style tooling) works on it.

Why it is a real re-identification task and not noise
-----------------------------------------------------
Every identity is a cartoon pedestrian (head, hair, torso, arms, legs, shoes, optional hat /
backpack / shoulder bag / handbag) whose **identity lives in its clothing**: upper-body colour,
torso pattern (plain, horizontal or vertical stripes, checks, chest logo, colour block) with a
second colour, sleeve length, lower-body colour and garment (trousers / shorts / skirt), shoe,
hair and skin colours, accessories and their colours, and body build (width, leg length).
Attributes are drawn from small palettes with a seeded RNG, so identities are distinguishable
(the discrete "signature" upper colour x pattern x lower colour x accessory is unique per id)
yet many ids share individual attributes (e.g. several ids wear a black top), so a model has to
combine cues. The **camera** changes everything that is *not* identity: each of the cameras has
its own background (gradient street, wall and floor, bricks, foliage, crosswalk, shop fronts)
and clutter, its own lighting (brightness, contrast, colour cast) and noise level, and some
cameras blur or are low resolution; the figure's scale and position in the crop, the viewpoint
(front/back: logos are only visible from the front, a backpack only fully from the back), the
arm/leg pose and mirroring vary per tracklet and per image, and some images are partially
occluded. Images of one identity in one camera come from one "tracklet" (near duplicates), which
is why the standard same-id-same-camera junk rule of the evaluation matters.

Splits follow Market-1501: training and test identities are disjoint; every test identity has
one query image in each of ``query_cams_per_id`` cameras and ``gallery_per_id`` gallery images
spread over at least two cameras including the query cameras; the gallery also contains
``num_distractors`` images of people outside the id set (pid ``0``, Market's distractor
convention, kept as a non-matching identity) and ``num_junk`` bad detections (pid ``-1``, named
``-1_c1s1_...jpg`` as in Market) which the parser drops.

Generation is deterministic (seeded ``numpy.random.RandomState`` per identity / camera /
tracklet / image plus OpenCV drawing): the same arguments give the same pixels on every run.

Caching, non-default arguments and concurrency
----------------------------------------------
With the default arguments the data lives in ``<root>/SyntheticReID``; with any non-default
argument it lives in ``<root>/SyntheticReID-<10 hex digits of a hash of the arguments>`` so
several sizes can coexist without regenerating back and forth. A folder is trusted only if its
``.complete`` marker matches the generator version and arguments and the file counts match;
otherwise it is regenerated. Generation writes into a hidden temporary sibling folder which is
renamed into place only when complete (the marker is written last), so a kill mid-generation
never leaves a half dataset that is trusted later. If two processes (e.g. two distributed ranks)
generate at once, whoever loses the rename race discards its copy and uses the winner's folder.
"""

import hashlib
import json
import logging
import os
import re
import shutil
import time
import uuid
from typing import Dict, List, Optional, Tuple

import cv2
import numpy as np

from . import DATASET_REGISTRY
from .bases import ReidDataset

logger = logging.getLogger(__name__)

__all__ = ["SyntheticReID", "generate_synthetic_reid", "DEFAULT_ARGS", "GENERATOR_VERSION"]

#: Bump when the generator's output changes; folders with an older marker get regenerated.
GENERATOR_VERSION = 1

#: Default constructor arguments (the README demo's dataset).
DEFAULT_ARGS: Dict[str, int] = dict(
    num_train_ids=64,       # training identities
    num_test_ids=64,        # test identities (disjoint from the training ones)
    num_cameras=6,          # cameras (camid 0..num_cameras-1)
    images_per_id=14,       # training images per training identity, over 2..5 cameras
    query_cams_per_id=2,    # one query image per (test id, camera) for this many cameras
    gallery_per_id=8,       # gallery images per test identity (query cameras + other cameras)
    num_distractors=100,    # gallery images of people outside the id set, pid 0
    num_junk=20,            # bad detections in the gallery folder, pid -1 (dropped by the parser)
    height=128,             # crop height
    width=64,               # crop width
    seed=0,                 # everything is derived from this seed
)

SUBSETS = ("bounding_box_train", "query", "bounding_box_test")
MARKER = ".complete"
_NAME_RE = re.compile(r"^(-?\d+)_c(\d+)")
_SS = 2  # super-sampling factor of the drawing canvas (anti-aliasing)

# ----------------------------------------------------------------------------- palettes (RGB)
UPPER_COLORS = {
    "white": (236, 236, 232), "light_grey": (172, 174, 178), "grey": (105, 106, 112),
    "black": (28, 28, 32), "red": (205, 32, 38), "dark_red": (118, 22, 34),
    "orange": (238, 122, 30), "yellow": (236, 206, 48), "green": (52, 152, 62),
    "dark_green": (30, 82, 44), "teal": (28, 142, 146), "light_blue": (122, 172, 232),
    "blue": (38, 72, 196), "navy": (26, 36, 88), "purple": (112, 50, 152),
    "pink": (232, 128, 172), "brown": (112, 70, 40), "beige": (212, 190, 148),
}
LOWER_COLORS = {
    "black": (26, 26, 30), "navy": (30, 38, 84), "denim": (68, 96, 142), "grey": (100, 100, 106),
    "light_grey": (170, 170, 172), "beige": (206, 186, 144), "brown": (96, 62, 36),
    "khaki": (150, 140, 92), "dark_green": (40, 72, 46), "white": (230, 230, 226),
    "red": (176, 34, 40), "light_blue": (130, 170, 214),
}
SHOE_COLORS = {"black": (22, 22, 24), "white": (236, 236, 236), "brown": (92, 58, 32),
               "grey": (128, 128, 132), "red": (190, 36, 40), "blue": (40, 70, 180)}
HAIR_COLORS = {"black": (24, 20, 20), "dark_brown": (58, 38, 24), "brown": (112, 76, 42),
               "blond": (204, 172, 104), "grey": (156, 154, 150)}
SKIN_COLORS = [(244, 208, 182), (226, 184, 150), (196, 150, 112), (150, 104, 72), (102, 70, 48)]

PATTERNS = ("plain", "hstripes", "vstripes", "checks", "logo", "block")
PATTERN_P = (0.34, 0.15, 0.10, 0.10, 0.16, 0.15)
LOWER_TYPES = ("trousers", "shorts", "skirt")
LOWER_TYPE_P = (0.64, 0.21, 0.15)
ACCESSORIES = ("none", "backpack", "shoulder_bag", "handbag")
ACCESSORY_P = (0.40, 0.25, 0.20, 0.15)
BACKGROUNDS = ("gradient", "wall_floor", "bricks", "foliage", "crosswalk", "shops")


def _rng(*key: int) -> np.random.RandomState:
    """A RandomState seeded by a tuple of non-negative ints (independent streams per key)."""
    return np.random.RandomState([int(k) & 0xFFFFFFFF for k in key])


def _jitter_color(rng: np.random.RandomState, rgb, amount: float = 12.0) -> Tuple[float, float, float]:
    c = np.clip(np.asarray(rgb, np.float64) + rng.uniform(-amount, amount, 3), 0, 255)
    return tuple(float(v) for v in c)


def _bgr(rgb) -> Tuple[int, int, int]:
    return (int(round(rgb[2])), int(round(rgb[1])), int(round(rgb[0])))


def _shade(rgb, f: float) -> Tuple[float, float, float]:
    return tuple(float(min(255.0, v * f)) for v in rgb)


# ----------------------------------------------------------------------------- identities
def _sample_identity(rng: np.random.RandomState) -> dict:
    """Clothing / body attributes of one person. ``key`` is the discrete signature."""
    upper_names = list(UPPER_COLORS)
    lower_names = list(LOWER_COLORS)
    upper = upper_names[rng.randint(len(upper_names))]
    pattern = PATTERNS[rng.choice(len(PATTERNS), p=PATTERN_P)]
    second = upper
    while second == upper:  # the pattern's second colour must differ from the main one
        second = upper_names[rng.randint(len(upper_names))]
    lower = lower_names[rng.randint(len(lower_names))]
    accessory = ACCESSORIES[rng.choice(len(ACCESSORIES), p=ACCESSORY_P)]
    acc_color = upper_names[rng.randint(len(upper_names))]
    hat = bool(rng.rand() < 0.2)
    hat_color = upper_names[rng.randint(len(upper_names))]
    ident = {
        "key": (upper, pattern if pattern != "plain" else "plain",
                second if pattern != "plain" else "", lower, accessory),
        "upper": _jitter_color(rng, UPPER_COLORS[upper]),
        "pattern": pattern,
        "second": _jitter_color(rng, UPPER_COLORS[second]),
        "stripe": float(rng.uniform(0.035, 0.06)),       # stripe / check period (figure units)
        "long_sleeves": bool(rng.rand() < 0.55),
        "lower": _jitter_color(rng, LOWER_COLORS[lower]),
        "lower_type": LOWER_TYPES[rng.choice(len(LOWER_TYPES), p=LOWER_TYPE_P)],
        "shoes": _jitter_color(rng, SHOE_COLORS[list(SHOE_COLORS)[rng.randint(len(SHOE_COLORS))]], 8),
        "hair": _jitter_color(rng, HAIR_COLORS[list(HAIR_COLORS)[rng.randint(len(HAIR_COLORS))]], 8),
        "long_hair": bool(rng.rand() < 0.3),
        "skin": _jitter_color(rng, SKIN_COLORS[rng.randint(len(SKIN_COLORS))], 8),
        "accessory": accessory,
        "acc_color": _jitter_color(rng, UPPER_COLORS[acc_color]),
        "acc_side": int(rng.randint(2)) * 2 - 1,
        "hat": hat,
        "hat_color": _jitter_color(rng, UPPER_COLORS[hat_color]),
        "width": float(rng.uniform(0.85, 1.2)),         # body build
        "leg": float(rng.uniform(0.43, 0.50)),          # leg length (fraction of the height)
    }
    return ident


def _sample_identities(seed: int, n: int, rng_tag: int = 1) -> List[dict]:
    """``n`` identities with pairwise distinct discrete signatures (while the palette allows)."""
    rng = _rng(seed, rng_tag)
    out, seen = [], set()
    while len(out) < n:
        for _ in range(1000):
            ident = _sample_identity(rng)
            if ident["key"] not in seen:
                break
        seen.add(ident["key"])
        out.append(ident)
    return out


# ----------------------------------------------------------------------------- cameras
def _camera_config(seed: int, cam: int, num_cameras: int) -> dict:
    order = _rng(seed, 2).permutation(len(BACKGROUNDS))
    rng = _rng(seed, 3, cam)
    blurry = _rng(seed, 4).permutation(num_cameras)[: max(1, num_cameras // 3)]
    lowres = _rng(seed, 5).randint(num_cameras) if num_cameras >= 4 else -1
    return {
        "bg": BACKGROUNDS[order[cam % len(BACKGROUNDS)]],
        "c1": rng.uniform(40, 215, 3), "c2": rng.uniform(40, 215, 3),
        "gain": float(rng.uniform(0.72, 1.25)),
        "contrast": float(rng.uniform(0.75, 1.15)),
        "cast": rng.uniform(0.86, 1.14, 3),            # per channel (BGR) colour cast
        "blur": float(rng.uniform(0.8, 1.4)) if cam in blurry else float(rng.uniform(0.0, 0.35)),
        "lowres": cam == lowres,
        "noise": float(rng.uniform(2.0, 7.0)),
        "scale": float(rng.uniform(0.78, 0.92)),        # figure height / crop height
        "back_p": float(rng.uniform(0.2, 0.8)),         # probability of a back view
        "clutter_p": float(rng.uniform(0.1, 0.6)),
        "bg_seed": int(rng.randint(2 ** 31 - 1)),
    }


def _lowfreq(rng, h, w, cells_h, cells_w, amp):
    small = rng.uniform(-amp, amp, (cells_h, cells_w, 3)).astype(np.float32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def _camera_background(cfg: dict, h: int, w: int) -> np.ndarray:
    """A large float32 BGR background for one camera; images take random crops of it."""
    rng = _rng(cfg["bg_seed"])
    c1 = np.asarray(cfg["c1"], np.float32)
    c2 = np.asarray(cfg["c2"], np.float32)
    kind = cfg["bg"]
    yy = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None]
    img = np.empty((h, w, 3), np.float32)
    if kind == "gradient":
        img[:] = c1 * (1 - yy) + c2 * yy
    elif kind == "wall_floor":
        hor = int(h * rng.uniform(0.5, 0.65))
        img[:hor] = c1
        img[hor:] = c2
        for k in range(-6, 7):  # perspective floor lines
            x0 = int(w / 2 + k * w * 0.02)
            x1 = int(w / 2 + k * w * 0.35)
            cv2.line(img, (x0, hor), (x1, h), tuple(float(v) for v in c2 * 0.75), 2)
        cv2.line(img, (0, hor), (w, hor), tuple(float(v) for v in c1 * 0.6), 3)
    elif kind == "bricks":
        img[:] = c2 * 0.6 + 60
        bh, bw = int(rng.randint(14, 22)), int(rng.randint(34, 50))
        for r, y in enumerate(range(0, h, bh)):
            off = (r % 2) * bw // 2
            for x in range(-bw, w, bw):
                col = c1 * rng.uniform(0.8, 1.15)
                cv2.rectangle(img, (x + off + 2, y + 2), (x + off + bw - 2, y + bh - 2),
                              tuple(float(v) for v in col), -1)
    elif kind == "foliage":
        img[:] = c1 * 0.5 + np.array([30, 70, 40], np.float32)
        for _ in range(int(h * w / 400)):
            col = np.array([rng.uniform(20, 90), rng.uniform(80, 190), rng.uniform(20, 100)], np.float32)
            cv2.circle(img, (int(rng.randint(w)), int(rng.randint(h))), int(rng.randint(4, 14)),
                       tuple(float(v) for v in col), -1)
    elif kind == "crosswalk":
        img[:] = np.float32(70) + c1 * 0.25
        period = int(rng.randint(28, 44))
        band = tuple(float(v) for v in (np.float32(190) + c2 * 0.2))
        for x in range(-h, w + h, period):
            pts = np.array([[x, 0], [x + period // 2, 0], [x + period // 2 + h // 3, h], [x + h // 3, h]], np.int32)
            cv2.fillPoly(img, [pts], band)
    else:  # shops: vertical panels of assorted colours with window frames
        x = 0
        while x < w:
            pw = int(rng.randint(20, 60))
            col = rng.uniform(40, 220, 3).astype(np.float32)
            cv2.rectangle(img, (x, 0), (x + pw, h), tuple(float(v) for v in col), -1)
            cv2.rectangle(img, (x + 4, int(h * 0.15)), (x + pw - 4, int(h * 0.6)),
                          tuple(float(v) for v in col * 0.55), 2)
            x += pw
        img[int(h * 0.75):] = c2 * 0.7
    img += _lowfreq(rng, h, w, max(2, h // 24), max(2, w // 24), 22.0)
    return img


# ----------------------------------------------------------------------------- drawing
class _Figure:
    """Maps figure coordinates (x: body-width units around the centre, y: 0 = top of the head,
    1 = soles) onto canvas pixels."""

    def __init__(self, cx: float, top: float, fh: float, wscale: float):
        self.cx, self.top, self.fh, self.ws = cx, top, fh, wscale

    def p(self, x: float, y: float) -> Tuple[int, int]:
        return (int(round(self.cx + x * self.fh * self.ws)), int(round(self.top + y * self.fh)))

    def n(self, v: float, horizontal: bool = False) -> int:
        return max(1, int(round(v * self.fh * (self.ws if horizontal else 1.0))))


def _limb(canvas, pts, thick, color):
    for a, b in zip(pts[:-1], pts[1:]):
        cv2.line(canvas, a, b, color, thick, cv2.LINE_AA)
    for q in pts[1:-1]:
        cv2.circle(canvas, q, max(1, thick // 2), color, -1, cv2.LINE_AA)


def _draw_person(canvas: np.ndarray, ident: dict, pose: dict, fig: _Figure, grid) -> None:
    back = pose["back"]
    skin, hair = _bgr(ident["skin"]), _bgr(ident["hair"])
    upper, second, lower = _bgr(ident["upper"]), _bgr(ident["second"]), _bgr(ident["lower"])
    acc = _bgr(ident["acc_color"])
    acc_dark = _bgr(_shade(ident["acc_color"], 0.7))
    shoes = _bgr(ident["shoes"])
    y_sh = 0.165                       # shoulders
    y_hip = 1.0 - ident["leg"] - 0.035  # hips
    sw, ww = 0.135, 0.115              # half widths (body-width units) at shoulders / waist

    # backpack seen from the front: its sides peek out behind the torso
    if ident["accessory"] == "backpack" and not back:
        cv2.rectangle(canvas, fig.p(-sw - 0.025, y_sh + 0.03), fig.p(sw + 0.025, y_sh + 0.26), acc, -1)

    # long hair hangs behind the shoulders
    if ident["long_hair"]:
        cv2.rectangle(canvas, fig.p(-0.07, 0.06), fig.p(0.07, 0.26 if back else 0.2), hair, -1)

    # legs and shoes
    leg_t = fig.n(0.07 * ident["width"])
    knee_y = y_hip + (0.965 - y_hip) * 0.5
    legs = []
    for side, ang in ((-1, pose["leg_l"]), (1, pose["leg_r"])):
        hip = (side * 0.055, y_hip + 0.01)
        foot = (side * 0.06 + side * ang, 0.955)
        knee = ((hip[0] + foot[0]) / 2 + side * 0.008, knee_y)
        legs.append((hip, knee, foot))
    for hip, knee, foot in legs:
        pts = [fig.p(*hip), fig.p(*knee), fig.p(*foot)]
        lt = ident["lower_type"]
        if lt == "trousers":
            _limb(canvas, pts, leg_t, lower)
        else:
            _limb(canvas, pts, max(1, int(leg_t * 0.8)), skin)
            if lt == "shorts":
                mid = (hip[0] * 0.4 + knee[0] * 0.6, hip[1] * 0.4 + knee[1] * 0.6 + 0.03)
                _limb(canvas, [fig.p(*hip), fig.p(*mid)], leg_t + 1, lower)
        cv2.ellipse(canvas, fig.p(foot[0] + 0.012 * np.sign(foot[0]), 0.968), (fig.n(0.036), fig.n(0.018)),
                    0, 0, 360, shoes, -1, cv2.LINE_AA)
    # pelvis
    pel = np.array([fig.p(-ww, y_hip - 0.02), fig.p(ww, y_hip - 0.02), fig.p(ww * 0.95, y_hip + 0.06),
                    fig.p(-ww * 0.95, y_hip + 0.06)], np.int32)
    if ident["lower_type"] == "skirt":
        pel = np.array([fig.p(-ww, y_hip - 0.02), fig.p(ww, y_hip - 0.02), fig.p(ww + 0.05, y_hip + 0.2),
                        fig.p(-ww - 0.05, y_hip + 0.2)], np.int32)
    cv2.fillPoly(canvas, [pel], lower, cv2.LINE_AA)

    # torso with its pattern
    torso = np.array([fig.p(-sw, y_sh), fig.p(sw, y_sh), fig.p(ww, y_hip), fig.p(-ww, y_hip)], np.int32)
    x0, y0 = torso[:, 0].min(), torso[:, 1].min()
    x1, y1 = torso[:, 0].max() + 1, torso[:, 1].max() + 1
    h, w = canvas.shape[:2]
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    pattern = ident["pattern"]
    if pattern == "logo" and back:
        pattern = "plain"
    cv2.fillPoly(canvas, [torso], upper, cv2.LINE_AA)
    if pattern != "plain" and x1 > x0 and y1 > y0:
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        cv2.fillPoly(mask, [torso - np.array([x0, y0], np.int32)], 1)
        ys, xs = grid[0][y0:y1, x0:x1], grid[1][y0:y1, x0:x1]
        period = ident["stripe"] * fig.fh
        if pattern == "hstripes":
            sel = ((ys - y0) / period) % 2 < 1
        elif pattern == "vstripes":
            sel = ((xs - fig.cx) / period + 100.5) % 2 < 1
        elif pattern == "checks":
            sel = ((((ys - y0) / period) // 1 + ((xs - fig.cx) / period + 100) // 1) % 2) < 1
        elif pattern == "block":
            sel = ys < y0 + (y1 - y0) * 0.42
        else:  # logo: a chest badge
            r = 0.055 * fig.fh
            sel = ((xs - fig.cx) ** 2 + (ys - (y0 + 0.11 * fig.fh)) ** 2) < r * r
        sel &= mask.astype(bool)
        canvas[y0:y1, x0:x1][sel] = second

    # arms (sleeves) and hands
    arm_t = fig.n(0.052 * ident["width"])
    for side, ang, bend in ((-1, pose["arm_l"], pose["bend_l"]), (1, pose["arm_r"], pose["bend_r"])):
        sh = (side * (sw - 0.015), y_sh + 0.02)
        el = (sh[0] + side * np.sin(ang) * 0.17 / ident["width"], sh[1] + np.cos(ang) * 0.17)
        a2 = ang - bend
        ha = (el[0] + side * np.sin(a2) * 0.16 / ident["width"], el[1] + np.cos(a2) * 0.16)
        if ident["long_sleeves"]:
            _limb(canvas, [fig.p(*sh), fig.p(*el), fig.p(*ha)], arm_t, upper)
        else:
            _limb(canvas, [fig.p(*el), fig.p(*ha)], max(1, int(arm_t * 0.85)), skin)
            mid = (sh[0] * 0.35 + el[0] * 0.65, sh[1] * 0.35 + el[1] * 0.65)
            _limb(canvas, [fig.p(*sh), fig.p(*mid)], arm_t + 1, upper)
        cv2.circle(canvas, fig.p(*ha), fig.n(0.024), skin, -1, cv2.LINE_AA)
        if ident["accessory"] == "handbag" and side == ident["acc_side"]:
            bx, by = fig.p(ha[0], ha[1] + 0.01)
            bw2, bh2 = fig.n(0.06, True), fig.n(0.09)
            cv2.rectangle(canvas, (bx - bw2, by), (bx + bw2, by + bh2), acc, -1)
            cv2.line(canvas, (bx - bw2, by), (bx, by - bh2 // 2), acc_dark, 2)
            cv2.line(canvas, (bx + bw2, by), (bx, by - bh2 // 2), acc_dark, 2)

    # neck and head
    cv2.rectangle(canvas, fig.p(-0.03, 0.11), fig.p(0.03, y_sh + 0.01), skin, -1)
    head_c, head_ax = fig.p(0.0, 0.07), (fig.n(0.052, True), fig.n(0.066))
    if back:
        cv2.ellipse(canvas, head_c, head_ax, 0, 0, 360, hair, -1, cv2.LINE_AA)
    else:
        cv2.ellipse(canvas, head_c, head_ax, 0, 0, 360, skin, -1, cv2.LINE_AA)
        cv2.ellipse(canvas, fig.p(0.0, 0.062), (head_ax[0] + 1, head_ax[1]), 0, 180, 360, hair, -1, cv2.LINE_AA)
    if ident["hat"]:
        hat = _bgr(ident["hat_color"])
        cv2.ellipse(canvas, fig.p(0.0, 0.045), (head_ax[0] + 2, int(head_ax[1] * 0.85)), 0, 180, 360, hat, -1,
                    cv2.LINE_AA)
        cv2.line(canvas, fig.p(-0.085, 0.045), fig.p(0.085, 0.045), _bgr(_shade(ident["hat_color"], 0.75)),
                 fig.n(0.018), cv2.LINE_AA)

    # accessories over the body
    a = ident["accessory"]
    if a == "backpack":
        if back:
            cv2.rectangle(canvas, fig.p(-sw + 0.02, y_sh + 0.02), fig.p(sw - 0.02, y_sh + 0.27), acc, -1)
            cv2.rectangle(canvas, fig.p(-sw + 0.05, y_sh + 0.15), fig.p(sw - 0.05, y_sh + 0.25), acc_dark, -1)
        else:
            for s in (-1, 1):
                cv2.line(canvas, fig.p(s * (sw - 0.04), y_sh), fig.p(s * (sw - 0.05), y_sh + 0.2), acc,
                         fig.n(0.022), cv2.LINE_AA)
    elif a == "shoulder_bag":
        s = ident["acc_side"]
        cv2.line(canvas, fig.p(-s * (sw - 0.03), y_sh), fig.p(s * ww, y_hip - 0.02), acc_dark, fig.n(0.016),
                 cv2.LINE_AA)
        cv2.rectangle(canvas, fig.p(s * ww - 0.07, y_hip - 0.06), fig.p(s * ww + 0.07, y_hip + 0.07), acc, -1)


# ----------------------------------------------------------------------------- one image
def _render_image(ident: dict, cam_cfg: dict, bg: np.ndarray, track: dict, rng: np.random.RandomState,
                  height: int, width: int, grid, noise_bank: np.ndarray, kind: str = "normal") -> np.ndarray:
    H2, W2 = height * _SS, width * _SS
    # background crop (the tracklet picks a place, images move a little)
    bh, bw = bg.shape[:2]
    oy = int(np.clip(track["bg_y"] + rng.randint(-6, 7), 0, bh - H2))
    ox = int(np.clip(track["bg_x"] + rng.randint(-6, 7), 0, bw - W2))
    canvas = bg[oy:oy + H2, ox:ox + W2].copy()
    canvas *= np.float32(rng.uniform(0.92, 1.08))

    # background clutter (objects / passers-by behind the person)
    if rng.rand() < cam_cfg["clutter_p"]:
        for _ in range(rng.randint(1, 3)):
            col = tuple(float(v) for v in rng.uniform(30, 230, 3))
            x, y = int(rng.randint(-W2 // 4, W2)), int(rng.randint(0, H2))
            rw = int(rng.randint(W2 // 6, W2 // 2))
            rh = int(rng.randint(H2 // 8, H2 // 2))
            cv2.rectangle(canvas, (x, y), (x + rw, y + rh), col, -1)

    # the person
    fh = H2 * float(np.clip(track["scale"] * rng.uniform(0.96, 1.04), 0.6, 1.0))
    top = (H2 - fh) / 2 + track["dy"] * H2 + rng.uniform(-0.015, 0.015) * H2
    cx = W2 / 2 + (track["dx"] + rng.uniform(-0.03, 0.03)) * W2
    fig = _Figure(cx, top, fh, ident["width"] * track["squash"])
    pose = {
        "back": track["back"],
        "arm_l": track["arm"] + rng.uniform(-0.12, 0.12), "arm_r": track["arm"] + rng.uniform(-0.12, 0.12),
        "bend_l": rng.uniform(0.0, 0.45), "bend_r": rng.uniform(0.0, 0.45),
        "leg_l": track["stride"] + rng.uniform(-0.03, 0.03), "leg_r": track["stride"] + rng.uniform(-0.03, 0.03),
    }
    _draw_person(canvas, ident, pose, fig, grid)

    # occluder in front (bench, car, pole)
    if rng.rand() < 0.07:
        col = tuple(float(v) for v in rng.uniform(30, 230, 3))
        if rng.rand() < 0.5:
            cv2.rectangle(canvas, (0, int(H2 * rng.uniform(0.7, 0.85))), (W2, H2), col, -1)
        else:
            x = int(rng.randint(0, W2))
            cv2.rectangle(canvas, (x, 0), (x + int(W2 * rng.uniform(0.08, 0.16)), H2), col, -1)

    if kind == "junk":  # a bad detection: a zoomed-in piece of the scene
        ch, cw = int(H2 * rng.uniform(0.3, 0.55)), int(W2 * rng.uniform(0.4, 0.8))
        y, x = int(rng.randint(0, H2 - ch + 1)), int(rng.randint(0, W2 - cw + 1))
        canvas = cv2.resize(np.ascontiguousarray(canvas[y:y + ch, x:x + cw]), (W2, H2), interpolation=cv2.INTER_LINEAR)

    img = cv2.resize(canvas, (width, height), interpolation=cv2.INTER_AREA)
    if cam_cfg["lowres"]:
        img = cv2.resize(cv2.resize(img, (width // 2, height // 2), interpolation=cv2.INTER_AREA),
                         (width, height), interpolation=cv2.INTER_LINEAR)
    sigma = cam_cfg["blur"] * rng.uniform(0.85, 1.15)
    if sigma > 0.25:
        img = cv2.GaussianBlur(img, (0, 0), sigma)
    # lighting: contrast around the mean, brightness gain and colour cast, with jitter
    mean = img.mean(axis=(0, 1), keepdims=True)
    contrast = cam_cfg["contrast"] * rng.uniform(0.93, 1.07)
    gain = cam_cfg["gain"] * rng.uniform(0.9, 1.1)
    cast = cam_cfg["cast"] * rng.uniform(0.97, 1.03, 3)
    img = ((img - mean) * contrast + mean) * (gain * cast).astype(np.float32)
    # sensor noise: a random window of a shared bank of N(0, 1) samples (much faster than drawing)
    ny, nx = int(rng.randint(noise_bank.shape[0] - height + 1)), int(rng.randint(noise_bank.shape[1] - width + 1))
    img += noise_bank[ny:ny + height, nx:nx + width] * np.float32(cam_cfg["noise"])
    if track["flip"]:
        img = img[:, ::-1]
    return np.clip(img, 0, 255).astype(np.uint8)


def _make_track(rng: np.random.RandomState, cam_cfg: dict, bg_shape, height: int, width: int) -> dict:
    H2, W2 = height * _SS, width * _SS
    return {
        "back": bool(rng.rand() < cam_cfg["back_p"]),
        "flip": bool(rng.rand() < 0.5),
        "scale": cam_cfg["scale"] * rng.uniform(0.92, 1.08),
        "dx": rng.uniform(-0.07, 0.07), "dy": rng.uniform(-0.03, 0.03),
        "squash": rng.uniform(0.85, 1.0),
        "arm": rng.uniform(0.05, 0.3), "stride": rng.uniform(-0.03, 0.08),
        "bg_y": int(rng.randint(0, bg_shape[0] - H2 + 1)), "bg_x": int(rng.randint(0, bg_shape[1] - W2 + 1)),
        "seq": int(rng.randint(1, 7)), "frame": int(rng.randint(0, 600000)),
    }


def _split_counts(rng: np.random.RandomState, n: int, k: int) -> np.ndarray:
    """``n`` items over ``k`` bins, at least one per bin (requires n >= k)."""
    return np.ones(k, np.int64) + rng.multinomial(n - k, np.full(k, 1.0 / k))


# ----------------------------------------------------------------------------- generation
def _check_args(args: dict) -> None:
    unknown = set(args) - set(DEFAULT_ARGS)
    if unknown:
        raise TypeError(f"unknown SyntheticReID arguments: {sorted(unknown)}")
    a = args
    if a["num_cameras"] < 2:
        raise ValueError("num_cameras must be >= 2")
    if not 1 <= a["query_cams_per_id"] <= a["num_cameras"]:
        raise ValueError("query_cams_per_id must be in [1, num_cameras]")
    if a["gallery_per_id"] < max(2, a["query_cams_per_id"]):
        raise ValueError("gallery_per_id must be >= max(2, query_cams_per_id)")
    if a["num_train_ids"] < 1 or a["num_test_ids"] < 1 or a["images_per_id"] < 1:
        raise ValueError("num_train_ids, num_test_ids and images_per_id must be >= 1")
    if a["num_distractors"] < 0 or a["num_junk"] < 0:
        raise ValueError("num_distractors and num_junk must be >= 0")
    if a["num_train_ids"] + a["num_test_ids"] > 9999:
        raise ValueError("at most 9999 identities (4-digit pids)")
    if a["height"] < 16 or a["width"] < 8:
        raise ValueError("height must be >= 16 and width >= 8")


def generate_synthetic_reid(out_dir: str, **kwargs) -> Dict[str, int]:
    """Write the dataset (``bounding_box_train``, ``query``, ``bounding_box_test``) into
    ``out_dir`` and return the number of files per folder. Deterministic in the arguments.
    No marker is written here (see :func:`_ensure_generated`)."""
    args = dict(DEFAULT_ARGS)
    args.update(kwargs)
    _check_args(args)
    seed, H, W, C = args["seed"], args["height"], args["width"], args["num_cameras"]
    n_train, n_test = args["num_train_ids"], args["num_test_ids"]

    # pids: Market-like sparse numbers in 1..max(1501, 2n), train / test disjoint, sorted
    rng = _rng(seed, 0)
    total = n_train + n_test
    pids = rng.choice(np.arange(1, max(1501, 2 * total) + 1), total, replace=False)
    train_pids, test_pids = sorted(int(p) for p in pids[:n_train]), sorted(int(p) for p in pids[n_train:])
    idents = _sample_identities(seed, total + args["num_distractors"] + args["num_junk"])
    ident_of = {pid: idents[i] for i, pid in enumerate(train_pids + test_pids)}
    extra = idents[total:]

    cams = [_camera_config(seed, c, C) for c in range(C)]
    bgs = [_camera_background(cfg, int(H * _SS * 1.5), int(W * _SS * 2.5)) for cfg in cams]
    grid = np.indices((H * _SS, W * _SS), dtype=np.float32)
    noise_bank = _rng(seed, 6).standard_normal((4 * H, 4 * W, 3)).astype(np.float32)

    for sub in SUBSETS:
        os.makedirs(os.path.join(out_dir, sub), exist_ok=True)
    names = {sub: set() for sub in SUBSETS}

    def write(sub: str, pid: int, cam: int, track: dict, img: np.ndarray, box: int = 1) -> None:
        pid_s = "-1" if pid < 0 else f"{pid:04d}"
        while True:
            name = f"{pid_s}_c{cam + 1}s{track['seq']}_{track['frame']:06d}_{box:02d}.jpg"
            track["frame"] = (track["frame"] + 1 + track["frame"] % 7 * 3) % 1000000
            if name not in names[sub]:
                break
        names[sub].add(name)
        ok, buf = cv2.imencode(".jpg", img, [int(cv2.IMWRITE_JPEG_QUALITY), 92])
        if not ok:
            raise RuntimeError(f"could not encode {name}")
        with open(os.path.join(out_dir, sub, name), "wb") as f:
            f.write(buf.tobytes())

    def render(pid_key: int, ident: dict, cam: int, track: dict, k: int, kind: str = "normal") -> np.ndarray:
        return _render_image(ident, cams[cam], bgs[cam], track, _rng(seed, 7, pid_key, cam, k), H, W, grid,
                             noise_bank, kind)

    # training identities: images_per_id images over 2..5 cameras
    for pid in train_pids:
        r = _rng(seed, 8, pid)
        n = args["images_per_id"]
        k = int(r.randint(min(2, n), max(min(2, n), min(C, n, 5)) + 1))
        chosen = sorted(int(c) for c in r.choice(C, k, replace=False))
        for cam, cnt in zip(chosen, _split_counts(r, n, k)):
            track = _make_track(_rng(seed, 9, pid, cam), cams[cam], bgs[cam].shape, H, W)
            for j in range(int(cnt)):
                write("bounding_box_train", pid, cam, track, render(pid, ident_of[pid], cam, track, j))

    # test identities: query = 1 image per query camera, gallery over >= 2 cameras incl. the query ones
    q_cams, g_n = args["query_cams_per_id"], args["gallery_per_id"]
    for pid in test_pids:
        r = _rng(seed, 10, pid)
        lo = max(2, q_cams)
        k = int(r.randint(lo, max(lo, min(C, g_n)) + 1))
        chosen = [int(c) for c in r.choice(C, k, replace=False)]  # the first q_cams are query cameras
        for i, (cam, cnt) in enumerate(zip(chosen, _split_counts(r, g_n, k))):
            track = _make_track(_rng(seed, 11, pid, cam), cams[cam], bgs[cam].shape, H, W)
            for j in range(int(cnt)):
                write("bounding_box_test", pid, cam, track, render(pid, ident_of[pid], cam, track, j))
            if i < q_cams:
                write("query", pid, cam, track, render(pid, ident_of[pid], cam, track, 1000))

    # distractors (pid 0): people outside the id set; junk (pid -1): bad detections
    for kind, pid, lst, tag in (("normal", 0, extra[:args["num_distractors"]], 12),
                                ("junk", -1, extra[args["num_distractors"]:], 13)):
        for i, ident in enumerate(lst):
            r = _rng(seed, tag, i)
            cam = int(r.randint(C))
            track = _make_track(r, cams[cam], bgs[cam].shape, H, W)
            write("bounding_box_test", pid, cam, track, render(100000 * tag + i, ident, cam, track, 0, kind),
                  box=int(r.randint(1, 5)))
    return {sub: len(names[sub]) for sub in SUBSETS}


# ----------------------------------------------------------------------------- caching
def _folder_name(args: dict) -> str:
    if args == DEFAULT_ARGS:
        return "SyntheticReID"
    digest = hashlib.sha1(json.dumps(args, sort_keys=True).encode()).hexdigest()[:10]
    return f"SyntheticReID-{digest}"


def _read_marker(dataset_dir: str) -> Optional[dict]:
    try:
        with open(os.path.join(dataset_dir, MARKER)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _is_complete(dataset_dir: str, args: dict) -> bool:
    marker = _read_marker(dataset_dir)
    if not marker or marker.get("version") != GENERATOR_VERSION or marker.get("args") != args:
        return False
    try:
        counts = {sub: sum(1 for f in os.listdir(os.path.join(dataset_dir, sub)) if f.endswith(".jpg"))
                  for sub in SUBSETS}
    except OSError:
        return False
    return counts == marker.get("counts")


def _cleanup_stale_tmp(root: str, name: str, max_age_s: float = 3600.0) -> None:
    """Remove temporary folders left behind by killed generations (older than an hour)."""
    prefix = f".{name}.tmp-"
    try:
        entries = os.listdir(root)
    except OSError:
        return
    now = time.time()
    for e in entries:
        if e.startswith(prefix):
            path = os.path.join(root, e)
            try:
                if now - os.path.getmtime(path) > max_age_s:
                    shutil.rmtree(path, ignore_errors=True)
            except OSError:
                pass


def _ensure_generated(root: str, args: dict) -> Tuple[str, bool]:
    """Return ``(dataset_dir, generated_now)``; generate atomically if needed."""
    name = _folder_name(args)
    dataset_dir = os.path.join(root, name)
    if _is_complete(dataset_dir, args):
        return dataset_dir, False
    os.makedirs(root, exist_ok=True)
    _cleanup_stale_tmp(root, name)
    tmp = os.path.join(root, f".{name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    logger.info("Generating the SyntheticReID dataset into %s (%s) ...", dataset_dir,
                ", ".join(f"{k}={v}" for k, v in args.items()))
    t0 = time.perf_counter()
    try:
        counts = generate_synthetic_reid(tmp, **args)
        marker = {"version": GENERATOR_VERSION, "args": args, "counts": counts}
        with open(os.path.join(tmp, MARKER), "w") as f:  # written last: marks the folder complete
            json.dump(marker, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        for _ in range(5):
            try:
                os.rename(tmp, dataset_dir)
                logger.info("Generated SyntheticReID (%d train / %d query / %d gallery files) in %.1f s",
                            counts["bounding_box_train"], counts["query"], counts["bounding_box_test"],
                            time.perf_counter() - t0)
                return dataset_dir, True
            except OSError:
                if _is_complete(dataset_dir, args):  # another process won the race: use its folder
                    logger.info("SyntheticReID was generated concurrently by another process; using it")
                    return dataset_dir, False
                # an outdated / incomplete folder is in the way: move it aside and delete it
                stale = os.path.join(root, f".{name}.stale-{os.getpid()}-{uuid.uuid4().hex[:8]}")
                try:
                    os.rename(dataset_dir, stale)
                except OSError:
                    pass
                else:
                    logger.info("Replacing the outdated dataset folder %s", dataset_dir)
                    shutil.rmtree(stale, ignore_errors=True)
        raise RuntimeError(f"could not move the generated dataset into {dataset_dir}")
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)


def _parse_dir(dir_path: str) -> List[Tuple[str, int, int]]:
    """Market-style parsing of file names: pid -1 (junk) dropped, pid 0 kept, camid 0-based."""
    items = []
    for fname in sorted(os.listdir(dir_path)):
        if not fname.lower().endswith((".jpg", ".jpeg", ".png")):
            continue
        m = _NAME_RE.match(fname)
        if m is None:
            continue
        pid, cam = int(m.group(1)), int(m.group(2))
        if pid == -1:
            continue
        if pid < 0 or cam < 1:
            raise ValueError(f"bad Market-style file name {fname!r} in {dir_path}")
        items.append((os.path.join(dir_path, fname), pid, cam - 1))
    return items


@DATASET_REGISTRY.register()
class SyntheticReID(ReidDataset):
    """Procedurally drawn pedestrians in the Market-1501 layout, generated on first use.

    ``SyntheticReID(root="datasets", **kwargs)`` with the keyword arguments of
    :data:`DEFAULT_ARGS`; see the module docstring for what is generated and where.
    ``dataset_dir`` is the folder holding the files.
    """

    dataset_name = "SyntheticReID"

    def __init__(self, root: str = "datasets", **kwargs):
        args = dict(DEFAULT_ARGS)
        args.update(kwargs)
        _check_args(args)
        args = {k: int(v) for k, v in args.items()}
        self.root = os.path.abspath(os.path.expanduser(root))
        self.args = args
        self.dataset_dir, self.generated = _ensure_generated(self.root, args)
        train = _parse_dir(os.path.join(self.dataset_dir, "bounding_box_train"))
        query = _parse_dir(os.path.join(self.dataset_dir, "query"))
        gallery = _parse_dir(os.path.join(self.dataset_dir, "bounding_box_test"))
        super().__init__(train, query, gallery)
