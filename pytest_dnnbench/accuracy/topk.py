"""Top-k accuracy with a stated rule for ties (torch imported lazily).

**Tie rule (pessimistic).** The true class is counted in the top k when *fewer than k other
classes score at least as high as it*. A class tied with the true class therefore counts against
it, so a network that outputs the same score for every class gets 0 % Top-1 (not 100 % for the
class that happens to come first), and Top-k never depends on how a sort orders equal values.
``k`` larger than the number of classes is allowed: every finite true score is then a hit.
A NaN score of the true class is a miss; a NaN score of another class ranks above the true
class (an undefined output is never rewarded).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import TypeAlias

    import torch

    #: Scores of shape (images, classes): a tensor, or what ``torch.as_tensor`` reads as one.
    Logits: TypeAlias = torch.Tensor | Sequence[Sequence[float]]
    #: True class indices, one per image.
    Targets: TypeAlias = torch.Tensor | Sequence[int]

TIE_RULE = "pessimistic: a class scoring equal to the true class ranks above it"


def target_ranks(logits: Logits, targets: Targets) -> torch.Tensor:
    """0-based rank of each true class: the number of other classes scoring at least as high.

    ``logits`` is (N, C), ``targets`` (N,) class indices. A NaN true score gets rank C (a miss at
    every k <= C; hits only where k > C, which counts every prediction).
    """
    import torch

    scores = torch.as_tensor(logits).detach().float()
    if scores.dim() != 2:
        raise ValueError(f"logits must be (images, classes), got shape {tuple(scores.shape)}")
    target = torch.as_tensor(targets, device=scores.device).long().view(-1)
    if target.numel() != scores.shape[0]:
        raise ValueError(f"{target.numel()} targets for {scores.shape[0]} rows of logits")
    n_classes = scores.shape[1]
    if target.numel() and (int(target.min()) < 0 or int(target.max()) >= n_classes):
        raise ValueError(f"target class outside 0..{n_classes - 1}")
    true = scores.gather(1, target.view(-1, 1))
    others = torch.where(torch.isnan(scores), torch.full_like(scores, float("inf")), scores)
    at_least = (others >= true).sum(dim=1) - 1  # minus the true class itself (true >= true)
    nan_true = torch.isnan(true.view(-1))
    return torch.where(nan_true, torch.full_like(at_least, n_classes), at_least)


def topk_hits(logits: Logits, targets: Targets, ks: Iterable[int] = (1, 5)) -> dict[int, int]:
    """Number of rows whose true class is in the top k, for each k (see the module's tie rule)."""
    import torch

    ks = tuple(int(k) for k in ks)
    if any(k < 1 for k in ks):
        raise ValueError(f"k must be at least 1, got {ks}")
    scores = torch.as_tensor(logits)
    ranks = target_ranks(scores, targets)
    n_classes = scores.shape[1]
    # k > classes: every class is in the top k, NaN outputs included.
    return {k: int(ranks.numel()) if k > n_classes else int((ranks < k).sum()) for k in ks}


def topk_accuracy(logits: Logits, targets: Targets, ks: Iterable[int] = (1, 5)) -> dict[int, float]:
    """Top-k accuracy in percent (0..100) for each k; an empty batch raises ValueError."""
    import torch

    ks = tuple(ks)
    scores = torch.as_tensor(logits)
    hits = topk_hits(scores, targets, ks)
    if scores.dim() != 2 or scores.shape[0] == 0:
        raise ValueError("no predictions to score")
    return {k: 100.0 * hits[k] / scores.shape[0] for k in ks}
