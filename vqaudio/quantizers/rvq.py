"""Residual vector quantization (SoundStream, Zeghidour et al. 2021).

Codebook ``k`` quantizes what codebooks ``0..k-1`` left over, so decoding the first ``K'`` codebooks gives a
coarser reconstruction at a lower bitrate. Quantizer dropout trains every prefix: for each training batch a
number of codebooks ``K'`` is drawn from ``1..K`` (with probability ``dropout``; uniformly, or in proportion to
``dropout_weights``) and only those are used, so one model serves several bitrates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from vqaudio.errors import ConfigError
from vqaudio.quantizers.base import BaseQuantizer, QuantizerOutput
from vqaudio.quantizers.vq import VectorQuantizer, VQConfig, smallest

# Entries of the beam search's [frames, beam, codebook_size] distance table per chunk of frames: 4 MB in float32, which
# stays in cache between the product that writes it and the ranking that reads it (with the block ranking, 1.05 to 1.4
# times as fast as 16 MB chunks at beam 8 on 30 s of speech, by machine and threads: benchmarks/code_search.py).
BEAM_TABLE_ENTRIES = 1 << 20


@dataclass(frozen=True)
class RVQConfig:
    vq: VQConfig = VQConfig()
    num_codebooks: int = 6
    dropout: float = 1.0  # probability that a training batch uses a random prefix of the codebooks
    # Relative odds of drawing 1, 2, ..., K codebooks when dropout applies; empty = uniform. Weighting the
    # default bitrate up spends more of the training on the setting most people decode at.
    dropout_weights: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if self.num_codebooks < 1:
            raise ConfigError("num_codebooks must be >= 1")
        if not 0.0 <= self.dropout <= 1.0:
            raise ConfigError("dropout must be in [0, 1]")
        w = self.dropout_weights
        if (
            not isinstance(w, tuple)
            or w
            and (
                len(w) != self.num_codebooks
                or not all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0 for v in w
                )
                or sum(w) <= 0
            )
        ):
            raise ConfigError(
                f"dropout_weights needs {self.num_codebooks} non-negative numbers (one per codebook count), "
                f"not all zero; got {w!r}"
            )


def draw_num_codebooks(config: RVQConfig, generator: torch.Generator) -> int:
    """A number of codebooks for one training batch under quantizer dropout: uniform over ``1..K``, or in
    proportion to ``config.dropout_weights``."""
    if config.dropout_weights:
        odds = torch.tensor(config.dropout_weights, dtype=torch.float64)
        return 1 + int(torch.multinomial(odds, 1, generator=generator))
    return int(torch.randint(1, config.num_codebooks + 1, (), generator=generator))


class ResidualVectorQuantizer(BaseQuantizer):
    def __init__(self, config: RVQConfig) -> None:
        super().__init__()
        self.config = config
        self.layers: list[VectorQuantizer] = nn.ModuleList(  # type: ignore[assignment]
            VectorQuantizer(config.vq) for _ in range(config.num_codebooks)
        )
        # Drawn on the CPU from its own generator so ranks under DDP can be seeded to agree.
        self.generator = torch.Generator().manual_seed(0)

    @property
    def dim(self) -> int:
        return self.config.vq.dim

    @property
    def num_codebooks(self) -> int:
        return self.config.num_codebooks

    @property
    def codebook_size(self) -> int:
        return self.config.vq.codebook_size

    def _check(self, n: int | None) -> int:
        n = self.num_codebooks if n is None else n
        if not 1 <= n <= self.num_codebooks:
            raise ValueError(f"n_codebooks must be in 1..{self.num_codebooks}, got {n}")
        return n

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None = None, n_codebooks: int | None = None
    ) -> QuantizerOutput:
        """``[B, D, F]`` -> :class:`QuantizerOutput` with codes ``[B, K', F]``."""
        n = self._check(n_codebooks)
        dropout = self.training and n_codebooks is None and self.config.dropout > 0
        if dropout and torch.rand((), generator=self.generator) < self.config.dropout:
            n = draw_num_codebooks(self.config, self.generator)
        xf = x.float()
        residual = xf
        quantized = torch.zeros_like(xf)
        codes, commits, books, perps = [], [], [], []
        for layer in self.layers[:n]:
            out = layer(residual, mask)
            # Subtract the codeword itself (not the straight-through value) so later stages see the true residual.
            residual = residual - out.quantized.detach()
            quantized = quantized + out.quantized.detach()
            codes.append(out.codes)
            commits.append(out.commitment_loss)
            books.append(out.codebook_loss)
            perps.append(out.perplexity)
        # One straight-through path for the sum: the encoder gets the decoder's gradient once, not once per
        # codebook (which would rescale it with the number of codebooks quantizer dropout draws).
        quantized = xf + (quantized - xf).detach()
        return QuantizerOutput(
            quantized=quantized.to(x.dtype),
            codes=torch.cat(codes, dim=1),
            commitment_loss=torch.stack(commits).sum(),
            codebook_loss=torch.stack(books).sum(),
            perplexity=torch.cat(perps),
        )

    def encode(
        self, x: torch.Tensor, n_codebooks: int | None = None, *, beam: int = 1, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``[B, D, F]`` -> ``[B, K', F]``.

        ``beam`` 1 picks each codebook's nearest codeword in turn (greedy, what training does). A wider beam
        keeps, after each codebook, the ``beam`` partial code sequences with the smallest residual and returns
        the sequence whose ``K'`` codewords together come closest to the latent: a greedy first choice often
        leaves a residual the later codebooks cover badly. The codes are then best for exactly ``K'``
        codebooks; a prefix of them is no longer the best shorter code.
        """
        n = self._check(n_codebooks)
        if beam < 1:
            raise ValueError(f"beam must be >= 1, got {beam}")
        # Nearest-neighbour search in float32 even under autocast: bfloat16 distances pick wrong codes.
        with torch.autocast(x.device.type, enabled=False):
            if beam > 1 and n > 1:
                return self._beam_search(x.float(), n, beam)
            codes = []
            residual = x.float()
            for layer in self.layers[:n]:
                c = layer.encode(residual)
                residual = residual - layer.decode(c)
                codes.append(c)
        return torch.cat(codes, dim=1)

    def _beam_search(self, x: torch.Tensor, n: int, beam: int) -> torch.Tensor:
        """Beam search over the first ``n`` codebooks: ``[B, D, F]`` float32 -> codes ``[B, n, F]``."""
        b, d, f = x.shape
        flat = x.transpose(1, 2).reshape(-1, d)
        # Frames are independent, so chunks of them bound the distance table's memory.
        chunk = max(1, BEAM_TABLE_ENTRIES // (beam * self.codebook_size))
        out = [self._beam_search_frames(flat[i : i + chunk], n, beam) for i in range(0, flat.shape[0], chunk)]
        codes = torch.cat(out) if out else flat.new_zeros((0, n), dtype=torch.long)
        return codes.reshape(b, f, n).transpose(1, 2).contiguous()

    def _beam_search_frames(self, x: torch.Tensor, n: int, beam: int) -> torch.Tensor:
        """``[N, D]`` -> ``[N, n]``."""
        frames, dim = x.shape
        residual = x[:, None, :]  # [N, b, D]: each kept sequence's residual, b = 1 before the first codebook
        paths = torch.zeros(frames, 1, 0, dtype=torch.long, device=x.device)
        for k, layer in enumerate(self.layers[:n]):
            w = layer.codewords()  # [C, D]
            size, kept = w.shape[0], residual.shape[1]
            # ||r - w||^2 = [r, 1, ||r||^2] . [-2w, ||w||^2, 1]: one product writes the whole distance table, with
            # no pass over it to add the norms (the table is the search's largest cost, with its ranking).
            r = residual.reshape(-1, dim)
            lhs = torch.cat([r, r.new_ones(r.shape[0], 1), r.pow(2).sum(1, keepdim=True)], 1)
            rhs = torch.cat([w * -2, w.pow(2).sum(1, keepdim=True), w.new_ones(size, 1)], 1)
            dist = (lhs @ rhs.T).reshape(frames, kept * size)  # [N, b * C]: each kept sequence times each codeword
            # Only the single best sequence is wanted after the last codebook.
            best = smallest(dist, 1 if k == n - 1 else min(beam, kept * size))
            parent, chosen = best // size, best % size
            residual = torch.gather(residual, 1, parent[..., None].expand(-1, -1, dim)) - w[chosen]
            paths = torch.cat(
                [torch.gather(paths, 1, parent[..., None].expand(-1, -1, paths.shape[-1])), chosen[..., None]], 2
            )
        return paths[:, 0]

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """``[B, K', F]`` -> ``[B, D, F]``, summing the first ``K'`` codebooks."""
        self._check(codes.shape[1])
        out = torch.zeros(codes.shape[0], self.dim, codes.shape[2], device=codes.device)
        with torch.autocast(codes.device.type, enabled=False):
            for k, layer in enumerate(self.layers[: codes.shape[1]]):
                out = out + layer.decode(codes[:, k : k + 1])
        return out
