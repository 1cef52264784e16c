"""ONNX export (:func:`vqaudio.runtime.export.export_onnx`) and the onnxruntime models it is checked with.

The tiny model is exported once and the tests share that folder: the export matches PyTorch (the same codes,
log-mel within tolerance), refuses what it cannot export, and a missing extra is one line. Skipped when the
``onnx`` extra is not installed (``scripts/setup.sh dev`` installs it).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import speech_like, tiny_config

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")
onnx = pytest.importorskip("onnx")

from vqaudio.errors import ConfigError, ModelError, VQAudioError  # noqa: E402
from vqaudio.models.builders import build_codec  # noqa: E402
from vqaudio.models.conditional import ConditionalVQVAE, SpeakerConfig  # noqa: E402
from vqaudio.models.io import LoadedModel, load_model, save_model  # noqa: E402
from vqaudio.models.spectral import SpectralVQVAE  # noqa: E402
from vqaudio.runtime.export import OPSET, TOLERANCE, export_onnx, probe_audio  # noqa: E402
from vqaudio.runtime.graphs import graph_specs  # noqa: E402
from vqaudio.runtime.onnx import OnnxGraphs, OnnxSpectralVQVAE, onnx_codec  # noqa: E402
from vqaudio.runtime.sessions import OnnxOptions, open_session, run  # noqa: E402

SR = 16000


@pytest.fixture(scope="module")
def exported(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model exported once, shared by every test here."""
    out = tmp_path_factory.mktemp("onnx") / "tiny-onnx"
    done = export_onnx(load_model(tiny_model_dir), out)
    assert done.codes_equal == 1.0
    return out


def ours_and_theirs(loaded: LoadedModel, folder: Path) -> tuple[SpectralVQVAE, SpectralVQVAE]:
    """The onnxruntime codec on the graphs in ``folder``, and the PyTorch codec."""
    codec = loaded.codec
    assert isinstance(codec, SpectralVQVAE)
    return onnx_codec(codec, OnnxGraphs(folder, graph_specs(codec, loaded.vocoder), OnnxOptions())), codec


def close(got: torch.Tensor, want: torch.Tensor) -> bool:
    return float((got - want).abs().max()) <= TOLERANCE * max(1.0, float(want.abs().max()))


def test_export_writes_graphs_codebooks_and_manifest(exported: Path, tiny_model_dir: Path) -> None:
    manifest = json.loads((exported / "manifest.json").read_text())
    loaded = load_model(tiny_model_dir)
    assert loaded.codec is not None
    assert (manifest["model"], manifest["model_checksum"]) == (loaded.name, loaded.checksum)
    assert manifest["codes_checksum"] == loaded.codec.codes_checksum() and manifest["opset"] == OPSET == 18
    graphs = manifest["graphs"]
    names = {g: ([t["name"] for t in e["inputs"]], [t["name"] for t in e["outputs"]]) for g, e in graphs.items()}
    assert names == {
        "encoder": (["log_mel", "mel_lengths"], ["latents"]),
        "decoder": (["codes"], ["log_mel"]),
        "vocoder": (["log_mel"], ["log_magnitude", "phase"]),
    }
    for entry in graphs.values():
        path = exported / entry["file"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"]
        graph = onnx.load(str(path))
        onnx.checker.check_model(graph)
        assert [o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")] == [OPSET]
        # Batch and time are dynamic axes, named as in the manifest.
        dims = [[d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in graph.graph.input]
        assert all(shape[0] == "batch" for shape in dims)
        assert entry["checked"] and all(
            c["max_abs_diff"] <= TOLERANCE * max(1.0, c["peak"]) for c in entry["checked"].values()
        )
    from safetensors.numpy import load_file

    arrays = load_file(str(exported / "arrays.safetensors"))
    books = torch.stack([layer.codewords() for layer in loaded.codec.quantizer.layers])  # type: ignore[union-attr]
    assert np.array_equal(arrays["codebooks"], books.numpy())
    assert arrays["mel_basis"].shape == (40, 257) and arrays["mel_window"].shape == (512,)


def test_export_refuses_an_existing_folder(exported: Path, tiny_model_dir: Path) -> None:
    before = (exported / "manifest.json").read_bytes()
    with pytest.raises(VQAudioError, match="exists; pass --force"):
        export_onnx(load_model(tiny_model_dir), exported)
    assert (exported / "manifest.json").read_bytes() == before


def test_waveform_models_are_refused(tiny_waveform_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="only spectral codecs export to ONNX"):
        export_onnx(load_model(tiny_waveform_dir), tmp_path / "out")
    assert not (tmp_path / "out").exists()


@torch.inference_mode()
def test_export_matches_pytorch(exported: Path, tiny_model_dir: Path) -> None:
    """The same codes from a speech-like signal, greedy and with a beam; log-mel and vocoder outputs within
    tolerance of PyTorch's."""
    loaded = load_model(tiny_model_dir)
    ours, theirs = ours_and_theirs(loaded, exported)
    assert isinstance(ours, OnnxSpectralVQVAE)
    x = torch.from_numpy(speech_like(3.0 + 17 / SR))[None, None]
    for beam in (1, 4):
        for k in (None, 2):
            assert torch.equal(ours.encode(x, n_codebooks=k, beam=beam), theirs.encode(x, n_codebooks=k, beam=beam))
    codes = theirs.encode(x, beam=4)
    want = theirs.decode(codes)
    assert close(ours.decode(codes), want)
    assert loaded.vocoder is not None
    session = open_session(exported / "vocoder.onnx", OnnxOptions())
    for got_part, want_part in zip(run(session, {"log_mel": want}), loaded.vocoder.head_outputs(want), strict=True):
        assert close(got_part, want_part)


def test_missing_extra_is_one_line(tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes ``import onnxruntime`` fail
    with pytest.raises(VQAudioError) as e:
        export_onnx(load_model(tiny_model_dir), tmp_path / "out")
    assert "\n" not in str(e.value) and "pip install 'vqaudio[onnx]'" in str(e.value)
    assert not list(tmp_path.iterdir())


def test_options_are_checked(exported: Path) -> None:
    with pytest.raises(ConfigError, match="threads"):
        OnnxOptions(threads=0)
    with pytest.raises(ConfigError, match="optimization"):
        OnnxOptions(optimization="fast")
    session = open_session(exported / "encoder.onnx", OnnxOptions(threads=1, optimization="basic"))
    so = session.get_session_options()
    assert so.intra_op_num_threads == 1 and so.graph_optimization_level.name == "ORT_ENABLE_BASIC"


@torch.inference_mode()
def test_speaker_conditioned_decoder_takes_a_voice(tmp_path: Path) -> None:
    """A units model's decoder graph takes the speaker embedding; its reference encoder stays in torch."""
    torch.manual_seed(0)
    config = dataclasses.replace(tiny_config(vocoder=False), family="conditional", speaker=SpeakerConfig(16, 1, 8))
    model_dir = save_model(tmp_path / "units", "tiny-units", config, build_codec(config).eval())
    done = export_onnx(load_model(model_dir), tmp_path / "graphs")
    assert [t["name"] for t in done.manifest["graphs"]["decoder"]["inputs"]] == ["codes", "speaker"]
    ours, theirs = ours_and_theirs(load_model(model_dir), tmp_path / "graphs")
    assert isinstance(ours, ConditionalVQVAE) and isinstance(theirs, ConditionalVQVAE)
    x, voice = (torch.from_numpy(speech_like(1.0, f0=f, seed=s))[None, None] for f, s in ((140, 0), (220, 3)))
    codes = theirs.encode(x)
    assert torch.equal(ours.encode(x), codes)
    speaker = theirs.speaker_embedding(voice)[0]
    assert torch.equal(ours.speaker_embedding(voice)[0], speaker)
    got = {}
    for name, voiced in (("default", None), ("reference", speaker)):
        got[name] = ours.decode(codes, voiced)
        assert close(got[name], theirs.decode(codes, voiced))
    assert not torch.allclose(got["default"], got["reference"])  # the voice reached the graph


def test_probe_has_odd_lengths() -> None:
    """The check runs the graphs on lengths the export example did not have (odd, partial frames)."""
    audio, lengths = probe_audio(SR)
    assert audio.shape[:2] == (2, 1) and all(int(n) % 2 == 1 for n in lengths) and lengths[0] != lengths[1]
