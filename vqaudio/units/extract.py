"""Turn a corpus into units: one line of JSON per input file, in a fixed order, resumable and sharded.

Each shard ``I`` of ``N`` takes every ``N``-th file of the sorted input list, starting at ``I``, and writes
``shard-I-of-N.jsonl``: exactly one line per file, in order, either its units or the reason it was skipped::

    {"id": "19/198/19-198-0001", "path": "...", "seconds": 14.085, "n_samples": 225360, "units": "17 17 402 ...",
     "frame_rate": 50.0, "model": "units-16k"}
    {"id": "bad/clip", "path": "...", "error": "bad/clip.wav: not an audio file ..."}

With ``dedup`` a unit repeated on consecutive frames is kept once and ``"durations"`` gives each kept
unit's run length in frames (what unit-based TTS and speech language models read).

Files are read 128 at a time, encoded in batches of similar length, and their lines appended in input order
and fsync'd group by group; the file ends with a ``.done`` marker. A run killed at any
point is resumed by running it again: a half-written last line is cut, the lines already written are checked
against the input order, and the rest follow, so the finished file is byte for byte what an uninterrupted
run writes. Each shard also writes ``shard-I-of-N.meta.json`` (:class:`vqaudio.units.formats.UnitsMeta`: the
model, its codes identity, the codebook, dedup): a rerun with another model or other options is refused, and so
is a merge of shards that differ. :func:`merge` puts the shards back in input order (``units.jsonl``), lists the
skipped files (``errors.tsv``) and writes the fairseq/textless files and ``units.meta.json``
(:mod:`vqaudio.units.formats`).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf

from vqaudio.atomic import write_atomic
from vqaudio.data.manifest import AUDIO_SUFFIXES, read_exclude_list, read_manifest
from vqaudio.encoded import Encoded
from vqaudio.errors import VQAudioError
from vqaudio.tokenizer import Tokenizer
from vqaudio.units.formats import META_NAME, UnitsMeta, dedup, fairseq_files, read_meta, write_meta


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    @property
    def name(self) -> str:
        return f"shard-{self.index:03d}-of-{self.count:03d}"


def parse_shard(text: str) -> Shard:
    """``"I/N"`` with ``0 <= I < N`` -> :class:`Shard`."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not m or not 0 <= int(m.group(1)) < int(m.group(2)):
        raise VQAudioError(f"--shard must be I/N with 0 <= I < N, got {text!r}")
    return Shard(int(m.group(1)), int(m.group(2)))


def shard_from_env() -> Shard:
    """The shard of this process under torchrun (``RANK``/``WORLD_SIZE``), else the whole job."""
    try:
        rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise VQAudioError("RANK and WORLD_SIZE must be whole numbers") from None
    if not 0 <= rank < world:
        raise VQAudioError(f"RANK {rank} is not below WORLD_SIZE {world}")
    return Shard(rank, world)


@dataclass(frozen=True)
class Item:
    id: str
    path: Path


def input_root(source: str | Path) -> Path:
    """The folder the inputs' ids (and a fairseq manifest's paths) are relative to: the folder itself, or the folder
    that holds the manifest or list (absolute, symlinks kept)."""
    src = Path(source)
    return Path(os.path.abspath(src if src.is_dir() else src.parent))


def list_inputs(source: str | Path) -> list[Item]:
    """A folder (any layout; LibriSpeech's works), a manifest (``.tsv`` from ``vqaudio prepare``) or a file
    list (one path a line) -> items sorted by id (the path relative to the folder or list, no suffix)."""
    src = Path(source)
    if src.is_dir():
        base, paths = src, [p for p in src.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file()]
    elif src.suffix == ".tsv":
        base, paths = src.parent, [e.path for e in read_manifest(src)]
    elif src.is_file():
        base = src.parent
        paths = [p if p.is_absolute() else base / p for p in map(Path, read_exclude_list(src))]
    else:
        raise VQAudioError(f"{src}: no such folder, manifest or file list")
    items = []
    for p in paths:
        try:
            rel = p.resolve().relative_to(base.resolve())
        except ValueError:
            rel = Path(p.name)
        items.append(Item(rel.with_suffix("").as_posix(), p))
    items.sort(key=lambda it: it.id)
    seen = {it.id for it in items}
    if len(seen) != len(items):
        raise VQAudioError(f"{src}: two inputs share an id (the same path with two suffixes?)")
    if not items:
        raise VQAudioError(f"{src}: no audio files")
    return items


def _stored_samples(path: Path, enc: Encoded) -> int:
    """Samples the file stores at its own rate (fairseq's ``n_samples``): its header's count, else the decoded
    length brought back to the file's rate."""
    try:
        return int(sf.info(str(path)).frames)
    except (sf.SoundFileError, OSError, RuntimeError):
        return round(enc.original_length * enc.original_sample_rate / enc.sample_rate)


def _units_line(item: Item, enc: Encoded, codebook: int, deduplicate: bool) -> dict[str, object]:
    units = enc.codes[codebook].tolist()
    line: dict[str, object] = {
        "id": item.id,
        "path": os.path.abspath(item.path),  # absolute: the fairseq manifest is made from it wherever merge runs
        "seconds": round(enc.original_length / enc.sample_rate, 4),
        "n_samples": _stored_samples(item.path, enc),
    }
    if deduplicate:
        kept, runs = dedup(units)
        line["units"] = " ".join(map(str, kept))
        line["durations"] = " ".join(map(str, runs))
    else:
        line["units"] = " ".join(map(str, units))
    line["frame_rate"] = enc.frame_rate
    line["model"] = enc.model_id
    return line


def units_meta(tok: Tokenizer, codebook: int, deduplicate: bool, root: str | Path) -> UnitsMeta:
    """What a job's units are: the model and its codes identity, the codebook and whether they are deduplicated."""
    return UnitsMeta(
        model=tok.name,
        codes_checksum=tok.codes_checksum,
        code_search=tok.code_search,
        codebook=codebook,
        vocabulary=tok.codebook_size,
        frame_rate=tok.frame_rate,
        sample_rate=tok.sample_rate,
        dedup=deduplicate,
        root=str(root),
    )


def _encode(tok: Tokenizer, batch: Sequence[Item], n: int, batch_seconds: float) -> list[Encoded | str]:
    """Codes for each item, or the one-line reason it cannot be read; a bad file never sinks its batch (the
    batch is halved until the bad files stand alone, so the rest are still encoded in batches)."""
    try:
        return list(tok.encode_batch([it.path for it in batch], n_codebooks=n, batch_seconds=batch_seconds))
    except VQAudioError as e:
        if len(batch) == 1:
            return [str(e).splitlines()[0] if str(e) else type(e).__name__]
    half = len(batch) // 2
    return _encode(tok, batch[:half], n, batch_seconds) + _encode(tok, batch[half:], n, batch_seconds)


# Files read, encoded and written together: batching by length happens among them, and a killed run loses
# at most one group's work.
READ_AHEAD = 128


def _resume(path: Path, expected: Sequence[Item]) -> int:
    """Lines of ``path`` already complete (cutting a half-written last line); refuses a file of another job."""
    if not path.exists():
        return 0
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end < len(data):
        with open(path, "r+b") as f:
            f.truncate(end)
    lines = data[:end].splitlines()
    if len(lines) > len(expected):
        raise VQAudioError(f"{path} has more lines than this shard has inputs: another job's output? remove it")
    for i, raw in enumerate(lines):
        try:
            got = json.loads(raw)["id"]
        except (ValueError, KeyError, TypeError):
            raise VQAudioError(f"{path}: line {i + 1} is not a units line; remove the file to start over") from None
        if got != expected[i].id:
            raise VQAudioError(f"{path}: line {i + 1} is {got!r}, but this job's input {i + 1} is {expected[i].id!r}")
    return len(lines)


def extract(
    tok: Tokenizer,
    items: Sequence[Item],
    out_dir: str | Path,
    *,
    shard: Shard = Shard(0, 1),
    codebook: int = 0,
    dedup: bool = False,
    batch_seconds: float = 40.0,
    progress: Callable[[int, float], None] | None = None,
    root: str | Path | None = None,
) -> Path:
    """Write (or finish) this shard's units file; returns its path. ``progress(files, seconds)`` is called
    after each group of ``READ_AHEAD`` files with what the group added. ``batch_seconds``: padded audio per
    batch through the model (files are batched by length; 0: one file a batch). ``root``: the folder the
    inputs are relative to (the fairseq manifest's first line; :func:`input_root`); by default the deepest
    folder holding them all."""
    if not 0 <= codebook < tok.num_codebooks:
        raise VQAudioError(f"--codebook must be in 0..{tok.num_codebooks - 1} for {tok.name}, got {codebook}")
    if not batch_seconds >= 0:
        raise VQAudioError(f"--batch-seconds must be >= 0, got {batch_seconds}")
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise VQAudioError(f"cannot make {out}: {e.strerror or e}") from None
    if tok.model.codebook_strides:
        raise VQAudioError(f"{tok.name} has multi-scale codes; units come from a model with codes of one frame rate")
    mine = list(items[shard.index :: shard.count])
    path = out / f"{shard.name}.jsonl"
    if root is None:
        root = os.path.commonpath([os.path.dirname(os.path.abspath(it.path)) for it in items]) if items else ""
    meta = units_meta(tok, codebook, dedup, root)
    meta_path = out / f"{shard.name}.meta.json"
    if path.exists() and path.stat().st_size and not meta_path.is_file():
        raise VQAudioError(
            f"{path} was started by an older vqaudio (no {meta_path.name}); remove it to extract this shard again"
        )
    started = read_meta(meta_path) if meta_path.is_file() else meta
    if started != meta:
        raise VQAudioError(
            f"{meta_path}: this shard was started with another model or other options ({started}); "
            "use another --out-dir or remove the shard's files"
        )
    done = _resume(path, mine)
    write_meta(meta_path, meta)
    # Each file's codes are its own whatever its batch, so the lines, written in input order, do not depend on
    # how the files were grouped or batched (a resumed run starts its groups elsewhere and writes the same).
    with open(path, "ab") as f:
        for start in range(done, len(mine), READ_AHEAD):
            batch = mine[start : start + READ_AHEAD]
            lines: list[dict[str, object]] = []
            seconds = 0.0
            for item, result in zip(batch, _encode(tok, batch, codebook + 1, batch_seconds), strict=True):
                if isinstance(result, str):
                    lines.append({"id": item.id, "path": str(item.path), "error": result})
                else:
                    lines.append(_units_line(item, result, codebook, dedup))
                    seconds += result.original_length / result.sample_rate
            f.write(b"".join(json.dumps(line).encode() + b"\n" for line in lines))
            f.flush()
            os.fsync(f.fileno())
            if progress is not None:
                progress(len(batch), seconds)
    write_atomic(out / f"{shard.name}.done", f"{len(mine)}\n".encode())
    return path


def merge(out_dir: str | Path, split: str = "train") -> tuple[Path, int, int]:
    """Join finished shards into ``units.jsonl`` (input order), ``errors.tsv``, ``units.meta.json`` and the
    fairseq files ``<split>.tsv``, ``<split>.km`` and ``dict.km.txt``; returns the units file and the counts of
    units lines and skipped files. Shards of different models or options are refused."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", split) or split.startswith("."):
        raise VQAudioError(f"--split must be a plain file name (letters, digits, _ . -), got {split!r}")
    out = Path(out_dir)
    shards = sorted(out.glob("shard-*-of-*.jsonl"))
    if not shards:
        raise VQAudioError(f"{out}: no shard files to merge")
    counts = {int(re.fullmatch(r"shard-\d+-of-(\d+)\.jsonl", p.name).group(1)) for p in shards}  # type: ignore[union-attr]
    if len(counts) != 1:
        raise VQAudioError(f"{out}: shards of different jobs ({', '.join(map(str, sorted(counts)))} shards)")
    n = counts.pop()
    parts: list[list[bytes]] = []
    for i in range(n):
        shard = Shard(i, n)
        if not (out / f"{shard.name}.done").is_file():
            raise VQAudioError(f"{out}: {shard.name} is not finished; run its extract again to finish it")
        parts.append((out / f"{shard.name}.jsonl").read_bytes().splitlines())
    missing = [Shard(i, n).name for i in range(n) if not (out / f"{Shard(i, n).name}.meta.json").is_file()]
    if missing:
        raise VQAudioError(f"{out}: {missing[0]} has no metadata (an older vqaudio made it); extract it again")
    metas = [read_meta(out / f"{Shard(i, n).name}.meta.json") for i in range(n)]
    if any(m != metas[0] for m in metas[1:]):
        raise VQAudioError(f"{out}: the shards were made by different models or options; extract them again alike")
    merged, errors = [], []
    for j in range(sum(len(p) for p in parts)):
        raw = parts[j % n][j // n]
        line = json.loads(raw)
        if "error" in line:
            errors.append(f"{line['path']}\t{line['error']}")
        else:
            merged.append(raw)
    write_atomic(out / "units.jsonl", b"".join(r + b"\n" for r in merged))
    write_atomic(out / "errors.tsv", "".join(e + "\n" for e in errors).encode())
    write_meta(out / META_NAME, metas[0])
    fairseq_files((json.loads(r) for r in merged), metas[0], out, split)
    return out / "units.jsonl", len(merged), len(errors)
