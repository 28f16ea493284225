"""Model registry: short name -> :class:`ModelSpec`, selection expressions, lazy builders.

Importing this module imports no torch; :func:`build_model` imports the
model's source library when it is called.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypedDict

from .models.catalog import DEFAULT_MODELS, PAPER_MODELS, TORCHVISION_EXTRA
from .models.spec import SOURCES, ModelSpec, Preprocess

if TYPE_CHECKING:
    import torch
    from typing_extensions import Unpack

__all__ = [
    "ModelSpec",
    "ModelUnavailable",
    "Preprocess",
    "REGISTRY",
    "Registry",
    "SelectionError",
    "build_model",
    "import_object",
    "register_model",
]

_GLOB_CHARS = set("*?[")
#: Keywords of the selection language, besides names and globs.
KEYWORDS = ("paper", "all", "default")


class SelectionError(ValueError):
    """A model selection names something the registry does not have."""


class ModelUnavailable(RuntimeError):
    """A model cannot be built here (for example an optional library is missing)."""


class Registry:
    """An ordered mapping of short names to model specs."""

    def __init__(self, specs: Iterable[ModelSpec] = (), default: Sequence[str] = DEFAULT_MODELS):
        self._specs: dict[str, ModelSpec] = {}
        for spec in specs:
            self.add(spec)
        self.default = tuple(default)

    # -- mapping -----------------------------------------------------------------------------
    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def __iter__(self) -> Iterator[ModelSpec]:
        return iter(self._specs.values())

    def __len__(self) -> int:
        return len(self._specs)

    def names(self) -> list[str]:
        return list(self._specs)

    def paper_names(self) -> list[str]:
        return [s.name for s in self._specs.values() if s.in_paper]

    def get(self, name: str) -> ModelSpec:
        try:
            return self._specs[name]
        except KeyError:
            raise SelectionError(self._unknown_message(name)) from None

    def copy(self) -> Registry:
        new = Registry(default=self.default)
        new._specs = dict(self._specs)
        return new

    # -- adding --------------------------------------------------------------------------------
    def add(self, spec: ModelSpec, replace: bool = False) -> ModelSpec:
        name = spec.name
        if not name or "," in name or set(name) & _GLOB_CHARS or name in KEYWORDS or name != "".join(name.split()):
            raise ValueError(
                f"invalid model name {name!r}: use a non-empty name without commas, whitespace or glob "
                f"characters (*?[), other than {', '.join(KEYWORDS)}"
            )
        if spec.source not in SOURCES:
            raise ValueError(f"unknown source {spec.source!r} for model {spec.name!r}; expected one of {SOURCES}")
        if spec.name in self._specs and not replace and self._specs[spec.name] != spec:
            raise ValueError(
                f"model {spec.name!r} is already registered (from {self._specs[spec.name].describe_source()}); "
                "pass replace=True to override it"
            )
        self._specs[spec.name] = spec
        return spec

    def register(
        self,
        name: str,
        factory: str | Callable[..., object],
        *,
        input_size: Sequence[int] = (3, 224, 224),
        preprocess: Preprocess | None = None,
        family: str = "custom",
        paper_name: str | None = None,
        kwargs: Mapping[str, object] | None = None,
        replace: bool = False,
    ) -> ModelSpec:
        """Register a user model.

        ``factory`` is either an importable ``"package.module:callable"`` (the
        model can then be rebuilt in worker processes) or a callable returning
        an ``nn.Module``.
        """
        size = tuple(int(v) for v in input_size)
        if len(size) != 3 or min(size) < 1:
            raise ValueError(f"input_size for {name!r} must be (channels, height, width), got {tuple(input_size)}")
        if isinstance(factory, str):
            if ":" not in factory:
                raise ValueError(f"factory {factory!r} for {name!r} must look like 'package.module:callable'")
            builder, callable_factory = factory, None
        elif callable(factory):
            builder = f"{getattr(factory, '__module__', '?')}:{getattr(factory, '__qualname__', repr(factory))}"
            callable_factory = factory
        else:
            raise TypeError(f"factory for {name!r} must be a callable or 'package.module:callable' string")
        spec = ModelSpec(
            name=name,
            source="custom",
            builder=builder,
            input_size=size,
            family=family,
            paper_name=paper_name,
            preprocess=preprocess,
            builder_kwargs=tuple(sorted((kwargs or {}).items())),
            factory=callable_factory,
        )
        return self.add(spec, replace=replace)

    # -- selection ---------------------------------------------------------------------------
    def select(self, expression: str | Sequence[str]) -> list[str]:
        """Resolve a selection (``paper``, ``all``, ``default``, names, globs) to ordered names."""
        tokens = _tokens(expression)
        if not tokens:
            raise SelectionError("empty model selection: give names, globs, 'paper', 'all' or 'default'")
        chosen: dict[str, None] = {}
        for token in tokens:
            for name in self._expand(token):
                chosen.setdefault(name)
        return list(chosen)

    def _expand(self, token: str) -> list[str]:
        if token == "paper":
            return self.paper_names()
        if token == "all":
            return self.names()
        if token == "default":
            return [self.get(n).name for n in self.default]
        if set(token) & _GLOB_CHARS:
            matched = [n for n in self._specs if fnmatch.fnmatchcase(n, token)]
            if not matched:
                raise SelectionError(
                    f"model pattern {token!r} matches no registered model; "
                    "run `pytest --dnn-list-models` to see the names"
                )
            return matched
        return [self.get(token).name]

    def _unknown_message(self, name: str) -> str:
        close = difflib.get_close_matches(name, list(self._specs) + list(KEYWORDS), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else "."
        return (
            f"unknown model {name!r}{hint} Use a registered short name, a glob such as 'resnet*', "
            "'paper', 'all' or 'default' (`pytest --dnn-list-models` lists the names)"
        )


def _tokens(expression: str | Sequence[str]) -> list[str]:
    parts: list[str] = []
    items = [expression] if isinstance(expression, str) else list(expression)
    for item in items:
        parts.extend(p.strip() for p in str(item).replace("\n", ",").split(","))
    return [p for p in parts if p]


#: The built-in registry. ``register_model`` adds to it; the plugin works on a copy per session.
REGISTRY = Registry(PAPER_MODELS + TORCHVISION_EXTRA)


class RegisterOptions(TypedDict, total=False):
    """The keyword arguments of :meth:`Registry.register` that :func:`register_model` passes on."""

    input_size: Sequence[int]
    preprocess: Preprocess | None
    family: str
    paper_name: str | None
    kwargs: Mapping[str, object] | None
    replace: bool


def register_model(name: str, factory: str | Callable[..., object], **kwargs: Unpack[RegisterOptions]) -> ModelSpec:
    """Register a model in the process-wide registry (see :meth:`Registry.register`)."""
    return REGISTRY.register(name, factory, **kwargs)


def import_object(path: str) -> Any:
    """Import ``"package.module:attribute"`` (any object: what the caller does with it is up to the caller)."""
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise ValueError(f"{path!r} is not of the form 'package.module:attribute'")
    obj: object = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def import_source(spec: ModelSpec) -> None:
    """Import the library (or the user's module) that builds ``spec``, without building anything.

    Imports cost time and memory once per process; a measurement's time budget and host-memory
    limit are for the model, so callers import first. A library that is missing is left for
    :func:`build_model` to report.
    """
    if spec.factory is not None:
        return
    name = {"torchvision": "torchvision.models", "timm": "timm", "pretrainedmodels": "pretrainedmodels"}.get(
        spec.source, spec.builder.partition(":")[0] if ":" in spec.builder else ""
    )
    if name:
        try:
            importlib.import_module(name)
        except ImportError:
            pass


def build_model(spec: ModelSpec) -> torch.nn.Module:
    """Build ``spec``'s network with random weights (nothing is downloaded)."""
    import torch.nn as nn

    kwargs = dict(spec.builder_kwargs)
    model: object  # whatever the builder returns: checked below
    if spec.factory is not None:
        model = spec.factory(**kwargs)
    elif spec.source == "torchvision":
        import torchvision.models

        model = torchvision.models.get_model(spec.builder, weights=None, **kwargs)
    elif spec.source == "timm":
        try:
            import timm
        except ImportError as exc:  # pragma: no cover - timm is a hard dependency
            raise ModelUnavailable(f"{spec.name} needs timm: pip install timm ({exc})") from exc
        model = timm.create_model(spec.builder, pretrained=False, **kwargs)
    elif spec.source == "pretrainedmodels":
        try:
            import pretrainedmodels
        except ImportError as exc:
            raise ModelUnavailable(
                f"{spec.name} comes from Cadene's pretrainedmodels, which is not installed here: "
                f"pip install pretrainedmodels six ({exc})"
            ) from exc
        model = pretrainedmodels.__dict__[spec.builder](num_classes=1000, pretrained=None)
    else:
        model = import_object(spec.builder)(**kwargs)
    if not isinstance(model, nn.Module):
        raise TypeError(f"the builder of {spec.name!r} returned {type(model).__name__}, not a torch.nn.Module")
    return model
