"""int8 graphs on the onnxruntime path (``OnnxOptions.int8``, ``--int8``; :mod:`vqaudio.runtime.int8`).

Beside tests/test_onnx.py (which would pass 400 lines with these): the tiny model is exported once with
``export-onnx --int8`` and shared. The int8 graphs stay close to the float ones, keep chunked == whole on the tiny
model, are made again when stale, and an int8 encoder's codes carry their own code-search identity, which
compressing with a prior and ``tokenize --skip-existing`` refuse to mix with the float encoder's.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import soundfile as sf
import torch
from conftest import speech_like
from typer.testing import CliRunner, Result

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")
onnx = pytest.importorskip("onnx")

from vqaudio.cli import app  # noqa: E402
from vqaudio.compress import compress  # noqa: E402
from vqaudio.errors import ConfigError, VQAudioError  # noqa: E402
from vqaudio.models.io import load_model  # noqa: E402
from vqaudio.prior.io import PriorCard  # noqa: E402
from vqaudio.runtime.int8 import INT8_ENCODER_VARIANT, KEY, int8_key  # noqa: E402
from vqaudio.runtime.onnx import OnnxISTFTVocoder  # noqa: E402
from vqaudio.runtime.sessions import OnnxOptions  # noqa: E402
from vqaudio.tokenfile import code_search_variant, load_codes, parse_code_search  # noqa: E402
from vqaudio.tokenizer import Tokenizer  # noqa: E402

SR = 16000
ALL = ("encoder", "decoder", "vocoder")
runner = CliRunner()


def invoke(*args: object) -> Result:
    return runner.invoke(app, [str(a) for a in args])


def one_line_error(result: Result) -> str:
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def exported(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("onnx-int8") / "tiny-onnx"
    result = invoke("export-onnx", tiny_model_dir, "-o", out, "--int8", "vocoder,decoder,encoder")
    assert result.exit_code == 0, result.output
    assert "decoder.int8.onnx" in result.stdout
    return out


def tok(model_dir: Path, folder: Path, int8: tuple[str, ...], **kwargs: object) -> Tokenizer:
    options = OnnxOptions(folder=folder, int8=int8)
    return Tokenizer(load_model(model_dir), runtime="onnxruntime", onnx=options, **kwargs)  # type: ignore[arg-type]


def test_export_lists_the_int8_graphs(exported: Path) -> None:
    manifest = json.loads((exported / "manifest.json").read_text())
    assert list(manifest["int8"]) == list(ALL)
    for name, entry in manifest["int8"].items():
        assert entry["file"] == f"{name}.int8.onnx" and entry["op_types"] == ["MatMul", "Gemm"]
        graph = onnx.load(str(exported / entry["file"]))
        ops = {n.op_type for n in graph.graph.node}
        assert "MatMulInteger" in ops and "ConvInteger" not in ops and "Conv" in ops  # convolutions stay float
        key = {p.key: p.value for p in graph.metadata_props}[KEY]
        assert key == entry["key"] == int8_key(exported / f"{name}.onnx")


def test_int8_decoder_is_close_to_float(exported: Path, tiny_model_dir: Path) -> None:
    """The int8 decoder's log-mel within 1e-2 of the float graph's peak (the tiny model gives about 2e-5), but not
    equal to it: the int8 graph did run. The learned vocoder then runs as its int8 graph."""
    floats = tok(tiny_model_dir, exported, (), decode_precision="float32")
    ints = tok(tiny_model_dir, exported, ALL, decode_precision="float32")
    assert isinstance(ints.vocoder("learned"), OnnxISTFTVocoder)
    assert not isinstance(floats.vocoder("learned"), OnnxISTFTVocoder)
    codes = floats.encode(speech_like(2.0), SR).codes[None]
    with torch.inference_mode():
        want, got = floats.model.decode(codes), ints.model.decode(codes)
    diff = float((got - want).abs().max())
    assert 0 < diff <= 1e-2 * float(want.abs().max())


def test_int8_chunked_equals_whole(exported: Path, tiny_model_dir: Path) -> None:
    """On the tiny model: the same codes and, within 1e-4, the same audio, windowed or whole. (Each run quantizes
    its activations with its own scale, so on a real model a near-tie code may flip between the two: docs/deploy.md.)
    """
    whole = tok(tiny_model_dir, exported, ALL, window_seconds=1000.0)
    chunked = tok(tiny_model_dir, exported, ALL, window_seconds=0.5)
    x = speech_like(4.0 + 17 / SR)
    a, b = whole.encode(x, SR), chunked.encode(x, SR)
    assert torch.equal(a.codes, b.codes)
    assert float((whole.decode(a).samples - chunked.decode(a).samples).abs().max()) <= 1e-4


def test_int8_encoder_codes_have_their_own_identity(exported: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    floats = tok(tiny_model_dir, exported, ())
    x = speech_like(1.0)
    a = floats.encode(x, SR)
    b = tok(tiny_model_dir, exported, ("encoder",)).encode(x, SR)
    assert b.code_search == a.code_search + "+" + INT8_ENCODER_VARIANT
    assert parse_code_search(b.code_search) == parse_code_search(a.code_search)  # version and beam still read
    assert code_search_variant(a.code_search) == ""
    for other in (("decoder",), ("vocoder",), ("decoder", "vocoder")):  # codes untouched: the float identity
        assert tok(tiny_model_dir, exported, other).encode(x, SR).header() == a.header()
    # A token file keeps it, and the model decodes it.
    from vqaudio.tokenfile import save_codes

    save_codes(tmp_path / "b.vqt", b.codes.numpy(), b.header(), fmt="vqt")
    assert load_codes(tmp_path / "b.vqt").header.code_search == b.code_search
    floats.decode(load_codes(tmp_path / "b.vqt"))
    # A prior of the float encoder's codes refuses the int8 encoder's, and the reverse.
    card = PriorCard(
        name="p",
        codec=a.model_id,
        codes_checksum=a.codes_checksum,
        code_search=a.code_search,
        checksum="0" * 64,
        config=None,
        card={},  # type: ignore[arg-type]  # compress() refuses before it reads the config
    )
    with pytest.raises(VQAudioError, match="must not be mixed") as e:
        compress(b.codes.numpy(), b.header(), None, card)  # type: ignore[arg-type]
    assert "\n" not in str(e.value)
    with pytest.raises(VQAudioError, match="must not be mixed"):
        compress(a.codes.numpy(), a.header(), None, dataclasses.replace(card, code_search=b.code_search))  # type: ignore[arg-type]


def test_skip_existing_does_not_keep_the_other_encoders_codes(
    exported: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    wav = tmp_path / "speech.wav"
    sf.write(wav, speech_like(1.0), SR)
    out = tmp_path / "speech.vqt"
    base = ("tokenize", wav, "-o", out, "-m", tiny_model_dir, "--runtime", "onnxruntime", "--onnx-dir", exported)
    assert invoke(*base).exit_code == 0
    again = invoke(*base, "--int8", "encoder", "--skip-existing")
    assert again.exit_code == 1 and "not a token file of" in again.stderr  # refused, not kept
    assert invoke(*base, "--int8", "encoder", "--force").exit_code == 0
    assert code_search_variant(load_codes(out).header.code_search) == INT8_ENCODER_VARIANT
    kept = invoke(*base, "--int8", "encoder,decoder", "--skip-existing")
    assert kept.exit_code == 0 and "skipped" in kept.stdout


def test_stale_int8_graph_is_made_again(exported: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    import shutil

    folder = tmp_path / "graphs"
    shutil.copytree(exported, folder)
    graph = onnx.load(str(folder / "decoder.int8.onnx"))
    for p in graph.metadata_props:
        if p.key == KEY:
            p.value = "0" * 64 + " MatMul+Gemm old"  # as if made from another float graph
    onnx.save(graph, str(folder / "decoder.int8.onnx"))
    (folder / "encoder.int8.onnx").unlink()
    tok(tiny_model_dir, folder, ("encoder", "decoder"))
    for name in ("encoder", "decoder"):
        made = onnx.load(str(folder / f"{name}.int8.onnx"))
        assert {p.key: p.value for p in made.metadata_props}[KEY] == int8_key(folder / f"{name}.onnx")


def test_bad_int8_values_are_one_line(exported: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    wav = tmp_path / "speech.wav"
    sf.write(wav, speech_like(0.5), SR)
    ort = ("--runtime", "onnxruntime", "--onnx-dir", exported)
    for args, expected in (
        (("tokenize", wav, "-m", tiny_model_dir, *ort, "--int8", "encoder,postnet"), "--int8 takes graph names"),
        (("tokenize", wav, "-m", tiny_model_dir, *ort, "--int8", ""), "--int8 takes graph names"),
        (("resynth", wav, tmp_path / "x.wav", "-m", tiny_model_dir, "--int8", "decoder"), "--int8 needs --runtime"),
        (("detokenize", tmp_path / "none.vqt", tmp_path / "y.wav", "--int8", "decoder"), "--int8 needs --runtime"),
        (("export-onnx", tiny_model_dir, "-o", tmp_path / "out", "--int8", "Decoder"), "--int8 takes graph names"),
    ):
        assert expected in one_line_error(invoke(*args))
    assert not (tmp_path / "out").exists()
    with pytest.raises(ConfigError, match="int8 graphs must be among"):
        OnnxOptions(int8=("postnet",))
    with pytest.raises(ConfigError, match="tuple of graph names"):
        OnnxOptions(int8="decoder")  # type: ignore[arg-type]
    assert OnnxOptions(int8=("decoder", "encoder", "decoder")).int8 == ("encoder", "decoder")
