"""Validation data on disk: ImageFolder and ILSVRC2012 devkit layouts, class order, subsets.

Pure Python (scipy only to read the devkit's ``meta.mat``). Two layouts:

* **ImageFolder**: ``DIR/<class>/<image>``, one folder per class (any number of classes);
  classes in sorted folder-name order, as ``torchvision.datasets.ImageFolder``. For ImageNet the
  folders are the 1000 WordNet ids (``n01440764`` ...), whose sorted order is the standard synset
  order that torchvision, timm and Cadene's models use.
* **ILSVRC2012 devkit**: the flat folder of ``ILSVRC2012_val_00000001.JPEG`` ... as downloaded,
  plus the devkit's ``data/ILSVRC2012_validation_ground_truth.txt`` (one ILSVRC2012_ID per image,
  in file-number order) and ``data/meta.mat`` (ILSVRC2012_ID -> WordNet id). The ILSVRC2012_IDs
  are *not* the standard order (ID 1 is n02119789, kit fox; index 0 of the models is n01440764,
  tench): labels are mapped through the WordNet id to its index among the sorted leaf synsets, so
  both layouts give the same label for the same image. Instead of ``meta.mat`` a plain text
  ``synsets.txt`` next to the ground-truth file may list the WordNet ids in ILSVRC2012_ID order
  (line 1 = ID 1).
"""

from __future__ import annotations

import os
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
GROUND_TRUTH = "ILSVRC2012_validation_ground_truth.txt"
META = "meta.mat"
SYNSET_LIST = "synsets.txt"
DEVKIT_DIR = "ILSVRC2012_devkit_t12"
VAL_NAME = re.compile(r"^ILSVRC2012_val_(\d{8})\.[A-Za-z]+$")
WNID = re.compile(r"^n\d{8}$")

EXPECTED = (
    "expected either an ImageFolder layout (one sub-folder per class, e.g. DIR/n01440764/*.JPEG, "
    "holding images) or the ILSVRC2012 validation layout (the flat folder of "
    f"ILSVRC2012_val_XXXXXXXX.JPEG images with the devkit's {GROUND_TRUTH} and {META} (or a "
    f"{SYNSET_LIST} of WordNet ids in ILSVRC2012_ID order) in DIR, DIR/data, DIR/{DEVKIT_DIR}/data "
    f"or ../{DEVKIT_DIR}/data)"
)


class DatasetError(ValueError):
    """The folder is missing or not in a layout this plugin reads (the message says what was expected)."""


@dataclass(frozen=True)
class Dataset:
    """Images with integer labels; ``classes[label]`` is the class name (a WordNet id for ImageNet)."""

    root: str
    layout: str  # "imagefolder" or "devkit"
    classes: tuple[str, ...]
    samples: tuple[tuple[str, int], ...]  # (path, label), in a fixed order

    def __len__(self) -> int:
        return len(self.samples)

    def label_names(self) -> list[tuple[str, str]]:
        """(file name, class name) for every sample: what two layouts must agree on."""
        return [(os.path.basename(p), self.classes[y]) for p, y in self.samples]


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")


def open_dataset(root: str | os.PathLike[str]) -> Dataset:
    """Read a validation folder in either layout; raise :class:`DatasetError` saying what was expected."""
    path = Path(root).expanduser()
    if not path.exists():
        raise DatasetError(f"{path} does not exist; {EXPECTED}")
    if not path.is_dir():
        raise DatasetError(f"{path} is not a folder; {EXPECTED}")
    entries = sorted(os.scandir(path), key=lambda e: e.name)
    flat = [e.name for e in entries if e.is_file() and _is_image(e.name)]
    if flat:
        return _devkit(path, flat)
    dirs = [e for e in entries if e.is_dir() and not e.name.startswith(".") and e.name != DEVKIT_DIR]
    if not dirs:
        raise DatasetError(f"{path} holds neither class folders nor images; {EXPECTED}")
    return _image_folder(path, dirs)


def _image_folder(root: Path, dirs: Sequence[os.DirEntry[str]]) -> Dataset:
    classes = tuple(d.name for d in dirs)
    samples: list[tuple[str, int]] = []
    empty: list[str] = []
    for label, d in enumerate(dirs):
        found: list[str] = []
        for dirpath, subdirs, files in os.walk(d.path, followlinks=True):
            subdirs.sort()
            found.extend(os.path.join(dirpath, f) for f in sorted(files) if _is_image(f))
        if not found:
            empty.append(d.name)
        samples.extend((p, label) for p in found)
    if empty:
        shown = ", ".join(empty[:5]) + (" ..." if len(empty) > 5 else "")
        raise DatasetError(
            f"{root}: class folder(s) {shown} hold no images ({', '.join(IMAGE_EXTENSIONS)}); {EXPECTED}"
        )
    return Dataset(root=str(root), layout="imagefolder", classes=classes, samples=tuple(samples))


def _find_devkit(root: Path) -> Path | None:
    for folder in (root, root / "data", root / DEVKIT_DIR / "data", root.parent / DEVKIT_DIR / "data", root.parent):
        if (folder / GROUND_TRUTH).is_file():
            return folder
    return None


def _devkit(root: Path, images: Sequence[str]) -> Dataset:
    folder = _find_devkit(root)
    if folder is None:
        raise DatasetError(f"{root} holds images directly but no {GROUND_TRUTH} was found; {EXPECTED}")
    ids = read_ground_truth(folder / GROUND_TRUTH)
    id_to_wnid = read_synsets(folder)
    classes = tuple(sorted(set(id_to_wnid.values())))
    index = {w: i for i, w in enumerate(classes)}
    samples = []
    for name in images:
        m = VAL_NAME.match(name)
        if not m:
            raise DatasetError(
                f"{root}/{name}: in the devkit layout images are named ILSVRC2012_val_XXXXXXXX.JPEG "
                f"(the number is the line of {GROUND_TRUTH}); {EXPECTED}"
            )
        number = int(m.group(1))
        if not 1 <= number <= len(ids):
            raise DatasetError(f"{root}/{name}: {folder / GROUND_TRUTH} has no line {number} ({len(ids)} lines)")
        ilsvrc_id = ids[number - 1]
        if ilsvrc_id not in id_to_wnid:
            raise DatasetError(f"{folder / GROUND_TRUTH} line {number}: ILSVRC2012_ID {ilsvrc_id} is not a leaf synset")
        samples.append((str(root / name), index[id_to_wnid[ilsvrc_id]]))
    return Dataset(root=str(root), layout="devkit", classes=classes, samples=tuple(samples))


def read_ground_truth(path: Path) -> list[int]:
    ids = []
    for n, line in enumerate(Path(path).read_text(encoding="ascii", errors="replace").splitlines(), 1):
        text = line.strip()
        if not text:
            continue
        if not text.isdigit():
            raise DatasetError(f"{path} line {n}: {text!r} is not an ILSVRC2012_ID (a whole number)")
        ids.append(int(text))
    if not ids:
        raise DatasetError(f"{path} is empty; it should hold one ILSVRC2012_ID per validation image")
    return ids


def read_synsets(folder: Path) -> dict[int, str]:
    """ILSVRC2012_ID -> WordNet id of the leaf synsets, from ``meta.mat`` or ``synsets.txt``."""
    meta, listing = folder / META, folder / SYNSET_LIST
    if meta.is_file():
        return read_meta_mat(meta)
    if listing.is_file():
        return read_synset_list(listing)
    raise DatasetError(f"{folder} has {GROUND_TRUTH} but neither {META} nor {SYNSET_LIST}; {EXPECTED}")


def read_meta_mat(path: Path) -> dict[int, str]:
    try:
        from scipy.io import loadmat
    except ImportError:
        raise DatasetError(
            f"reading {path} needs scipy (pip install scipy); or put a {SYNSET_LIST} listing the WordNet ids "
            f"in ILSVRC2012_ID order next to it"
        ) from None
    try:
        synsets = loadmat(str(path), squeeze_me=True)["synsets"]
        ids = [int(v) for v in synsets["ILSVRC2012_ID"]]
        wnids = [str(v) for v in synsets["WNID"]]
        children = [int(v) for v in synsets["num_children"]]
    except Exception as exc:  # scipy raises many kinds for a bad file
        raise DatasetError(f"{path} is not the devkit's meta.mat (a 'synsets' struct array): {exc}") from None
    return {i: w for i, w, c in zip(ids, wnids, children, strict=True) if c == 0}


def read_synset_list(path: Path) -> dict[int, str]:
    wnids = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        wnid = line.split()[0]
        if not WNID.match(wnid):
            raise DatasetError(f"{path} line {n}: {wnid!r} is not a WordNet id such as n01440764")
        wnids.append(wnid)
    if len(set(wnids)) != len(wnids):
        raise DatasetError(f"{path} lists a WordNet id twice")
    if len(wnids) > 2 and wnids == sorted(wnids):
        raise DatasetError(
            f"{path} is in sorted WordNet-id order; it must list the ids in ILSVRC2012_ID order "
            "(line 1 = ID 1 = n02119789 for ILSVRC2012), as in the devkit's meta.mat"
        )
    return {i: w for i, w in enumerate(wnids, 1)}


def balanced_subset(samples: Sequence[tuple[str, int]], limit: int | None, seed: int = 0) -> list[tuple[str, int]]:
    """At most ``limit`` samples, as evenly spread over the classes as possible.

    Round after round each class gives its next image (sorted file order); the order of classes
    within a round is a fixed shuffle (``seed``), so that a limit below the number of classes
    samples classes from the whole range, not only the first ones. Per-class counts differ by at
    most one (while a class has images left). The result is in the original order.
    """
    if limit is None or limit >= len(samples):
        return list(samples)
    by_class: dict[int, list[int]] = {}
    for i, (_, y) in enumerate(samples):
        by_class.setdefault(y, []).append(i)
    order = sorted(by_class)
    random.Random(seed).shuffle(order)
    chosen: list[int] = []
    depth = 0
    while len(chosen) < limit:
        for y in order:
            if depth < len(by_class[y]):
                chosen.append(by_class[y][depth])
                if len(chosen) == limit:
                    break
        depth += 1
    return [samples[i] for i in sorted(chosen)]


def imagenet_synsets() -> list[str] | None:
    """The 1000 ImageNet-1k WordNet ids in the standard (sorted) order, from timm's shipped list."""
    import importlib.util

    spec = importlib.util.find_spec("timm")
    if spec is None or not spec.submodule_search_locations:
        return None
    for base in spec.submodule_search_locations:
        path = Path(base) / "data" / "_info" / "imagenet_synsets.txt"
        if path.is_file():
            wnids = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
            if len(wnids) == 1000:
                return wnids
    return None


def label_map(classes: Sequence[str], n_outputs: int) -> tuple[list[int] | None, str]:
    """Map dataset labels to the model's output indices; (None, reason) when they cannot match.

    Same number of classes: label i is output i (sorted class order). A 1000-way model on a folder
    of some ImageNet WordNet ids: each id's index in the standard 1000-class order.
    """
    if n_outputs == len(classes):
        return list(range(len(classes))), "dataset class order"
    if n_outputs == 1000 and all(WNID.match(c) for c in classes):
        standard = imagenet_synsets()
        if standard is not None and set(classes) <= set(standard):
            pos = {w: i for i, w in enumerate(standard)}
            return [pos[c] for c in classes], "ImageNet-1k synset order"
    return None, (
        f"the model has {n_outputs} outputs but the dataset has {len(classes)} classes "
        f"({', '.join(list(classes)[:3])}{' ...' if len(classes) > 3 else ''}); they must match"
    )
