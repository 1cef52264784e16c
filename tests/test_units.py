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

import pytest
import soundfile as sf
from conftest import speech_like
from typer.testing import CliRunner

from vqaudio.cli import app
from vqaudio.errors import VQAudioError
from vqaudio.tokenizer import load
from vqaudio.units.extract import Shard, extract, list_inputs, merge, parse_shard, shard_from_env

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
    path = extract(tok, items, tmp_path / "out", codebook=1, batch_size=4)
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
    single = extract(tok, items, tmp_path / "single", codebook=1, batch_size=1)
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
        extract(tok, items, tmp_path / "three", shard=Shard(i, 3), batch_size=2)
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
    whole = extract(tok, items, tmp_path / "whole", batch_size=2).read_bytes()
    cut = tmp_path / "cut" / "shard-000-of-001.jsonl"
    cut.parent.mkdir()
    cut.write_bytes(whole[: whole.index(b"\n", whole.index(b"\n") + 1) + 25])  # two lines and a half
    assert extract(tok, items, tmp_path / "cut", batch_size=3).read_bytes() == whole
    cut.write_bytes(b'{"id": "someone/else"}\n')
    with pytest.raises(VQAudioError, match="this job's input 1"):
        extract(tok, items, tmp_path / "cut")


def test_kill_9_then_rerun_finishes_the_job(corpus: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    """A real process killed with SIGKILL in the middle, then run again: the bytes of an uninterrupted run."""
    big = tmp_path / "big"
    for i in range(40):
        (big / f"s{i % 4}").mkdir(parents=True, exist_ok=True)
        sf.write(big / f"s{i % 4}" / f"{i:03d}.wav", speech_like(0.3, SR, f0=90 + 3 * i, seed=i), SR)
    args = [sys.executable, "-m", "vqaudio.cli", "units", "extract", str(big), "-m", str(tiny_model_dir)]
    args += ["--batch-size", "1", "--no-progress", "-o"]
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
    assert 5 <= out.read_bytes().count(b"\n") < 40
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
