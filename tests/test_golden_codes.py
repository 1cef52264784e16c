"""Codes that never drift: the shipped models give the stored codes of examples/hello.wav, and token files
made under another code search version are refused.

The fixtures were written by ``scripts/golden_codes.py`` (which names the settings). On the machine that made
them (same CPU model, instruction-set flags and torch) the codes must be identical; on other CPUs float32
near-ties may flip a code, so at least 99.5 % must be equal there.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

import vqaudio
import vqaudio.tokenizer as tokenizer_module
from vqaudio.errors import TokenFileError
from vqaudio.tokenfile import TokenHeader, load_codes, save_codes

ROOT = Path(__file__).resolve().parents[1]
MIN_EQUAL_ELSEWHERE = 0.995


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("golden_codes", ROOT / "scripts" / "golden_codes.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["golden_codes"] = module
    spec.loader.exec_module(module)
    return module


golden = _script()


@pytest.mark.parametrize("name", sorted(vqaudio.shipped_models()))
def test_shipped_model_gives_its_golden_codes(name: str) -> None:
    with np.load(ROOT / "tests" / "fixtures" / "golden_codes" / f"{name}.npz") as stored:
        expected = {k: stored[k] for k in stored.files if k != "machine"}
        made_on = str(stored["machine"])
    # The fixture covers every setting the card lists, greedy and default beam.
    assert sorted(expected) == sorted(f"beam{b}_k{k}" for b, k in golden.settings(name))
    got = golden.golden(name)
    same_machine = made_on == golden.machine_id()
    for key, codes in expected.items():
        assert got[key].shape == codes.shape, key
        equal = float((got[key] == codes).mean())
        if same_machine:
            assert equal == 1.0, f"{name} {key}: {equal:.4f} of codes equal on the machine that made the fixture"
        else:
            assert equal >= MIN_EQUAL_ELSEWHERE, f"{name} {key}: only {equal:.4f} equal (fixture made on {made_on})"


def test_header_names_the_code_search(tmp_path: Path) -> None:
    tok = vqaudio.load("speech-16k", beam=1)
    enc = tok.encode(ROOT / "examples" / "hello.wav", n_codebooks=1)
    assert enc.header().code_search == f"v{tokenizer_module.CODES_VERSION} beam 1"
    assert vqaudio.load("speech-16k").encode(np.zeros(1600, np.float32), 16000).code_search.endswith("beam 8")
    path = tmp_path / "hello.vqt"
    save_codes(path, enc.codes.numpy(), enc.header(), fmt="vqt")
    assert load_codes(path).header.code_search == enc.code_search


def test_token_file_of_another_codes_version_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A change to the STFT, encoder or search bumps CODES_VERSION, and files of the old version are refused."""
    tok = vqaudio.load("speech-16k", beam=1)
    enc = tok.encode(np.random.default_rng(0).normal(0, 0.1, 8000).astype(np.float32), 16000, n_codebooks=1)
    path = tmp_path / "old.vqt"
    save_codes(path, enc.codes.numpy(), enc.header(), fmt="vqt")
    tok.decode(load_codes(path))  # today's vqaudio decodes its own file
    monkeypatch.setattr(tokenizer_module, "CODES_VERSION", tokenizer_module.CODES_VERSION + 1)
    with pytest.raises(TokenFileError, match=r"tokenized by code search v1, .* tokenize the audio again"):
        tok.decode(load_codes(path))
    # A file from before the key existed still decodes (its codes checksum still guards the weights).
    legacy = TokenHeader.from_json({k: v for k, v in enc.header().to_json().items() if k != "code_search"})
    save_codes(tmp_path / "legacy.vqt", enc.codes.numpy(), legacy, fmt="vqt")
    tok.decode(load_codes(tmp_path / "legacy.vqt"))


@pytest.mark.parametrize("bad", ["beam 8", "v1 beam 0", "v1beam8", 7])
def test_malformed_code_search_is_refused(bad: object) -> None:
    tok = vqaudio.load("speech-16k", beam=1)
    header = tok.encode(np.zeros(1600, np.float32), 16000, n_codebooks=1).header().to_json()
    with pytest.raises(TokenFileError, match="code_search"):
        TokenHeader.from_json({**header, "code_search": bad})


def test_golden_vqz_decodes_exactly_and_recompresses_to_the_same_bytes() -> None:
    """A .vqz made on the fixture's machine decodes here to exactly its codes: the prior's arithmetic is exact
    integer arithmetic, the same on every CPU. Compressing those codes again gives the same bytes."""
    from vqaudio.compress import compress_tokens, decompress_tokens, from_bytes, to_bytes

    fixtures = ROOT / "tests" / "fixtures" / "golden_codes"
    data = (fixtures / "speech-16k.vqz").read_bytes()  # speech-16k ships a prior, so its fixture must exist
    tok = vqaudio.load("speech-16k")
    tokens = decompress_tokens(tok, from_bytes(data, "speech-16k.vqz"))
    with np.load(fixtures / "speech-16k.npz") as stored:
        expected = stored[f"beam{tok.default_beam}_k{tok.default_codebooks}"]
    assert np.array_equal(tokens.codes, expected)
    assert to_bytes(compress_tokens(tok, tokens)) == data
    assert 4 * from_bytes(data, "v").words.size < expected.size * 10 / 8  # a payload below the fixed-width one
