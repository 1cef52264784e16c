"""``vqaudio units extract|merge`` and ``vqaudio convert``: units for a corpus, and speech in another voice.

Registered on the main app by :mod:`vqaudio.cli`; thin commands over :mod:`vqaudio.units.extract` and
:meth:`vqaudio.tokenizer.Tokenizer.convert`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vqaudio.cli.common import CommandGroup, ForceOpt, boundary, refuse_output
from vqaudio.cli.runtime import Int8Opt, OnnxDirOpt, RuntimeChoice, RuntimeOpt, onnx_options

units_app = typer.Typer(
    help="Discrete units for a corpus: extract (batched, resumable, sharded), then merge.", rich_markup_mode=None
)


@units_app.command("extract")
@boundary
def extract_cmd(
    input: Annotated[
        str, typer.Argument(help="A folder of audio (LibriSpeech layout or any), a .tsv manifest or a list.")
    ],
    out_dir: Annotated[Path, typer.Option("--out-dir", "-o", help="Folder for the shard files.")],
    model: Annotated[
        str, typer.Option("--model", "-m", help="Units model (or speech-16k with --codebook).")
    ] = "units-16k",
    codebook: Annotated[int, typer.Option("--codebook", min=0, help="Which codebook's codes are the units.")] = 0,
    dedup: Annotated[
        bool, typer.Option("--dedup", help="Merge repeats; write each unit's duration in frames.")
    ] = False,
    shard: Annotated[
        str | None, typer.Option("--shard", help="I/N: this process's share (default: RANK/WORLD_SIZE, else all).")
    ] = None,
    batch_seconds: Annotated[
        float, typer.Option("--batch-seconds", min=0.0, help="Padded audio per batch; files batched by length.")
    ] = 40.0,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")] = True,
    runtime: RuntimeOpt = RuntimeChoice.torch,
    onnx_dir: OnnxDirOpt = None,
    int8: Int8Opt = None,
) -> None:
    """Write this shard's units, one JSON line per input file; rerun after an interruption to finish it."""
    from vqaudio.tokenizer import load
    from vqaudio.units.extract import extract, input_root, list_inputs, parse_shard, shard_from_env

    which = parse_shard(shard) if shard is not None else shard_from_env()
    items = list_inputs(input)
    tok = load(model, runtime=runtime.value, onnx=onnx_options(runtime, onnx_dir, int8))
    mine = len(items[which.index :: which.count])
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=mine, unit="file", desc=which.name, dynamic_ncols=True)
    hours = 0.0

    def advance(files: int, seconds: float) -> None:
        nonlocal hours
        hours += seconds / 3600
        if bar is not None:
            bar.update(files)
            bar.set_postfix(audio_h=f"{hours:.2f}")

    path = extract(
        tok,
        items,
        out_dir,
        shard=which,
        codebook=codebook,
        dedup=dedup,
        batch_seconds=batch_seconds,
        progress=advance,
        root=input_root(input),
    )
    if bar is not None:
        bar.close()
    typer.echo(f"{path}: {mine} files")


@units_app.command("merge")
@boundary
def merge_cmd(
    out_dir: Annotated[Path, typer.Argument(help="The --out-dir of the finished shards.")],
    split: Annotated[str, typer.Option("--split", help="Name of the fairseq files (SPLIT.tsv, SPLIT.km).")] = "train",
) -> None:
    """Join the finished shards into units.jsonl (input order), errors.tsv (the skipped files), units.meta.json and
    the fairseq/textless SPLIT.tsv, SPLIT.km and dict.km.txt."""
    from vqaudio.units.extract import merge

    path, ok, bad = merge(out_dir, split)
    typer.echo(f"{path}: {ok} files; {bad} skipped (errors.tsv); {split}.tsv, {split}.km, dict.km.txt")


@units_app.command("expand")
@boundary
def expand_cmd(
    units: Annotated[Path, typer.Argument(help="A units.jsonl written with --dedup.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The JSONL to write.")],
    force: ForceOpt = False,
) -> None:
    """Undo --dedup: every unit repeated its duration, as an extraction without --dedup writes them."""
    from vqaudio.units.formats import expand_jsonl

    refuse_output(output, [units], force)
    n = expand_jsonl(units, output, overwrite=force)
    typer.echo(f"{units} -> {output}: {n} utterances")


@units_app.command("resynth")
@boundary
def resynth_cmd(
    units: Annotated[Path, typer.Argument(help="A units.jsonl (deduplicated or not), a .km file, or their folder.")],
    out_dir: Annotated[Path, typer.Option("--out-dir", "-o", help="Folder for one ID.wav per utterance.")],
    voice: Annotated[
        Path | None, typer.Option("--voice", help="A clip of the voice to speak in (default: the model's).")
    ] = None,
    model: Annotated[
        str | None,
        typer.Option("--model", "-m", help="Model (default: as units.meta.json says, else units-16k)."),
    ] = None,
    vocoder: Annotated[str | None, typer.Option("--vocoder", help="Back end.")] = None,
    force: ForceOpt = False,
) -> None:
    """Speak units files: one wav per utterance, in the voice of --voice."""
    from vqaudio.units.speak import resynth_units

    n, seconds = resynth_units(units, out_dir, voice=voice, model=model, vocoder=vocoder, overwrite=force)
    typer.echo(f"{units} -> {out_dir}: {n} utterances, {seconds:.1f} s")


commands = CommandGroup()
commands.group(units_app, "units")


@commands.command()
@boundary
def convert(
    input: Annotated[Path, typer.Argument(help="Speech to convert.")],
    output: Annotated[Path, typer.Argument(help="Output audio (.wav or .flac).")],
    voice: Annotated[Path, typer.Option("--voice", help="A clip of the target voice (its first 30 s are used).")],
    model: Annotated[str, typer.Option("--model", "-m", help="Speaker-conditioned model.")] = "units-16k",
    vocoder: Annotated[str | None, typer.Option("--vocoder", help="Back end.")] = None,
    force: Annotated[bool, typer.Option("--force", "-f", help="Overwrite an existing output.")] = False,
) -> None:
    """Voice conversion: INPUT's units, decoded in the voice of --voice."""
    from vqaudio.tokenizer import load

    refuse_output(output, [input, voice], force)
    tok = load(model)
    speaker = tok.speaker_embedding(voice)
    enc = tok.encode(input)
    seconds = tok.decode_to_file(enc, output, vocoder=vocoder, overwrite=force, speaker=speaker)
    typer.echo(f"{input} -> {output} ({seconds:.2f} s) in the voice of {voice}")
