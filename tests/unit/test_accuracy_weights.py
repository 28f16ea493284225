"""Weights from local files only: TORCH_HOME's hub cache, the Hugging Face cache, files, folders."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from pytest_dnnbench.accuracy.weights import (  # noqa: E402
    WeightsUnavailable,
    load_weights,
    locate_cached,
    parse_weights,
)
from pytest_dnnbench.registry import REGISTRY, build_model  # noqa: E402


def _built(name: str, seed: int):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_model(REGISTRY.get(name))


def _same(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.fixture
def caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Empty TORCH_HOME and Hugging Face caches (nothing can be found, nothing is fetched)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path


def test_random_and_factory() -> None:
    assert load_weights(None, REGISTRY.get("resnet18"), "random") == {"weights": "random"}
    custom = REGISTRY.copy()
    spec = custom.register("mine", "tinymodels:tiny")
    assert load_weights(None, spec, "random")["weights"] == "factory"
    assert load_weights(None, spec, "pretrained")["weights"] == "factory"


def test_parse_weights(tmp_path: Path) -> None:
    assert parse_weights(None) == "random" and parse_weights(" Pretrained ") == "pretrained"
    assert parse_weights(str(tmp_path)) == str(tmp_path.resolve())
    with pytest.raises(ValueError, match="neither 'random', 'pretrained' nor an existing"):
        parse_weights(str(tmp_path / "missing.pth"))


def test_torchvision_from_torch_home(caches: Path) -> None:
    spec = REGISTRY.get("squeezenet1_1")
    with pytest.raises(WeightsUnavailable, match=r"no cached checkpoint at .*hub/checkpoints/squeezenet1_1-.*\.pth"):
        locate_cached(spec)
    source = _built("squeezenet1_1", 1)
    path = caches / "torch" / "hub" / "checkpoints" / "squeezenet1_1-b8a52dc0.pth"
    path.parent.mkdir(parents=True)
    torch.save(source.state_dict(), path)
    target = _built("squeezenet1_1", 2)
    assert not _same(source, target)
    info = load_weights(target, spec, "pretrained")
    assert info == {"weights": "pretrained", "weights_file": str(path)}
    assert _same(source, target)


def test_pretrainedmodels_from_torch_home(caches: Path) -> None:
    pytest.importorskip("pretrainedmodels")
    spec = REGISTRY.get("nasnetamobile")
    source = _built("nasnetamobile", 1)
    path = caches / "torch" / "hub" / "checkpoints" / "nasnetamobile-7e03cead.pth"
    path.parent.mkdir(parents=True)
    torch.save(source.state_dict(), path)
    target = _built("nasnetamobile", 2)
    assert load_weights(target, spec, "pretrained")["weights_file"] == str(path)
    assert _same(source, target)


def test_timm_from_the_hugging_face_cache(caches: Path) -> None:
    from safetensors.torch import save_file
    from timm.models import get_pretrained_cfg

    spec = REGISTRY.get("mobilenet_v1")
    with pytest.raises(WeightsUnavailable, match="not cached locally.*Hugging Face cache timm/mobilenetv1_100"):
        locate_cached(spec)
    hub_id = get_pretrained_cfg(spec.builder).hf_hub_id
    repo = caches / "hf" / ("models--" + hub_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    snapshot = repo / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    source = _built("mobilenet_v1", 1)
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(snapshot / "model.safetensors"))
    target = _built("mobilenet_v1", 2)
    info = load_weights(target, spec, "pretrained")
    assert info["weights"] == "pretrained" and info["weights_file"].endswith("model.safetensors")
    assert _same(source, target)


def test_files_and_folders(tmp_path: Path) -> None:
    spec = REGISTRY.get("squeezenet1_1")
    source = _built("squeezenet1_1", 1)
    wrapped = tmp_path / "ckpt.pt"
    torch.save({"state_dict": {"module." + k: v for k, v in source.state_dict().items()}, "epoch": 3}, wrapped)
    target = _built("squeezenet1_1", 2)
    assert load_weights(target, spec, str(wrapped)) == {"weights": "file", "weights_file": str(wrapped)}
    assert _same(source, target)
    folder = tmp_path / "weights"
    folder.mkdir()
    with pytest.raises(WeightsUnavailable, match=r"no weights in .*squeezenet1_1\.pth"):
        load_weights(target, spec, str(folder))
    torch.save(source.state_dict(), folder / "squeezenet1_1.pth")
    found = load_weights(_built("squeezenet1_1", 3), spec, str(folder))["weights_file"]
    assert found == str(folder / "squeezenet1_1.pth")
    # A checkpoint of another network does not fit: the reason says so.
    with pytest.raises(WeightsUnavailable, match="does not fit the model"):
        load_weights(_built("squeezenet1_0", 0), REGISTRY.get("squeezenet1_0"), str(folder / "squeezenet1_1.pth"))
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsUnavailable, match="cannot read"):
        load_weights(target, spec, str(junk))


def test_no_weights_for_shufflenet() -> None:
    with pytest.raises(WeightsUnavailable, match="no pretrained weights are published"):
        locate_cached(REGISTRY.get("shufflenet"))


def test_torchvision_heads_switched_off(caches: Path) -> None:
    """GoogLeNet's published checkpoint holds the auxiliary heads; the registry's model has none."""
    import torchvision.models

    source = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=False, transform_input=True)
    path = caches / "torch" / "hub" / "checkpoints" / "googlenet-1378be20.pth"
    path.parent.mkdir(parents=True)
    torch.save(source.state_dict(), path)
    target = _built("googlenet", 2)
    assert not any(k.startswith("aux") for k in target.state_dict())
    load_weights(target, REGISTRY.get("googlenet"), "pretrained")
    theirs = source.state_dict()
    assert all(torch.equal(v, theirs[k]) for k, v in target.state_dict().items())


def test_a_checkpoint_that_does_not_fit_changes_nothing(tmp_path: Path) -> None:
    spec = REGISTRY.get("squeezenet1_1")
    state = _built("squeezenet1_1", 1).state_dict()
    state["classifier.1.bias"] = torch.zeros(7)  # the wrong number of classes
    path = tmp_path / "other.pt"
    torch.save(state, path)
    target = _built("squeezenet1_1", 2)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(WeightsUnavailable, match=r"does not fit the model: 1 other shape \(classifier\.1\.bias\)"):
        load_weights(target, spec, str(path))
    assert all(torch.equal(before[k], v) for k, v in target.state_dict().items())
