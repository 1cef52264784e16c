"""Multi-scale residual vector quantization: a residual VQ whose codebooks each have a frame rate.

Codebook ``k`` quantizes, at ``1 / strides[k]`` of the latent frame rate, the block means of what codebooks
``0..k-1`` left over; its codewords are repeated back to the latent rate before the next codebook sees the
residual (the time-pooled residual coding of SNAC, Siuzdak et al. 2024). Slow structure goes into the coarse
codebooks, and a 12.5 Hz level is a short sequence for a language model. The codebooks run in the order given,
so, as in :mod:`vqaudio.quantizers.rvq`, a prefix of them is a coarser code at a lower bitrate and quantizer
dropout trains every prefix.

Code layout: codes are laid out in *superframes* of ``S = max(strides)`` latent frames, the span of one code
of the coarsest codebook. A codebook of stride ``s`` holds ``S / s`` codes per superframe, stored as ``S / s``
consecutive rows (row ``j`` holds its codes at its own frames ``j, j + S/s, j + 2 S/s, ...``), codebook after
codebook. So the codes of any prefix of codebooks are a prefix of rows, ``[B, R, F / S]``, every row at one
frame rate and every row worth the same bits: the token file, chunking, batching and the bitrate arithmetic
of single-rate codes carry over, with ``R`` rows counted as codebooks. :func:`split_levels` and
:func:`join_levels` convert to and from one ``[K_l, F_l]`` array per frame rate.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from vqaudio.errors import ConfigError
from vqaudio.quantizers.base import BaseQuantizer, QuantizerOutput
from vqaudio.quantizers.vq import VectorQuantizer, VQConfig
from vqaudio.tokenfile.levels import CodeLayout


@dataclass(frozen=True)
class MultiScaleConfig:
    vq: VQConfig = VQConfig()
    # Per codebook, in the order they quantize (and -k keeps them): how many latent frames one of its codes spans.
    strides: tuple[int, ...] = (4, 4, 2, 1, 2, 4, 4, 1)
    dropout: float = 1.0  # probability that a training batch uses a random prefix of the codebooks

    def __post_init__(self) -> None:
        try:
            CodeLayout(self.strides)
        except ValueError as exc:
            raise ConfigError(f"multiscale {exc}") from None
        if not 0.0 <= self.dropout <= 1.0:
            raise ConfigError("dropout must be in [0, 1]")

    @property
    def layout(self) -> CodeLayout:
        return CodeLayout(self.strides)


def draw_num_codebooks(config: MultiScaleConfig, generator: torch.Generator) -> int:
    """How many codebooks (not rows) one training batch uses under quantizer dropout: uniform over ``1..K``."""
    return int(torch.randint(1, len(config.strides) + 1, (), generator=generator))


def pool(x: torch.Tensor, mask: torch.Tensor, stride: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Means of ``x`` ``[B, D, F]`` over blocks of ``stride`` frames, counting only frames where ``mask``
    ``[B, 1, F]`` is 1 (``F`` a multiple of ``stride``): ``[B, D, F / stride]`` and the blocks' mask."""
    if stride == 1:
        return x, mask
    b, d, f = x.shape
    total = (x * mask).reshape(b, d, f // stride, stride).sum(-1)
    count = mask.reshape(b, 1, f // stride, stride).sum(-1)
    return total / count.clamp_min(1.0), (count > 0).to(mask.dtype)


class MultiScaleQuantizer(BaseQuantizer):
    """Residual VQ at several frame rates; ``num_codebooks`` counts rows of the superframe layout (module doc)."""

    def __init__(self, config: MultiScaleConfig) -> None:
        super().__init__()
        self.config = config
        self.layout = config.layout
        # A coarse codebook sees 1/stride as many vectors a batch; its dead-code threshold (vectors a batch) scales
        # with them, or a stride-4 codebook of 1024 entries would restart codes that are merely rare.
        self.layers: list[VectorQuantizer] = nn.ModuleList(  # type: ignore[assignment]
            VectorQuantizer(replace(config.vq, dead_threshold=config.vq.dead_threshold / s)) for s in config.strides
        )
        self.generator = torch.Generator().manual_seed(0)

    @property
    def dim(self) -> int:
        return self.config.vq.dim

    @property
    def num_codebooks(self) -> int:
        return self.layout.row_counts[-1]

    @property
    def codebook_size(self) -> int:
        return self.config.vq.codebook_size

    @property
    def frame_stride(self) -> int:
        return self.layout.superframe

    @property
    def codebook_counts(self) -> tuple[int, ...]:
        return self.layout.row_counts

    @property
    def codebook_strides(self) -> tuple[int, ...]:
        return self.config.strides

    def _stages(self, n_rows: int | None) -> int:
        """Codebooks that fill exactly ``n_rows`` rows (default: all)."""
        counts = self.layout.row_counts
        n = counts[-1] if n_rows is None else n_rows
        if n not in counts:
            raise ValueError(
                f"n_codebooks must be one of {', '.join(map(str, counts))} for this multi-scale model, got {n}"
            )
        return counts.index(n) + 1

    def _pad(self, x: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Zero-fill ``x`` to whole superframes; the fill is masked out of every block mean."""
        if mask is None:
            mask = x.new_ones(x.shape[0], 1, x.shape[-1])
        pad = (-x.shape[-1]) % self.layout.superframe
        return F.pad(x, (0, pad)), F.pad(mask.to(x.dtype), (0, pad))

    def _to_rows(self, codes: torch.Tensor, k: int) -> torch.Tensor:
        """Codebook ``k``'s codes ``[B, 1, F_k]`` -> its rows ``[B, S / s, F / S]``."""
        r = self.layout.rows(k)
        return codes.reshape(codes.shape[0], -1, r).transpose(1, 2)

    def _from_rows(self, rows: torch.Tensor) -> torch.Tensor:
        """Rows ``[B, S / s, F / S]`` -> the codebook's codes in time order ``[B, 1, F_k]``."""
        return rows.transpose(1, 2).reshape(rows.shape[0], 1, -1)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None = None, n_codebooks: int | None = None
    ) -> QuantizerOutput:
        """``[B, D, F]`` -> :class:`QuantizerOutput` with codes ``[B, R', ceil(F / S)]`` and ``perplexity`` one
        entry per codebook used."""
        n = self._stages(n_codebooks)
        dropout = self.training and n_codebooks is None and self.config.dropout > 0
        if dropout and torch.rand((), generator=self.generator) < self.config.dropout:
            n = draw_num_codebooks(self.config, self.generator)
        f = x.shape[-1]
        xf, m = self._pad(x.float(), mask)
        residual, quantized = xf, torch.zeros_like(xf)
        codes, commits, books, perps = [], [], [], []
        for k, layer in enumerate(self.layers[:n]):
            s = self.config.strides[k]
            pooled, pmask = pool(residual, m, s)
            out = layer(pooled, pmask)
            # The codeword itself (not the straight-through value), repeated over its block, leaves the true residual.
            up = out.quantized.detach().repeat_interleave(s, dim=-1)
            residual = residual - up
            quantized = quantized + up
            codes.append(self._to_rows(out.codes, k))
            commits.append(out.commitment_loss)
            books.append(out.codebook_loss)
            perps.append(out.perplexity)
        quantized = xf + (quantized - xf).detach()
        return QuantizerOutput(
            quantized=quantized[..., :f].to(x.dtype),
            codes=torch.cat(codes, dim=1),
            commitment_loss=torch.stack(commits).sum(),
            codebook_loss=torch.stack(books).sum(),
            perplexity=torch.cat(perps),
        )

    def encode(
        self, x: torch.Tensor, n_codebooks: int | None = None, *, beam: int = 1, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``[B, D, F]`` -> ``[B, R', ceil(F / S)]``, greedy (codebooks of other rates do not share the frames a
        beam search ranks; ``beam`` > 1 is refused). ``mask`` ``[B, 1, F]``: the real frames of each item of a
        padded batch, so that a short item's last block mean is over its own frames, as when it is alone."""
        n = self._stages(n_codebooks)
        if beam != 1:
            raise ValueError("a multi-scale model searches its codes greedily: use beam 1")
        with torch.autocast(x.device.type, enabled=False):
            # The fill past the last real frame is masked out of the last block's mean, as in training.
            residual, m = self._pad(x.float(), mask)
            codes = []
            for k, layer in enumerate(self.layers[:n]):
                s = self.config.strides[k]
                c = layer.encode(pool(residual, m, s)[0])
                residual = residual - layer.decode(c).repeat_interleave(s, dim=-1)
                codes.append(self._to_rows(c, k))
        return torch.cat(codes, dim=1)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """``[B, R', F / S]`` -> ``[B, D, F]``, summing the codebooks' repeated codewords."""
        n = self._stages(codes.shape[1])
        out = torch.zeros(codes.shape[0], self.dim, codes.shape[2] * self.layout.superframe, device=codes.device)
        row = 0
        with torch.autocast(codes.device.type, enabled=False):
            for k, layer in enumerate(self.layers[:n]):
                r = self.layout.rows(k)
                c = self._from_rows(codes[:, row : row + r])
                out = out + layer.decode(c).repeat_interleave(self.config.strides[k], dim=-1)
                row += r
        return out
