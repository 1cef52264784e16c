"""Multi-scale codes: the superframe layout in which codes of several frame rates travel as one ``[R, F]`` array,
and its conversion to and from one ``[K_l, F_l]`` array per frame rate (``docs/token-format.md``).

A multi-scale model's codebooks each have a *stride*: how many of the finest code frames one of its codes spans.
A superframe is ``S = max(strides)`` finest frames, one code of the coarsest codebook. A codebook of stride ``s``
has ``S / s`` codes per superframe, stored as ``S / s`` consecutive rows (row ``j`` holds its codes at its own
frames ``j, j + S/s, j + 2 S/s, ...``), codebook after codebook in the order they quantize. A prefix of the
codebooks is then a prefix of the rows and every row carries the same bits per second, so ``-k`` counts rows
and the bitrate of ``R`` rows is that of ``R`` single-rate codebooks at the superframe rate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class CodeLayout:
    """The layout of multi-scale codes with codebook ``strides`` (in quantization order)."""

    strides: tuple[int, ...]

    def __post_init__(self) -> None:
        s = self.strides
        if not isinstance(s, tuple) or not s or not all(isinstance(v, int) and not isinstance(v, bool) for v in s):
            raise ValueError(f"codebook strides must be a non-empty tuple of integers, got {s!r}")
        if min(s) < 1 or any(max(s) % v for v in s):
            raise ValueError(f"codebook strides must be positive and divide the largest, got {list(s)}")

    @property
    def superframe(self) -> int:
        """Finest frames per code frame (the coarsest codebook's stride)."""
        return max(self.strides)

    def rows(self, k: int) -> int:
        """Rows that codebook ``k`` fills."""
        return self.superframe // self.strides[k]

    @property
    def row_counts(self) -> tuple[int, ...]:
        """Rows held by the first 1, 2, ... codebooks: the row counts codes can have."""
        out, total = [], 0
        for k in range(len(self.strides)):
            total += self.rows(k)
            out.append(total)
        return tuple(out)

    @property
    def rates(self) -> tuple[int, ...]:
        """The distinct strides, coarsest first: one level of codes each."""
        return tuple(sorted(set(self.strides), reverse=True))

    def level_shapes(self, n_rows: int, n_frames: int) -> list[tuple[int, int]]:
        """``[K_l, F_l]`` of each level for ``n_rows`` rows of ``n_frames`` superframes (``K_l`` may be 0)."""
        self.check_rows(n_rows)
        counts = dict.fromkeys(self.rates, 0)
        row = 0
        for k, s in enumerate(self.strides):
            if row >= n_rows:
                break
            counts[s] += 1
            row += self.rows(k)
        return [(counts[s], n_frames * self.superframe // s) for s in self.rates]

    def check_rows(self, n_rows: int) -> None:
        if n_rows not in self.row_counts:
            raise ValueError(
                f"{n_rows} rows are not a whole number of codebooks of strides {list(self.strides)} "
                f"(possible: {', '.join(map(str, self.row_counts))})"
            )

    def split(self, codes: npt.NDArray[np.int64]) -> list[npt.NDArray[np.int64]]:
        """Superframe codes ``[R, F]`` -> one ``[K_l, F * S / s_l]`` array per level, coarsest first, each
        level's codebooks in quantization order."""
        n_rows, n_frames = codes.shape
        self.check_rows(n_rows)
        per_rate: dict[int, list[npt.NDArray[np.int64]]] = {s: [] for s in self.rates}
        row = 0
        for k, s in enumerate(self.strides):
            if row >= n_rows:
                break
            r = self.rows(k)
            per_rate[s].append(codes[row : row + r].T.reshape(1, -1))
            row += r
        return [
            np.concatenate(v) if v else np.zeros((0, n_frames * self.superframe // s), dtype=codes.dtype)
            for s, v in per_rate.items()
        ]

    def join(self, levels: list[npt.NDArray[np.int64]]) -> npt.NDArray[np.int64]:
        """Inverse of :meth:`split`: per-level ``[K_l, F_l]`` -> superframe codes ``[R, F]``.

        Raises:
            ValueError: the levels do not match this layout (count, frame counts, or not a prefix of codebooks).
        """
        if len(levels) != len(self.rates):
            raise ValueError(f"codes of strides {list(self.strides)} have {len(self.rates)} levels, got {len(levels)}")
        spans = {lv.shape[1] * s for lv, s in zip(levels, self.rates, strict=True)}
        if len(spans) != 1 or next(iter(spans)) % self.superframe:
            raise ValueError("the levels' frame counts do not span the same whole number of superframes")
        taken = dict.fromkeys(self.rates, 0)
        rows = []
        for k, s in enumerate(self.strides):
            lv = levels[self.rates.index(s)]
            if taken[s] >= lv.shape[0]:
                break
            rows.append(lv[taken[s]].reshape(-1, self.rows(k)).T)
            taken[s] += 1
        if sum(taken.values()) != sum(lv.shape[0] for lv in levels) or not rows:
            raise ValueError("the levels' codebook counts are not a prefix of the model's codebooks")
        return np.concatenate(rows)
