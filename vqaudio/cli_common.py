"""What every ``vqaudio`` command shares: the one error boundary.

A command raises :class:`~vqaudio.errors.VQAudioError` (or lets an ``OSError`` through) and the boundary
turns it into one line on stderr and exit code 1, never a traceback.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import ParamSpec, TypeVar

import typer

from vqaudio.errors import VQAudioError

P = ParamSpec("P")
R = TypeVar("R")


def fail(message: str) -> None:
    """Print ``error: message`` on stderr and exit with code 1."""
    typer.echo(f"error: {' '.join(message.split())}", err=True)
    raise typer.Exit(1)


def boundary(command: Callable[P, R]) -> Callable[P, R]:
    """Wrap a typer command so that a VQAudioError or OSError ends it with one line and exit code 1."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except VQAudioError as e:
            fail(str(e))
        except OSError as e:
            where = f"{e.filename}: " if e.filename else ""
            fail(f"{where}{e.strerror or e}")
        raise AssertionError("unreachable")  # fail() always exits

    return run


def refuse_output(output: Path, inputs: list[Path], force: bool) -> None:
    """Refuse an output that is one of the inputs, that exists without ``force``, or whose folder is missing."""
    for src in inputs:
        if src.exists() and output.resolve() == src.resolve():
            raise VQAudioError(f"output {output} would overwrite an input; choose another name")
    if output.exists() and not force:
        raise VQAudioError(f"{output} exists; pass --force to overwrite it")
    if not output.parent.is_dir():
        raise VQAudioError(f"cannot write {output}: folder {output.parent} does not exist")
