"""What every ``vqaudio`` command shares: the one error boundary, output refusals, progress bars, SIGTERM.

A command raises :class:`~vqaudio.errors.VQAudioError` (or lets an ``OSError`` through) and the boundary
turns it into one line on stderr and exit code 1, never a traceback. A :class:`~vqaudio.errors.VQAudioWarning`
(a truncated input) is one ``warning:`` line, or the error under ``--strict``.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from types import FrameType, TracebackType
from typing import Annotated, Any, ParamSpec, TextIO, TypeVar

import typer

from vqaudio.errors import VQAudioError, VQAudioWarning

P = ParamSpec("P")
R = TypeVar("R")

ForceOpt = Annotated[bool, typer.Option("--force", "-f", help="Overwrite existing outputs.")]
StrictOpt = Annotated[
    bool, typer.Option("--strict", help="Refuse what is otherwise a warning: a WAV shorter than its header says.")
]
ProgressOpt = Annotated[
    bool | None,
    typer.Option("--progress/--no-progress", help="Progress bars on stderr (default: when stderr is a terminal)."),
]

# The problems a user can fix: they end a command (or one file of a folder run) with one line, not a traceback.
USER_ERRORS = (VQAudioError, VQAudioWarning, OSError)


def describe(error: BaseException) -> str:
    """One line for a :data:`USER_ERRORS` problem (a VQAudioWarning is raised only under ``--strict``)."""
    if isinstance(error, OSError):
        where = f"{error.filename}: " if error.filename else ""
        message = f"{where}{error.strerror or error}"
    elif isinstance(error, VQAudioWarning):
        message = f"{error} (refused under --strict)"
    else:
        message = str(error)
    return " ".join(message.split())


def fail(message: str) -> None:
    """Print ``error: message`` on stderr and exit with code 1."""
    typer.echo(f"error: {' '.join(message.split())}", err=True)
    raise typer.Exit(1)


def _one_line_warnings(previous: Callable[..., None]) -> Callable[..., None]:
    """A ``warnings.showwarning`` that prints a VQAudioWarning as one ``warning:`` line and leaves the others to
    ``previous``."""

    def show(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        if issubclass(category, VQAudioWarning):
            typer.echo(f"warning: {' '.join(str(message).split())}", err=True)
        else:
            previous(message, category, filename, lineno, file, line)

    return show


def boundary(command: Callable[P, R]) -> Callable[P, R]:
    """Wrap a typer command so that a VQAudioError or OSError ends it with one line and exit code 1, and a
    VQAudioWarning is one ``warning:`` line (each time, not once per place in the code)."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        with warnings.catch_warnings():  # restores the filters and showwarning afterwards
            warnings.simplefilter("always", VQAudioWarning)
            warnings.showwarning = _one_line_warnings(warnings.showwarning)
            try:
                return command(*args, **kwargs)
            except USER_ERRORS as e:
                fail(describe(e))
        raise AssertionError("unreachable")  # fail() always exits

    return run


def be_strict(strict: bool) -> None:
    """Under ``--strict``, make a VQAudioWarning an error (inside :func:`boundary`, which restores the filters)."""
    if strict:
        warnings.simplefilter("error", VQAudioWarning)


def exit_on_sigterm() -> None:
    """Make SIGTERM (``kill``, a cluster scheduler's notice) end the process as Ctrl-C does: by an exception that
    unwinds the stack, so every ``finally`` runs and no hidden temp file of a half-written output stays behind.
    The default action ends the process on the spot. The exit code is 143 (128 + SIGTERM), as if killed. A
    process forked from this one (a data loader's worker) still takes the default action."""
    owner = os.getpid()

    def handler(signum: int, frame: FrameType | None) -> None:
        if os.getpid() != owner:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        signal.signal(signum, signal.SIG_IGN)  # a second SIGTERM must not cut the clean-up short
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def refuse_same_files(outputs: Iterable[Path], inputs: Iterable[Path]) -> None:
    """Refuse any output that is one of the inputs, with or without ``--force``: the same path once resolved
    (symlinks, ``..``), or the same inode (a hard link). One pass, so a folder of thousands costs a stat each."""
    paths: dict[Path, Path] = {}
    inodes: dict[tuple[int, int], Path] = {}
    for src in inputs:
        paths[src.resolve()] = src
        try:
            st = src.stat()
            inodes[(st.st_dev, st.st_ino)] = src
        except OSError:
            continue
    for out in outputs:
        same = paths.get(out.resolve())
        if same is None:
            try:
                st = out.stat()
            except OSError:
                continue
            same = inodes.get((st.st_dev, st.st_ino))
        if same is not None:
            raise VQAudioError(f"output {out} would overwrite the input {same}; choose another name")


def refuse_output(output: Path, inputs: list[Path], force: bool) -> None:
    """Refuse an output that is one of the inputs, that exists without ``force``, or whose folder is missing."""
    refuse_same_files([output], inputs)
    if output.exists() and not force:
        raise VQAudioError(f"{output} exists; pass --force to overwrite it")
    if not output.parent.is_dir():
        raise VQAudioError(f"cannot write {output}: folder {output.parent} does not exist")


def refuse_existing(path: Path, force: bool) -> None:
    """Refuse to write ``path`` if it exists, unless ``force``."""
    if path.exists() and not force:
        raise VQAudioError(f"{path} exists; pass --force to overwrite it")


def make_folder(path: Path) -> None:
    """Create ``path`` and its parents, or say in one line why it cannot be (a file stands in the way)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise VQAudioError(f"cannot make folder {path}: a file of that name exists") from None
    except OSError as e:
        raise VQAudioError(f"cannot make folder {path}: {e.strerror or e}") from None


def model_named_in(model_id: str, explicit: str | None, source: object) -> str:
    """The model to decode a file with: ``--model`` when given, else the shipped model the file names (its
    folder). A name read from a file is never used as a path: a token file from a stranger must not make us
    load weights from wherever it points."""
    if explicit is not None:
        return explicit
    from vqaudio.card import shipped_models

    shipped = shipped_models()
    if model_id not in shipped:
        raise VQAudioError(
            f"{source} was made by model {model_id!r}, which is not a shipped model ({', '.join(shipped) or 'none'}); "
            "pass --model with its name or folder"
        )
    return str(shipped[model_id])


class ProgressBar:
    """A tqdm bar on stderr, or nothing: shown with ``--progress``, and by default when stderr is a terminal
    (then only for work that lasts over half a second). Called with the amount done since the last call."""

    def __init__(self, show: bool | None, desc: str, total: float, unit: str) -> None:
        self.bar: Any = None
        if show is False or (show is None and not sys.stderr.isatty()):
            return
        import shutil

        from tqdm import tqdm

        audio = "{n:.0f}/{total:.0f} s of audio" if unit == "s" else "{n_fmt}/{total_fmt} " + unit
        size = shutil.get_terminal_size((80, 24))
        self.bar = tqdm(
            total=total,
            desc=desc,
            unit=unit,
            file=sys.stderr,
            # The terminal's size, else 80 x 24: tqdm draws nothing on a terminal that reports no size.
            ncols=size.columns,
            nrows=size.lines,
            delay=0.0 if show else 0.5,
            bar_format="{desc}: {percentage:3.0f}%|{bar}| " + audio + " [{elapsed}<{remaining}]",
        )

    def __call__(self, done: float) -> None:
        if self.bar is not None:
            # The last window's frames may reach a little past the audio's end; the bar stops at its total.
            self.bar.update(min(done, self.bar.total - self.bar.n))

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        if self.bar is not None:
            self.bar.close()


class CommandGroup:
    """The commands (and sub-command groups) of one CLI module, put on the app by :meth:`register` in the order
    they were defined (the order ``--help`` lists them), so that command modules never import the app."""

    def __init__(self) -> None:
        self._entries: list[Callable[[typer.Typer], Any]] = []

    def command(self, *args: Any, **kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Like ``typer.Typer.command``: the same arguments, applied at registration."""

        def add(fn: Callable[..., Any]) -> Callable[..., Any]:
            self._entries.append(lambda app: app.command(*args, **kwargs)(fn))
            return fn

        return add

    def group(self, sub: typer.Typer, name: str) -> None:
        """A sub-command group (``vqaudio NAME ...``), added where it stands among the commands."""
        self._entries.append(lambda app: app.add_typer(sub, name=name))

    def register(self, app: typer.Typer) -> None:
        for entry in self._entries:
            entry(app)
