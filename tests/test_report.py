"""``vqaudio compare``: one self-contained HTML page, checked by parsing it and by opening it in headless Chromium."""

from __future__ import annotations

import base64
import html.parser
import io
import os
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from browser import Chromium, find_chromium
from conftest import speech_like
from typer.testing import CliRunner, Result

from vqaudio.cli import app

SR = 16000
runner = CliRunner()


def invoke(*args: object) -> Result:
    return runner.invoke(app, [str(a) for a in args])


def assert_error(result: Result, match: str) -> None:
    """Exit 1 and one ``error:`` line on stderr naming the problem, no traceback."""
    assert isinstance(result.exception, SystemExit), f"uncaught {result.exception!r}\n{result.output}"
    assert result.exit_code == 1, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert re.search(match, lines[0]), lines[0]
    assert "Traceback" not in result.output


class _Page(html.parser.HTMLParser):
    """The report's embedded media and table rows."""

    def __init__(self) -> None:
        super().__init__()
        self.audio: list[str] = []
        self.images: list[str] = []
        self.rows: list[list[str]] = []
        self.scripts = 0
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "audio":
            self.audio.append(a["src"] or "")
        elif tag == "img":
            self.images.append(a["src"] or "")
        elif tag == "script":
            self.scripts += 1
        elif tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th") and self.rows:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data + " ")


def parse(page: Path) -> _Page:
    p = _Page()
    p.feed(page.read_text(encoding="utf-8"))
    return p


def decode_audio(uri: str) -> tuple[np.ndarray, int]:
    assert uri.startswith("data:audio/flac;base64,")
    data, rate = sf.read(io.BytesIO(base64.b64decode(uri.split(",", 1)[1], validate=True)), dtype="float32")
    return data, rate


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    path = tmp_path / "clip one.wav"
    sf.write(path, speech_like(1.0, SR), SR)
    return path


def test_report_has_a_row_of_audio_and_image_for_each_signal(tiny_model_dir: Path, clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    result = invoke("compare", clip, "-m", tiny_model_dir, "-k", "1,2,4", "-o", out)
    assert result.exit_code == 0, result.output
    page = parse(out)
    # The original and one row per codebook count, each with its audio and its spectrogram, all embedded.
    assert len(page.audio) == len(page.images) == 4
    assert page.scripts == 0
    assert not re.search(r'(src|href)="(?!data:)', out.read_text())
    for uri in page.audio:
        data, rate = decode_audio(uri)
        assert rate == SR and data.shape == (SR,) and np.all(np.isfinite(data))
    for uri in page.images:
        assert uri.startswith("data:image/png;base64,")
        assert base64.b64decode(uri.split(",", 1)[1], validate=True)[:8] == b"\x89PNG\r\n\x1a\n"
    labels = [(row[0].split()[0], row[1]) for row in page.rows[1:]]
    # The tiny model: 100 mel frames/s halved by one stride of 2 = 50 code frames/s, 64 entries = 6 bits.
    assert labels == [("original", "–"), ("1", "0.30 kbps"), ("2", "0.60 kbps"), ("4", "1.20 kbps")]
    # The eval extra is a dev dependency: every resynthesis has PESQ (or NaN for this non-speech), STOI and mel.
    for row in page.rows[2:]:
        assert re.fullmatch(r"\d\.\d{3}", row[3]) and re.fullmatch(r"\d+\.\d{3}", row[4]), row


def test_shipped_model_rows_at_its_bitrates(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    result = invoke("compare", clip, "--beam", "1", "-o", out)
    assert result.exit_code == 0, result.output
    rows = parse(out).rows[1:]
    assert [r[1] for r in rows] == ["–", "0.50 kbps", "1.50 kbps", "3.00 kbps"]
    assert all("hybrid vocoder" in r[0] for r in rows[1:])


def test_long_inputs_are_clipped_and_the_page_says_so(tiny_model_dir: Path, tmp_path: Path) -> None:
    long = tmp_path / "long.flac"
    sf.write(long, speech_like(3.0, 22050), 22050)
    out = tmp_path / "r.html"
    result = invoke("compare", long, "-m", tiny_model_dir, "-k", "1", "--max-seconds", "1.25", "-o", out)
    assert result.exit_code == 0, result.output
    page = parse(out)
    assert {decode_audio(uri)[0].shape for uri in page.audio} == {(20000,)}
    text = out.read_text()
    assert "clipped to their first 1.25 s" in text and "the first 1.25 s of 3.00 s (clipped)" in text


def test_a_row_per_vocoder_and_two_inputs(tiny_model_dir: Path, clip: Path, tmp_path: Path) -> None:
    other = tmp_path / "two.wav"
    sf.write(other, speech_like(0.5, 8000, f0=200), 8000)
    out = tmp_path / "r.html"
    args = ["-m", tiny_model_dir, "-k", "1,3", "--vocoder", "learned", "--vocoder", "griffin-lim", "-o", out]
    result = invoke("compare", clip, other, *args)
    assert result.exit_code == 0, result.output
    page = parse(out)
    assert len(page.audio) == len(page.images) == 2 * (1 + 2 * 2)
    heads = [r[0] for r in page.rows if r and r[0] and r[0] != ""]
    assert sum("griffin-lim vocoder" in h for h in heads) == 4
    assert decode_audio(page.audio[-1])[0].shape == (SR // 2,)  # the 8 kHz input, at the model's rate


def test_without_the_eval_extra_only_the_mel_distance(
    tiny_model_dir: Path, clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pesq", None)  # import pesq now raises ImportError
    out = tmp_path / "r.html"
    result = invoke("compare", clip, "-m", tiny_model_dir, "-k", "2", "-o", out)
    assert result.exit_code == 0, result.output
    assert "vqaudio[eval]" in result.stderr and "vqaudio[eval]" in out.read_text()
    row = parse(out).rows[2]
    assert row[2:4] == ["–", "–"] and re.fullmatch(r"\d+\.\d{3}", row[4])


@pytest.mark.skipif(not (shutil.which("c2enc") and shutil.which("opusenc")), reason="needs codec2 and opus-tools")
def test_reference_codecs_at_comparable_bitrates(tiny_model_dir: Path, clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    result = invoke("compare", clip, "-m", tiny_model_dir, "-k", "1,4", "--reference-codecs", "-o", out)
    assert result.exit_code == 0, result.output
    rows = parse(out).rows[1:]
    # 0.3 and 1.2 kbps: the nearest Codec2 modes are 700C and 1200; Opus at its lowest rate.
    assert [(r[0].split()[0], r[1]) for r in rows[3:]] == [
        ("codec2-700C", "0.70 kbps"),
        ("codec2-1200", "1.20 kbps"),
        ("opus-6", "6.00 kbps"),
    ]
    for uri in parse(out).audio:
        assert decode_audio(uri)[0].shape == (SR,)


def test_missing_matplotlib_names_the_extra(
    tiny_model_dir: Path, clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    out = tmp_path / "r.html"
    assert_error(invoke("compare", clip, "-m", tiny_model_dir, "-o", out), r"pip install 'vqaudio\[report\]'")
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["-k", "1,x"], "whole numbers separated by commas"),
        (["-k", "1,\u00b2"], "whole numbers separated by commas"),  # superscript 2: isdigit() but not int()
        (["-k", "0"], "codebooks 1 to 4"),
        (["-k", "5"], "codebooks 1 to 4"),
        (["--max-seconds", "0"], "--max-seconds must be a positive"),
        (["--max-seconds", "nan"], "--max-seconds must be a positive"),
        (["--vocoder", "learned", "-m", "WAVE"], "decodes audio directly"),
        (["-m", "no-such-model"], "no such model"),
    ],
)
def test_bad_options_are_one_line_errors(
    args: list[str], match: str, tiny_model_dir: Path, tiny_waveform_dir: Path, clip: Path, tmp_path: Path
) -> None:
    out = tmp_path / "r.html"
    args = [str(tiny_waveform_dir) if a == "WAVE" else a for a in args]
    model = [] if "-m" in args else ["-m", tiny_model_dir]
    assert_error(invoke("compare", clip, *model, *args, "-o", out), match)
    assert not out.exists()


@pytest.mark.parametrize("case", ["missing", "not-audio", "empty", "out-exists", "out-suffix", "out-folder"])
def test_bad_files_are_one_line_errors(case: str, tiny_model_dir: Path, clip: Path, tmp_path: Path) -> None:
    src, out = clip, tmp_path / "r.html"
    match = {
        "missing": "nope.wav",
        "not-audio": "junk.wav",
        "empty": "empty.wav",
        "out-exists": "--force",
        "out-suffix": "name it .html",
        "out-folder": "does not exist",
    }[case]
    if case == "missing":
        src = tmp_path / "nope.wav"
    elif case == "not-audio":
        src = tmp_path / "junk.wav"
        src.write_bytes(os.urandom(3000))
    elif case == "empty":
        src = tmp_path / "empty.wav"
        sf.write(src, np.zeros(0, dtype=np.float32), SR)
    elif case == "out-exists":
        out.write_text("keep me")
    elif case == "out-suffix":
        out = tmp_path / "r.wav"
    else:
        out = tmp_path / "no" / "r.html"
    before = out.read_bytes() if out.exists() else None
    assert_error(invoke("compare", src, "-m", tiny_model_dir, "-o", out), match)
    assert (out.read_bytes() if out.exists() else None) == before


# Waits until every <audio> has its metadata (readyState >= HAVE_METADATA, i.e. loadedmetadata has fired) or an
# error, then reports what the browser made of every image and audio element.
_CHECK = """
new Promise(resolve => {
  const deadline = Date.now() + 30000;
  const poll = () => {
    const audio = [...document.querySelectorAll('audio')];
    if (audio.every(a => a.readyState >= 1 || a.error) || Date.now() > deadline) {
      resolve({
        images: [...document.images].map(i => ({complete: i.complete, width: i.naturalWidth})),
        audio: audio.map(a => ({duration: String(a.duration), error: a.error ? a.error.code : null})),
      });
    } else {
      setTimeout(poll, 50);
    }
  };
  poll();
})
"""


def test_report_plays_and_shows_in_headless_chromium(tiny_model_dir: Path, clip: Path, tmp_path: Path) -> None:
    executable = find_chromium()
    if executable is None:
        message = "headless Chromium is not installed (apt-get install chromium)"
        if os.environ.get("VQAUDIO_REQUIRE_BROWSER") == "1":
            pytest.fail(message + ", and VQAUDIO_REQUIRE_BROWSER=1 requires it")
        pytest.skip(message)
    out = tmp_path / "report.html"
    result = invoke("compare", clip, "-m", tiny_model_dir, "-k", "1,4", "-o", out)
    assert result.exit_code == 0, result.output
    shot = tmp_path / "report.png"
    with Chromium(executable, tmp_path / "profile") as browser:
        tab = browser.open(out.as_uri())
        seen = browser.evaluate(tab, _CHECK)
        browser.screenshot(tab, shot)
    assert len(seen["images"]) == len(seen["audio"]) == 3
    assert all(i["complete"] and i["width"] == 640 for i in seen["images"]), seen["images"]
    for a in seen["audio"]:
        assert a["error"] is None, a
        assert float(a["duration"]) == pytest.approx(1.0, abs=1e-3), a  # finite, > 0: the 1 s clip, decoded
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    print(f"screenshot: {shot}")
