"""The ``vqaudio`` command: thin typer commands over the library.

Every command parses its arguments and calls library functions; a :class:`VQAudioError` becomes one line on
stderr and exit code 1. Outputs are never overwritten without ``--force``. Help is click's plain layout: rich's
boxed tables leave an 18-character column for the descriptions in an 80-column terminal.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from vqaudio import __version__

app = typer.Typer(
    name="vqaudio",
    help="Turn audio into discrete tokens and tokens back into audio.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


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


# Commands that may leave a process group or data-loader workers behind: these exit through the interpreter's
# normal teardown. Every other command has closed its files (outputs are written atomically) when it returns.
_FULL_TEARDOWN = {"train"}


def main() -> None:
    from vqaudio.cli.common import exit_on_sigterm

    exit_on_sigterm()
    # A rank under torchrun leaves without the teardown too: its process group is destroyed by then, and gloo's
    # threads could still abort the interpreter's exit ("terminate called without an active exception").
    world = os.environ.get("WORLD_SIZE", "")
    distributed = world.isdigit() and int(world) > 1
    if any(arg in _FULL_TEARDOWN for arg in sys.argv[1:2]) and not distributed:
        app()
        return
    try:
        app()
        code = 0
    except SystemExit as e:
        if isinstance(e.code, str):
            print(e.code, file=sys.stderr)
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    # Python's teardown after torch is loaded takes a third of a second (freeing every module's objects) and a
    # resynthesis of a short clip takes less: flush and leave without it.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


# Each module's commands register on ``app`` in the order ``--help`` lists them: the codec's (tokenize ... resynth),
# info and models, the training ones (train ... plot-log), export-onnx, the prior's (compress, decompress,
# generate), units and convert, then compare.
from vqaudio.cli import codec, describe, generate, report, runtime, train, units  # noqa: E402

codec.commands.register(app)
describe.commands.register(app)
train.commands.register(app)
runtime.commands.register(app)
generate.commands.register(app)
units.commands.register(app)
report.commands.register(app)
