"""The commands that describe: ``info`` (a token file or a model) and ``models`` (the shipped ones).

Registered on :data:`vqaudio.cli.app` by ``commands.register``, after the codec commands.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from vqaudio.cli.common import CommandGroup, boundary
from vqaudio.errors import VQAudioError

commands = CommandGroup()


def _describe_model(tok: Any) -> dict[str, Any]:
    card = tok.loaded.card
    return {
        "name": tok.name,
        "family": tok.model.family,
        "sample_rate": tok.sample_rate,
        "frame_rate": tok.frame_rate,
        "num_codebooks": tok.num_codebooks,
        "codebook_size": tok.codebook_size,
        "bitrates_kbps": [round(tok.bitrate(k) / 1000, 3) for k in tok.model.codebook_counts],
        **({"codebook_counts": list(tok.model.codebook_counts)} if tok.model.codebook_strides else {}),
        **({"codebook_strides": list(tok.model.codebook_strides)} if tok.model.codebook_strides else {}),
        "default_codebooks": tok.default_codebooks,
        "default_vocoder": tok.default_vocoder,
        "default_beam": tok.default_beam,
        "vocoders": list(tok.vocoders),
        "postfilter": tok.model.net_config.postfilter if tok.model.has_postfilter else 0.0,
        "postfilter_offset": tok.model.net_config.postfilter_offset if tok.model.has_postfilter else 0.0,
        "postfilter_below": tok.model.net_config.postfilter_below if tok.model.has_postfilter else 0.0,
        "checksum": tok.checksum[:16],
        "codes_checksum": tok.codes_checksum[:16],
        "size_mb": round(sum(f.stat().st_size for f in tok.loaded.path.iterdir()) / 1e6, 2)
        if tok.loaded.path
        else None,
        "training_data": card.training_data or "unknown",
    }


@commands.command()
@boundary
def info(
    target: Annotated[str, typer.Argument(help="A token file, a model directory or a shipped model name.")],
) -> None:
    """Describe a token file or a model."""
    from vqaudio.tokenfile import bitrate, load_codes
    from vqaudio.tokenizer import load, shipped_models

    p = Path(target)
    if p.is_file():
        tf = load_codes(p)
        h = tf.header
        d = {
            "file": str(p),
            **h.to_json(),
            "duration_s": round(h.original_length / h.sample_rate, 3) if h.sample_rate else None,
            "bitrate_kbps": round(bitrate(h.frame_rate, h.num_codebooks, h.codebook_size) / 1000, 3),
        }
    elif p.is_dir() or target in shipped_models():
        d = _describe_model(load(target))
    else:
        raise VQAudioError(f"{target}: no such file, model directory or shipped model")
    for key, value in d.items():
        typer.echo(f"{key}: {value}")


@commands.command()
@boundary
def models(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the shipped models with their rates, bitrates, size and training data."""
    from vqaudio.tokenizer import load, shipped_models

    rows = [_describe_model(load(path)) for path in shipped_models().values()]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        typer.echo("no shipped models installed")
    for r in rows:
        rates = ", ".join(f"{b:g}" for b in r["bitrates_kbps"])
        typer.echo(
            f"{r['name']}: {r['family']}, {r['sample_rate']} Hz, {r['frame_rate']:g} frames/s, "
            f"{r['num_codebooks']} x {r['codebook_size']} codes, bitrates {rates} kbps "
            f"(default {r['default_codebooks']} codebooks), vocoders {', '.join(r['vocoders']) or '-'}, "
            f"{r['size_mb']} MB; trained on {r['training_data']}"
        )
