"""How one ``SyntheticReID`` image is drawn: a person of :mod:`.synthetic_scene` seen by a camera.

:func:`make_track` draws the parameters shared by the images of one tracklet (viewpoint,
mirroring, scale and position of the figure, pose, place in the background, sequence and frame
numbers); :func:`render_image` draws one image of it: a crop of the camera's background with
clutter, the cartoon pedestrian (drawn on a canvas super-sampled :data:`SS` times for
anti-aliasing), an occasional occluder, then the camera's resolution, blur, lighting and noise.
A ``"junk"`` image is a zoomed-in piece of the scene (a bad detection). Every random draw comes
from the ``RandomState`` passed in, so the same arguments give the same pixels.
"""


import cv2
import numpy as np

__all__ = ["SS", "make_track", "render_image"]

SS = 2  # super-sampling factor of the drawing canvas (anti-aliasing)


def _bgr(rgb) -> tuple[int, int, int]:
    return (int(round(rgb[2])), int(round(rgb[1])), int(round(rgb[0])))


def _shade(rgb, f: float) -> tuple[float, float, float]:
    return tuple(float(min(255.0, v * f)) for v in rgb)


# ----------------------------------------------------------------------------- drawing
class _Figure:
    """Maps figure coordinates (x: body-width units around the centre, y: 0 = top of the head,
    1 = soles) onto canvas pixels."""

    def __init__(self, cx: float, top: float, fh: float, wscale: float):
        self.cx, self.top, self.fh, self.ws = cx, top, fh, wscale

    def p(self, x: float, y: float) -> tuple[int, int]:
        return (int(round(self.cx + x * self.fh * self.ws)), int(round(self.top + y * self.fh)))

    def n(self, v: float, horizontal: bool = False) -> int:
        return max(1, int(round(v * self.fh * (self.ws if horizontal else 1.0))))


def _limb(canvas, pts, thick, color):
    for a, b in zip(pts[:-1], pts[1:]):
        cv2.line(canvas, a, b, color, thick, cv2.LINE_AA)
    for q in pts[1:-1]:
        cv2.circle(canvas, q, max(1, thick // 2), color, -1, cv2.LINE_AA)


def _draw_person(canvas: np.ndarray, ident: dict, pose: dict, fig: _Figure, grid) -> None:
    """Draw person ``ident`` in ``pose`` onto the BGR float ``canvas``, back to front."""
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
def render_image(ident: dict, cam_cfg: dict, bg: np.ndarray, track: dict, rng: np.random.RandomState,
                 height: int, width: int, grid, noise_bank: np.ndarray, kind: str = "normal") -> np.ndarray:
    """One ``height x width`` uint8 BGR image of person ``ident`` in tracklet ``track`` of a camera
    (``cam_cfg`` and its background ``bg``). ``grid`` is ``np.indices`` of the super-sampled canvas,
    ``noise_bank`` a shared array of N(0, 1) samples; ``kind="junk"`` draws a bad detection."""
    H2, W2 = height * SS, width * SS
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


def make_track(rng: np.random.RandomState, cam_cfg: dict, bg_shape, height: int, width: int) -> dict:
    """The parameters shared by the images of one tracklet of camera ``cam_cfg``."""
    H2, W2 = height * SS, width * SS
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

