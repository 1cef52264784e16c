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
from vqaudio.runtime.sessions import INT8_GRAPHS, OnnxOptions

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


Int8Opt = Annotated[
    str | None,
    typer.Option(
        "--int8",
        metavar="GRAPHS",
        help="With --runtime onnxruntime: run these graphs as int8, comma-separated among encoder, decoder, vocoder "
        "(faster, less exact; an int8 encoder's codes may differ from torch's and get their own code-search "
        "identity, docs/deploy.md).",
    ),
]


def int8_graphs(text: str | None) -> tuple[str, ...]:
    """``"decoder,encoder"`` -> ``("encoder", "decoder")``; a one-line error for an unknown or empty name."""
    if text is None:
        return ()
    names = [n.strip() for n in text.split(",")]
    unknown = [n for n in names if n not in INT8_GRAPHS]
    if unknown:
        raise VQAudioError(f"--int8 takes graph names among {', '.join(INT8_GRAPHS)}, comma-separated; got {text!r}")
    return OnnxOptions(int8=tuple(names)).int8


def onnx_options(runtime: RuntimeChoice, onnx_dir: Path | None, int8: str | None = None) -> OnnxOptions | None:
    """The onnxruntime options ``--runtime``, ``--onnx-dir`` and ``--int8`` ask for (``None`` with ``--runtime
    torch``)."""
    if runtime is RuntimeChoice.torch:
        if onnx_dir is not None:
            raise VQAudioError("--onnx-dir needs --runtime onnxruntime")
        if int8 is not None:
            raise VQAudioError("--int8 needs --runtime onnxruntime")
        return None
    return OnnxOptions(folder=onnx_dir, int8=int8_graphs(int8))


@commands.command("export-onnx")
@boundary
def export_onnx(
    model: Annotated[str, typer.Argument(help="Shipped model name or model directory.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder to write the graphs to.")],
    force: ForceOpt = False,
    int8: Annotated[
        str | None,
        typer.Option(
            "--int8",
            metavar="GRAPHS",
            help="Also write these graphs as int8 (GRAPH.int8.onnx), comma-separated among encoder, decoder, vocoder.",
        ),
    ] = None,
) -> None:
    """Export a model's encoder, decoder and learned vocoder as ONNX graphs (opset 18), with its codebooks and a
    manifest, checked against PyTorch with onnxruntime (docs/deploy.md); with --int8, int8 versions too."""
    from vqaudio.runtime.export import export_onnx as export
    from vqaudio.tokenizer import load

    graphs_int8 = int8_graphs(int8)
    refuse_existing(output, force)
    tok = load(model)
    done = export(tok.loaded, output, overwrite=force, int8=graphs_int8)
    files = [*done.manifest["graphs"].values(), *done.manifest.get("int8", {}).values()]
    graphs = ", ".join(g["file"] for g in files)
    checks = ", ".join(f"{name} {check.max_abs_diff:.1e}" for name, check in done.checks.items())
    typer.echo(f"{tok.name} -> {output}: {graphs} (opset {done.manifest['opset']}), arrays.safetensors, manifest.json")
    typer.echo(f"onnxruntime vs PyTorch, max |difference|: {checks}; codes equal: {100 * done.codes_equal:.1f} %")
