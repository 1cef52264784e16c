"""The spectral post-filter: its formula, its fit at export, and decoding with and without it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import soundfile as sf
import torch
from conftest import speech_like, tiny_config
from typer.testing import CliRunner

from vqaudio.cli import app
from vqaudio.data.manifest import ManifestEntry, read_manifest, write_manifest
from vqaudio.errors import ConfigError, VQAudioError
from vqaudio.models import SpectralNetConfig, build_codec, load_model
from vqaudio.models.spectral import SpectralPostFilter, SpectralVQVAE
from vqaudio.tokenizer import load
from vqaudio.training.export import export_release, fit_postfilter


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pf-corpus")
    entries = []
    for i, f0 in enumerate((110.0, 180.0)):
        path = root / f"clip{i}.wav"
        sf.write(path, speech_like(1.2, f0=f0, seed=i), 16000)
        entries.append(ManifestEntry(path, 1.2, f"spk{i}", 16000))
    return write_manifest(entries, root / "train.tsv")


@pytest.fixture(scope="module")
def pf_model_dir(tiny_model_dir: Path, manifest: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pf") / "tiny-pf"
    export_release(
        tiny_model_dir, out, "tiny", vocoder_dir=tiny_model_dir, half=False, postfilter=0.3, postfilter_data=manifest
    )
    return out


def test_postfilter_lifts_only_what_stands_above_centre_plus_offset() -> None:
    pf = SpectralPostFilter(3, strength=0.5, offset=1.0)
    pf.centre.copy_(torch.tensor([-4.0, -6.0, 0.0]))
    x = torch.tensor([[[-4.0, -2.0], [-6.5, -3.0], [2.0, 0.5]]])  # [1, 3, 2]
    want = torch.tensor([[[-4.0, -2.0 + 0.5], [-6.5, -3.0 + 1.0], [2.0 + 0.5, 0.5]]])
    torch.testing.assert_close(pf(x), want)


def test_postfilter_below_deepens_only_what_lies_below_centre() -> None:
    pf = SpectralPostFilter(2, strength=0.25, offset=0.0, below=0.5)
    pf.centre.copy_(torch.tensor([-4.0, 0.0]))
    x = torch.tensor([[[-6.0, -4.0, -3.0], [1.0, -1.0, 0.0]]])  # [1, 2, 3]
    want = torch.tensor([[[-6.0 - 1.0, -4.0, -3.0 + 0.25], [1.0 + 0.25, -1.0 - 0.5, 0.0]]])
    torch.testing.assert_close(pf(x), want)
    # Without ``below`` the part under the centre is untouched, as before the option existed.
    plain = SpectralPostFilter(2, strength=0.25, offset=0.0)
    plain.centre.copy_(pf.centre)
    torch.testing.assert_close(plain(x)[..., :2], torch.tensor([[[-6.0, -4.0], [1.25, -1.0]]]))


def test_postfilter_config_is_checked_and_off_by_default() -> None:
    assert not build_codec(tiny_config()).has_postfilter
    for bad in (-0.1, 1.5):
        with pytest.raises(ConfigError):
            SpectralNetConfig(postfilter=bad)
    with pytest.raises(ConfigError):
        SpectralNetConfig(postfilter=0.2, postfilter_offset=float("nan"))
    for bad in (-0.1, 1.5, float("nan"), True):
        with pytest.raises(ConfigError, match="postfilter_below"):
            SpectralNetConfig(postfilter=0.2, postfilter_below=bad)
    with pytest.raises(ConfigError, match="needs a post-filter"):
        SpectralNetConfig(postfilter_below=0.2)


def test_export_fits_the_centre_and_keeps_the_codes(tiny_model_dir: Path, pf_model_dir: Path, manifest: Path) -> None:
    plain, filtered = load_model(tiny_model_dir), load_model(pf_model_dir)
    assert isinstance(plain.codec, SpectralVQVAE) and isinstance(filtered.codec, SpectralVQVAE)
    pf = filtered.codec.decoder.postfilter
    assert pf is not None and pf.strength == 0.3 and pf.offset == 1.0
    assert filtered.config.spectral.postfilter == 0.3
    # The centre is the mean decoded log-mel per band over the manifest's files, at all codebooks (no card).
    with pytest.raises(VQAudioError):
        fit_postfilter(plain.codec, [])

    expected = fit_postfilter(plain.codec, [e.path for e in read_manifest(manifest)])
    torch.testing.assert_close(pf.centre, expected)
    assert float(pf.centre.std()) > 0
    # Only the decoder gained a tensor: the codes, and so the token files' check, are the plain model's.
    assert filtered.codec.codes_checksum() == plain.codec.codes_checksum()
    assert filtered.checksum != plain.checksum
    same = {k: v for k, v in filtered.codec.state_dict().items() if not k.startswith("decoder.postfilter.")}
    assert all(torch.equal(v, plain.codec.state_dict()[k]) for k, v in same.items())


def test_reexport_keeps_removes_or_refuses(pf_model_dir: Path, tmp_path: Path) -> None:
    export_release(pf_model_dir, tmp_path / "kept", "tiny", half=False)
    kept = load_model(tmp_path / "kept").codec
    assert isinstance(kept, SpectralVQVAE) and kept.decoder.postfilter is not None
    orig = load_model(pf_model_dir).codec
    assert isinstance(orig, SpectralVQVAE) and orig.decoder.postfilter is not None
    torch.testing.assert_close(kept.decoder.postfilter.centre, orig.decoder.postfilter.centre)
    export_release(pf_model_dir, tmp_path / "removed", "tiny", half=False, postfilter=0.0)
    removed = load_model(tmp_path / "removed")
    assert removed.codec is not None and not removed.codec.has_postfilter
    assert json.loads((tmp_path / "removed" / "config.json").read_text())["model"]["spectral"]["postfilter"] == 0
    with pytest.raises(VQAudioError, match="postfilter-data"):
        export_release(pf_model_dir, tmp_path / "nodata", "tiny", half=False, postfilter=0.2)
    with pytest.raises(VQAudioError, match="need --postfilter"):
        export_release(pf_model_dir, tmp_path / "nostrength", "tiny", half=False, postfilter_offset=0.5)
    with pytest.raises(VQAudioError, match="need --postfilter"):
        export_release(pf_model_dir, tmp_path / "nostrength", "tiny", half=False, postfilter_below=0.5)


def test_decoding_applies_it_unless_asked_not_to(tiny_model_dir: Path, pf_model_dir: Path) -> None:
    audio = torch.from_numpy(speech_like(1.0, f0=150.0, seed=3))[None]
    plain, on, off = load(tiny_model_dir), load(pf_model_dir), load(pf_model_dir, postfilter=False)
    assert on.postfilter and not off.postfilter and not plain.postfilter
    enc = on.encode(audio, 16000)
    torch.testing.assert_close(enc.codes, plain.encode(audio, 16000).codes)
    for vocoder in ("learned", "griffin-lim"):
        a = on.decode(enc, vocoder=vocoder).samples
        b = off.decode(enc, vocoder=vocoder).samples
        c = plain.decode(enc, vocoder=vocoder).samples
        torch.testing.assert_close(b, c)
        assert not torch.allclose(a, b, atol=1e-4)


def test_postfilter_is_pointwise_so_chunked_decoding_matches(pf_model_dir: Path) -> None:
    audio = torch.from_numpy(speech_like(2.0, f0=130.0, seed=4))[None]
    whole = load(pf_model_dir)
    enc = whole.encode(audio, 16000)
    chunked = load(pf_model_dir)
    chunked.window_frames = 7
    torch.testing.assert_close(
        chunked.decode(enc, vocoder="learned").samples,
        whole.decode(enc, vocoder="learned").samples,
        atol=1e-4,
        rtol=1e-4,
    )


def test_cli_export_info_and_no_postfilter(tiny_model_dir: Path, manifest: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "rel"
    r = runner.invoke(
        app,
        [
            "export",
            "--codec",
            str(tiny_model_dir),
            "--vocoder",
            str(tiny_model_dir),
            "--name",
            "tiny",
            "-o",
            str(out),
            "--full",
            "--postfilter",
            "0.2",
            "--postfilter-data",
            str(manifest),
        ],
    )
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["info", str(out)])
    assert r.exit_code == 0 and "postfilter: 0.2" in r.output
    # --postfilter-below reaches the released config and the decoder's filter.
    below = tmp_path / "rel-below"
    r = runner.invoke(
        app,
        ["export", "--codec", str(tiny_model_dir), "--name", "tiny", "-o", str(below), "--full"]
        + ["--postfilter", "0.2", "--postfilter-below", "0.3", "--postfilter-data", str(manifest)],
    )
    assert r.exit_code == 0, r.output
    assert json.loads((below / "config.json").read_text())["model"]["spectral"]["postfilter_below"] == 0.3
    codec = load_model(below).codec
    assert isinstance(codec, SpectralVQVAE) and codec.decoder.postfilter is not None
    assert codec.decoder.postfilter.below == 0.3
    wav = tmp_path / "in.wav"
    sf.write(wav, speech_like(1.0), 16000)
    outs = []
    for flag in ("--postfilter", "--no-postfilter"):
        dst = tmp_path / f"out{flag}.wav"
        r = runner.invoke(app, ["resynth", str(wav), str(dst), "-m", str(out), "--vocoder", "learned", flag])
        assert r.exit_code == 0, r.output
        outs.append(sf.read(dst)[0])
    assert abs(outs[0] - outs[1]).max() > 1e-4
    # Asking for a post-filter without the data to fit it, or of a strength out of range: one line, non-zero
    # exit, nothing written.
    export = ["export", "--codec", str(tiny_model_dir), "--name", "tiny", "-o", str(tmp_path / "bad")]
    data = ["--postfilter-data", str(manifest)]
    for args, match in [
        (["--postfilter", "0.2"], "postfilter-data"),
        (["--postfilter", "2", *data], "--postfilter must be between 0 and 1"),
        (["--postfilter", "nan", *data], "--postfilter must be between 0 and 1"),
        (["--postfilter", "0.2", "--postfilter-below", "2", *data], "--postfilter-below must be between"),
        (["--postfilter", "0.2", "--postfilter-below", "nan", *data], "--postfilter-below must be between"),
        (["--postfilter", "0.2", "--postfilter-offset", "inf", *data], "--postfilter-offset must be a finite"),
        (["--postfilter", "0", "--postfilter-below", "0.2"], "--postfilter 0 removes"),
        (["--postfilter-below", "0.2"], "need --postfilter"),
    ]:
        r = runner.invoke(app, [*export, *args])
        assert r.exit_code == 1 and r.stderr.count("\n") == 1 and r.stderr.startswith("error: "), (args, r.output)
        assert match in r.stderr and not (tmp_path / "bad").exists(), (args, r.stderr)


def test_quality_benchmark_scores_a_model_with_and_without_it(tiny_model_dir: Path, pf_model_dir: Path) -> None:
    import sys

    benchmarks = str(Path(__file__).resolve().parents[1] / "benchmarks")
    sys.path.insert(0, benchmarks)
    try:
        from quality import build_systems
    finally:
        sys.path.remove(benchmarks)
    x = speech_like(1.0, f0=140.0, seed=5)
    on, plain, reference = build_systems(
        [
            f"vqaudio:{pf_model_dir}@2+learned",
            f"vqaudio:{pf_model_dir}@2+learned~plain",
            f"vqaudio:{tiny_model_dir}@2+learned",
        ]
    )
    assert plain.name.endswith("~plain")
    a, b, c = on.run(x), plain.run(x), reference.run(x)
    assert abs(a - b).max() > 1e-4
    assert abs(b - c).max() < 1e-5
