"""Validation during training: losses on whole held-out files, in eval mode."""

from __future__ import annotations

import torch

from vqaudio.audio import load_audio
from vqaudio.data.manifest import collect_entries
from vqaudio.losses import masked_l1
from vqaudio.models.base import CodecModel
from vqaudio.models.conditional import ConditionalVQVAE
from vqaudio.spectral import log_mel
from vqaudio.training.config import TrainConfig
from vqaudio.training.tasks import PriorTask, Task, VocoderTask


@torch.inference_mode()
def validate(task: Task, config: TrainConfig) -> dict[str, float]:
    """Mean log-mel L1 of the model's output on up to ``max_valid_files`` validation files.

    For a prior it is the negative log-likelihood of each file's codes (whole-file codes, as tokenize makes
    them) in bits per token, per codebook (``bits@k``).

    For codecs it is reported at every bitrate prefix (``mel_l1@K``), which shows whether quantizer dropout
    keeps the low bitrates useful. For vocoders the phase distance of :class:`~vqaudio.losses.PhaseLoss` is
    reported too (``phase``), whether or not it is trained on: it shows what the magnitude losses leave.
    """
    entries = collect_entries(config.data.valid, None)[: config.data.max_valid_files]
    model = task.model
    was_training = model.training
    model.eval()
    sr = config.model.sample_rate
    totals: dict[str, float] = {}
    for e in entries:
        audio = load_audio(e.path, sample_rate=sr, mono=True).samples[None]  # [1, 1, T]
        if isinstance(task, PriorTask):
            out = model(task.codes(audio)[0])
            for k, b in enumerate(out.bits):
                totals[f"bits@{k}"] = totals.get(f"bits@{k}", 0.0) + float(b)
            continue
        target = log_mel(audio[:, 0], config.model.mel)
        if isinstance(model, CodecModel):
            for k in model.codebook_counts:
                if isinstance(model, ConditionalVQVAE):
                    # Decoded in the file's own voice, told by its own embedding.
                    own = model.speaker_embedding(audio)
                    rec = model.decode(model.encode(audio, n_codebooks=k), speaker=own)[..., : target.shape[-1]]
                elif model.family != "waveform":
                    rec = model.decode(model.encode(audio, n_codebooks=k))[..., : target.shape[-1]]
                else:
                    wav = model.decode(model.encode(audio, n_codebooks=k))[:, 0, : audio.shape[-1]]
                    rec = log_mel(wav, config.model.mel)
                totals[f"mel_l1@{k}"] = totals.get(f"mel_l1@{k}", 0.0) + float(masked_l1(rec, target))
        else:
            wav = model(target)[:, : audio.shape[-1]]
            totals["mel_l1"] = totals.get("mel_l1", 0.0) + float(masked_l1(log_mel(wav, config.model.mel), target))
            if isinstance(task, VocoderTask):
                totals["phase"] = totals.get("phase", 0.0) + float(task.phase_loss(wav, audio[:, 0]))
    model.train(was_training)
    return {k: v / max(1, len(entries)) for k, v in totals.items()}
