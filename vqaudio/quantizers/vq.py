"""Single-codebook vector quantization (VQ-VAE, van den Oord et al. 2017).

Two ways to learn the codebook:

* gradient: codebook loss ``||sg[z_e] - e||^2`` moves the codewords, commitment loss
  ``beta ||z_e - sg[e]||^2`` keeps the encoder close to them;
* EMA (``ema=True``): codewords are exponential moving averages of the vectors assigned to them, with
  Laplace smoothing of the cluster sizes so an empty cluster does not divide by zero; only the commitment
  loss remains.

Either way the codebook can be initialised by k-means on the first training batch, and codes whose usage
falls below ``dead_threshold`` are restarted from random recent encoder outputs. All distance and update
math runs in float32, whatever the model's dtype.

Under ``torch.distributed`` every statistic is global: the counts and sums are summed over ranks before the
EMA step, k-means runs on every rank's vectors and restarts draw from every rank's, so N ranks given halves of
a batch learn the codebook one process learns from the whole batch, and all ranks hold the same buffers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from vqaudio.distributed import all_gather_rows, all_reduce_sum, world_size
from vqaudio.errors import ConfigError
from vqaudio.quantizers.base import BaseQuantizer, QuantizerOutput

# Width of the blocks :func:`smallest` takes the minimum of first.
SEARCH_BLOCK = 64


def smallest(dist: torch.Tensor, k: int) -> torch.Tensor:
    """Columns of the ``k`` smallest entries of each row of ``dist`` ``[N, M]``, best first: ``[N, k]``.

    The same as ``dist.topk(k, largest=False).indices`` (for ``k`` 1 exactly ``argmin``'s, ties going to the
    first column; for larger ``k`` tied entries may come back from other columns), for ``dist`` without NaN
    (a NaN hides its block), but faster on the CPU, where torch's ``amin`` is vectorised and ``argmin`` and
    ``topk`` walk each row: on ``[1157, 8192]`` tables on one thread it takes 2 to 2.3 (``k`` 8) and 3.7 to 3.8
    (``k`` 1) times less (``benchmarks/code_search.py --rows 1157``).

    The ``k`` blocks of ``SEARCH_BLOCK`` columns with the smallest minima hold the ``k`` smallest entries (a
    block outside them has ``k`` minima no larger than its own elsewhere, so none of its entries ranks in the
    first ``k``), and only those blocks are searched.
    """
    n, m = dist.shape
    blocks = m // SEARCH_BLOCK
    if m % SEARCH_BLOCK or blocks <= k:
        return dist.argmin(1, keepdim=True) if k == 1 else dist.topk(k, dim=1, largest=False).indices
    grid = dist.reshape(n, blocks, SEARCH_BLOCK)
    minima = grid.amin(2)  # [N, blocks]
    picked = minima.argmin(1, keepdim=True) if k == 1 else minima.topk(k, dim=1, largest=False).indices
    inside = torch.gather(grid, 1, picked[..., None].expand(-1, -1, SEARCH_BLOCK)).reshape(n, k * SEARCH_BLOCK)
    pos = inside.argmin(1, keepdim=True) if k == 1 else inside.topk(k, dim=1, largest=False).indices
    return torch.gather(picked, 1, pos // SEARCH_BLOCK) * SEARCH_BLOCK + pos % SEARCH_BLOCK


@dataclass(frozen=True)
class VQConfig:
    dim: int = 64
    codebook_size: int = 1024
    beta: float = 0.25  # commitment weight
    ema: bool = True
    decay: float = 0.99  # EMA decay of cluster sizes and sums
    epsilon: float = 1e-5  # Laplace smoothing of cluster sizes
    kmeans_init: bool = True
    kmeans_iters: int = 10
    dead_threshold: float = 0.5  # restart codes whose EMA usage (vectors per batch) falls below this

    def __post_init__(self) -> None:
        if self.dim <= 0 or self.codebook_size < 2:
            raise ConfigError("VQ needs dim > 0 and codebook_size >= 2")
        if not 0.0 < self.decay < 1.0:
            raise ConfigError("decay must be in (0, 1)")
        if self.beta < 0 or self.dead_threshold < 0:
            raise ConfigError("beta and dead_threshold must be >= 0")


def _kmeans_pp_seeds(samples: torch.Tensor, k: int, generator: torch.Generator | None) -> torch.Tensor:
    """k-means++ seeding (Arthur and Vassilvitskii 2007): each new seed is drawn with probability proportional
    to its squared distance from the seeds so far, so separate clusters each get one."""
    n = samples.shape[0]
    first = int(torch.randint(n, (1,), generator=generator))
    seeds = [first]
    dist = (samples - samples[first]).pow(2).sum(1)
    for _ in range(1, k):
        total = float(dist.sum())
        if total <= 0:  # fewer distinct points than seeds: fill with random repeats
            seeds.append(int(torch.randint(n, (1,), generator=generator)))
            continue
        nxt = int(torch.multinomial(dist / total, 1, generator=generator))
        seeds.append(nxt)
        dist = torch.minimum(dist, (samples - samples[nxt]).pow(2).sum(1))
    return samples[torch.tensor(seeds)].clone()


def kmeans(samples: torch.Tensor, k: int, iters: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Lloyd k-means on ``[N, D]`` with k-means++ seeds; returns ``[k, D]`` (empty clusters keep their seed)."""
    centroids = _kmeans_pp_seeds(samples, k, generator)
    for _ in range(iters):
        assign = torch.cdist(samples, centroids).argmin(dim=1)
        sums = torch.zeros_like(centroids).index_add_(0, assign, samples)
        counts = torch.bincount(assign, minlength=k).float()
        filled = counts > 0
        centroids[filled] = sums[filled] / counts[filled, None]
    return centroids


class VectorQuantizer(BaseQuantizer):
    """One codebook of ``codebook_size`` vectors of size ``dim``."""

    codebook: torch.Tensor
    cluster_size: torch.Tensor
    embed_sum: torch.Tensor
    initialized: torch.Tensor

    def __init__(self, config: VQConfig) -> None:
        super().__init__()
        self.config = config
        k, d = config.codebook_size, config.dim
        self.register_buffer("codebook", torch.randn(k, d) * 0.1)
        # EMA statistics double as usage counters for dead-code detection in both learning modes.
        self.register_buffer("cluster_size", torch.ones(k))
        self.register_buffer("embed_sum", self.codebook.clone())
        self.register_buffer("initialized", torch.tensor(not config.kmeans_init))
        if not config.ema:
            self.embedding = torch.nn.Parameter(self.codebook.clone())

    @property
    def dim(self) -> int:
        return self.config.dim

    @property
    def num_codebooks(self) -> int:
        return 1

    @property
    def codebook_size(self) -> int:
        return self.config.codebook_size

    def _weights(self) -> torch.Tensor:
        return self.codebook if self.config.ema else self.embedding.float()

    def codewords(self) -> torch.Tensor:
        """The codebook ``[codebook_size, D]`` in float32."""
        return self._weights().float()

    def _nearest(self, flat: torch.Tensor) -> torch.Tensor:
        """``[N, D]`` float32 -> ``[N]`` indices of the nearest codewords (squared Euclidean)."""
        w = self._weights()
        # ||x||^2 is the same for every codeword, so the argmin needs only ||w||^2 - 2 x.w: one fused product.
        return smallest(torch.addmm(w.pow(2).sum(1), flat, w.T, alpha=-2), 1)[:, 0]

    def encode(
        self, x: torch.Tensor, n_codebooks: int | None = None, *, beam: int = 1, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``[B, D, F]`` -> ``[B, 1, F]``. With one codebook the nearest codeword is already the best code, so
        ``beam`` changes nothing."""
        b, d, f = x.shape
        flat = x.float().transpose(1, 2).reshape(-1, d)
        return self._nearest(flat).reshape(b, 1, f)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """``[B, 1, F]`` -> ``[B, D, F]``."""
        return F.embedding(codes[:, 0], self._weights()).transpose(1, 2)

    @torch.no_grad()
    def _init_codebook(self, flat: torch.Tensor) -> None:
        centroids = kmeans(all_gather_rows(flat), self.codebook_size, self.config.kmeans_iters)
        if world_size() > 1:
            # Same samples on every rank, but the seeding draws from each rank's own random state.
            torch.distributed.broadcast(centroids, src=0)
        self._set_codewords(torch.arange(self.codebook_size), centroids)
        self.cluster_size.fill_(1.0)
        self.initialized.fill_(True)

    @torch.no_grad()
    def _set_codewords(self, idx: torch.Tensor, vectors: torch.Tensor) -> None:
        self.codebook[idx] = vectors
        self.embed_sum[idx] = vectors * self.cluster_size[idx, None]
        if not self.config.ema:
            self.embedding.data[idx] = vectors.to(self.embedding.dtype)

    @torch.no_grad()
    def _update(self, flat: torch.Tensor, codes: torch.Tensor) -> None:
        """EMA update of usage (and, with ``ema``, of the codewords), then dead-code restart."""
        cfg = self.config
        onehot_counts = all_reduce_sum(torch.bincount(codes, minlength=self.codebook_size).float())
        self.cluster_size.mul_(cfg.decay).add_(onehot_counts, alpha=1 - cfg.decay)
        if cfg.ema:
            sums = all_reduce_sum(torch.zeros_like(self.embed_sum).index_add_(0, codes, flat))
            self.embed_sum.mul_(cfg.decay).add_(sums, alpha=1 - cfg.decay)
            n = self.cluster_size.sum()
            smoothed = (self.cluster_size + cfg.epsilon) / (n + self.codebook_size * cfg.epsilon) * n
            self.codebook.copy_(self.embed_sum / smoothed[:, None])
        else:
            self.codebook.copy_(self.embedding.detach().float())
        dead = self.cluster_size < cfg.dead_threshold
        n_dead = int(dead.sum())
        if n_dead:
            # Every rank sees the same dead codes (the counts are global); each offers n_dead of its own vectors
            # and all take the same evenly spaced picks from the gathered pool, so restarts agree across ranks.
            local = flat[torch.randint(flat.shape[0], (n_dead,), device=flat.device)] if len(flat) else flat
            pool = all_gather_rows(local)
            if not len(pool):
                return
            pick = torch.arange(n_dead, device=flat.device) * pool.shape[0] // n_dead
            idx = dead.nonzero().squeeze(1)
            # Restart at the cluster-size threshold so a revived code is not instantly dead again.
            self.cluster_size[idx] = cfg.dead_threshold * 2
            self._set_codewords(idx, pool[pick])

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None = None, n_codebooks: int | None = None
    ) -> QuantizerOutput:
        """``[B, D, F]`` -> :class:`QuantizerOutput` with codes ``[B, 1, F]``."""
        b, d, f = x.shape
        xf = x.float()
        flat = xf.transpose(1, 2).reshape(-1, d)
        valid = (
            torch.ones(flat.shape[0], dtype=torch.bool, device=x.device)
            if mask is None
            else mask.transpose(1, 2).reshape(-1) > 0
        )
        if self.training and not bool(self.initialized):
            self._init_codebook(flat[valid].detach())
        codes = self._nearest(flat.detach())
        if self.training:
            self._update(flat[valid].detach(), codes[valid])
        quant = F.embedding(codes, self._weights())  # [N, D]
        w = valid.float()[:, None]
        denom = (w.sum() * d).clamp_min(1.0)
        commitment = self.config.beta * ((flat - quant.detach()).pow(2) * w).sum() / denom
        if self.config.ema:
            codebook_loss = torch.zeros((), device=x.device)
        else:
            codebook_loss = ((flat.detach() - quant).pow(2) * w).sum() / denom
        # Straight-through estimator: forward uses the codeword, backward copies the gradient to x.
        st = flat + (quant - flat).detach()
        probs = torch.bincount(codes[valid], minlength=self.codebook_size).float()
        probs = probs / probs.sum().clamp_min(1.0)
        perplexity = torch.exp(-(probs * torch.log(probs + 1e-10)).sum())
        return QuantizerOutput(
            quantized=st.reshape(b, f, d).transpose(1, 2).to(x.dtype),
            codes=codes.reshape(b, 1, f),
            commitment_loss=commitment,
            codebook_loss=codebook_loss,
            perplexity=perplexity.reshape(1),
        )
