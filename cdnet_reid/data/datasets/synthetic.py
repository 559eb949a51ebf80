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
otherwise it is regenerated atomically, and temporary folders left by a killed generation are
removed (never those of a generation still running): see :mod:`.synthetic_cache`.

The code is split by concern: :mod:`.synthetic_scene` (people and cameras),
:mod:`.synthetic_render` (drawing one image), :mod:`.synthetic_cache` (the folder on disk) and
this module (arguments, splits and file names, and the dataset).
"""

import hashlib
import json
import logging
import os
import time

import cv2
import numpy as np

from .bases import ReidDataset
from .layout import parse_market_dir
from .registry import DATASET_REGISTRY
from .synthetic_cache import ensure_generated
from .synthetic_render import SS, make_track, render_image
from .synthetic_scene import camera_background, camera_config, sample_identities, seeded_rng

logger = logging.getLogger(__name__)

__all__ = ["SyntheticReID", "generate_synthetic_reid", "DEFAULT_ARGS", "GENERATOR_VERSION"]

#: Bump when the generator's output changes; folders with an older marker get regenerated.
GENERATOR_VERSION = 1

#: Default constructor arguments (the README demo's dataset).
DEFAULT_ARGS: dict[str, int] = dict(
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


def generate_synthetic_reid(out_dir: str, **kwargs) -> dict[str, int]:
    """Write the dataset (``bounding_box_train``, ``query``, ``bounding_box_test``) into
    ``out_dir`` and return the number of files per folder. Deterministic in the arguments.
    No marker is written here (see :mod:`.synthetic_cache`)."""
    args = dict(DEFAULT_ARGS)
    args.update(kwargs)
    _check_args(args)
    seed, H, W, C = args["seed"], args["height"], args["width"], args["num_cameras"]
    n_train, n_test = args["num_train_ids"], args["num_test_ids"]

    # pids: Market-like sparse numbers in 1..max(1501, 2n), train / test disjoint, sorted
    rng = seeded_rng(seed, 0)
    total = n_train + n_test
    pids = rng.choice(np.arange(1, max(1501, 2 * total) + 1), total, replace=False)
    train_pids, test_pids = sorted(int(p) for p in pids[:n_train]), sorted(int(p) for p in pids[n_train:])
    idents = sample_identities(seed, total + args["num_distractors"] + args["num_junk"])
    ident_of = {pid: idents[i] for i, pid in enumerate(train_pids + test_pids)}
    extra = idents[total:]

    cams = [camera_config(seed, c, C) for c in range(C)]
    bgs = [camera_background(cfg, int(H * SS * 1.5), int(W * SS * 2.5)) for cfg in cams]
    grid = np.indices((H * SS, W * SS), dtype=np.float32)
    noise_bank = seeded_rng(seed, 6).standard_normal((4 * H, 4 * W, 3)).astype(np.float32)

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
        return render_image(ident, cams[cam], bgs[cam], track, seeded_rng(seed, 7, pid_key, cam, k), H, W, grid,
                             noise_bank, kind)

    # training identities: images_per_id images over 2..5 cameras
    for pid in train_pids:
        r = seeded_rng(seed, 8, pid)
        n = args["images_per_id"]
        k = int(r.randint(min(2, n), max(min(2, n), min(C, n, 5)) + 1))
        chosen = sorted(int(c) for c in r.choice(C, k, replace=False))
        for cam, cnt in zip(chosen, _split_counts(r, n, k)):
            track = make_track(seeded_rng(seed, 9, pid, cam), cams[cam], bgs[cam].shape, H, W)
            for j in range(int(cnt)):
                write("bounding_box_train", pid, cam, track, render(pid, ident_of[pid], cam, track, j))

    # test identities: query = 1 image per query camera, gallery over >= 2 cameras incl. the query ones
    q_cams, g_n = args["query_cams_per_id"], args["gallery_per_id"]
    for pid in test_pids:
        r = seeded_rng(seed, 10, pid)
        lo = max(2, q_cams)
        k = int(r.randint(lo, max(lo, min(C, g_n)) + 1))
        chosen = [int(c) for c in r.choice(C, k, replace=False)]  # the first q_cams are query cameras
        for i, (cam, cnt) in enumerate(zip(chosen, _split_counts(r, g_n, k))):
            track = make_track(seeded_rng(seed, 11, pid, cam), cams[cam], bgs[cam].shape, H, W)
            for j in range(int(cnt)):
                write("bounding_box_test", pid, cam, track, render(pid, ident_of[pid], cam, track, j))
            if i < q_cams:
                write("query", pid, cam, track, render(pid, ident_of[pid], cam, track, 1000))

    # distractors (pid 0): people outside the id set; junk (pid -1): bad detections
    for kind, pid, lst, tag in (("normal", 0, extra[:args["num_distractors"]], 12),
                                ("junk", -1, extra[args["num_distractors"]:], 13)):
        for i, ident in enumerate(lst):
            r = seeded_rng(seed, tag, i)
            cam = int(r.randint(C))
            track = make_track(r, cams[cam], bgs[cam].shape, H, W)
            write("bounding_box_test", pid, cam, track, render(100000 * tag + i, ident, cam, track, 0, kind),
                  box=int(r.randint(1, 5)))
    return {sub: len(names[sub]) for sub in SUBSETS}


def _folder_name(args: dict) -> str:
    if args == DEFAULT_ARGS:
        return "SyntheticReID"
    digest = hashlib.sha1(json.dumps(args, sort_keys=True).encode()).hexdigest()[:10]
    return f"SyntheticReID-{digest}"


@DATASET_REGISTRY.register()
class SyntheticReID(ReidDataset):
    """Procedurally drawn pedestrians in the Market-1501 layout, generated on first use.

    ``SyntheticReID(root="datasets", **kwargs)`` with the keyword arguments of
    :data:`DEFAULT_ARGS`; see the module docstring for what is generated and where.
    ``dataset_dir`` is the folder holding the files; ``generated`` tells whether this
    construction generated them.
    """

    dataset_name = "SyntheticReID"

    def __init__(self, root: str = "datasets", **kwargs):
        args = dict(DEFAULT_ARGS)
        args.update(kwargs)
        _check_args(args)
        args = {k: int(v) for k, v in args.items()}
        self.root = os.path.abspath(os.path.expanduser(root))
        self.args = args
        key = {"version": GENERATOR_VERSION, "args": args}
        self.dataset_dir, self.generated = ensure_generated(self.root, _folder_name(args), key, SUBSETS,
                                                            self._generate)
        train, query, gallery = (parse_market_dir(os.path.join(self.dataset_dir, sub), dataset="SyntheticReID")
                                 for sub in SUBSETS)
        super().__init__(train, query, gallery)

    def _generate(self, folder: str) -> dict[str, int]:
        logger.info("Generating the SyntheticReID dataset into %s (%s) ...",
                    os.path.join(self.root, _folder_name(self.args)),
                    ", ".join(f"{k}={v}" for k, v in self.args.items()))
        t0 = time.perf_counter()
        counts = generate_synthetic_reid(folder, **self.args)
        logger.info("Generated SyntheticReID (%d train / %d query / %d gallery files) in %.1f s",
                    counts["bounding_box_train"], counts["query"], counts["bounding_box_test"],
                    time.perf_counter() - t0)
        return counts
