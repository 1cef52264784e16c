"""The ``vqaudio`` command: thin typer commands over the library.

Every command parses its arguments and calls library functions; a :class:`VQAudioError` becomes one line on
stderr and exit code 1. Outputs are never overwritten without ``--force``.
"""

from __future__ import annotations

import enum
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from vqaudio import __version__
from vqaudio.cli_common import boundary
from vqaudio.errors import VQAudioError

app = typer.Typer(
    name="vqaudio",
    help="Turn audio into discrete tokens and tokens back into audio.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class TokenFormat(str, enum.Enum):
    vqt = "vqt"
    npy = "npy"
    txt = "txt"
    json = "json"


class Precision(str, enum.Enum):
    auto = "auto"
    float32 = "float32"
    bfloat16 = "bfloat16"


class VocoderChoice(str, enum.Enum):
    learned = "learned"
    griffin_lim = "griffin-lim"
    hybrid = "hybrid"


ModelOpt = Annotated[str, typer.Option("--model", "-m", help="Shipped model name or model directory.")]
NCodebooksOpt = Annotated[
    int | None,
    typer.Option("--n-codebooks", "-k", min=1, help="Codebooks to use (default: the model's default bitrate)."),
]
BeamOpt = Annotated[
    int | None,
    typer.Option(
        "--beam",
        min=1,
        help="Width of the code search (1: greedy, fastest; wider: codes closer to the encoder's output, for "
        "exactly the codebooks asked for). Default: the model's default_beam.",
    ),
]
ForceOpt = Annotated[bool, typer.Option("--force", "-f", help="Overwrite existing outputs.")]
EncodePrecisionOpt = Annotated[
    Precision,
    typer.Option(
        "--precision",
        help="Encoder arithmetic. bfloat16 is faster on CPUs that have it, but flips near-tie codes.",
    ),
]
DecodePrecisionOpt = Annotated[
    Precision,
    typer.Option("--precision", help="Decoder arithmetic; auto: bfloat16 where the CPU has it natively."),
]
PostFilterOpt = Annotated[
    bool,
    typer.Option(
        "--postfilter/--no-postfilter",
        help="Apply the model's spectral post-filter, if it has one (--no-postfilter: the codec's plain output).",
    ),
]
VocoderOpt = Annotated[
    VocoderChoice | None,
    typer.Option("--vocoder", help="Back end for spectral models (default: the model card's default_vocoder)."),
]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"vqaudio {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """vqaudio: discrete audio tokenizers that train and run on a plain CPU."""


def _refuse_existing(path: Path, force: bool) -> None:
    if path.exists() and not force:
        raise VQAudioError(f"{path} exists; pass --force to overwrite it")


def _gather_inputs(inputs: list[str]) -> list[Path]:
    """Expand ``-`` (one path per stdin line) and directories (their audio files, sorted)."""
    from vqaudio.data.manifest import AUDIO_SUFFIXES

    paths: list[Path] = []
    for item in inputs:
        if item == "-":
            paths += [Path(line.strip()) for line in sys.stdin if line.strip()]
        elif Path(item).is_dir():
            found = sorted(p for p in Path(item).rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
            if not found:
                raise VQAudioError(f"{item}: no audio files in this directory")
            paths += found
        else:
            paths.append(Path(item))
    if not paths:
        raise VQAudioError("no input files given")
    return paths


@app.command()
@boundary
def tokenize(
    inputs: Annotated[list[str], typer.Argument(help="Audio files, directories, or - to read paths from stdin.")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Output file (one input only).")] = None,
    out_dir: Annotated[Path | None, typer.Option("--out-dir", "-d", help="Folder for outputs (many inputs).")] = None,
    model: ModelOpt = "speech-16k",
    fmt: Annotated[
        TokenFormat | None, typer.Option("--format", help="Token file format (default: from -o's suffix, else vqt).")
    ] = None,
    n_codebooks: NCodebooksOpt = None,
    beam: BeamOpt = None,
    precision: EncodePrecisionOpt = Precision.float32,
    force: ForceOpt = False,
) -> None:
    """Encode audio into a token file (default: IN.vqt beside each input)."""
    from vqaudio.tokenfile import save_codes
    from vqaudio.tokenizer import load

    paths = _gather_inputs(inputs)
    if output is not None and len(paths) > 1:
        raise VQAudioError("--output takes one input; use --out-dir for several")
    suffix = output.suffix.lstrip(".").lower() if output is not None else ""
    implied = TokenFormat(suffix) if suffix in TokenFormat._value2member_map_ else None
    if fmt is not None and implied is not None and fmt != implied:
        raise VQAudioError(f"--format {fmt.value} does not match the output name {output}")
    fmt = fmt or implied or TokenFormat.vqt
    tok = load(model, encode_precision=precision.value, beam=beam)
    targets = []
    for p in paths:
        if output is not None:
            targets.append(output)
        elif out_dir is not None:
            targets.append(out_dir / (p.stem + "." + fmt.value))
        else:
            targets.append(p.with_suffix("." + fmt.value))
    if len(set(targets)) != len(targets):
        raise VQAudioError("two inputs would write the same output name; use separate --out-dir runs")
    for t in targets:
        _refuse_existing(t, force)
    iterator: Any = zip(paths, targets, strict=True)
    if len(paths) > 1:
        from tqdm import tqdm

        iterator = tqdm(list(iterator), desc="tokenize", unit="file", file=sys.stderr)
    frames = 0
    seconds = 0.0
    for src, dst in iterator:
        enc = tok.encode(src, n_codebooks=n_codebooks)
        dst.parent.mkdir(parents=True, exist_ok=True)
        save_codes(dst, enc.codes.numpy(), enc.header(), fmt=fmt.value, overwrite=force)
        frames += enc.num_frames
        seconds += enc.original_length / enc.sample_rate
    k = n_codebooks or tok.default_codebooks
    where = targets[0] if len(targets) == 1 else (out_dir or "beside the inputs")
    typer.echo(
        f"{len(paths)} file(s), {seconds:.2f} s -> {frames} frames x {k} codebooks at "
        f"{tok.frame_rate:g} Hz ({tok.bitrate(k) / 1000:.2f} kbps) -> {where}"
    )


def _load_tokens(path: Path, tok_model: str | None, decode_precision: str, postfilter: bool) -> tuple[Any, Any]:
    """Read a token file and pick the model: ``--model`` if given, else the one named in the file."""
    from vqaudio.tokenfile import assume_model, load_codes
    from vqaudio.tokenizer import load

    tf = load_codes(path)
    if tf.header.is_unknown:
        if tok_model is None:
            raise VQAudioError(f"{path} does not say which model made it; pass --model")
        tok = load(tok_model, decode_precision=decode_precision, postfilter=postfilter)
        tf = type(tf)(
            header=assume_model(
                tf.header,
                model_id=tok.name,
                model_checksum=tok.checksum,
                codes_checksum=tok.codes_checksum,
                sample_rate=tok.sample_rate,
                frame_rate=tok.frame_rate,
            ),
            codes=tf.codes,
        )
    else:
        tok = load(tok_model or tf.header.model_id, decode_precision=decode_precision, postfilter=postfilter)
    return tf, tok


@app.command()
@boundary
def detokenize(
    tokens: Annotated[Path, typer.Argument(help="Token file (.vqt, .npy, .txt or .json).")],
    output: Annotated[Path, typer.Argument(help="Output audio (.wav or .flac).")],
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Model (default: the one named in the file).")
    ] = None,
    vocoder: VocoderOpt = None,
    precision: DecodePrecisionOpt = Precision.auto,
    postfilter: PostFilterOpt = True,
    force: ForceOpt = False,
) -> None:
    """Decode a token file back into audio."""
    _refuse_existing(output, force)
    tf, tok = _load_tokens(tokens, model, precision.value, postfilter)
    seconds = tok.decode_to_file(tf, output, vocoder=vocoder.value if vocoder else None, overwrite=force)
    typer.echo(f"{tokens} -> {output} ({seconds:.2f} s at {tok.sample_rate} Hz)")


@app.command()
@boundary
def resynth(
    input: Annotated[Path, typer.Argument(help="Input audio.")],
    output: Annotated[Path, typer.Argument(help="Output audio (.wav or .flac).")],
    model: ModelOpt = "speech-16k",
    n_codebooks: NCodebooksOpt = None,
    beam: BeamOpt = None,
    vocoder: VocoderOpt = None,
    precision: DecodePrecisionOpt = Precision.auto,
    postfilter: PostFilterOpt = True,
    force: ForceOpt = False,
) -> None:
    """Encode and decode: hear what the codec keeps (encoding in float32, as tokenize does by default)."""
    from vqaudio.tokenizer import load

    if output.resolve() == input.resolve():
        raise VQAudioError("output would overwrite the input; choose another name")
    _refuse_existing(output, force)
    tok = load(model, decode_precision=precision.value, postfilter=postfilter, beam=beam)
    enc = tok.encode(input, n_codebooks=n_codebooks)
    # A speaker-conditioned model speaks the input's units in the input's own voice.
    speaker = tok.speaker_embedding(input) if tok.conditional else None
    tok.decode_to_file(enc, output, vocoder=vocoder.value if vocoder else None, overwrite=force, speaker=speaker)
    typer.echo(
        f"{input} -> {output}: {enc.num_frames} frames x {enc.num_codebooks} codebooks "
        f"({enc.bitrate / 1000:.2f} kbps), vocoder {vocoder.value if vocoder else tok.default_vocoder or 'none'}"
    )


def _describe_model(tok: Any) -> dict[str, Any]:
    card = tok.loaded.card
    return {
        "name": tok.name,
        "family": tok.model.family,
        "sample_rate": tok.sample_rate,
        "frame_rate": tok.frame_rate,
        "num_codebooks": tok.num_codebooks,
        "codebook_size": tok.codebook_size,
        "bitrates_kbps": [round(tok.bitrate(k) / 1000, 3) for k in range(1, tok.num_codebooks + 1)],
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
        "training_data": card.get("training_data", "unknown"),
    }


@app.command()
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


@app.command()
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


@app.command()
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


@app.command()
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

    _refuse_existing(output, force)
    entries = scan_audio(inputs, exclude=read_exclude_list(exclude_list), min_sample_rate=min_sample_rate)
    if not entries:
        raise VQAudioError("no readable audio found")
    write_manifest(entries, output)
    hours = sum(e.duration for e in entries) / 3600
    typer.echo(f"{len(entries)} files, {hours:.2f} h, {len({e.speaker for e in entries})} speakers -> {output}")


@app.command()
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

    _refuse_existing(output / "config.json", force)
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


@app.command("export-prior")
@boundary
def export_prior_cmd(
    run: Annotated[Path, typer.Argument(help="A prior training run (its model, else its latest checkpoint).")],
    into: Annotated[Path, typer.Option("--into", help="The folder of the codec it models (prior.* go there).")],
    force: ForceOpt = False,
) -> None:
    """Put a trained token prior beside its codec (prior.json + prior.safetensors)."""
    from vqaudio.training.export import export_prior

    typer.echo(f"prior written to {export_prior(run, into, overwrite=force)}")


@app.command("plot-log")
@boundary
def plot_log(
    log: Annotated[Path, typer.Argument(help="metrics.jsonl of a training run.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="PNG to write.")],
    force: ForceOpt = False,
) -> None:
    """Draw a run's training curves (loss terms, codebook usage, validation) to a PNG."""
    from vqaudio.training.plot import plot_metrics

    _refuse_existing(output, force)
    plot_metrics(log, output)
    typer.echo(f"wrote {output}")


def main() -> None:
    app()


# The prior's commands (generate, compress, decompress) and the units commands (units, convert) live in
# modules of their own.
from vqaudio import cli_prior, cli_units  # noqa: E402

cli_prior.register(app)
cli_units.register(app)


if __name__ == "__main__":
    main()
