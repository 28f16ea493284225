"""Accuracy evaluation for a session: data, weights, and Top-1/Top-5 once per model (pure: no pytest).

``--dnn-imagenet=DIR`` (validation data, ImageFolder or ILSVRC2012 devkit layout),
``--dnn-accuracy-limit=N`` (a class-balanced subset) and ``--dnn-weights=random|pretrained|PATH``.
Accuracy is computed once per model per session, on the device under test, the first time a
record of that model is made, and given to every record of that model as ``accuracy.measured``.
Without data or weights ``accuracy.measured`` is null and ``accuracy.reason`` says why; the
published figure of the weights is ``accuracy.reference`` either way, where one exists (never in
place of a measured one). The session (:mod:`..session`) calls :meth:`AccuracyRun.load_weights` after building a
model and :meth:`AccuracyRun.for_record` for each record. No torch at import.
"""

from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict, cast

from ..models.spec import ModelSpec
from ..oom import is_out_of_memory
from .data import Dataset, balanced_subset, label_map, open_dataset
from .topk import TIE_RULE
from .weights import WeightsUnavailable

if TYPE_CHECKING:
    import torch

    from ..jsontypes import JsonObject

#: Images per forward pass during evaluation.
EVAL_BATCH = 32
#: Progress lines for evaluations of at least this many batches (about ten lines each).
PROGRESS_MIN_BATCHES = 20


@dataclass
class AccuracyRun:
    """This session's accuracy evaluation: the data set, the weights asked for, results per model.

    ``open`` the data set once (:func:`open_run`); then, per model, :meth:`load_weights` right after
    it is built, and :meth:`for_record` for each of its records.
    """

    weights_choice: str = "random"
    limit: int | None = None
    dataset: Dataset | None = None
    n_available: int | None = None
    #: model name -> accuracy (JSON form: ``measured``, ``reference``, ``reason``...), measured or not.
    cache: dict[str, JsonObject] = field(default_factory=dict)
    #: model name -> weights info, or ``{"error": reason}``.
    weights: dict[str, JsonObject] = field(default_factory=dict)

    def header(self) -> str | None:
        """The report-header line when data was given, else None."""
        d = self.dataset
        if d is None:
            return None
        limit = f" (limit {self.limit} of {self.n_available})" if self.limit else ""
        return (
            f"dnnbench accuracy: {len(d)} images{limit}, {len(d.classes)} classes, {d.layout} layout at "
            f"{d.root}; weights {self.weights_choice}"
        )

    def load_weights(self, model: torch.nn.Module, spec: ModelSpec) -> None:
        """Load the weights ``--dnn-weights`` asks for into ``model``; a failure is kept as the reason."""
        from .weights import load_weights

        try:
            self.weights[spec.name] = load_weights(model, spec, self.weights_choice)
        except WeightsUnavailable as exc:
            self.weights[spec.name] = {"weights": self.weights_choice, "error": str(exc)}
        # A new model object: its accuracy is measured anew.
        self.cache.pop(spec.name, None)

    def for_record(
        self,
        model: torch.nn.Module | None,
        spec: ModelSpec | None,
        known: ModelSpec | None,
        device: str,
        channels_last: bool,
        progress: Callable[[str], None],
    ) -> JsonObject:
        """The accuracy of a record: ``spec`` is the registry model benchmarked (None for a module of the
        test's own); ``known`` the registry entry of the record's name, for the reference figure.
        ``model`` is the module benchmarked: given wherever ``spec`` is (None only without a spec)."""
        if spec is None:
            reason = (
                "accuracy is evaluated for registry models benchmarked through the dnn_model fixture; "
                "register the model (pytest_dnnbench_register_models) with its preprocessing"
            )
            return not_measured(known, reason)
        if spec.name not in self.cache:
            # A spec comes only with the module built from it (see above): model is not None here.
            module = cast("torch.nn.Module", model)
            self.cache[spec.name] = self._measure(module, spec, device, channels_last, progress)
        return copy.deepcopy(self.cache[spec.name])

    def _measure(
        self, model: torch.nn.Module, spec: ModelSpec, device: str, channels_last: bool, progress: Callable[[str], None]
    ) -> JsonObject:
        """Measure, or say why not (with the reference figure where one is published)."""
        reasons: list[str] = []
        weights = self.weights.get(spec.name, {"weights": self.weights_choice})
        if self.dataset is None:
            reasons.append("no validation data (pass --dnn-imagenet=DIR)")
        if "error" in weights:
            reasons.append(weights["error"])
        elif weights.get("weights") == "random":
            reasons.append("random weights (pass --dnn-weights=pretrained or a checkpoint to measure accuracy)")
        if spec.preprocess is None:
            reasons.append(f"{spec.name} was registered without preprocess=Preprocess(...)")
        if reasons or self.dataset is None or spec.preprocess is None:
            return not_measured(spec, "; ".join(reasons), weights)
        dataset = self.dataset
        try:
            result = evaluate(model, spec, dataset, device, progress, channels_last=channels_last)
        except EvaluationError as exc:
            return not_measured(spec, str(exc), weights)
        except Exception as exc:  # the benchmark goes on; the record says what went wrong
            if is_out_of_memory(exc):
                raise  # the test's memory, not the evaluation's fault: the caller's guard skips the test
            return not_measured(spec, f"evaluation failed: {type(exc).__name__}: {exc}", weights)
        measured: JsonObject = {
            "top1": result["top1"],
            "top5": result["top5"],
            "n_images": result["n_images"],
            "source": (
                f"measured on {result['n_images']} images of {dataset.root} ({dataset.layout} layout), "
                f"weights {weights.get('weights')}"
            ),
            "dataset": dataset.root,
            "layout": dataset.layout,
            "n_classes": len(dataset.classes),
            "n_available": self.n_available,
            "limit": self.limit,
            "label_order": result["label_order"],
            "device": device,
            "preprocess": result["preprocess"],
            "seconds": result["seconds"],
            "tie_rule": TIE_RULE,
        }
        return accuracy_json(measured, _reference(spec), None, spec, weights)


def open_run(data: Path | None, limit: int | None, weights: str) -> AccuracyRun:
    """This session's :class:`AccuracyRun`; :class:`~.data.DatasetError` where the data cannot be used."""
    run = AccuracyRun(weights_choice=weights, limit=limit)
    if data is not None:
        dataset = open_dataset(str(data))
        run.n_available = len(dataset)
        if limit is not None:
            dataset = Dataset(
                root=dataset.root,
                layout=dataset.layout,
                classes=dataset.classes,
                samples=tuple(balanced_subset(dataset.samples, limit)),
            )
        run.dataset = dataset
    return run


def _reference(spec: ModelSpec | None) -> JsonObject | None:
    if spec is None:
        return None
    from .reference import reference_for

    return reference_for(spec)


def not_measured(spec: ModelSpec | None, reason: str, weights: JsonObject | None = None) -> JsonObject:
    """Nothing measured (``measured`` null, ``reason`` why), with the published figure as ``reference`` where
    one exists."""
    return accuracy_json(None, _reference(spec), reason, spec, weights)


def accuracy_json(
    measured: JsonObject | None,
    reference: JsonObject | None,
    reason: str | None,
    spec: ModelSpec | None,
    weights: JsonObject | None,
) -> JsonObject:
    """A record's ``accuracy``: ``measured`` (this run's figures, or None), ``reference`` (the published
    figures of these weights: ``top1``, ``top5``, ``source``, ``weights``; or None), ``reason`` (why nothing
    was measured; None when measured), ``unit`` (``%``), ``paper_top1`` (the paper's own Top-1) and the
    weights used (``weights``, ``weights_file``...)."""
    out: JsonObject = {
        "measured": measured,
        "reference": reference,
        "reason": reason,
        "unit": "%",
        "paper_top1": spec.paper_top1 if spec is not None else None,
    }
    if weights:
        out.update({k: v for k, v in weights.items() if k != "error"})
    return out


class EvaluationError(RuntimeError):
    """The model and the data do not fit (e.g. number of classes)."""


class Evaluation(TypedDict):
    """What :func:`evaluate` measured."""

    top1: float
    top5: float
    n_images: int
    label_order: str
    preprocess: JsonObject
    seconds: float


def evaluate(
    model: torch.nn.Module,
    spec: ModelSpec,
    dataset: Dataset,
    device: str,
    progress: Callable[[str], None] | None = None,
    batch_size: int = EVAL_BATCH,
    channels_last: bool = False,
) -> Evaluation:
    """Top-1/Top-5 (percent) of ``model`` on ``dataset`` with ``spec``'s preprocessing, on ``device``."""
    from concurrent.futures import ThreadPoolExecutor

    import torch

    from .preprocess import build_transform, describe, load_image
    from .topk import target_ranks

    assert spec.preprocess is not None
    transform = build_transform(spec.preprocess)
    samples = list(dataset.samples)
    if not samples:
        raise EvaluationError("the dataset holds no images")
    param = next(iter(model.parameters()), None)
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    dev = param.device if param is not None else torch.device(device)

    def prepare(sample: tuple[str, int]) -> torch.Tensor:
        return transform(load_image(sample[0]))

    n_batches = math.ceil(len(samples) / batch_size)
    every = max(1, math.ceil(n_batches / 10)) if n_batches >= PROGRESS_MIN_BATCHES else 0
    hits1 = hits5 = done = 0
    mapping: list[int] | None = None
    order = ""
    start = time.perf_counter()
    workers = max(1, min(8, os.cpu_count() or 1))
    if progress and every:
        progress(f"{len(samples)} images on {device}, {n_batches} batches of {batch_size}")
    with ThreadPoolExecutor(max_workers=workers) as pool, torch.inference_mode():
        for b in range(n_batches):
            chunk = samples[b * batch_size : (b + 1) * batch_size]
            images = list(pool.map(prepare, chunk))
            x = torch.stack(images).to(device=dev, dtype=dtype)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            out = model(x)
            if isinstance(out, (tuple, list)):
                out = out[0]
            logits = out.float().cpu()
            if logits.dim() != 2:
                raise EvaluationError(f"the model returned shape {tuple(logits.shape)}, not (batch, classes)")
            if mapping is None:
                mapping, order = label_map(dataset.classes, logits.shape[1])
                if mapping is None:
                    raise EvaluationError(order)
            targets = torch.tensor([mapping[y] for _, y in chunk])
            ranks = target_ranks(logits, targets)
            hits1 += int((ranks < 1).sum())
            hits5 += int(ranks.numel()) if logits.shape[1] < 5 else int((ranks < 5).sum())
            done += len(chunk)
            if progress and every and ((b + 1) % every == 0 or b + 1 == n_batches):
                progress(
                    f"{done}/{len(samples)} images, top-1 so far {100.0 * hits1 / done:.2f} %, "
                    f"{time.perf_counter() - start:.0f} s"
                )
    seconds = time.perf_counter() - start
    return {
        "top1": 100.0 * hits1 / done,
        "top5": 100.0 * hits5 / done,
        "n_images": done,
        "label_order": order,
        "preprocess": describe(spec.preprocess),
        "seconds": round(seconds, 3),
    }
