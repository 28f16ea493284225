"""The figures of Bianco et al. 2018 (arXiv 1810.00736v2), with their provenance and their gaps.

Source: the project's transcript of the paper (``paper/bianco2018-transcript.txt``). Pure data,
no torch, no pytest. Rules followed (issue 3):

- **Table 1** (inference time per image, ms, the mean over 10 runs; Titan Xp left (a), Jetson TX1
  right (b); batch 1, 2, 4, 8, 16, 32, 64). Every cell the transcript kept is stored as printed.
  A cell the transcript lost or truncated is ``None`` with the reason in
  :data:`NULL_REASONS`; nothing is guessed.

  * Titan Xp: the rows of BN-Inception, MobileNet-v2, ResNet-34 and SqueezeNet-v1.1 lost cells
    at positions the transcript does not tell. Batch 1 (always the first cell) is kept; the
    others cannot be placed and are null.
  * Jetson TX1: a row with fewer than 7 cells lost its *last* columns: the paper says those
    batches ran out of memory ("Missing data are due to the lack of enough system memory
    required to process the larger batches"). A lone ``5``, ``9``, ``24`` or ``8`` is a
    truncated cell: it keeps its position, its value is null.

- **Memory** (Table 2): the transcript lost the table's row order, so no cell of it can be
  attributed. §V-F gives four batch-1 figures on the Titan Xp: SqueezeNet-v1.0 943 MB,
  SqueezeNet-v1.1 921 MB, MobileNet-v1 650 MB, MobileNet-v2 648 MB. The paper's MB come from
  nvidia-smi, which counts MiB: stored as ``MB x 2^20`` bytes.
- **Top-1**: the values the paper's text and Table 3 give, taken from the model registry
  (``ModelSpec.paper_top1``), not repeated here, as ``accuracy.reference`` (published, not
  measured: ``accuracy.measured`` is null); null for the models the paper gives none for.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from .baseline_save import document_text
from .baseline_store import (
    PAPER_DIR,
    PAPER_PLATFORMS,
    SCHEMA,
    Baseline,
    baseline_from_document,
    load_baseline,
    paper_baseline_files,
    paper_benchmark_files,
    platform_key,
)
from .results import atomic_write_text

if TYPE_CHECKING:  # pragma: no cover
    from .jsontypes import JsonObject

BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64)
SOURCE = (
    "S. Bianco, R. Cadene, L. Celona, P. Napoletano, Benchmark Analysis of Representative Deep Neural "
    "Network Architectures, IEEE Access 6 (2018), arXiv:1810.00736v2; figures from the project's "
    "transcript paper/bianco2018-transcript.txt"
)

#: The paper's platforms (Section II).
PLATFORMS: dict[str, dict[str, str]] = {
    "titan_xp": {
        "device": "cuda",
        "device_name": "NVIDIA TITAN Xp",
        "gpu": "Titan X Pascal, 3840 CUDA cores",
        "host": "Intel Core i7-7700 @ 3.60GHz, 16 GB DDR4, Ubuntu 16.04",
        "software": "PyTorch with cuDNN v5.1, CUDA v9.0",
        "table": "Table 1(a)",
    },
    "jetson_tx1": {
        "device": "cuda",
        "device_name": "NVIDIA Jetson TX1",
        "gpu": "Maxwell, 256 CUDA cores",
        "host": "ARM A57 @ 2GHz, 4 GB LPDDR4, JetPack-2.3",
        "software": "PyTorch with cuDNN v5.1, CUDA v9.0",
        "table": "Table 1(b)",
    },
}

#: Table 1 row names -> this project's short names.
PAPER_TO_NAME = {
    "AlexNet": "alexnet",
    "BN-Inception": "bninception",
    "CaffeResNet-101": "cafferesnet101",
    "DenseNet-121 (k=32)": "densenet121",
    "DenseNet-169 (k=32)": "densenet169",
    "DenseNet-201 (k=32)": "densenet201",
    "DenseNet-161 (k=48)": "densenet161",
    "DPN-68": "dpn68",
    "DPN-98": "dpn98",
    "DPN-131": "dpn131",
    "FBResNet-152": "fbresnet152",
    "GoogLeNet": "googlenet",
    "Inception-ResNet-v2": "inception_resnet_v2",
    "Inception-v3": "inception_v3",
    "Inception-v4": "inception_v4",
    "MobileNet-v1": "mobilenet_v1",
    "MobileNet-v2": "mobilenet_v2",
    "NASNet-A-Large": "nasnetalarge",
    "NASNet-A-Mobile": "nasnetamobile",
    "ResNet-101": "resnet101",
    "ResNet-152": "resnet152",
    "ResNet-18": "resnet18",
    "ResNet-34": "resnet34",
    "ResNet-50": "resnet50",
    "ResNeXt-101 (32x4d)": "resnext101_32x4d",
    "ResNeXt-101 (64x4d)": "resnext101_64x4d",
    "SE-ResNet-101": "se_resnet101",
    "SE-ResNet-152": "se_resnet152",
    "SE-ResNet-50": "se_resnet50",
    "SE-ResNeXt-101 (32x4d)": "se_resnext101_32x4d",
    "SE-ResNeXt-50 (32x4d)": "se_resnext50_32x4d",
    "SENet-154": "senet154",
    "ShuffleNet": "shufflenet",
    "SqueezeNet-v1.0": "squeezenet1_0",
    "SqueezeNet-v1.1": "squeezenet1_1",
    "VGG-11": "vgg11",
    "VGG-11_BN": "vgg11_bn",
    "VGG-13": "vgg13",
    "VGG-13_BN": "vgg13_bn",
    "VGG-16": "vgg16",
    "VGG-16_BN": "vgg16_bn",
    "VGG-19": "vgg19",
    "VGG-19_BN": "vgg19_bn",
    "Xception": "xception",
}

_: None = None  # a null cell (reason in NULL_REASONS)

#: A row of Table 1: ms per image at each of BATCH_SIZES, None where the transcript has no figure.
Row = tuple[float | None, ...]

#: Table 1(a), Titan Xp: ms per image at batch 1, 2, 4, 8, 16, 32, 64.
TITAN_XP_MS: dict[str, Row] = {
    "AlexNet": (1.28, 0.70, 0.48, 0.27, 0.18, 0.14, 0.15),
    "BN-Inception": (5.79, _, _, _, _, _, _),
    "CaffeResNet-101": (8.20, 4.82, 3.32, 2.54, 2.27, 2.16, 2.08),
    "DenseNet-121 (k=32)": (8.93, 4.41, 2.64, 1.96, 1.64, 1.44, 1.39),
    "DenseNet-169 (k=32)": (13.03, 6.72, 3.97, 2.73, 2.14, 1.87, 1.75),
    "DenseNet-201 (k=32)": (17.15, 9.25, 5.36, 3.66, 2.84, 2.41, 2.27),
    "DenseNet-161 (k=48)": (15.50, 9.10, 5.89, 4.45, 3.66, 3.43, 3.24),
    "DPN-68": (10.68, 5.36, 3.24, 2.47, 1.80, 1.59, 1.52),
    "DPN-98": (22.31, 13.84, 8.97, 6.77, 5.59, 4.96, 4.72),
    "DPN-131": (29.70, 18.29, 11.96, 9.12, 7.57, 6.72, 6.37),
    "FBResNet-152": (14.55, 7.79, 5.15, 4.31, 3.96, 3.76, 3.65),
    "GoogLeNet": (4.54, 2.44, 1.65, 1.06, 0.86, 0.76, 0.72),
    "Inception-ResNet-v2": (25.94, 14.36, 8.82, 6.43, 5.19, 4.88, 4.59),
    "Inception-v3": (10.10, 5.70, 3.65, 2.54, 2.05, 1.89, 1.80),
    "Inception-v4": (18.96, 10.61, 6.53, 4.85, 4.10, 3.77, 3.61),
    "MobileNet-v1": (2.45, 0.89, 0.68, 0.60, 0.55, 0.53, 0.53),
    "MobileNet-v2": (3.34, _, _, _, _, _, _),
    "NASNet-A-Large": (32.30, 23.00, 19.75, 18.49, 18.11, 17.73, 17.77),
    "NASNet-A-Mobile": (22.36, 11.44, 5.60, 2.81, 1.61, 1.75, 1.51),
    "ResNet-101": (8.90, 5.16, 3.32, 2.69, 2.42, 2.29, 2.21),
    "ResNet-152": (14.31, 7.36, 4.68, 3.83, 3.50, 3.30, 3.17),
    "ResNet-18": (1.79, 1.01, 0.70, 0.56, 0.51, 0.41, 0.38),
    "ResNet-34": (3.11, _, _, _, _, _, _),
    "ResNet-50": (5.10, 2.87, 1.99, 1.65, 1.49, 1.37, 1.34),
    "ResNeXt-101 (32x4d)": (17.05, 9.02, 6.27, 4.62, 3.71, 3.25, 3.11),
    "ResNeXt-101 (64x4d)": (21.05, 15.54, 10.39, 7.80, 6.39, 5.62, 5.29),
    "SE-ResNet-101": (15.10, 9.26, 6.17, 4.72, 4.03, 3.62, 3.42),
    "SE-ResNet-152": (23.43, 13.08, 8.74, 6.55, 5.51, 5.06, 4.85),
    "SE-ResNet-50": (8.32, 5.16, 3.36, 2.62, 2.22, 2.01, 2.06),
    "SE-ResNeXt-101 (32x4d)": (24.96, 13.86, 9.16, 6.55, 5.29, 4.53, 4.29),
    "SE-ResNeXt-50 (32x4d)": (12.06, 7.41, 5.12, 3.64, 2.97, 3.01, 2.56),
    "SENet-154": (53.80, 30.30, 19.32, 13.27, 10.45, 9.41, 8.91),
    "ShuffleNet": (5.40, 2.67, 1.37, 0.82, 0.66, 0.59, 0.56),
    "SqueezeNet-v1.0": (1.53, 0.84, 0.66, 0.59, 0.54, 0.52, 0.53),
    "SqueezeNet-v1.1": (1.60, _, _, _, _, _, _),
    "VGG-11": (3.57, 4.40, 2.89, 1.56, 1.19, 1.10, 1.13),
    "VGG-11_BN": (3.49, 4.60, 2.99, 1.71, 1.33, 1.24, 1.27),
    "VGG-13": (3.88, 5.03, 3.44, 2.25, 1.83, 1.75, 1.79),
    "VGG-13_BN": (4.40, 5.37, 3.71, 2.42, 2.05, 1.97, 2.00),
    "VGG-16": (5.17, 5.91, 4.01, 2.84, 2.20, 2.12, 2.15),
    "VGG-16_BN": (5.04, 5.95, 4.27, 3.06, 2.45, 2.36, 2.41),
    "VGG-19": (5.50, 6.26, 4.71, 3.29, 2.59, 2.52, 2.50),
    "VGG-19_BN": (6.17, 6.67, 4.86, 3.56, 2.88, 2.74, 2.76),
    "Xception": (6.44, 5.35, 4.90, 4.47, 4.41, 4.41, 4.36),
}

#: Table 1(b), Jetson TX1: ms per image at batch 1, 2, 4, 8, 16, 32, 64.
JETSON_TX1_MS: dict[str, Row] = {
    "AlexNet": (28.88, 13.00, 8.58, 6.56, 5.39, 4.77, _),
    "BN-Inception": (35.52, 26.48, 25.10, 23.89, 21.21, 20.47, _),
    "CaffeResNet-101": (84.47, 91.37, 70.33, 63.53, 56.38, 53.73, _),
    "DenseNet-121 (k=32)": (66.43, _, 50.20, 43.89, 40.41, 38.22, _),
    "DenseNet-169 (k=32)": (137.96, 130.27, 110.82, 100.56, 92.97, 88.94, _),
    "DenseNet-201 (k=32)": (84.57, 61.71, 62.62, 53.73, 49.28, 46.26, _),
    "DenseNet-161 (k=48)": (103.20, 76.11, 77.10, 68.32, 62.73, 59.14, _),
    "DPN-68": (113.08, 52.73, 42.85, 43.32, 38.18, 36.40, 36.22),
    "DPN-98": (243.51, 148.51, 135.30, 125.92, 123.34, 118.68, 117.27),
    "DPN-131": (330.15, 204.69, 184.89, 172.25, 165.59, 162.67, 160.66),
    "FBResNet-152": (133.68, 147.75, 113.48, 105.78, 94.26, 97.47, _),
    "GoogLeNet": (32.11, 27.19, 23.29, 21.66, 19.77, 19.96, _),
    "Inception-ResNet-v2": (198.95, 141.29, 127.97, 130.25, 117.99, 116.47, _),
    "Inception-v3": (79.39, 59.04, 56.46, 51.79, 47.60, 46.85, _),
    "Inception-v4": (158.00, 120.23, 106.77, 102.21, 95.51, 95.40, _),
    "MobileNet-v1": (15.06, 11.94, 11.34, 11.03, 10.82, 10.58, 10.55),
    "MobileNet-v2": (20.51, 14.58, 13.67, 13.56, 13.18, 13.10, 12.72),
    "NASNet-A-Large": (437.20, 399.99, 385.75, 383.55, 389.67, _, _),
    "NASNet-A-Mobile": (133.87, 62.91, 33.72, 30.62, 29.72, 28.92, 28.55),
    "ResNet-101": (84.52, 77.90, 71.23, 67.14, 58.11, _, _),
    "ResNet-152": (124.67, 113.65, 101.41, 96.76, 82.35, _, _),
    "ResNet-18": (21.16, 15.30, 14.35, 13.82, 11.99, 10.73, 12.45),
    "ResNet-34": (39.88, 28.82, 27.51, 24.97, 20.41, 18.48, 17.97),
    "ResNet-50": (53.09, 44.84, 41.20, 38.79, 35.72, _, _),
    "ResNeXt-101 (32x4d)": (115.37, _, 84.64, 79.66, 77.63, _, _),
    "ResNeXt-101 (64x4d)": (177.40, 155.77, 144.82, 137.43, 134.07, _, _),
    "SE-ResNet-101": (118.13, 105.11, 96.71, 91.68, _, _, _),
    "SE-ResNet-152": (169.73, 155.08, 139.72, 133.59, 116.97, _, _),
    "SE-ResNet-50": (69.65, 61.37, 55.33, 51.87, 47.80, _, _),
    "SE-ResNeXt-101 (32x4d)": (139.62, 122.01, 112.05, 105.34, 102.39, _, _),
    "SE-ResNeXt-50 (32x4d)": (80.08, 69.86, 67.20, 62.66, 61.19, _, _),
    "SENet-154": (309.48, _, 221.84, 211.00, 207.06, 201.49, 201.66),
    "ShuffleNet": (36.58, 22.61, 13.80, 13.36, 12.91, 12.66, 12.50),
    "SqueezeNet-v1.0": (17.00, 16.47, 15.03, 13.97, 13.25, 12.89, 12.70),
    "SqueezeNet-v1.1": (11.05, 9.88, 8.80, 7.90, 7.38, 7.20, 7.04),
    "VGG-11": (106.44, 125.84, 85.84, 60.10, 32.56, 30.51, 32.27),
    "VGG-11_BN": (101.58, 122.82, 86.26, 54.50, 47.81, 47.31, 41.26),
    "VGG-13": (122.59, 148.80, 108.28, 75.99, 70.57, 64.88, 62.79),
    "VGG-13_BN": (129.69, 153.68, 113.90, 81.19, 76.39, 70.59, 67.38),
    "VGG-16": (151.52, 169.92, 129.89, 96.81, 91.72, _, _),
    "VGG-16_BN": (163.37, 176.35, 136.85, 103.45, 98.11, _, _),
    "VGG-19": (178.04, 192.86, 152.28, 117.92, 112.39, _, _),
    "VGG-19_BN": (185.18, 198.66, 159.20, 124.88, 119.15, _, _),
    "Xception": (98.96, 93.40, 90.49, 87.65, 86.89, _, _),
}

_TITAN_LOST = (
    "Table 1(a): the transcript kept only {n} of this row's 7 cells, and which were lost is not "
    "known; batch 1 (always the first cell) is kept, the other cells cannot be placed"
)
_JETSON_OOM = (
    "Table 1(b): no figure in the paper (the row ends early: 'Missing data are due to the lack of "
    "enough system memory required to process the larger batches')"
)
_JETSON_TRUNC = "Table 1(b): the cell is truncated in the transcript (only '{t}' survives)"

#: (platform, paper name, batch size) -> why the per-image time is null.
NULL_REASONS: dict[tuple[str, str, int], str] = {}
for _name, _n in (("BN-Inception", 4), ("MobileNet-v2", 4), ("ResNet-34", 5), ("SqueezeNet-v1.1", 6)):
    for _bs in BATCH_SIZES[1:]:
        NULL_REASONS[("titan_xp", _name, _bs)] = _TITAN_LOST.format(n=_n)
for _name, (_bs, _t) in {
    "DenseNet-121 (k=32)": (2, "5"),
    "ResNeXt-101 (32x4d)": (2, "9"),
    "SE-ResNet-101": (16, "8"),
    "SENet-154": (2, "24"),
}.items():
    NULL_REASONS[("jetson_tx1", _name, _bs)] = _JETSON_TRUNC.format(t=_t)
for _name, _row in JETSON_TX1_MS.items():
    for _bs, _v in zip(BATCH_SIZES, _row, strict=False):
        if _v is None and ("jetson_tx1", _name, _bs) not in NULL_REASONS:
            NULL_REASONS[("jetson_tx1", _name, _bs)] = _JETSON_OOM

#: §V-F: total GPU memory at batch 1 on the Titan Xp, in the paper's MB (= MiB, nvidia-smi).
TITAN_XP_MEMORY_MB_BS1 = {"SqueezeNet-v1.0": 943, "SqueezeNet-v1.1": 921, "MobileNet-v1": 650, "MobileNet-v2": 648}
MEMORY_NULL_REASON = (
    "Table 2 lost its row order in the transcript, so its cells cannot be attributed to models; "
    "only §V-F's batch-1 figures (SqueezeNet-v1.0/v1.1, MobileNet-v1/v2) are known"
)
JETSON_MEMORY_NULL_REASON = "the paper gives no memory figures for the Jetson TX1"
NOT_REPORTED = "null in every entry: the transcript has no per-model table of it"
TOP1_NULL_REASON = "the paper's text and Table 3 give no Top-1 for this model"


def table(platform: str) -> dict[str, Row]:
    return {"titan_xp": TITAN_XP_MS, "jetson_tx1": JETSON_TX1_MS}[platform]


def _top1(name: str) -> float | None:
    from .models.catalog import PAPER_MODELS

    for spec in PAPER_MODELS:
        if spec.name == name:
            return spec.paper_top1
    return None


def _memory(platform: str, paper: str, bs: int) -> tuple[int | None, str | None]:
    if platform == "jetson_tx1":
        return None, JETSON_MEMORY_NULL_REASON
    if bs == 1 and paper in TITAN_XP_MEMORY_MB_BS1:
        return TITAN_XP_MEMORY_MB_BS1[paper] * 2**20, None
    return None, MEMORY_NULL_REASON


def platform_block(platform: str) -> JsonObject:
    p = PLATFORMS[platform]
    return {
        "key": "paper-" + platform_key("cuda", p["device_name"], None, "fp32", "eager"),
        "device": p["device"],
        "device_name": p["device_name"],
        "threads": None,
        "precision": "fp32",
        "mode": "eager",
        "channels_last": False,
        "source": "paper",
        "provenance": (
            f"{SOURCE}. Latency: {p['table']}, per-image ms, the mean over 10 runs (Section IV-E); "
            "memory: Section V-F, batch 1, Titan Xp, MB read as MiB (nvidia-smi); Top-1: Section V "
            "and Table 3. Null cells carry their reason in 'missing'."
        ),
        "gpu": p["gpu"],
        "host": p["host"],
        "software": p["software"],
        "not_reported": {
            "macs": NOT_REPORTED,
            "flops": NOT_REPORTED,
            "params": NOT_REPORTED,
            "accuracy.reference.top5": "not stored: the figures here are Top-1 only",
        },
    }


def baseline_document(platform: str) -> JsonObject:
    """The paper's figures for one platform, in the baseline format (``baseline_store.SCHEMA``)."""
    entries: list[JsonObject] = []
    for paper, row in table(platform).items():
        name = PAPER_TO_NAME[paper]
        top1 = _top1(name)
        for bs, ms in zip(BATCH_SIZES, row, strict=False):
            mem, mem_reason = _memory(platform, paper, bs)
            missing: dict[str, str] = {}
            if ms is None:
                missing["per_image_ms"] = NULL_REASONS[(platform, paper, bs)]
            if mem_reason:
                missing["memory_bytes.total"] = mem_reason
            if top1 is None:
                missing["accuracy.reference.top1"] = TOP1_NULL_REASON
            entries.append(
                {
                    "model": name,
                    "batch_size": bs,
                    "paper_name": paper,
                    "rounds": [],
                    "latency_ms": {
                        "median": round(ms * bs, 6) if ms is not None else None,
                        "statistic": "mean of 10 runs",
                        "rounds": 0,
                    },
                    "per_image_ms": ms,
                    "fps": round(1000.0 / ms, 4) if ms is not None else None,
                    "memory_bytes": {"total": mem},
                    "macs": None,
                    "flops": None,
                    "params": None,
                    "accuracy": {
                        "measured": None,
                        "reference": (
                            {"top1": top1, "top5": None, "source": "Bianco et al. 2018"} if top1 is not None else None
                        ),
                        "reason": "published figures, not measured by pytest-dnnbench"
                        if top1 is not None
                        else TOP1_NULL_REASON,
                    },
                    "missing": missing,
                }
            )
    entries.sort(key=lambda e: (e["model"], e["batch_size"]))
    return {"schema": SCHEMA, "platform": platform_block(platform), "max_rounds": 1, "entries": entries}


def benchmark_document(platform: str) -> JsonObject:
    """The paper's Table 1 for one platform as a pytest-benchmark run, for ``--benchmark-compare``.

    One benchmark per cell the transcript kept (null cells are left out), named as the plugin
    names its tests; one call = per-image ms x batch size, in seconds. The paper gives only the
    mean over its 10 runs: every statistic pytest-benchmark reads (min, max, mean, median,
    quartiles, ...) is that mean, the spread statistics are 0.
    """
    p = PLATFORMS[platform]
    benchmarks: list[JsonObject] = []
    for paper, row in table(platform).items():
        name = PAPER_TO_NAME[paper]
        for bs, ms in zip(BATCH_SIZES, row, strict=False):
            if ms is None:
                continue
            t = ms * bs / 1000.0
            benchmarks.append(
                {
                    "group": name,
                    "name": f"test_dnn[{name}-bs{bs}]",
                    "fullname": f"pytest_dnnbench/suite/bench_models.py::test_dnn[{name}-bs{bs}]",
                    "params": {"dnn_model": name, "dnn_batch_size": bs},
                    "param": f"{name}-bs{bs}",
                    "extra_info": {
                        "model": name,
                        "paper_name": paper,
                        "batch_size": bs,
                        "per_image_ms": ms,
                        "fps": round(1000.0 / ms, 4),
                        "source": "paper",
                        "platform": platform,
                        "provenance": f"{p['table']} of Bianco et al. 2018: mean over 10 runs; the "
                        "spread statistics are unknown and set to 0",
                    },
                    "options": {
                        "timer": "paper (time.time, 10 runs)",
                        "min_rounds": 10,
                        "max_time": None,
                        "warmup": None,
                        "disable_gc": False,
                    },
                    "stats": {
                        "min": t,
                        "max": t,
                        "mean": t,
                        "stddev": 0.0,
                        "rounds": 10,
                        "median": t,
                        "iqr": 0.0,
                        "q1": t,
                        "q3": t,
                        "iqr_outliers": 0,
                        "stddev_outliers": 0,
                        "outliers": "0;0",
                        "ld15iqr": t,
                        "hd15iqr": t,
                        "ops": 1.0 / t,
                        "total": 10 * t,
                        "iterations": 1,
                    },
                }
            )
    return {
        "machine_info": {
            "node": f"paper-{platform}",
            "processor": p["host"],
            "machine": p["device_name"],
            "python_implementation": "CPython",
            "system": "Linux",
            "release": "",
            "python_version": "",
            "cpu": {"brand_raw": p["host"]},
            "dnnbench": {
                "source": "paper",
                "platform": platform,
                "gpus": [p["device_name"]],
                "provenance": platform_block(platform)["provenance"],
            },
        },
        "commit_info": {
            "id": None,
            "time": None,
            "author_time": None,
            "dirty": False,
            "project": "bianco2018",
            "branch": None,
        },
        "benchmarks": benchmarks,
        "datetime": "2018-10-19T00:00:00+00:00",
        "version": "5.3.1",
    }


def write_files(directory: str | os.PathLike[str]) -> list[Path]:
    """Write the paper's baselines and pytest-benchmark runs into ``directory`` (atomically)."""
    d = Path(directory)
    written: list[Path] = []
    for platform in PLATFORMS:
        path = paper_baseline_files(d)[platform]
        atomic_write_text(path, document_text(baseline_document(platform)))
        written.append(path)
        path = paper_benchmark_files(d)[platform]
        atomic_write_text(path, json.dumps(benchmark_document(platform), indent=1) + "\n")
        written.append(path)
    return written


def paper_baseline(platform: str) -> Baseline:
    """The paper's figures for ``titan_xp`` or ``jetson_tx1`` (from the shipped file, else built in memory)."""
    if platform not in PAPER_PLATFORMS:
        raise ValueError(f"unknown paper platform {platform!r}; use one of {', '.join(PAPER_PLATFORMS)}")
    path = paper_baseline_files()[platform]
    if path.is_file():
        return load_baseline(path)
    return baseline_from_document(baseline_document(platform), None)


if __name__ == "__main__":  # python -m pytest_dnnbench.paperdata [DIR]
    import sys

    for p in write_files(sys.argv[1] if len(sys.argv) > 1 else PAPER_DIR):
        print(p)
