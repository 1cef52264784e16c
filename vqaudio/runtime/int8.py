"""int8 graphs: a float graph's weights stored as int8, its activations quantized as it runs.

Each int8 graph is made from the float graph beside it by onnxruntime's dynamic quantization
(``onnxruntime.quantization.quantize_dynamic``): weights int8 per tensor, activations uint8 with a scale and
zero point computed on every run, so no calibration data is needed and nothing about the audio is baked in.

Only **MatMul and Gemm** are quantized (:data:`INT8_OPS`). In these networks they are the ConvNeXt blocks'
pointwise layers, which hold most of the weights and multiply-adds. The convolutions (the input convolution,
the depthwise ones, the stride and upsampling ones) stay float32: quantizing them as well (``ConvInteger``) put
the tiny test model's decoder log-mel 1e-2 of its peak from the float graph's, against 2e-5 with MatMul and Gemm
alone (the encoder: 2e-2 against 4e-5; per-channel weights changed neither much). The per-tensor scale of a
raw log-mel input, or of a depthwise kernel, is too coarse. They are also a small part of the arithmetic.

The file, ``<graph>.int8.onnx``, is written once beside the float graph (the cache folder, or the folder
``vqaudio export-onnx --int8`` wrote) and reused. Its metadata holds a key: the float graph's sha256, the op
types and :data:`RECIPE`. A graph whose key does not match (the float graph was exported again, or the
recipe changed) or that onnxruntime cannot open is made again, so a stale int8 graph is never run.

What int8 changes: an int8 **encoder** moves the latents enough to change codes near a tie, so token files
it makes carry their own code-search identity (:data:`INT8_ENCODER_VARIANT`, see
:func:`vqaudio.tokenfile.code_search_id`) and are never mixed with PyTorch's codes. An int8 decoder or vocoder
only changes the audio made from codes, not the codes: their files keep the usual identity.

Windows: each run quantizes its activations with a scale of its own, over the whole window and batch, so an
output depends slightly on what else its window holds. Chunked output equals a whole pass on the tiny test
model (tests/test_onnx_int8.py), but an int8 encoder on a real model may flip a near-tie code between the two.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import secrets
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vqaudio.errors import ModelError
from vqaudio.runtime.extra import require
from vqaudio.runtime.graphs import GraphSpec

INT8_OPS = ("MatMul", "Gemm")
RECIPE = "dynamic-int8-v1"  # bump when the quantization settings change: older int8 graphs are then made again
KEY = "vqaudio.int8_key"
INT8_ENCODER_VARIANT = "onnx-int8-encoder"


def int8_file(float_file: str) -> str:
    """``decoder.onnx`` -> ``decoder.int8.onnx``."""
    return float_file.removesuffix(".onnx") + ".int8.onnx"


def int8_key(float_graph: Path) -> str:
    """What an int8 graph made from ``float_graph`` records of its making (see the module docstring)."""
    digest = hashlib.sha256(float_graph.read_bytes()).hexdigest()
    return f"{digest} {'+'.join(INT8_OPS)} {RECIPE}"


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The quantizer's advice (run its pre-processing, which would re-infer shapes the exporter already gave)
    says nothing to a user."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        root.setLevel(level)


def quantize_graph(float_graph: Path, out: Path) -> Path:
    """Write the int8 version of ``float_graph`` to ``out`` (atomically: a reader sees the old file or the
    new one), with its key in the metadata; returns ``out``."""
    onnx = require("onnx", "int8 graphs")
    quantization = require("onnxruntime.quantization", "int8 graphs")
    key = int8_key(float_graph)
    tmp = out.parent / f".{out.name}.{secrets.token_hex(4)}.tmp"
    try:
        with _quiet():
            quantization.quantize_dynamic(
                float_graph,
                tmp,
                op_types_to_quantize=list(INT8_OPS),
                per_channel=False,
                weight_type=quantization.QuantType.QInt8,
            )
        model = onnx.load(str(tmp))
        entry = model.metadata_props.add()
        entry.key, entry.value = KEY, key
        onnx.save(model, str(tmp))
        os.replace(tmp, out)
    except OSError as e:
        raise ModelError(
            f"cannot write the int8 graph {out}: {e.strerror or e}; make it with export-onnx --int8"
        ) from None
    finally:
        tmp.unlink(missing_ok=True)
    return out


def open_int8(float_graph: Path, opener: Any) -> Any:
    """A session (``opener(path)``) on the int8 graph beside ``float_graph``, made first if it is missing,
    stale or unreadable."""
    path = float_graph.parent / int8_file(float_graph.name)
    key = int8_key(float_graph)
    if path.is_file():
        try:
            session = opener(path)
            if session.get_modelmeta().custom_metadata_map.get(KEY) == key:
                return session
        except Exception:  # noqa: BLE001 - onnxruntime's own errors: a broken file is simply made again
            pass
    return opener(quantize_graph(float_graph, path))


def int8_entries(folder: Path, specs: dict[str, GraphSpec], names: tuple[str, ...]) -> dict[str, Any]:
    """Quantize the graphs ``names`` of ``folder``; what a manifest lists of each (``int8``)."""
    entries: dict[str, Any] = {}
    for name in names:
        graph = folder / specs[name].file
        out = quantize_graph(graph, folder / int8_file(graph.name))
        entries[name] = {
            "file": out.name,
            "sha256": hashlib.sha256(out.read_bytes()).hexdigest(),
            "key": int8_key(graph),
            "op_types": list(INT8_OPS),
            "weights": "int8, one scale per tensor",
            "activations": "uint8, scale and zero point computed on each run",
        }
    return entries
