"""The codec commands: ``tokenize``, ``detokenize`` and ``resynth``.

Registered on :data:`vqaudio.cli.app` by ``commands.register``; thin commands over :mod:`vqaudio.tokenizer` and
:mod:`vqaudio.tokenfile`.
"""

from __future__ import annotations

import enum
import warnings
from pathlib import Path
from typing import Annotated, Any

import typer

from vqaudio.cli.common import (
    CommandGroup,
    ForceOpt,
    ProgressBar,
    ProgressOpt,
    StrictOpt,
    be_strict,
    boundary,
    make_folder,
    model_named_in,
    refuse_existing,
    refuse_same_files,
)
from vqaudio.cli.runs import RunResult, gather_inputs, report_failures, run_each
from vqaudio.cli.runtime import Int8Opt, OnnxDirOpt, RuntimeChoice, RuntimeOpt, onnx_options
from vqaudio.errors import VQAudioError, VQAudioWarning

commands = CommandGroup()


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
    typer.Option(
        "--n-codebooks", "-k", min=1, metavar="K", help="Codebooks to use (default: the model's default bitrate)."
    ),
]
BeamOpt = Annotated[
    int | None,
    typer.Option(
        "--beam",
        metavar="N",
        help="Width of the code search, 1 to 64 (1: greedy, fastest; wider: codes closer to the encoder's output, "
        "for exactly the codebooks asked for; above 64 is refused, the time grows with the width). "
        "Default: the model's default_beam.",
    ),
]
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


@commands.command()
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
    skip_existing: Annotated[
        bool,
        typer.Option(
            "--skip-existing", help="Keep outputs that are already token files of this model (finish a folder run)."
        ),
    ] = False,
    strict: StrictOpt = False,
    progress: ProgressOpt = None,
    runtime: RuntimeOpt = RuntimeChoice.torch,
    onnx_dir: OnnxDirOpt = None,
    int8: Int8Opt = None,
) -> None:
    """Encode audio into a token file (default: IN.vqt beside each input). A folder run goes on past a bad file
    and lists the failures at the end (exit code 1)."""
    from vqaudio.audio import audio_duration
    from vqaudio.data.manifest import AUDIO_SUFFIXES
    from vqaudio.tokenfile import code_search_variant, load_codes, save_codes
    from vqaudio.tokenizer import load

    be_strict(strict)
    paths = gather_inputs(inputs)
    if output is not None and len(paths) > 1:
        raise VQAudioError("--output takes one input; use --out-dir for several")
    if output is not None:
        refuse_same_files([output], paths)
    suffix = output.suffix.lower() if output is not None else ""
    if suffix in AUDIO_SUFFIXES:
        raise VQAudioError(f"{output}: token files are not audio; name the output .vqt, .npy, .txt or .json")
    implied = TokenFormat(suffix[1:]) if suffix[1:] in TokenFormat._value2member_map_ else None
    if fmt is not None and implied is not None and fmt != implied:
        raise VQAudioError(f"--format {fmt.value} does not match the output name {output}")
    fmt = fmt or implied or TokenFormat.vqt
    if out_dir is not None and out_dir.exists() and not out_dir.is_dir():
        raise VQAudioError(f"--out-dir {out_dir} is a file, not a folder")
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
    refuse_same_files(targets, paths)
    existing = [t for t in targets if t.exists()] if not (force or skip_existing) else []
    if existing:
        what = f"{existing[0]} and {len(existing) - 1} other output(s) exist" if len(existing) > 1 else ""
        raise VQAudioError(
            f"{what or f'{existing[0]} exists'}; pass --force to overwrite, or --skip-existing to keep what exists"
        )
    onnx = onnx_options(runtime, onnx_dir, int8)
    tok = load(model, encode_precision=precision.value, beam=beam, runtime=runtime.value, onnx=onnx)
    k = n_codebooks or tok.default_codebooks
    tok.bitrate(k)  # refuses a bad --n-codebooks before any file is read
    if out_dir is not None:
        make_folder(out_dir)
    frames, seconds = 0, 0.0  # of the files tokenized

    def finished(dst: Path) -> bool:
        """Whether ``dst`` is already a token file of this model with the codebooks asked for."""
        try:
            tf = load_codes(dst)
            tok.check_compatible(tf.header, str(dst))
        except VQAudioError:
            return False
        # Not a file of another code-search variant either: an int8 encoder's codes beside the float encoder's.
        same = code_search_variant(tf.header.code_search) == code_search_variant(tok.code_search)
        return same and tf.header.num_codebooks == k

    def one(src: Path, dst: Path) -> bool:
        nonlocal frames, seconds
        if dst.exists():
            if skip_existing and finished(dst):
                return False
            if not force:
                raise VQAudioError(f"{dst} exists but is not a token file of {tok.name}; pass --force to replace it")
        make_folder(dst.parent)
        duration = audio_duration(src) if len(paths) == 1 else None  # a bar per window for one file
        with ProgressBar(progress if duration else False, "tokenize", duration or 0.0, "s") as bar:
            enc = tok.encode(src, n_codebooks=n_codebooks, progress=bar)
        save_codes(dst, enc.codes.numpy(), enc.header(), fmt=fmt.value, overwrite=force)
        frames += enc.num_frames
        seconds += enc.original_length / enc.sample_rate
        return True

    jobs = list(zip(paths, targets, strict=True))
    if len(jobs) == 1:  # one file: its error is the command's, as one line
        result = RunResult(done=1) if one(*jobs[0]) else RunResult(skipped=1)
    else:
        result = run_each(jobs, one, desc="tokenize", progress=progress)
    skipped = f"; {result.skipped} skipped (already tokenized)" if result.skipped else ""
    if result.done:
        where = targets[0] if len(targets) == 1 else (out_dir or "beside the inputs")
        typer.echo(
            f"{result.done} file(s), {seconds:.2f} s -> {_codes_text(tok, frames, k)} "
            f"({tok.bitrate(k) / 1000:.2f} kbps) -> {where}{skipped}"
        )
    elif result.skipped:
        typer.echo(f"no file tokenized; {result.skipped} skipped (already tokenized by {tok.name})")
    report_failures(result, len(jobs))


def _load_tokens(path: Path, tok_model: str | None, **options: Any) -> tuple[Any, Any]:
    """Read a token file and pick the model: ``--model`` if given, else the one named in the file; ``options`` are
    :func:`vqaudio.load`'s."""
    from vqaudio.tokenfile import assume_model, load_codes
    from vqaudio.tokenizer import load

    tf = load_codes(path)
    if tf.header.is_unknown:
        if tok_model is None:
            raise VQAudioError(f"{path} does not say which model made it; pass --model")
        tok = load(tok_model, **options)
        if tok.model.codebook_strides and Path(path).suffix.lower() != ".npy":
            # Its rows are codebooks at their own rates, and only the header says which: without it, no guess.
            kind = Path(path).suffix
            raise VQAudioError(f"{path} has no header (.json sidecar); a multi-scale model's {kind} needs it")
        tf = type(tf)(
            header=assume_model(
                tf.header,
                model_id=tok.name,
                model_checksum=tok.checksum,
                codes_checksum=tok.codes_checksum,
                sample_rate=tok.sample_rate,
                frame_rate=tok.frame_rate,
                codebook_strides=tok.model.codebook_strides,
            ),
            codes=tf.codes,
        )
    else:
        name = model_named_in(tf.header.model_id, tok_model, path)
        tok = load(name, **options)
    return tf, tok


@commands.command()
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
    progress: ProgressOpt = None,
    runtime: RuntimeOpt = RuntimeChoice.torch,
    onnx_dir: OnnxDirOpt = None,
    int8: Int8Opt = None,
) -> None:
    """Decode a token file back into audio."""
    refuse_same_files([output], [tokens])
    refuse_existing(output, force)
    onnx = onnx_options(runtime, onnx_dir, int8)
    tf, tok = _load_tokens(
        tokens, model, decode_precision=precision.value, postfilter=postfilter, runtime=runtime.value, onnx=onnx
    )
    with ProgressBar(progress, "detokenize", tf.header.original_length / tok.sample_rate, "s") as bar:
        seconds = tok.decode_to_file(
            tf, output, vocoder=vocoder.value if vocoder else None, overwrite=force, progress=bar
        )
    typer.echo(f"{tokens} -> {output} ({seconds:.2f} s at {tok.sample_rate} Hz)")


@commands.command()
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
    strict: StrictOpt = False,
    progress: ProgressOpt = None,
    runtime: RuntimeOpt = RuntimeChoice.torch,
    onnx_dir: OnnxDirOpt = None,
    int8: Int8Opt = None,
) -> None:
    """Encode and decode: hear what the codec keeps (encoding in float32, as tokenize does by default)."""
    from vqaudio.audio import audio_duration
    from vqaudio.tokenizer import load

    be_strict(strict)
    refuse_same_files([output], [input])
    refuse_existing(output, force)
    onnx = onnx_options(runtime, onnx_dir, int8)
    tok = load(
        model, decode_precision=precision.value, postfilter=postfilter, beam=beam, runtime=runtime.value, onnx=onnx
    )
    seconds = audio_duration(input)
    with ProgressBar(progress if seconds else False, "encode", seconds or 0.0, "s") as bar:
        enc = tok.encode(input, n_codebooks=n_codebooks, progress=bar)
    # A speaker-conditioned model speaks the input's units in the input's own voice. Taking it reads the input a
    # second time, and the encode has already said what is wrong with it (a truncated file): not again.
    speaker = None
    if tok.conditional:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", VQAudioWarning)
            speaker = tok.speaker_embedding(input)
    back_end = vocoder.value if vocoder else None
    with ProgressBar(progress, "decode", enc.original_length / tok.sample_rate, "s") as bar:
        tok.decode_to_file(enc, output, vocoder=back_end, overwrite=force, speaker=speaker, progress=bar)
    typer.echo(
        f"{input} -> {output}: {_codes_text(tok, enc.num_frames, enc.num_codebooks)} "
        f"({enc.bitrate / 1000:.2f} kbps), vocoder {vocoder.value if vocoder else tok.default_vocoder or 'none'}"
    )


def _codes_text(tok: Any, frames: int, k: int) -> str:
    """``"38 frames x 3 codebooks at 50 Hz"``; for multi-scale codes, each level's share."""
    strides = tok.model.codebook_strides
    if not strides:
        return f"{frames} frames x {k} codebooks at {tok.frame_rate:g} Hz"
    from vqaudio.tokenfile.levels import CodeLayout

    layout = CodeLayout(strides)
    parts = [
        f"{n} x {f} at {tok.frame_rate * layout.superframe / s:g} Hz"
        for s, (n, f) in zip(layout.rates, layout.level_shapes(k, frames), strict=True)
        if n
    ]
    return "codes " + " + ".join(parts)
