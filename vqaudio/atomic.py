"""The one way vqaudio writes a file: readers see the old file or the complete new one, never a part, even
after a crash or a ``kill -9``.

The bytes go to a fresh hidden temp file in the target's folder (so the final step is a rename on one file
system), are flushed and fsync'd, and then take the target's name: ``os.replace`` when overwriting, and a
hard link when not, which fails instead of replacing a file that appeared in the meantime. The temp file is
removed on every failure the process lives through. It is created with mode 0o666, so the umask decides the
permissions, as for any file the user makes (``tempfile.mkstemp`` would make it private).

Token files, audio, model weights, checkpoints, manifests, download markers, prior files and units shards all
go through here.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


def temp_beside(path: str | Path) -> Path:
    """Create an empty hidden temp file next to ``path`` and return its name.

    Raises:
        OSError: the folder is missing or not writable.
    """
    path = Path(path)
    while True:
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return tmp
        except FileExistsError:
            continue


def commit(tmp: str | Path, path: str | Path, *, overwrite: bool = True) -> None:
    """fsync the finished temp file ``tmp`` and give it ``path``'s name (the temp name is gone afterwards).

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is False.
        OSError: the move fails.
    """
    tmp, path = Path(tmp), Path(path)
    try:
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # fails if path exists, where a rename would replace it
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_open(path: str | Path, *, overwrite: bool = True) -> Iterator[IO[bytes]]:
    """A binary file to write ``path``'s new content into; it takes ``path``'s name when the block ends
    without an exception, and is removed otherwise.

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is False (checked before and when committing).
        OSError: the folder is missing or not writable, or the disk is full.
    """
    path = Path(path)
    if not overwrite and path.exists():
        raise FileExistsError(f"{path} exists")
    tmp = temp_beside(path)
    try:
        with open(tmp, "wb") as fh:
            yield fh
            fh.flush()
        commit(tmp, path, overwrite=overwrite)
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(path: str | Path, data: bytes, *, overwrite: bool = True) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_open`)."""
    with atomic_open(path, overwrite=overwrite) as fh:
        fh.write(data)
