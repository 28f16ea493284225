"""Pretrained weights from local files only: nothing is ever downloaded.

``--dnn-weights`` is ``random`` (the registry's builders, random weights; a user's factory builds
whatever it builds), ``pretrained`` (local caches: ``$TORCH_HOME/hub/checkpoints`` for torchvision
and pretrainedmodels checkpoints, the Hugging Face hub cache for timm, and for timm's
``url`` weights the torch hub cache as well), or a path: a checkpoint file applied to every
selected model, or a folder holding ``<model name>.(pth|pt|bin|safetensors)`` or the checkpoint
under the file name its library uses (e.g. ``resnet50-0676ba61.pth``), directly or under
``hub/checkpoints``. torch is imported when weights are loaded.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from ..models.spec import ModelSpec

if TYPE_CHECKING:
    import torch

    from ..jsontypes import JsonObject

SUFFIXES = (".pth", ".pt", ".bin", ".safetensors", ".ckpt")
#: torchvision's auxiliary classifier heads (GoogLeNet, Inception-v3): trained, unused in eval.
_AUX_HEADS = ("aux1", "aux2", "AuxLogits")


class WeightsUnavailable(RuntimeError):
    """The requested weights are not on this machine (or do not fit the model); says where it looked."""


def parse_weights(value: str | None) -> str:
    """``random``, ``pretrained`` or an existing path; raise ValueError otherwise."""
    v = (value or "random").strip()
    if v.lower() in ("random", "pretrained"):
        return v.lower()
    p = Path(v).expanduser()
    if not p.exists():
        raise ValueError(f"{v!r} is neither 'random', 'pretrained' nor an existing file or folder")
    return str(p.resolve())


def hub_checkpoint(url: str) -> Path:
    """Where torch.hub keeps ``url``'s file: ``$TORCH_HOME/hub/checkpoints/<basename>``."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)


def _canonical_files(spec: ModelSpec) -> list[str]:
    """The file names the source library stores this model's weights under."""
    try:
        if spec.source == "torchvision" and spec.weights:
            import torchvision.models

            enum = torchvision.models.get_model_weights(spec.builder)[spec.weights]
            return [os.path.basename(urlparse(enum.url).path)]
        if spec.source == "pretrainedmodels":
            import pretrainedmodels

            url = pretrainedmodels.pretrained_settings[spec.builder]["imagenet"]["url"]
            return [os.path.basename(urlparse(url).path)]
        if spec.source == "timm":
            cfg = _timm_cfg(spec)
            names = []
            if cfg.get("url"):
                names.append(os.path.basename(urlparse(cfg["url"]).path))
            return names
    except Exception:  # an unknown builder: no canonical name
        return []
    return []


def _hf_cache_dir() -> str | None:
    """The Hugging Face hub cache as the environment names it now (``HF_HUB_CACHE``, ``HF_HOME``)."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return os.path.join(os.environ["HF_HOME"], "hub")
    return None  # huggingface_hub's default (~/.cache/huggingface/hub)


def _timm_cfg(spec: ModelSpec) -> JsonObject:
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(spec.builder)
    # timm's PretrainedCfg.to_dict has no annotations (it returns a plain dict of the config).
    return cfg.to_dict() if cfg is not None else {}  # type: ignore[no-untyped-call]


# -- locating ----------------------------------------------------------------------------------


def locate_cached(spec: ModelSpec) -> Path:
    """The local cache file of ``spec``'s pretrained weights; WeightsUnavailable saying where it looked."""
    if spec.source in ("torchvision", "pretrainedmodels"):
        if spec.source == "torchvision" and not spec.weights:
            raise WeightsUnavailable(f"{spec.name}: the registry names no torchvision weights")
        names = _canonical_files(spec)
        if not names:
            raise WeightsUnavailable(f"{spec.name}: {spec.describe_source()} has no published weights")
        path = hub_checkpoint("x/" + names[0])
        if path.is_file():
            return path
        raise WeightsUnavailable(
            f"{spec.name}: no cached checkpoint at {path} (TORCH_HOME's hub cache); nothing is downloaded - "
            "copy the file there or pass --dnn-weights=FILE"
        )
    if spec.source == "timm":
        cfg = _timm_cfg(spec)
        tried = []
        hub_id = cfg.get("hf_hub_id")
        if hub_id:
            try:
                from huggingface_hub import try_to_load_from_cache
            except ImportError:  # pragma: no cover - timm depends on it
                pass
            else:
                for filename in ([cfg["hf_hub_filename"]] if cfg.get("hf_hub_filename") else []) + [
                    "model.safetensors",
                    "pytorch_model.bin",
                ]:
                    found = try_to_load_from_cache(hub_id, filename, cache_dir=_hf_cache_dir())
                    if isinstance(found, str) and os.path.isfile(found):
                        return Path(found)
                tried.append(f"Hugging Face cache {hub_id}")
        if cfg.get("url"):
            path = hub_checkpoint(cfg["url"])
            if path.is_file():
                return path
            tried.append(str(path))
        raise WeightsUnavailable(
            f"{spec.name}: timm's {spec.builder} weights are not cached locally (looked in "
            f"{'; '.join(tried) or 'nowhere: timm names no weights'}); nothing is downloaded - "
            "fill the cache or pass --dnn-weights=FILE"
        )
    raise WeightsUnavailable(f"{spec.name}: no pretrained weights are published for {spec.describe_source()}")


def locate_in_folder(spec: ModelSpec, folder: Path) -> Path:
    candidates = [folder / f"{spec.name}{s}" for s in SUFFIXES]
    for name in _canonical_files(spec):
        candidates += [folder / name, folder / "hub" / "checkpoints" / name, folder / "checkpoints" / name]
    for c in candidates:
        if c.is_file():
            return c
    raise WeightsUnavailable(
        f"{spec.name}: no weights in {folder} (looked for {', '.join(str(c.relative_to(folder)) for c in candidates)})"
    )


# -- loading -----------------------------------------------------------------------------------


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from a checkpoint file (safetensors, or torch.load with weights_only)."""
    import torch

    if str(path).endswith(".safetensors"):
        from safetensors.torch import load_file

        return dict(load_file(str(path), device="cpu"))
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsUnavailable(f"cannot read {path} as a checkpoint: {exc}") from None
    if hasattr(obj, "state_dict") and callable(obj.state_dict):
        obj = obj.state_dict()
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "model_state_dict", "net"):
            inner = obj.get(key)
            if isinstance(inner, dict) and inner and all(isinstance(k, str) for k in inner):
                obj = inner
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsUnavailable(f"{path} holds no state dict of tensors")
    if obj and all(k.startswith("module.") for k in obj):
        obj = {k[len("module.") :]: v for k, v in obj.items()}
    return obj


def apply_state_dict(model: torch.nn.Module, state: Mapping[str, torch.Tensor], origin: str) -> None:
    """Load ``state`` strictly; a checkpoint that does not fit is refused before any tensor is copied."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [k for k in own if k in state and tuple(own[k].shape) != tuple(getattr(state[k], "shape", ()))]
    if missing or unexpected or shapes:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("other shape", shapes)):
            if keys:
                parts.append(f"{len(keys)} {label} ({', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''})")
        raise WeightsUnavailable(f"{origin} does not fit the model: " + "; ".join(parts))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        text = str(exc).strip().splitlines()
        raise WeightsUnavailable(f"{origin} does not fit the model: {' '.join(text[:3])[:600]}") from None


def _load_library(model: torch.nn.Module, spec: ModelSpec, path: Path) -> None:
    """Load a library's own cached checkpoint with the library's own key fixes."""
    if spec.source == "torchvision":
        import torchvision.models

        enum = torchvision.models.get_model_weights(spec.builder)[spec.weights]
        # The file is in the hub cache (checked): torchvision reads it from there, fixing old keys
        # (DenseNet) as its pretrained builders do. Those builders insist on building the auxiliary
        # heads of GoogLeNet and Inception-v3 themselves; the registry's models have none, so the
        # heads' weights (never used in eval) are left out.
        kwargs = {k: v for k, v in spec.builder_kwargs if k != "aux_logits"}
        fresh = torchvision.models.get_model(spec.builder, weights=enum, **kwargs)
        state = fresh.state_dict()
        ours = set(model.state_dict())
        state = {k: v for k, v in state.items() if k in ours or k.split(".")[0] not in _AUX_HEADS}
        apply_state_dict(model, state, str(path))
    elif spec.source == "timm":
        import timm

        overlay = {"file": str(path), "source": "file"}
        fresh = timm.create_model(
            spec.builder, pretrained=True, pretrained_cfg_overlay=overlay, **dict(spec.builder_kwargs)
        )
        apply_state_dict(model, fresh.state_dict(), str(path))
    else:
        apply_state_dict(model, read_state_dict(path), str(path))


def load_weights(model: torch.nn.Module, spec: ModelSpec, mode: str) -> JsonObject:
    """Load ``mode``'s weights into ``model`` in place; returns what was loaded (JSON data).

    Raises :class:`WeightsUnavailable` with the reason when the weights are not here.
    """
    if mode == "random":
        if spec.source in ("custom",):
            return {"weights": "factory", "weights_note": "as the registered factory builds the model"}
        return {"weights": "random"}
    if mode == "pretrained":
        if spec.source == "custom":
            return {"weights": "factory", "weights_note": "as the registered factory builds the model"}
        path = locate_cached(spec)
        _load_library(model, spec, path)
        return {"weights": "pretrained", "weights_file": str(path)}
    target = Path(mode)
    path = locate_in_folder(spec, target) if target.is_dir() else target
    if spec.source == "timm" and not str(path).endswith(".safetensors"):
        # timm's own loader applies the model's checkpoint filter (key renames of ported weights).
        _load_library(model, spec, path)
    else:
        apply_state_dict(model, read_state_dict(path), str(path))
    return {"weights": "file", "weights_file": str(path)}
