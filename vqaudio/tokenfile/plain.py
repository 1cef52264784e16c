"""The plain formats (``.npy`` + sidecar, ``.txt``, ``.json``); :func:`save_codes` / :func:`load_codes` for all four."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from vqaudio.errors import TokenFileError
from vqaudio.tokenfile.compat import _unknown_header
from vqaudio.tokenfile.header import (
    FORMAT_VERSION,
    FORMATS,
    TokenFile,
    TokenHeader,
    _check_header,
    _check_version,
    _header_from_json,
    _header_json_text,
    _PathLike,
    _validated_codes,
)
from vqaudio.tokenfile.storage import _bytes_writer, _read_text, _write_files
from vqaudio.tokenfile.vqt import read_tokens, write_tokens

# --------------------------------------------------------------------------------------------------
# .npy / .txt / .json
# --------------------------------------------------------------------------------------------------


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def _json_bytes(obj: dict[str, Any]) -> bytes:
    # The header was already checked to be serialisable; indent so people can read the sidecar.
    return (json.dumps(obj, ensure_ascii=False, allow_nan=False, indent=1) + "\n").encode("utf-8")


def _wrapped_header(header: TokenHeader) -> dict[str, Any]:
    # Version 1 for codes of one frame rate, which every vqaudio reads; multi-scale codes need version 2.
    return {"format_version": FORMAT_VERSION if header.codebook_strides else 1, "header": header.to_json()}


def _level_rows(codes: npt.NDArray[np.int64], header: TokenHeader) -> list[list[int]]:
    """The rows a ``.txt`` or ``.json`` file holds: ``codes``' rows, or for multi-scale codes each codebook's codes at
    its own frame rate, level after level (coarsest first)."""
    layout = header.layout
    if layout is None:
        return codes.tolist()
    return [row for lv in layout.split(codes) for row in lv.tolist()]


def _join_level_rows(rows: list[list[int]], header: TokenHeader, source: str) -> npt.NDArray[np.int64]:
    """Inverse of :func:`_level_rows` for a multi-scale header: rows -> superframe codes ``[R, F]``."""
    layout = header.layout
    assert layout is not None
    shapes = layout.level_shapes(header.num_codebooks, header.num_frames)
    if len(rows) != sum(k for k, _ in shapes):
        raise TokenFileError(
            f"{source} holds {len(rows)} rows of codes but its header's levels need {sum(k for k, _ in shapes)}"
        )
    levels, start = [], 0
    for k, f in shapes:
        for i in range(start, start + k):
            if len(rows[i]) != f:
                raise TokenFileError(f"{source}: codes row {i} has {len(rows[i])} codes, its level needs {f}")
        levels.append(np.array(rows[start : start + k], dtype=np.int64).reshape(k, f))
        start += k
    return layout.join(levels)


def _parse_wrapped(obj: object, source: str) -> TokenHeader:
    """Header from a sidecar or ``.json`` object ``{"format_version": 1, "header": {...}, ...}``."""
    if not isinstance(obj, dict):
        raise TokenFileError(f"{source}: expected a JSON object, got {type(obj).__name__}")
    # format_version is optional so hand-made files work; it exists so the JSON layout can change.
    _check_version(obj.get("format_version", 1), source)
    if "header" not in obj:
        raise TokenFileError(f"{source}: has no 'header'")
    return _header_from_json(obj["header"], source)


def _load_json(path: Path) -> object:
    try:
        return json.loads(_read_text(path))
    except (ValueError, RecursionError) as exc:
        raise TokenFileError(f"{path} is not valid JSON ({exc})") from exc


def _header_for(path: Path, codes: npt.NDArray[np.int64]) -> TokenHeader:
    """The sidecar's header when there is one (checked against the codes), else a made-up one."""
    side = _sidecar(path)
    if not side.exists():
        return _unknown_header(codes)
    return _parse_wrapped(_load_json(side), str(side))


def _codes_from_rows(rows: object, source: str, header: TokenHeader | None = None) -> npt.NDArray[np.int64]:
    """``rows`` (lists of integers) -> codes ``[K, F]``; for a multi-scale ``header``, rows at their levels' rates."""
    if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
        raise TokenFileError(f"{source}: 'codes' must be a list of lists of integers [K][F]")
    ragged = header is not None and header.layout is not None
    for i, row in enumerate(rows):
        if not ragged and len(row) != len(rows[0]):
            raise TokenFileError(
                f"{source}: codes row {i} has {len(row)} codes, row 0 has {len(rows[0])} "
                "(every codebook needs one code per frame)"
            )
        for j, v in enumerate(row):
            if type(v) is not int:
                raise TokenFileError(f"{source}: codes row {i}, frame {j} is {v!r}, not an integer")
            if v < 0:
                raise TokenFileError(f"{source}: codes row {i}, frame {j} is negative ({v})")
    try:
        if ragged:
            assert header is not None
            return _join_level_rows(rows, header, source)
        return np.array(rows, dtype=np.int64).reshape(len(rows), len(rows[0]) if rows else 0)
    except OverflowError as exc:
        raise TokenFileError(f"{source}: a code is too large for a 64-bit integer") from exc


def _parse_txt(text: str, source: str, header: TokenHeader | None = None) -> npt.NDArray[np.int64]:
    lines = text.splitlines()
    # Editors like to add blank lines at the end; blank lines are only codes when every row is empty.
    while lines and not lines[-1].strip() and any(line.strip() for line in lines):
        lines.pop()
    rows: list[list[int]] = []
    for lineno, line in enumerate(lines, start=1):
        row: list[int] = []
        for tok in line.split():
            # Only plain ASCII digits: int() would also take "1_000", "+3" or Arabic-Indic digits.
            if tok.isascii() and tok.isdigit():
                row.append(int(tok))
            elif tok.startswith("-") and tok[1:].isascii() and tok[1:].isdigit():
                raise TokenFileError(f"{source} line {lineno}: code {tok} is negative")
            else:
                raise TokenFileError(f"{source} line {lineno}: {tok!r} is not a non-negative integer")
        if rows and len(row) != len(rows[0]) and (header is None or header.layout is None):
            raise TokenFileError(
                f"{source} line {lineno} has {len(row)} codes, line 1 has {len(rows[0])} "
                "(every codebook needs one code per frame)"
            )
        rows.append(row)
    if not rows:
        raise TokenFileError(f"{source} holds no codes")
    try:
        if header is not None and header.layout is not None:
            return _join_level_rows(rows, header, source)
        return np.array(rows, dtype=np.int64).reshape(len(rows), len(rows[0]))
    except OverflowError as exc:
        raise TokenFileError(f"{source}: a code is too large for a 64-bit integer") from exc


def _load_npy(path: Path) -> npt.NDArray[np.int64]:
    if not path.exists():
        raise TokenFileError(f"{path}: no such token file")
    try:
        # allow_pickle=False: an object array in a .npy is a pickle, and unpickling runs code.
        arr = np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise TokenFileError(f"{path} is not a plain .npy integer array ({exc})") from exc
    except (OSError, EOFError) as exc:
        raise TokenFileError(f"cannot read {path} as .npy ({exc})") from exc
    if not isinstance(arr, np.ndarray):
        raise TokenFileError(f"{path} is not a .npy array")
    if arr.ndim != 2 or arr.dtype.kind not in "iu":
        raise TokenFileError(f"{path} must hold a 2-D integer array [K, F], got {arr.dtype} {list(arr.shape)}")
    if arr.size and int(arr.min()) < 0:
        raise TokenFileError(f"{path} holds negative codes")
    if arr.size and arr.dtype == np.uint64 and int(arr.max()) > np.iinfo(np.int64).max:
        raise TokenFileError(f"{path} holds codes too large for a 64-bit integer")
    if arr.shape[0] < 1:
        raise TokenFileError(f"{path} holds no codes")
    return arr.astype(np.int64)


def _check_shape(codes: npt.NDArray[np.int64], header: TokenHeader, path: Path) -> None:
    if codes.shape != (header.num_codebooks, header.num_frames):
        raise TokenFileError(
            f"{path} holds codes of shape {list(codes.shape)} but its header says "
            f"[{header.num_codebooks}, {header.num_frames}]"
        )


def save_codes(path: _PathLike, codes: np.ndarray, header: TokenHeader, *, fmt: str, overwrite: bool = False) -> None:
    """Save codes ``[K, F]`` with their header in one of :data:`FORMATS`, atomically.

    ``"vqt"`` is :func:`write_tokens`. ``"npy"`` and ``"txt"`` also write the header to a sidecar
    ``<path>.json``; ``"json"`` writes ``{"format_version", "header", "codes"}`` in one file.

    Raises:
        ValueError: ``fmt`` is not one of :data:`FORMATS`.
        TokenFileError: a target file exists and ``overwrite`` is False, or as :func:`write_tokens`.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown token format {fmt!r}; choose one of {', '.join(FORMATS)}")
    target = Path(path)
    if fmt == "vqt":
        write_tokens(target, codes, header, overwrite=overwrite)
        return
    _check_header(header, f"cannot write {target}")
    _header_json_text(header, str(target))  # refuse unserialisable `extra` before writing anything
    arr = _validated_codes(codes, header, f"cannot write {target}")

    if fmt == "json":
        obj = {**_wrapped_header(header), "codes": _level_rows(arr, header)}
        data = _json_bytes(obj)
        _write_files([(target, _bytes_writer(data))], overwrite)
        return

    side_data = _json_bytes(_wrapped_header(header))
    main: Callable[[IO[bytes]], None]
    if fmt == "npy":

        def main(fh: IO[bytes]) -> None:
            np.save(fh, arr, allow_pickle=False)

    else:
        text = "".join(" ".join(map(str, row)) + "\n" for row in _level_rows(arr, header))
        text_bytes = text.encode("ascii")

        def main(fh: IO[bytes]) -> None:
            fh.write(text_bytes)

    _write_files([(target, main), (_sidecar(target), _bytes_writer(side_data))], overwrite)


def load_codes(path: _PathLike, *, fmt: str | None = None) -> TokenFile:
    """Load codes saved by :func:`save_codes` (or by hand), inferring ``fmt`` from the suffix if None.

    An ``.npy`` or ``.txt`` file without its ``.json`` sidecar gets a made-up header (model id
    ``"unknown"``, rates 0, codebook size = largest code + 1); :func:`check_compatible` refuses it until
    :func:`assume_model` names a model.

    Raises:
        ValueError: ``fmt`` is given but not one of :data:`FORMATS`.
        TokenFileError: the suffix is unknown, or the file or its sidecar is missing parts, malformed,
            from a newer format version, or disagrees with its header.
    """
    p = Path(path)
    if fmt is None:
        fmt = p.suffix.lower().lstrip(".")
        if fmt not in FORMATS:
            raise TokenFileError(f"cannot tell the token format of {p} from its suffix; use .vqt, .npy, .txt or .json")
    elif fmt not in FORMATS:
        raise ValueError(f"unknown token format {fmt!r}; choose one of {', '.join(FORMATS)}")

    if fmt == "vqt":
        return read_tokens(p)

    codes: npt.NDArray[np.int64]
    if fmt == "json":
        obj = _load_json(p)
        header = _parse_wrapped(obj, str(p))
        assert isinstance(obj, dict)  # _parse_wrapped refused anything else
        if "codes" not in obj:
            hint = f"; is it a sidecar? load {p.with_suffix('')} instead" if p.name.count(".") > 1 else ""
            raise TokenFileError(f"{p} has no 'codes'{hint}")
        codes = _codes_from_rows(obj["codes"], str(p), header)
    elif fmt == "npy":
        codes = _load_npy(p)
        header = _header_for(p, codes)
    else:
        # A multi-scale sidecar says how the lines (one per codebook, each at its level's rate) fit together.
        side = _sidecar(p)
        known = _parse_wrapped(_load_json(side), str(side)) if side.exists() else None
        codes = _parse_txt(_read_text(p), str(p), known)
        header = known if known is not None else _unknown_header(codes)
    _check_shape(codes, header, p)
    return TokenFile(header=header, codes=_validated_codes(codes, header, str(p)))
