"""Export a model's networks as ONNX graphs, check them against PyTorch with onnxruntime, and write them with a
manifest (``vqaudio export-onnx MODEL -o DIR``; the graphs are described in :mod:`vqaudio.runtime.graphs`).

A folder made here holds::

    manifest.json        the model's name, checksum and codes checksum, the opset, each graph's inputs and outputs,
                         the files' sha256 and how far the check found onnxruntime from PyTorch
    encoder.onnx  decoder.onnx  vocoder.onnx (when the model has a learned vocoder)
    decoder.int8.onnx ...  with --int8: the graphs asked for, quantized (:mod:`vqaudio.runtime.int8`), listed in
                         the manifest's ``int8`` with their sha256 and the float graph's they were made from
    arrays.safetensors   codebooks [K, C, D]; mel_window [n_fft] and mel_basis [n_mels, n_fft // 2 + 1] of the front
                         end; postfilter_centre [n_mels] (a model with a post-filter); default_speaker [S] (a
                         speaker-conditioned model); head_window [n_fft] of the learned vocoder's inverse STFT

The exporter is ``torch.onnx.export(..., dynamo=True)`` (torch.export, then onnxscript), at opset :data:`OPSET`.
On torch 2.13 it is the default and the maintained one; the TorchScript exporter (``dynamo=False``) still runs
but is deprecated since torch 2.9 and announced for removal. Two things it needs here: example inputs whose
sizes are not 0 or 1 (it would fix such an axis) and whose mel frames are a whole number of code frames (the
encoder's padding to a whole block, ``(-frames) % stride``, otherwise fails to trace); the graphs then take
any length, which the check below confirms on odd lengths.

Right after exporting, each graph runs in onnxruntime on a speech-like probe (two items of other lengths, padded
to one batch) next to the PyTorch module, and the export is refused if an output is further than
:data:`TOLERANCE` of its peak (at least 1) from PyTorch's. The folder appears only when all of this succeeded.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import logging
import math
import os
import secrets
import shutil
import time
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from vqaudio.atomic import STALE_SECONDS
from vqaudio.errors import ModelError, VQAudioError
from vqaudio.models.conditional import ConditionalVQVAE
from vqaudio.models.io import LoadedModel
from vqaudio.models.spectral import SpectralVQVAE
from vqaudio.runtime.extra import require
from vqaudio.runtime.graphs import VOCODER, GraphSpec, codebooks, exportable, graph_modules
from vqaudio.runtime.graphs import graph_specs as make_specs
from vqaudio.runtime.int8 import int8_entries
from vqaudio.runtime.onnx import OnnxGraphs, onnx_codec
from vqaudio.runtime.sessions import OnnxOptions, open_session, run
from vqaudio.spectral import mel_basis, stft_window

OPSET = 18
FORMAT = 1  # of the folder's layout and the graphs' contract; a cached folder of another format is exported again
MANIFEST_FILE = "manifest.json"
ARRAYS_FILE = "arrays.safetensors"
# The largest |onnxruntime - PyTorch| accepted, as a fraction of the output's peak (at least 1). Float32 kernels
# that sum in another order differ by about 1e-6 of the peak (docs/deploy.md lists what the shipped models gave).
TOLERANCE = 1e-4
_MAX_FRAMES = 1 << 20  # a tracing bound only: the graphs themselves check no length


@dataclass(frozen=True)
class OutputCheck:
    """How far one graph output came from PyTorch's on the probe."""

    max_abs_diff: float
    peak: float  # max |PyTorch output|

    @property
    def relative(self) -> float:
        return self.max_abs_diff / max(1.0, self.peak)


@dataclass
class OnnxExport:
    """What :func:`export_onnx` wrote.

    Attributes:
        folder: the folder.
        manifest: the contents of its ``manifest.json``.
        checks: ``"graph.output"`` -> how far onnxruntime came from PyTorch on the probe.
        codes_equal: the fraction of the probe's codes (all codebooks, greedy and the card's beam) that the ONNX
            encoder's latents give exactly as PyTorch's do.
    """

    folder: Path
    manifest: dict[str, Any]
    checks: dict[str, OutputCheck]
    codes_equal: float


def probe_audio(sample_rate: int, seconds: tuple[float, ...] = (1.7, 1.13)) -> tuple[torch.Tensor, torch.Tensor]:
    """A padded batch ``[B, 1, T]`` of speech-like items (a vibrato harmonic tone under a syllable-rate envelope,
    with a little noise) and their lengths ``[B]``; lengths are odd so the graphs meet partial frames."""
    rng = np.random.default_rng(0)
    items = []
    for i, s in enumerate(seconds):
        t = np.arange(int(s * sample_rate) | 1) / sample_rate
        f0 = (110.0 + 40 * i) * (1 + 0.05 * np.sin(2 * math.pi * 4 * t))
        phase = 2 * math.pi * np.cumsum(f0) / sample_rate
        tone = sum(np.sin(k * phase) / k for k in range(1, 16))
        envelope = 0.5 * (1 - np.cos(2 * math.pi * 3 * t)) + 0.05
        items.append(0.2 * tone * envelope + 0.003 * rng.standard_normal(t.shape))
    lengths = torch.tensor([len(x) for x in items])
    audio = torch.zeros(len(items), 1, int(lengths.max()))
    for j, x in enumerate(items):
        audio[j, 0, : len(x)] = torch.from_numpy(x.astype(np.float32))
    return audio, lengths


def _examples(codec: SpectralVQVAE, spec: GraphSpec) -> tuple[tuple[torch.Tensor, ...], tuple[dict[int, Any], ...]]:
    """Tracing inputs for a graph and their dynamic axes (sizes >= 2, mel frames a whole number of code frames)."""
    dim = torch.export.Dim
    batch, stride = dim("batch", min=1, max=1 << 16), codec.net_config.total_stride
    axes = {
        "mel_frames": dim("mel_frames", min=1, max=_MAX_FRAMES),
        "frames": dim("frames", min=1, max=_MAX_FRAMES),
    }
    if codec.num_codebooks > 1:  # else the axis is the constant 1
        axes["codebooks"] = dim("codebooks", min=1, max=codec.num_codebooks)
    gen = torch.Generator().manual_seed(0)
    args: list[torch.Tensor] = []
    shapes: list[dict[int, Any]] = []
    for t in spec.inputs:
        size = [{"batch": 2, "mel_frames": 4 * stride, "frames": 4, "codebooks": 2}.get(str(a), a) for a in t.shape]
        if t.name == "mel_lengths":
            args.append(torch.tensor([4 * stride, 3 * stride]))
        elif t.dtype == "int64":
            args.append(torch.randint(0, codec.codebook_size, [int(s) for s in size], generator=gen))
        else:
            args.append(torch.randn([int(s) for s in size], generator=gen) - 4)
        shapes.append({i: batch if a == "batch" else axes[a] for i, a in enumerate(t.shape) if isinstance(a, str)})
    return tuple(args), tuple(shapes)


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """The exporter's own warnings (torchvision missing, axis renames, deprecations) say nothing to a user."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _export_graph(module: nn.Module, codec: SpectralVQVAE, spec: GraphSpec, path: Path) -> None:
    args, shapes = _examples(codec, spec)
    with _quiet_exporter(), torch.no_grad():
        torch.onnx.export(
            module,
            args,
            str(path),
            dynamo=True,
            dynamic_shapes=shapes,
            opset_version=OPSET,
            input_names=[t.name for t in spec.inputs],
            output_names=[t.name for t in spec.outputs],
            external_data=False,
            verbose=False,
        )


def _compare(got: torch.Tensor, want: torch.Tensor, what: str) -> OutputCheck:
    if got.shape != want.shape:
        raise ModelError(f"the ONNX {what} has shape {tuple(got.shape)}, PyTorch's {tuple(want.shape)}")
    check = OutputCheck(float((got - want).abs().max()), float(want.abs().max()))
    if not check.relative <= TOLERANCE:  # also refuses NaN
        raise ModelError(
            f"the ONNX {what} is {check.max_abs_diff:.3g} from PyTorch's (peak {check.peak:.3g}), "
            f"beyond the tolerance of {TOLERANCE:g} of the peak"
        )
    return check


@torch.no_grad()
def check_graphs(
    folder: Path, loaded: LoadedModel, codec: SpectralVQVAE, specs: dict[str, GraphSpec]
) -> tuple[dict[str, OutputCheck], float]:
    """Run the graphs in ``folder`` through the onnxruntime path (:mod:`vqaudio.runtime.onnx`) beside PyTorch on
    the probe; the checks per output and the fraction of codes equal. Raises :class:`ModelError` past
    :data:`TOLERANCE`."""
    options = OnnxOptions()
    ours = onnx_codec(codec, OnnxGraphs(folder, specs, options))
    audio, lengths = probe_audio(codec.sample_rate)
    want, _ = codec.latents(audio, lengths)
    got, _ = ours.latents(audio, lengths)
    checks = {"encoder.latents": _compare(got, want, "encoder's latents")}
    equal, total = 0, 0
    n_frames = [codec.num_frames(int(n)) for n in lengths]
    for beam in sorted({1, loaded.card.default_beam or 1}):
        a, b = codec.quantizer.encode(want, beam=beam), codec.quantizer.encode(got, beam=beam)
        for j, n in enumerate(n_frames):
            equal += int((a[j, :, :n] == b[j, :, :n]).sum())
            total += a[j, :, :n].numel()
    codes = codec.quantizer.encode(want)
    for k in sorted({1, codec.num_codebooks}):
        want_mel, got_mel = codec.decode(codes[:, :k]), ours.decode(codes[:, :k])
        checks[f"decoder.log_mel[K={k}]"] = _compare(got_mel, want_mel, f"decoder's log-mel ({k} codebooks)")
    if VOCODER in specs:
        assert loaded.vocoder is not None
        session = open_session(folder / specs[VOCODER].file, options)
        wants = loaded.vocoder.head_outputs(want_mel)
        gots = run(session, {"log_mel": want_mel})
        for spec, got_part, want_part in zip(specs[VOCODER].outputs, gots, wants, strict=True):
            checks[f"vocoder.{spec.name}"] = _compare(got_part, want_part, f"vocoder's {spec.name}")
    return checks, equal / max(1, total)


def _arrays(loaded: LoadedModel, codec: SpectralVQVAE) -> dict[str, torch.Tensor]:
    arrays = {
        "codebooks": codebooks(codec),
        "mel_window": stft_window(codec.mel_config.stft),
        "mel_basis": mel_basis(codec.mel_config),
    }
    if codec.decoder.postfilter is not None:
        arrays["postfilter_centre"] = codec.decoder.postfilter.centre
    if isinstance(codec, ConditionalVQVAE):  # the decoder graph's speaker input when no voice is given
        arrays["default_speaker"] = codec.decoder.default_speaker
    if loaded.vocoder is not None:
        arrays["head_window"] = stft_window(loaded.vocoder.head_stft)
    return {k: v.detach().float().contiguous().clone() for k, v in arrays.items()}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _manifest(
    loaded: LoadedModel,
    codec: SpectralVQVAE,
    specs: dict[str, GraphSpec],
    checks: dict[str, OutputCheck],
    codes_equal: float,
    folder: Path,
    arrays: dict[str, torch.Tensor],
) -> dict[str, Any]:
    net, voc = codec.net_config, loaded.vocoder
    graphs = {}
    for name, spec in specs.items():
        graphs[name] = {
            "file": spec.file,
            "sha256": _sha256(folder / spec.file),
            "inputs": [t.to_dict() for t in spec.inputs],
            "outputs": [t.to_dict() for t in spec.outputs],
            # How far onnxruntime came from PyTorch on the probe, per output: max |difference| and PyTorch's peak.
            "checked": {
                k.split(".", 1)[1]: {"max_abs_diff": c.max_abs_diff, "peak": c.peak}
                for k, c in checks.items()
                if k.startswith(name + ".")
            },
        }
    return {
        "format": FORMAT,
        "model": loaded.name,
        "model_checksum": loaded.checksum,
        "codes_checksum": codec.codes_checksum(),
        "family": codec.family,
        "opset": OPSET,
        "exporter": f"torch.onnx.export(dynamo=True), torch {torch.__version__}",
        "sample_rate": codec.sample_rate,
        "hop_length": codec.hop_length,
        "stride": net.total_stride,
        "mel": asdict(codec.mel_config),
        "num_codebooks": codec.num_codebooks,
        "codebook_size": codec.codebook_size,
        "latent_dim": net.latent_dim,
        "postfilter": {"strength": net.postfilter, "offset": net.postfilter_offset, "below": net.postfilter_below}
        if codec.has_postfilter
        else None,
        "vocoder": None if voc is None else asdict(voc.config),
        "graphs": graphs,
        "arrays": {
            "file": ARRAYS_FILE,
            "sha256": _sha256(folder / ARRAYS_FILE),
            "tensors": {k: list(v.shape) for k, v in arrays.items()},
        },
        "check": {"tolerance": TOLERANCE, "codes_equal": codes_equal},
    }


def _sweep_stale(folder: Path) -> None:
    """Remove the temp folders an export killed half-way left beside ``folder`` (untouched for an hour, as
    :func:`vqaudio.atomic.sweep_stale` does for files)."""
    for tmp in folder.parent.glob(f".{glob.escape(folder.name)}.*.tmp"):
        with contextlib.suppress(OSError):
            if tmp.is_dir() and time.time() - tmp.stat().st_mtime > STALE_SECONDS:
                shutil.rmtree(tmp, ignore_errors=True)


def _place(tmp: Path, folder: Path, overwrite: bool) -> None:
    """Give the finished ``tmp`` folder ``folder``'s name; an existing ``folder`` is replaced only with ``overwrite``
    (and moved aside first, so a failure leaves one of the two whole)."""
    if not folder.exists():
        os.rename(tmp, folder)  # fails if another writer got there first: its folder stands
        return
    if not overwrite:
        raise VQAudioError(f"{folder} exists; pass --force to replace it")
    old = folder.parent / f".{folder.name}.{secrets.token_hex(4)}.old"
    os.rename(folder, old)
    os.rename(tmp, folder)
    shutil.rmtree(old, ignore_errors=True)


def export_onnx(
    loaded: LoadedModel, folder: str | os.PathLike[str], *, overwrite: bool = False, int8: tuple[str, ...] = ()
) -> OnnxExport:
    """Export ``loaded``'s encoder, decoder and learned vocoder (if any) to ``folder`` as ONNX graphs at opset
    :data:`OPSET`, with the codebooks and the front end's arrays and a manifest, after checking them against
    PyTorch (see the module docstring); and an int8 version of each graph named in ``int8``
    (:mod:`vqaudio.runtime.int8`), listed in the manifest. ``folder`` must not exist unless ``overwrite``."""
    for package in ("onnx", "onnxscript", "onnxruntime"):
        require(package, "ONNX export")
    int8 = OnnxOptions(int8=int8).int8  # checks the names
    codec = exportable(loaded.codec, loaded.name)
    if VOCODER in int8 and loaded.vocoder is None:
        raise ModelError(f"{loaded.name} has no learned vocoder to write as int8")
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise VQAudioError(f"{folder} is a file, not a folder")
    if folder.exists() and not overwrite:
        raise VQAudioError(f"{folder} exists; pass --force to replace it")
    folder.parent.mkdir(parents=True, exist_ok=True)
    _sweep_stale(folder)
    tmp = folder.parent / f".{folder.name}.{secrets.token_hex(4)}.tmp"
    tmp.mkdir()
    try:
        specs = make_specs(codec, loaded.vocoder)
        modules = graph_modules(codec, loaded.vocoder)
        for name, module in modules.items():
            _export_graph(module, codec, specs[name], tmp / specs[name].file)
        checks, codes_equal = check_graphs(tmp, loaded, codec, specs)
        from safetensors.torch import save

        arrays = _arrays(loaded, codec)
        (tmp / ARRAYS_FILE).write_bytes(save(arrays))
        manifest = _manifest(loaded, codec, specs, checks, codes_equal, tmp, arrays)
        if int8:
            manifest["int8"] = int8_entries(tmp, specs, int8)
        (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
        _place(tmp, folder, overwrite)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return OnnxExport(folder, manifest, checks, codes_equal)
