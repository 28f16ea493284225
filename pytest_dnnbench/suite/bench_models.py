"""The shipped benchmark suite: one test per (model x batch size).

Collected only in benchmark mode (``--dnn-models`` or the ``dnn_models`` ini
setting); the plugin parametrizes ``dnn_model`` and ``dnn_batch_size``, so
that test ids read ``test_dnn[<model>-bs<N>]``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from ..fixtures import DnnBench
    from ..isolated import IsolatedModel


def test_dnn(dnn_bench: DnnBench, dnn_model: torch.nn.Module | IsolatedModel, dnn_batch_size: int) -> None:
    record = dnn_bench(dnn_model)
    latency = record["latency_ms"]
    # A measurement that produced no sample, or a non-positive time, is a broken measurement.
    assert latency["n"] >= 1, f"no latency sample was taken for {record['model']} at batch {dnn_batch_size}"
    assert latency["min"] > 0, f"non-positive call time measured for {record['model']}: {latency['min']} ms"
    assert record["batch_size"] == dnn_batch_size
