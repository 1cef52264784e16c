"""ONNX export (``vqaudio export-onnx``) and the onnxruntime execution path (``runtime="onnxruntime"``).

The tiny model is exported once, through the CLI, and the tests share that folder: the export matches PyTorch
(the same codes, log-mel and audio within tolerance), the onnxruntime path keeps chunked == whole and batched ==
single, finds its graphs in the cache or a folder and refuses graphs of another model, and a missing extra is one
line. Skipped when the ``onnx`` extra is not installed (``scripts/setup.sh dev`` installs it).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import speech_like, tiny_config
from typer.testing import CliRunner, Result

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")
onnx = pytest.importorskip("onnx")

import vqaudio.runtime.load as runtime_load  # noqa: E402
from vqaudio.cli import app  # noqa: E402
from vqaudio.errors import ConfigError, ModelError, VQAudioError  # noqa: E402
from vqaudio.models.builders import build_codec  # noqa: E402
from vqaudio.models.conditional import ConditionalVQVAE, SpeakerConfig  # noqa: E402
from vqaudio.models.content import ContentInputConfig  # noqa: E402
from vqaudio.models.io import load_model, save_model  # noqa: E402
from vqaudio.runtime.export import OPSET, TOLERANCE, export_onnx, probe_audio  # noqa: E402
from vqaudio.runtime.onnx import OnnxSpectralVQVAE  # noqa: E402
from vqaudio.runtime.sessions import OnnxOptions, open_session, run  # noqa: E402
from vqaudio.tokenfile import load_codes  # noqa: E402
from vqaudio.tokenizer import Tokenizer, load  # noqa: E402

SR = 16000
BIG_WINDOW = 1000.0  # seconds: one window, a whole-file pass
runner = CliRunner()


def invoke(*args: object) -> Result:
    return runner.invoke(app, [str(a) for a in args])


def one_line_error(result: Result) -> str:
    """Exit code 1 and one ``error:`` line on stderr; returns it."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def exported(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model exported once by the CLI command, shared by every test here."""
    out = tmp_path_factory.mktemp("onnx") / "tiny-onnx"
    result = invoke("export-onnx", tiny_model_dir, "-o", out)
    assert result.exit_code == 0, result.output
    assert "codes equal: 100.0 %" in result.stdout
    return out


def ort_tokenizer(model_dir: Path, folder: Path, **kwargs: Any) -> Tokenizer:
    """A tokenizer on the onnxruntime path with the graphs in ``folder``; ``kwargs`` as :class:`Tokenizer`'s."""
    return Tokenizer(load_model(model_dir), runtime="onnxruntime", onnx=OnnxOptions(folder=folder), **kwargs)


# --- the export -----------------------------------------------------------------------------------------------


def test_export_writes_graphs_codebooks_and_manifest(exported: Path, tiny_model_dir: Path) -> None:
    manifest = json.loads((exported / "manifest.json").read_text())
    tok = load(tiny_model_dir)
    assert (manifest["model"], manifest["model_checksum"]) == (tok.name, tok.checksum)
    assert manifest["codes_checksum"] == tok.codes_checksum and manifest["opset"] == OPSET == 18
    assert sorted(manifest["graphs"]) == ["decoder", "encoder", "vocoder"]
    names = {
        g: ([t["name"] for t in e["inputs"]], [t["name"] for t in e["outputs"]]) for g, e in manifest["graphs"].items()
    }
    assert names == {
        "encoder": (["log_mel", "mel_lengths"], ["latents"]),
        "decoder": (["codes"], ["log_mel"]),
        "vocoder": (["log_mel"], ["log_magnitude", "phase"]),
    }
    for entry in manifest["graphs"].values():
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
    books = torch.stack([layer.codewords() for layer in tok.model.quantizer.layers])  # type: ignore[union-attr]
    assert np.array_equal(arrays["codebooks"], books.numpy())
    assert arrays["mel_basis"].shape == (40, 257) and arrays["mel_window"].shape == (512,)


def test_export_refuses_an_existing_folder_without_force(exported: Path, tiny_model_dir: Path) -> None:
    before = (exported / "manifest.json").read_bytes()
    line = one_line_error(invoke("export-onnx", tiny_model_dir, "-o", exported))
    assert "exists" in line and "--force" in line
    assert (exported / "manifest.json").read_bytes() == before
    with pytest.raises(VQAudioError, match="exists"):
        export_onnx(load_model(tiny_model_dir), exported)


def test_waveform_models_are_refused(tiny_waveform_dir: Path, tmp_path: Path) -> None:
    line = one_line_error(invoke("export-onnx", tiny_waveform_dir, "-o", tmp_path / "out"))
    assert "only spectral codecs export to ONNX" in line
    assert not (tmp_path / "out").exists()
    with pytest.raises(ModelError, match="only spectral"):
        load(tiny_waveform_dir, runtime="onnxruntime", onnx=OnnxOptions(cache=tmp_path))


def test_export_matches_pytorch(exported: Path, tiny_model_dir: Path) -> None:
    """The same codes from a speech-like signal, greedy and with a beam; log-mel, vocoder outputs and audio
    within tolerance of PyTorch's (both in float32)."""
    x = speech_like(3.0 + 17 / SR)
    for beam in (1, 4):
        torch_tok = Tokenizer(load_model(tiny_model_dir), beam=beam, decode_precision="float32")
        ours = ort_tokenizer(tiny_model_dir, exported, beam=beam, decode_precision="float32")
        assert isinstance(ours.model, OnnxSpectralVQVAE)
        for k in (None, 2):
            a, b = torch_tok.encode(x, SR, n_codebooks=k), ours.encode(x, SR, n_codebooks=k)
            assert torch.equal(a.codes, b.codes)
            assert a.header() == b.header()  # the same code search and codes checksum: the same codes
    with torch.inference_mode():
        codes = a.codes[None]
        want, got = torch_tok.model.decode(codes), ours.model.decode(codes)
        assert float((got - want).abs().max()) <= TOLERANCE * max(1.0, float(want.abs().max()))
        session = open_session(exported / "vocoder.onnx", OnnxOptions())
        assert torch_tok.loaded.vocoder is not None
        for g, w in zip(run(session, {"log_mel": want}), torch_tok.loaded.vocoder.head_outputs(want), strict=True):
            assert float((g - w).abs().max()) <= TOLERANCE * max(1.0, float(w.abs().max()))
    audio_want, audio_got = torch_tok.decode(a).samples, ours.decode(a).samples
    # Measured on the tiny model: about 1e-6 of the peak (the graphs' float32 rounding, through the vocoder).
    assert float((audio_got - audio_want).abs().max()) <= 1e-4 * float(audio_want.abs().max())


# --- the onnxruntime path keeps the tokenizer's promises -------------------------------------------------------


@pytest.mark.parametrize("beam", [1, 4])
def test_chunked_codes_equal_whole(exported: Path, tiny_model_dir: Path, beam: int) -> None:
    whole = ort_tokenizer(tiny_model_dir, exported, window_seconds=BIG_WINDOW, beam=beam)
    chunked = ort_tokenizer(tiny_model_dir, exported, window_seconds=0.5, beam=beam)
    x = speech_like(4.0 + 17 / SR)
    assert math.ceil(x.size / 320) >= 8 * chunked.window_frames
    assert torch.equal(whole.encode(x, SR).codes, chunked.encode(x, SR).codes)
    one_frame = ort_tokenizer(tiny_model_dir, exported, window_seconds=0.02, beam=beam)
    assert one_frame.window_frames == 1
    assert torch.equal(one_frame.encode(x[:SR], SR).codes, whole.encode(x[:SR], SR).codes)


def test_chunked_decode_equals_whole(exported: Path, tiny_model_dir: Path) -> None:
    whole = ort_tokenizer(tiny_model_dir, exported, window_seconds=BIG_WINDOW)
    enc = whole.encode(speech_like(3.0), SR)
    reference = whole.decode(enc).samples
    for window in (0.5, 0.1):
        out = ort_tokenizer(tiny_model_dir, exported, window_seconds=window).decode(enc).samples
        assert out.shape == reference.shape
        assert float((out - reference).abs().max()) <= 1e-4


@pytest.mark.parametrize("beam", [1, 4])
def test_batch_equals_single(exported: Path, tiny_model_dir: Path, beam: int) -> None:
    tok = ort_tokenizer(tiny_model_dir, exported, beam=beam)
    xs = [torch.from_numpy(speech_like(s, f0=100 + 30 * i, seed=i)) for i, s in enumerate((0.37, 1.21, 0.8))]
    for x, got in zip(xs, tok.encode_batch(xs, SR), strict=True):
        alone = tok.encode(x, SR)
        assert torch.equal(got.codes, alone.codes) and got.original_length == alone.original_length


def test_cli_runtime_gives_the_codes_of_torch(exported: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    wav = tmp_path / "speech.wav"
    sf.write(wav, speech_like(1.5), SR)
    for runtime, extra in (("torch", ()), ("onnxruntime", ("--onnx-dir", exported))):
        result = invoke(
            "tokenize", wav, "-o", tmp_path / f"{runtime}.vqt", "-m", tiny_model_dir, "--runtime", runtime, *extra
        )
        assert result.exit_code == 0, result.output
    a, b = load_codes(tmp_path / "torch.vqt"), load_codes(tmp_path / "onnxruntime.vqt")
    assert np.array_equal(a.codes, b.codes) and a.header == b.header
    args = ("-m", tiny_model_dir, "--runtime", "onnxruntime", "--onnx-dir", exported)
    assert invoke("detokenize", tmp_path / "onnxruntime.vqt", tmp_path / "out.wav", *args).exit_code == 0
    assert invoke("resynth", wav, tmp_path / "again.wav", *args).exit_code == 0
    line = one_line_error(invoke("resynth", wav, tmp_path / "x.wav", "-m", tiny_model_dir, "--onnx-dir", exported))
    assert "--onnx-dir needs --runtime onnxruntime" in line


# --- where the graphs come from ---------------------------------------------------------------------------------


def test_cache_exports_on_first_use_only(
    exported: Path, tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[Path] = []

    def fake_export(loaded: object, folder: Path, *, overwrite: bool = False) -> None:
        made.append(Path(folder))  # the real export is tested above; copy its result
        if overwrite:
            shutil.rmtree(folder)
        shutil.copytree(exported, folder)

    monkeypatch.setattr(runtime_load, "export_onnx", fake_export)
    monkeypatch.setenv("VQAUDIO_CACHE", str(tmp_path / "cache"))
    first = load(tiny_model_dir, runtime="onnxruntime")
    second = load(tiny_model_dir, runtime="onnxruntime")
    assert len(made) == 1 and made[0].parent == tmp_path / "cache" / "onnx"
    assert first.checksum[:16] in made[0].name and f"opset{OPSET}" in made[0].name
    x = speech_like(1.0)
    assert torch.equal(first.encode(x, SR).codes, second.encode(x, SR).codes)
    (made[0] / "encoder.onnx").write_bytes(b"not a graph")  # a broken cache is exported again
    load(tiny_model_dir, runtime="onnxruntime")
    assert len(made) == 2


def test_graphs_of_another_model_or_broken_are_refused(
    exported: Path, other_model_dir: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    with pytest.raises(ModelError, match=r"holds the graphs of tiny \(checksum \w+\), not of the loaded tiny") as e:
        load(other_model_dir, runtime="onnxruntime", onnx=OnnxOptions(folder=exported))
    assert "\n" not in str(e.value)
    broken = tmp_path / "broken"
    shutil.copytree(exported, broken)
    (broken / "decoder.onnx").write_bytes(b"not a graph")
    with pytest.raises(ModelError, match="checksum mismatch"):
        load(tiny_model_dir, runtime="onnxruntime", onnx=OnnxOptions(folder=broken))
    with pytest.raises(ModelError, match="not a folder made by export-onnx"):
        load(tiny_model_dir, runtime="onnxruntime", onnx=OnnxOptions(folder=tmp_path))


def test_missing_extra_is_one_line(tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes ``import onnxruntime`` fail
    with pytest.raises(VQAudioError) as e:
        load(tiny_model_dir, runtime="onnxruntime", onnx=OnnxOptions(cache=tmp_path))
    assert "\n" not in str(e.value) and "pip install 'vqaudio[onnx]'" in str(e.value)
    wav = tmp_path / "speech.wav"
    sf.write(wav, speech_like(0.5), SR)
    for args in (
        ("tokenize", wav, "-m", tiny_model_dir, "--runtime", "onnxruntime"),
        ("export-onnx", tiny_model_dir, "-o", tmp_path / "out"),
    ):
        assert "pip install 'vqaudio[onnx]'" in one_line_error(invoke(*args))
    assert not list(tmp_path.glob("*out*"))


def test_options_are_checked(exported: Path, tiny_model_dir: Path) -> None:
    with pytest.raises(ConfigError, match="threads"):
        OnnxOptions(threads=0)
    with pytest.raises(ConfigError, match="optimization"):
        OnnxOptions(optimization="fast")
    with pytest.raises(VQAudioError, match="runtime must be one of torch, onnxruntime"):
        load(tiny_model_dir, runtime="tensorrt")
    with pytest.raises(VQAudioError, match="runtime is torch"):
        load(tiny_model_dir, onnx=OnnxOptions())
    session = open_session(exported / "encoder.onnx", OnnxOptions(threads=1, optimization="basic"))
    so = session.get_session_options()
    assert so.intra_op_num_threads == 1 and so.graph_optimization_level.name == "ORT_ENABLE_BASIC"


def test_speaker_conditioned_decoder_takes_a_voice(tmp_path: Path) -> None:
    """A units model's decoder graph takes the speaker embedding; its reference encoder stays in torch."""
    torch.manual_seed(0)
    config = dataclasses.replace(tiny_config(vocoder=False), family="conditional", speaker=SpeakerConfig(16, 1, 8))
    codec = build_codec(config).eval()
    model_dir = save_model(tmp_path / "units", "tiny-units", config, codec)
    done = export_onnx(load_model(model_dir), tmp_path / "graphs")
    assert [t["name"] for t in done.manifest["graphs"]["decoder"]["inputs"]] == ["codes", "speaker"]
    ours = load(
        model_dir, runtime="onnxruntime", onnx=OnnxOptions(folder=tmp_path / "graphs"), decode_precision="float32"
    )
    theirs = load(model_dir, decode_precision="float32")
    assert isinstance(ours.model, ConditionalVQVAE) and isinstance(theirs.model, ConditionalVQVAE)
    x, voice = speech_like(1.0), speech_like(1.0, f0=220, seed=3)
    enc = theirs.encode(x, SR)
    assert torch.equal(ours.encode(x, SR).codes, enc.codes)
    speaker = theirs.speaker_embedding(voice, SR)
    assert torch.equal(ours.speaker_embedding(voice, SR), speaker)
    got = {}
    with torch.inference_mode():  # the log-mel: this model has only Griffin-Lim, whose phase search amplifies rounding
        for name, voiced in (("default", None), ("reference", speaker)):
            want, got[name] = theirs.model.decode(enc.codes[None], voiced), ours.model.decode(enc.codes[None], voiced)
            assert float((got[name] - want).abs().max()) <= TOLERANCE * max(1.0, float(want.abs().max()))
    assert not torch.allclose(got["default"], got["reference"])  # the voice reached the graph


def test_content_input_is_in_the_encoder_graph(tmp_path: Path) -> None:
    """A units model whose encoder reads liftered, mean-removed log-mel gives the same codes through ONNX."""
    torch.manual_seed(0)
    config = dataclasses.replace(
        tiny_config(vocoder=False),
        family="conditional",
        speaker=SpeakerConfig(16, 1, 8),
        content=ContentInputConfig(lifter=6, mean_seconds=0.4),
    )
    model_dir = save_model(tmp_path / "units", "tiny-units", config, build_codec(config).eval())
    export_onnx(load_model(model_dir), tmp_path / "graphs")
    ours = load(model_dir, runtime="onnxruntime", onnx=OnnxOptions(folder=tmp_path / "graphs"))
    theirs = load(model_dir)
    for seconds in (0.6, 1.7):
        x = speech_like(seconds, seed=int(seconds * 10))
        assert torch.equal(ours.encode(x, SR).codes, theirs.encode(x, SR).codes)


def test_probe_has_odd_lengths() -> None:
    """The check runs the graphs on lengths the export example did not have (odd, partial frames)."""
    audio, lengths = probe_audio(SR)
    assert audio.shape[:2] == (2, 1) and all(int(n) % 2 == 1 for n in lengths) and lengths[0] != lengths[1]


@pytest.mark.slow
@pytest.mark.parametrize("beam", [1, 8])
def test_speech16k_gives_the_codes_of_torch(tmp_path_factory: pytest.TempPathFactory, beam: int) -> None:
    """speech-16k through onnxruntime gives exactly PyTorch's codes of examples/hello.wav at every codebook count
    (exported to a cache folder on first use), and log-mel within tolerance."""
    cache = tmp_path_factory.getbasetemp() / "speech16k-onnx-cache"  # one export for both beams
    hello = Path(__file__).resolve().parents[1] / "examples" / "hello.wav"
    ours = load("speech-16k", beam=beam, runtime="onnxruntime", onnx=OnnxOptions(cache=cache))
    theirs = load("speech-16k", beam=beam)
    for k in range(1, theirs.num_codebooks + 1):
        want = theirs.encode(hello, n_codebooks=k)
        got = ours.encode(hello, n_codebooks=k)
        assert torch.equal(got.codes, want.codes), f"k={k}: {int((got.codes != want.codes).sum())} codes differ"
    with torch.inference_mode():
        codes = want.codes[None]
        mel_want, mel_got = theirs.model.decode(codes), ours.model.decode(codes)
    assert float((mel_got - mel_want).abs().max()) <= TOLERANCE * max(1.0, float(mel_want.abs().max()))
