"""Release a trained codec (and its separately trained vocoder) as one model directory."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from vqaudio.atomic import write_atomic
from vqaudio.audio import load_audio
from vqaudio.card import ModelCard
from vqaudio.config import from_dict
from vqaudio.data.manifest import read_manifest
from vqaudio.errors import ModelError, VQAudioError
from vqaudio.models.base import CodecModel
from vqaudio.models.builders import ModelConfig, build_codec, build_vocoder
from vqaudio.models.conditional import ConditionalVQVAE
from vqaudio.models.io import WEIGHTS_FILE, LoadedModel, load_model, save_model, sha256_file
from vqaudio.models.spectral import SpectralVQVAE, load_state_except_postfilter
from vqaudio.training.checkpoint import CHECKPOINT, load_checkpoint
from vqaudio.training.config import TrainConfig


def load_run_or_model(path: str | Path) -> LoadedModel:
    """A model directory, or a training run directory, whose latest checkpoint is then used.

    The second form lets a run still in progress be exported and measured; the card records its step.
    """
    path = Path(path)
    if (path / WEIGHTS_FILE).is_file() or not (path / CHECKPOINT).is_file():
        return load_model(path)
    state, config = _run_checkpoint(path)
    if config.task == "prior":
        raise ModelError(f"{path}: a token prior run; `vqaudio export-prior` puts it beside its codec")
    codec = build_codec(config.model) if config.task == "codec" else None
    vocoder = build_vocoder(config.model) if config.task == "vocoder" else None
    module = codec if codec is not None else vocoder
    assert module is not None  # TrainConfig guarantees a vocoder section for the vocoder task
    _load_run_weights(module, state, path)
    return LoadedModel(
        name=config.name,
        config=config.model,
        codec=codec.eval() if codec is not None else None,
        vocoder=vocoder.eval() if vocoder is not None else None,
        checksum=sha256_file(path / CHECKPOINT),
        card=ModelCard(training=_run_record(state)),
        path=path,
    )


def _run_checkpoint(run: Path) -> tuple[dict[str, Any], TrainConfig]:
    """A run folder's latest checkpoint and the training config stored in it."""
    state = load_checkpoint(run / CHECKPOINT)
    try:
        return state, from_dict(TrainConfig, json.loads(state["config"]), str(run / CHECKPOINT))
    except (KeyError, TypeError, json.JSONDecodeError):
        raise ModelError(f"{run / CHECKPOINT}: not a vqaudio training checkpoint") from None


def _load_run_weights(module: torch.nn.Module, state: dict[str, Any], run: Path) -> None:
    try:
        module.load_state_dict(state["model"])
    except RuntimeError:
        raise ModelError(f"{run / CHECKPOINT}: its weights do not fit the model its config describes") from None


def _run_record(state: dict[str, Any]) -> dict[str, Any]:
    """The training record a model taken from a run's checkpoint carries: its step and its config."""
    return {"steps": int(state["step"]), "config": json.loads(state["config"])}


# A file's first minute is plenty for a per-band mean, and keeps one long recording from dominating it.
POSTFILTER_MAX_SECONDS = 60.0


@torch.inference_mode()
def fit_postfilter(codec: SpectralVQVAE, files: Sequence[str | Path], n_codebooks: int | None = None) -> torch.Tensor:
    """The post-filter's centre: the mean decoded log-mel per band ``[n_mels]`` over ``files``.

    Decoded at ``n_codebooks`` (default: all), every frame counted alike, silences included: the filter
    lifts what stands above a band's usual level in the speech the codec was trained on, and deepens what
    lies below it.
    """
    if not files:
        raise VQAudioError("the post-filter needs at least one training file to fit its centre")
    total = torch.zeros(codec.n_mels, dtype=torch.float64)
    frames = 0
    for f in files:
        audio = load_audio(f, sample_rate=codec.sample_rate, mono=True).samples
        audio = audio[:, : int(POSTFILTER_MAX_SECONDS * codec.sample_rate)]
        n_mel = codec.mel_config.stft.num_frames(audio.shape[-1])
        decoded = codec.decode(codec.encode(audio[None], n_codebooks=n_codebooks))[0, :, :n_mel]
        total += decoded.double().sum(dim=-1)
        frames += n_mel
    return (total / frames).float()


# The default voice: the mean embedding of up to this many training files, from their first 10 seconds.
DEFAULT_SPEAKER_FILES = 200
DEFAULT_SPEAKER_SECONDS = 10.0


@torch.inference_mode()
def fit_default_speaker(codec: ConditionalVQVAE, files: Sequence[str | Path]) -> torch.Tensor:
    """The speaker embedding decoding uses when given no reference: the normalised mean embedding ``[S]`` of
    ``files`` (every ``len // DEFAULT_SPEAKER_FILES``-th one, so many speakers count, not the first few)."""
    if not files:
        raise VQAudioError("the default speaker needs at least one training file")
    step = max(1, len(files) // DEFAULT_SPEAKER_FILES)
    total = torch.zeros(codec.speaker_config.dim, dtype=torch.float64)
    for f in list(files)[::step]:
        audio = load_audio(f, sample_rate=codec.sample_rate, mono=True).samples
        audio = audio[:, : int(DEFAULT_SPEAKER_SECONDS * codec.sample_rate)]
        total += codec.speaker_embedding(audio[None])[0].double()
    return torch.nn.functional.normalize(total, dim=0).float()


def with_postfilter(
    codec: CodecModel,
    config: ModelConfig,
    strength: float,
    offset: float,
    files: Sequence[str | Path],
    n_codebooks: int,
    below: float = 0.0,
) -> tuple[SpectralVQVAE, ModelConfig]:
    """A copy of spectral ``codec`` (and its model ``config``) with a post-filter of ``strength`` (and
    ``below``) fitted on ``files``; ``strength`` 0 removes the post-filter."""
    if not isinstance(codec, SpectralVQVAE):
        raise ModelError("only spectral codecs have a post-filter")
    net = dataclasses.replace(
        config.spectral, postfilter=strength, postfilter_offset=offset, postfilter_below=below if strength else 0.0
    )
    config = dataclasses.replace(config, spectral=net)
    new = build_codec(config)
    assert isinstance(new, SpectralVQVAE)
    load_state_except_postfilter(new, codec.state_dict())
    new.eval()
    if new.decoder.postfilter is not None:
        new.decoder.postfilter.centre.copy_(fit_postfilter(new, files, n_codebooks))
    return new, config


def export_release(
    codec_dir: str | Path,
    output: str | Path,
    name: str,
    *,
    vocoder_dir: str | Path | None = None,
    card: ModelCard | dict[str, Any] | None = None,
    half: bool = True,
    postfilter: float | None = None,
    postfilter_offset: float = 1.0,
    postfilter_data: str | Path | None = None,
    postfilter_below: float = 0.0,
    consistency_iters: int | None = None,
) -> Path:
    """Write ``output/config.json`` + ``output/model.safetensors`` + ``output/README.md`` (the model card).

    ``codec_dir`` and ``vocoder_dir`` are model directories or training run directories (latest checkpoint).
    The vocoder must have been trained on the same mel features the codec decodes to.

    ``postfilter`` (a strength in [0, 1]) sets the spectral post-filter and fits its centre on the files of
    the ``postfilter_data`` manifest, decoded at the card's ``default_codebooks``; 0 removes it; ``None``
    keeps whatever the codec has. ``postfilter_offset`` and ``postfilter_below`` shape it (SpectralPostFilter).

    ``consistency_iters`` sets how many consistency projections the bundled vocoder runs (``None`` keeps the
    count it was trained with). They have no weights, so a vocoder trained through a few can run more.
    """
    codec = load_run_or_model(codec_dir)
    if codec.codec is None:
        raise ModelError(f"{codec_dir}: holds no codec")
    config = codec.config
    codec_module: CodecModel = codec.codec
    card = card if isinstance(card, ModelCard) else ModelCard.from_dict(card or {}, "the card")
    if postfilter is None and (postfilter_data is not None or postfilter_offset != 1.0 or postfilter_below):
        raise VQAudioError(
            "--postfilter-data, --postfilter-offset and --postfilter-below need --postfilter (the strength to fit)"
        )
    if postfilter is not None and not 0.0 <= postfilter <= 1.0:
        raise VQAudioError(f"--postfilter must be between 0 and 1, got {postfilter}")
    if not 0.0 <= postfilter_below <= 1.0:
        raise VQAudioError(f"--postfilter-below must be between 0 and 1, got {postfilter_below}")
    if not math.isfinite(postfilter_offset):
        raise VQAudioError(f"--postfilter-offset must be a finite number, got {postfilter_offset}")
    if postfilter == 0 and (postfilter_offset != 1.0 or postfilter_below):
        raise VQAudioError(
            "--postfilter 0 removes the post-filter; --postfilter-offset and --postfilter-below need one"
        )
    if consistency_iters is not None and vocoder_dir is None:
        raise VQAudioError("--consistency-iters needs --vocoder")
    if consistency_iters is not None and (isinstance(consistency_iters, bool) or not 0 <= consistency_iters <= 64):
        raise VQAudioError(f"--consistency-iters must be between 0 and 64, got {consistency_iters}")
    if postfilter is not None:
        files: list[Path] = []
        if postfilter:
            if postfilter_data is None:
                raise VQAudioError("--postfilter needs --postfilter-data (a manifest of training audio)")
            files = [e.path for e in read_manifest(postfilter_data)]
        k = card.default_codebooks
        n = k if k is not None and k <= codec_module.num_codebooks else codec_module.num_codebooks
        codec_module, config = with_postfilter(
            codec_module, config, postfilter, postfilter_offset, files, n, below=postfilter_below
        )
    vocoder = None
    if not card.codec_training:
        card = dataclasses.replace(card, codec_training=codec.card.record("codec"))
    if vocoder_dir is not None:
        voc = load_run_or_model(vocoder_dir)
        if voc.vocoder is None:
            raise ModelError(f"{vocoder_dir}: holds no vocoder")
        if voc.config.mel != config.mel:
            raise ModelError(f"{vocoder_dir}: vocoder was trained on other mel features than the codec decodes")
        voc_config = voc.config.vocoder
        assert voc_config is not None  # a loaded vocoder always has its config
        if consistency_iters is not None:
            voc_config = dataclasses.replace(voc_config, consistency_iters=consistency_iters)
        config = dataclasses.replace(config, vocoder=voc_config)
        vocoder = voc.vocoder
        if not card.vocoder_training:
            card = dataclasses.replace(card, vocoder_training=voc.card.record("vocoder"))
    path = save_model(output, name, config, codec_module, vocoder, card=card, half=half)
    (Path(output) / "README.md").write_text(card.markdown(name))
    return path


def export_prior(run_dir: str | Path, model_dir: str | Path, *, overwrite: bool = False) -> Path:
    """Put the token prior of a prior run (its finished ``model`` or its latest checkpoint) into the folder of
    the codec it models, as ``prior.json`` + ``prior.safetensors``; returns the JSON's path.

    The codec in ``model_dir`` must be the one the run trained on (same name and codes checksum)."""
    from vqaudio.models.base import CODES_VERSION
    from vqaudio.prior.io import PRIOR_CONFIG, has_prior, load_prior, save_prior
    from vqaudio.prior.model import TokenPrior
    from vqaudio.tokenfile import code_search_id
    from vqaudio.tokenizer import load

    run, target = Path(run_dir), Path(model_dir)
    if has_prior(target) and not overwrite:
        raise VQAudioError(f"{target / PRIOR_CONFIG} exists; pass --force to replace it")
    tok = load(target)
    if has_prior(run / "model"):
        model, card = load_prior(run / "model")
        name, meta = card.name, card.card
    else:
        state, config = _run_checkpoint(run)
        if config.task != "prior":
            raise VQAudioError(f"{run}: a {config.task} run, not a prior run")
        model = TokenPrior(config.prior)
        _load_run_weights(model, state, run)
        name, meta = config.name, {"training": _run_record(state)}
    path = save_prior(
        target,
        model.eval(),
        name=name,
        codec=tok.name,
        codes_checksum=tok.codes_checksum,
        code_search=code_search_id(tok.default_beam, CODES_VERSION),
        card=meta,
    )
    _card_prior_section(target / "README.md", name, model, meta)
    return path


PRIOR_SECTION = "## Token prior"


def _card_prior_section(readme: Path, name: str, model: Any, meta: dict[str, Any]) -> None:
    """Add (or replace) the model card's section on the prior, which `vqaudio generate`/`compress` use."""
    if not readme.is_file():
        return
    c = model.config
    steps = meta.get("training", {}).get("steps", "unknown")
    context = (
        f"a causal dilated convolution stack (width {c.dim}, receptive field {c.receptive_field} frames)"
        if c.context == "conv"
        else f"a {c.gru_layers}-layer GRU over the frames so far (width {c.dim})"
    )
    section = (
        f"{PRIOR_SECTION}\n\n`prior.json` + `prior.safetensors` ({name}): an autoregressive prior over the first "
        f"{c.num_codebooks} codebooks' codes as tokenize makes them by default, {context} "
        "with a depth-wise head per codebook, "
        f"{sum(p.numel() for p in model.parameters()) / 1e6:.1f} M parameters stored in float16, trained {steps} "
        "steps on the codes of the training audio above (recipes/librispeech/conf/prior16k.toml). It is what "
        "`vqaudio generate` samples from and `vqaudio compress` codes with (docs/prior.md; measured in "
        "docs/results.md).\n"
    )
    text = readme.read_text()
    if PRIOR_SECTION in text:
        head, _, rest = text.partition(PRIOR_SECTION)
        following = rest.find("\n## ")
        text = head + section + (rest[following + 1 :] if following >= 0 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    write_atomic(readme, text.encode())
