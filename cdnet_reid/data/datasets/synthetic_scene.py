"""What the ``SyntheticReID`` world is made of: clothing palettes, people and cameras.

* :func:`sample_identities` draws people whose **identity lives in their clothing** (upper-body
  colour, torso pattern and its second colour, sleeves, lower-body colour and garment, shoes,
  hair, skin, accessories, body build), with pairwise distinct discrete signatures;
* :func:`camera_config` draws what a camera changes and identity does not (background kind and
  colours, lighting, noise, blur, low resolution, figure scale, viewpoint and clutter odds);
* :func:`camera_background` paints a camera's large background, of which images take crops.

Everything is drawn from :func:`seeded_rng` streams keyed by the dataset seed, so it is
deterministic. How one image is drawn from these is in :mod:`.synthetic_render`.
"""


import cv2
import numpy as np

__all__ = ["seeded_rng", "sample_identities", "camera_config", "camera_background"]

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


def seeded_rng(*key: int) -> np.random.RandomState:
    """A RandomState seeded by a tuple of non-negative ints (independent streams per key)."""
    return np.random.RandomState([int(k) & 0xFFFFFFFF for k in key])


def _jitter_color(rng: np.random.RandomState, rgb, amount: float = 12.0) -> tuple[float, float, float]:
    c = np.clip(np.asarray(rgb, np.float64) + rng.uniform(-amount, amount, 3), 0, 255)
    return tuple(float(v) for v in c)


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


def sample_identities(seed: int, n: int, rng_tag: int = 1) -> list[dict]:
    """``n`` identities with pairwise distinct discrete signatures (while the palette allows)."""
    rng = seeded_rng(seed, rng_tag)
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
def camera_config(seed: int, cam: int, num_cameras: int) -> dict:
    """What camera ``cam`` (0-based) of ``num_cameras`` changes in every image it sees."""
    order = seeded_rng(seed, 2).permutation(len(BACKGROUNDS))
    rng = seeded_rng(seed, 3, cam)
    blurry = seeded_rng(seed, 4).permutation(num_cameras)[: max(1, num_cameras // 3)]
    lowres = seeded_rng(seed, 5).randint(num_cameras) if num_cameras >= 4 else -1
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


def camera_background(cfg: dict, h: int, w: int) -> np.ndarray:
    """A large float32 BGR background for one camera; images take random crops of it."""
    rng = seeded_rng(cfg["bg_seed"])
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


