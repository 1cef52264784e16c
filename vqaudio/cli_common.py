"""What every ``vqaudio`` command shares: the one error boundary.

A command raises :class:`~vqaudio.errors.VQAudioError` (or lets an ``OSError`` through) and the boundary
turns it into one line on stderr and exit code 1, never a traceback.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
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
