"""Accuracy evaluation (pytest glue): options, weights, the record hook.

``--dnn-imagenet=DIR`` (validation data, ImageFolder or ILSVRC2012 devkit layout),
``--dnn-accuracy-limit=N`` (a class-balanced subset) and ``--dnn-weights=random|pretrained|PATH``.
Accuracy is computed once per model per session, on the device under test, the first time a
record of that model is made, and written into every record of that model. Without data or
weights the record says why, and carries the published reference figure (status ``reference``)
where one exists. No torch at import.
"""

from __future__ import annotations

import copy
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import pytest

from ..models.spec import ModelSpec
from .data import Dataset, DatasetError, balanced_subset, label_map, open_dataset
from .topk import TIE_RULE
from .weights import WeightsUnavailable, parse_weights

#: Images per forward pass during evaluation.
EVAL_BATCH = 32
#: Progress lines for evaluations of at least this many batches (about ten lines each).
PROGRESS_MIN_BATCHES = 20

_OPTIONS = [
    ("--dnn-imagenet", "dnn_imagenet", "DIR",
     "validation images for Top-1/Top-5: ImageNet-1k val in ImageFolder layout (one folder per synset) or "
     "the flat ILSVRC2012 val folder with the devkit's ground truth; or any ImageFolder of your own classes."),
    ("--dnn-accuracy-limit", "dnn_accuracy_limit", "N",
     "evaluate accuracy on a class-balanced subset of N images (quick runs); default: all."),
    ("--dnn-weights", "dnn_weights", "WEIGHTS",
     "random (default), pretrained (local caches only: TORCH_HOME hub checkpoints, Hugging Face cache; "
     "nothing is downloaded), or a checkpoint file / folder of checkpoints."),
]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("dnnbench", "deep-network benchmarks (pytest-dnnbench)")
    for opt, dest, metavar, help_text in _OPTIONS:
        group.addoption(opt, dest=dest, default=None, metavar=metavar, help=help_text)
        parser.addini(dest, help=f"default for {opt} (paths relative to the ini file)", type="string", default="")


@dataclass(frozen=True)
class AccuracyOptions:
    data: Optional[str]
    limit: Optional[int]
    weights: str


@dataclass
class AccuracyState:
    options: AccuracyOptions
    dataset: Optional[Dataset] = None
    n_available: Optional[int] = None
    cache: dict = field(default_factory=dict)  # model name -> accuracy dict
    weights: dict = field(default_factory=dict)  # model name -> weights info, or {"error": reason}


ACCURACY_KEY = pytest.StashKey[AccuracyState]()


def _value(config: pytest.Config, dest: str) -> tuple[Optional[str], Optional[Path]]:
    """(value, base folder for a relative path): command line, else ini."""
    value = config.getoption(dest, default=None)
    if value is not None:
        return str(value), Path(config.invocation_params.dir)
    value = config.getini(dest)
    if value:
        base = Path(config.inipath).parent if config.inipath else Path(config.rootpath)
        return str(value), base
    return None, None


def parse_accuracy_options(config: pytest.Config) -> AccuracyOptions:
    data, base = _value(config, "dnn_imagenet")
    if data is not None:
        p = Path(data).expanduser()
        data = str(p if p.is_absolute() or base is None else base / p)
    limit_raw, _ = _value(config, "dnn_accuracy_limit")
    limit = None
    if limit_raw is not None:
        v = limit_raw.strip()
        if not v.isdigit() or int(v) < 1:
            raise pytest.UsageError(
                f"--dnn-accuracy-limit={limit_raw}: not a positive whole number. Give the number of images, e.g. 1000"
            )
        limit = int(v)
    weights_raw, wbase = _value(config, "dnn_weights")
    if weights_raw is not None and weights_raw.strip().lower() not in ("random", "pretrained") and wbase is not None:
        p = Path(weights_raw.strip()).expanduser()
        weights_raw = str(p if p.is_absolute() else wbase / p)
    try:
        weights = parse_weights(weights_raw)
    except ValueError as exc:
        raise pytest.UsageError(
            f"--dnn-weights={weights_raw}: {exc}. Use random, pretrained (local caches only) or the path of a "
            "checkpoint file or folder"
        ) from None
    return AccuracyOptions(data=data, limit=limit, weights=weights)


def pytest_configure(config: pytest.Config) -> None:
    options = parse_accuracy_options(config)
    state = AccuracyState(options=options)
    if options.data is not None:
        try:
            dataset = open_dataset(options.data)
        except DatasetError as exc:
            raise pytest.UsageError(f"--dnn-imagenet={options.data}: {exc}") from None
        state.n_available = len(dataset)
        if options.limit is not None:
            dataset = Dataset(root=dataset.root, layout=dataset.layout, classes=dataset.classes,
                              samples=tuple(balanced_subset(dataset.samples, options.limit)))
        state.dataset = dataset
    config.stash[ACCURACY_KEY] = state


def get_accuracy_state(config: pytest.Config) -> Optional[AccuracyState]:
    return config.stash.get(ACCURACY_KEY, None)


def pytest_report_header(config: pytest.Config) -> Optional[str]:
    state = get_accuracy_state(config)
    if state is None or state.dataset is None:
        return None
    d = state.dataset
    limit = f" (limit {state.options.limit} of {state.n_available})" if state.options.limit else ""
    return (f"dnnbench accuracy: {len(d)} images{limit}, {len(d.classes)} classes, {d.layout} layout at {d.root}; "
            f"weights {state.options.weights}")


# -- weights (called by the dnn_model fixture right after the model is built) -------------------

def load_requested_weights(config: pytest.Config, model: Any, spec: ModelSpec) -> None:
    """Load the weights ``--dnn-weights`` asks for into ``model``; a failure is kept as the reason."""
    from .weights import load_weights

    state = get_accuracy_state(config)
    if state is None:
        return
    try:
        state.weights[spec.name] = load_weights(model, spec, state.options.weights)
    except WeightsUnavailable as exc:
        state.weights[spec.name] = {"weights": state.options.weights, "error": str(exc)}
    # A new model object: its accuracy is measured anew.
    state.cache.pop(spec.name, None)


# -- the record hook ---------------------------------------------------------------------------

@pytest.hookimpl(tryfirst=True)
def pytest_dnnbench_record(record: dict, item: pytest.Item) -> None:
    from ..state import get_state

    config = item.config
    acc = get_accuracy_state(config)
    if acc is None:
        return
    state = get_state(config)
    model = getattr(item, "funcargs", {}).get("dnn_model")
    spec = state.spec_for(model) if model is not None else None
    if spec is None or record.get("model") != spec.name:
        name = record.get("model")
        known = state.registry.get(name) if isinstance(name, str) and name in state.registry else None
        reason = ("accuracy is evaluated for registry models benchmarked through the dnn_model fixture; "
                  "register the model (pytest_dnnbench_register_models) with its preprocessing")
        record["accuracy"] = not_measured(known, reason)
        return
    if spec.name not in acc.cache:
        acc.cache[spec.name] = accuracy_for(config, acc, model, spec, record)
    record["accuracy"] = copy.deepcopy(acc.cache[spec.name])


def accuracy_for(config: pytest.Config, acc: AccuracyState, model: Any, spec: ModelSpec, record: dict) -> dict:
    """Measure, or say why not (with the reference figure where one is published)."""
    reasons = []
    weights = acc.weights.get(spec.name, {"weights": acc.options.weights})
    if acc.dataset is None:
        reasons.append("no validation data (pass --dnn-imagenet=DIR)")
    if "error" in weights:
        reasons.append(weights["error"])
    elif weights.get("weights") == "random":
        reasons.append("random weights (pass --dnn-weights=pretrained or a checkpoint to measure accuracy)")
    if spec.preprocess is None:
        reasons.append(f"{spec.name} was registered without preprocess=Preprocess(...)")
    if reasons:
        return not_measured(spec, "; ".join(reasons), weights)
    assert acc.dataset is not None and spec.preprocess is not None
    try:
        result = evaluate(model, spec, acc.dataset, record.get("device") or "cpu", _progress_writer(config, spec.name),
                          channels_last=bool(record.get("channels_last")))
    except EvaluationError as exc:
        return not_measured(spec, str(exc), weights)
    except Exception as exc:  # the benchmark goes on; the record says what went wrong
        return not_measured(spec, f"evaluation failed: {type(exc).__name__}: {exc}", weights)
    ref = _reference(spec)
    out = {
        "top1": result["top1"], "top5": result["top5"], "status": "measured",
        "source": (f"measured on {result['n_images']} images of {acc.dataset.root} ({acc.dataset.layout} layout), "
                   f"weights {weights.get('weights')}"),
        "n_images": result["n_images"],
        "unit": "%",
        "reason": None,
        "paper_top1": spec.paper_top1,
        "reference": ref,
        "dataset": acc.dataset.root,
        "layout": acc.dataset.layout,
        "n_classes": len(acc.dataset.classes),
        "n_available": acc.n_available,
        "limit": acc.options.limit,
        "label_order": result["label_order"],
        "device": record.get("device"),
        "preprocess": result["preprocess"],
        "seconds": result["seconds"],
        "tie_rule": TIE_RULE,
    }
    out.update({k: v for k, v in weights.items() if k != "error"})
    return out


def _reference(spec: Optional[ModelSpec]) -> Optional[dict]:
    if spec is None:
        return None
    from .reference import reference_for

    return reference_for(spec)


def not_measured(spec: Optional[ModelSpec], reason: str, weights: Optional[dict] = None) -> dict:
    """Status ``reference`` with the published figure where one exists, else ``unavailable``."""
    ref = _reference(spec)
    out = {
        "top1": None, "top5": None, "status": "unavailable", "source": reason, "n_images": None,
        "unit": "%", "reason": reason, "paper_top1": spec.paper_top1 if spec is not None else None,
        "reference": ref,
    }
    if ref is not None:
        out.update(top1=ref["top1"], top5=ref["top5"], status="reference", source=ref["source"])
    if weights:
        out.update({k: v for k, v in weights.items() if k != "error"})
    return out


def _progress_writer(config: pytest.Config, name: str) -> Callable[[str], None]:
    reporter = config.pluginmanager.get_plugin("terminalreporter")

    def write(line: str) -> None:
        if reporter is not None:
            reporter.write_line(f"dnnbench accuracy: {name}: {line}")

    return write


class EvaluationError(RuntimeError):
    """The model and the data do not fit (e.g. number of classes)."""


def evaluate(model: Any, spec: ModelSpec, dataset: Dataset, device: str,
             progress: Optional[Callable[[str], None]] = None, batch_size: int = EVAL_BATCH,
             channels_last: bool = False) -> dict:
    """Top-1/Top-5 (percent) of ``model`` on ``dataset`` with ``spec``'s preprocessing, on ``device``."""
    import torch
    from concurrent.futures import ThreadPoolExecutor

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

    def prepare(sample: tuple[str, int]) -> Any:
        return transform(load_image(sample[0]))

    n_batches = math.ceil(len(samples) / batch_size)
    every = max(1, math.ceil(n_batches / 10)) if n_batches >= PROGRESS_MIN_BATCHES else 0
    hits1 = hits5 = done = 0
    mapping: Optional[list[int]] = None
    order = ""
    start = time.perf_counter()
    workers = max(1, min(8, os.cpu_count() or 1))
    if progress and every:
        progress(f"{len(samples)} images on {device}, {n_batches} batches of {batch_size}")
    with ThreadPoolExecutor(max_workers=workers) as pool, torch.inference_mode():
        for b in range(n_batches):
            chunk = samples[b * batch_size:(b + 1) * batch_size]
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
                progress(f"{done}/{len(samples)} images, top-1 so far {100.0 * hits1 / done:.2f} %, "
                         f"{time.perf_counter() - start:.0f} s")
    seconds = time.perf_counter() - start
    return {
        "top1": 100.0 * hits1 / done, "top5": 100.0 * hits5 / done, "n_images": done,
        "label_order": order, "preprocess": describe(spec.preprocess), "seconds": round(seconds, 3),
    }
