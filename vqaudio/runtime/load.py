"""Find a model's ONNX graphs (a folder made by ``vqaudio export-onnx``, or the cache, exporting them there on
first use) and open the onnxruntime path on them (:mod:`vqaudio.runtime.onnx`)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from vqaudio.errors import ModelError, VQAudioError
from vqaudio.models.io import LoadedModel
from vqaudio.models.spectral import SpectralVQVAE
from vqaudio.runtime.export import FORMAT, MANIFEST_FILE, OPSET, export_onnx
from vqaudio.runtime.extra import require
from vqaudio.runtime.graphs import DECODER, ENCODER, exportable, graph_specs
from vqaudio.runtime.onnx import OnnxGraphs, onnx_codec
from vqaudio.runtime.sessions import OnnxOptions, cache_root


def cache_folder(loaded: LoadedModel, options: OnnxOptions) -> Path:
    """Where the cache keeps ``loaded``'s graphs: one folder per weights checksum, opset and folder format, so a
    new release, or a vqaudio that exports otherwise, never meets graphs it did not make."""
    return cache_root(options) / "onnx" / f"{loaded.name}-{loaded.checksum[:16]}-opset{OPSET}-f{FORMAT}"


def read_manifest(folder: Path, loaded: LoadedModel) -> dict[str, Any]:
    """The manifest of ``folder`` once it is shown to hold ``loaded``'s graphs, intact; else a one-line
    :class:`ModelError`."""
    path = folder / MANIFEST_FILE
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelError(f"{folder}: not a folder made by export-onnx (no readable {MANIFEST_FILE}: {e})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("graphs"), dict):
        raise ModelError(f"{path}: not a manifest made by export-onnx")
    if manifest.get("format") != FORMAT:
        raise ModelError(f"{path}: format {manifest.get('format')!r}, this vqaudio reads {FORMAT}; export again")
    if manifest.get("model") != loaded.name or manifest.get("model_checksum") != loaded.checksum:
        theirs = str(manifest.get("model_checksum"))[:16]
        raise ModelError(
            f"{folder} holds the graphs of {manifest.get('model')} (checksum {theirs}), "
            f"not of the loaded {loaded.name} ({loaded.checksum[:16]})"
        )
    for name in (ENCODER, DECODER):
        entry = manifest["graphs"].get(name)
        if not isinstance(entry, dict):
            raise ModelError(f"{path}: names no {name} graph")
        graph = folder / str(entry.get("file"))
        try:
            digest = hashlib.sha256(graph.read_bytes()).hexdigest()
        except OSError as e:
            raise ModelError(f"{graph}: unreadable ({e.strerror or e})") from None
        if digest != entry.get("sha256"):
            raise ModelError(f"{graph}: checksum mismatch with {MANIFEST_FILE}; the file is corrupt")
    return manifest


def graphs_folder(loaded: LoadedModel, options: OnnxOptions) -> Path:
    """``options.folder`` if given (it must hold ``loaded``'s graphs), else the cache folder, exported there first
    when it is missing or does not hold them intact."""
    if options.folder is not None:
        read_manifest(Path(options.folder), loaded)
        return Path(options.folder)
    folder = cache_folder(loaded, options)
    try:
        read_manifest(folder, loaded)
        return folder
    except ModelError:
        pass  # absent or broken: export (again)
    try:
        export_onnx(loaded, folder, overwrite=folder.exists())
    except (VQAudioError, OSError):
        # Another process may have placed the same graphs first; only if nothing usable is there is it an error.
        if not (folder / MANIFEST_FILE).is_file():
            raise
    read_manifest(folder, loaded)
    return folder


def onnx_runtime_codec(loaded: LoadedModel, options: OnnxOptions) -> SpectralVQVAE:
    """``loaded``'s codec with its encoder and decoder networks running in onnxruntime (see
    :mod:`vqaudio.runtime.onnx`)."""
    require("onnxruntime", "the onnxruntime runtime")
    codec = exportable(loaded.codec, loaded.name)
    folder = graphs_folder(loaded, options)
    return onnx_codec(codec, OnnxGraphs(folder, graph_specs(codec, loaded.vocoder), options))
