"""A loaded model's back ends (log-mel to audio) by name: which one is the default and what arithmetic each runs in."""

from __future__ import annotations

import torch

from vqaudio.errors import VQAudioError
from vqaudio.models.builders import BACK_ENDS
from vqaudio.precision import autocast
from vqaudio.vocoders.base import Vocoder


class BackEnds:
    """The back ends :func:`vqaudio.models.builders.build_back_ends` made for a model, with the model card's
    default among them. Empty for a waveform model, which decodes audio directly."""

    def __init__(self, found: dict[str, Vocoder], *, default: str | None, decode_dtype: torch.dtype, model: str):
        self._found, self._decode_dtype, self._model = found, decode_dtype, model
        self.names = tuple(v for v in BACK_ENDS if v in found)
        # The card's choice (made on quality, then speed) if this model has it, else the first one shipped.
        self.default = default if default in found else (self.names[0] if self.names else None)

    def get(self, name: str | None) -> Vocoder | None:
        """Back end ``name`` (``None``: the default); ``None`` for a model without back ends."""
        if not self._found:
            if name is not None:
                raise VQAudioError(f"{self._model} decodes audio directly; --vocoder does not apply")
            return None
        name = name or self.default
        if name not in self._found:
            raise VQAudioError(
                f"vocoder {name!r} is not available for {self._model} (available: {', '.join(self.names)})"
            )
        return self._found[name]

    def require(self, name: str | None) -> Vocoder:
        """Like :meth:`get`, but a model without back ends is an error."""
        found = self.get(name)
        if found is None:
            raise VQAudioError(f"{self._model} decodes audio directly; it has no vocoder")
        return found

    def dtype(self, vocoder: Vocoder) -> torch.dtype:
        """The decode precision, except float32 for back ends that need it (Griffin-Lim drifts in bfloat16)."""
        return self._decode_dtype if vocoder.low_precision_ok else torch.float32

    @torch.inference_mode()
    def vocode(self, log_mel: torch.Tensor, name: str | None = None) -> torch.Tensor:
        """Log-mel ``[B, n_mels, F]`` (or ``[n_mels, F]``) -> audio ``[B, F * hop]`` (or ``[F * hop]``)."""
        voc = self.require(name)
        n_mels = voc.mel_config.n_mels
        if log_mel.dim() not in (2, 3) or log_mel.shape[-2] != n_mels or log_mel.shape[-1] == 0:
            raise VQAudioError(f"expected log-mel [B, {n_mels}, F] with F > 0, got shape {tuple(log_mel.shape)}")
        if not torch.isfinite(log_mel).all():
            raise VQAudioError("the log-mel holds NaN or infinite values")
        batched = log_mel if log_mel.dim() == 3 else log_mel[None]
        with autocast(self.dtype(voc)):
            audio = voc(batched.float()).float()
        return audio if log_mel.dim() == 3 else audio[0]
