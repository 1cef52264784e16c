"""The one way vqaudio writes a file: readers see the old file or the complete new one, never a part, even
after a crash or a ``kill -9``.

The bytes go to a fresh hidden temp file in the target's folder (so the final step is a rename on one file
system), are flushed and fsync'd, and then take the target's name: ``os.replace`` when overwriting, and a
hard link when not, which fails instead of replacing a file that appeared in the meantime. The temp file is
removed on every failure the process lives through (the CLI turns SIGTERM into an exit that runs these clean-ups,
as Ctrl-C does). It is created with mode 0o666, so the umask decides the permissions, as for any file the user makes
(``tempfile.mkstemp`` would make it private). A temp file a killed writer left behind (``kill -9``, a power cut) is
removed by the next write to the same target once it is stale (:func:`sweep_stale`).

Token files, audio, model weights, checkpoints, manifests, download markers, prior files and units shards all
go through here.
"""

from __future__ import annotations

import os
import re
import secrets
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

# A temp file is ours, and stale, when its name is exactly ``.<target name>.<8 hex digits>.tmp`` (what temp_beside
# makes) and nothing has written to it for an hour. Age decides, not the writer's pid: a pid says nothing about a
# writer on another host of a shared (cluster) file system, and pids are reused. A live writer touches its temp
# file every few seconds (a decode writes a window at a time, every other writer all at once), so an hour of
# silence means it is dead. Even a wrong sweep would cost no data: that writer's commit would find its temp name
# gone and fail, leaving the target as it was.
STALE_SECONDS = 3600.0


def sweep_stale(path: str | Path, *, older_than: float = STALE_SECONDS) -> list[Path]:
    """Remove the temp files a killed writer of ``path`` left beside it (our naming only, untouched for
    ``older_than`` seconds); return their names. Problems (a folder that cannot be listed, a file that is
    already gone) are ignored: sweeping is a courtesy, not part of the write."""
    path = Path(path)
    ours = re.compile(rf"\.{re.escape(path.name)}\.[0-9a-f]{{8}}\.tmp")
    prefix = f".{path.name}."
    try:
        # Names first, with no stat per entry: only names of our pattern cost a system call.
        with os.scandir(path.parent) as entries:
            names = [e.name for e in entries if e.name.startswith(prefix) and ours.fullmatch(e.name)]
    except OSError:
        return []
    removed = []
    for name in names:
        tmp = path.parent / name
        try:
            info = tmp.lstat()
            if stat.S_ISREG(info.st_mode) and time.time() - info.st_mtime > older_than:
                tmp.unlink()
                removed.append(tmp)
        except OSError:
            continue
    return removed


def temp_beside(path: str | Path) -> Path:
    """Create an empty hidden temp file next to ``path`` and return its name (stale ones of ``path`` are swept
    first, see :func:`sweep_stale`).

    Raises:
        OSError: the folder is missing or not writable.
    """
    path = Path(path)
    sweep_stale(path)
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
