"""onnxruntime sessions: how many threads, how much graph optimisation, and where the graphs come from."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vqaudio.errors import ConfigError, ModelError, VQAudioError
from vqaudio.models.base import CodecModel
from vqaudio.models.io import LoadedModel
from vqaudio.runtime.extra import require

RUNTIMES = ("torch", "onnxruntime")
OPTIMIZATIONS = ("disabled", "basic", "extended", "all")


@dataclass(frozen=True)
class OnnxOptions:
    """How the ``onnxruntime`` runtime runs its graphs.

    Attributes:
        threads: intra-op threads of each session; ``None``: torch's thread count (``torch.get_num_threads()``),
            the setting the rest of the pipeline (front end, code search, back ends) runs with.
        optimization: onnxruntime's graph optimisation level, ``disabled``, ``basic``, ``extended`` or ``all``.
        spinning: whether idle session threads spin waiting for the next run. Off by default: between two
            graph runs torch does the code search or the back end on the same cores, and spinning threads
            would take them from it.
        folder: a folder made by ``vqaudio export-onnx`` to take the graphs from; ``None``: the cache, where they
            are exported on first use (:func:`cache_folder`).
        cache: the cache's root; ``None``: ``$VQAUDIO_CACHE``, else ``$XDG_CACHE_HOME/vqaudio``, else
            ``~/.cache/vqaudio``.
    """

    threads: int | None = None
    optimization: str = "all"
    spinning: bool = False
    folder: Path | None = None
    cache: Path | None = None

    def __post_init__(self) -> None:
        if self.threads is not None and (isinstance(self.threads, bool) or not 1 <= self.threads <= 1024):
            raise ConfigError(f"onnxruntime threads must be a whole number from 1 to 1024, got {self.threads!r}")
        if self.optimization not in OPTIMIZATIONS:
            raise ConfigError(
                f"onnxruntime optimization must be one of {', '.join(OPTIMIZATIONS)}, got {self.optimization!r}"
            )


def runtime_codec(loaded: LoadedModel, runtime: str, options: OnnxOptions | None = None) -> CodecModel:
    """``loaded``'s codec as ``runtime`` runs it: ``torch``, the model itself; ``onnxruntime``, the same model with
    its encoder and decoder networks running as ONNX graphs (:mod:`vqaudio.runtime.onnx`), set up by ``options``."""
    if runtime not in RUNTIMES:
        raise VQAudioError(f"runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
    if loaded.codec is None:
        raise ModelError(f"{loaded.path}: holds only a vocoder, not a codec")
    if runtime == "torch":
        if options is not None:
            raise VQAudioError("onnxruntime options were given, but the runtime is torch")
        return loaded.codec
    from vqaudio.runtime.load import onnx_runtime_codec  # exporting needs torch.onnx: loaded only when asked for

    return onnx_runtime_codec(loaded, options or OnnxOptions())


def cache_root(options: OnnxOptions) -> Path:
    """The folder exported graphs are cached under (see :attr:`OnnxOptions.cache`)."""
    if options.cache is not None:
        return Path(options.cache)
    if os.environ.get("VQAUDIO_CACHE"):
        return Path(os.environ["VQAUDIO_CACHE"])
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "vqaudio"


def open_session(path: Path, options: OnnxOptions) -> Any:
    """An ``onnxruntime.InferenceSession`` on the CPU for the graph at ``path``."""
    ort = require("onnxruntime", "the onnxruntime runtime")
    so = ort.SessionOptions()
    so.intra_op_num_threads = options.threads or torch.get_num_threads()
    # One graph runs at a time: parallelism is inside the operators.
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = {
        "disabled": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[options.optimization]
    spin = "1" if options.spinning else "0"
    so.add_session_config_entry("session.intra_op.allow_spinning", spin)
    so.add_session_config_entry("session.inter_op.allow_spinning", spin)
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def run(session: Any, feeds: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    """Run ``session`` on torch tensors (made contiguous numpy arrays without a copy where possible); its outputs
    as torch tensors."""
    arrays = {name: np.ascontiguousarray(t.detach().cpu().numpy()) for name, t in feeds.items()}
    return [torch.from_numpy(np.asarray(out)) for out in session.run(None, arrays)]
