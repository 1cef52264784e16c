"""Reading and (atomically) writing the files of one token file: a file and, for plain formats, its sidecar."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import IO

from vqaudio.atomic import commit, temp_beside
from vqaudio.errors import TokenFileError

# --------------------------------------------------------------------------------------------------
# Atomic writing
# --------------------------------------------------------------------------------------------------


def _refuse_existing(paths: list[Path], overwrite: bool) -> None:
    if overwrite:
        return
    for p in paths:
        if p.exists() or p.is_symlink():
            raise TokenFileError(f"{p} already exists; pass --force (overwrite=True) to replace it")


def _write_atomically(path: Path, write: Callable[[IO[bytes]], None]) -> Path:
    """Write into a fresh temp file beside ``path`` and return its name; the caller moves it in place.

    The temp file lives in the same directory so ``os.replace`` is a rename on one file system: readers
    see either the old file or the complete new one, never half of it.
    """
    parent = path.parent
    if not parent.is_dir():
        raise TokenFileError(f"cannot write {path}: directory {parent} does not exist")
    if path.is_dir():
        raise TokenFileError(f"cannot write {path}: it is a directory")
    try:
        tmp = temp_beside(path)
    except OSError as exc:
        raise TokenFileError(f"cannot write {path}: {exc.strerror or exc}") from exc
    try:
        with open(tmp, "wb") as fh:
            write(fh)
            fh.flush()
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise TokenFileError(f"cannot write {path}: {exc.strerror or exc}") from exc
        raise
    return tmp


def _bytes_writer(data: bytes) -> Callable[[IO[bytes]], None]:
    def write(fh: IO[bytes]) -> None:
        fh.write(data)

    return write


def _commit(pairs: list[tuple[Path, Path]]) -> None:
    """Move temp files onto their targets; on failure remove every temp file that is left."""
    try:
        for tmp, target in pairs:
            try:
                commit(tmp, target)
            except OSError as exc:
                raise TokenFileError(f"cannot write {target}: {exc.strerror or exc}") from exc
    finally:
        for tmp, _ in pairs:
            tmp.unlink(missing_ok=True)


def _write_files(contents: list[tuple[Path, Callable[[IO[bytes]], None]]], overwrite: bool) -> None:
    _refuse_existing([p for p, _ in contents], overwrite)
    written: list[tuple[Path, Path]] = []
    try:
        for target, write in contents:
            written.append((_write_atomically(target, write), target))
    except BaseException:
        for tmp, _ in written:
            tmp.unlink(missing_ok=True)
        raise
    _commit(written)


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise TokenFileError(f"{path}: no such token file") from exc
    except IsADirectoryError as exc:
        raise TokenFileError(f"{path} is a directory, not a token file") from exc
    except OSError as exc:
        raise TokenFileError(f"cannot read {path}: {exc.strerror or exc}") from exc


def _read_text(path: Path) -> str:
    data = _read_bytes(path)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TokenFileError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
