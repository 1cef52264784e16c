"""The ``vqaudio`` command: thin typer commands over the library.

Every command parses its arguments and calls library functions; a :class:`VQAudioError` becomes one line on
stderr and exit code 1. Outputs are never overwritten without ``--force``.
"""

from __future__ import annotations

from typing import Annotated

import typer

from vqaudio import __version__

app = typer.Typer(
    name="vqaudio",
    help="Turn audio into discrete tokens and tokens back into audio.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
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


def main() -> None:
    app()


# Each module's commands register on ``app`` in the order ``--help`` lists them: the codec's (tokenize ... models),
# the training ones (train ... plot-log), the prior's (compress, decompress, generate), then units and convert.
from vqaudio.cli import codec, generate, train, units  # noqa: E402

codec.commands.register(app)
train.commands.register(app)
generate.register(app)
units.register(app)
