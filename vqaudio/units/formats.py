"""Unit files in the formats the field reads, and what travels beside them.

* JSONL (``units.jsonl``): one utterance a line, ``{"id", "path", "seconds", "n_samples", "units", "frame_rate",
  "model"}`` and, for deduplicated units, ``"durations"`` (frames per kept unit); ``units`` and ``durations`` are
  space-separated integers.
* fairseq/textless: ``<split>.tsv`` (the root folder on its first line, then ``relative/path<TAB>n_samples``,
  ``n_samples`` as the file stores it), ``<split>.km`` (one line of space-separated units per utterance, in the
  manifest's order) and ``dict.km.txt`` (``<unit> <count>`` for every unit of the vocabulary, in unit order).
* ``units.meta.json``: the model and its codes identity (codes checksum, code search), the codebook the units
  come from, the frame rate and whether they were deduplicated. ``merge`` refuses shards whose metadata differ.

Unit ``n`` of an utterance covers samples ``[n * hop, (n + 1) * hop)`` of the audio at the model's rate (``hop``
= ``sample_rate / frame_rate``: 320 samples, 20 ms, for units-16k); deduplicated unit ``i`` covers frames
``sum(durations[:i])`` up to ``sum(durations[:i + 1])``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from vqaudio.atomic import write_atomic
from vqaudio.errors import VQAudioError

META_NAME = "units.meta.json"


def dedup(units: Sequence[int]) -> tuple[list[int], list[int]]:
    """Runs of equal units -> each run's unit and its length in frames."""
    kept: list[int] = []
    runs: list[int] = []
    for u in units:
        if kept and kept[-1] == u:
            runs[-1] += 1
        else:
            kept.append(int(u))
            runs.append(1)
    return kept, runs


def expand(units: Sequence[int], durations: Sequence[int]) -> list[int]:
    """Inverse of :func:`dedup`: each unit repeated its duration."""
    if len(units) != len(durations):
        raise VQAudioError(f"{len(units)} units but {len(durations)} durations")
    if any(int(d) < 1 for d in durations):
        raise VQAudioError("every duration must be at least 1 frame")
    return [int(u) for u, d in zip(units, durations, strict=True) for _ in range(int(d))]


@dataclass(frozen=True)
class UnitsMeta:
    """What the units are: who made them and how (``units.meta.json``)."""

    model: str
    codes_checksum: str
    code_search: str
    codebook: int
    vocabulary: int
    frame_rate: float
    sample_rate: int
    dedup: bool
    root: str

    def to_json(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: object, source: str) -> UnitsMeta:
        names = [f.name for f in fields(cls)]
        if not isinstance(d, dict) or any(n not in d for n in names):
            raise VQAudioError(f"{source}: not a units metadata file (it needs {', '.join(names)})")
        return cls(**{n: d[n] for n in names})


def write_meta(path: Path, meta: UnitsMeta) -> None:
    write_atomic(path, (json.dumps(meta.to_json(), indent=1, sort_keys=True) + "\n").encode())


def read_meta(path: Path) -> UnitsMeta:
    try:
        return UnitsMeta.from_json(json.loads(path.read_text()), str(path))
    except (OSError, ValueError) as e:
        raise VQAudioError(f"cannot read {path}: {e}") from None


@dataclass(frozen=True)
class Utterance:
    """One utterance's units (and, if deduplicated, each unit's duration in frames)."""

    id: str
    units: list[int]
    durations: list[int] | None = None

    def expanded(self) -> list[int]:
        """One unit per frame."""
        return self.units if self.durations is None else expand(self.units, self.durations)


def _ints(text: object, source: str, what: str) -> list[int]:
    if isinstance(text, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in text):
        values = list(text)
    elif isinstance(text, str) and all(t.isascii() and t.isdigit() for t in text.split()):
        values = [int(t) for t in text.split()]
    else:
        raise VQAudioError(f"{source}: {what} must be non-negative integers, got {str(text)[:40]!r}")
    return values


def read_units(path: str | Path) -> tuple[list[Utterance], UnitsMeta | None]:
    """Utterances of a ``.jsonl`` (units.jsonl, or a shard), a ``.km`` file (its ids from the ``.tsv`` beside it, else
    line numbers) or a folder holding ``units.jsonl``; and the metadata beside them, if any."""
    p = Path(path)
    if p.is_dir():
        p = p / "units.jsonl"
    if not p.is_file():
        raise VQAudioError(f"{p}: no such units file")
    meta_path = p.parent / META_NAME
    meta = read_meta(meta_path) if meta_path.is_file() else None
    try:
        lines = p.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise VQAudioError(f"cannot read {p}: {e}") from None
    out: list[Utterance] = []
    if p.suffix == ".km":
        if meta is not None and meta.dedup:
            raise VQAudioError(
                f"{p} holds deduplicated units without their durations; use the units.jsonl beside it, which has them"
            )
        # Ids as extraction gave them (units.jsonl, same order), else from the manifest beside it, else line numbers.
        ids: list[str] = []
        beside, tsv = p.parent / "units.jsonl", p.with_suffix(".tsv")
        if beside.is_file():
            ids = [str(json.loads(r)["id"]) for r in beside.read_text().splitlines() if r.strip()]
        elif tsv.is_file():
            ids = [Path(r.split("\t")[0]).with_suffix("").as_posix() for r in tsv.read_text().splitlines()[1:]]
        if ids and len(ids) != len(lines):
            raise VQAudioError(f"{p} has {len(lines)} lines but {len(ids)} utterances are listed beside it")
        for i, line in enumerate(lines):
            out.append(Utterance(ids[i] if ids else str(i), _ints(line, f"{p} line {i + 1}", "units")))
        return out, meta
    for i, raw in enumerate(lines):
        where = f"{p} line {i + 1}"
        try:
            row = json.loads(raw)
        except ValueError:
            raise VQAudioError(f"{where} is not JSON") from None
        if not isinstance(row, dict) or "id" not in row:
            raise VQAudioError(f"{where} is not a units line")
        if "error" in row:
            continue
        if "units" not in row:
            raise VQAudioError(f"{where} has no units")
        durations = _ints(row["durations"], where, "durations") if "durations" in row else None
        utt = Utterance(str(row["id"]), _ints(row["units"], where, "units"), durations)
        if durations is not None:
            expand(utt.units, durations)  # refuses a mismatch now, naming nothing wrong later
        out.append(utt)
    return out, meta


def expand_jsonl(src: str | Path, dst: str | Path, *, overwrite: bool = False) -> int:
    """Write ``src`` (JSONL with durations) with each unit repeated its duration and no durations: exactly the units
    of an extraction without ``--dedup``. Returns the number of utterances."""
    s, d = Path(src), Path(dst)
    if d.exists() and not overwrite:
        raise VQAudioError(f"{d} already exists; pass --force to replace it")
    if d.resolve() == s.resolve():
        raise VQAudioError(f"{d} is the input file; write the expanded units elsewhere")
    meta, meta_out = s.parent / META_NAME, d.parent / META_NAME
    write_meta_too = meta.is_file() and d.parent.resolve() != s.parent.resolve()
    if write_meta_too and meta_out.exists() and not overwrite:
        raise VQAudioError(f"{meta_out} already exists (another extraction's); pass --force to replace it")
    try:
        text = s.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise VQAudioError(f"cannot read {s}: {e}") from None
    out = []
    for i, raw in enumerate(text.splitlines()):
        where = f"{s} line {i + 1}"
        try:
            row = json.loads(raw)
        except ValueError:
            raise VQAudioError(f"{where} is not JSON") from None
        if not isinstance(row, dict):
            raise VQAudioError(f"{where} is not a units line")
        if "durations" in row:
            units = expand(_ints(row.get("units"), where, "units"), _ints(row["durations"], where, "durations"))
            row["units"] = " ".join(map(str, units))
            del row["durations"]
        out.append(json.dumps(row))
    write_atomic(d, "".join(line + "\n" for line in out).encode())
    if write_meta_too:
        write_meta(meta_out, replace(read_meta(meta), dedup=False))
    return len(out)


def fairseq_files(rows: Iterable[dict[str, object]], meta: UnitsMeta, out_dir: Path, split: str) -> list[Path]:
    """``<split>.tsv``, ``<split>.km`` and ``dict.km.txt`` in ``out_dir`` from merged units lines (input order)."""
    tsv = [meta.root]
    km = []
    counts = [0] * meta.vocabulary
    for row in rows:
        path = Path(str(row["path"]))  # absolute, as extraction stored it
        try:
            rel = path.relative_to(meta.root).as_posix()
        except ValueError:
            rel = path.as_posix()  # outside the root: fairseq joins an absolute path as it is
        tsv.append(f"{rel}\t{row['n_samples']}")
        units = str(row["units"])
        km.append(units)
        for u in units.split():
            counts[int(u)] += 1
    written = []
    for name, lines in ((f"{split}.tsv", tsv), (f"{split}.km", km)):
        write_atomic(out_dir / name, "".join(line + "\n" for line in lines).encode())
        written.append(out_dir / name)
    write_atomic(out_dir / "dict.km.txt", "".join(f"{u} {c}\n" for u, c in enumerate(counts)).encode())
    return [*written, out_dir / "dict.km.txt"]
