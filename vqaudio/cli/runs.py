"""Runs over many files: which inputs a command was given, and a loop that does not stop at the first bad one.

A folder of a thousand recordings usually holds a few that cannot be read. :func:`run_each` works through every
file, collects each failure as one line, and :func:`report_failures` lists them at the end and exits with code 1;
the files that worked are written. A rerun with ``--skip-existing`` then does only what is left.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import typer

from vqaudio.cli.common import USER_ERRORS, ProgressBar, describe
from vqaudio.errors import VQAudioError


def gather_inputs(inputs: list[str]) -> list[Path]:
    """Expand ``-`` (one path per stdin line) and directories (their audio files, sorted)."""
    from vqaudio.data.manifest import AUDIO_SUFFIXES

    paths: list[Path] = []
    for item in inputs:
        if item == "-":
            paths += [Path(line.strip()) for line in sys.stdin if line.strip()]
        elif Path(item).is_dir():
            found = sorted(p for p in Path(item).rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
            if not found:
                raise VQAudioError(f"{item}: no audio files in this directory")
            paths += found
        else:
            paths.append(Path(item))
    if not paths:
        raise VQAudioError("no input files given")
    return paths


@dataclass
class RunResult:
    """What a run over many files did: the files done, skipped (already finished) and failed (with why)."""

    done: int = 0
    skipped: int = 0
    failed: list[tuple[Path, str]] = field(default_factory=list)


def run_each(
    jobs: Sequence[tuple[Path, Path]],
    work: Callable[[Path, Path], bool],
    *,
    desc: str,
    progress: bool | None,
) -> RunResult:
    """Call ``work(src, dst)`` for every job; it returns False for a job it skipped. A problem the user can fix
    (:data:`~vqaudio.cli.common.USER_ERRORS`) is recorded and the run goes on; a bug, Ctrl-C or SIGTERM stops it.
    A bar counts the files when there are several."""
    result = RunResult()
    with ProgressBar(progress, desc, len(jobs), "file") as bar:
        for src, dst in jobs:
            try:
                if work(src, dst):
                    result.done += 1
                else:
                    result.skipped += 1
            except USER_ERRORS as e:
                result.failed.append((src, describe(e)))
            bar(1)
    return result


def report_failures(result: RunResult, total: int) -> None:
    """List the failed files on stderr, one line each, and exit with code 1; return if none failed."""
    if not result.failed:
        return
    for src, message in result.failed:
        typer.echo(f"failed: {message if message.startswith(str(src)) else f'{src}: {message}'}", err=True)
    typer.echo(
        f"error: {len(result.failed)} of {total} files failed (listed above); the others are done, and a rerun "
        "with --skip-existing does only what is left",
        err=True,
    )
    raise typer.Exit(1)
