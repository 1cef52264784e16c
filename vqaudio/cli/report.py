"""The ``compare`` command: a listening report of inputs against their resynthesis, as one HTML page.

Registered on :data:`vqaudio.cli.app` by ``commands.register``; a thin command over :mod:`vqaudio.report` (the
signals and scores) and :mod:`vqaudio.report_page` (the page).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vqaudio.cli.codec import BeamOpt, ModelOpt, VocoderChoice
from vqaudio.cli.common import CommandGroup, ForceOpt, boundary, refuse_output
from vqaudio.errors import VQAudioError

commands = CommandGroup()

_PAGE_SUFFIXES = (".html", ".htm")


@commands.command()
@boundary
def compare(
    inputs: Annotated[list[Path], typer.Argument(help="Audio files to compare.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The report to write (.html).")],
    model: ModelOpt = "speech-16k",
    n_codebooks: Annotated[
        str | None,
        typer.Option(
            "--n-codebooks",
            "-k",
            metavar="K,K,...",
            help="Codebook counts, one row each, e.g. 1,3,6 (default: 1, the model's default and all).",
        ),
    ] = None,
    vocoder: Annotated[
        list[VocoderChoice] | None,
        typer.Option(
            "--vocoder",
            metavar="learned|griffin-lim|hybrid",
            help="Back end for spectral models; repeat it for a row per back end and count.",
        ),
    ] = None,
    beam: BeamOpt = None,
    reference_codecs: Annotated[
        bool,
        typer.Option(
            "--reference-codecs", help="Add Codec2 and Opus rows at comparable bitrates (where their tools exist)."
        ),
    ] = False,
    max_seconds: Annotated[
        float, typer.Option("--max-seconds", help="Clip each input to its first S seconds.", metavar="S")
    ] = 20.0,
    force: ForceOpt = False,
) -> None:
    """Write one HTML page to listen to and look at each input beside its resynthesis at several bitrates."""
    from vqaudio import report_page
    from vqaudio.report import build_report, parse_codebooks
    from vqaudio.tokenizer import load

    if output.suffix.lower() not in _PAGE_SUFFIXES:
        raise VQAudioError(f"the report is an HTML page: name it .html, not {output.name}")
    refuse_output(output, list(inputs), force)
    report_page.require_matplotlib()
    tok = load(model, beam=beam)
    counts = parse_codebooks(n_codebooks, tok)
    vocoders = [v.value for v in vocoder] if vocoder else [None]
    report = build_report(
        inputs, tok, n_codebooks=counts, vocoders=vocoders, reference_codecs=reference_codecs, max_seconds=max_seconds
    )
    size = report_page.write_report(report, output, overwrite=force)
    rows = sum(len(s.rows) for s in report.sections)
    typer.echo(f"{len(report.sections)} input(s), {rows} rows -> {output} ({size / 1e6:.2f} MB)")
    for note in report.notes:
        typer.echo(f"note: {note}", err=True)
