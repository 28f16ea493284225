"""Accuracy end to end through pytester, on real data that a package ships.

scikit-learn's handwritten digits (1797 8x8 images) are written out as an ImageFolder tree of
3x32x32 RGB PNGs; a small CNN is trained here on three quarters of them (a few seconds on CPU),
saved, and registered as a user's model in a conftest with its preprocessing; the plugin then
evaluates it on the held-out quarter. Its Top-1/Top-5 must equal an independent computation.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import FAST, load_json

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

NET = '''
import os

import torch
import torch.nn as nn


class DigitsNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(4),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(32 * 4 * 4, 10))

    def forward(self, x):
        return self.head(self.features(x))


def build():
    return DigitsNet()


def build_trained():
    """A factory that loads its own weights (the other way to give a model its weights)."""
    net = DigitsNet()
    net.load_state_dict(torch.load(os.environ["DIGITS_WEIGHTS"], weights_only=True))
    return net
'''

CONFTEST = """
from pytest_dnnbench.registry import Preprocess

DIGITS = Preprocess(resize=32, crop=32, interpolation="bilinear", mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5),
                    source="digits example")


def pytest_dnnbench_register_models(registry, config):
    registry.register("digits_cnn", "digitsnet:build", input_size=(3, 32, 32), preprocess=DIGITS)
    registry.register("digits_trained", "digitsnet:build_trained", input_size=(3, 32, 32), preprocess=DIGITS)
    registry.register("digits_nopre", "digitsnet:build", input_size=(3, 32, 32))
"""


def _digit_image(pixels):
    import numpy as np
    from PIL import Image

    gray = Image.fromarray(np.round(pixels * 255 / 16).astype("uint8"), mode="L")
    return gray.resize((32, 32), Image.NEAREST).convert("RGB")


def _tensor(img):
    import numpy as np

    x = torch.from_numpy(np.asarray(img, dtype="float32") / 255.0).permute(2, 0, 1)
    return (x - 0.5) / 0.5


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory):
    """(ImageFolder root of the held-out digits, weights file, the trained net's class source)."""
    from sklearn.datasets import load_digits

    base = tmp_path_factory.mktemp("digits")
    data = load_digits()
    images = [_digit_image(p) for p in data.images]
    test_idx = [i for i in range(len(images)) if i % 4 == 0]
    train_idx = [i for i in range(len(images)) if i % 4 != 0]
    root = base / "digits"
    for i in test_idx:
        folder = root / str(int(data.target[i]))
        folder.mkdir(parents=True, exist_ok=True)
        images[i].save(folder / f"{i:04d}.png")

    namespace: dict = {}
    exec(compile(NET, "digitsnet", "exec"), namespace)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # on a shared 2-core machine one thread trains 3-4x faster than two
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            net = namespace["DigitsNet"]()
            x = torch.stack([_tensor(images[i]) for i in train_idx])
            y = torch.tensor([int(data.target[i]) for i in train_idx])
            opt = torch.optim.Adam(net.parameters(), lr=1e-2)
            for _ in range(8):
                perm = torch.randperm(len(x))
                for b in range(0, len(x), 64):
                    idx = perm[b : b + 64]
                    opt.zero_grad()
                    torch.nn.functional.cross_entropy(net(x[idx]), y[idx]).backward()
                    opt.step()
    finally:
        torch.set_num_threads(threads)
    weights = base / "digits_cnn.pt"
    torch.save(net.state_dict(), weights)
    return root, weights, net.eval()


def _independent(root: Path, net) -> tuple[float, float, int]:
    """Top-1/Top-5 computed here, without the plugin: PIL -> tensor by hand, torch.topk."""
    from PIL import Image

    classes = sorted(p.name for p in root.iterdir())
    xs, ys = [], []
    for label, name in enumerate(classes):
        for f in sorted((root / name).iterdir()):
            with Image.open(f) as img:
                xs.append(_tensor(img.convert("RGB")))
            ys.append(label)
    with torch.inference_mode():
        logits = net(torch.stack(xs))
    y = torch.tensor(ys)
    top5 = logits.topk(5, dim=1).indices
    hits1 = int((logits.argmax(1) == y).sum())
    hits5 = int((top5 == y[:, None]).any(1).sum())
    return 100.0 * hits1 / len(ys), 100.0 * hits5 / len(ys), len(ys)


@pytest.fixture
def digits_project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(digitsnet=NET)
    pytester.makeconftest(CONFTEST)
    pytester.syspathinsert()
    return pytester


def test_digits_accuracy_end_to_end(digits_project: pytest.Pytester, digits) -> None:
    root, weights, net = digits
    out = digits_project.path / "r.json"
    result = digits_project.runpytest(
        *FAST,
        "--dnn-models=digits_cnn",
        "--dnn-batch-sizes=1,4",
        f"--dnn-imagenet={root}",
        f"--dnn-weights={weights}",
        f"--dnn-json={out}",
    )
    result.assert_outcomes(passed=2)
    records = load_json(out)["records"]
    assert [r["batch_size"] for r in records] == [1, 4]
    acc = records[0]["accuracy"]
    m = acc["measured"]
    top1, top5, n = _independent(root, net)
    assert acc["reason"] is None
    assert m["n_images"] == n == len(list(root.rglob("*.png")))
    assert m["top1"] >= 90.0 and m["top5"] >= m["top1"]
    assert m["top1"] == pytest.approx(top1, abs=1e-9) and m["top5"] == pytest.approx(top5, abs=1e-9)
    assert acc["weights"] == "file" and acc["weights_file"] == str(weights)
    assert m["n_classes"] == 10 and m["layout"] == "imagefolder" and acc["unit"] == "%"
    assert acc["reference"] is None and acc["paper_top1"] is None
    assert m["preprocess"]["crop"] == 32 and m["device"] == "cpu"
    # Computed once per model, written into every record of that model.
    assert records[1]["accuracy"] == acc
    # The table shows the measured figure, unmarked.
    assert f"{m['top1']:.2f}" in result.stdout.str()
    assert "(ref)" not in result.stdout.str()


def test_factory_weights_and_a_balanced_subset(
    digits_project: pytest.Pytester, digits, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, weights, _ = digits
    monkeypatch.setenv("DIGITS_WEIGHTS", str(weights))
    out = digits_project.path / "r.json"
    result = digits_project.runpytest(
        *FAST,
        "--dnn-models=digits_trained,digits_nopre",
        "--dnn-batch-sizes=1",
        f"--dnn-imagenet={root}",
        "--dnn-accuracy-limit=100",
        f"--dnn-json={out}",
    )
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*dnnbench accuracy: 100 images (limit 100 of 450), 10 classes*"])
    trained, nopre = load_json(out)["records"]
    acc = trained["accuracy"]
    m = acc["measured"]
    assert m is not None and acc["weights"] == "factory"
    assert m["n_images"] == 100 and m["limit"] == 100 and m["n_available"] == 450
    assert m["top1"] >= 85.0  # 100 held-out images
    assert nopre["accuracy"]["measured"] is None and nopre["accuracy"]["reference"] is None
    assert "without preprocess=Preprocess" in nopre["accuracy"]["reason"]
    assert "random weights" not in nopre["accuracy"]["reason"]  # a user's factory builds its own weights


def test_ini_settings(digits_project: pytest.Pytester, digits) -> None:
    root, weights, _ = digits
    digits_project.makeini(
        f"""
        [pytest]
        dnn_imagenet = {root}
        dnn_weights = {weights}
        dnn_accuracy_limit = 30
        """
    )
    out = digits_project.path / "r.json"
    digits_project.runpytest(
        *FAST, "--dnn-models=digits_cnn", "--dnn-batch-sizes=1", f"--dnn-json={out}"
    ).assert_outcomes(passed=1)
    acc = load_json(out)["records"][0]["accuracy"]
    assert acc["measured"]["n_images"] == 30


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--dnn-imagenet=nowhere"], ["*--dnn-imagenet=*nowhere: *does not exist; expected either an ImageFolder*"]),
        (["--dnn-imagenet=."], ["*--dnn-imagenet=*: *hold no images*"]),
        (["--dnn-accuracy-limit=0"], ["*--dnn-accuracy-limit=0: not a positive whole number*"]),
        (["--dnn-accuracy-limit=many"], ["*--dnn-accuracy-limit=many*"]),
        (["--dnn-weights=nothing.pt"], ["*--dnn-weights=*nothing.pt*neither 'random', 'pretrained' nor an existing*"]),
    ],
)
def test_bad_accuracy_options_stop_before_any_model_is_built(
    tiny_project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, args: list[str], expected: list[str]
) -> None:
    marker = tiny_project.path / "built.txt"
    monkeypatch.setenv("DNN_BUILD_MARKER", str(marker))
    (tiny_project.path / "emptyclass").mkdir()
    result = tiny_project.runpytest("--dnn-models=tiny", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(expected)
    assert not marker.exists(), "a model was built despite the bad option"


def test_long_evaluations_report_progress(digits) -> None:
    from pytest_dnnbench.accuracy.data import open_dataset
    from pytest_dnnbench.accuracy.evaluate import evaluate
    from pytest_dnnbench.registry import Preprocess, Registry

    root, _, net = digits
    spec = Registry().register(
        "digits",
        lambda: net,
        input_size=(3, 32, 32),
        preprocess=Preprocess(resize=32, crop=32, mean=(0.5,) * 3, std=(0.5,) * 3),
    )
    lines: list[str] = []
    result = evaluate(net, spec, open_dataset(root), "cpu", lines.append, batch_size=8)  # 57 batches
    assert lines[0] == "450 images on cpu, 57 batches of 8"
    assert 9 <= len(lines) <= 12 and lines[-1].startswith("450/450 images, top-1 so far")
    top1, top5, _ = _independent(root, net)
    assert (result["top1"], result["top5"]) == (pytest.approx(top1, abs=1e-9), pytest.approx(top5, abs=1e-9))
    short: list[str] = []
    evaluate(net, spec, open_dataset(root), "cpu", short.append, batch_size=64)  # 8 batches: quiet
    assert short == []


def test_devkit_layout_through_the_plugin(digits_project: pytest.Pytester, digits, tmp_path: Path) -> None:
    """The same held-out digits as the flat ILSVRC2012 layout + ground truth + synset list: same figures."""
    import shutil

    root, weights, net = digits
    wnids = [f"n{d:08d}" for d in range(10)]  # sorted order = digit
    id_order = [wnids[i] for i in (7, 2, 9, 0, 5, 1, 8, 3, 6, 4)]  # ILSVRC2012_ID k -> id_order[k-1]
    flat = tmp_path / "val"
    (flat / "data").mkdir(parents=True)
    truth = []
    files = sorted(root.rglob("*.png"), key=lambda p: p.name)
    for n, f in enumerate(files, 1):
        shutil.copy(f, flat / f"ILSVRC2012_val_{n:08d}.PNG")
        truth.append(id_order.index(wnids[int(f.parent.name)]) + 1)
    (flat / "data" / "ILSVRC2012_validation_ground_truth.txt").write_text("".join(f"{t}\n" for t in truth))
    (flat / "data" / "synsets.txt").write_text("\n".join(id_order) + "\n")
    out = digits_project.path / "r.json"
    digits_project.runpytest(
        *FAST,
        "--dnn-models=digits_cnn",
        "--dnn-batch-sizes=1",
        f"--dnn-imagenet={flat}",
        f"--dnn-weights={weights}",
        f"--dnn-json={out}",
    ).assert_outcomes(passed=1)
    acc = load_json(out)["records"][0]["accuracy"]["measured"]
    top1, top5, n = _independent(root, net)
    assert acc["layout"] == "devkit" and acc["n_images"] == n
    assert acc["top1"] == pytest.approx(top1, abs=1e-9) and acc["top5"] == pytest.approx(top5, abs=1e-9)
