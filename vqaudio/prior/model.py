"""An autoregressive prior over residual codes, frame by frame and codebook by codebook.

The probability of a code sequence ``[K, F]`` is factored over frames, and within a frame over the residual
codebooks in order (the depth-wise factorisation of RQ-Transformer / UniAudio, here with a small head)::

    p(c) = prod_t prod_k p(c[k, t] | c[:, <t], c[<k, t])

* The **context** of frame ``t`` reads the summed code embeddings of frames ``< t``, either by a causal stack
  of dilated 1-D convolutions (ReLU, residual, WaveNet's dilation pattern: a fixed receptive field) or by a
  GRU (no bound on its memory). Neither has a normalisation layer: every operation is a product, a sum, a
  ReLU, a sigmoid or a tanh, which is what lets :mod:`vqaudio.prior.integer` run the same network in exact
  integer arithmetic, as entropy coding needs: encoder and decoder must compute bit-identical probabilities
  on any CPU.
* The **head** predicts codebook ``k`` of frame ``t`` from the context plus the embeddings of the frame's
  codebooks ``< k`` (a residual codebook refines the ones before it, so they matter most).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vqaudio.errors import ConfigError


@dataclass(frozen=True)
class PriorConfig:
    num_codebooks: int = 3  # codebooks modelled (a prefix of the codec's): the default bitrate's
    codebook_size: int = 1024
    dim: int = 256
    dilations: tuple[int, ...] = (1, 2, 4, 8, 16, 1, 2, 4)
    kernel_size: int = 3
    head_dim: int = 256
    dropout: float = 0.0  # on the residual branches and the head's hidden layer, in training only
    # "conv": the dilated stack; "gru": a recurrent context with no fixed receptive field. Both run in the
    # integer engine (compression and sampling); benchmarks/prior_compare.py measures one against the other.
    context: str = "conv"
    gru_layers: int = 2

    def __post_init__(self) -> None:
        if self.num_codebooks < 1 or self.codebook_size < 2 or self.dim < 1 or self.head_dim < 1:
            raise ConfigError("prior needs num_codebooks >= 1, codebook_size >= 2 and positive widths")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"prior dropout must be in [0, 1), got {self.dropout}")
        if not self.dilations or any(d < 1 for d in self.dilations) or self.kernel_size < 1:
            raise ConfigError("prior dilations and kernel_size must be >= 1")
        if self.context not in ("conv", "gru") or self.gru_layers < 1:
            raise ConfigError(f"prior context must be 'conv' or 'gru' (gru_layers >= 1), got {self.context!r}")

    @property
    def receptive_field(self) -> int:
        """Frames before ``t`` that frame ``t``'s probabilities depend on (the conv context; a GRU's has no bound)."""
        return 1 + (self.kernel_size - 1) * sum(self.dilations)


@dataclass
class PriorOutput:
    """``logits`` ``[B, K, F, V]`` for every code given what precedes it, and the mean negative log-likelihood
    per codebook in bits per token ``[K]`` over the valid frames."""

    logits: torch.Tensor
    bits: torch.Tensor


class TokenPrior(nn.Module):
    def __init__(self, config: PriorConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        # One table per codebook for the context input; a second set for the head's within-frame input.
        self.frame_embed: list[nn.Embedding] = nn.ModuleList(  # type: ignore[assignment]
            nn.Embedding(c.codebook_size, c.dim) for _ in range(c.num_codebooks)
        )
        # Only the chosen context has weights: a GRU prior carries no conv stack, and the other way round.
        self.convs: list[nn.Conv1d] = nn.ModuleList(  # type: ignore[assignment]
            nn.Conv1d(c.dim, c.dim, c.kernel_size, dilation=d) for d in (c.dilations if c.context == "conv" else ())
        )
        self.gru = nn.GRU(c.dim, c.dim, c.gru_layers, batch_first=True) if c.context == "gru" else None
        self.within_embed: list[nn.Embedding] = nn.ModuleList(  # type: ignore[assignment]
            nn.Embedding(c.codebook_size, c.dim) for _ in range(max(0, c.num_codebooks - 1))
        )
        self.hidden: list[nn.Linear] = nn.ModuleList(  # type: ignore[assignment]
            nn.Linear(c.dim, c.head_dim) for _ in range(c.num_codebooks)
        )
        self.out: list[nn.Linear] = nn.ModuleList(  # type: ignore[assignment]
            nn.Linear(c.head_dim, c.codebook_size) for _ in range(c.num_codebooks)
        )
        for table in [*self.frame_embed, *self.within_embed]:
            nn.init.normal_(table.weight, std=0.5 / c.num_codebooks**0.5)
        for conv in self.convs:
            # Residual branches start small, so the stack starts near the identity and trains without norms.
            nn.init.normal_(conv.weight, std=0.5 / (c.dim * c.kernel_size) ** 0.5)
            nn.init.zeros_(conv.bias)  # type: ignore[arg-type]

    def embed_frames(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes ``[B, K', F]`` (``K' <= K``) -> summed embeddings ``[B, D, F]``."""
        total = self.frame_embed[0](codes[:, 0])
        for k in range(1, codes.shape[1]):
            total = total + self.frame_embed[k](codes[:, k])
        return total.transpose(1, 2)

    def context(self, x: torch.Tensor) -> torch.Tensor:
        """Summed embeddings ``[B, D, F]`` -> context ``[B, D, F]``, position ``t`` depending on ``x[..., :t]``."""
        h = F.pad(x, (1, 0))[..., :-1]  # frame t sees frames < t
        if self.gru is not None:
            out, _ = self.gru(h.transpose(1, 2))
            return out.transpose(1, 2)
        for conv, dilation in zip(self.convs, self.config.dilations, strict=True):
            branch = conv(F.pad(torch.relu(h), ((self.config.kernel_size - 1) * dilation, 0)))
            h = h + F.dropout(branch, self.config.dropout, self.training)
        return h

    def head(self, context: torch.Tensor, codes: torch.Tensor, k: int) -> torch.Tensor:
        """Logits ``[B, F, V]`` of codebook ``k`` from the context ``[B, D, F]`` and codes ``[B, >=k, F]``."""
        z = context.transpose(1, 2)
        for j in range(k):
            z = z + self.within_embed[j](codes[:, j])
        hidden = torch.relu(self.hidden[k](torch.relu(z)))
        return self.out[k](F.dropout(hidden, self.config.dropout, self.training))

    def forward(self, codes: torch.Tensor, mask: torch.Tensor | None = None) -> PriorOutput:
        """Codes ``[B, K, F]``, optional valid-frame mask ``[B, F]`` -> :class:`PriorOutput`."""
        k_total = self.config.num_codebooks
        if codes.dim() != 3 or codes.shape[1] < k_total:
            raise ValueError(f"codes must be [B, >={k_total}, F], got {tuple(codes.shape)}")
        codes = codes[:, :k_total]
        ctx = self.context(self.embed_frames(codes))
        logits = torch.stack([self.head(ctx, codes, k) for k in range(k_total)], dim=1)  # [B, K, F, V]
        nll = F.cross_entropy(logits.flatten(0, 2), codes.flatten(), reduction="none").view(codes.shape)
        w = torch.ones(codes.shape[0], codes.shape[2]) if mask is None else mask.float()
        bits = (nll * w[:, None]).sum((0, 2)) / w.sum().clamp_min(1.0) / torch.log(torch.tensor(2.0))
        return PriorOutput(logits=logits, bits=bits)
