"""Corpus-scale unit extraction: inputs, one line per file in input order, bad files skipped and listed,
dedup, batched == single, shards that merge into the single-process result, and a resume after kill -9 that
gives the bytes of an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import speech_like
from typer.testing import CliRunner

from vqaudio.cli import app
from vqaudio.errors import VQAudioError
from vqaudio.tokenizer import load
from vqaudio.units import dedup, expand, read_units, speak, units
from vqaudio.units.extract import (
    READ_AHEAD,
    Shard,
    extract,
    input_root,
    list_inputs,
    merge,
    parse_shard,
    shard_from_env,
)
from vqaudio.units.formats import read_meta

SR = 16000


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """LibriSpeech-like folders with 9 clips, one of them not audio and one empty."""
    root = tmp_path_factory.mktemp("units") / "corpus"
    for i in range(7):
        d = root / f"{10 + i % 3}" / "100"
        d.mkdir(parents=True, exist_ok=True)
        sf.write(d / f"{10 + i % 3}-100-{i:04d}.flac", speech_like(0.4 + 0.15 * i, SR, f0=100 + 15 * i, seed=i), SR)
    (root / "10" / "100" / "10-100-9998.wav").write_bytes(b"not audio at all")
    (root / "10" / "100" / "10-100-9999.wav").write_bytes(b"")
    return root


def _lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_inputs_from_a_folder_a_manifest_and_a_list(corpus: Path, tmp_path: Path) -> None:
    items = list_inputs(corpus)
    assert len(items) == 9 and [it.id for it in items] == sorted(it.id for it in items)
    assert items[0].id == "10/100/10-100-0000"
    listed = tmp_path / "files.list"
    listed.write_text("".join(f"{it.path}\n" for it in items[:3]))
    assert [it.path for it in list_inputs(listed)] == [it.path for it in items[:3]]
    with pytest.raises(VQAudioError, match="no such"):
        list_inputs(tmp_path / "missing")


def test_one_line_per_file_in_order_with_bad_files_listed(corpus: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    tok = load(tiny_model_dir)
    items = list_inputs(corpus)
    path = extract(tok, items, tmp_path / "out", codebook=1, batch_seconds=2.5)
    lines = _lines(path)
    assert [line["id"] for line in lines] == [it.id for it in items]
    bad = [line for line in lines if "error" in line]
    assert len(bad) == 2 and all("\n" not in str(line["error"]) for line in bad)
    good = [line for line in lines if "error" not in line]
    for line, item in zip(good, [it for it in items if it.id in {g["id"] for g in good}], strict=True):
        enc = tok.encode(item.path, n_codebooks=2)  # codebook 1 of the model's codes, file by file
        assert line["units"] == " ".join(map(str, enc.codes[1].tolist()))
    units, ok, skipped = merge(tmp_path / "out")
    assert (ok, skipped) == (7, 2) and len((tmp_path / "out" / "errors.tsv").read_text().splitlines()) == 2
    # batched == one at a time, byte for byte
    single = extract(tok, items, tmp_path / "single", codebook=1, batch_seconds=0)
    assert single.read_bytes() == path.read_bytes()


def test_dedup_keeps_runs_and_their_lengths(corpus: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    tok = load(tiny_model_dir)
    items = list_inputs(corpus)[:3]
    full = _lines(extract(tok, items, tmp_path / "a"))
    dedup = _lines(extract(tok, items, tmp_path / "b", dedup=True))
    for f, d in zip(full, dedup, strict=True):
        units, runs = str(d["units"]).split(), [int(r) for r in str(d["durations"]).split()]
        expanded = [u for u, r in zip(units, runs, strict=True) for _ in range(r)]
        assert expanded == str(f["units"]).split()
        assert all(a != b for a, b in zip(units, units[1:], strict=False))


def test_shards_merge_into_the_single_job(
    corpus: Path, tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tok = load(tiny_model_dir)
    items = list_inputs(corpus)
    extract(tok, items, tmp_path / "one")
    merge(tmp_path / "one")
    for i in range(3):
        extract(tok, items, tmp_path / "three", shard=Shard(i, 3), batch_seconds=1.5)
    merge(tmp_path / "three")
    assert (tmp_path / "three" / "units.jsonl").read_bytes() == (tmp_path / "one" / "units.jsonl").read_bytes()
    assert parse_shard("2/3") == Shard(2, 3)
    for bad in ("3/3", "x", "-1/2"):
        with pytest.raises(VQAudioError):
            parse_shard(bad)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert shard_from_env() == Shard(1, 4)
    (tmp_path / "three" / "shard-001-of-003.done").unlink()
    with pytest.raises(VQAudioError, match="not finished"):
        merge(tmp_path / "three")


def test_resume_after_a_cut_gives_the_uninterrupted_bytes(corpus: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    tok = load(tiny_model_dir)
    items = list_inputs(corpus)
    whole = extract(tok, items, tmp_path / "whole", batch_seconds=1.5).read_bytes()
    cut = tmp_path / "cut" / "shard-000-of-001.jsonl"
    cut.parent.mkdir()
    cut.write_bytes(whole[: whole.index(b"\n", whole.index(b"\n") + 1) + 25])  # two lines and a half
    meta = "shard-000-of-001.meta.json"
    (tmp_path / "cut" / meta).write_bytes((tmp_path / "whole" / meta).read_bytes())
    assert extract(tok, items, tmp_path / "cut", batch_seconds=2.0).read_bytes() == whole
    cut.write_bytes(b'{"id": "someone/else"}\n')
    with pytest.raises(VQAudioError, match="this job's input 1"):
        extract(tok, items, tmp_path / "cut")


def test_kill_9_then_rerun_finishes_the_job(corpus: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    """A real process killed with SIGKILL in the middle, then run again: the bytes of an uninterrupted run."""
    big = tmp_path / "big"
    for i in range(3 * READ_AHEAD):  # lines are written a group of READ_AHEAD files at a time
        (big / f"s{i % 4}").mkdir(parents=True, exist_ok=True)
        sf.write(big / f"s{i % 4}" / f"{i:03d}.wav", speech_like(0.3, SR, f0=90 + i % 50, seed=i), SR)
    args = [sys.executable, "-m", "vqaudio.cli", "units", "extract", str(big), "-m", str(tiny_model_dir)]
    args += ["--batch-seconds", "0", "--no-progress", "-o"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([*args, str(tmp_path / "ref")], check=True, env=env, capture_output=True, timeout=300)
    out = tmp_path / "killed" / "shard-000-of-001.jsonl"
    proc = subprocess.Popen(
        [*args, str(tmp_path / "killed")], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 120
    while time.time() < deadline and (not out.exists() or out.read_bytes().count(b"\n") < 5):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "killed" / "shard-000-of-001.done").exists()
    assert 5 <= out.read_bytes().count(b"\n") < 3 * READ_AHEAD
    subprocess.run([*args, str(tmp_path / "killed")], check=True, env=env, capture_output=True, timeout=300)
    assert out.read_bytes() == (tmp_path / "ref" / "shard-000-of-001.jsonl").read_bytes()


def test_cli_units_and_refusals(corpus: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    base = ["units", "extract", str(corpus), "-o", str(tmp_path / "u"), "-m", str(tiny_model_dir), "--no-progress"]
    result = runner.invoke(app, [*base, "--dedup", "--shard", "0/2"])
    assert result.exit_code == 0, result.output
    assert runner.invoke(app, [*base, "--shard", "1/2", "--dedup"]).exit_code == 0
    result = runner.invoke(app, ["units", "merge", str(tmp_path / "u")])
    assert result.exit_code == 0 and "7 files; 2 skipped" in result.output
    for args in ([*base, "--codebook", "9"], [*base, "--shard", "2/2"], ["units", "merge", str(tmp_path / "none")]):
        result = runner.invoke(app, args)
        assert result.exit_code == 1 and result.output.startswith("error:") and result.output.count("\n") == 1


# --- formats, metadata, expand, speaking units ------------------------------------------------------------------


def test_merge_writes_fairseq_files_jsonl_fields_and_metadata(
    corpus: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    tok = load(tiny_model_dir)
    out = tmp_path / "u"
    extract(tok, list_inputs(corpus), out, root=input_root(corpus))
    merge(out, split="dev")
    rows = _lines(out / "units.jsonl")
    assert all(r["frame_rate"] == tok.frame_rate and r["model"] == "tiny" for r in rows)
    tsv = (out / "dev.tsv").read_text().splitlines()
    assert tsv[0] == str(corpus.resolve()) and len(tsv) == len(rows) + 1
    for line, row in zip(tsv[1:], rows, strict=True):
        rel, n = line.split("\t")
        assert (corpus / rel).resolve() == Path(str(row["path"])).resolve()
        assert int(n) == sf.info(corpus / rel).frames == row["n_samples"]
    km = (out / "dev.km").read_text().splitlines()
    assert km == [r["units"] for r in rows]
    counts = [line.split() for line in (out / "dict.km.txt").read_text().splitlines()]
    assert [int(u) for u, _ in counts] == list(range(tok.codebook_size))
    assert sum(int(c) for _, c in counts) == sum(len(str(r["units"]).split()) for r in rows)
    meta = read_meta(out / "units.meta.json")
    assert (meta.model, meta.codes_checksum, meta.codebook, meta.dedup) == ("tiny", tok.codes_checksum, 0, False)
    # Both files read back to the same utterances.
    from_jsonl, m1 = read_units(out)
    from_km, m2 = read_units(out / "dev.km")
    assert m1 == m2 == meta
    assert [(u.id, u.units) for u in from_jsonl] == [(u.id, u.units) for u in from_km]


def test_dedup_then_expand_gives_the_plain_extraction(corpus: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    tok = load(tiny_model_dir)
    items = list_inputs(corpus)
    for name, dd in (("plain", False), ("dedup", True)):
        extract(tok, items, tmp_path / name, dedup=dd)
        merge(tmp_path / name)
    result = CliRunner().invoke(
        app, ["units", "expand", str(tmp_path / "dedup" / "units.jsonl"), "-o", str(tmp_path / "expanded.jsonl")]
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "expanded.jsonl").read_bytes() == (tmp_path / "plain" / "units.jsonl").read_bytes()
    assert expand(*dedup([3, 3, 1, 1, 1, 3])) == [3, 3, 1, 1, 1, 3] and dedup([]) == ([], [])
    with pytest.raises(VQAudioError, match="2 units but 1 durations"):
        expand([1, 2], [3])


def test_shards_of_other_models_are_refused(
    corpus: Path, tiny_model_dir: Path, other_model_dir: Path, tmp_path: Path
) -> None:
    items = list_inputs(corpus)
    extract(load(tiny_model_dir), items, tmp_path / "u", shard=Shard(0, 2))
    extract(load(other_model_dir), items, tmp_path / "u", shard=Shard(1, 2))
    with pytest.raises(VQAudioError, match="different models or options"):
        merge(tmp_path / "u")
    with pytest.raises(VQAudioError, match="another model or other options"):
        extract(load(tiny_model_dir), items, tmp_path / "u", shard=Shard(1, 2))
    with pytest.raises(VQAudioError, match="another model or other options"):
        extract(load(tiny_model_dir), items, tmp_path / "u", shard=Shard(0, 2), dedup=True)


def test_units_resynth_speaks_every_utterance(corpus: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    tok = load(tiny_model_dir)
    out = tmp_path / "u"
    extract(tok, list_inputs(corpus), out, dedup=True, root=input_root(corpus))
    merge(out)
    runner = CliRunner()
    base = ["units", "resynth", str(out), "-o", str(tmp_path / "wavs"), "-m", str(tiny_model_dir)]
    result = runner.invoke(app, base)
    assert result.exit_code == 0, result.output
    for utt in read_units(out)[0]:
        wav = tmp_path / "wavs" / f"{utt.id}.wav"
        assert sf.info(wav).frames == len(utt.expanded()) * tok.model.hop_length
    again = runner.invoke(app, base)  # nothing overwritten without --force
    assert again.exit_code == 1 and "pass --force" in again.output and again.output.count("\n") == 1
    voiced = runner.invoke(app, [*base, "--force", "--voice", str(next(corpus.rglob("*.flac")))])
    assert voiced.exit_code == 1 and "not speaker-conditioned" in voiced.output
    (tmp_path / "odd.km").write_text("1 2 x\n")
    odd = runner.invoke(
        app, ["units", "resynth", str(tmp_path / "odd.km"), "-o", str(tmp_path / "w2"), "-m", str(tiny_model_dir)]
    )
    assert odd.exit_code == 1 and "non-negative integers" in odd.output


def test_python_units_and_speak(tmp_path: Path) -> None:
    """units() -> speak() in another voice, with a speaker-conditioned model; dedup'd units decode the same."""
    import dataclasses

    import torch
    from conftest import tiny_config

    from vqaudio.models import build_codec, save_model
    from vqaudio.models.conditional import SpeakerConfig

    torch.manual_seed(0)
    config = dataclasses.replace(tiny_config(vocoder=False), family="conditional", speaker=SpeakerConfig(16, 1, 8))
    model_dir = save_model(tmp_path / "cond", "cond", config, build_codec(config).eval(), None, card={})
    tok = load(model_dir)
    source, voice = speech_like(1.2, SR, f0=110, seed=1), speech_like(1.0, SR, f0=220, seed=2)
    plain = units(tok, source, SR)
    merged = units(tok, source, SR, dedup=True)
    assert np.array_equal(merged.expanded(), plain.units) and plain.frame_rate == tok.frame_rate
    a = speak(tok, plain, voice=voice, sample_rate=SR).samples
    b = speak(tok, merged, voice=voice, sample_rate=SR).samples
    assert torch.equal(a, b) and a.shape[-1] == plain.units.size * tok.model.hop_length
    assert not torch.equal(a, speak(tok, plain, voice=source, sample_rate=SR).samples)
    with pytest.raises(VQAudioError, match="outside"):
        speak(tok, [0, tok.codebook_size])


def test_units_review_cases(corpus: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    """A deduplicated .km is refused (its durations are in the JSONL), expand does not overwrite another
    extraction's metadata, ids with dots keep their own output files, a pre-metadata shard is not resumed."""
    tok = load(tiny_model_dir)
    out = tmp_path / "u"
    extract(tok, list_inputs(corpus), out, dedup=True)
    merge(out)
    with pytest.raises(VQAudioError, match="without their durations"):
        read_units(out / "train.km")
    other = tmp_path / "other"
    other.mkdir()
    (other / "units.meta.json").write_text("{}")
    runner = CliRunner()
    result = runner.invoke(app, ["units", "expand", str(out / "units.jsonl"), "-o", str(other / "plain.jsonl")])
    assert (
        result.exit_code == 1 and "already exists" in result.output and (other / "units.meta.json").read_text() == "{}"
    )
    (tmp_path / "bad.jsonl").write_bytes(b"\xff\xfe not json\n")
    result = runner.invoke(app, ["units", "expand", str(tmp_path / "bad.jsonl"), "-o", str(tmp_path / "x.jsonl")])
    assert result.exit_code == 1 and result.output.startswith("error:") and result.output.count("\n") == 1
    dots = tmp_path / "dots.jsonl"
    dots.write_text('{"id": "a/utt.001", "units": "1 2 3"}\n{"id": "a/utt.002", "units": "4 5"}\n')
    result = runner.invoke(app, ["units", "resynth", str(dots), "-o", str(tmp_path / "w"), "-m", str(tiny_model_dir)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "w" / "a").iterdir()) == ["utt.001.wav", "utt.002.wav"]
    old = tmp_path / "old"
    old.mkdir()
    (old / "shard-000-of-001.jsonl").write_text('{"id": "10/100/10-100-0000"}\n')
    with pytest.raises(VQAudioError, match="older vqaudio"):
        extract(tok, list_inputs(corpus), old)
