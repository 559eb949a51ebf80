"""Small dataset trees in the official on-disk layouts, for the dataset and task tests.

Every image is a real JPEG (or PNG) file; names follow the real datasets' conventions. Each writer
returns what a correct parser must find, so the tests compare against independent expectations.
"""

import os
import pickle

import numpy as np
from PIL import Image


def write_image(path: str, seed: int, size=(32, 16), color=None, fmt: str = "JPEG") -> None:
    """A small real image (H, W = ``size``): a colour (per class/identity if given) plus noise."""
    rng = np.random.RandomState(seed % (2 ** 31))
    h, w = size
    base = np.array(color if color is not None else rng.randint(0, 256, 3), dtype=np.float32)
    img = base[None, None, :] + rng.normal(0, 20, (h, w, 3))
    img[: h // 2] *= 0.7  # some structure
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path, fmt, quality=90)


def _color(pid: int):
    rng = np.random.RandomState(1000 + pid)
    return rng.randint(0, 256, 3)


def make_market(root: str, folder: str = "Market-1501-v15.09.15", size=(32, 16)) -> dict:
    """Market-1501 layout: 6 train ids x 6 images over cameras 1-6, 4 test ids (1 query each in
    camera 1, 3 gallery images in cameras 2, 3, 4), 3 pid-0 distractors, 2 junk (-1), stray files."""
    base = os.path.join(root, folder)
    train_pids, test_pids = [2, 7, 11, 20, 31, 1501], [3, 5, 8, 13]
    exp = {"train": [], "query": [], "gallery": []}
    k = 0

    def put(split_dir, split, pid, cam, seq=1, frame=0, box=1, keep=True):
        nonlocal k
        pid_s = "-1" if pid < 0 else f"{pid:04d}"
        name = f"{pid_s}_c{cam}s{seq}_{frame:06d}_{box:02d}.jpg"
        write_image(os.path.join(base, split_dir, name), k, size, _color(max(pid, 0)) if pid > 0 else None)
        k += 1
        if keep:
            exp[split].append((name, pid, cam - 1))

    for pid in train_pids:
        for j in range(6):
            put("bounding_box_train", "train", pid, 1 + j % 6, seq=1 + j % 2, frame=100 * j + pid)
    for pid in test_pids:
        put("query", "query", pid, 1, frame=pid)
        for cam in (2, 3, 4):
            put("bounding_box_test", "gallery", pid, cam, frame=10 * cam + pid)
    for j in range(3):
        put("bounding_box_test", "gallery", 0, 1 + j, seq=3, frame=5000 + j)
    for j in range(2):
        put("bounding_box_test", "gallery", -1, 2 + j, seq=2, frame=7000 + j, keep=False)
    put("bounding_box_train", "train", -1, 5, seq=4, frame=9999, keep=False)
    # stray files of the real archive / a file system, and an image that does not follow the naming
    for sub in ("bounding_box_test", "bounding_box_train"):
        with open(os.path.join(base, sub, "Thumbs.db"), "wb") as f:
            f.write(b"\x00" * 64)
    with open(os.path.join(base, "readme.txt"), "w") as f:
        f.write("Market-1501\n")
    write_image(os.path.join(base, "query", "notes_c1.jpg"), 99, size)
    os.makedirs(os.path.join(base, "gt_bbox"), exist_ok=True)
    return {"dir": base, "train_pids": train_pids, "test_pids": test_pids, **exp}


def make_duke(root: str, folder: str = "DukeMTMC-reID", size=(32, 16)) -> dict:
    """DukeMTMC-reID layout (names ``0005_c2_f0046985.jpg``): 5 train ids over cameras 1-8, 3 test
    ids (query in camera 1, gallery in cameras 5 and 8) and 2 distractor ids in the gallery."""
    base = os.path.join(root, folder)
    train_pids, test_pids, distractors = [1, 5, 9, 700, 7140], [4, 6, 12], [4000, 4001]
    exp = {"train": [], "query": [], "gallery": []}
    k = 0

    def put(sub, split, pid, cam, frame):
        nonlocal k
        name = f"{pid:04d}_c{cam}_f{frame:07d}.jpg"
        write_image(os.path.join(base, sub, name), 500 + k, size, _color(pid))
        k += 1
        exp[split].append((name, pid, cam - 1))

    for pid in train_pids:
        for j in range(5):
            put("bounding_box_train", "train", pid, 1 + (pid + j) % 8, 46985 + 17 * j + pid)
    for pid in test_pids:
        put("query", "query", pid, 1, 100 + pid)
        put("bounding_box_test", "gallery", pid, 5, 200 + pid)
        put("bounding_box_test", "gallery", pid, 8, 300 + pid)
    for pid in distractors:
        put("bounding_box_test", "gallery", pid, 3, 400 + pid)
    with open(os.path.join(base, "bounding_box_train", ".DS_Store"), "wb") as f:
        f.write(b"junk")
    return {"dir": base, "train_pids": train_pids, "test_pids": test_pids, **exp}


def msmt_name(pid: int, n: int, cam: int, tag: str = "0303morning") -> str:
    return f"{pid:04d}/{pid:04d}_{n:03d}_{cam:02d}_{tag}_{n + 15:04d}_{n % 3}.jpg"


def make_msmt17(root: str, folder: str = "MSMT17_V1", size=(32, 16)) -> dict:
    """MSMT17_V1 layout: train/ and test/ image folders, four list files. 4 train ids (3 train-list
    images each + 1 val-list image), 3 test ids (1 query in camera 2, 2 gallery in cameras 7, 15)."""
    base = os.path.join(root, folder)
    lines: dict[str, list[str]] = {"train": [], "val": [], "query": [], "gallery": []}
    exp: dict[str, list] = {k: [] for k in lines}
    k = 0

    def put(split, sub, pid, n, cam):
        nonlocal k
        rel = msmt_name(pid, n, cam)
        write_image(os.path.join(base, sub, rel), 900 + k, size, _color(pid))
        k += 1
        lines[split].append(f"{rel} {pid}")
        exp[split].append((rel, pid, cam - 1))

    for pid in range(4):
        for n in range(3):
            put("train", "train", pid, n, 1 + (pid + n) % 15)
        put("val", "train", pid, 3, 4)
    for pid in range(3):
        put("query", "test", pid, 0, 2)
        put("gallery", "test", pid, 1, 7)
        put("gallery", "test", pid, 2, 15)
    for split, ls in lines.items():
        with open(os.path.join(base, f"list_{split}.txt"), "w") as f:
            f.write("\n".join(ls) + "\n")
    return {"dir": base, **exp}


def make_cifar_pickles(root: str, num_classes: int = 10, per_class_train: int = 12,
                       per_class_test: int = 4, seed: int = 0) -> dict:
    """``cifar-100-python/{train,test,meta}`` written like the official archive: protocol-2 pickles
    of dicts with byte-string keys; ``data`` is N x 3072 uint8 (R, G, B planes of 32 x 32)."""
    base = os.path.join(root, "cifar-100-python")
    os.makedirs(base, exist_ok=True)
    rng = np.random.RandomState(seed)
    names = [f"class_{i:02d}".encode() for i in range(num_classes)]
    out = {}
    for split, per in (("train", per_class_train), ("test", per_class_test)):
        labels = [c for c in range(num_classes) for _ in range(per)]
        rng.shuffle(labels)
        imgs = np.stack([np.clip(_color(c)[None, None, :] + rng.normal(0, 25, (32, 32, 3)), 0, 255)
                         for c in labels]).astype(np.uint8)  # N x H x W x C
        data = imgs.transpose(0, 3, 1, 2).reshape(len(labels), -1)  # official: channel planes
        d = {b"filenames": [f"img_{i}.png".encode() for i in range(len(labels))],
             b"batch_label": f"{split} batch".encode(), b"fine_labels": labels,
             b"coarse_labels": [c // 5 for c in labels], b"data": data}
        with open(os.path.join(base, split), "wb") as f:
            pickle.dump(d, f, protocol=2)
        out[split] = (imgs, labels)
    with open(os.path.join(base, "meta"), "wb") as f:
        pickle.dump({b"fine_label_names": names, b"coarse_label_names": [b"a", b"b"]}, f, protocol=2)
    out["classes"] = [n.decode() for n in names]
    out["dir"] = base
    return out


def make_image_folder(base: str, classes: list[str], per_class: dict[str, int], seed: int = 0,
                      size=(40, 48), ext: str = ".JPEG") -> list:
    """``base/<class>/<file>`` images; returns sorted (relative path, class) pairs."""
    out = []
    for ci, c in enumerate(classes):
        for j in range(per_class[c]):
            rel = os.path.join(c, f"{c}_{j:05d}{ext}")
            h, w = size[0] + (j % 3) * 4, size[1] + (j % 2) * 6  # varied sizes
            write_image(os.path.join(base, rel), seed + 31 * ci + j, (h, w), _color(ci),
                        fmt="PNG" if ext.lower() == ".png" else "JPEG")
            out.append((rel, c))
    return out


def make_imagenet(root: str, folder: str = "ImageNet", num_classes: int = 4, train_per: int = 8,
                  val_per: int = 3) -> dict:
    """ImageNet layout: train/<synset>/*.JPEG and val/<synset>/*.JPEG, plus a stray mapping file."""
    base = os.path.join(root, folder)
    classes = [f"n{1440764 + 1000 * i:08d}" for i in range(num_classes)]
    train = make_image_folder(os.path.join(base, "train"), classes, {c: train_per for c in classes})
    val = make_image_folder(os.path.join(base, "val"), classes, {c: val_per for c in classes}, seed=777)
    with open(os.path.join(base, "LOC_synset_mapping.txt"), "w") as f:
        f.write("\n".join(classes))
    with open(os.path.join(base, "train", classes[0], "labels.txt"), "w") as f:
        f.write("not an image")
    return {"dir": base, "classes": classes, "train": train, "val": val}
