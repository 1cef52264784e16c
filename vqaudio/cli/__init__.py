"""The ``vqaudio`` command: thin typer commands over the library.

Every command parses its arguments and calls library functions; a :class:`VQAudioError` becomes one line on
stderr and exit code 1. Outputs are never overwritten without ``--force``. Help is click's plain layout: rich's
boxed tables leave an 18-character column for the descriptions in an 80-column terminal.
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


def main() -> None:
    from vqaudio.cli.common import exit_on_sigterm

    exit_on_sigterm()
    app()


# Each module's commands register on ``app`` in the order ``--help`` lists them: the codec's (tokenize ... models),
# the training ones (train ... plot-log), export-onnx, the prior's (compress, decompress, generate), units and convert,
# then compare.
from vqaudio.cli import codec, generate, report, runtime, train, units  # noqa: E402

codec.commands.register(app)
train.commands.register(app)
runtime.commands.register(app)
generate.commands.register(app)
units.commands.register(app)
report.commands.register(app)
