"""The token prior: causality, the integer engine against the float network, range coding round trips,
seeded sampling, and training it with the trainer over a tiny codec's codes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import speech_like
from typer.testing import CliRunner

from vqaudio.cli import app
from vqaudio.compress import (
    VqzFile,
    compress_tokens,
    decode_codes,
    decompress_tokens,
    encode_codes,
    from_bytes,
    read_vqz,
    to_bytes,
)
from vqaudio.errors import ConfigError, ModelError, TokenFileError, VQAudioError
from vqaudio.prior.integer import A_BITS, FREQ_BITS, IntegerPrior, curve, exp_table, frequencies
from vqaudio.prior.io import load_prior
from vqaudio.prior.model import PriorConfig, TokenPrior
from vqaudio.prior.pairing import prior_for
from vqaudio.prior.sample import sample_codes
from vqaudio.tokenizer import load
from vqaudio.training.config import load_config
from vqaudio.training.trainer import Trainer

DEBUG_PRIOR = Path(__file__).resolve().parents[1] / "recipes" / "librispeech" / "conf" / "debug_prior.toml"
SMALL = PriorConfig(num_codebooks=3, codebook_size=64, dim=24, head_dim=24, dilations=(1, 2, 4), kernel_size=3)
SMALL_GRU = PriorConfig(num_codebooks=3, codebook_size=64, dim=24, head_dim=24, context="gru", gru_layers=2)
BOTH = pytest.mark.parametrize("config", [SMALL, SMALL_GRU], ids=["conv", "gru"])


def _prior(config: PriorConfig = SMALL, seed: int = 0) -> TokenPrior:
    torch.manual_seed(seed)
    model = TokenPrior(config).eval()
    with torch.no_grad():  # sharper than at initialisation, so coding has real work to do
        for p in model.parameters():
            p.mul_(3.0)
    return model


def _codes(config: PriorConfig, frames: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(
        config.codebook_size, (config.num_codebooks, frames), generator=torch.Generator().manual_seed(seed)
    )


def test_frame_and_codebook_order_is_causal() -> None:
    model = _prior()
    codes = _codes(SMALL, 30)[None]
    changed = codes.clone()
    changed[0, 1:, 12] = (changed[0, 1:, 12] + 1) % SMALL.codebook_size  # codebooks 1.. of frame 12
    with torch.no_grad():
        a, b = model(codes).logits, model(changed).logits
    assert torch.equal(a[:, :, :12], b[:, :, :12])  # earlier frames
    assert torch.equal(a[:, :2, 12], b[:, :2, 12])  # codebooks 0 and 1 of frame 12 do not see codebook 1 itself
    assert not torch.equal(a[:, 2, 12], b[:, 2, 12])  # codebook 2 does
    assert not torch.equal(a[:, :, 13], b[:, :, 13])  # and the next frame does


def test_gru_context_is_causal_and_carries_only_its_own_weights() -> None:
    """The recurrent context: causal like the conv stack, with a memory past any fixed receptive field, and no
    conv weights built beside it."""
    config = PriorConfig(num_codebooks=3, codebook_size=64, dim=24, head_dim=24, context="gru", gru_layers=1)
    model = _prior(config)
    assert not any(name.startswith("convs.") for name in model.state_dict())
    assert not any(name.startswith("gru.") for name in _prior(SMALL).state_dict())
    codes = _codes(config, 200)[None]
    changed = codes.clone()
    changed[0, 0, 3] = (changed[0, 0, 3] + 1) % config.codebook_size
    with torch.no_grad():
        a, b = model(codes).logits, model(changed).logits
    assert torch.equal(a[:, :, :3], b[:, :, :3]) and torch.equal(a[:, 0, 3], b[:, 0, 3])
    assert not torch.equal(a[:, :, 199], b[:, :, 199])  # 196 frames later, still remembered
    with pytest.raises(ConfigError, match="context"):
        PriorConfig(context="transformer")


def test_sigmoid_and_tanh_tables_follow_the_functions() -> None:
    x = np.arange(-(20 << A_BITS), 20 << A_BITS, 37, dtype=np.int64)
    for name, f in [("sigmoid", lambda v: 1 / (1 + np.exp(-v))), ("tanh", np.tanh)]:
        got = curve(name, x)
        assert np.abs(got - f(x / 2**A_BITS) * 2**A_BITS).max() <= 1.5, name  # a rounded entry and a floor
        assert np.all(np.diff(got) >= 0), name


@BOTH
def test_integer_engine_follows_the_float_network(config: PriorConfig) -> None:
    model = _prior(config)
    codes = _codes(config, 25)
    with torch.no_grad():
        out = model(codes[None])
    engine = IntegerPrior(model)
    state = engine.start()
    worst = 0.0
    for f in range(codes.shape[1]):
        frame = codes[:, f].numpy()
        for k in range(config.num_codebooks):
            got = engine.logits(state, k, frame) / 2**A_BITS
            worst = max(worst, float(np.abs(got - out.logits[0, k, f].numpy()).max()))
        engine.push(state, frame)
    assert worst < 0.02


@BOTH
def test_all_frames_at_once_equal_frame_by_frame_exactly(config: PriorConfig) -> None:
    """Compression computes every frame's logits at once, decompression one frame at a time: integer for integer
    the same, or a file would not decode."""
    engine = IntegerPrior(_prior(config))
    codes = _codes(config, 33, seed=7).numpy()
    together = engine.all_logits(codes)
    state = engine.start()
    for f in range(codes.shape[1]):
        for k in range(config.num_codebooks):
            assert np.array_equal(engine.logits(state, k, codes[:, f]), together[k, f]), (f, k)
        engine.push(state, codes[:, f])


@BOTH
def test_a_prompt_pushed_without_asking_for_its_logits_reaches_the_context(config: PriorConfig) -> None:
    """Continuation pushes the prompt's frames without computing their probabilities; every one of them must
    still enter the context (the conv engine once kept only the last)."""
    engine = IntegerPrior(_prior(config))
    codes = _codes(config, 12, seed=2).numpy()
    state = engine.start()
    for f in range(11):
        engine.push(state, codes[:, f])
    assert np.array_equal(engine.logits(state, 0, codes[:, 11]), engine.all_logits(codes)[0, 11])


def test_exact_products_fall_back_beyond_float64_integers() -> None:
    from vqaudio.prior.integer import ExactMatrix

    w = np.array([[3, -2], [1, 5]], dtype=np.int64)
    m = ExactMatrix(w)
    small = np.array([7, -4], dtype=np.int64)
    assert np.array_equal(m.times(small), small @ w)
    huge = np.array([1 << 60, 3], dtype=np.int64) // 4  # products beyond 2**53: float64 would round them
    assert np.array_equal(m.times(huge), huge @ w)


def test_exp_table_is_exact_and_decreasing() -> None:
    table = exp_table()
    assert table[0] == 1 << FREQ_BITS and table[-1] >= 1
    assert np.all(np.diff(table) <= 0)
    freqs = frequencies(np.array([0, -(1 << A_BITS), -(100 << A_BITS)], dtype=np.int64))
    assert freqs[0] == 1 << FREQ_BITS and freqs[1] == round((1 << FREQ_BITS) * np.exp(-1.0)) and freqs[2] == 1


@BOTH
@pytest.mark.parametrize("frames", [0, 1, 40])
def test_range_coding_round_trip(frames: int, config: PriorConfig) -> None:
    model = _prior(config)
    engine = IntegerPrior(model)
    codes = _codes(config, frames, seed=3).numpy()
    words = encode_codes(codes, engine)
    assert np.array_equal(decode_codes(words, IntegerPrior(model), frames), codes)


def test_likely_codes_cost_fewer_bits() -> None:
    """Codes sampled from the prior cost about their information content; uniform ones cost more."""
    model = _prior()
    engine = IntegerPrior(model)
    likely = sample_codes(engine, 200, seed=1)
    uniform = _codes(SMALL, 200, seed=1).numpy()
    assert encode_codes(likely, engine).size < encode_codes(uniform, engine).size


def test_sampling_is_seeded_and_continues_a_prompt() -> None:
    engine = IntegerPrior(_prior())
    a = sample_codes(engine, 30, seed=5, temperature=0.8, top_k=10)
    assert np.array_equal(a, sample_codes(engine, 30, seed=5, temperature=0.8, top_k=10))
    assert not np.array_equal(a, sample_codes(engine, 30, seed=6, temperature=0.8, top_k=10))
    prompt = _codes(SMALL, 7).numpy()
    cont = sample_codes(engine, 10, prompt=prompt, seed=5)
    assert cont.shape == (3, 17) and np.array_equal(cont[:, :7], prompt)
    greedy = sample_codes(engine, 12, top_k=1, seed=0)
    assert np.array_equal(greedy, sample_codes(engine, 12, top_k=1, seed=99))  # top-1 leaves nothing to chance
    for bad in ({"temperature": 0.0}, {"top_k": 0}, {"top_k": 65}):
        with pytest.raises(VQAudioError):
            sample_codes(engine, 3, **bad)  # type: ignore[arg-type]


def test_vqz_bytes_are_checked() -> None:
    model = _prior()
    from vqaudio.tokenfile import TokenHeader

    header = TokenHeader("tiny", "a" * 64, 16000, 50.0, 64, 3, 10, 3200, 16000, 1, "downmix", codes_checksum="b" * 64)
    vqz = VqzFile(header, "p", "c" * 64, encode_codes(_codes(SMALL, 10).numpy(), IntegerPrior(model)))
    data = to_bytes(vqz)
    again = from_bytes(data, "x.vqz")
    assert again.header == header and np.array_equal(again.words, vqz.words)
    for broken, match in [
        (b"", "empty"),
        (b"RIFF" + data[4:], "not a vqaudio compressed"),
        (data[:-9] + data[-8:], "corrupt or truncated"),
        (data[:4] + bytes([9]) + data[5:], "version 9"),
    ]:
        with pytest.raises(TokenFileError, match=match):
            from_bytes(broken, "x.vqz")


def test_prior_config_is_checked() -> None:
    with pytest.raises(ConfigError):
        PriorConfig(dilations=())
    with pytest.raises(ConfigError):
        PriorConfig(dropout=1.0)


@pytest.fixture(scope="module")
def trained(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny codec's folder copied, with a prior trained on its codes by the trainer beside it."""
    import shutil

    root = tmp_path_factory.mktemp("prior")
    corpus = root / "corpus"
    corpus.mkdir()
    for i in range(3):
        sf.write(corpus / f"{i}.wav", speech_like(1.0, 16000, f0=120 + 30 * i, seed=i), 16000)
    model_dir = root / "tiny"
    shutil.copytree(tiny_model_dir, model_dir)
    cfg = load_config(
        DEBUG_PRIOR,
        {
            "codec_model": str(model_dir),
            "prior.codebook_size": 64,
            "data.train": [str(corpus)],
            "data.valid": [str(corpus / "0.wav")],
            "data.exclude_list": None,
        },
    )
    out = Trainer(cfg, root / "run", progress=False).fit()
    records = [json.loads(line) for line in (root / "run" / "metrics.jsonl").read_text().splitlines()]
    assert any("bits@1" in r.get("valid", {}) for r in records)
    assert [r["step"] for r in records if "loss" in r] == [2, 4, 6]
    for name in ("prior.json", "prior.safetensors"):
        shutil.copy(out / name, model_dir / name)
    return model_dir


def test_trained_prior_loads_and_belongs_to_its_codec(trained: Path, other_model_dir: Path) -> None:
    tok = load(trained)
    model, card = prior_for(tok)
    assert card.codec == tok.name and card.config.num_codebooks == 2 and not model.training
    with pytest.raises(ModelError, match="models the codes of"):
        prior_for(load(other_model_dir), trained)
    with pytest.raises(ModelError, match="no token prior"):
        prior_for(load(other_model_dir))
    (trained.parent / "broken").mkdir(exist_ok=True)
    meta = json.loads((trained / "prior.json").read_text())
    meta["weights"]["sha256"] = "0" * 64
    (trained.parent / "broken" / "prior.json").write_text(json.dumps(meta))
    import shutil

    shutil.copy(trained / "prior.safetensors", trained.parent / "broken" / "prior.safetensors")
    with pytest.raises(ModelError, match="checksum"):
        load_prior(trained.parent / "broken")


def test_compress_api_gives_back_the_tokenize_codes(trained: Path) -> None:
    tok = load(trained)
    enc = tok.encode(speech_like(1.3, 22050, seed=4), 22050, n_codebooks=2)
    vqz = compress_tokens(tok, enc)
    back = decompress_tokens(tok, from_bytes(to_bytes(vqz), "t.vqz"))
    assert np.array_equal(back.codes, enc.codes.numpy()) and back.header == enc.header()
    with pytest.raises(VQAudioError, match="-k 2"):
        compress_tokens(tok, tok.encode(speech_like(0.5), 16000, n_codebooks=1))
    # A .vqz coded with another prior (other weights) is refused, never decoded into wrong codes.
    import dataclasses

    other = dataclasses.replace(vqz, prior_checksum="f" * 64)
    with pytest.raises(TokenFileError, match="coded with prior"):
        decompress_tokens(tok, from_bytes(to_bytes(other), "o.vqz"), "o.vqz")
    # ... and so is one made by another model's codes.
    foreign = dataclasses.replace(vqz, header=dataclasses.replace(vqz.header, model_id="speech-16k"))
    with pytest.raises(TokenFileError, match="not tiny"):
        decompress_tokens(tok, from_bytes(to_bytes(foreign), "f.vqz"), "f.vqz")


def test_cli_compress_decompress_generate(trained: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    wav = tmp_path / "in.wav"
    sf.write(wav, speech_like(1.1), 16000)
    vqt, vqz = tmp_path / "in.vqt", tmp_path / "in.vqz"
    assert runner.invoke(app, ["tokenize", str(wav), "-o", str(vqt), "-m", str(trained), "-k", "2"]).exit_code == 0
    result = runner.invoke(app, ["compress", str(wav), str(vqz), "-m", str(trained)])
    assert result.exit_code == 0, result.output
    assert "kbps" in result.output
    out = tmp_path / "back.vqt"
    assert runner.invoke(app, ["decompress", str(vqz), str(out), "-m", str(trained)]).exit_code == 0
    from vqaudio.tokenfile import load_codes

    assert np.array_equal(load_codes(out).codes, load_codes(vqt).codes)  # exactly what tokenize gives
    assert runner.invoke(app, ["decompress", str(vqz), str(tmp_path / "back.wav"), "-m", str(trained)]).exit_code == 0
    # The audio of a .vqz is the audio of its token file: decompress changes nothing a listener hears.
    args = ["detokenize", str(vqt), str(tmp_path / "direct.wav"), "-m", str(trained)]
    assert runner.invoke(app, args).exit_code == 0
    assert (tmp_path / "direct.wav").read_bytes() == (tmp_path / "back.wav").read_bytes()
    # A .vqt input compresses to the same file.
    assert runner.invoke(app, ["compress", str(vqt), str(tmp_path / "b.vqz"), "-m", str(trained)]).exit_code == 0
    assert (tmp_path / "b.vqz").read_bytes() == vqz.read_bytes()
    assert read_vqz(vqz).header.model_id == "tiny"
    # Refusals: existing output, same file, wrong suffix, corrupt input: one line, exit 1, input untouched.
    before = vqz.read_bytes()
    for args in (
        ["compress", str(wav), str(vqz), "-m", str(trained)],
        ["compress", str(wav), str(tmp_path / "x.vqt"), "-m", str(trained)],
        ["decompress", str(vqz), str(vqz), "--force"],
        ["decompress", str(wav), str(tmp_path / "y.vqt")],
        ["decompress", str(tmp_path / "missing.vqz"), str(tmp_path / "z.vqt")],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 1 and result.output.count("\n") == 1 and "error:" in result.output, args
    assert vqz.read_bytes() == before
    # export-prior puts a run's prior beside its codec, and refuses to replace one without --force.
    target = tmp_path / "model"
    import shutil

    shutil.copytree(trained, target)
    assert runner.invoke(app, ["export-prior", str(trained.parent / "run"), "--into", str(target)]).exit_code == 1
    result = runner.invoke(app, ["export-prior", str(trained.parent / "run"), "--into", str(target), "--force"])
    assert result.exit_code == 0, result.output
    assert (target / "prior.safetensors").read_bytes() == (trained / "prior.safetensors").read_bytes()
    # A prior run is not a codec release: export says which command takes it, in one line.
    result = runner.invoke(
        app, ["export", "--codec", str(trained.parent / "run"), "-o", str(tmp_path / "r"), "--name", "r"]
    )
    assert result.exit_code == 1 and "export-prior" in result.output
    gen = tmp_path / "gen"
    args = ["generate", "-o", str(gen), "-n", "2", "--seconds", "0.4", "-m", str(trained), "--tokens", "--seed", "3"]
    assert runner.invoke(app, args).exit_code == 0
    first = (gen / "sample-00.wav").read_bytes()
    assert sorted(p.name for p in gen.iterdir()) == ["sample-00.vqt", "sample-00.wav", "sample-01.vqt", "sample-01.wav"]
    assert runner.invoke(app, args).exit_code == 1  # exists
    assert runner.invoke(app, [*args, "--force"]).exit_code == 0
    assert (gen / "sample-00.wav").read_bytes() == first  # same seed, same audio
    prompt = runner.invoke(app, [*args[:-2], "--seed", "4", "--prompt", str(wav), "--force"])
    assert prompt.exit_code == 0, prompt.output
    assert load_codes(gen / "sample-00.vqt").codes[:, :3].tolist() == load_codes(vqt).codes[:, :3].tolist()
