"""The ``export-onnx`` command, and the ``--runtime`` / ``--onnx-dir`` options of tokenize, detokenize and resynth.

Thin over :mod:`vqaudio.runtime`: the export and its check live in :func:`vqaudio.runtime.export.export_onnx`.
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated

import typer

from vqaudio.cli.common import CommandGroup, ForceOpt, boundary, refuse_existing
from vqaudio.errors import VQAudioError
from vqaudio.runtime.sessions import OnnxOptions

commands = CommandGroup()


class RuntimeChoice(str, enum.Enum):
    torch = "torch"
    onnxruntime = "onnxruntime"


RuntimeOpt = Annotated[
    RuntimeChoice,
    typer.Option(
        "--runtime",
        help="What runs the encoder and decoder networks: torch, or onnxruntime (ONNX graphs exported to the cache "
        "on first use, or taken from --onnx-dir; the same codes; needs pip install 'vqaudio[onnx]').",
    ),
]
OnnxDirOpt = Annotated[
    Path | None,
    typer.Option("--onnx-dir", metavar="DIR", help="With --runtime onnxruntime: graphs made by export-onnx."),
]


def onnx_options(runtime: RuntimeChoice, onnx_dir: Path | None) -> OnnxOptions | None:
    """The onnxruntime options ``--runtime`` and ``--onnx-dir`` ask for (``None`` with ``--runtime torch``)."""
    if runtime is RuntimeChoice.torch:
        if onnx_dir is not None:
            raise VQAudioError("--onnx-dir needs --runtime onnxruntime")
        return None
    return OnnxOptions(folder=onnx_dir)


@commands.command("export-onnx")
@boundary
def export_onnx(
    model: Annotated[str, typer.Argument(help="Shipped model name or model directory.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder to write the graphs to.")],
    force: ForceOpt = False,
) -> None:
    """Export a model's encoder, decoder and learned vocoder as ONNX graphs (opset 18), with its codebooks and a
    manifest, checked against PyTorch with onnxruntime (docs/deploy.md)."""
    from vqaudio.runtime.export import export_onnx as export
    from vqaudio.tokenizer import load

    refuse_existing(output, force)
    tok = load(model)
    done = export(tok.loaded, output, overwrite=force)
    graphs = ", ".join(g["file"] for g in done.manifest["graphs"].values())
    checks = ", ".join(f"{name} {check.max_abs_diff:.1e}" for name, check in done.checks.items())
    typer.echo(f"{tok.name} -> {output}: {graphs} (opset {done.manifest['opset']}), arrays.safetensors, manifest.json")
    typer.echo(f"onnxruntime vs PyTorch, max |difference|: {checks}; codes equal: {100 * done.codes_equal:.1f} %")
