"""Multi-scale codes (issue 36): the quantizer, the superframe layout and its levels, token files of several frame
rates, and the tokenizer's guarantees (chunked == whole, batched == single) for a multi-scale model."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import speech_like, tiny_config
from typer.testing import CliRunner

from vqaudio.cli import app
from vqaudio.errors import ConfigError, TokenFileError, VQAudioError
from vqaudio.models import build_codec, build_vocoder, load_model, save_model
from vqaudio.quantizers import VQConfig
from vqaudio.quantizers.multiscale import MultiScaleConfig, MultiScaleQuantizer, pool
from vqaudio.tokenfile import load_codes, read_tokens, save_codes
from vqaudio.tokenfile.levels import CodeLayout
from vqaudio.tokenizer import Tokenizer

STRIDES = (4, 4, 2, 1)
SR = 16000


def ms_config(strides: tuple[int, ...] = STRIDES) -> MultiScaleConfig:
    return MultiScaleConfig(vq=VQConfig(dim=16, codebook_size=64, kmeans_init=False), strides=strides)


@pytest.fixture(scope="module")
def ms_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(3)
    config = dataclasses.replace(tiny_config(), quantizer="multiscale", multiscale=ms_config())
    codec = build_codec(config).eval()
    return save_model(
        tmp_path_factory.mktemp("ms") / "tiny-ms", "tiny-ms", config, codec, build_vocoder(config), card={}
    )


# --- layout -----------------------------------------------------------------------------------------------------


def test_layout_rows_levels_and_round_trip() -> None:
    layout = CodeLayout(STRIDES)
    assert layout.superframe == 4 and layout.rates == (4, 2, 1)
    assert layout.row_counts == (1, 2, 4, 8)
    assert layout.level_shapes(4, 10) == [(2, 10), (1, 20), (0, 40)]
    rng = np.random.default_rng(0)
    for rows in layout.row_counts:
        codes = rng.integers(0, 64, (rows, 10))
        levels = layout.split(codes)
        assert [lv.shape for lv in levels] == layout.level_shapes(rows, 10)
        assert np.array_equal(layout.join(levels), codes)
    # A codebook's codes in time order: the stride-1 codebook's frame f is row f % 4 of superframe f // 4.
    codes = rng.integers(0, 64, (8, 5))
    fine = layout.split(codes)[2][0]
    assert [fine[f] for f in range(20)] == [codes[4 + f % 4, f // 4] for f in range(20)]


def test_layout_refuses_what_is_not_a_prefix() -> None:
    layout = CodeLayout(STRIDES)
    with pytest.raises(ValueError, match="not a whole number of codebooks"):
        layout.split(np.zeros((3, 5), dtype=np.int64))
    with pytest.raises(ValueError, match="not a prefix"):  # a 25 Hz codebook without the second 12.5 Hz one
        layout.join([np.zeros((1, 5), np.int64), np.zeros((1, 10), np.int64), np.zeros((0, 20), np.int64)])
    with pytest.raises(ValueError, match="same whole number"):
        layout.join([np.zeros((2, 5), np.int64), np.zeros((1, 12), np.int64), np.zeros((0, 20), np.int64)])
    with pytest.raises(ValueError):
        CodeLayout((3, 2))
    with pytest.raises(ConfigError):
        MultiScaleConfig(strides=(4, 0))


# --- quantizer --------------------------------------------------------------------------------------------------


def test_pool_means_count_only_real_frames() -> None:
    x = torch.arange(8.0).reshape(1, 1, 8)
    mask = torch.tensor([[[1.0, 1, 1, 1, 1, 1, 0, 0]]])
    means, m = pool(x, mask, 4)
    assert means.flatten().tolist() == [1.5, 4.5] and m.flatten().tolist() == [1.0, 1.0]


def test_quantizer_shapes_prefixes_and_decode() -> None:
    torch.manual_seed(0)
    q = MultiScaleQuantizer(ms_config())
    x = torch.randn(2, 16, 37)  # not a whole number of superframes
    q.train()
    out = q(x, torch.ones(2, 1, 37))
    assert out.quantized.shape == x.shape and out.codes.shape[-1] == math.ceil(37 / 4)
    q.eval()
    full = q.encode(x)
    assert full.shape == (2, 8, 10) and q.num_codebooks == 8 and q.codebook_counts == (1, 2, 4, 8)
    for rows in q.codebook_counts:
        assert torch.equal(q.encode(x, rows), full[:, :rows])  # greedy: a prefix of codebooks is a prefix of rows
        assert q.decode(full[:, :rows]).shape == (2, 16, 40)
    with pytest.raises(ValueError, match="one of 1, 2, 4, 8"):
        q.encode(x, 3)
    with pytest.raises(ValueError, match="greedily"):
        q.encode(x, beam=4)
    # More codebooks, closer latents.
    errors = [float((q.decode(full[:, :r])[..., :37] - x).pow(2).mean()) for r in q.codebook_counts]
    assert errors == sorted(errors, reverse=True)


def test_quantizer_dropout_draws_whole_codebooks() -> None:
    q = MultiScaleQuantizer(ms_config()).train()
    drawn = {q(torch.randn(1, 16, 16)).codes.shape[1] for _ in range(40)}
    assert drawn <= {1, 2, 4, 8} and len(drawn) > 2


def test_coarse_codes_depend_only_on_their_block() -> None:
    """A stride-4 code is the nearest codeword to its block's mean: moving frames of one block moves no other code."""
    torch.manual_seed(1)
    q = MultiScaleQuantizer(ms_config()).eval()
    x = torch.randn(1, 16, 16)
    y = x.clone()
    y[..., 4:8] += 3.0
    a, b = q.encode(x, 1), q.encode(y, 1)
    assert torch.equal(a[..., [0, 2, 3]], b[..., [0, 2, 3]])


# --- model, tokenizer, token files ----------------------------------------------------------------------------


def test_model_rates_and_frame_counts(ms_dir: Path) -> None:
    tok = Tokenizer(load_model(ms_dir))
    assert tok.model.hop_length == 160 * 2 * 4 and tok.frame_rate == 12.5
    for seconds in (0.05, 1.0, 2.37):
        x = speech_like(seconds)
        enc = tok.encode(x, SR)
        frames = math.ceil(x.size / tok.model.hop_length)
        assert enc.codes.shape == (8, frames)
        assert [tuple(lv.shape) for lv in enc.levels] == [(2, frames), (1, 2 * frames), (1, 4 * frames)]
        assert enc.level_frame_rates == [12.5, 25.0, 50.0]
        assert tok.decode(enc).samples.shape[-1] == x.size
    assert [tok.bitrate(k) for k in (1, 2, 4, 8)] == [75.0, 150.0, 300.0, 600.0]


@pytest.mark.parametrize("k", [2, 8])
def test_chunked_equals_whole_and_batched_equals_single(ms_dir: Path, k: int) -> None:
    whole = Tokenizer(load_model(ms_dir))
    chunked = Tokenizer(load_model(ms_dir), window_seconds=0.5)
    x = speech_like(5.3)
    a, b = whole.encode(x, SR, n_codebooks=k), chunked.encode(x, SR, n_codebooks=k)
    assert math.ceil(x.size / whole.model.hop_length) >= 8 * chunked.window_frames
    assert torch.equal(a.codes, b.codes)
    assert np.abs(whole.decode(a).samples.numpy() - chunked.decode(a).samples.numpy()).max() < 1e-4
    # Latent lengths 50, 115, 20, 35: the short items end inside a superframe (2 and 3 frames past a whole one).
    clips = [speech_like(s, seed=i) for i, s in enumerate((1.0, 2.3, 0.4, 0.7))]
    batched = whole.encode_batch(clips, SR, n_codebooks=k)
    assert all(
        torch.equal(e.codes, whole.encode(c, SR, n_codebooks=k).codes) for e, c in zip(batched, clips, strict=True)
    )


@pytest.mark.parametrize("fmt", ["vqt", "npy", "txt", "json"])
@pytest.mark.parametrize("k", [1, 4, 8])
def test_token_file_round_trip(ms_dir: Path, tmp_path: Path, fmt: str, k: int) -> None:
    tok = Tokenizer(load_model(ms_dir))
    enc = tok.encode(speech_like(1.7), SR, n_codebooks=k)
    path = tmp_path / f"t.{fmt}"
    save_codes(path, enc.codes.numpy(), enc.header(), fmt=fmt)
    tf = load_codes(path)
    assert tf.header == enc.header() and np.array_equal(tf.codes, enc.codes.numpy())
    assert torch.equal(tok.decode(tf).samples, tok.decode(enc).samples)
    if fmt == "txt":  # one line per codebook, each at its level's rate
        lengths = [len(line.split()) for line in path.read_text().splitlines()]
        assert lengths == [lv.shape[1] for lv in enc.levels for _ in range(lv.shape[0])]
    if fmt == "json":
        assert [len(r) for r in json.loads(path.read_text())["codes"]] == [
            lv.shape[1] for lv in enc.levels for _ in range(lv.shape[0])
        ]


def test_vqt_versions(ms_dir: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    """Multi-scale codes are written as version 2, level by level; codes of one rate stay version 1."""
    ms = Tokenizer(load_model(ms_dir)).encode(speech_like(1.0), SR)
    one = Tokenizer(load_model(tiny_model_dir)).encode(speech_like(1.0), SR)
    save_codes(tmp_path / "ms.vqt", ms.codes.numpy(), ms.header(), fmt="vqt")
    save_codes(tmp_path / "one.vqt", one.codes.numpy(), one.header(), fmt="vqt")
    assert (tmp_path / "ms.vqt").read_bytes()[4] == 2 and (tmp_path / "one.vqt").read_bytes()[4] == 1
    data = (tmp_path / "ms.vqt").read_bytes()
    header = json.loads(data[9 : 9 + int.from_bytes(data[5:9], "little")])
    assert [lv["frame_rate"] for lv in header["levels"]] == [12.5, 25.0, 50.0]
    assert np.array_equal(read_tokens(tmp_path / "ms.vqt").codes, ms.codes.numpy())
    # The levels a header names must be its strides' levels.
    edited = ms.header().to_json()
    edited["levels"][0]["num_codebooks"] = 1
    with pytest.raises(TokenFileError, match="levels. disagree"):
        type(ms.header()).from_json(edited)


def test_files_of_the_other_kind_are_refused(ms_dir: Path, tiny_model_dir: Path) -> None:
    ms, one = Tokenizer(load_model(ms_dir)), Tokenizer(load_model(tiny_model_dir))
    enc = one.encode(speech_like(1.0), SR)
    header = dataclasses.replace(enc.header(), model_id="tiny-ms", codes_checksum=ms.codes_checksum)
    with pytest.raises(TokenFileError, match="codes of one frame rate"):
        ms.check_compatible(header)
    with pytest.raises(VQAudioError, match="one of 1, 2, 4, 8"):
        ms.encode(speech_like(1.0), SR, n_codebooks=3)
    with pytest.raises(VQAudioError, match="multi-scale layout"):
        ms.decode(torch.zeros(3, 5, dtype=torch.long))


def test_cli_tokenize_info_detokenize(ms_dir: Path, tmp_path: Path) -> None:
    wav = tmp_path / "a.wav"
    sf.write(wav, speech_like(2.0), SR)
    runner = CliRunner()
    res = runner.invoke(app, ["tokenize", str(wav), "-o", str(tmp_path / "a.vqt"), "-m", str(ms_dir), "-k", "4"])
    assert res.exit_code == 0, res.output
    assert "codes 2 x 25 at 12.5 Hz + 1 x 50 at 25 Hz" in res.output
    res = runner.invoke(app, ["info", str(tmp_path / "a.vqt")])
    assert "codebook_strides: [4, 4, 2, 1]" in res.output and "bitrate_kbps: 0.3" in res.output
    res = runner.invoke(app, ["detokenize", str(tmp_path / "a.vqt"), str(tmp_path / "b.wav"), "-m", str(ms_dir)])
    assert res.exit_code == 0, res.output
    assert sf.info(tmp_path / "b.wav").frames == 2 * SR
    for args in (["-k", "3"], ["--beam", "4"]):
        res = runner.invoke(app, ["tokenize", str(wav), "-o", str(tmp_path / "c.vqt"), "-m", str(ms_dir), *args])
        assert res.exit_code != 0 and res.output.startswith("error: ") and len(res.output.splitlines()) == 1
        assert not (tmp_path / "c.vqt").exists()


def test_version_byte_must_match_the_codes(tiny_model_dir: Path, ms_dir: Path, tmp_path: Path) -> None:
    """A version-2 file of single-rate codes (or a version-1 file of multi-scale codes) is refused in one line."""
    import struct
    import zlib

    for model, version in ((tiny_model_dir, 2), (ms_dir, 1)):
        enc = Tokenizer(load_model(model)).encode(speech_like(0.5), SR)
        path = tmp_path / "t.vqt"
        save_codes(path, enc.codes.numpy(), enc.header(), fmt="vqt", overwrite=True)
        body = bytearray(path.read_bytes()[:-4])
        body[4] = version
        path.write_bytes(bytes(body) + struct.pack("<I", zlib.crc32(bytes(body))))
        with pytest.raises(TokenFileError, match=f"a version {version} file must"):
            read_tokens(path)


def test_code_entropy_takes_each_codebook_at_its_rate() -> None:
    import sys

    bench = str(Path(__file__).resolve().parents[1] / "benchmarks")
    sys.path.insert(0, bench)
    try:
        from code_entropy import code_entropy, codebook_sequences, markdown
    finally:
        sys.path.remove(bench)
    rng = np.random.default_rng(0)
    files = [rng.integers(0, 16, (8, 30)) for _ in range(4)]
    seqs = [codebook_sequences(c, STRIDES) for c in files]
    assert [s.size for s in seqs[0]] == [30, 30, 60, 120]
    assert np.array_equal(seqs[0][3], CodeLayout(STRIDES).split(files[0])[2][0])
    rows = code_entropy(seqs, 16, rates=[12.5, 12.5, 25.0, 50.0])
    # "codebook below" only between codebooks of one rate: the second 12.5 Hz codebook has one, the others not.
    assert [r.codebook_below is not None for r in rows] == [False, True, False, False]
    text = markdown("m", rows, 16, 4)
    assert "Per level" in text and "- 4 codebooks: " in text and "| 4 | 50 |" in text


def test_zero_frames_and_single_rate_levels_key(tiny_model_dir: Path) -> None:
    layout = CodeLayout(STRIDES)
    empty = np.zeros((8, 0), dtype=np.int64)
    assert layout.join(layout.split(empty)).shape == (8, 0)
    header = Tokenizer(load_model(tiny_model_dir)).encode(speech_like(0.5), SR).header()
    # A single-rate header ignores keys it does not know, a "levels" key among them.
    assert type(header).from_json({**header.to_json(), "levels": "anything"}) == header
