"""Training data: fixed-length random crops from a set of audio files.

Every item is a pure function of ``(seed, rank, index)``: the crop for batch element ``i`` is drawn from a
generator seeded with those numbers. Resuming at step ``s`` therefore replays exactly the data an
uninterrupted run would have seen, whatever the number of loader workers, and each DDP rank draws from its
own shard of the files.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from vqaudio.data.manifest import ManifestEntry


@dataclass
class Batch:
    """``audio`` ``[B, 1, T]`` (zero-padded crops) and ``lengths`` ``[B]`` (valid samples); for a speaker-conditioned
    codec also ``reference`` ``[B, 1, T_ref]`` (another stretch of each crop's recording) and its lengths, and,
    when a task asks for them, ``speaker`` ``[B]``: each crop's training speaker as an index."""

    audio: torch.Tensor
    lengths: torch.Tensor
    reference: torch.Tensor | None = None
    reference_lengths: torch.Tensor | None = None
    speaker: torch.Tensor | None = None


def _read(entry: ManifestEntry, sample_rate: int) -> np.ndarray:
    from vqaudio.audio import load_audio

    return load_audio(entry.path, sample_rate=sample_rate, mono=True).samples[0].numpy()


class CropDataset(Dataset[tuple[torch.Tensor, ...]]):
    """Random ``segment`` -sample crops, files drawn in proportion to their duration.

    With ``cache=True`` all audio is decoded and resampled once into memory (1 h of 16 kHz audio is ~230 MB);
    otherwise files are read on demand.

    ``speed`` ``(low, high)`` plays each crop at a speed factor drawn uniformly from that range (speed
    perturbation, as in Ko et al. 2015): a factor of 1.1 reads 10% more audio and resamples it into the
    crop, raising pitch and formants by 10%. With little speech from few speakers this shows the model voices
    it has not heard, the way unseen speakers will sound; ``(1, 1)`` leaves the audio as it is. A factor
    below 1 leaves the band above ``factor * sample_rate / 2`` empty: resampling cannot restore it.

    ``reference`` > 0 adds to each item a ``reference``-sample crop of the same recording (one speaker), away
    from the main crop where the file is long enough, played at the same speed: the clip a speaker-conditioned
    decoder learns the voice from, which must not hold the very audio it reconstructs.

    ``speakers`` (with ``reference``) maps each entry's speaker to an index added to every item: the labels a
    speaker adversary learns from. It is built from all the entries, before they are sharded across ranks.
    """

    def __init__(
        self,
        entries: Sequence[ManifestEntry],
        sample_rate: int,
        segment: int,
        *,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        cache: bool = True,
        speed: tuple[float, float] = (1.0, 1.0),
        reference: int = 0,
        speakers: dict[str, int] | None = None,
    ) -> None:
        if not entries:
            raise ValueError("no training files")
        if not 0 < speed[0] <= speed[1]:
            raise ValueError(f"speed range must satisfy 0 < low <= high, got {speed}")
        # Shard files across ranks when there are enough of them; otherwise every rank sees all files.
        shard = list(entries[rank::world_size]) if len(entries) >= 2 * world_size else list(entries)
        self.entries = shard
        self.sample_rate = sample_rate
        self.segment = segment
        self.seed = seed
        self.rank = rank
        self.speed = speed
        self.reference = reference
        if speakers is not None and (not reference or any(e.speaker not in speakers for e in shard)):
            raise ValueError("speaker labels need reference crops and an index for every entry's speaker")
        self.speakers = speakers
        weights = np.array([max(e.duration, 1e-3) for e in shard])
        self.probs = weights / weights.sum()
        self.cache = [_read(e, sample_rate) for e in shard] if cache else None

    def __len__(self) -> int:  # an "infinite" dataset; the sampler decides how many items are drawn
        return 2**62

    def __getitem__(self, index: int) -> tuple[torch.Tensor, ...]:
        rng = np.random.default_rng([self.seed, self.rank, index])
        i = int(rng.choice(len(self.entries), p=self.probs))
        audio = self.cache[i] if self.cache is not None else _read(self.entries[i], self.sample_rate)
        low, high = self.speed
        factor = float(rng.uniform(low, high)) if high > low else low
        crop, start = self._crop(audio, self.segment, factor, rng)
        out, n = self._finish(crop, self.segment, factor, rng)
        if not self.reference:
            return out, torch.tensor(n)
        # Another stretch of the same recording: before or after the main crop when there is room.
        need = self._need(self.reference, factor)
        main_end = start + self._need(self.segment, factor)
        room = [(0, start - need), (main_end, audio.shape[0] - need)]
        spans = [(a, b) for a, b in room if b >= a]
        if spans:
            a, b = spans[int(rng.integers(len(spans)))]
            ref_start = int(rng.integers(a, b + 1))
            ref_crop = audio[ref_start : ref_start + need]
        else:
            ref_crop, _ = self._crop(audio, self.reference, factor, rng)
        ref, ref_n = self._finish(ref_crop, self.reference, factor, rng)
        if self.speakers is None:
            return out, torch.tensor(n), ref, torch.tensor(ref_n)
        return out, torch.tensor(n), ref, torch.tensor(ref_n), torch.tensor(self.speakers[self.entries[i].speaker])

    @staticmethod
    def _need(segment: int, factor: float) -> int:
        """Source samples that fill ``segment`` output samples at speed ``factor``."""
        return segment if factor == 1.0 else int(np.ceil(segment * factor)) + 1

    def _crop(self, audio: np.ndarray, segment: int, factor: float, rng: np.random.Generator) -> tuple[np.ndarray, int]:
        need = self._need(segment, factor)
        n = audio.shape[0]
        if n > need:
            start = int(rng.integers(0, n - need + 1))
            return audio[start : start + need], start
        return audio, 0

    def _finish(
        self, crop: np.ndarray, segment: int, factor: float, rng: np.random.Generator
    ) -> tuple[torch.Tensor, int]:
        """Play the crop at ``factor``, zero-pad it to ``segment`` and give it a random level."""
        if factor != 1.0:
            from vqaudio.audio import resample

            # Resampling from sr * factor to sr plays the crop factor times faster.
            sr = self.sample_rate
            crop = resample(torch.from_numpy(crop)[None], sr * factor, sr)[0].numpy()[:segment]
        out = np.zeros(segment, dtype=np.float32)
        out[: crop.shape[0]] = crop
        # Random gain so the model sees a range of levels, as users' files will have.
        peak = float(np.abs(out).max())
        if peak > 0:
            out *= float(rng.uniform(0.3, 0.99)) / peak
        return torch.from_numpy(out), int(crop.shape[0])


class StepSampler(Sampler[int]):
    """Yields item indices ``start, start + 1, ...`` for ``num_items`` items: resumable by construction."""

    def __init__(self, start: int, num_items: int) -> None:
        self.start = start
        self.num_items = num_items

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.start, self.start + self.num_items))

    def __len__(self) -> int:
        return self.num_items


def collate(items: list[tuple[torch.Tensor, ...]]) -> Batch:
    audio = torch.stack([item[0] for item in items])[:, None]
    lengths = torch.stack([item[1] for item in items])
    if len(items[0]) == 2:
        return Batch(audio=audio, lengths=lengths)
    reference = torch.stack([item[2] for item in items])[:, None]
    speaker = torch.stack([item[4] for item in items]) if len(items[0]) == 5 else None
    return Batch(audio, lengths, reference, torch.stack([item[3] for item in items]), speaker)
