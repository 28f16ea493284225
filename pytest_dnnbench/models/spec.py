"""What the registry knows about a model (pure data, no torch)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

#: Where a model's builder comes from.
SOURCES = ("torchvision", "timm", "pretrainedmodels", "dnnbench", "custom")


@dataclass(frozen=True)
class Preprocess:
    """Evaluation preprocessing: resize the shorter side, centre-crop, normalise.

    ``value_range`` is 1.0 for tensors in 0..1 and 255.0 for Caffe-style inputs
    in 0..255; ``color`` is the channel order the network expects.
    """

    resize: int
    crop: int
    interpolation: str = "bilinear"
    mean: tuple[float, ...] = (0.485, 0.456, 0.406)
    std: tuple[float, ...] = (0.229, 0.224, 0.225)
    color: str = "RGB"
    value_range: float = 1.0
    source: str = ""


@dataclass(frozen=True)
class ModelSpec:
    """One registry entry.

    ``builder`` is the name of the builder in ``source`` (torchvision, timm,
    pretrainedmodels), or an importable ``"package.module:factory"`` for
    ``dnnbench`` and ``custom`` models; ``factory`` may instead hold a callable
    for models registered in-process (such a model cannot be rebuilt in another
    process). ``input_size`` is (channels, height, width) of one image.
    """

    name: str
    source: str
    builder: str
    input_size: tuple[int, int, int]
    family: str = ""
    paper_name: str | None = None
    preprocess: Preprocess | None = None
    weights: str | None = None
    #: Keyword arguments of the builder: whatever the source library's builder takes, hence ``Any``.
    builder_kwargs: tuple[tuple[str, Any], ...] = ()
    paper_top1: float | None = None
    factory: Callable[..., object] | None = field(default=None, compare=False, repr=False)

    @property
    def in_paper(self) -> bool:
        return self.paper_name is not None

    @property
    def display_name(self) -> str:
        return self.paper_name or self.name

    @property
    def importable(self) -> bool:
        """True when the model can be rebuilt by name in another process."""
        return self.factory is None

    def describe_source(self) -> str:
        if self.source in ("dnnbench", "custom"):
            return f"{self.source} ({self.builder})" if self.builder else self.source
        return f"{self.source}.{self.builder}"


ModelFactory = str | Callable[..., object]
