"""The page of a :class:`~vqaudio.report.Report`: one self-contained HTML file that opens from disk.

Audio is embedded as 16-bit FLAC and spectrograms as PNG, both in base64 ``data:`` URIs, so the page needs no
server and no other file. The spectrograms are log-mel images drawn by matplotlib (the ``report`` extra) through
its object API, never pyplot, so that drawing changes no global state. Within one input every image has the same
size, axes and colour scale, so they line up and compare by eye.
"""

from __future__ import annotations

import base64
import html
import io
import math
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from vqaudio import __version__
from vqaudio.atomic import write_atomic
from vqaudio.errors import VQAudioError
from vqaudio.report import Report, Row, Section

__all__ = ["audio_data_uri", "log_mel_db", "render_html", "require_matplotlib", "spectrogram_figure", "write_report"]

_N_MELS = 80
# Colours span this many dB below the loudest bin of the original; quieter bins all draw as the floor.
_DYNAMIC_RANGE_DB = 80.0
_POWER_FLOOR = 1e-10
_IMAGE_INCHES = (6.4, 1.6)
_IMAGE_DPI = 100
# Axes at a fixed place in every image (fractions of its width and height), whatever the tick labels' widths:
# images stacked in a column then have their time axes exactly above each other.
_AXES_BOX = (0.07, 0.24, 0.9, 0.7)
_FREQ_TICKS_HZ = (500, 1000, 2000, 4000, 8000, 16000)
_PALETTE_COLOURS = 128


def require_matplotlib() -> None:
    """Raise a one-line :class:`VQAudioError` naming the extra to install when matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise VQAudioError("the report draws spectrograms with matplotlib: pip install 'vqaudio[report]'") from None


def log_mel_db(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """``[T]`` -> ``[80, F]`` mel power in dB: a 1024-sample window with a 256-sample hop at 16 kHz, scaled with
    the rate (64 ms and 16 ms at any rate)."""
    import librosa

    n_fft = max(16, round(1024 * sample_rate / 16000))
    hop = max(1, round(256 * sample_rate / 16000))
    with warnings.catch_warnings():
        # A clip shorter than the window (a few samples) still gets its one zero-padded frame; no need to say so.
        warnings.filterwarnings("ignore", message="n_fft=.* is too large", category=UserWarning)
        mel = librosa.feature.melspectrogram(
            y=np.asarray(audio, dtype=np.float32),
            sr=sample_rate,
            n_fft=n_fft,
            hop_length=hop,
            n_mels=_N_MELS,
            power=2.0,
        )
    return np.asarray(10.0 * np.log10(np.maximum(mel, _POWER_FLOOR)))


def _draw(ax: Any, spec_db: np.ndarray, sample_rate: int, duration: float, vmax: float) -> None:
    """A log-mel image on ``ax``: time in seconds across, mel bands up with their frequencies as ticks."""
    import librosa

    ax.imshow(
        spec_db,
        origin="lower",
        aspect="auto",
        cmap="magma",
        vmin=vmax - _DYNAMIC_RANGE_DB,
        vmax=vmax,
        extent=(0.0, duration, 0.0, float(spec_db.shape[0])),
        interpolation="nearest",
    )
    # Band i's filter peaks at the (i + 1)-th of n_mels + 2 points evenly spaced in mel from 0 to Nyquist.
    centres = librosa.mel_frequencies(n_mels=spec_db.shape[0] + 2, fmax=sample_rate / 2)[1:-1]
    ticks = [f for f in _FREQ_TICKS_HZ if centres[0] <= f <= centres[-1]]
    ax.set_yticks([float(np.interp(f, centres, np.arange(centres.size))) + 0.5 for f in ticks])
    ax.set_yticklabels([f"{f / 1000:g}k" for f in ticks], fontsize=7)
    ax.tick_params(axis="x", labelsize=7)
    ax.set_xlabel("time (s)", fontsize=7, labelpad=1)


def _figure_png(fig: Any) -> bytes:
    """The figure as a 128-colour palette PNG: a third of the size of matplotlib's RGBA one, and the same to the eye
    (a colour map has fewer than 128 steps worth telling apart). Pillow comes with matplotlib."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from PIL import Image

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    rgb = Image.frombuffer("RGBA", canvas.get_width_height(), canvas.buffer_rgba()).convert("RGB")
    buf = io.BytesIO()
    rgb.quantize(_PALETTE_COLOURS).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _reference_level(spec_db: np.ndarray) -> float:
    """The top of the colour scale: the loudest bin, or the floor plus the range for a silent signal."""
    top = float(spec_db.max())
    return top if top > 10 * math.log10(_POWER_FLOOR) else 10 * math.log10(_POWER_FLOOR) + _DYNAMIC_RANGE_DB


def spectrogram_png(audio: np.ndarray, sample_rate: int, duration: float, vmax: float) -> bytes:
    """One ``[T]`` signal's log-mel spectrogram as a PNG image, with the colour scale topping out at ``vmax`` dB."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=_IMAGE_INCHES, dpi=_IMAGE_DPI)
    _draw(fig.add_axes(_AXES_BOX), log_mel_db(audio, sample_rate), sample_rate, duration, vmax)
    return _figure_png(fig)


def spectrogram_figure(
    signals: Sequence[tuple[str, np.ndarray]],
    sample_rate: int,
    path: str | os.PathLike[str],
    *,
    overwrite: bool = False,
) -> None:
    """Stacked log-mel spectrograms of ``(title, [T])`` signals at ``sample_rate``, all on the colour scale of the
    first, written to the PNG ``path`` (how ``docs/figures/hello-spectrograms.png`` is made)."""
    require_matplotlib()
    from matplotlib.figure import Figure

    if not signals:
        raise VQAudioError("no signals to draw")
    specs = [log_mel_db(audio, sample_rate) for _, audio in signals]
    vmax = _reference_level(specs[0])
    duration = max(audio.size for _, audio in signals) / sample_rate
    fig = Figure(figsize=(_IMAGE_INCHES[0], 1.5 * len(signals) + 0.3), dpi=_IMAGE_DPI, layout="constrained")
    axes = fig.subplots(len(signals), 1, sharex=True, squeeze=False)[:, 0]
    for ax, (title, audio), spec in zip(axes, signals, specs, strict=True):
        _draw(ax, spec, sample_rate, audio.size / sample_rate, vmax)
        ax.set_xlim(0.0, duration)
        ax.set_title(title, fontsize=9, loc="left")
        if ax is not axes[-1]:
            ax.set_xlabel("")
    write_atomic(Path(path), _figure_png(fig), overwrite=overwrite)


def audio_data_uri(audio: np.ndarray, sample_rate: int) -> str:
    """``[T]`` float audio as a ``data:audio/flac;base64,...`` URI (16-bit FLAC: about half the size of WAV)."""
    buf = io.BytesIO()
    sf.write(buf, np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0), sample_rate, format="FLAC", subtype="PCM_16")
    return "data:audio/flac;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _number(value: float | None, digits: int) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _row_html(row: Row, section: Section, vmax: float) -> str:
    e = html.escape
    png = base64.b64encode(spectrogram_png(row.audio, section.sample_rate, section.duration, vmax)).decode("ascii")
    width, height = (round(v * _IMAGE_DPI) for v in _IMAGE_INCHES)
    s = row.scores
    bitrate = "–" if row.bitrate is None else f"{row.bitrate / 1000:.2f} kbps"
    cells = [
        f'<th scope="row">{e(row.label)}<div class="detail">{e(row.detail)}</div></th>',
        f'<td class="num bitrate">{bitrate}</td>',
        f'<td class="num">{_number(s.pesq_wb if s else None, 2)}</td>',
        f'<td class="num">{_number(s.stoi if s else None, 3)}</td>',
        f'<td class="num">{_number(s.mel_distance if s else None, 3)}</td>',
        f'<td><audio controls preload="metadata" src="{audio_data_uri(row.audio, section.sample_rate)}"></audio></td>',
        f'<td><img width="{width}" height="{height}" alt="log-mel spectrogram: {e(row.label)}" '
        f'src="data:image/png;base64,{png}"></td>',
    ]
    return "<tr>" + "".join(cells) + "</tr>"


def _section_html(section: Section) -> str:
    e = html.escape
    vmax = _reference_level(log_mel_db(section.rows[0].audio, section.sample_rate))
    length = f"{section.duration:.2f} s"
    if section.full_duration is not None:
        length = f"the first {section.duration:.2f} s of {section.full_duration:.2f} s (clipped)"
    head = "".join(
        f"<th>{h}</th>"
        for h in ("", "bitrate", "PESQ-WB", "STOI", "log-mel distance", "listen", "log-mel spectrogram (dB)")
    )
    rows = "\n".join(_row_html(r, section, vmax) for r in section.rows)
    return (
        f"<section>\n<h2>{e(os.path.basename(section.source))}</h2>\n"
        f'<p class="meta">{e(section.source)}: {length}, mono at {section.sample_rate} Hz</p>\n'
        f"<table>\n<tr>{head}</tr>\n{rows}\n</table>\n</section>"
    )


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
p { max-width: 60em; }
table { border-collapse: collapse; }
th, td { padding: 4px 8px; border-bottom: 1px solid #ddd; vertical-align: middle; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr:first-child th, th[scope="row"] { white-space: nowrap; }
.detail, .meta, footer { color: #666; font-size: 0.85em; font-weight: normal; }
audio { width: 240px; }
img { display: block; }
"""


def render_html(report: Report) -> str:
    """The whole page of ``report`` as one HTML string (spectrograms and audio embedded)."""
    require_matplotlib()
    e = html.escape
    notes = "".join(f"<li>{e(n)}</li>" for n in report.notes)
    sections = "\n".join(_section_html(s) for s in report.sections)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>vqaudio listening report: {e(report.model)}</title>
<style>{_STYLE}</style>
</head>
<body>
<h1>Listening report: {e(report.model)}</h1>
<p>Model <code>{e(report.model)}</code> (weights {e(report.model_checksum[:16])}), code search beam {report.beam}.
Inputs longer than {report.max_seconds:g} s are clipped to their first {report.max_seconds:g} s.
Scores compare each row with the original after removing the codec's delay: PESQ-WB (1 to 4.64) and STOI (0 to 1),
higher is better; log-mel distance (mean absolute difference of log10 mel spectrograms), lower is better.
Spectrograms of one input share their colour scale: 0 to {_DYNAMIC_RANGE_DB:g} dB below the original's loudest bin.</p>
{f"<ul>{notes}</ul>" if notes else ""}
{sections}
<footer>Made by vqaudio {e(__version__)} (<code>vqaudio compare</code>).</footer>
</body>
</html>
"""


def write_report(report: Report, path: str | os.PathLike[str], *, overwrite: bool = False) -> int:
    """Render ``report`` and write it to ``path`` atomically; returns the page's size in bytes."""
    data = render_html(report).encode("utf-8")
    write_atomic(Path(path), data, overwrite=overwrite)
    return len(data)
