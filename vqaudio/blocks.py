"""Convolutional building blocks shared by the codec models and the learned vocoder.

Every block maps ``[B, C, T]`` to ``[B, C', T']`` and accepts an optional frame mask ``[B, 1, T]``. The mask
zeroes the positions past each item's length after every layer, so a padded batch computes, for its
valid frames, exactly what each item computes alone (a zero-padded convolution sees zeros past the end in
both cases).
"""

from __future__ import annotations

from typing import overload

import torch
from torch import nn


def apply_mask(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    return x if mask is None else x * mask


def lengths_to_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """``[B]`` lengths -> float mask ``[B, 1, max_len]`` (1 where valid)."""
    steps = torch.arange(max_len, device=lengths.device)
    return (steps[None, :] < lengths[:, None]).float().unsqueeze(1)


@overload
def downsample_mask(mask: torch.Tensor, stride: int) -> torch.Tensor: ...
@overload
def downsample_mask(mask: None, stride: int) -> None: ...
def downsample_mask(mask: torch.Tensor | None, stride: int) -> torch.Tensor | None:
    """A frame after a stride-``stride`` convolution is valid if any of its input block was."""
    if mask is None or stride == 1:
        return mask
    t = mask.shape[-1]
    pad = (-t) % stride
    m = nn.functional.pad(mask, (0, pad))
    return m.reshape(m.shape[0], 1, -1, stride).amax(dim=-1)


class ChannelLayerNorm(nn.Module):
    """LayerNorm over channels of ``[B, C, T]``: per frame, so nothing leaks across time or batch items."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.transpose(1, 2)).transpose(1, 2)


class ConvNeXtBlock(nn.Module):
    """Depthwise conv -> LayerNorm -> pointwise MLP (GELU) -> layer scale, with a residual connection.

    The depthwise convolution carries the time context cheaply; the pointwise MLP does the heavy lifting as
    two matrix products, which is what a CPU runs fastest.
    """

    def __init__(
        self, channels: int, hidden: int, kernel_size: int = 7, dilation: int = 1, layer_scale: float = 1e-2
    ) -> None:
        super().__init__()
        self.dwconv = nn.Conv1d(
            channels,
            channels,
            kernel_size,
            padding=dilation * (kernel_size - 1) // 2,
            dilation=dilation,
            groups=channels,
        )
        self.norm = nn.LayerNorm(channels)
        self.pw1 = nn.Linear(channels, hidden)
        self.act = nn.GELU()
        self.pw2 = nn.Linear(hidden, channels)
        self.gamma = nn.Parameter(torch.full((channels,), layer_scale))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``[B, C, T]`` -> ``[B, C, T]``."""
        y = self.dwconv(apply_mask(x, mask)).transpose(1, 2)
        y = self.pw2(self.act(self.pw1(self.norm(y))))
        return apply_mask(x + (self.gamma * y).transpose(1, 2), mask)


class ResidualUnit(nn.Module):
    """ELU -> dilated conv -> ELU -> 1x1 conv, plus the input: the SEANet/EnCodec-style waveform block."""

    def __init__(self, channels: int, kernel_size: int = 7, dilation: int = 1) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.ELU(),
            nn.Conv1d(channels, channels, kernel_size, dilation=dilation, padding=dilation * (kernel_size - 1) // 2),
            nn.ELU(),
            nn.Conv1d(channels, channels, 1),
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return apply_mask(x + self.net(apply_mask(x, mask)), mask)


class ConvNeXtStack(nn.Module):
    """``depth`` ConvNeXt blocks at one time resolution."""

    def __init__(self, channels: int, depth: int, hidden_mult: int = 3, kernel_size: int = 7) -> None:
        super().__init__()
        self.blocks: list[ConvNeXtBlock] = nn.ModuleList(  # type: ignore[assignment]
            ConvNeXtBlock(channels, hidden_mult * channels, kernel_size) for _ in range(depth)
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        for block in self.blocks:
            x = block(x, mask)
        return x

    @property
    def receptive_field(self) -> int:
        """Frames on each side that influence one output frame."""
        return sum(int(b.dwconv.dilation[0]) * (int(b.dwconv.kernel_size[0]) - 1) // 2 for b in self.blocks)
