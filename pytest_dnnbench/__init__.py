"""pytest-dnnbench: deep-network benchmarks (Bianco et al. 2018) as pytest tests.

Importing this package (and its pytest plugin) does not import torch.

PYTEST_DONT_REWRITE (this package's own modules need no assertion rewriting;
the marker keeps pytest from warning when the plugin is loaded again in-process,
as pytester does).
"""

from __future__ import annotations

__version__ = "0.1.0"

from .registry import REGISTRY, ModelSpec, Preprocess, Registry, register_model  # noqa: E402

__all__ = ["REGISTRY", "ModelSpec", "Preprocess", "Registry", "register_model", "__version__"]
