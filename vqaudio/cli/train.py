"""The training commands: ``train``, ``prepare``, ``export``, ``export-prior`` and ``plot-log``.

Registered on :data:`vqaudio.cli.app` by ``commands.register``; thin commands over :mod:`vqaudio.training` and
:mod:`vqaudio.data.manifest`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from vqaudio.cli.common import CommandGroup, ForceOpt, boundary, refuse_existing
from vqaudio.errors import VQAudioError

commands = CommandGroup()


@commands.command()
@boundary
def train(
    config: Annotated[Path, typer.Option("--config", "-c", help="Training config (TOML).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run directory (checkpoints, logs, model).")],
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the run directory's checkpoint.")] = False,
    steps: Annotated[int | None, typer.Option("--steps", min=1, help="Override the number of steps.")] = None,
    threads: Annotated[int | None, typer.Option("--threads", min=1, help="Torch threads per process.")] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")] = True,
    settings: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a config value, e.g. --set 'data.train=[\"data/train.tsv\"]'."),
    ] = None,
) -> None:
    """Train a codec, a vocoder or a token prior from a config; works under torchrun for DDP."""
    from vqaudio.training.config import load_config, parse_override
    from vqaudio.training.trainer import Trainer

    try:
        overrides: dict[str, object] = dict(parse_override(s) for s in settings or [])
        if steps is not None:
            overrides["steps"] = steps
        if threads is not None:
            overrides["threads"] = threads
        cfg = load_config(config, overrides)
        path = Trainer(cfg, out, resume=resume, progress=progress).fit()
        typer.echo(f"model written to {path}")
    finally:
        # Under torchrun: leave the process group before exit, or gloo's threads can abort the process at
        # interpreter shutdown ("terminate called without an active exception") after a finished run.
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()


@commands.command()
@boundary
def prepare(
    inputs: Annotated[list[Path], typer.Argument(help="Folders (or files) of audio; a LibriSpeech root works.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Manifest to write (.tsv).")],
    exclude_list: Annotated[
        Path | None, typer.Option("--exclude-list", help="Paths to leave out (e.g. dev.list).")
    ] = None,
    min_sample_rate: Annotated[int, typer.Option("--min-sample-rate", min=0, help="Skip files below this rate.")] = 0,
    force: ForceOpt = False,
) -> None:
    """Write a manifest (path, duration, speaker, sample_rate) of the audio below the inputs."""
    from vqaudio.data.manifest import read_exclude_list, scan_audio, write_manifest

    refuse_existing(output, force)
    entries = scan_audio(inputs, exclude=read_exclude_list(exclude_list), min_sample_rate=min_sample_rate)
    if not entries:
        raise VQAudioError("no readable audio found")
    write_manifest(entries, output)
    hours = sum(e.duration for e in entries) / 3600
    typer.echo(f"{len(entries)} files, {hours:.2f} h, {len({e.speaker for e in entries})} speakers -> {output}")


@commands.command()
@boundary
def export(
    codec: Annotated[
        Path,
        typer.Option("--codec", help="Codec model directory, or a training run directory (its latest checkpoint)."),
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Release directory to write.")],
    name: Annotated[str, typer.Option("--name", help="Model name.")],
    vocoder: Annotated[
        Path | None, typer.Option("--vocoder", help="Vocoder model or training run directory to bundle.")
    ] = None,
    card: Annotated[Path | None, typer.Option("--card", help="JSON file with model-card fields.")] = None,
    half: Annotated[bool, typer.Option("--half/--full", help="Store weights as float16.")] = True,
    postfilter: Annotated[
        float | None,
        typer.Option(
            "--postfilter",
            help="Spectral post-filter strength (0 removes it); its centre is fitted on --postfilter-data. "
            "Default: keep the codec's.",
        ),
    ] = None,
    postfilter_offset: Annotated[
        float, typer.Option("--postfilter-offset", help="Log-mel above the band's centre left as is.")
    ] = 1.0,
    postfilter_data: Annotated[
        Path | None, typer.Option("--postfilter-data", help="Manifest (.tsv) of training audio to fit it on.")
    ] = None,
    postfilter_below: Annotated[
        float,
        typer.Option("--postfilter-below", help="How much it deepens log-mel below the centre (0 to 1)."),
    ] = 0.0,
    consistency_iters: Annotated[
        int | None,
        typer.Option(
            "--consistency-iters",
            help="Consistency projections the learned vocoder runs (default: as trained; more cost time).",
        ),
    ] = None,
    force: ForceOpt = False,
) -> None:
    """Bundle a trained codec (and vocoder) into a release directory with a model card."""
    from vqaudio.training.export import export_release

    refuse_existing(output / "config.json", force)
    try:
        extra = json.loads(card.read_text()) if card else {}
    except (json.JSONDecodeError, OSError) as e:
        raise VQAudioError(f"{card}: {e}") from None
    path = export_release(
        codec,
        output,
        name,
        vocoder_dir=vocoder,
        card=extra,
        half=half,
        postfilter=postfilter,
        postfilter_offset=postfilter_offset,
        postfilter_data=postfilter_data,
        postfilter_below=postfilter_below,
        consistency_iters=consistency_iters,
    )
    typer.echo(f"released {name} -> {path}")


@commands.command("export-prior")
@boundary
def export_prior_cmd(
    run: Annotated[Path, typer.Argument(help="A prior training run (its model, else its latest checkpoint).")],
    into: Annotated[Path, typer.Option("--into", help="The folder of the codec it models (prior.* go there).")],
    force: ForceOpt = False,
) -> None:
    """Put a trained token prior beside its codec (prior.json + prior.safetensors)."""
    from vqaudio.training.export import export_prior

    typer.echo(f"prior written to {export_prior(run, into, overwrite=force)}")


@commands.command("plot-log")
@boundary
def plot_log(
    log: Annotated[Path, typer.Argument(help="metrics.jsonl of a training run.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="PNG to write.")],
    force: ForceOpt = False,
) -> None:
    """Draw a run's training curves (loss terms, codebook usage, validation) to a PNG."""
    from vqaudio.training.plot import plot_metrics

    refuse_existing(output, force)
    plot_metrics(log, output)
    typer.echo(f"wrote {output}")
