"""``vqaudio generate``, ``compress`` and ``decompress``: the commands over a model's token prior.

Registered on the main app by :mod:`vqaudio.cli`; each command parses, calls the library, and prints one line
per result. Errors are one line on stderr and exit code 1, and no output is overwritten without ``--force``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vqaudio.cli.common import CommandGroup, boundary, model_named_in, refuse_output, refuse_same_files
from vqaudio.errors import VQAudioError

AUDIO_OUT = (".wav", ".flac")

commands = CommandGroup()


@commands.command()
@boundary
def compress(
    input: Annotated[Path, typer.Argument(help="Audio, or a token file (.vqt/.npy/.txt/.json) of the model.")],
    output: Annotated[Path, typer.Argument(help="Compressed token file (.vqz).")],
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Model (default: speech-16k, or the token file's).")
    ] = None,
    force: Annotated[bool, typer.Option("--force", "-f", help="Overwrite an existing output.")] = False,
) -> None:
    """Tokenize (or read tokens) and entropy-code the codes with the model's token prior."""
    from vqaudio.compress import coder_for, compress_tokens, write_vqz
    from vqaudio.tokenfile import FORMATS, bitrate, load_codes
    from vqaudio.tokenizer import load

    if output.suffix.lower() != ".vqz":
        raise VQAudioError(f"{output}: a compressed token file must end in .vqz")
    refuse_output(output, [input], force)
    if input.suffix.lower().lstrip(".") in FORMATS:
        tokens = load_codes(input)
        tok = load(model_named_in(tokens.header.model_id, model, input))
        vqz = compress_tokens(tok, tokens)
    else:
        tok = load(model or "speech-16k")
        prior, card = coder_for(tok)
        enc = tok.encode(input, n_codebooks=prior.config.num_codebooks)
        vqz = compress_tokens(tok, enc, (prior, card))
    write_vqz(output, vqz, overwrite=force)
    h = vqz.header
    seconds = h.original_length / h.sample_rate
    fixed = bitrate(h.frame_rate, h.num_codebooks, h.codebook_size) * h.num_frames / h.frame_rate  # bits
    bits = 32 * vqz.words.size
    kbps = bits / seconds / 1000
    typer.echo(
        f"{input} -> {output}: {h.num_frames} frames x {h.num_codebooks} codebooks, {kbps:.2f} "
        f"kbps ({100 * bits / max(1, fixed):.0f} % of the fixed-width {fixed / seconds / 1000:.2f} kbps)"
    )


@commands.command()
@boundary
def decompress(
    input: Annotated[Path, typer.Argument(help="Compressed token file (.vqz).")],
    output: Annotated[Path, typer.Argument(help="Token file (.vqt/.npy/.txt/.json) or audio (.wav/.flac).")],
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Model folder (default: the model named in the file).")
    ] = None,
    vocoder: Annotated[str | None, typer.Option("--vocoder", help="Back end, for audio output.")] = None,
    force: Annotated[bool, typer.Option("--force", "-f", help="Overwrite an existing output.")] = False,
) -> None:
    """Decode a .vqz back into the exact codes tokenize gave, as a token file or as audio."""
    from vqaudio.compress import decompress_tokens, read_vqz
    from vqaudio.tokenfile import FORMATS, save_codes
    from vqaudio.tokenizer import load

    fmt = output.suffix.lower().lstrip(".")
    if fmt not in FORMATS and output.suffix.lower() not in AUDIO_OUT:
        raise VQAudioError(f"{output}: write tokens (.{', .'.join(FORMATS)}) or audio (.wav, .flac)")
    refuse_output(output, [input], force)
    vqz = read_vqz(input)
    tok = load(model_named_in(vqz.header.model_id, model, input))
    tokens = decompress_tokens(tok, vqz, str(input))
    if fmt in FORMATS:
        save_codes(output, tokens.codes, tokens.header, fmt=fmt, overwrite=force)
        typer.echo(f"{input} -> {output}: {tokens.header.num_frames} frames x {tokens.header.num_codebooks}")
    else:
        seconds = tok.decode_to_file(tokens, output, vocoder=vocoder, overwrite=force)
        typer.echo(f"{input} -> {output} ({seconds:.2f} s at {tok.sample_rate} Hz)")


@commands.command()
@boundary
def generate(
    out_dir: Annotated[Path, typer.Option("--out-dir", "-o", help="Folder for the samples.")],
    n: Annotated[int, typer.Option("-n", min=1, help="How many samples.")] = 4,
    seconds: Annotated[float, typer.Option("--seconds", help="Seconds to generate (after any prompt).")] = 5.0,
    temperature: Annotated[float, typer.Option("--temperature", help="Below 1: safer; above: wilder.")] = 1.0,
    top_k: Annotated[int | None, typer.Option("--top-k", min=1, help="Draw from the k likeliest codes.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Sample i uses seed + i: same seed, same audio.")] = 0,
    prompt: Annotated[Path | None, typer.Option("--prompt", help="Audio to continue.")] = None,
    tokens: Annotated[bool, typer.Option("--tokens", help="Also write each sample's codes (.vqt).")] = False,
    model: Annotated[str, typer.Option("--model", "-m", help="Model with a token prior.")] = "speech-16k",
    vocoder: Annotated[str | None, typer.Option("--vocoder", help="Back end.")] = None,
    force: Annotated[bool, typer.Option("--force", "-f", help="Overwrite existing samples.")] = False,
) -> None:
    """Sample codes from the model's token prior and decode them to audio (or continue --prompt)."""
    from vqaudio.prior.sample import generate_to_files
    from vqaudio.tokenizer import load

    if not 0 < seconds <= 600:
        raise VQAudioError(f"--seconds must be in (0, 600], got {seconds}")
    if prompt is not None:  # a prompt may sit among the samples of an earlier run; it is never replaced
        refuse_same_files([out_dir / f"sample-{i:02d}{s}" for i in range(n) for s in (".wav", ".vqt")], [prompt])
    written = generate_to_files(
        load(model),
        out_dir,
        n=n,
        seconds=seconds,
        temperature=temperature,
        top_k=top_k,
        seed=seed,
        prompt=prompt,
        tokens=tokens,
        vocoder=vocoder,
        overwrite=force,
    )
    for path in written:
        typer.echo(str(path))
