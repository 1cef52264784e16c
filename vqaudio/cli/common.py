"""What every ``vqaudio`` command shares: the one error boundary.

A command raises :class:`~vqaudio.errors.VQAudioError` (or lets an ``OSError`` through) and the boundary
turns it into one line on stderr and exit code 1, never a traceback.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import typer

from vqaudio.errors import VQAudioError

P = ParamSpec("P")
R = TypeVar("R")

ForceOpt = Annotated[bool, typer.Option("--force", "-f", help="Overwrite existing outputs.")]


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


def refuse_existing(path: Path, force: bool) -> None:
    """Refuse to write ``path`` if it exists, unless ``force``."""
    if path.exists() and not force:
        raise VQAudioError(f"{path} exists; pass --force to overwrite it")


class CommandGroup:
    """The commands of one CLI module, put on the app by :meth:`register` in the order they were defined (the
    order ``--help`` lists them), so that command modules never import the app."""

    def __init__(self) -> None:
        self._commands: list[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]] = []

    def command(self, *args: Any, **kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Like ``typer.Typer.command``: the same arguments, applied at registration."""

        def add(fn: Callable[..., Any]) -> Callable[..., Any]:
            self._commands.append((fn, args, kwargs))
            return fn

        return add

    def register(self, app: typer.Typer) -> None:
        for fn, args, kwargs in self._commands:
            app.command(*args, **kwargs)(fn)
