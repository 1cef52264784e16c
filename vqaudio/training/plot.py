"""Training curves from a run's ``metrics.jsonl``."""

from __future__ import annotations

import json
from pathlib import Path

from vqaudio.errors import VQAudioError

_SKIP = {"step", "time", "lr", "n_codebooks"}


def read_metrics(path: str | Path) -> tuple[list[dict[str, float]], list[dict[str, float]]]:
    """Split a metrics log into training records and validation records (each with ``step``)."""
    train, valid = [], []
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as e:
        raise VQAudioError(f"{path}: cannot read metrics log ({e.strerror})") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            raise VQAudioError(f"{path}:{n}: not a JSON line") from None
        if "valid" in rec:
            valid.append({"step": rec["step"], **rec["valid"]})
        else:
            train.append(rec)
    if not train and not valid:
        raise VQAudioError(f"{path}: no metrics in the log")
    return train, valid


def plot_metrics(path: str | Path, output: str | Path) -> Path:
    """One panel per logged quantity (log-scale losses), validation curves in the last panel."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise VQAudioError("plotting needs matplotlib: pip install 'vqaudio[train]'") from None
    train, valid = read_metrics(path)
    keys = sorted({k for r in train for k in r} - _SKIP)
    panels = len(keys) + (1 if valid else 0)
    cols = min(3, max(1, panels))
    rows = (panels + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, 3 * rows), squeeze=False)
    flat = list(axes.ravel())
    for ax, key in zip(flat, keys, strict=False):
        pts = [(r["step"], r[key]) for r in train if key in r]
        ax.plot([p[0] for p in pts], [p[1] for p in pts])
        ax.set_title(key)
        ax.set_xlabel("step")
        if key not in ("perplexity",) and all(p[1] > 0 for p in pts):
            ax.set_yscale("log")
    if valid:
        ax = flat[len(keys)]
        for key in sorted({k for r in valid for k in r} - {"step"}):
            pts = [(r["step"], r[key]) for r in valid if key in r]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=key)
        ax.set_title("validation")
        ax.legend(fontsize=7)
    for ax in flat[panels:]:
        ax.axis("off")
    fig.tight_layout()
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, dpi=80)
    plt.close(fig)
    return output
