"""Sampling codes from the token prior: unconditional generation and prompt continuation.

Sampling runs the same integer engine as compression (:class:`~vqaudio.prior.integer.IntegerPrior`) and draws
from its integer frequencies with a seeded numpy generator, so the same seed gives the same codes, and with
them the same audio.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from vqaudio.encoded import Encoded
from vqaudio.errors import VQAudioError
from vqaudio.prior.integer import IntegerPrior, frequencies
from vqaudio.prior.pairing import prior_for
from vqaudio.tokenfile import save_codes
from vqaudio.tokenizer import Tokenizer

# Temperature is applied to the integer logits as a fixed-point factor of 2**-TEMPERATURE_BITS.
TEMPERATURE_BITS = 10


def _draw(freqs: np.ndarray, rng: np.random.Generator) -> int:
    """One symbol with probability ``freqs / freqs.sum()`` from integer frequencies (exact: integer draw)."""
    cum = np.cumsum(freqs)
    return int(np.searchsorted(cum, int(rng.integers(int(cum[-1]))), side="right"))


def sample_codes(
    prior: IntegerPrior,
    num_frames: int,
    *,
    prompt: np.ndarray | None = None,
    temperature: float = 1.0,
    top_k: int | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Codes ``[K, P + num_frames]``: the prompt's ``P`` frames (``[K, P]``, may be None), then ``num_frames``
    sampled ones, each codebook drawn given everything before it.

    ``temperature`` divides the logits (below 1: safer, more repetitive; above 1: more varied); ``top_k``
    keeps only the ``k`` most likely codes of each draw.
    """
    k_total = prior.config.num_codebooks
    if not temperature > 0:
        raise VQAudioError(f"--temperature must be > 0, got {temperature}")
    if top_k is not None and not 1 <= top_k <= prior.config.codebook_size:
        raise VQAudioError(f"--top-k must be between 1 and {prior.config.codebook_size}, got {top_k}")
    if num_frames < 0:
        raise VQAudioError("the number of frames to generate must not be negative")
    if prompt is not None and (prompt.ndim != 2 or prompt.shape[0] != k_total):
        raise VQAudioError(f"the prompt must have {k_total} codebooks, got shape {tuple(prompt.shape)}")
    rng = np.random.default_rng(seed)
    scale = max(1, round((1 << TEMPERATURE_BITS) / temperature))
    head = np.zeros((k_total, 0), dtype=np.int64) if prompt is None else np.asarray(prompt, dtype=np.int64)
    out = np.concatenate([head, np.zeros((k_total, num_frames), dtype=np.int64)], axis=1)
    state = prior.start()
    for f in range(head.shape[1]):
        prior.push(state, out[:, f])
    for f in range(head.shape[1], out.shape[1]):
        frame = out[:, f]
        for k in range(k_total):
            logits = (prior.logits(state, k, frame) * scale) >> TEMPERATURE_BITS
            freqs = frequencies(logits)
            if top_k is not None and top_k < freqs.shape[0]:
                # Keep the top_k largest logits; a stable sort breaks ties by index, the same everywhere.
                keep = np.argsort(-logits, kind="stable")[:top_k]
                masked = np.zeros_like(freqs)
                masked[keep] = freqs[keep]
                freqs = masked
            frame[k] = _draw(freqs, rng)
        prior.push(state, frame)
    return out


def generate_to_files(
    tok: Tokenizer,
    out_dir: str | Path,
    *,
    n: int = 4,
    seconds: float = 5.0,
    temperature: float = 1.0,
    top_k: int | None = None,
    seed: int = 0,
    prompt: str | Path | None = None,
    tokens: bool = False,
    vocoder: str | None = None,
    overwrite: bool = False,
) -> list[Path]:
    """Write ``n`` samples of ``tok``'s prior as ``sample-XX.wav`` (and ``.vqt`` with ``tokens``) in ``out_dir``;
    sample ``i`` is drawn with seed ``seed + i``. With ``prompt``, each sample is the prompt's codes and
    ``seconds`` more. Returns the files written."""
    model, _ = prior_for(tok)
    prior = IntegerPrior(model)
    k = prior.config.num_codebooks
    prompt_codes = None if prompt is None else tok.encode(prompt, n_codebooks=k).codes.numpy()
    frames = max(1, round(seconds * tok.frame_rate))
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise VQAudioError(f"{out} is a file, not a folder")
    names = [out / f"sample-{i:02d}" for i in range(n)]
    targets = [p.with_suffix(s) for p in names for s in ((".wav", ".vqt") if tokens else (".wav",))]
    existing = [p for p in targets if p.exists()]
    if existing and not overwrite:
        raise VQAudioError(f"{existing[0]} exists; pass --force to overwrite it")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise VQAudioError(f"cannot make {out}: {e.strerror or e}") from None
    written: list[Path] = []
    for i, name in enumerate(names):
        codes = sample_codes(prior, frames, prompt=prompt_codes, temperature=temperature, top_k=top_k, seed=seed + i)
        enc = Encoded(
            codes=torch.from_numpy(codes),
            sample_rate=tok.sample_rate,
            frame_rate=tok.frame_rate,
            original_length=codes.shape[1] * tok.model.hop_length,
            original_sample_rate=tok.sample_rate,
            original_channels=1,
            model_id=tok.name,
            model_checksum=tok.checksum,
            codebook_size=tok.codebook_size,
            codes_checksum=tok.codes_checksum,
            codebook_strides=tok.model.codebook_strides,
        )
        tok.decode_to_file(enc, name.with_suffix(".wav"), vocoder=vocoder, overwrite=overwrite)
        written.append(name.with_suffix(".wav"))
        if tokens:
            save_codes(name.with_suffix(".vqt"), codes, enc.header(), fmt="vqt", overwrite=overwrite)
            written.append(name.with_suffix(".vqt"))
    return written
