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
from vqaudio.runtime.graphs import DECODER, ENCODER, VOCODER
from vqaudio.vocoders.istft_vocoder import ISTFTVocoder

RUNTIMES = ("torch", "onnxruntime")
INT8_GRAPHS = (ENCODER, DECODER, VOCODER)
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
        int8: the graphs to run as int8, any of ``encoder``, ``decoder``, ``vocoder``
            (:mod:`vqaudio.runtime.int8`: made from the float graphs on first use, MatMul and Gemm quantized),
            to trade quality for speed. An int8 ``encoder`` can change codes, so its token files carry a code-search
            identity of their own and are refused beside PyTorch's where identities are compared (compressing
            with a prior, ``tokenize --skip-existing``); an int8 ``decoder`` or ``vocoder`` leaves the codes and
            their identity alone. ``vocoder``: the learned vocoder's network then runs as its (int8) graph,
            which the float path leaves to torch.
    """

    threads: int | None = None
    optimization: str = "all"
    spinning: bool = False
    folder: Path | None = None
    cache: Path | None = None
    int8: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.int8, str):  # "decoder" would otherwise be read letter by letter
            raise ConfigError(f"int8 graphs must be a tuple of graph names, got the string {self.int8!r}")
        unknown = [str(g) for g in self.int8 if g not in INT8_GRAPHS]
        if unknown:
            raise ConfigError(f"int8 graphs must be among {', '.join(INT8_GRAPHS)}, got {', '.join(unknown)}")
        object.__setattr__(self, "int8", tuple(g for g in INT8_GRAPHS if g in self.int8))  # one order, no repeats
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


def code_search_variant(runtime: str, options: OnnxOptions | None) -> str:
    """What the execution path adds to the codes' code-search identity (:func:`vqaudio.tokenfile.code_search_id`):
    ``onnx-int8-encoder`` when an int8 encoder finds the latents (its codes may differ from PyTorch's), else
    ``""`` (the float graphs give PyTorch's codes, :mod:`vqaudio.runtime.onnx`)."""
    if runtime == "onnxruntime" and options is not None and ENCODER in options.int8:
        from vqaudio.runtime.int8 import INT8_ENCODER_VARIANT

        return INT8_ENCODER_VARIANT
    return ""


def runtime_vocoder(codec: CodecModel, vocoder: ISTFTVocoder | None) -> ISTFTVocoder | None:
    """The learned vocoder as ``codec``'s execution path runs it: its network as the vocoder graph when that
    path opened one (an int8 vocoder, :attr:`OnnxOptions.int8`), else ``vocoder`` itself."""
    session = getattr(getattr(codec, "graphs", None), "vocoder", None)
    if vocoder is None or session is None:
        return vocoder
    from vqaudio.runtime.onnx import OnnxISTFTVocoder

    return OnnxISTFTVocoder(vocoder, session)


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
