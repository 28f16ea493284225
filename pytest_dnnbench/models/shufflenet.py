"""ShuffleNet v1 for ImageNet-1k classification at 224x224.

Reference:
    Xiangyu Zhang, Xinyu Zhou, Mengxiao Lin, Jian Sun.
    "ShuffleNet: An Extremely Efficient Convolutional Neural Network for
    Mobile Devices." CVPR 2018. arXiv:1707.01083.

The default configuration is "ShuffleNet 1x, g = 8" (Table 1 of the paper,
about 140 million multiply-adds), the variant benchmarked by Bianco et al.,
"Benchmark Analysis of Representative Deep Neural Network Architectures"
(IEEE Access, 2018).

Layout (Table 1)::

    conv1     3x3 conv, 24 channels, stride 2, BN, ReLU     -> 112x112
    maxpool   3x3, stride 2                                  ->  56x56
    stage2    4 ShuffleNet units (first one stride 2)        ->  28x28
    stage3    8 ShuffleNet units (first one stride 2)        ->  14x14
    stage4    4 ShuffleNet units (first one stride 2)        ->   7x7
    global average pool, fully connected -> num_classes

Each unit (Fig. 2 (b) and (c)) is::

    1x1 group conv -> BN -> ReLU -> channel shuffle
    -> 3x3 depthwise conv (stride 1 or 2) -> BN
    -> 1x1 group conv -> BN
    then  + identity            (stride 1)
    or    concat(3x3 avg pool stride 2 of the input)   (stride 2)
    followed by ReLU.

The bottleneck width is a quarter of the unit's output width, and the first
pointwise convolution of the whole network (Stage 2, first unit, 24 input
channels) is not grouped, as in the paper.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ShuffleNetV1", "ShuffleUnit", "channel_shuffle", "shufflenet_v1"]

#: Output channels of Stages 2, 3 and 4 for ShuffleNet 1x (Table 1).
STAGE_OUT_CHANNELS: dict[int, tuple[int, int, int]] = {
    1: (144, 288, 576),
    2: (200, 400, 800),
    3: (240, 480, 960),
    4: (272, 544, 1088),
    8: (384, 768, 1536),
}

#: Number of units in Stages 2, 3 and 4 (Table 1).
STAGE_REPEATS: tuple[int, int, int] = (4, 8, 4)

#: Output channels of conv1 for ShuffleNet 1x (Table 1).
CONV1_OUT_CHANNELS: int = 24


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Shuffle the channels of an ``(N, C, ...)`` tensor across ``groups``.

    The channels are seen as a ``groups x (C / groups)`` matrix, which is
    transposed and flattened back (Section 3.1 of the paper): the output
    interleaves the groups, taking one channel from each group in turn.
    For ``C = 6`` and ``groups = 2`` the channel order ``0 1 2 3 4 5`` becomes
    ``0 3 1 4 2 5``.  Shuffling with ``C / groups`` groups undoes a shuffle
    with ``groups`` groups.
    """
    if x.dim() < 2:
        raise ValueError(f"expected a tensor of shape (N, C, ...), got {tuple(x.shape)}")
    channels = x.shape[1]
    if groups < 1 or channels % groups != 0:
        raise ValueError(f"{channels} channels cannot be split into {groups} groups")
    if groups == 1:
        return x
    batch, spatial = x.shape[0], x.shape[2:]
    x = x.reshape(batch, groups, channels // groups, *spatial)
    x = x.transpose(1, 2)
    return x.reshape(batch, channels, *spatial)


class ShuffleUnit(nn.Module):
    """One ShuffleNet unit (Fig. 2 (b) for stride 1, Fig. 2 (c) for stride 2).

    Args:
        in_channels: input channels.
        out_channels: output channels of the unit.  With stride 2 the residual
            branch produces ``out_channels - in_channels`` channels, which are
            concatenated with the average-pooled input.
        groups: number of groups of the pointwise group convolutions and of the
            channel shuffle.
        stride: 1 (identity shortcut, addition) or 2 (average-pool shortcut,
            concatenation).
        first_groups: groups of the first pointwise convolution; defaults to
            ``groups``.  The paper uses 1 for the first unit of Stage 2.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        groups: int,
        stride: int,
        first_groups: int | None = None,
    ) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride}")
        if stride == 1 and in_channels != out_channels:
            raise ValueError("a stride-1 unit needs in_channels == out_channels")
        if first_groups is None:
            first_groups = groups
        self.groups = groups
        self.stride = stride

        bottleneck = out_channels // 4
        branch_out = out_channels - in_channels if stride == 2 else out_channels
        if branch_out <= 0:
            raise ValueError("a stride-2 unit needs out_channels > in_channels")

        self.compress = nn.Sequential(
            nn.Conv2d(in_channels, bottleneck, 1, groups=first_groups, bias=False),
            nn.BatchNorm2d(bottleneck),
            nn.ReLU(inplace=True),
        )
        self.depthwise = nn.Sequential(
            nn.Conv2d(
                bottleneck,
                bottleneck,
                3,
                stride=stride,
                padding=1,
                groups=bottleneck,
                bias=False,
            ),
            nn.BatchNorm2d(bottleneck),
        )
        self.expand = nn.Sequential(
            nn.Conv2d(bottleneck, branch_out, 1, groups=groups, bias=False),
            nn.BatchNorm2d(branch_out),
        )
        self.shortcut: nn.Module = nn.AvgPool2d(3, stride=2, padding=1) if stride == 2 else nn.Identity()
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # torch types calling a module (nn.Module.__call__) as returning Any; these modules return tensors.
        out: torch.Tensor = self.compress(x)
        out = channel_shuffle(out, self.groups)
        out = self.depthwise(out)
        out = self.expand(out)
        if self.stride == 2:
            out = torch.cat((self.shortcut(x), out), dim=1)
        else:
            out = out + x
        result: torch.Tensor = self.relu(out)
        return result


def _make_divisible(value: float, divisor: int) -> int:
    """Round ``value`` to the nearest positive multiple of ``divisor``."""
    return max(divisor, int(round(value / divisor)) * divisor)


class ShuffleNetV1(nn.Module):
    """ShuffleNet v1 (Zhang et al., CVPR 2018) for 224x224 inputs.

    Args:
        groups: number of groups ``g`` of the pointwise convolutions; one of
            1, 2, 3, 4, 8 (the channel tables of Table 1).
        width_mult: the scale factor ``s`` of "ShuffleNet s x".  Every layer's
            width (conv1 included) is multiplied by it; the result is rounded
            to a multiple of ``groups`` for conv1 and of ``4 * groups`` for the
            stages so that all group convolutions split evenly.  At 1.0 the
            widths are exactly those of Table 1.
        num_classes: number of output classes.
    """

    def __init__(self, groups: int = 8, width_mult: float = 1.0, num_classes: int = 1000) -> None:
        super().__init__()
        if groups not in STAGE_OUT_CHANNELS:
            raise ValueError(f"groups must be one of {sorted(STAGE_OUT_CHANNELS)}, got {groups}")
        if not width_mult > 0:
            raise ValueError(f"width_mult must be positive, got {width_mult}")
        self.groups = groups
        self.width_mult = width_mult

        conv1_out = _make_divisible(CONV1_OUT_CHANNELS * width_mult, groups)
        stage_out = [_make_divisible(c * width_mult, 4 * groups) for c in STAGE_OUT_CHANNELS[groups]]

        self.conv1 = nn.Sequential(
            nn.Conv2d(3, conv1_out, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(conv1_out),
            nn.ReLU(inplace=True),
        )
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)

        stages: list[nn.Sequential] = []
        in_channels = conv1_out
        for stage_index, (repeats, out_channels) in enumerate(zip(STAGE_REPEATS, stage_out, strict=True)):
            units: list[nn.Module] = []
            for unit_index in range(repeats):
                first = unit_index == 0
                units.append(
                    ShuffleUnit(
                        in_channels,
                        out_channels,
                        groups=groups,
                        stride=2 if first else 1,
                        # No group convolution on the very first pointwise layer
                        # (Stage 2, 24 input channels), as in the paper.
                        first_groups=1 if first and stage_index == 0 else groups,
                    )
                )
                in_channels = out_channels
            stages.append(nn.Sequential(*units))
        self.stage2, self.stage3, self.stage4 = stages

        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_channels, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0.0, 0.01)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        x = self.maxpool(x)
        x = self.stage2(x)
        x = self.stage3(x)
        x = self.stage4(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        logits: torch.Tensor = self.fc(x)  # nn.Module.__call__ is typed as returning Any
        return logits


def shufflenet_v1(groups: int = 8, num_classes: int = 1000, **kwargs: float) -> ShuffleNetV1:
    """Build ShuffleNet v1 (default: "ShuffleNet 1x, g = 8", randomly initialised).

    Extra keyword arguments (``width_mult``) are passed to :class:`ShuffleNetV1`.
    """
    return ShuffleNetV1(groups=groups, num_classes=num_classes, **kwargs)
