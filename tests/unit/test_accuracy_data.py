"""Validation folders: ImageFolder and ILSVRC2012 devkit layouts give the same labels; subsets; errors."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_dnnbench.accuracy.data import (
    DatasetError,
    balanced_subset,
    imagenet_synsets,
    label_map,
    open_dataset,
)

# Six leaf synsets in ILSVRC2012_ID order as the devkit numbers them (not sorted), plus a parent
# synset (num_children > 0) that must be ignored.
ID_ORDER = ["n02119789", "n02100735", "n02110185", "n01440764", "n04592741", "n03000134"]
PARENT = "n00001740"
# image number -> position in ID_ORDER (0-based); ground truth lines hold position + 1.
TRUTH = [3, 0, 5, 1, 1, 4, 2, 3, 0, 5, 2, 4, 3]


def _png(path: Path, shade: int) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (4, 3), (shade, shade, shade)).save(path)


def _val_name(number: int) -> str:
    return f"ILSVRC2012_val_{number:08d}.JPEG"


def _image_folder(root: Path) -> Path:
    for i, pos in enumerate(TRUTH, 1):
        _png(root / ID_ORDER[pos] / _val_name(i), i)
    return root


def _flat(root: Path) -> Path:
    for i, _ in enumerate(TRUTH, 1):
        _png(root / _val_name(i), i)
    return root


def _ground_truth(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ILSVRC2012_validation_ground_truth.txt").write_text("".join(f"{p + 1}\n" for p in TRUTH))


def _meta_mat(folder: Path) -> None:
    import numpy as np
    from scipy.io import savemat

    dtype = [
        ("ILSVRC2012_ID", "O"),
        ("WNID", "O"),
        ("words", "O"),
        ("gloss", "O"),
        ("num_children", "O"),
        ("children", "O"),
        ("wordnet_height", "O"),
        ("num_train_images", "O"),
    ]
    rows = [(i, w, f"word {w}", "gloss", 0, np.zeros((1, 0)), 0, 1300) for i, w in enumerate(ID_ORDER, 1)]
    rows.append((len(ID_ORDER) + 1, PARENT, "entity", "gloss", 2, np.array([[1, 2]]), 5, 0))
    synsets = np.array(rows, dtype=dtype).reshape(-1, 1)
    savemat(str(folder / "meta.mat"), {"synsets": synsets})


def test_devkit_and_image_folder_give_identical_labels(tmp_path: Path) -> None:
    pytest.importorskip("scipy")
    folder = open_dataset(_image_folder(tmp_path / "imagefolder"))
    flat = _flat(tmp_path / "val")
    _ground_truth(tmp_path / "ILSVRC2012_devkit_t12" / "data")
    _meta_mat(tmp_path / "ILSVRC2012_devkit_t12" / "data")
    devkit = open_dataset(flat)
    assert folder.layout == "imagefolder" and devkit.layout == "devkit"
    assert folder.classes == devkit.classes == tuple(sorted(ID_ORDER))  # standard (sorted) order
    assert PARENT not in devkit.classes
    assert sorted(folder.label_names()) == sorted(devkit.label_names())
    by_name = dict((Path(p).name, y) for p, y in folder.samples)
    assert {Path(p).name: y for p, y in devkit.samples} == by_name
    # The ILSVRC2012_ID is not the label: image 2 has ID 1 (n02119789), whose sorted index is 3.
    assert by_name[_val_name(2)] == sorted(ID_ORDER).index("n02119789") == 3


def test_plain_synset_list_instead_of_meta_mat(tmp_path: Path) -> None:
    folder = open_dataset(_image_folder(tmp_path / "imagefolder"))
    flat = _flat(tmp_path / "val")
    _ground_truth(flat)  # devkit files right beside the images
    (flat / "synsets.txt").write_text("".join(f"{w} some words\n" for w in ID_ORDER))
    devkit = open_dataset(flat)
    assert devkit.samples and dict((Path(p).name, y) for p, y in devkit.samples) == {
        Path(p).name: y for p, y in folder.samples
    }


def test_sorted_synset_list_is_refused(tmp_path: Path) -> None:
    flat = _flat(tmp_path / "val")
    _ground_truth(flat / "data")
    (flat / "data" / "synsets.txt").write_text("\n".join(sorted(ID_ORDER)))
    with pytest.raises(DatasetError, match="sorted WordNet-id order.*ILSVRC2012_ID order"):
        open_dataset(flat)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda root: None, "does not exist"),
        (lambda root: root.mkdir(), "neither class folders nor images"),
        (lambda root: (root / "a").mkdir(parents=True), "hold no images"),
        (lambda root: _png(root / "picture.png", 1), "no ILSVRC2012_validation_ground_truth.txt"),
        (
            lambda root: (
                _png(root / "cat.png", 1),
                _ground_truth(root),
                (root / "synsets.txt").write_text("\n".join(ID_ORDER)),
            ),
            "named ILSVRC2012_val_XXXXXXXX.JPEG",
        ),
        (lambda root: (_png(root / _val_name(1), 1), _ground_truth(root)), "neither meta.mat nor synsets.txt"),
        (
            lambda root: (
                _png(root / _val_name(99), 1),
                _ground_truth(root),
                (root / "synsets.txt").write_text("\n".join(ID_ORDER)),
            ),
            "has no line 99",
        ),
    ],
)
def test_malformed_folders_say_what_was_expected(tmp_path: Path, make, message: str) -> None:
    root = tmp_path / "data"
    make(root)
    with pytest.raises(DatasetError, match=message) as info:
        open_dataset(root)
    assert "expected either an ImageFolder layout" in str(info.value) or "ILSVRC2012" in str(info.value)


def test_any_number_of_classes_in_sorted_folder_order(tmp_path: Path) -> None:
    for name in ("zebra", "apple", "mango"):
        for i in range(2):
            _png(tmp_path / name / "sub" / f"{i}.png", i)
    ds = open_dataset(tmp_path)
    assert ds.classes == ("apple", "mango", "zebra")
    assert [y for _, y in ds.samples] == [0, 0, 1, 1, 2, 2]


def test_label_map() -> None:
    assert label_map(["a", "b", "c"], 3) == ([0, 1, 2], "dataset class order")
    mapping, why = label_map(["a", "b"], 5)
    assert mapping is None and "5 outputs" in why and "2 classes" in why
    standard = imagenet_synsets()
    if standard is None:
        pytest.skip("timm's synset list is not installed")
    assert standard == sorted(standard) and len(standard) == 1000
    # A few ImageNet classes against a 1000-way model: their standard indices.
    mapping, why = label_map(["n01440764", "n04592741"], 1000)
    assert mapping == [0, standard.index("n04592741")] and why == "ImageNet-1k synset order"


samples_strategy = st.lists(st.integers(0, 9), min_size=0, max_size=200).map(
    lambda ys: [(f"img{i:04d}", y) for i, y in enumerate(ys)]
)


@settings(max_examples=200, deadline=None)
@given(samples_strategy, st.integers(1, 250))
def test_balanced_subset(samples, limit) -> None:
    subset = balanced_subset(samples, limit)
    assert len(subset) == min(limit, len(samples))
    assert subset == [s for s in samples if s in subset]  # original order, no duplicates
    have = Counter(y for _, y in samples)
    got = Counter(y for _, y in subset)
    # Balanced: a class with fewer images than another's count gave all it had.
    for y in have:
        for z in have:
            if got[y] < got[z] - 1:
                assert got[y] == have[y]
    assert balanced_subset(samples, limit) == subset  # deterministic


def test_subset_smaller_than_the_classes_spreads_over_them() -> None:
    samples = [(f"{y}-{i}", y) for y in range(100) for i in range(3)]
    subset = balanced_subset(samples, 10)
    labels = sorted(y for _, y in subset)
    assert len(set(labels)) == 10 and labels != list(range(10))
